//! The netvm DHCPv4 server engine (RFC 2131, RFC 2132): reading client
//! messages strictly, the server state machine, the address allocator,
//! per-MAC limits, and the lease journal's byte format.
//!
//! No I/O and no clock: a driver feeds [`Server::handle`] each received
//! message with the time, sends the reply it returns once the returned
//! journal record is durable, and calls [`Server::poll`] at
//! [`Server::poll_at`]. Every state transition is therefore a fast unit
//! test with explicit timestamps. Never panics on any input.

#![forbid(unsafe_code)]

mod client;
mod config;
mod events;
pub mod journal;
mod leases;
mod limiter;
mod pool;
mod reply;
mod request;
mod server;
mod time;

pub use client::ClientKey;
pub use config::{Reservation, ServerConfig};
pub use events::{Counters, Event};
pub use journal::Record;
pub use leases::{Lease, LeaseState};
pub use pool::Pool;
pub use reply::{Destination, Reply, ReplyKind};
pub use request::{
    check_option_runs, check_options, parse as parse_request, ClientFqdn, DropReason, MessageKind,
    Request, MAX_MESSAGE,
};
pub use server::{LeaseView, Outcome, Server};
pub use time::Timestamp;

/// The UDP port clients send from (RFC 2131 section 4.1).
pub const CLIENT_PORT: u16 = 68;

/// The UDP port servers listen on and relay agents send from.
pub const SERVER_PORT: u16 = 67;
