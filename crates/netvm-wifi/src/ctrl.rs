//! wpa_supplicant's control protocol (hostap 2.10, Debian 12), without
//! sockets: each command is one datagram of text, each reply one
//! datagram, each event one datagram `<level>TEXT` on an attached socket.
//!
//! Commands are built from typed values: an SSID, a PSK or an SAE
//! password always goes as a hex string (the protocol's third value
//! syntax), so no byte of it can end the value or start another command,
//! and a reply or event is read as untrusted text: anything malformed is
//! `None` or skipped, never a panic. Replies are at most 4096 bytes
//! (wpa_supplicant cuts `SCAN_RESULTS` there); events may be longer.

use std::fmt::Write as _;

/// A network's id in wpa_supplicant.
pub type NetworkId = u32;

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Which key management a network uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMgmt {
    /// WPA2-Personal (`WPA-PSK`).
    WpaPsk,
    /// WPA3-Personal (`SAE`; management frame protection required).
    Sae,
    /// Either (WPA3 transition mode: `WPA-PSK SAE`).
    WpaPskOrSae,
}

/// One setting of a network (`SET_NETWORK id NAME VALUE`).
#[derive(Clone, PartialEq, Eq)]
pub enum Field {
    /// Its SSID (raw bytes).
    Ssid(Vec<u8>),
    /// The WPA2 PSK (see [`crate::psk`]).
    Psk([u8; 32]),
    /// The WPA3 (SAE) password.
    SaePassword(String),
    /// Key management.
    KeyMgmt(KeyMgmt),
    /// Management frame protection: 0 off, 1 optional, 2 required.
    Ieee80211w(u8),
    /// Higher is preferred among networks in range.
    Priority(u32),
    /// 0: the NIC's own MAC; 1: a random one per network; 2: random but
    /// keeping the vendor part.
    MacAddr(u8),
    /// Probe for it by name (hidden networks).
    ScanSsid(bool),
}

impl std::fmt::Debug for Field {
    /// Keys are never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::Psk(_) => f.write_str("Psk(..)"),
            Field::SaePassword(_) => f.write_str("SaePassword(..)"),
            Field::Ssid(s) => write!(f, "Ssid({:?})", String::from_utf8_lossy(s)),
            Field::KeyMgmt(k) => write!(f, "KeyMgmt({k:?})"),
            Field::Ieee80211w(v) => write!(f, "Ieee80211w({v})"),
            Field::Priority(v) => write!(f, "Priority({v})"),
            Field::MacAddr(v) => write!(f, "MacAddr({v})"),
            Field::ScanSsid(v) => write!(f, "ScanSsid({v})"),
        }
    }
}

impl Field {
    fn text(&self) -> String {
        match self {
            Field::Ssid(ssid) => format!("ssid {}", hex(ssid)),
            Field::Psk(psk) => format!("psk {}", hex(psk)),
            Field::SaePassword(p) => format!("sae_password {}", hex(p.as_bytes())),
            Field::KeyMgmt(KeyMgmt::WpaPsk) => "key_mgmt WPA-PSK".to_owned(),
            Field::KeyMgmt(KeyMgmt::Sae) => "key_mgmt SAE".to_owned(),
            Field::KeyMgmt(KeyMgmt::WpaPskOrSae) => "key_mgmt WPA-PSK SAE".to_owned(),
            Field::Ieee80211w(v) => format!("ieee80211w {}", v.min(&2)),
            Field::Priority(v) => format!("priority {v}"),
            Field::MacAddr(v) => format!("mac_addr {}", v.min(&2)),
            Field::ScanSsid(v) => format!("scan_ssid {}", u8::from(*v)),
        }
    }

    /// Whether the value is a secret (its command must not be logged).
    pub fn is_secret(&self) -> bool {
        matches!(self, Field::Psk(_) | Field::SaePassword(_))
    }
}

