//! netvm's events and the agent's control protocol, as types: what the
//! DHCP server, the DNS server, the uplink's DHCP client and the agent
//! write (one JSON object per line) and what `netvm status`, `netvm
//! events`, the lab and the tests read back. A field renamed here is
//! renamed for every writer and every reader at once, and the JSON
//! Schemas (`netvm schema --events`, `netvm schema --control`) say what a
//! line may hold.
//!
//! Every event is an [`Event`]: an envelope (`seq` when the agent numbers
//! it, `time_ms`, `class`, `severity`, the subject `vm` when known) with
//! the kind under the key `event` and the kind's own fields beside it
//! ([`Kind`]), for example
//! `{"time_ms":1764769000000,"class":"security","severity":"warning","event":"port_scan","source":"203.0.113.9","ports":20,"window_secs":10}`.
//!
//! Pure: no I/O (the clock is read only by [`Event::new`]).

pub mod control;

use netvm_description::values::MacAddr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// One event: the envelope and its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "netvm event")]
pub struct Event {
    /// Its number in the agent's stream (from 1; absent on the lines a
    /// server or the uplink client writes itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// When it happened, milliseconds since 1970-01-01 UTC.
    pub time_ms: u64,
    /// Security events are rate-limited and kept apart by the agent.
    pub class: Class,
    /// How much it matters.
    pub severity: Severity,
    /// The VM it is about, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    /// What happened: `event` names it, its fields follow.
    #[serde(flatten)]
    pub kind: Kind,
}

/// Which of the agent's histories an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Spoofing, policy verdicts, scans, rogue servers, starvation, and
    /// the lease events an attacker can cause at will: rate-limited.
    Security,
    /// Everything else: leases, the uplink, the parts' own life.
    Info,
}

/// How much an event matters (syslog's names, least first).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Routine.
    Info,
    /// Normal but worth a look (a refused flow, a lost uplink).
    Notice,
    /// Something may be wrong or under attack.
    Warning,
    /// Something failed.
    Error,
}

