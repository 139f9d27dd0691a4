//! What netvm's servers (DHCP, DNS) and the agent share at run time, so
//! that no server depends on another server's crate:
//!
//! * [`Stop`] and [`Bell`]: a stop handle and a wake-up that are file
//!   descriptors, so a thread waits on its sockets, its stop and its next
//!   deadline in one [`wait`] (`poll(2)`), and nothing wakes it while
//!   nothing happens. Signals can ring either ([`Stop::on_signals`]).
//! * [`PartControl`]: how a supervisor stops a server it runs on a thread
//!   and reads its counters.
//! * [`error_chain`]: an error and its causes on one line.
//! * [`udp_on`] and [`Link`]: sockets bound to one interface, and what
//!   sysfs says about it.
//! * [`Bucket`]: a token bucket for rate-limiting events.
//! * [`emit`]: one JSON event per line.

#![forbid(unsafe_code)]

mod bucket;
mod errors;
mod events;
mod link;
mod part;
mod pipe;
mod sockets;
mod wait;

pub use bucket::Bucket;
pub use errors::error_chain;
pub use events::{emit, emit_flushed};
pub use link::{Link, LinkError};
pub use part::PartControl;
pub use pipe::{Bell, SignalGuard, Stop, Wake};
pub use sockets::udp_on;
pub use wait::{wait, Ready};