/// A command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `PING` → `PONG`.
    Ping,
    /// `ATTACH`: this socket receives events.
    Attach,
    /// `SCAN`.
    Scan,
    /// `SCAN_RESULTS`.
    ScanResults,
    /// `STATUS`.
    Status,
    /// `ADD_NETWORK` → its id (disabled until enabled or selected).
    AddNetwork,
    /// `SET_NETWORK id …`.
    SetNetwork(NetworkId, Field),
    /// `ENABLE_NETWORK id`.
    EnableNetwork(NetworkId),
    /// `DISABLE_NETWORK id`.
    DisableNetwork(NetworkId),
    /// `SELECT_NETWORK id`: this one only, now.
    SelectNetwork(NetworkId),
    /// `REMOVE_NETWORK id`.
    RemoveNetwork(NetworkId),
    /// `REMOVE_NETWORK all`.
    RemoveAllNetworks,
    /// `DISCONNECT`.
    Disconnect,
    /// `RECONNECT`.
    Reconnect,
}

impl Command {
    /// The datagram to send.
    pub fn text(&self) -> String {
        match self {
            Command::Ping => "PING".to_owned(),
            Command::Attach => "ATTACH".to_owned(),
            Command::Scan => "SCAN".to_owned(),
            Command::ScanResults => "SCAN_RESULTS".to_owned(),
            Command::Status => "STATUS".to_owned(),
            Command::AddNetwork => "ADD_NETWORK".to_owned(),
            Command::SetNetwork(id, field) => format!("SET_NETWORK {id} {}", field.text()),
            Command::EnableNetwork(id) => format!("ENABLE_NETWORK {id}"),
            Command::DisableNetwork(id) => format!("DISABLE_NETWORK {id}"),
            Command::SelectNetwork(id) => format!("SELECT_NETWORK {id}"),
            Command::RemoveNetwork(id) => format!("REMOVE_NETWORK {id}"),
            Command::RemoveAllNetworks => "REMOVE_NETWORK all".to_owned(),
            Command::Disconnect => "DISCONNECT".to_owned(),
            Command::Reconnect => "RECONNECT".to_owned(),
        }
    }
}

/// A reply that says no.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `FAIL`.
    #[error("wpa_supplicant refused the command")]
    Fail,
    /// `FAIL-BUSY` (a scan is running).
    #[error("wpa_supplicant is busy")]
    Busy,
    /// `UNKNOWN COMMAND`.
    #[error("wpa_supplicant does not know the command")]
    Unknown,
    /// Something else where `OK` or an id was due.
    #[error("unexpected reply {0:?}")]
    Unexpected(String),
}

fn refusal(reply: &str) -> Refused {
    match reply.trim_end() {
        "FAIL" => Refused::Fail,
        "FAIL-BUSY" => Refused::Busy,
        "UNKNOWN COMMAND" => Refused::Unknown,
        other => Refused::Unexpected(other.chars().take(80).collect()),
    }
}

/// An `OK` reply (`PONG` for `PING`).
pub fn expect_ok(reply: &str) -> Result<(), Refused> {
    match reply.trim_end() {
        "OK" | "PONG" => Ok(()),
        _ => Err(refusal(reply)),
    }
}

/// `ADD_NETWORK`'s reply: the new id.
pub fn network_id(reply: &str) -> Result<NetworkId, Refused> {
    reply.trim_end().parse().map_err(|_| refusal(reply))
}

/// Decodes wpa_supplicant's escaping of SSIDs (`printf_encode`): `\"`,
/// `\\`, `\e`, `\n`, `\r`, `\t`, `\xNN`; other bytes as they are. A
/// malformed escape is kept as written.
pub fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 >= bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let decoded = match bytes[i + 1] {
            b'"' => Some((b'"', 2)),
            b'\\' => Some((b'\\', 2)),
            b'e' => Some((0x1b, 2)),
            b'n' => Some((b'\n', 2)),
            b'r' => Some((b'\r', 2)),
            b't' => Some((b'\t', 2)),
            b'x' => bytes
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .map(|b| (b, 4)),
            _ => None,
        };
        match decoded {
            Some((b, used)) => {
                out.push(b);
                i += used;
            }
            None => {
                out.push(b'\\');
                i += 1;
            }
        }
    }
    out
}