/// Every kind of event, with its fields. Serialized with the kind's name
/// under `event` (`{"event":"lease_granted","ip":…}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Kind {
    // --- The DHCP server's (lease events: [`Kind::Lease`], last).
    /// A grant was not acknowledged: the agent could not make it
    /// effective (its pair could not join the `endpoints` set).
    LeaseRefused {
        /// The address.
        ip: Ipv4Addr,
        /// The client's MAC.
        mac: MacAddr,
        /// What could not be done (`endpoints_add_failed`), from the agent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Why.
        error: String,
    },
    /// The lease journal could not be written: the batch was not
    /// acknowledged.
    JournalError {
        /// Why.
        error: String,
    },
    /// The lease journal was compacted.
    JournalCompacted {
        /// Bytes before.
        before: u64,
        /// Bytes after.
        after: u64,
    },

    // --- Every part's life.
    /// A part is serving (the DHCP server, the DNS server or the agent).
    Ready(Ready),
    /// A server's counters (SIGUSR1): the same as `netvm status` shows
    /// under `counters.dhcp` / `counters.dns`.
    Counters {
        /// The counters.
        counters: serde_json::Value,
    },
    /// A server stopped; its final counters.
    Stopped {
        /// The counters.
        counters: serde_json::Value,
    },
    /// Events a rate limit refused since the last report.
    EventsSuppressed {
        /// The kinds limited (the DHCP server's own limit); absent for the
        /// agent's, which limits every security event.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kinds: Vec<String>,
        /// How many.
        count: u64,
    },

    // --- The DNS server.
    /// The DNS server's upstreams changed (learned on the uplink).
    DnsUpstreams {
        /// `address:port` each.
        upstreams: Vec<String>,
    },

    // --- The uplink's DHCP client.
    /// A lease (new or renewed) was put on the uplink.
    UplinkBound {
        /// The uplink's interface.
        uplink: String,
        /// The lease.
        lease: netvm_uplink::Lease,
    },
    /// The lease ended or was refused; the address was taken off.
    UplinkLost {
        /// The uplink's interface.
        uplink: String,
    },
    /// The client stopped (the address stays).
    UplinkStopped {
        /// The uplink's interface.
        uplink: String,
    },

    // --- The agent.
    /// An uplink is up (addressed, and with several uplinks passing its
    /// probes), or its address changed.
    UplinkUp {
        /// The uplink's interface.
        uplink: String,
        /// The address.
        address: Ipv4Addr,
        /// The default gateway, if any.
        router: Option<Ipv4Addr>,
    },
    /// An uplink is no longer up.
    UplinkDown {
        /// The uplink's interface.
        uplink: String,
        /// Its state now: `absent`, `no_carrier`, `associating`,
        /// `addressing` (its lease was lost), `failed` (its probes fail).
        state: String,
    },
    /// Something the agent does for an uplink failed (configuring one
    /// that appeared, moving the default route or the ruleset's active
    /// uplink, a rename); it goes on and tries again on the next change.
    UplinkFailed {
        /// The uplink's interface.
        uplink: String,
        /// What failed, and why.
        error: String,
    },
    /// The uplink that carries the Internet changed (several uplinks).
    UplinkSwitched {
        /// The one that did (none at start).
        from: Option<String>,
        /// The one that does now (none: no uplink is up).
        to: Option<String>,
        /// Why: `first_up`, `preferred` (fail-back), or the state the
        /// old one left `up` for.
        reason: String,
    },
    /// A Wi-Fi uplink joined a network (keys installed).
    WifiConnected {
        /// The uplink's interface.
        uplink: String,
        /// The network.
        ssid: String,
        /// The access point.
        bssid: String,
    },
    /// A Wi-Fi uplink left its access point.
    WifiDisconnected {
        /// The uplink's interface.
        uplink: String,
        /// The access point it left.
        bssid: String,
        /// IEEE 802.11 reason code.
        reason: u16,
    },
    /// A Wi-Fi uplink could not join: `wrong_key`, `auth_failed`,
    /// `conn_failed`, `no_psk`, `network_not_found`, `no_networks`,
    /// `psk_file` (the passphrase could not be read) or `supplicant`
    /// (wpa_supplicant could not be run or driven).
    WifiFailed {
        /// The uplink's interface.
        uplink: String,
        /// The network, when one is concerned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ssid: Option<String>,
        /// Why, as above.
        reason: String,
        /// More, for a person.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// What the uplink's IPv6 decides changed: the internal prefix (and
    /// whether it is routed), the NAT64 prefix, the CLAT, the IPv6 DNS
    /// servers. The data plane was planned and applied again.
    Ipv6Uplink {
        /// The internal network's /64 now, if IPv6 is on.
        internal_prefix: Option<String>,
        /// The prefix delegated to the uplink, if any (then the internal
        /// prefix is its first /64, routed).
        delegated: Option<String>,
        /// The NAT64 prefix in use, if any.
        nat64: Option<String>,
        /// The CLAT's IPv6 address, while it runs.
        clat: Option<String>,
        /// The uplink's IPv6 DNS servers.
        dns: Vec<String>,
    },
    /// The uplink's DHCPv6 address could not be put on or taken off, or
    /// another IPv6 step on the uplink failed.
    UplinkIpv6Failed {
        /// Why.
        error: String,
    },
    /// A DHCPv6 lease on the internal network changed (or the pool ran
    /// out for a client).
    Lease6 {
        /// `granted`, `renewed`, `released`, `expired`, `declined`,
        /// `revoked` or `pool_exhausted`.
        change: String,
        /// The address, when the change is about one.
        ip: Option<std::net::Ipv6Addr>,
        /// The client's MAC.
        mac: MacAddr,
    },
    /// The CLAT could not be started, changed or stopped.
    ClatFailed {
        /// Why.
        error: String,
    },
    /// Interfaces were given the names the data plane uses.
    InterfacesRenamed {
        /// Each rename.
        renamed: Vec<Renamed>,
    },
    /// The ruleset and the rest of the data plane are in force.
    DataPlaneApplied {
        /// Connections the policy forbids, cut.
        connections_cut: u64,
        /// Pool leases from the journal let into `endpoints`.
        pool_leases_admitted: u64,
    },
    /// The agent runs as `user` with only `capabilities`.
    PrivilegesDropped {
        /// The user.
        user: String,
        /// The capabilities kept.
        capabilities: Vec<String>,
    },
    /// The description was read again.
    Reloaded {
        /// Whether anything changed.
        changed: bool,
        /// What changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        changes: Option<Changes>,
        /// Connections the new policy forbids, cut.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connections_cut: Option<u64>,
        /// Parts that had failed before they were restarted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        part_errors: Option<u64>,
    },
    /// A reload failed; the agent goes on as it was.
    ReloadFailed {
        /// Why (as `netvm check` says it for an invalid description).
        error: String,
        /// Always true: nothing changed.
        unchanged: bool,
    },
    /// The control socket stopped serving (its wait failed).
    ControlFailed {
        /// Why.
        error: String,
    },
    /// The metrics endpoint could not be served.
    MetricsFailed {
        /// Where it should listen.
        address: String,
        /// Why.
        error: String,
    },
    /// `--remove-on-exit` deleted the ruleset (or could not).
    RulesetRemoved {
        /// Whether it was deleted.
        ok: bool,
    },
    /// The agent stopped cleanly.
    AgentStopped,
    /// A lease ended but its pair could not leave the `endpoints` set.
    EndpointsUpdateFailed {
        /// Why.
        error: String,
    },
    /// Security events cannot be received (the NFLOG group): the rules
    /// still drop, but nothing reports.
    EventsUnavailable {
        /// The NFLOG group.
        nflog_group: u16,
        /// Why.
        error: String,
    },
    /// The kernel dropped log messages (a flood outran the agent).
    EventsLost {
        /// How many since the last report.
        count: u64,
    },

    // --- Security events.
    /// Many distinct MACs asked for leases within a window.
    DhcpStarvation {
        /// Distinct MACs seen (capped at the threshold).
        clients: u64,
        /// DISCOVERs refused for an empty pool in the window.
        pool_exhausted: u64,
        /// The window.
        window_secs: u64,
    },
    /// A packet from the internal side whose (address, MAC) pair is not
    /// in `endpoints` (IPv4) or `endpoints6` (IPv6).
    Spoofing {
        /// The source address it used.
        source_ip: IpAddr,
        /// The source MAC it used.
        source_mac: MacAddr,
        /// Whose MAC that is (a VM, or a lease's host name).
        mac_of: Option<String>,
        /// Whose address that is.
        ip_of: Option<String>,
    },
    /// A DHCP answer (UDP 67 to 68) or DHCPv6 server message (UDP 547
    /// to 546) arrived from the internal side; the envelope's `vm` names
    /// the sender when known.
    RogueDhcpServer {
        /// Its source address.
        ip: IpAddr,
        /// Its source MAC.
        mac: MacAddr,
    },
    /// A router advertisement arrived from the internal side, where only
    /// the net-vm advertises; the envelope's `vm` names the sender when
    /// known.
    RogueRouterAdvert {
        /// Its source address (link-local, normally).
        ip: Ipv6Addr,
        /// Its source MAC.
        mac: MacAddr,
    },
    /// A new connection the policy refuses.
    PolicyDrop(Flow),
    /// A new VM-to-VM connection the policy allows (for audit).
    FlowAllowed(Flow),
    /// One uplink source tried many refused ports within a window.
    PortScan {
        /// The source.
        source: IpAddr,
        /// Distinct ports it tried.
        ports: u64,
        /// The window.
        window_secs: u64,
    },

    /// The DHCP server's lease events, as its engine reports them:
    /// `lease_granted` (ip, mac, client, hostname, until in ms),
    /// `lease_released`, `lease_expired`, `address_declined` (ip, mac),
    /// `pool_exhausted` (mac). Untagged here: the engine's type writes
    /// its own `event`.
    #[serde(untagged)]
    Lease(netvm_dhcp::Event),
}

