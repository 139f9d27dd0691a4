//! The expected reachability of a system, derived from its validated
//! description alone: for every source (the upstream, each described VM,
//! a pool client, a bridge port the plan does not name, the host), every
//! destination (the net-vm's internal and uplink addresses, the host, each
//! VM, the pool client, the unknown port, the subnet's network and
//! broadcast addresses, unrelated addresses routed to the net-vm, an
//! upstream service) and every probed protocol and port, whether a packet
//! may get an answer and from whom. `netvm lab verify` measures the same
//! table with real packets ([`crate::verify`]).
//!
//! Deliberately independent of netvm-plan's policy and ruleset code: this
//! is the guarantee those are checked against, written a second time from
//! the description's meaning (docs/system-description.md). Pure and
//! deterministic: the same description and seed give the same table.

use netvm_description::values::Protocol;
use netvm_description::{Mode, System};
use serde::Serialize;
use std::fmt;
use std::net::Ipv4Addr;

/// Unrelated addresses the upstream routes to the net-vm's uplink.
pub const UNRELATED: [Ipv4Addr; 2] = [
    Ipv4Addr::new(10, 99, 99, 99),
    Ipv4Addr::new(198, 51, 100, 7),
];
/// Ports every sample holds besides the description's own.
pub const FIXED_PORTS: [u16; 9] = [1, 22, 80, 443, 1024, 3000, 8080, 31337, 65535];
/// DHCP's ports: never probed with a generic payload (the DHCP servers
/// hold them and answer only DHCP; the leases prove DHCP works).
pub const DHCP_PORTS: [u16; 2] = [67, 68];
/// DNS.
pub const DNS_PORT: u16 = 53;
/// The name the unknown port's listener answers with.
pub const UNKNOWN: &str = "unknown-port";
/// The name the host's listener answers with.
pub const HOST: &str = "host";
/// The name the upstream's listener answers with.
pub const UPSTREAM: &str = "upstream";

/// Who sends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The upstream (LAN or Internet), with routes via the uplink.
    Upstream,
    /// A described VM.
    Vm(String),
    /// An undescribed VM on a port the plan names (a pool client).
    Pool,
    /// An undescribed VM on a bridge port the plan does not name.
    Unknown,
    /// The host.
    Host,
}

/// Where to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The net-vm's internal address.
    NetVm,
    /// The net-vm's uplink address (whatever DHCP gave it).
    Uplink,
    /// The host's internal address (dev mode).
    Host,
    /// A described VM's address.
    Vm(String),
    /// The pool client's lease.
    Pool,
    /// The unknown port's lease.
    Unknown,
    /// The internal subnet's network address.
    Network,
    /// The internal subnet's broadcast address.
    Broadcast,
    /// An address nobody owns, routed to the net-vm by the upstream.
    Unrelated(Ipv4Addr),
    /// The upstream's service address.
    UpstreamService,
}

/// A probed protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    /// A TCP connection.
    Tcp,
    /// A UDP datagram (a DNS query on port 53).
    Udp,
    /// An ICMP echo request.
    Icmp,
}

/// Who must answer, and as whom the answerer must have seen the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// Nothing answers.
    Silent,
    /// Something answers.
    Answered {
        /// The listener that answers (by name); `None` when a real
        /// service (DNS, metrics, the agent's control, the kernel's echo) answers.
        by: Option<String>,
        /// What the listener sees as the source.
        seen_as: SeenAs,
    },
}

/// The source address a listener must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeenAs {
    /// The source's own address.
    Own,
    /// The uplink's address (masquerade).
    Uplink,
    /// Not part of the guarantee.
    Any,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expectation {
    /// Who sends.
    pub source: Source,
    /// Where to.
    pub target: Target,
    /// How.
    pub proto: Proto,
    /// The destination port (0 for ICMP).
    pub port: u16,
    /// What must happen.
    pub outcome: Outcome,
    /// A VM-to-VM flow the policy allows: the agent must report it as
    /// `flow_allowed` with this source VM, destination VM and (VM) port.
    pub flow: Option<(String, String, u16)>,
}

