//! The event sets (`ev_*`): what the agent reports as security events,
//! their keys, lifetimes, sizes and NFLOG prefixes, and the two rules
//! (log while new, then add) that feed each. IPv4 sets and their IPv6
//! twins (`…6`, plus `ev_rogue_ra`); the twins exist only in a ruleset
//! with IPv6 on ([`event_sets`]).

use serde::Serialize;

/// What an event set's elements are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKey {
    /// Source address and source MAC (`ip saddr . ether saddr`).
    SourceAddressMac,
    /// Source, destination, protocol, destination port
    /// (`ip saddr . ip daddr . meta l4proto . th dport`).
    Connection,
    /// Source, protocol, destination port
    /// (`ip saddr . meta l4proto . th dport`).
    SourceService,
    /// IPv6 source address and source MAC (`ip6 saddr . ether saddr`).
    SourceAddressMac6,
    /// [`EventKey::Connection`] for IPv6.
    Connection6,
    /// [`EventKey::SourceService`] for IPv6.
    SourceService6,
}

impl EventKey {
    /// The set's nftables element type.
    pub fn nft_type(self) -> &'static str {
        match self {
            EventKey::SourceAddressMac => "ipv4_addr . ether_addr",
            EventKey::Connection => "ipv4_addr . ipv4_addr . inet_proto . inet_service",
            EventKey::SourceService => "ipv4_addr . inet_proto . inet_service",
            EventKey::SourceAddressMac6 => "ipv6_addr . ether_addr",
            EventKey::Connection6 => "ipv6_addr . ipv6_addr . inet_proto . inet_service",
            EventKey::SourceService6 => "ipv6_addr . inet_proto . inet_service",
        }
    }

    /// The expression a rule builds the key with from a packet.
    pub fn nft_expression(self) -> &'static str {
        match self {
            EventKey::SourceAddressMac => "ip saddr . ether saddr",
            EventKey::Connection => "ip saddr . ip daddr . meta l4proto . th dport",
            EventKey::SourceService => "ip saddr . meta l4proto . th dport",
            EventKey::SourceAddressMac6 => "ip6 saddr . ether saddr",
            EventKey::Connection6 => "ip6 saddr . ip6 daddr . meta l4proto . th dport",
            EventKey::SourceService6 => "ip6 saddr . meta l4proto . th dport",
        }
    }

    /// Whether its addresses are IPv6 ones.
    pub fn is_ipv6(self) -> bool {
        matches!(
            self,
            EventKey::SourceAddressMac6 | EventKey::Connection6 | EventKey::SourceService6
        )
    }
}

/// One event set of the ruleset and how its packets are pushed to the
/// agent. An element lives for `lifetime_secs` from the first packet
/// (`add` does not refresh it), so one key is reported at most once per
/// lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EventSet {
    /// The set's name in the table (`ev_…`).
    pub name: &'static str,
    /// What its elements are made of.
    pub key: EventKey,
    /// How long an element lives, in seconds.
    pub lifetime_secs: u32,
    /// Most elements at once.
    pub size: u32,
    /// The NFLOG group its packets are logged to.
    pub log_group: u16,
    /// The NFLOG prefix of its packets (the set's name and a space).
    pub log_prefix: &'static str,
    /// Packets logged per second at most (per rule).
    pub log_rate_per_second: u32,
    /// Packets logged in a burst above the rate.
    pub log_burst: u32,
}

/// The NFLOG group the event rules log to (the agent listens on it).
pub const EVENT_LOG_GROUP: u16 = 7;

/// Event packets logged per second at most, per rule. A bound on the
/// agent's work, set above what the agent reports (its own limit, 20
/// events a second with a burst of 100, counts what it refuses in
/// `events_suppressed`): a packet this limit stops is never counted, so
/// it must not be the one that binds.
pub const EVENT_LOG_RATE: u32 = 1000;

/// Event packets logged in a burst above [`EVENT_LOG_RATE`], per rule.
pub const EVENT_LOG_BURST: u32 = 1000;

const fn event_set(
    name: &'static str,
    log_prefix: &'static str,
    key: EventKey,
    lifetime_secs: u32,
    size: u32,
) -> EventSet {
    EventSet {
        name,
        key,
        lifetime_secs,
        size,
        log_group: EVENT_LOG_GROUP,
        log_prefix,
        log_rate_per_second: EVENT_LOG_RATE,
        log_burst: EVENT_LOG_BURST,
    }
}