/// What a `ready` event says, by part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Ready {
    /// The agent: every part started.
    Agent {
        /// The internal interface.
        internal: String,
        /// The uplink.
        uplink: String,
        /// The control socket.
        control: PathBuf,
    },
    /// The DHCP server: journal replayed, sockets open.
    Dhcp {
        /// The interface served.
        interface: String,
        /// The server's address.
        server: Ipv4Addr,
        /// The lease journal.
        journal: PathBuf,
        /// Journal records replayed.
        records_replayed: u64,
        /// Live leases after the replay.
        leases: u64,
        /// Damaged bytes at the journal's end, ignored.
        ignored_bytes: u64,
        /// Where the damaged journal was copied, if it was.
        damaged_copy: Option<PathBuf>,
    },
    /// The DNS server.
    Dns {
        /// `address:53`.
        listen: String,
        /// The interface served.
        interface: String,
        /// `address:port` each.
        upstreams: Vec<String>,
        /// Names in the internal zone.
        names: u64,
    },
}

/// One interface rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Renamed {
    /// The name it had.
    pub from: String,
    /// The name it has.
    pub to: String,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Changes {
    /// VMs added.
    pub vms_added: Vec<String>,
    /// VMs removed.
    pub vms_removed: Vec<String>,
    /// VMs whose description changed.
    pub vms_changed: Vec<String>,
    /// Whether `[dhcp]` changed.
    pub dhcp_changed: bool,
    /// Whether `[dns]` changed.
    pub dns_changed: bool,
    /// Whether the uplink changed.
    pub uplink_changed: bool,
}