impl Expectation {
    /// Whether something must answer.
    pub fn allowed(&self) -> bool {
        self.outcome != Outcome::Silent
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Upstream => f.write_str(UPSTREAM),
            Source::Vm(n) => f.write_str(n),
            Source::Pool => f.write_str("pool client"),
            Source::Unknown => f.write_str(UNKNOWN),
            Source::Host => f.write_str(HOST),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::NetVm => f.write_str("net-vm"),
            Target::Uplink => f.write_str("uplink"),
            Target::Host => f.write_str(HOST),
            Target::Vm(n) => f.write_str(n),
            Target::Pool => f.write_str("pool client"),
            Target::Unknown => f.write_str(UNKNOWN),
            Target::Network => f.write_str("network"),
            Target::Broadcast => f.write_str("broadcast"),
            Target::Unrelated(ip) => write!(f, "{ip}"),
            Target::UpstreamService => f.write_str(UPSTREAM),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Silent => f.write_str("silent"),
            Outcome::Answered { by, seen_as } => {
                f.write_str("answered")?;
                if let Some(by) = by {
                    write!(f, " by {by}")?;
                }
                match seen_as {
                    SeenAs::Own => f.write_str(" (seeing the source's own address)"),
                    SeenAs::Uplink => f.write_str(" (seeing the uplink's address)"),
                    SeenAs::Any => Ok(()),
                }
            }
        }
    }
}

fn proto_of(p: Protocol) -> Proto {
    match p {
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
        Protocol::Icmp => Proto::Icmp,
    }
}

/// A small deterministic generator (splitmix64), for port samples and
/// seeded systems.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.bits() % (high - low + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.bits() % 100 < percent
    }
}

