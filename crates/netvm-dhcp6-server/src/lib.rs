//! Runs the netvm DHCPv6 server engine (`netvm_dhcp6::server`) on the
//! internal interface: client frames in through a filtered packet socket
//! (the client's identity is the frame's source MAC), replies out through
//! a UDP socket on port 547, lease deadlines, a lease snapshot, and JSON
//! event lines. The supervisor makes each grant effective before its reply
//! leaves ([`Hooks6`]).
//!
//! Side effects: a packet socket and UDP port 547 on one interface
//! (`CAP_NET_RAW`, `CAP_NET_BIND_SERVICE`), membership of `ff02::1:2`
//! there, and one snapshot file when asked. No sibling server crate is
//! used; what servers share is in `netvm-runtime`.

#![forbid(unsafe_code)]

mod daemon;
pub mod frame;
pub mod snapshot;
mod sockets;

pub use daemon::{serve, serve_with, Hooks6, Line6, NoHooks, Serve6Error, Serve6Options};
pub use sockets::ALL_SERVERS;
