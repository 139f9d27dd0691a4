//! The Net VM uplink's DHCP clients. [`client`] is the RFC 2131 state
//! machine, without sockets or a clock, so every transition is a unit
//! test; the agent runs it on the uplink and applies its leases.
//! [`dhcp6`] runs the DHCPv6 client engine (`netvm_dhcp6::client`) on the
//! uplink and reports its leases. [`choice`] decides which of several
//! uplinks carries the Internet (states, probes, fail-over, fail-back),
//! also without I/O or a clock.

#![forbid(unsafe_code)]

pub mod choice;
pub mod client;
pub mod dhcp6;

pub use client::{Action, Client, Lease, Millis, State};
