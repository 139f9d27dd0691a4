//! The ruleset's text: IPv4 guarantees and their IPv6 twins.

use super::*;
use crate::datapath::{self, ClatHook, Ipv6Uplink};
use netvm_description::{parse, Format};

const TEXT: &str = "[network]\nipv6_prefix = \"fd00:1::/64\"\n[netvm.uplink]\ninterface = \"eth0\"\n\
    [[vm]]\nname = \"a\"\nforward = [{ proto = \"tcp\", port = 8443, to_port = 443 }, { proto = \"udp\", port = \"9000-9001\", to_port = 7000 }]\n\
    [[vm]]\nname = \"b\"\nallow = [{ to = \"a\", proto = \"tcp\", ports = 443 }, { to = \"a\", proto = \"icmp\" }]\n";

fn system(text: &str) -> System {
    parse("t.toml", text, Format::Toml).expect("valid")
}

/// The ruleset of [`TEXT`] with `uplink6` learned.
fn ruleset_with(uplink6: &Ipv6Uplink) -> String {
    datapath::plan_with(&system(TEXT), &[], &[], uplink6).ruleset
}

fn ruleset() -> String {
    ruleset_with(&Ipv6Uplink::default())
}

fn routed() -> Ipv6Uplink {
    Ipv6Uplink {
        delegated: Some("2001:db8:7:f0::/60".parse().expect("prefix")),
        clat: None,
    }
}

fn clat() -> ClatHook {
    ClatHook {
        tun: "clat0".parse().expect("name"),
        clat6: "2001:db8:1::c1a7".parse().expect("address"),
    }
}

/// The lines of chain `name`.
fn chain<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| *l != format!("\tchain {name} {{"))
        .take_while(|l| *l != "\t}")
        .collect()
}

fn position(lines: &[&str], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in {lines:#?}"))
}

#[test]
fn a_forward_answers_on_the_uplinks_own_address_only() {
    let text = ruleset();
    let dnat: Vec<&str> = text.lines().filter(|l| l.contains("dnat ip to")).collect();
    assert_eq!(dnat.len(), 4, "{text}");
    assert!(
        dnat[0]
            .contains("iifname \"eth0\" fib daddr . iif type local meta l4proto tcp th dport 8443"),
        "{}",
        dnat[0]
    );
    // The IPv6 twins, NAT66: the uplink's own address, and reflection
    // from the internal side to any local address but the net-vm's.
    let dnat6: Vec<&str> = text.lines().filter(|l| l.contains("dnat ip6 to")).collect();
    assert_eq!(
        dnat6[..2],
        [
            "\t\tiifname \"eth0\" meta nfproto ipv6 fib daddr . iif type local meta l4proto tcp th dport 8443 dnat ip6 to [fd00:1::65]:443",
            "\t\tiifname \"ethint0\" ip6 daddr != { fd00:1::1, fe80::/10 } fib daddr type local meta l4proto tcp th dport 8443 dnat ip6 to [fd00:1::65]:443",
        ]
    );
    assert!(
        dnat6[2].ends_with("dnat ip6 to fd00:1::65 : th dport map { 9000 : 7000, 9001 : 7001 }"),
        "{}",
        dnat6[2]
    );
}

#[test]
fn reflected_flows_pass_the_vm_to_vm_policy() {
    let text = ruleset();
    // Only connections from the uplink are accepted for being DNATed;
    // a reflected one (internal to internal) meets `flows`/`flows6`.
    let forward: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("ct status dnat accept"))
        .collect();
    assert_eq!(forward, ["\t\tiifname \"eth0\" oifname \"ethint0\" ct status dnat accept comment \"port forwards\""]);
    let nat_out = chain(&text, "nat_out");
    assert!(nat_out.contains(
        &"\t\toifname \"ethint0\" ip6 saddr fd00:1::/64 ct status dnat masquerade comment \"NAT reflection\""
    ));
    assert!(nat_out.contains(&"\t\toifname \"eth0\" ip6 saddr fd00:1::/64 masquerade"));
}

#[test]
fn echo_is_answered_on_the_net_vms_own_addresses_only() {
    let text = ruleset();
    let accepts: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains("echo-request") && l.ends_with("accept")
                || l.contains("echo-request accept comment")
        })
        .collect();
    assert_eq!(accepts.len(), 6, "{accepts:#?}");
    assert!(
        accepts.iter().all(|l| l.contains("ip daddr 192.168.100.1")
            || l.contains("ip6 daddr fd00:1::1")
            || l.contains("fib daddr . iif type local")
            || l.contains("@icmp_flows")),
        "{accepts:?}"
    );
}

