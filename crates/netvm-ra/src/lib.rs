//! Router Advertisements on real interfaces, both directions, on raw
//! ICMPv6 sockets (`CAP_NET_RAW`); the messages themselves are
//! `netvm-ndp`'s.
//!
//! * [`Advertiser`]: the net-vm as the internal network's router (M=1,
//!   O=1, RDNSS, DNSSL, MTU, no on-link prefix), at start, periodically,
//!   in answer to solicitations, on a configuration change, and a last
//!   advertisement with router lifetime 0 when stopped.
//! * [`Listener`]: the uplink's advertisements, parsed strictly (hop limit
//!   255 from the `IPV6_HOPLIMIT` ancillary data, link-local source) and
//!   reported to a callback, for the DNS servers, search domains, NAT64
//!   prefix and M/O flags. The kernel does SLAAC and the default route on
//!   the uplink itself; the listener only reads.
//!
//! Both wait in one `poll` on their socket, a [`netvm_runtime::Stop`] and
//! their next deadline, so an idle one costs nothing. Sockets see one
//! interface (`SO_BINDTODEVICE`) and one ICMPv6 type (a socket filter).
//! Checksums are the kernel's, both ways.

#![forbid(unsafe_code)]

mod advertiser;
mod listener;
pub mod schedule;
mod socket;

pub use advertiser::{
    AdvertConfig, AdvertHandle, AdvertStats, Advertiser, DNS_LIFETIME_SECS, MAX_INTERVAL,
    MIN_INTERVAL, ROUTER_LIFETIME_SECS,
};
pub use listener::{Heard, Listener};

use netvm_description::values::IfName;
use std::io;

/// Why an advertiser or listener could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum RaError {
    /// The raw ICMPv6 socket could not be opened or set up.
    #[error("cannot open an ICMPv6 socket on {interface}")]
    Open {
        /// The interface.
        interface: IfName,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The configured advertisement cannot be written.
    #[error("cannot build the router advertisement")]
    Build(#[from] netvm_ndp::BuildError),
    /// Waiting on the socket failed.
    #[error("cannot wait on the ICMPv6 socket")]
    Wait(#[source] io::Error),
    /// Reading from the socket failed (e.g. the interface went away).
    #[error("cannot read from the ICMPv6 socket on {interface}")]
    Receive {
        /// The interface.
        interface: IfName,
        /// Why.
        #[source]
        source: io::Error,
    },
}
