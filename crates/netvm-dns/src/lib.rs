//! netvm's DNS engine for the internal network: authoritative for the
//! internal zone (A and AAAA records, and reverse names under
//! `in-addr.arpa` and `ip6.arpa`, from the description and from DHCP and
//! DHCPv6 leases), a forwarding cache for everything else with request
//! coalescing, upstream failover (IPv4 and IPv6 upstreams alike) and
//! per-client limits.
//!
//! Messages are read and written with `hickory-proto`; the engine owns
//! no socket and no clock ([`Engine`] takes bytes and the time and
//! returns [`Step`]s), so it is tested and fuzzed without a network.

#![forbid(unsafe_code)]

pub mod cache;
mod engine;
mod limiter;
mod prepared;
pub mod zone;

pub use cache::Millis;
pub use engine::{Client, Config, Counters, Engine, Step, Transport};
pub use zone::{Lookup, Zone, ZoneError};
