//! Round trips of every kind and of the control messages, the wire
//! format the readers rely on, and every sample against the schemas.

use super::control::{self, *};
use super::*;
use serde_json::{json, Value};

fn mac(last: u8) -> MacAddr {
    MacAddr([0x02, 0xad, 0, 0, 0, last])
}

const IP: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 101);
const IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x65);

/// One of every kind.
fn every_kind() -> Vec<Kind> {
    let flow = Flow {
        from: IP.into(),
        from_vm: Some("app-vm".into()),
        to: Ipv4Addr::new(192, 168, 100, 102).into(),
        to_vm: None,
        proto: Proto::from_number(6),
        port: Some(7001),
    };
    vec![
        Kind::Lease(netvm_dhcp::Event::LeaseGranted {
            ip: IP,
            mac: mac(0x65),
            client: netvm_dhcp::ClientKey::Mac(mac(0x65)),
            hostname: Some("app".into()),
            until: netvm_dhcp::Timestamp(1_764_769_000_000),
        }),
        Kind::Lease(netvm_dhcp::Event::LeaseGranted {
            ip: IP,
            mac: mac(0x66),
            client: netvm_dhcp::ClientKey::Id(vec![1, 2, 0xad]),
            hostname: None,
            until: netvm_dhcp::Timestamp(1),
        }),
        Kind::Lease(netvm_dhcp::Event::LeaseReleased {
            ip: IP,
            mac: mac(1),
        }),
        Kind::Lease(netvm_dhcp::Event::LeaseExpired {
            ip: IP,
            mac: mac(1),
        }),
        Kind::Lease(netvm_dhcp::Event::AddressDeclined {
            ip: IP,
            mac: mac(1),
        }),
        Kind::Lease(netvm_dhcp::Event::PoolExhausted { mac: mac(1) }),
        Kind::LeaseRefused {
            ip: IP,
            mac: mac(1),
            reason: Some("endpoints_add_failed".into()),
            error: "nft said no".into(),
        },
        Kind::LeaseRefused {
            ip: IP,
            mac: mac(1),
            reason: None,
            error: "nft said no".into(),
        },
        Kind::JournalError {
            error: "disk full".into(),
        },
        Kind::JournalCompacted {
            before: 9000,
            after: 100,
        },
        Kind::Ready(Ready::Agent {
            internal: "ethint0".into(),
            uplink: "eth0".into(),
            control: "/run/netvm/agent.sock".into(),
        }),
        Kind::Ready(Ready::Dhcp {
            interface: "ethint0".into(),
            server: Ipv4Addr::new(192, 168, 100, 1),
            journal: "/var/lib/netvm/leases".into(),
            records_replayed: 3,
            leases: 2,
            ignored_bytes: 0,
            damaged_copy: None,
        }),
        Kind::Ready(Ready::Dns {
            listen: "192.168.100.1:53".into(),
            interface: "ethint0".into(),
            upstreams: vec!["10.9.0.1:53".into()],
            names: 4,
        }),
        Kind::Counters {
            counters: json!({"dhcp": {"ack": 1}, "leases": 2}),
        },
        Kind::Stopped {
            counters: json!({"queries": 5}),
        },
        Kind::EventsSuppressed {
            kinds: vec!["pool_exhausted".into()],
            count: 7,
        },
        Kind::EventsSuppressed {
            kinds: vec![],
            count: 7,
        },
        Kind::DnsUpstreams {
            upstreams: vec!["10.9.0.1:53".into()],
        },
        Kind::UplinkBound {
            uplink: "wan0".into(),
            lease: netvm_uplink::Lease {
                address: Ipv4Addr::new(10, 9, 0, 120),
                prefix: 24,
                router: Some(Ipv4Addr::new(10, 9, 0, 1)),
                dns: vec![Ipv4Addr::new(10, 9, 0, 1)],
                server: Ipv4Addr::new(10, 9, 0, 1),
                lease_secs: 120,
                renew_secs: 60,
                rebind_secs: 105,
            },
        },
        Kind::UplinkLost {
            uplink: "wan0".into(),
        },
        Kind::UplinkStopped {
            uplink: "wan0".into(),
        },
        Kind::UplinkUp {
            uplink: "wan0".into(),
            address: Ipv4Addr::new(10, 9, 0, 120),
            router: None,
        },
        Kind::UplinkDown {
            uplink: "wan0".into(),
            state: "addressing".into(),
        },
        Kind::UplinkFailed {
            uplink: "uplink1".into(),
            error: "ip route replace default via 10.9.0.1 dev uplink1".into(),
        },
        Kind::UplinkSwitched {
            from: Some("wan0".into()),
            to: Some("uplink1".into()),
            reason: "no_carrier".into(),
        },
        Kind::WifiConnected {
            uplink: "wlan0".into(),
            ssid: "home".into(),
            bssid: "02:00:00:00:00:00".into(),
        },
        Kind::WifiDisconnected {
            uplink: "wlan0".into(),
            bssid: "02:00:00:00:00:00".into(),
            reason: 3,
        },
        Kind::WifiFailed {
            uplink: "wlan0".into(),
            ssid: Some("home".into()),
            reason: "wrong_key".into(),
            detail: Some("the 4-way handshake failed 2 times".into()),
        },
        Kind::Ipv6Uplink {
            internal_prefix: Some("2001:db8:100:ab00::/64".into()),
            delegated: Some("2001:db8:100:ab00::/56".into()),
            nat64: None,
            clat: None,
            dns: vec!["2001:db8:10::1".into()],
        },
        Kind::ClatFailed {
            error: "tayga exited".into(),
        },
        Kind::Lease6 {
            change: "granted".into(),
            ip: Some("fd00:1::a".parse().expect("ip")),
            mac: "02:ad:00:00:00:0a".parse().expect("mac"),
        },
        Kind::UplinkIpv6Failed {
            error: "ip -6 addr replace".into(),
        },
        Kind::InterfacesRenamed {
            renamed: vec![Renamed {
                from: "br-int".into(),
                to: "ethint0".into(),
            }],
        },
        Kind::DataPlaneApplied {
            connections_cut: 0,
            pool_leases_admitted: 1,
        },
        Kind::PrivilegesDropped {
            user: "nobody".into(),
            capabilities: vec!["CAP_NET_ADMIN".into()],
        },
        Kind::Reloaded {
            changed: false,
            changes: None,
            connections_cut: None,
            part_errors: None,
        },
        Kind::Reloaded {
            changed: true,
            changes: Some(Changes {
                vms_changed: vec!["app-vm".into()],
                ..Changes::default()
            }),
            connections_cut: Some(1),
            part_errors: Some(0),
        },
        Kind::ReloadFailed {
            error: "port 70000".into(),
            unchanged: true,
        },
        Kind::ControlFailed {
            error: "poll failed".to_owned(),
        },
        Kind::MetricsFailed {
            address: "192.168.100.1:9100".into(),
            error: "in use".into(),
        },
        Kind::RulesetRemoved { ok: true },
        Kind::AgentStopped,
        Kind::EndpointsUpdateFailed {
            error: "nft said no".into(),
        },
        Kind::EventsUnavailable {
            nflog_group: 7,
            error: "in use".into(),
        },
        Kind::EventsLost { count: 3 },
        Kind::FlowAllowed(Flow {
            from: IP.into(),
            from_vm: None,
            to: IP.into(),
            to_vm: None,
            proto: Proto::from_number(132),
            port: None,
        }),
        Kind::FlowAllowed(Flow {
            from: IP6.into(),
            from_vm: Some("app-vm".into()),
            to: "fd00:1::66".parse().expect("address"),
            to_vm: None,
            proto: Proto::from_number(58),
            port: None,
        }),
        Kind::DhcpStarvation {
            clients: 32,
            pool_exhausted: 10,
            window_secs: 10,
        },
        Kind::Spoofing {
            source_ip: IP.into(),
            source_mac: mac(0x99),
            mac_of: None,
            ip_of: Some("app-vm".into()),
        },
        Kind::Spoofing {
            source_ip: IP6.into(),
            source_mac: mac(0x99),
            mac_of: Some("app-vm".into()),
            ip_of: None,
        },
        Kind::RogueDhcpServer {
            ip: IP.into(),
            mac: mac(1),
        },
        Kind::RogueDhcpServer {
            ip: "fe80::2".parse().expect("address"),
            mac: mac(1),
        },
        Kind::RogueRouterAdvert {
            ip: "fe80::1".parse().expect("address"),
            mac: mac(1),
        },
        Kind::PolicyDrop(flow.clone()),
        Kind::FlowAllowed(flow),
        Kind::PortScan {
            source: Ipv4Addr::new(203, 0, 113, 9).into(),
            ports: 20,
            window_secs: 10,
        },
        Kind::PortScan {
            source: "2001:db8::9".parse().expect("address"),
            ports: 20,
            window_secs: 10,
        },
    ]
}

