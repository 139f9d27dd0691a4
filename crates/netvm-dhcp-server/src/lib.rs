//! Runs the netvm DHCP engine (`netvm-dhcp`) on a real interface: the
//! receive and send sockets, the durable lease journal with group commit
//! and background compaction, timers and signals, and JSON event lines.
//! Also a load generator used by the tests and `bench/dhcp.sh`.
//!
//! Side effects: binds UDP port 67 on one interface, writes raw frames on
//! it (`CAP_NET_RAW`, `CAP_NET_BIND_SERVICE`), and owns one journal file.
//!
//! What it shares with the other servers (stop handle, waiting, error
//! chains, interface-bound sockets, token bucket) is in `netvm-runtime`.

mod daemon;
mod frame;
pub mod journal_file;
pub mod load;
pub mod log_limit;
mod sockets;

pub use daemon::{serve, serve_with, ServeError, ServeOptions, Verdict};