/// What `STATUS` says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// `COMPLETED` when connected; `SCANNING`, `ASSOCIATING`,
    /// `4WAY_HANDSHAKE`, `DISCONNECTED`, ...
    pub wpa_state: String,
    /// The access point, when associated.
    pub bssid: Option<String>,
    /// The network, when associated (raw bytes).
    pub ssid: Option<Vec<u8>>,
    /// Its id, when associated.
    pub id: Option<NetworkId>,
    /// The frequency in MHz, when associated.
    pub freq: Option<u32>,
    /// `WPA2-PSK`, `SAE`, ..., when associated.
    pub key_mgmt: Option<String>,
    /// The interface's MAC now (random with `mac_addr`).
    pub address: Option<String>,
}

impl Status {
    /// Connected, keys installed.
    pub fn connected(&self) -> bool {
        self.wpa_state == "COMPLETED"
    }
}

/// Reads a `STATUS` reply; unknown lines are skipped.
pub fn parse_status(reply: &str) -> Status {
    let mut status = Status::default();
    for line in reply.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "wpa_state" => status.wpa_state = value.to_owned(),
            "bssid" => status.bssid = Some(value.to_owned()),
            "ssid" => status.ssid = Some(unescape(value)),
            "id" => status.id = value.parse().ok(),
            "freq" => status.freq = value.parse().ok(),
            "key_mgmt" => status.key_mgmt = Some(value.to_owned()),
            "address" => status.address = Some(value.to_owned()),
            _ => {}
        }
    }
    status
}

/// One network in range (`SCAN_RESULTS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bss {
    /// The access point.
    pub bssid: String,
    /// MHz.
    pub freq: u32,
    /// dBm.
    pub signal: i32,
    /// `[WPA2-PSK-CCMP][ESS]`, ...
    pub flags: String,
    /// Raw bytes.
    pub ssid: Vec<u8>,
}

impl Bss {
    /// What security it asks for, as the agent reports it.
    pub fn security(&self) -> &'static str {
        let f = &self.flags;
        if f.contains("SAE") && f.contains("PSK") {
            "wpa2/wpa3"
        } else if f.contains("SAE") {
            "wpa3"
        } else if f.contains("PSK") {
            "wpa2"
        } else if f.contains("EAP") {
            "enterprise"
        } else if f.contains("WEP") {
            "wep"
        } else {
            "open"
        }
    }
}

/// Reads a `SCAN_RESULTS` reply (a header line, then one TAB-separated
/// line per network); malformed lines are skipped.
pub fn parse_scan_results(reply: &str) -> Vec<Bss> {
    reply
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut parts = line.splitn(5, '\t');
            let bssid = parts.next()?.to_owned();
            let freq = parts.next()?.parse().ok()?;
            let signal = parts.next()?.parse().ok()?;
            let flags = parts.next()?.to_owned();
            let ssid = unescape(parts.next().unwrap_or(""));
            (bssid.len() == 17).then_some(Bss {
                bssid,
                freq,
                signal,
                flags,
                ssid,
            })
        })
        .collect()
}

/// Why wpa_supplicant set a network aside for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisabledReason {
    /// WPA2: the 4-way handshake failed: most likely a wrong password.
    WrongKey,
    /// Authentication failed.
    AuthFailed,
    /// The connection failed (WPA3 with a wrong password ends here).
    ConnFailed,
    /// No key to try.
    NoPsk,
    /// Another reason.
    Other(String),
}

