//! What the engine tells its driver: lease events (for DNS, the firewall's
//! anti-spoofing set and security monitoring) and counters.

use crate::client::ClientKey;
use crate::request::{DropReason, MessageKind};
use crate::time::Timestamp;
use netvm_description::values::MacAddr;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// A change to the leases, or something worth reporting. Its JSON is
/// what the DHCP server writes (inside `netvm_events::Event`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// A client was acknowledged an address (new, renewed or moved).
    LeaseGranted {
        /// The address.
        ip: Ipv4Addr,
        /// The client's MAC.
        mac: MacAddr,
        /// The lease owner.
        client: ClientKey,
        /// Sanitised host name, if the client sent one.
        hostname: Option<String>,
        /// Expiry.
        until: Timestamp,
    },
    /// A client released its address.
    LeaseReleased {
        /// The address.
        ip: Ipv4Addr,
        /// The client's MAC.
        mac: MacAddr,
    },
    /// A lease ran out.
    LeaseExpired {
        /// The address.
        ip: Ipv4Addr,
        /// The client's MAC.
        mac: MacAddr,
    },
    /// A client reported the address in use by someone else.
    AddressDeclined {
        /// The address.
        ip: Ipv4Addr,
        /// The client's MAC.
        mac: MacAddr,
    },
    /// A DISCOVER could not be offered anything.
    PoolExhausted {
        /// The client's MAC.
        mac: MacAddr,
    },
}

/// Counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Messages received.
    pub received: u64,
    /// Valid messages by type.
    pub discover: u64,
    /// DHCPREQUEST.
    pub request: u64,
    /// DHCPDECLINE.
    pub decline: u64,
    /// DHCPRELEASE.
    pub release: u64,
    /// DHCPINFORM.
    pub inform: u64,
    /// Replies sent, by type.
    pub offer: u64,
    /// DHCPACK.
    pub ack: u64,
    /// DHCPNAK.
    pub nak: u64,
    /// Dropped messages, by reason.
    pub dropped: BTreeMap<&'static str, u64>,
    /// Offers taken back before their hold ended, for another client,
    /// because the pool had no free address.
    pub offers_reclaimed: u64,
    /// Probations ended early: past `probation_max`, or for a client when
    /// the pool had no free address.
    pub probations_ended_early: u64,
    /// Leases undone before their ACK left, because the driver could not
    /// make them effective (`Server::revoke`); not counted in `ack`.
    pub revoked: u64,
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            dropped: DropReason::ALL.iter().map(|r| (r.name(), 0)).collect(),
            ..Counters::default()
        }
    }

    pub(crate) fn count_kind(&mut self, kind: MessageKind) {
        let counter = match kind {
            MessageKind::Discover => &mut self.discover,
            MessageKind::Request => &mut self.request,
            MessageKind::Decline => &mut self.decline,
            MessageKind::Release => &mut self.release,
            MessageKind::Inform => &mut self.inform,
        };
        *counter += 1;
    }

    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        *self.dropped.entry(reason.name()).or_default() += 1;
    }

    /// All drops together.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}