#[test]
fn every_event_is_logged_once_per_key_before_it_is_added() {
    for text in [ruleset(), ruleset_with(&routed())] {
        let lines: Vec<&str> = text.lines().collect();
        let mut adds = std::collections::BTreeMap::new();
        for (i, line) in lines.iter().enumerate() {
            let Some(set) = EVENT_SETS
                .iter()
                .find(|s| line.contains(&format!(" add @{} {{", s.name)))
            else {
                continue;
            };
            *adds.entry(set.name).or_insert(0) += 1;
            let (match_, _) = line.split_once(" add @").expect("an add rule");
            let key = set.key.nft_expression();
            assert_eq!(
                lines[i - 1],
                format!(
                    "{match_} {key} != @{} limit rate {}/second burst {} packets log group {} prefix \"{}\"",
                    set.name, EVENT_LOG_RATE, EVENT_LOG_BURST, EVENT_LOG_GROUP, set.log_prefix
                ),
                "the rule before {line}"
            );
            assert_eq!(set.log_prefix, format!("{} ", set.name));
            // A set's key is of its family, so is the rule's match.
            assert_eq!(
                set.key.is_ipv6(),
                set.name.ends_with('6') || set.name == "ev_rogue_ra"
            );
        }
        // Every set is fed; ev_scan and ev_scan6 in input and in forward.
        for set in &EVENT_SETS {
            let expected =
                if set.key == EventKey::SourceService || set.key == EventKey::SourceService6 {
                    2
                } else {
                    1
                };
            assert_eq!(adds.get(set.name), Some(&expected), "{}: {text}", set.name);
        }
    }
}

#[test]
fn the_endpoints_seed_is_rendered_into_the_set() {
    let text = "[netvm.uplink]\ninterface = \"eth0\"\n[[vm]]\nname = \"a\"\n";
    let system = system(text);
    let policy = crate::policy::plan(&system);
    let names = NetVmInterfaces {
        internal: "ethint0".parse().expect("name"),
        uplink: "eth0".parse().expect("name"),
        uplinks: vec!["eth0".parse().expect("name")],
        active_uplink: Some("eth0".parse().expect("name")),
        managed: false,
    };
    let seed = [(
        Ipv4Addr::new(192, 168, 100, 201),
        "02:00:00:00:00:01".parse().expect("mac"),
    )];
    let text = render(&system, &policy, &names, &seed, &Ipv6Rules::default());
    assert!(
        text.contains("elements = { 192.168.100.201 . 02:00:00:00:00:01 }"),
        "{text}"
    );
    assert!(!text.contains("add element"), "{text}");
}

#[test]
fn with_ipv6_off_all_forwarded_ipv6_is_dropped_and_nothing_else_is_ipv6() {
    let off = format!(
        "[network]\nipv6 = false\n{}",
        &TEXT[TEXT.find("[netvm").expect("uplink")..]
    );
    let system = system(&off);
    let text = datapath::plan(&system, &[]).ruleset;
    let forward = chain(&text, "forward");
    assert_eq!(
        forward[2],
        "\t\tmeta nfproto ipv6 counter name ipv6_dropped drop comment \"no IPv6 around the IPv4 policy\""
    );
    for needle in [
        "ip6 ",
        "icmpv6",
        "ev_spoofed6",
        "chain output",
        "endpoints6",
    ] {
        assert!(!text.contains(needle), "{needle}: {text}");
    }
    // The same with a prefix delegated: the description turned IPv6 off.
    assert_eq!(
        datapath::plan_with(&system, &[], &[], &routed()).ruleset,
        text
    );
}

#[test]
fn the_guard_checks_ipv6_pairs_and_lets_link_local_reach_the_link_only() {
    let text = ruleset();
    let guard = chain(&text, "guard");
    let pairs = position(&guard, "ip6 saddr . ether saddr @endpoints6 accept");
    let link_local = position(
        &guard,
        "ip6 saddr fe80::/10 ip6 daddr { fe80::/10, ff00::/8, fd00:1::1 } accept",
    );
    let dad = position(
        &guard,
        "ip6 saddr :: ip6 daddr ff02::/16 icmpv6 type { nd-router-solicit, nd-neighbor-solicit, mld-listener-report, mld2-listener-report } accept",
    );
    let logged = position(&guard, "!= @ev_spoofed6 limit rate");
    let dropped = position(
        &guard,
        "iifname \"ethint0\" meta nfproto ipv6 counter name spoofed drop",
    );
    assert!(pairs < logged && link_local < logged && dad < logged && logged < dropped);
    assert!(guard.contains(
        &"\t\tiifname \"eth0\" ip6 saddr { fd00:1::/64, ::1 } counter name spoofed drop comment \"internal sources from outside\""
    ));
    // The described VMs are the seed.
    assert!(text.contains("elements = { fd00:1::65 . "), "{text}");
}

#[test]
fn redirects_never_leave_toward_the_vms() {
    let text = ruleset();
    assert_eq!(
        chain(&text, "output"),
        [
            "\tchain output {",
            "\t\ttype filter hook output priority filter; policy accept;",
            "\t\toifname \"ethint0\" icmpv6 type nd-redirect drop comment \"no redirects: every packet crosses the forward chain\"",
        ]
    );
}

