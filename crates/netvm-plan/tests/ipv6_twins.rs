//! One description, both families: over random small systems, the
//! rendered ruleset grants in IPv6 exactly what it grants in IPv4. Every
//! element of `endpoints6`, `internet6`, `flows6` and `icmp_flows6`,
//! mapped back to IPv4 by its interface identifier, is an element of its
//! IPv4 twin and the other way round; port forwards and the metrics
//! readers likewise (NAT66 or routed).

use netvm_description::values::Ipv6Cidr;
use netvm_description::{parse, Format, System};
use netvm_plan::datapath::{plan_with, Ipv6Mode, Ipv6Uplink};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An allow rule: destination index, protocol (0 tcp, 1 udp, 2 icmp),
/// ports (first, how many more).
type AllowSpec = (usize, u8, Option<(u16, u16)>);

#[derive(Debug, Clone)]
struct VmSpec {
    internet: bool,
    allow: Vec<AllowSpec>,
    /// (protocol 0 tcp 1 udp, range length, shifted to).
    forwards: Vec<(u8, u16, Option<u16>)>,
}

#[derive(Debug, Clone)]
struct Spec {
    vms: Vec<VmSpec>,
    delegated: bool,
    metrics: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    let vm = (
        any::<bool>(),
        prop::collection::vec(
            (
                0usize..6,
                0u8..3,
                prop::option::of((1u16..30000, 0u16..100)),
            ),
            0..4,
        ),
        prop::collection::vec((0u8..2, 1u16..4, prop::option::of(1u16..60000)), 0..3),
    )
        .prop_map(|(internet, allow, forwards)| VmSpec {
            internet,
            allow,
            forwards,
        });
    (
        prop::collection::vec(vm, 1..6),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(vms, delegated, metrics)| Spec {
            vms,
            delegated,
            metrics,
        })
}

fn to_toml(spec: &Spec) -> String {
    let n = spec.vms.len();
    let mut text = String::from(
        "[network]\nipv6_prefix = \"fd00:77::/64\"\n[netvm.uplink]\ninterface = \"eth0\"\n",
    );
    if spec.metrics {
        text += "[agent]\nmetrics_port = 9100\nmetrics_allow = [\"vm0\"]\n";
    }
    for (i, vm) in spec.vms.iter().enumerate() {
        text += &format!("[[vm]]\nname = \"vm{i}\"\ninternet = {}\n", vm.internet);
        let allow: Vec<String> = vm
            .allow
            .iter()
            .filter(|(to, ..)| *to % n != i)
            .map(|(to, proto, ports)| {
                let to = to % n;
                match (proto, ports) {
                    (2, _) => format!("{{ to = \"vm{to}\", proto = \"icmp\" }}"),
                    (p, ports) => {
                        let proto = if *p == 0 { "tcp" } else { "udp" };
                        match ports {
                            Some((lo, len)) => format!(
                                "{{ to = \"vm{to}\", proto = \"{proto}\", ports = \"{lo}-{}\" }}",
                                lo + len
                            ),
                            None => format!("{{ to = \"vm{to}\", proto = \"{proto}\" }}"),
                        }
                    }
                }
            })
            .collect();
        if !allow.is_empty() {
            text += &format!("allow = [{}]\n", allow.join(", "));
        }
        let forwards: Vec<String> = vm
            .forwards
            .iter()
            .enumerate()
            .map(|(j, (proto, len, to))| {
                let proto = if *proto == 0 { "tcp" } else { "udp" };
                let first = 1000 + 100 * i as u16 + 10 * j as u16;
                let last = first + len - 1;
                let to = to.map_or(String::new(), |t| format!(", to_port = {}", t.min(60000)));
                format!("{{ proto = \"{proto}\", port = \"{first}-{last}\"{to} }}")
            })
            .collect();
        if !forwards.is_empty() {
            text += &format!("forward = [{}]\n", forwards.join(", "));
        }
    }
    text
}

/// The elements of set `name` in `ruleset`.
fn elements(ruleset: &str, name: &str) -> Vec<String> {
    let mut lines = ruleset
        .lines()
        .skip_while(|l| *l != format!("\tset {name} {{"))
        .take_while(|l| *l != "\t}");
    let Some(line) = lines.find(|l| l.trim_start().starts_with("elements = {")) else {
        return Vec::new();
    };
    let inner = line
        .trim()
        .trim_start_matches("elements = { ")
        .trim_end_matches(" }");
    let mut all: Vec<String> = inner.split(", ").map(str::to_owned).collect();
    all.sort();
    all
}

/// Maps every IPv6 address of the internal /64 in `text` (tokens, or
/// `[address]:port`) to its IPv4 twin: the subnet's address with the same
/// host number.
fn to_ipv4(system: &System, prefix: Ipv6Cidr, text: &str) -> Result<String, String> {
    let subnet = system.network.subnet;
    let map = |a: &str| -> Result<Option<String>, String> {
        let Ok(ip) = a.parse::<Ipv6Addr>() else {
            return Ok(None);
        };
        if !prefix.contains(ip) {
            return Err(format!("{ip} is outside {prefix}"));
        }
        let host = u32::try_from(prefix.host_part(ip)).map_err(|_| format!("{ip}: no twin"))?;
        Ok(Some(
            Ipv4Addr::from(u32::from(subnet.network()) | host).to_string(),
        ))
    };
    let mut out = Vec::new();
    for token in text.split(' ') {
        let (token, comma) = match token.strip_suffix(',') {
            Some(t) => (t, ","),
            None => (token, ""),
        };
        let mapped =
            if let Some((addr, port)) = token.strip_prefix('[').and_then(|t| t.split_once("]:")) {
                map(addr)?.map(|v4| format!("{v4}:{port}"))
            } else {
                map(token)?
            };
        out.push(mapped.unwrap_or_else(|| token.to_owned()) + comma);
    }
    Ok(out.join(" "))
}

