//! Runs the netvm DHCP engine (`netvm-dhcp`) on a real interface: the
//! receive and send sockets, the durable lease journal with group commit
//! and background compaction, timers and signals, and JSON event lines.
//! Also a load generator used by the tests and `bench/dhcp.sh`.
//!
//! Side effects: binds UDP port 67 on one interface, writes raw frames on
//! it (`CAP_NET_RAW`, `CAP_NET_BIND_SERVICE`), and owns one journal file.

mod daemon;
mod frame;
pub mod journal_file;
mod link;
pub mod load;
pub mod log_limit;
mod sockets;

pub use daemon::{error_chain, serve, serve_with, PartControl, ServeError, ServeOptions, Verdict};
pub use link::{Link, LinkError};
pub use sockets::udp_on;