#[test]
fn only_the_net_vm_routes_and_serves_dhcpv6_inside() {
    let text = ruleset();
    let input = chain(&text, "input");
    let rogue_ra = position(
        &input,
        "icmpv6 type nd-router-advert drop comment \"another router\"",
    );
    let rogue_dhcp6 = position(
        &input,
        "udp sport 547 udp dport 546 drop comment \"another DHCPv6 server\"",
    );
    let nd = position(
        &input,
        "iifname \"ethint0\" ip6 hoplimit 255 icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept",
    );
    let server = position(
        &input,
        "iifname \"ethint0\" ip6 saddr fe80::/10 udp dport 547 accept",
    );
    assert!(rogue_ra < nd && rogue_dhcp6 < server);
    // The uplink's routers and DHCPv6 server (an automatic uplink).
    position(
        &input,
        "iifname \"eth0\" ip6 saddr fe80::/10 ip6 hoplimit 255 icmpv6 type nd-router-advert accept",
    );
    position(
        &input,
        "iifname \"eth0\" ip6 daddr fe80::/10 udp sport 547 udp dport 546 accept",
    );
    position(
        &input,
        "iifname \"ethint0\" ip6 daddr fd00:1::1 meta l4proto { tcp, udp } th dport 53 accept",
    );
}

#[test]
fn routed_forwards_open_the_vms_own_address_and_port_without_nat() {
    let text = ruleset_with(&routed());
    assert!(!text.contains("dnat ip6"), "{text}");
    assert!(
        !text.contains("ip6 saddr 2001:db8:7:f0::/64 masquerade"),
        "{text}"
    );
    assert!(!text.contains("masquerade comment \"NAT reflection\"\n\t\toifname \"ethint0\" ip6"));
    let forward = chain(&text, "forward");
    let routed: Vec<&&str> = forward.iter().filter(|l| l.contains("(routed)")).collect();
    assert_eq!(
        routed,
        [
            &"\t\tiifname \"eth0\" oifname \"ethint0\" ip6 daddr 2001:db8:7:f0::65 meta l4proto tcp th dport 443 accept comment \"port forward (routed)\"",
            &"\t\tiifname \"eth0\" oifname \"ethint0\" ip6 daddr 2001:db8:7:f0::65 meta l4proto udp th dport 7000-7001 accept comment \"port forward (routed)\"",
        ]
    );
    // The whole delegated prefix never comes from outside.
    assert!(text.contains(
        "iifname \"eth0\" ip6 saddr { 2001:db8:7:f0::/60, ::1 } counter name spoofed drop"
    ));
    assert!(
        text.contains("2001:db8:7:f0::66 . 2001:db8:7:f0::65 . tcp . 443"),
        "{text}"
    );
}

#[test]
fn the_clat_hook_lets_only_its_own_traffic_through() {
    let with_clat = Ipv6Uplink {
        delegated: None,
        clat: Some(clat()),
    };
    let text = ruleset_with(&with_clat);
    let forward = chain(&text, "forward");
    let ours = [
        "\t\tiifname \"ethint0\" oifname \"clat0\" ip saddr @internet accept comment \"CLAT: IPv4 out\"",
        "\t\tiifname \"clat0\" oifname \"eth0\" ip6 saddr 2001:db8:1::c1a7 accept comment \"CLAT: translated IPv4 out\"",
    ];
    for line in ours {
        assert!(forward.contains(&line), "{line}: {forward:#?}");
    }
    assert!(text.contains(
        "\t\toifname \"clat0\" ip saddr 192.168.100.0/24 masquerade comment \"CLAT: NAT44\""
    ));

    // With IPv6 off inside, the CLAT's traffic still passes (and only it).
    let off = format!(
        "[network]\nipv6 = false\n{}",
        &TEXT[TEXT.find("[netvm").expect("uplink")..]
    );
    let plan = datapath::plan_with(&system(&off), &[], &[], &with_clat);
    let forward = chain(&plan.ruleset, "forward");
    assert_eq!(
        forward[2],
        "\t\tmeta nfproto ipv6 iifname != \"clat0\" oifname != \"clat0\" counter name ipv6_dropped drop comment \"no IPv6 around the IPv4 policy\""
    );
    for line in ours {
        assert!(forward.contains(&line), "{line}: {forward:#?}");
    }
    // The uplink's own IPv6 works for it: neighbours and routers heard.
    position(
        &chain(&plan.ruleset, "input"),
        "iifname \"eth0\" ip6 saddr fe80::/10 ip6 hoplimit 255 icmpv6 type nd-router-advert accept",
    );
    assert!(!plan.ruleset.contains("endpoints6"));
}