fn every_event() -> Vec<Event> {
    every_kind()
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let mut event = Event::at(1_764_769_000_000 + i as u64, kind);
            if i % 2 == 0 {
                event.seq = Some(i as u64 + 1);
            }
            if i % 3 == 0 {
                event = event.about(Some("app-vm".into()));
            }
            event
        })
        .collect()
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::validator_for(schema).expect("a valid schema")
}

#[test]
fn every_event_round_trips_and_is_named_under_event() {
    for event in every_event() {
        let line = event.to_line();
        let back: Event = serde_json::from_str(&line).expect(&line);
        assert_eq!(back, event, "{line}");
        let value: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(value["event"], event.name(), "{line}");
        assert_eq!(value["time_ms"], event.time_ms);
        assert!(value.get("kind").is_none(), "{line}");
    }
}

#[test]
fn every_event_validates_against_the_schema() {
    let schema = events_schema();
    let validator = validator(&schema);
    for event in every_event() {
        let value = serde_json::to_value(&event).expect("json");
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{value}: {errors:?}");
    }
}

#[test]
fn the_schema_refuses_what_no_writer_writes() {
    let validator = validator(&events_schema());
    let good = serde_json::to_value(Event::at(
        1,
        Kind::Lease(netvm_dhcp::Event::PoolExhausted { mac: mac(1) }),
    ))
    .expect("json");
    assert!(validator.is_valid(&good));
    let mut unknown = good.clone();
    unknown["event"] = json!("pool_exhausted_renamed");
    assert!(!validator.is_valid(&unknown), "an unknown kind");
    let mut missing = good.clone();
    missing.as_object_mut().expect("object").remove("mac");
    assert!(!validator.is_valid(&missing), "a kind without its field");
    let mut severity = good;
    severity["severity"] = json!("loud");
    assert!(!validator.is_valid(&severity), "an unknown severity");
}