/// A connection between two addresses (`policy_drop`, `flow_allowed`),
/// both IPv4 or both IPv6.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Flow {
    /// Its source.
    pub from: IpAddr,
    /// The VM (or lease host name) with that address.
    pub from_vm: Option<String>,
    /// Its destination.
    pub to: IpAddr,
    /// The VM with that address.
    pub to_vm: Option<String>,
    /// The protocol.
    pub proto: Proto,
    /// The destination port.
    pub port: Option<u16>,
}

/// A transport protocol: its name when it has one (`tcp`, `udp`,
/// `icmp`, `icmpv6`), otherwise its number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Proto {
    /// `tcp`, `udp`, `icmp`, `icmpv6`.
    Name(String),
    /// Another protocol's number.
    Number(u8),
}

impl Proto {
    /// The protocol numbered `number` (IANA).
    pub fn from_number(number: u8) -> Proto {
        match number {
            6 => Proto::Name("tcp".to_owned()),
            17 => Proto::Name("udp".to_owned()),
            1 => Proto::Name("icmp".to_owned()),
            58 => Proto::Name("icmpv6".to_owned()),
            other => Proto::Number(other),
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Event {
    /// `kind`, now, with its class and severity.
    pub fn new(kind: Kind) -> Event {
        Event::at(unix_ms(), kind)
    }

    /// `kind` at `time_ms` (ms since the epoch), with its class and
    /// severity.
    pub fn at(time_ms: u64, kind: Kind) -> Event {
        Event {
            seq: None,
            time_ms,
            class: kind.class(),
            severity: kind.severity(),
            vm: None,
            kind,
        }
    }

    /// The same event about `vm` (the envelope's subject), if known.
    pub fn about(mut self, vm: Option<String>) -> Event {
        self.vm = vm;
        self
    }

    /// The kind's name, as under `event`.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// One JSON line (without the newline).
    pub fn to_line(&self) -> String {
        // Every field serializes (strings, numbers, JSON values): this
        // cannot fail; say so in the line if it ever did.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"event":"unserializable","error":"{}"}}"#,
                e.to_string().escape_default()
            )
        })
    }
}

impl From<Kind> for Event {
    fn from(kind: Kind) -> Event {
        Event::new(kind)
    }
}

