//! The agent's control protocol: one [`Request`] line per connection,
//! one [`Response`] line back; after an `events` request with `follow`,
//! one [`Event`] line per event as it happens.
//!
//! Requests: `{"command":"status"}`, `{"command":"leases"}`,
//! `{"command":"uplinks"}`,
//! `{"command":"events","last":N,"follow":BOOL,"security":BOOL}`,
//! `{"command":"reload"}`. Answers: `{"ok":true,"status":{…}}` (or
//! `leases`, `events`, `reload`), or `{"ok":false,"error":"…"}`.

use crate::Event;
use netvm_description::values::MacAddr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Past events an `events` request returns unless it says otherwise.
pub const DEFAULT_LAST: usize = 100;

fn default_last() -> usize {
    DEFAULT_LAST
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// `netvm status`: the agent's state.
    Status,
    /// `netvm leases`: the live DHCP leases.
    Leases,
    /// `netvm uplinks`: each uplink's state, and which is active.
    Uplinks,
    /// `netvm events`: past events, then (with `follow`) new ones.
    Events {
        /// How many past events.
        #[serde(default = "default_last")]
        last: usize,
        /// Keep the connection and stream new events, one per line.
        #[serde(default)]
        follow: bool,
        /// Past events from the security history only.
        #[serde(default)]
        security: bool,
    },
    /// `netvm reload`: read the description again.
    Reload,
    /// `netvm wifi list`: each Wi-Fi uplink's state and networks.
    WifiList,
    /// `netvm wifi scan`: the networks in range of each Wi-Fi uplink.
    WifiScan,
    /// `netvm wifi connect SSID`: save the network (with its
    /// passphrase) and join it now.
    WifiConnect {
        /// The network.
        ssid: String,
        /// Its passphrase (8 to 63 printable ASCII characters). Never
        /// shown: its `Debug` is redacted, and the agent keeps it only in
        /// its saved-networks file (mode 0600).
        passphrase: Passphrase,
        /// The Wi-Fi uplink (default: the first).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uplink: Option<String>,
    },
    /// `netvm wifi forget SSID`: drop a saved network.
    WifiForget {
        /// The network.
        ssid: String,
        /// The Wi-Fi uplink (default: the first).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uplink: Option<String>,
    },
}

/// A Wi-Fi passphrase: sent as a plain JSON string, never shown by
/// `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Passphrase(pub String);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

impl Request {
    /// Whether the request changes the agent (so a peer that may only
    /// read is refused it): `reload`, `wifi_connect`, `wifi_forget`.
    /// Every other request reads.
    pub fn changes(&self) -> bool {
        match self {
            Request::Reload | Request::WifiConnect { .. } | Request::WifiForget { .. } => true,
            Request::Status
            | Request::Leases
            | Request::Uplinks
            | Request::Events { .. }
            | Request::WifiList
            | Request::WifiScan => false,
        }
    }
}

/// The agent's answer: `ok` and the field the request asked for, or
/// `ok: false` and `error`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Response {
    /// Whether the request was served.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The answer to `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The answer to `leases`, in address order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leases: Option<Vec<LeaseInfo>>,
    /// The answer to `uplinks`, in the description's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplinks: Option<Vec<UplinkInfo>>,
    /// The answer to `events`, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
    /// The answer to `reload`: the `reloaded` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<Event>,
    /// The answer to `wifi_list`, `wifi_connect` and `wifi_forget`: each
    /// Wi-Fi uplink as it is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wifi: Option<Vec<WifiInfo>>,
    /// The answer to `wifi_scan`, strongest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wifi_scan: Option<Vec<WifiSeen>>,
}

/// A Wi-Fi uplink (`netvm wifi list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WifiInfo {
    /// Its interface in the net-vm.
    pub uplink: String,
    /// wpa_supplicant's state (`COMPLETED` when connected, `SCANNING`,
    /// `DISCONNECTED`, ...), or `absent` / `not_running`.
    pub state: String,
    /// The network joined.
    pub ssid: Option<String>,
    /// The access point.
    pub bssid: Option<String>,
    /// The MAC it uses now (random with `random_mac`).
    pub address: Option<String>,
    /// The networks it may join, most preferred first.
    pub networks: Vec<WifiNetworkInfo>,
}

/// A network a Wi-Fi uplink may join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WifiNetworkInfo {
    /// Its name.
    pub ssid: String,
    /// `described` (in the description) or `saved` (`netvm wifi
    /// connect`).
    pub source: String,
    /// Higher is preferred.
    pub priority: u32,
}

/// A network in range (`netvm wifi scan`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WifiSeen {
    /// The uplink that saw it.
    pub uplink: String,
    /// Its name.
    pub ssid: String,
    /// The access point.
    pub bssid: String,
    /// dBm.
    pub signal: i32,
    /// MHz.
    pub freq: u32,
    /// `open`, `wpa2`, `wpa3`, `wpa2/wpa3`, ...
    pub security: String,
}

impl Response {
    /// A refusal.
    pub fn refused(why: impl Into<String>) -> Response {
        Response {
            error: Some(why.into()),
            ..Response::default()
        }
    }

    /// The answer to `status`.
    pub fn status(status: Status) -> Response {
        Response {
            ok: true,
            status: Some(status),
            ..Response::default()
        }
    }