/// An event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Connected (keys installed) to `bssid`, network `id`.
    Connected {
        /// The access point.
        bssid: String,
        /// The network's id.
        id: Option<NetworkId>,
    },
    /// The link to the access point ended.
    Disconnected {
        /// The access point.
        bssid: String,
        /// IEEE 802.11 reason code.
        reason: u16,
        /// We ended it.
        locally: bool,
    },
    /// A network is set aside for `duration` seconds.
    TempDisabled {
        /// Its id.
        id: NetworkId,
        /// Its SSID.
        ssid: Vec<u8>,
        /// Failures in a row.
        failures: u32,
        /// Seconds.
        duration: u32,
        /// Why.
        reason: DisabledReason,
    },
    /// It may be tried again.
    Reenabled {
        /// Its id.
        id: NetworkId,
    },
    /// A scan began.
    ScanStarted,
    /// A scan's results are ready.
    ScanResults,
    /// A scan found no enabled network.
    NetworkNotFound,
    /// An access point refused authentication (WPA3 with a wrong
    /// password: `auth_type` 3, `auth_transaction` 2, status 1).
    AuthReject {
        /// The access point.
        bssid: String,
        /// IEEE 802.11 authentication algorithm.
        auth_type: u16,
        /// The transaction number refused.
        auth_transaction: u16,
        /// The status code.
        status: u16,
    },
    /// Anything else (kept as text, up to 200 characters).
    Other(String),
}

/// The `key=value` words of an event line.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split(' ')
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// A number in the `key=value` words of an event line.
fn num<T: std::str::FromStr>(text: &str, key: &str) -> Option<T> {
    field(text, key).and_then(|v| v.parse().ok())
}

/// The quoted `ssid="…"` of an event (its escaping undone).
fn quoted_ssid(text: &str) -> Vec<u8> {
    let Some(start) = text.find("ssid=\"") else {
        return Vec::new();
    };
    let rest = &text[start + 6..];
    // The value ends at the first quote not escaped.
    let mut end = rest.len();
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => {
                end = i;
                break;
            }
            _ => escaped = false,
        }
    }
    unescape(&rest[..end])
}