/// The ports probed for every source and destination: every port a rule,
/// forward or service names (with each range's ends and its neighbours
/// outside), [`FIXED_PORTS`], and three more from `seed`; never DHCP's.
pub fn sample_ports(system: &System, seed: u64) -> Vec<u16> {
    let mut ports: Vec<u16> = FIXED_PORTS.to_vec();
    let mut edges = |first: u16, last: u16| {
        ports.extend([first, last, first.saturating_sub(1), last.saturating_add(1)]);
        ports.push(first + (last - first) / 2);
    };
    for vm in &system.vms {
        for rule in &vm.allow {
            if let Some(r) = rule.ports {
                edges(r.first(), r.last());
            }
        }
        for fw in &vm.forwards {
            edges(fw.uplink_ports.first(), fw.uplink_ports.last());
            edges(fw.vm_ports.first(), fw.vm_ports.last());
        }
    }
    ports.push(DNS_PORT);
    if let Some(m) = &system.agent.metrics {
        ports.push(m.port);
    }
    if let Some(c) = &system.agent.control {
        ports.push(c.port);
    }
    let mut rng = Rng::new(seed ^ 0x6e65_7476_6d21);
    for _ in 0..3 {
        ports.push(rng.range(1025, 65535) as u16);
    }
    ports.retain(|p| *p != 0 && !DHCP_PORTS.contains(p));
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The ports probed on the uplink address from the upstream: the sample
/// and every port 1-1024.
pub fn uplink_scan_ports(sample: &[u16]) -> Vec<u16> {
    let mut ports: Vec<u16> = (1..=1024).filter(|p| !DHCP_PORTS.contains(p)).collect();
    ports.extend(sample);
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Every source of `system`'s lab.
pub fn sources(system: &System) -> Vec<Source> {
    let mut all = vec![Source::Upstream];
    all.extend(system.vms.iter().map(|v| Source::Vm(v.name.to_string())));
    all.extend([Source::Pool, Source::Unknown, Source::Host]);
    all
}

/// Every destination `source` is probed at.
pub fn targets(system: &System, source: &Source) -> Vec<Target> {
    let mut all = vec![Target::NetVm, Target::Uplink];
    if system.host.endpoint.is_some() {
        all.push(Target::Host);
    }
    all.extend(system.vms.iter().map(|v| Target::Vm(v.name.to_string())));
    all.extend([
        Target::Pool,
        Target::Unknown,
        Target::Network,
        Target::Broadcast,
    ]);
    if *source == Source::Upstream {
        all.extend(UNRELATED.map(Target::Unrelated));
    } else {
        all.push(Target::UpstreamService);
    }
    // Not itself.
    all.retain(|t| match (source, t) {
        (Source::Vm(a), Target::Vm(b)) => a != b,
        (Source::Pool, Target::Pool) | (Source::Unknown, Target::Unknown) => false,
        (Source::Host, Target::Host) => false,
        _ => true,
    });
    all
}

/// Whether `from` may open `proto`/`port` to VM `to` by an allow rule.
fn allowed_by_rule(system: &System, from: &str, to: &str, proto: Proto, port: u16) -> bool {
    system
        .vms
        .iter()
        .filter(|v| v.name.as_str() == from)
        .flat_map(|v| &v.allow)
        .any(|rule| {
            rule.to.as_str() == to
                && proto_of(rule.proto) == proto
                && (proto == Proto::Icmp
                    || rule
                        .ports
                        .is_none_or(|r| r.first() <= port && port <= r.last()))
        })
}

/// The forward `proto`/`port` on the uplink names: its VM and VM port.
fn forward(system: &System, proto: Proto, port: u16) -> Option<(String, u16)> {
    system.vms.iter().find_map(|vm| {
        vm.forwards.iter().find_map(|fw| {
            let (a, b) = (fw.uplink_ports.first(), fw.uplink_ports.last());
            (proto_of(fw.proto) == proto && a <= port && port <= b)
                .then(|| (vm.name.to_string(), fw.vm_ports.first() + (port - a)))
        })
    })
}

const SILENT: Outcome = Outcome::Silent;

fn by(name: &str, seen_as: SeenAs) -> Outcome {
    Outcome::Answered {
        by: Some(name.to_owned()),
        seen_as,
    }
}

fn service() -> Outcome {
    Outcome::Answered {
        by: None,
        seen_as: SeenAs::Any,
    }
}

/// What `source` sending `proto`/`port` to `target` must meet; with the
/// VM-to-VM flow the agent must report when allowed.
pub fn expect(
    system: &System,
    source: &Source,
    target: &Target,
    proto: Proto,
    port: u16,
) -> (Outcome, Option<(String, String, u16)>) {
    let dev_host = system.netvm.mode == Mode::Dev && system.host.endpoint.is_some();
    // Internal sources that send from their own leased or reserved address.
    let internal = match source {
        Source::Vm(_) | Source::Pool | Source::Unknown => true,
        Source::Host => dev_host,
        Source::Upstream => false,
    };
    // The dev host may open connections into the internal network
    // (development access); nothing there may open one to it
    // (docs/host.md, the host's firewall).
    if dev_host && *source == Source::Host {
        let listener = match target {
            Target::Vm(to) => Some(to.clone()),
            Target::Pool => Some(crate::plan::EXTRA_NAME.to_owned()),
            Target::Unknown => Some(UNKNOWN.to_owned()),
            _ => None,
        };
        if let Some(name) = listener {
            return match proto {
                Proto::Icmp => (service(), None),
                Proto::Tcp | Proto::Udp => (by(&name, SeenAs::Own), None),
            };
        }
    }
    match target {
        Target::NetVm => match proto {
            _ if !internal => (SILENT, None),
            Proto::Icmp => (service(), None),
            Proto::Udp | Proto::Tcp if port == DNS_PORT => (service(), None),
            Proto::Tcp => {
                let metrics = system.agent.metrics.as_ref().is_some_and(|m| {
                    m.port == port
                        && matches!(source, Source::Vm(v) if m.allow.iter().any(|a| a.as_str() == v))
                });
                let control = system.agent.control.as_ref().is_some_and(|c| {
                    c.port == port
                        && matches!(source, Source::Vm(v) if c.allow.iter().chain(&c.read).any(|a| a.as_str() == v))
                });
                (
                    if metrics || control {
                        service()
                    } else {
                        SILENT
                    },
                    None,
                )
            }
            Proto::Udp => (SILENT, None),
        },
        Target::Uplink => {
            // The dev host sits on the upstream's network (bridged).
            let outside = *source == Source::Upstream || (*source == Source::Host && dev_host);
            match (source, proto) {
                (_, Proto::Icmp) if outside => (service(), None),
                (_, Proto::Icmp) => (SILENT, None),
                _ if outside => match forward(system, proto, port) {
                    Some((vm, _)) => (by(&vm, SeenAs::Any), None),
                    None => (SILENT, None),
                },
                (Source::Vm(from), _) => match forward(system, proto, port) {
                    Some((to, vm_port))
                        if to != *from && allowed_by_rule(system, from, &to, proto, vm_port) =>
                    {
                        (by(&to, SeenAs::Any), Some((from.clone(), to, vm_port)))
                    }
                    _ => (SILENT, None),
                },
                _ => (SILENT, None),
            }
        }
        Target::Vm(to) => match source {
            Source::Vm(from) if allowed_by_rule(system, from, to, proto, port) => {
                let flow = (proto != Proto::Icmp).then(|| (from.clone(), to.clone(), port));
                let by_whom = if proto == Proto::Icmp {
                    None
                } else {
                    Some(to.clone())
                };
                (
                    Outcome::Answered {
                        by: by_whom,
                        seen_as: if proto == Proto::Icmp {
                            SeenAs::Any
                        } else {
                            SeenAs::Own
                        },
                    },
                    flow,
                )
            }
            _ => (SILENT, None),
        },
        Target::UpstreamService => {
            let out = match source {
                Source::Vm(v) => system
                    .vms
                    .iter()
                    .any(|vm| vm.name.as_str() == v && vm.internet),
                Source::Host => dev_host,
                _ => false,
            };
            let seen_as = if *source == Source::Host {
                SeenAs::Own
            } else {
                SeenAs::Uplink
            };
            match (out, proto) {
                (false, _) => (SILENT, None),
                (true, Proto::Icmp) => (service(), None),
                (true, Proto::Udp | Proto::Tcp) if port == DNS_PORT => (service(), None),
                (true, _) => (by(UPSTREAM, seen_as), None),
            }
        }
        // Nothing else answers: no rule can name the host, the pool, an
        // unknown port, the network or broadcast address, and no route
        // makes an unrelated address anyone's.
        Target::Host
        | Target::Pool
        | Target::Unknown
        | Target::Network
        | Target::Broadcast
        | Target::Unrelated(_) => (SILENT, None),
    }
}

/// What `row` must meet when measured over IPv6 (with an upstream that
/// has IPv6; `delegates`: the upstream delegates a prefix, so the internal
/// network is routed, else NAT66). The same policy as over IPv4, with
/// IPv6's addressing: routed, the Internet sees a VM as its own address,
/// and the upstream reaches a forward at the VM's own address and port
/// (and nothing on the uplink's address but its echo); NAT66, as IPv4.
pub fn expect6(system: &System, delegates: bool, row: &Expectation) -> Outcome {
    if !delegates {
        return row.outcome.clone();
    }
    match (&row.source, &row.target, &row.outcome) {
        (Source::Upstream, Target::Uplink, _) => match row.proto {
            Proto::Icmp => service(),
            Proto::Tcp | Proto::Udp => SILENT,
        },
        (Source::Upstream, Target::Vm(to), _) => {
            let forwarded = system
                .vms
                .iter()
                .filter(|vm| vm.name.as_str() == to)
                .flat_map(|vm| &vm.forwards)
                .any(|fw| {
                    proto_of(fw.proto) == row.proto
                        && fw.vm_ports.first() <= row.port
                        && row.port <= fw.vm_ports.last()
                });
            if forwarded && row.proto != Proto::Icmp {
                by(to, SeenAs::Any)
            } else {
                SILENT
            }
        }
        (
            _,
            Target::UpstreamService,
            Outcome::Answered {
                by,
                seen_as: SeenAs::Uplink,
            },
        ) => Outcome::Answered {
            by: by.clone(),
            seen_as: SeenAs::Own,
        },
        _ => row.outcome.clone(),
    }
}

/// The whole table for `system` with the ports of `seed`.
pub fn table(system: &System, seed: u64) -> Vec<Expectation> {
    let sample = sample_ports(system, seed);
    let scan = uplink_scan_ports(&sample);
    let mut rows = Vec::new();
    for source in sources(system) {
        for target in targets(system, &source) {
            let ports = if source == Source::Upstream && target == Target::Uplink {
                &scan
            } else {
                &sample
            };
            for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
                let probed: Vec<u16> = if proto == Proto::Icmp {
                    vec![0]
                } else {
                    ports.clone()
                };
                for port in probed {
                    let (outcome, flow) = expect(system, &source, &target, proto, port);
                    rows.push(Expectation {
                        source: source.clone(),
                        target: target.clone(),
                        proto,
                        port,
                        outcome,
                        flow,
                    });
                }
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> System {
        netvm_description::parse(
            "default",
            crate::lab::DEFAULT_SECURE,
            netvm_description::Format::Toml,
        )
        .expect("the default validates")
    }

    fn vm(name: &str) -> Source {
        Source::Vm(name.to_owned())
    }

    fn to(name: &str) -> Target {
        Target::Vm(name.to_owned())
    }

    fn outcome(s: &System, source: &Source, target: &Target, proto: Proto, port: u16) -> Outcome {
        expect(s, source, target, proto, port).0
    }

    #[test]
    fn vm_to_vm_follows_the_allow_rules_exactly() {
        let s = default();
        let (o, flow) = expect(&s, &vm("gui-vm"), &to("chrome-vm"), Proto::Tcp, 9000);
        assert_eq!(o, by("chrome-vm", SeenAs::Own));
        assert_eq!(flow, Some(("gui-vm".into(), "chrome-vm".into(), 9000)));
        for (src, dst, proto, port) in [
            ("gui-vm", "chrome-vm", Proto::Tcp, 9001),
            ("gui-vm", "chrome-vm", Proto::Udp, 9000),
            ("gui-vm", "chrome-vm", Proto::Icmp, 0),
            ("chrome-vm", "gui-vm", Proto::Tcp, 9000),
            ("admin-vm", "gui-vm", Proto::Tcp, 8080),
            ("business-vm", "admin-vm", Proto::Tcp, 9998),
        ] {
            assert_eq!(
                outcome(&s, &vm(src), &to(dst), proto, port),
                SILENT,
                "{src} {dst} {port}"
            );
        }
        assert!(
            expect(&s, &vm("business-vm"), &to("admin-vm"), Proto::Tcp, 9999)
                .1
                .is_some()
        );
    }

    #[test]
    fn the_net_vm_answers_only_its_services() {
        let s = default();
        assert_eq!(
            outcome(&s, &vm("gui-vm"), &Target::NetVm, Proto::Udp, 53),
            service()
        );
        assert_eq!(
            outcome(&s, &Source::Pool, &Target::NetVm, Proto::Tcp, 53),
            service()
        );
        assert_eq!(
            outcome(&s, &Source::Unknown, &Target::NetVm, Proto::Icmp, 0),
            service()
        );
        assert_eq!(
            outcome(&s, &vm("admin-vm"), &Target::NetVm, Proto::Tcp, 9100),
            service()
        );
        assert_eq!(
            outcome(&s, &vm("gui-vm"), &Target::NetVm, Proto::Tcp, 9100),
            SILENT
        );
        assert_eq!(
            outcome(&s, &Source::Pool, &Target::NetVm, Proto::Tcp, 9100),
            SILENT
        );
        assert_eq!(
            outcome(&s, &vm("gui-vm"), &Target::NetVm, Proto::Tcp, 22),
            SILENT
        );
        assert_eq!(
            outcome(&s, &Source::Upstream, &Target::NetVm, Proto::Udp, 53),
            SILENT
        );
        assert_eq!(
            outcome(&s, &Source::Upstream, &Target::NetVm, Proto::Icmp, 0),
            SILENT
        );
        assert_eq!(
            outcome(&s, &Source::Upstream, &Target::Uplink, Proto::Icmp, 0),
            service()
        );
        assert_eq!(
            outcome(&s, &vm("admin-vm"), &Target::Uplink, Proto::Icmp, 0),
            SILENT
        );
        assert_eq!(
            outcome(&s, &vm("admin-vm"), &Target::Uplink, Proto::Udp, 53),
            SILENT
        );
        // The secure host has no address: nothing at all.
        assert_eq!(
            outcome(&s, &Source::Host, &Target::NetVm, Proto::Udp, 53),
            SILENT
        );
    }

    #[test]
    fn the_upstream_reaches_only_the_forward_on_the_uplink_address() {
        let s = default();
        assert_eq!(
            outcome(&s, &Source::Upstream, &Target::Uplink, Proto::Tcp, 8443),
            by("business-vm", SeenAs::Any)
        );
        assert_eq!(
            outcome(&s, &Source::Upstream, &Target::Uplink, Proto::Udp, 8443),
            SILENT
        );
        assert_eq!(
            outcome(&s, &Source::Upstream, &Target::Uplink, Proto::Tcp, 8444),
            SILENT
        );
        for target in [
            to("business-vm"),
            Target::NetVm,
            Target::Network,
            Target::Broadcast,
            Target::Unrelated(UNRELATED[0]),
            Target::Unrelated(UNRELATED[1]),
        ] {
            assert_eq!(
                outcome(&s, &Source::Upstream, &target, Proto::Tcp, 8443),
                SILENT,
                "{target}"
            );
        }
    }

    #[test]
    fn reflection_needs_the_direct_flow() {
        let s = default();
        // No VM may reach business-vm:8443 directly, so none through the uplink.
        for source in [
            vm("gui-vm"),
            vm("admin-vm"),
            vm("chrome-vm"),
            Source::Pool,
            Source::Unknown,
        ] {
            assert_eq!(
                outcome(&s, &source, &Target::Uplink, Proto::Tcp, 8443),
                SILENT,
                "{source}"
            );
        }
        let text = crate::lab::DEFAULT_SECURE.replace(
            "{ to = \"business-vm\", proto = \"tcp\", ports = 9000 }",
            "{ to = \"business-vm\", proto = \"tcp\", ports = \"8443-9000\" }",
        );
        let s =
            netvm_description::parse("x", &text, netvm_description::Format::Toml).expect("valid");
        let (o, flow) = expect(&s, &vm("gui-vm"), &Target::Uplink, Proto::Tcp, 8443);
        assert_eq!(o, by("business-vm", SeenAs::Any));
        assert_eq!(flow, Some(("gui-vm".into(), "business-vm".into(), 8443)));
    }

    #[test]
    fn the_internet_only_with_internet_and_masqueraded() {
        let s = default();
        let up = Target::UpstreamService;
        assert_eq!(
            outcome(&s, &vm("admin-vm"), &up, Proto::Tcp, 80),
            by(UPSTREAM, SeenAs::Uplink)
        );
        assert_eq!(
            outcome(&s, &vm("chrome-vm"), &up, Proto::Icmp, 0),
            service()
        );
        assert_eq!(outcome(&s, &vm("gui-vm"), &up, Proto::Tcp, 80), SILENT);
        assert_eq!(outcome(&s, &Source::Pool, &up, Proto::Tcp, 80), SILENT);
        assert_eq!(outcome(&s, &Source::Unknown, &up, Proto::Udp, 53), SILENT);
    }

    #[test]
    fn ipv6_is_nat66_like_ipv4_or_routed_to_the_vms_own_address() {
        let s = default();
        let rows = table(&s, 1);
        let row = |source: &Source, target: &Target, proto: Proto, port: u16| {
            rows.iter()
                .find(|r| {
                    r.source == *source && r.target == *target && r.proto == proto && r.port == port
                })
                .cloned()
                .expect("row")
        };
        let up = Source::Upstream;
        let fw = row(&up, &Target::Uplink, Proto::Tcp, 8443);
        assert_eq!(expect6(&s, false, &fw), by("business-vm", SeenAs::Any));
        assert_eq!(expect6(&s, true, &fw), SILENT);
        let echo = row(&up, &Target::Uplink, Proto::Icmp, 0);
        assert_eq!(expect6(&s, true, &echo), service());
        let direct = row(&up, &to("business-vm"), Proto::Tcp, 8443);
        assert_eq!(expect6(&s, false, &direct), SILENT);
        assert_eq!(expect6(&s, true, &direct), by("business-vm", SeenAs::Any));
        for (target, proto, port) in [
            (to("business-vm"), Proto::Udp, 8443),
            (to("business-vm"), Proto::Tcp, 8444),
            (to("business-vm"), Proto::Icmp, 0),
            (to("gui-vm"), Proto::Tcp, 8443),
            (Target::NetVm, Proto::Tcp, 8443),
        ] {
            assert_eq!(
                expect6(&s, true, &row(&up, &target, proto, port)),
                SILENT,
                "{target} {proto} {port}"
            );
        }
        let web = row(&vm("admin-vm"), &Target::UpstreamService, Proto::Tcp, 80);
        assert_eq!(expect6(&s, false, &web), by(UPSTREAM, SeenAs::Uplink));
        assert_eq!(expect6(&s, true, &web), by(UPSTREAM, SeenAs::Own));
        let no = row(&vm("gui-vm"), &Target::UpstreamService, Proto::Tcp, 80);
        assert_eq!(expect6(&s, true, &no), SILENT);
    }

    #[test]
    fn nothing_reaches_the_pool_the_unknown_port_or_the_host() {
        let s = default();
        for target in [Target::Pool, Target::Unknown, Target::Host] {
            for source in sources(&s) {
                for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
                    assert_eq!(outcome(&s, &source, &target, proto, 8080), SILENT);
                }
            }
        }
    }

    #[test]
    fn the_dev_host_reaches_into_the_internal_network_and_nothing_reaches_it() {
        let s = netvm_description::parse(
            "dev",
            crate::lab::DEFAULT_DEV,
            netvm_description::Format::Toml,
        )
        .expect("valid");
        assert_eq!(
            outcome(&s, &Source::Host, &to("gui-vm"), Proto::Tcp, 22),
            by("gui-vm", SeenAs::Own)
        );
        assert_eq!(
            outcome(&s, &Source::Host, &Target::Pool, Proto::Icmp, 0),
            service()
        );
        for source in [
            vm("gui-vm"),
            Source::Pool,
            Source::Unknown,
            Source::Upstream,
        ] {
            for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
                assert_eq!(outcome(&s, &source, &Target::Host, proto, 22), SILENT);
            }
        }
    }

    #[test]
    fn the_table_covers_every_source_destination_and_port() {
        let s = default();
        let ports = sample_ports(&s, 1);
        for p in [53, 8443, 8442, 8444, 9000, 9001, 9999, 9100, 22, 65535] {
            assert!(ports.contains(&p), "{p} in {ports:?}");
        }
        assert!(!ports.contains(&67) && !ports.contains(&68));
        let rows = table(&s, 1);
        let scanned = rows
            .iter()
            .filter(|r| {
                r.source == Source::Upstream && r.target == Target::Uplink && r.proto == Proto::Tcp
            })
            .count();
        assert!(scanned >= 1022, "{scanned}");
        let allowed: Vec<&Expectation> = rows.iter().filter(|r| r.flow.is_some()).collect();
        // gui-vm: chrome/business :9000, admin :9001; chrome and business: admin :9999.
        assert_eq!(allowed.len(), 5, "{allowed:?}");
        assert_eq!(table(&s, 1), rows);
        assert_ne!(sample_ports(&s, 2), ports);
    }
}
