//! The DHCPv6 engines (RFC 8415), without sockets or a clock: the uplink's
//! client, which asks for an address (IA_NA) and a delegated prefix
//! (IA_PD), and the internal network's server, which gives each VM its
//! reserved address (keyed by its MAC) and undescribed guests one from a
//! pool. The drivers pass time and bytes in and carry out what comes out.

#![forbid(unsafe_code)]

pub mod client;
pub mod server;

pub use client::{Action, Address6, Client, Lease6, Millis, Phase, Prefix6};
pub use server::{Event6, Outcome, Server6, Server6Config};