#[test]
fn the_wire_format_stays_what_readers_read() {
    let event = Event::at(
        5,
        Kind::Spoofing {
            source_ip: IP.into(),
            source_mac: mac(0x99),
            mac_of: None,
            ip_of: Some("app-vm".into()),
        },
    );
    let value = serde_json::to_value(&event).expect("json");
    assert_eq!(
        value,
        json!({
            "time_ms": 5, "class": "security", "severity": "warning",
            "event": "spoofing", "source_ip": "192.168.100.101",
            "source_mac": "02:ad:00:00:00:99", "mac_of": null, "ip_of": "app-vm",
        })
    );
    // Fields of a flow stay at the top, beside `event`.
    let flow = every_kind()
        .into_iter()
        .find(|k| matches!(k, Kind::PolicyDrop(_)))
        .expect("a drop");
    let value = serde_json::to_value(Event::at(1, flow)).expect("json");
    assert_eq!(value["from_vm"], "app-vm");
    assert_eq!(value["port"], 7001);
    assert_eq!(value["severity"], "notice");
    // The subject VM is the envelope's `vm` (a rogue server's too).
    let rogue = Event::new(Kind::RogueDhcpServer {
        ip: IP.into(),
        mac: mac(1),
    })
    .about(Some("db-vm".into()));
    assert_eq!(serde_json::to_value(rogue).expect("json")["vm"], "db-vm");
    // IPv6 addresses are strings in the same fields; a rogue router is
    // a security warning of its own kind.
    let v6 = Event::at(
        6,
        Kind::Spoofing {
            source_ip: IP6.into(),
            source_mac: mac(0x99),
            mac_of: None,
            ip_of: None,
        },
    );
    let value = serde_json::to_value(&v6).expect("json");
    assert_eq!(value["source_ip"], "fd00:1::65");
    let ra = Event::at(
        7,
        Kind::RogueRouterAdvert {
            ip: "fe80::1".parse().expect("address"),
            mac: mac(1),
        },
    );
    let value = serde_json::to_value(&ra).expect("json");
    assert_eq!(
        value,
        json!({
            "time_ms": 7, "class": "security", "severity": "warning",
            "event": "rogue_router_advert", "ip": "fe80::1", "mac": "02:ad:00:00:00:01",
        })
    );
    assert_eq!(Proto::from_number(58), Proto::Name("icmpv6".into()));
}