impl Kind {
    /// The name written under `event`.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Lease(lease) => match lease {
                netvm_dhcp::Event::LeaseGranted { .. } => "lease_granted",
                netvm_dhcp::Event::LeaseReleased { .. } => "lease_released",
                netvm_dhcp::Event::LeaseExpired { .. } => "lease_expired",
                netvm_dhcp::Event::AddressDeclined { .. } => "address_declined",
                netvm_dhcp::Event::PoolExhausted { .. } => "pool_exhausted",
            },
            Kind::LeaseRefused { .. } => "lease_refused",
            Kind::JournalError { .. } => "journal_error",
            Kind::JournalCompacted { .. } => "journal_compacted",
            Kind::Ready(_) => "ready",
            Kind::Counters { .. } => "counters",
            Kind::Stopped { .. } => "stopped",
            Kind::EventsSuppressed { .. } => "events_suppressed",
            Kind::DnsUpstreams { .. } => "dns_upstreams",
            Kind::UplinkBound { .. } => "uplink_bound",
            Kind::UplinkLost { .. } => "uplink_lost",
            Kind::UplinkStopped { .. } => "uplink_stopped",
            Kind::UplinkUp { .. } => "uplink_up",
            Kind::UplinkDown { .. } => "uplink_down",
            Kind::UplinkSwitched { .. } => "uplink_switched",
            Kind::UplinkFailed { .. } => "uplink_failed",
            Kind::WifiConnected { .. } => "wifi_connected",
            Kind::WifiDisconnected { .. } => "wifi_disconnected",
            Kind::WifiFailed { .. } => "wifi_failed",
            Kind::Ipv6Uplink { .. } => "ipv6_uplink",
            Kind::ClatFailed { .. } => "clat_failed",
            Kind::Lease6 { .. } => "lease6",
            Kind::UplinkIpv6Failed { .. } => "uplink_ipv6_failed",
            Kind::InterfacesRenamed { .. } => "interfaces_renamed",
            Kind::DataPlaneApplied { .. } => "data_plane_applied",
            Kind::PrivilegesDropped { .. } => "privileges_dropped",
            Kind::Reloaded { .. } => "reloaded",
            Kind::ReloadFailed { .. } => "reload_failed",
            Kind::ControlFailed { .. } => "control_failed",
            Kind::MetricsFailed { .. } => "metrics_failed",
            Kind::RulesetRemoved { .. } => "ruleset_removed",
            Kind::AgentStopped => "agent_stopped",
            Kind::EndpointsUpdateFailed { .. } => "endpoints_update_failed",
            Kind::EventsUnavailable { .. } => "events_unavailable",
            Kind::EventsLost { .. } => "events_lost",
            Kind::DhcpStarvation { .. } => "dhcp_starvation",
            Kind::Spoofing { .. } => "spoofing",
            Kind::RogueDhcpServer { .. } => "rogue_dhcp_server",
            Kind::RogueRouterAdvert { .. } => "rogue_router_advert",
            Kind::PolicyDrop(_) => "policy_drop",
            Kind::FlowAllowed(_) => "flow_allowed",
            Kind::PortScan { .. } => "port_scan",
        }
    }

    /// Security events (rate-limited and kept apart by the agent): what
    /// the watcher and the starvation detector report, and the lease
    /// events a client can cause as fast as it sends.
    pub fn class(&self) -> Class {
        match self {
            Kind::DhcpStarvation { .. }
            | Kind::Spoofing { .. }
            | Kind::RogueDhcpServer { .. }
            | Kind::RogueRouterAdvert { .. }
            | Kind::PolicyDrop(_)
            | Kind::FlowAllowed(_)
            | Kind::PortScan { .. }
            | Kind::Lease(
                netvm_dhcp::Event::PoolExhausted { .. } | netvm_dhcp::Event::AddressDeclined { .. },
            )
            | Kind::LeaseRefused { .. }
            | Kind::EndpointsUpdateFailed { .. }
            | Kind::EventsUnavailable { .. }
            | Kind::EventsLost { .. } => Class::Security,
            _ => Class::Info,
        }
    }

    /// How much it matters.
    pub fn severity(&self) -> Severity {
        match self {
            Kind::JournalError { .. }
            | Kind::ControlFailed { .. }
            | Kind::MetricsFailed { .. }
            | Kind::EndpointsUpdateFailed { .. }
            | Kind::EventsUnavailable { .. } => Severity::Error,
            Kind::DhcpStarvation { .. }
            | Kind::Spoofing { .. }
            | Kind::RogueDhcpServer { .. }
            | Kind::RogueRouterAdvert { .. }
            | Kind::PortScan { .. }
            | Kind::Lease(netvm_dhcp::Event::PoolExhausted { .. })
            | Kind::LeaseRefused { .. }
            | Kind::ClatFailed { .. }
            | Kind::UplinkFailed { .. }
            | Kind::WifiFailed { .. }
            | Kind::UplinkIpv6Failed { .. }
            | Kind::EventsLost { .. }
            | Kind::ReloadFailed { .. } => Severity::Warning,
            Kind::PolicyDrop(_)
            | Kind::Lease(netvm_dhcp::Event::AddressDeclined { .. })
            | Kind::EventsSuppressed { .. }
            | Kind::UplinkLost { .. }
            | Kind::UplinkDown { .. }
            | Kind::UplinkSwitched { .. }
            | Kind::WifiDisconnected { .. }
            | Kind::RulesetRemoved { .. } => Severity::Notice,
            _ => Severity::Info,
        }
    }
}

impl From<&netvm_dhcp::Event> for Kind {
    fn from(event: &netvm_dhcp::Event) -> Kind {
        Kind::Lease(event.clone())
    }
}

/// The JSON Schema of an event line (`netvm schema --events`).
pub fn events_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Event)).unwrap_or_default()
}

#[cfg(test)]
mod tests;