fn lines_with<'a>(ruleset: &'a str, needle: &str) -> Vec<&'a str> {
    ruleset.lines().filter(|l| l.contains(needle)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_ipv4_grant_has_its_ipv6_twin_and_nothing_else(spec in spec()) {
        let text = to_toml(&spec);
        let system = parse("random.toml", &text, Format::Toml)
            .map_err(|e| TestCaseError::fail(format!("valid system rejected:\n{e}\n{text}")))?;
        let uplink6 = Ipv6Uplink {
            delegated: spec.delegated.then(|| "2001:db8:40::/56".parse().expect("prefix")),
            clat: None,
        };
        let plan = plan_with(&system, &[], &[], &uplink6);
        let v6 = plan.ipv6.as_ref().expect("IPv6 on");
        let ruleset = &plan.ruleset;
        let twin = |t: &str| to_ipv4(&system, v6.prefix, t).map_err(TestCaseError::fail);

        for (v4, v6set) in [
            ("endpoints", "endpoints6"),
            ("internet", "internet6"),
            ("flows", "flows6"),
            ("icmp_flows", "icmp_flows6"),
        ] {
            let mut mapped = elements(ruleset, v6set)
                .iter()
                .map(|e| twin(e))
                .collect::<Result<Vec<_>, _>>()?;
            mapped.sort();
            prop_assert_eq!(&mapped, &elements(ruleset, v4), "{} / {}:\n{}", v4, v6set, text);
        }

        // The typed rows: each IPv6 address is its IPv4 one's twin.
        for f in &plan.policy.flows {
            prop_assert_eq!(twin(&f.from_ip6.expect("v6").to_string())?, f.from_ip.to_string());
            prop_assert_eq!(twin(&f.to_ip6.expect("v6").to_string())?, f.to_ip.to_string());
        }

        // Port forwards: the same DNAT rules in NAT66; routed, one accept
        // of the VM's own address and ports per forward.
        let dnat4 = lines_with(ruleset, "dnat ip to");
        let dnat6 = lines_with(ruleset, "dnat ip6 to");
        prop_assert_eq!(dnat4.len(), 2 * plan.policy.forwards.len());
        let routed = lines_with(ruleset, "comment \"port forward (routed)\"");
        match v6.mode {
            Ipv6Mode::Nat66 => {
                prop_assert!(routed.is_empty());
                let netvm4 = system.netvm.endpoint.ip;
                let mut mapped = Vec::new();
                for line in &dnat6 {
                    mapped.push(
                        twin(line)?
                            .replace(" meta nfproto ipv6", "")
                            .replace(
                                &format!("ip6 daddr != {{ {netvm4}, fe80::/10 }}"),
                                &format!("ip daddr != {netvm4}"),
                            )
                            .replace("dnat ip6 to", "dnat ip to"),
                    );
                }
                prop_assert_eq!(mapped, dnat4);
            }
            Ipv6Mode::Routed => {
                prop_assert!(dnat6.is_empty());
                let mut expected: Vec<String> = plan
                    .policy
                    .forwards
                    .iter()
                    .map(|f| {
                        format!(
                            "\t\tiifname \"eth0\" oifname \"ethint0\" ip daddr {} meta l4proto {} th dport {} accept comment \"port forward (routed)\"",
                            f.to_ip, f.proto, f.to_ports
                        )
                    })
                    .collect();
                let mut mapped = routed
                    .iter()
                    .map(|l| twin(l).map(|l| l.replace("ip6 daddr", "ip daddr")))
                    .collect::<Result<Vec<_>, _>>()?;
                expected.sort();
                mapped.sort();
                prop_assert_eq!(mapped, expected);
            }
        }

        // The metrics readers.
        let metrics: Vec<String> = lines_with(ruleset, "comment \"metrics\"")
            .iter()
            .map(|l| twin(l))
            .collect::<Result<Vec<_>, _>>()?;
        prop_assert_eq!(metrics.len(), if spec.metrics { 2 } else { 0 });
        if let [m4, m6] = &metrics[..] {
            prop_assert_eq!(m6.replace("ip6 ", "ip "), m4.clone());
        }

        // No IPv6 address of a VM appears anywhere but where the twins
        // above put it: every line naming one is a set element, a
        // forward or the metrics rule.
        let counted: usize = ruleset
            .lines()
            .filter(|l| {
                l.split(' ').any(|t| {
                    t.trim_start_matches('[')
                        .split("]:")
                        .next()
                        .and_then(|a| a.parse::<Ipv6Addr>().ok())
                        .is_some_and(|a| v6.prefix.contains(a) && a != v6.netvm_address)
                })
            })
            .filter(|l| {
                !(l.contains("elements = {")
                    || l.contains("dnat ip6 to")
                    || l.contains("(routed)")
                    || l.contains("comment \"metrics\""))
            })
            .count();
        prop_assert_eq!(counted, 0, "{}", ruleset);

        // And the same system twice gives the same plan.
        let again = plan_with(&system, &[], &[], &uplink6);
        prop_assert_eq!(&again, &plan);
    }
}