/// Reads one event datagram (`<3>CTRL-EVENT-…`); `None` for one that is
/// not an event (no `<level>` prefix) or not text.
pub fn parse_event(datagram: &[u8]) -> Option<Event> {
    let text = std::str::from_utf8(datagram).ok()?;
    let rest = text.strip_prefix('<')?;
    let close = rest.find('>')?;
    if close == 0 || !rest[..close].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let body = rest[close + 1..].trim_end();
    let word = body.split(' ').next().unwrap_or("");
    Some(match word {
        "CTRL-EVENT-CONNECTED" => Event::Connected {
            bssid: body
                .split(' ')
                .skip_while(|w| *w != "to")
                .nth(1)
                .unwrap_or("")
                .to_owned(),
            id: field(body, "[id").and_then(|v| v.parse().ok()),
        },
        "CTRL-EVENT-DISCONNECTED" => Event::Disconnected {
            bssid: field(body, "bssid").unwrap_or("").to_owned(),
            reason: num(body, "reason").unwrap_or(0),
            locally: field(body, "locally_generated") == Some("1"),
        },
        "CTRL-EVENT-SSID-TEMP-DISABLED" => Event::TempDisabled {
            id: num(body, "id")?,
            ssid: quoted_ssid(body),
            failures: num(body, "auth_failures").unwrap_or(0),
            duration: num(body, "duration").unwrap_or(0),
            reason: match field(body, "reason").unwrap_or("") {
                "WRONG_KEY" => DisabledReason::WrongKey,
                "AUTH_FAILED" => DisabledReason::AuthFailed,
                "CONN_FAILED" => DisabledReason::ConnFailed,
                "NO_PSK_AVAILABLE" => DisabledReason::NoPsk,
                other => DisabledReason::Other(other.chars().take(40).collect()),
            },
        },
        "CTRL-EVENT-SSID-REENABLED" => Event::Reenabled {
            id: num(body, "id")?,
        },
        "CTRL-EVENT-SCAN-STARTED" => Event::ScanStarted,
        "CTRL-EVENT-SCAN-RESULTS" => Event::ScanResults,
        "CTRL-EVENT-NETWORK-NOT-FOUND" => Event::NetworkNotFound,
        "CTRL-EVENT-AUTH-REJECT" => Event::AuthReject {
            bssid: body.split(' ').nth(1).unwrap_or("").to_owned(),
            auth_type: num(body, "auth_type").unwrap_or(0),
            auth_transaction: num(body, "auth_transaction").unwrap_or(0),
            status: num(body, "status_code").unwrap_or(0),
        },
        _ => Event::Other(body.chars().take(200).collect()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// wpa_supplicant's `printf_encode`, for the round trip.
    fn escape(bytes: &[u8]) -> String {
        let mut out = String::new();
        for &b in bytes {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                0x1b => out.push_str("\\e"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                32..=126 => out.push(b as char),
                _ => out.push_str(&format!("\\x{b:02x}")),
            }
        }
        out
    }

    #[test]
    fn commands_put_ssids_and_keys_in_hex() {
        let ssid = Command::SetNetwork(0, Field::Ssid(b"caf\xc3\xa9 \"x\"\nSCAN".to_vec()));
        assert_eq!(
            ssid.text(),
            "SET_NETWORK 0 ssid 636166c3a9202278220a5343414e"
        );
        let psk = Command::SetNetwork(3, Field::Psk([0xab; 32]));
        assert_eq!(psk.text(), format!("SET_NETWORK 3 psk {}", "ab".repeat(32)));
        assert_eq!(
            Command::SetNetwork(1, Field::SaePassword("pa ss".into())).text(),
            "SET_NETWORK 1 sae_password 7061207373"
        );
        assert_eq!(
            Command::SetNetwork(1, Field::KeyMgmt(KeyMgmt::WpaPskOrSae)).text(),
            "SET_NETWORK 1 key_mgmt WPA-PSK SAE"
        );
        assert_eq!(
            Command::SetNetwork(1, Field::MacAddr(9)).text(),
            "SET_NETWORK 1 mac_addr 2"
        );
        assert!(!format!("{:?}", Field::Psk([1; 32])).contains("01"));
        assert!(!format!("{:?}", Field::SaePassword("hunter22".into())).contains("hunter"));
    }

    #[test]
    fn replies_are_read_or_refused() {
        assert_eq!(expect_ok("OK\n"), Ok(()));
        assert_eq!(expect_ok("PONG\n"), Ok(()));
        assert_eq!(expect_ok("FAIL-BUSY\n"), Err(Refused::Busy));
        assert_eq!(expect_ok("FAIL\n"), Err(Refused::Fail));
        assert_eq!(network_id("7\n"), Ok(7));
        assert_eq!(network_id("UNKNOWN COMMAND\n"), Err(Refused::Unknown));
    }

    #[test]
    fn status_and_scan_results_as_hostap_2_10_writes_them() {
        let status = parse_status(
            "bssid=02:00:00:00:01:00\nfreq=2412\nssid=netvm \\\"lab\\\"\nid=0\nmode=station\n\
             pairwise_cipher=CCMP\ngroup_cipher=CCMP\nkey_mgmt=WPA2-PSK\nwpa_state=COMPLETED\n\
             ip_address=10.7.0.120\naddress=02:00:00:00:00:00\nuuid=1234\n",
        );
        assert!(status.connected());
        assert_eq!(status.ssid.as_deref(), Some(&b"netvm \"lab\""[..]));
        assert_eq!((status.id, status.freq), (Some(0), Some(2412)));
        assert_eq!(status.key_mgmt.as_deref(), Some("WPA2-PSK"));
        let scanning = parse_status("wpa_state=SCANNING\naddress=02:00:00:00:00:00\n");
        assert!(!scanning.connected());
        assert_eq!(scanning.bssid, None);

        let results = parse_scan_results(
            "bssid / frequency / signal level / flags / ssid\n\
             02:00:00:00:01:00\t2412\t-30\t[WPA2-PSK-CCMP][ESS]\tnetvm-test\n\
             02:00:00:00:02:00\t2437\t-61\t[WPA2-SAE-CCMP][SAE-H2E][ESS]\tcaf\\xc3\\xa9\n\
             02:00:00:00:03:00\t2462\t-70\t[ESS]\t\n\
             broken line\n",
        );
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].security(), "wpa2");
        assert_eq!(results[1].ssid, "café".as_bytes());
        assert_eq!(results[1].security(), "wpa3");
        assert_eq!(results[2].security(), "open");
        assert!(results[2].ssid.is_empty(), "a hidden network");
    }

    #[test]
    fn events_as_hostap_2_10_sends_them() {
        assert_eq!(
            parse_event(b"<3>CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed [id=0 id_str=]"),
            Some(Event::Connected {
                bssid: "02:00:00:00:01:00".into(),
                id: Some(0)
            })
        );
        assert_eq!(
            parse_event(
                b"<3>CTRL-EVENT-DISCONNECTED bssid=02:00:00:00:01:00 reason=3 locally_generated=1"
            ),
            Some(Event::Disconnected {
                bssid: "02:00:00:00:01:00".into(),
                reason: 3,
                locally: true
            })
        );
        assert_eq!(
            parse_event(b"<3>CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid=\"a \\\"b\\\" c\" auth_failures=1 duration=10 reason=WRONG_KEY"),
            Some(Event::TempDisabled {
                id: 0,
                ssid: b"a \"b\" c".to_vec(),
                failures: 1,
                duration: 10,
                reason: DisabledReason::WrongKey
            })
        );
        assert_eq!(
            parse_event(b"<3>CTRL-EVENT-AUTH-REJECT 02:00:00:00:01:00 auth_type=3 auth_transaction=2 status_code=1"),
            Some(Event::AuthReject {
                bssid: "02:00:00:00:01:00".into(),
                auth_type: 3,
                auth_transaction: 2,
                status: 1
            })
        );
        assert_eq!(
            parse_event(b"<3>CTRL-EVENT-NETWORK-NOT-FOUND"),
            Some(Event::NetworkNotFound)
        );
        assert_eq!(
            parse_event(b"<2>CTRL-EVENT-SCAN-RESULTS "),
            Some(Event::ScanResults)
        );
        assert_eq!(parse_event(b"OK\n"), None, "a reply, not an event");
        assert_eq!(parse_event(b"<>CTRL-EVENT-SCAN-RESULTS"), None);
        assert_eq!(
            parse_event(b"<3>CTRL-EVENT-SSID-REENABLED ssid=\"x\""),
            None,
            "no id"
        );
    }

    proptest! {
        /// Any SSID escaped as wpa_supplicant does reads back as itself.
        #[test]
        fn escaped_ssids_read_back(ssid in proptest::collection::vec(any::<u8>(), 0..=32)) {
            prop_assert_eq!(unescape(&escape(&ssid)), ssid.clone());
            let line = format!("<3>CTRL-EVENT-SSID-TEMP-DISABLED id=4 ssid=\"{}\" auth_failures=2 duration=20 reason=CONN_FAILED", escape(&ssid));
            match parse_event(line.as_bytes()) {
                Some(Event::TempDisabled { id: 4, ssid: read, .. }) => prop_assert_eq!(read, ssid),
                other => prop_assert!(false, "{:?}", other),
            }
        }

        /// Whatever bytes arrive, reading them never panics.
        #[test]
        fn any_bytes_are_read_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_event(&bytes);
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_status(&text);
            let _ = parse_scan_results(&text);
            let _ = unescape(&text);
            let _ = network_id(&text);
        }

        /// A command is one line whatever the SSID or password holds.
        #[test]
        fn commands_are_one_line(ssid in proptest::collection::vec(any::<u8>(), 0..=32), password in ".{0,64}", id in any::<u32>()) {
            for field in [Field::Ssid(ssid.clone()), Field::SaePassword(password.clone()), Field::Psk([7; 32])] {
                let text = Command::SetNetwork(id, field).text();
                prop_assert!(!text.contains('\n') && !text.contains('\0') && !text.contains('"'), "{}", text);
                prop_assert_eq!(text.split(' ').count(), 4);
            }
        }
    }
}
