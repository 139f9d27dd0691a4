//! The Net VM uplink's DHCP client. [`client`] is the RFC 2131 state
//! machine, without sockets or a clock, so every transition is a unit
//! test; the agent runs it on the uplink and applies its leases.

#![forbid(unsafe_code)]

pub mod client;

pub use client::{Action, Client, Lease, Millis, State};