/// A packet from the internal side with an address and MAC that are not
/// a pair in `endpoints`.
pub const EV_SPOOFED: EventSet = event_set(
    "ev_spoofed",
    "ev_spoofed ",
    EventKey::SourceAddressMac,
    60,
    4096,
);

/// A new VM-to-VM or VM-to-Internet connection the policy refused.
pub const EV_POLICY: EventSet =
    event_set("ev_policy", "ev_policy ", EventKey::Connection, 60, 4096);

/// A new VM-to-VM connection the policy allowed.
pub const EV_ALLOWED: EventSet =
    event_set("ev_allowed", "ev_allowed ", EventKey::Connection, 60, 4096);

/// A refused new connection from the uplink: source, protocol, port
/// (many ports from one source in the lifetime is a port scan).
pub const EV_SCAN: EventSet = event_set("ev_scan", "ev_scan ", EventKey::SourceService, 10, 65536);

/// A DHCP server answer (UDP 67 to 68) seen on the internal side.
pub const EV_ROGUE_DHCP: EventSet = event_set(
    "ev_rogue_dhcp",
    "ev_rogue_dhcp ",
    EventKey::SourceAddressMac,
    60,
    1024,
);

/// [`EV_SPOOFED`] for IPv6: not a pair in `endpoints6`, nor a
/// link-local or unspecified source the guard lets through.
pub const EV_SPOOFED6: EventSet = event_set(
    "ev_spoofed6",
    "ev_spoofed6 ",
    EventKey::SourceAddressMac6,
    60,
    4096,
);

/// [`EV_POLICY`] for IPv6.
pub const EV_POLICY6: EventSet =
    event_set("ev_policy6", "ev_policy6 ", EventKey::Connection6, 60, 4096);

/// [`EV_ALLOWED`] for IPv6.
pub const EV_ALLOWED6: EventSet = event_set(
    "ev_allowed6",
    "ev_allowed6 ",
    EventKey::Connection6,
    60,
    4096,
);

/// [`EV_SCAN`] for IPv6.
pub const EV_SCAN6: EventSet =
    event_set("ev_scan6", "ev_scan6 ", EventKey::SourceService6, 10, 65536);

/// A router advertisement seen on the internal side (only the net-vm
/// advertises there).
pub const EV_ROGUE_RA: EventSet = event_set(
    "ev_rogue_ra",
    "ev_rogue_ra ",
    EventKey::SourceAddressMac6,
    60,
    1024,
);

/// A DHCPv6 server message (UDP 547 to 546) seen on the internal side.
pub const EV_ROGUE_DHCP6: EventSet = event_set(
    "ev_rogue_dhcp6",
    "ev_rogue_dhcp6 ",
    EventKey::SourceAddressMac6,
    60,
    1024,
);

/// How many of [`EVENT_SETS`] are IPv4 ones (the first).
pub const IPV4_EVENT_SETS: usize = 5;

/// Every event set, in the order a ruleset declares them: the IPv4
/// ones, then the IPv6 ones.
pub const EVENT_SETS: [EventSet; 11] = [
    EV_SPOOFED,
    EV_POLICY,
    EV_ALLOWED,
    EV_SCAN,
    EV_ROGUE_DHCP,
    EV_SPOOFED6,
    EV_POLICY6,
    EV_ALLOWED6,
    EV_SCAN6,
    EV_ROGUE_RA,
    EV_ROGUE_DHCP6,
];

/// The event sets a ruleset declares: the IPv6 ones only with IPv6 on
/// the internal network.
pub fn event_sets(ipv6: bool) -> &'static [EventSet] {
    if ipv6 {
        &EVENT_SETS
    } else {
        &EVENT_SETS[..IPV4_EVENT_SETS]
    }
}

/// `60` seconds as nft writes it (`1m`), others in seconds (`10s`).
pub(super) fn nft_duration(secs: u32) -> String {
    if secs != 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// The rules for one event: with `match_` (tabs and all, up to the
/// statement), first log the packet while its key is new (rate-limited),
/// then add the key.
pub(super) fn event_rules(match_: &str, set: &EventSet) -> String {
    let key = set.key.nft_expression();
    format!(
        "{match_} {key} != @{name} limit rate {rate}/second burst {burst} packets log group {group} prefix \"{prefix}\"\n\
         {match_} add @{name} {{ {key} }}\n",
        name = set.name,
        rate = set.log_rate_per_second,
        burst = set.log_burst,
        group = set.log_group,
        prefix = set.log_prefix,
    )
}