    /// The answer to `leases`.
    pub fn leases(leases: Vec<LeaseInfo>) -> Response {
        Response {
            ok: true,
            leases: Some(leases),
            ..Response::default()
        }
    }

    /// The answer to the Wi-Fi requests that change or list networks.
    pub fn wifi(wifi: Vec<WifiInfo>) -> Response {
        Response {
            ok: true,
            wifi: Some(wifi),
            ..Response::default()
        }
    }

    /// The answer to `wifi_scan`.
    pub fn wifi_scan(seen: Vec<WifiSeen>) -> Response {
        Response {
            ok: true,
            wifi_scan: Some(seen),
            ..Response::default()
        }
    }

    /// The answer to `uplinks`.
    pub fn uplinks(uplinks: Vec<UplinkInfo>) -> Response {
        Response {
            ok: true,
            uplinks: Some(uplinks),
            ..Response::default()
        }
    }

    /// The answer to `events` (before any followed event).
    pub fn events(events: Vec<Event>) -> Response {
        Response {
            ok: true,
            events: Some(events),
            ..Response::default()
        }
    }

    /// The answer to `reload`.
    pub fn reload(reloaded: Event) -> Response {
        Response {
            ok: true,
            reload: Some(reloaded),
            ..Response::default()
        }
    }
}

/// The agent's state (`netvm status`; the metrics are made of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Status {
    /// The description file.
    pub description: PathBuf,
    /// `netvm` mode from the description.
    pub mode: String,
    /// Seconds since the agent started.
    pub uptime_secs: u64,
    /// The uplink.
    pub uplink: UplinkStatus,
    /// The VMs.
    pub vms: Vms,
    /// Counters of every part.
    pub counters: Counters,
    /// Successful reloads so far.
    pub reloads: u64,
    /// The last reload's outcome, if any.
    pub last_reload: Option<LastReload>,
}

/// The uplink as the agent last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UplinkStatus {
    /// Addressed from the description.
    Static,
    /// The DHCP client has no lease yet.
    Waiting,
    /// The lease ended or was refused.
    Lost,
    /// A DHCP lease.
    Bound {
        /// `address/prefix`.
        address: String,
        /// The default gateway, if any.
        router: Option<Ipv4Addr>,
        /// DNS servers.
        dns: Vec<Ipv4Addr>,
        /// The server that granted it.
        server: Ipv4Addr,
        /// Lease time in seconds.
        lease_secs: u32,
    },
}

/// The described VMs and how many others hold a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Vms {
    /// Every described VM.
    pub described: Vec<VmStatus>,
    /// Leases held by clients the description does not name.
    pub pool_clients: u64,
}

/// One described VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VmStatus {
    /// Its name.
    pub name: String,
    /// Its reserved address.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: MacAddr,
    /// Whether it holds its lease.
    pub lease: LeaseState,
    /// Seconds left on its lease, when it holds one.
    pub expires_in_secs: Option<u64>,
}

/// Whether a described VM holds its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// It does.
    Bound,
    /// It does not.
    None,
}

/// Counters of every part.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Counters {
    /// The DHCP server's (as in its `counters` event).
    pub dhcp: serde_json::Value,
    /// The DNS server's.
    pub dns: serde_json::Value,
    /// The ruleset's named counters.
    pub firewall: BTreeMap<String, FirewallCounter>,
    /// Why the ruleset's counters could not be read, if they could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall_error: Option<String>,
    /// The event stream's.
    pub events: EventCounts,
}

/// One nft named counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FirewallCounter {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The event stream's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct EventCounts {
    /// Events reported.
    pub reported: u64,
    /// Security events the rate limit refused.
    pub suppressed: u64,
}

/// How the last reload ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LastReload {
    /// Whether it was applied.
    pub ok: bool,
    /// What changed, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<crate::Changes>,
    /// Why not, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One live DHCP lease (`netvm leases`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LeaseInfo {
    /// The address.
    pub ip: Ipv4Addr,
    /// The holder's MAC.
    pub mac: MacAddr,
    /// The host name it sent, if any.
    pub hostname: Option<String>,
    /// The described VM with that MAC, if any.
    pub vm: Option<String>,
    /// Seconds left.
    pub expires_in_secs: u64,
}

/// Any line on the control socket: a request, an answer, or a followed
/// event. Only for the schema (`netvm schema --control`).
#[derive(JsonSchema)]
#[serde(untagged)]
#[schemars(title = "netvm control protocol line")]
#[allow(dead_code)]
enum Line {
    Request(Request),
    Response(Box<Response>),
    Event(Event),
}

/// The JSON Schema of the control protocol (`netvm schema --control`):
/// any line, a [`Request`], a [`Response`] or an [`Event`]; each is also
/// under `$defs`.
pub fn control_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Line)).unwrap_or_default()
}

/// One uplink (`netvm uplinks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UplinkInfo {
    /// Its interface in the net-vm.
    pub name: String,
    /// Lower is preferred.
    pub priority: u32,
    /// `absent`, `no_carrier`, `associating`, `addressing`, `up` or
    /// `failed`.
    pub state: String,
    /// Whether it carries the Internet now.
    pub active: bool,
    /// Whether it passed a probe since it was addressed.
    pub proven: bool,
    /// Probes failed in a row.
    pub failures: u32,
    /// Its IPv4 address, if it has one.
    pub address: Option<Ipv4Addr>,
    /// Its gateway, if any.
    pub router: Option<Ipv4Addr>,
}
