//! Netfilter over netlink, without starting processes: what the Net VM
//! agent used to get from `nft` and `conntrack` runs.
//!
//! * [`nftables`]: a long-lived [`NfTables`] handle that adds and removes
//!   elements of named sets (one batch per call) and reads named counters.
//! * [`nflog`]: a [`LogListener`] bound to one NFLOG group, whose fd can be
//!   polled, turning each logged packet into a [`LogRecord`].
//! * [`conntrack`]: dump the IPv4 connection-tracking table and delete
//!   entries by their original tuple.
//!
//! Everything is blocking and plain `std`: call it from a thread. A socket
//! talks to the kernel of the network namespace of the thread that opened
//! it. Requests wait at most a few seconds for the kernel's answer.
//! Opening needs `CAP_NET_ADMIN` in that namespace.

mod wire;

pub mod conntrack;
pub mod nflog;
pub mod nftables;

pub use conntrack::{Conntrack, Icmp, Tuple};
pub use nflog::{LogListener, LogRecord, PacketSummary};
pub use nftables::{Counter, Element, NfTables, Part};
pub use wire::Malformed;

use nix::errno::Errno;

/// Why a netfilter request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be opened, written or read (includes the
    /// kernel not answering in time).
    #[error("cannot {action} (netfilter netlink socket)")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused a request.
    #[error("the kernel refused to {request}: {errno}")]
    Refused {
        /// What was asked.
        request: &'static str,
        /// The kernel's error.
        errno: Errno,
    },
    /// The kernel refused to add or remove one set element.
    #[error("the kernel refused to {op} element {element} of set {table}.{set}: {errno}")]
    Element {
        /// `add` or `remove`.
        op: &'static str,
        /// The table (family inet).
        table: String,
        /// The set.
        set: String,
        /// The element the kernel refused.
        element: Element,
        /// The kernel's error (ENOENT: no such table or set).
        errno: Errno,
    },
    /// The kernel's answer did not parse.
    #[error("the kernel's answer to {request} is malformed ({})", detail.0)]
    Malformed {
        /// What was asked.
        request: &'static str,
        /// What was wrong.
        detail: Malformed,
    },
}

impl Error {
    /// The kernel's errno, when the kernel refused something.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Refused { errno, .. } | Error::Element { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            Error::Malformed { .. } => None,
        }
    }

    pub(crate) fn malformed(request: &'static str, detail: Malformed) -> Error {
        Error::Malformed { request, detail }
    }
}