#[test]
fn engine_lease_events_convert_with_their_fields() {
    let engine = netvm_dhcp::Event::LeaseGranted {
        ip: IP,
        mac: mac(0x65),
        client: netvm_dhcp::ClientKey::Mac(mac(0x65)),
        hostname: None,
        until: netvm_dhcp::Timestamp(42),
    };
    // What the engine's own serialization writes, kind and fields alike.
    let before = serde_json::to_value(&engine).expect("json");
    let after = serde_json::to_value(Kind::from(&engine)).expect("json");
    assert_eq!(before, after);
    assert_eq!(after["event"], "lease_granted");
    assert_eq!(after["client"], "mac:02:ad:00:00:00:65");
    assert_eq!(after["until"], 42);
    let event = Event::new(Kind::from(&engine));
    assert_eq!(event.name(), "lease_granted");
    assert_eq!(event.class, Class::Info);
    let exhausted = Event::new(Kind::from(&netvm_dhcp::Event::PoolExhausted {
        mac: mac(1),
    }));
    assert_eq!(
        (exhausted.class, exhausted.severity),
        (Class::Security, Severity::Warning)
    );
}

#[test]
fn a_client_key_reads_back_what_it_writes() {
    for key in [
        netvm_dhcp::ClientKey::Mac(mac(0x65)),
        netvm_dhcp::ClientKey::Id(vec![0x01, 0x02, 0xad, 0x00]),
    ] {
        let text = key.to_string();
        assert_eq!(text.parse::<netvm_dhcp::ClientKey>(), Ok(key), "{text}");
    }
    for bad in ["", "mac:", "id:zz", "02:ad:00:00:00:65", "mac:02:ad"] {
        assert!(bad.parse::<netvm_dhcp::ClientKey>().is_err(), "{bad}");
    }
}

#[test]
fn a_passphrase_is_never_shown_by_debug() {
    let request = Request::WifiConnect {
        ssid: "home".into(),
        passphrase: crate::control::Passphrase("correct horse".into()),
        uplink: None,
    };
    let shown = format!("{request:?}");
    assert!(!shown.contains("correct"), "{shown}");
    assert!(request.changes());
    assert!(!Request::WifiScan.changes());
}

#[test]
fn requests_read_as_clients_write_them() {
    let cases = [
        (json!({"command": "status"}), Request::Status),
        (json!({"command": "leases"}), Request::Leases),
        (json!({"command": "reload"}), Request::Reload),
        (json!({"command": "wifi_list"}), Request::WifiList),
        (json!({"command": "wifi_scan"}), Request::WifiScan),
        (
            json!({"command": "wifi_connect", "ssid": "home", "passphrase": "correct horse"}),
            Request::WifiConnect {
                ssid: "home".into(),
                passphrase: crate::control::Passphrase("correct horse".into()),
                uplink: None,
            },
        ),
        (
            json!({"command": "wifi_forget", "ssid": "home", "uplink": "wlan0"}),
            Request::WifiForget {
                ssid: "home".into(),
                uplink: Some("wlan0".into()),
            },
        ),
        (
            json!({"command": "events"}),
            Request::Events {
                last: DEFAULT_LAST,
                follow: false,
                security: false,
            },
        ),
        (
            json!({"command": "events", "last": 5, "follow": true, "security": true}),
            Request::Events {
                last: 5,
                follow: true,
                security: true,
            },
        ),
    ];
    let validator = validator(&control_schema());
    for (wire, request) in cases {
        assert_eq!(
            serde_json::from_value::<Request>(wire.clone()).expect("reads"),
            request
        );
        let back = serde_json::to_value(&request).expect("json");
        assert_eq!(
            serde_json::from_value::<Request>(back).expect("reads"),
            request
        );
        assert!(validator.is_valid(&wire), "{wire}");
    }
    assert!(serde_json::from_value::<Request>(json!({"command": "shutdown"})).is_err());
}

#[test]
fn responses_round_trip_and_validate() {
    let status = Status {
        description: "/etc/netvm/system.toml".into(),
        mode: "router".into(),
        uptime_secs: 3,
        uplink: UplinkStatus::Bound {
            address: "10.9.0.120/24".into(),
            router: None,
            dns: vec![],
            server: Ipv4Addr::new(10, 9, 0, 1),
            lease_secs: 120,
        },
        vms: Vms {
            described: vec![VmStatus {
                name: "app-vm".into(),
                ip: IP,
                mac: mac(0x65),
                lease: LeaseState::None,
                expires_in_secs: None,
            }],
            pool_clients: 0,
        },
        counters: Counters {
            firewall: [(
                "spoofed".to_owned(),
                FirewallCounter {
                    packets: 1,
                    bytes: 2,
                },
            )]
            .into(),
            ..Counters::default()
        },
        reloads: 1,
        last_reload: Some(LastReload {
            ok: false,
            changes: None,
            error: Some("bad".into()),
        }),
    };
    let lease = LeaseInfo {
        ip: IP,
        mac: mac(0x65),
        hostname: None,
        vm: Some("app-vm".into()),
        expires_in_secs: 30,
    };
    let answers = [
        Response::status(status),
        Response::leases(vec![lease]),
        Response::events(every_event()),
        Response::reload(Event::new(Kind::Reloaded {
            changed: false,
            changes: None,
            connections_cut: None,
            part_errors: None,
        })),
        Response::refused("too many followers"),
    ];
    let validator = validator(&control_schema());
    for answer in answers {
        let value = serde_json::to_value(&answer).expect("json");
        assert_eq!(
            serde_json::from_value::<Response>(value.clone()).expect("reads"),
            answer
        );
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{value}: {errors:?}");
    }
    let refused = serde_json::to_value(Response::refused("no")).expect("json");
    assert_eq!(refused, json!({"ok": false, "error": "no"}));
    // What `netvm leases` and the lab look for.
    let listed = serde_json::to_string(&Response::leases(vec![LeaseInfo {
        ip: IP,
        mac: mac(1),
        hostname: None,
        vm: Some("app-vm".into()),
        expires_in_secs: 1,
    }]))
    .expect("json");
    assert!(listed.contains("\"vm\":\"app-vm\""), "{listed}");
    let _ = control::DEFAULT_LAST;
}

mod untrusted {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a peer writes on the control socket is read or
        /// refused, never a panic; so are answers and events.
        #[test]
        fn any_line_is_read_or_refused(line in any::<String>()) {
            let _ = serde_json::from_str::<Request>(&line);
            let _ = serde_json::from_str::<Response>(&line);
            let _ = serde_json::from_str::<Event>(&line);
            let _ = line.parse::<netvm_dhcp::ClientKey>();
        }

        /// Requests shaped like real ones, with any values.
        #[test]
        fn any_events_request_is_read_or_refused(
            command in "[a-z]{0,8}",
            last in any::<i64>(),
            follow in any::<bool>(),
        ) {
            let line = json!({"command": command, "last": last, "follow": follow}).to_string();
            if let Ok(Request::Events { last: read, .. }) = serde_json::from_str::<Request>(&line) {
                prop_assert_eq!(read as i64, last);
            }
        }
    }
}
