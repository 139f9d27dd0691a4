//! The lab's upstream: the network the net-vm's uplink meets (the
//! Internet or a LAN), in one of four [`Flavour`]s chosen with `netvm lab
//! up --upstream` (docs/lab.md, "Upstream flavours"):
//!
//! * `ipv4`: DHCPv4 and DNS (dnsmasq), HTTP. What the lab always had.
//! * `dual-pd`: `ipv4` plus IPv6: SLAAC /64 and RDNSS (radvd, M=0 O=1),
//!   DHCPv6 (Kea) with IA_NA and IA_PD (a /56 of a /48), the delegated
//!   prefix routed to the requesting router; DNS answers AAAA too.
//! * `dual`: `ipv4` plus SLAAC and RDNSS only: no DHCPv6, so no delegated
//!   prefix (the net-vm has to NAT66).
//! * `ipv6-only`: no IPv4 on the link at all. SLAAC, RDNSS and PREF64
//!   (`netvm lab ra`: radvd 2.19 has no PREF64), DNS64 (unbound, in front
//!   of dnsmasq holding A records only), NAT64 (tayga) to an IPv4-only
//!   HTTP service in a namespace of its own (`nvl<id>-svc`).
//!
//! The configuration texts are pure functions (unit-tested below);
//! [`start`] writes them into the lab's directory and starts every daemon
//! in the lab's namespaces, in the foreground, its output in a log there.
//! `lab down` ends them with the namespaces (it kills every process in a
//! lab namespace), and the NAT64 TUN goes with its namespace.
//!
//! Addresses are all from documentation ranges (RFC 3849, RFC 5737). The
//! NAT64 prefix is therefore a network-specific one, 2001:db8:64::/96,
//! not the well-known 64:ff9b::/96: tayga 0.9.2 (Debian 12) refuses to
//! translate documentation IPv4 addresses under the well-known prefix
//! (RFC 6052 §3.1) and rejects 64:ff9b:1::/96 (RFC 8215) as reserved. A
//! net-vm that finds the prefix (PREF64 or RFC 7050) rather than assuming
//! it is what the lab tests anyway.

use crate::lab::wait;
use crate::netns::{self, io_error, LabError};
use crate::plan::{
    self, LabPlan, UPSTREAM_HTTP_PORT, UPSTREAM_IP, UPSTREAM_NAMES, UPSTREAM_PREFIX,
};
use serde::Serialize;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// What the upstream offers the net-vm's uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavour {
    /// DHCPv4 + DNS + HTTP over IPv4 only.
    Ipv4,
    /// IPv4 and IPv6 with SLAAC, DHCPv6 IA_NA and prefix delegation.
    DualPd,
    /// IPv4 and IPv6 with SLAAC only (no DHCPv6, no delegation).
    Dual,
    /// IPv6 only: SLAAC, PREF64, DNS64 and NAT64 to an IPv4-only service.
    Ipv6Only,
}

/// The flavour `lab up` uses unless told otherwise: `ipv4`, so every
/// existing lab test and sample keeps meaning what it meant until the
/// agent speaks IPv6 (issue 16); the one place to change it.
pub const DEFAULT: Flavour = Flavour::Ipv4;

/// Every flavour, in the order docs and help list them.
pub const ALL: [Flavour; 4] = [
    Flavour::Ipv4,
    Flavour::DualPd,
    Flavour::Dual,
    Flavour::Ipv6Only,
];

/// The upstream's IPv6 address on the link (router, DNS, HTTP).
pub const UPSTREAM_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 1);
/// The link's /64 (SLAAC, on-link).
pub const LINK_PREFIX6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 0);
/// `dual-pd`: DHCPv6 IA_NA addresses, first and last.
pub const NA_POOL: (Ipv6Addr, Ipv6Addr) = (
    Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 0x1000),
    Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 0x2000),
);
/// `dual-pd`: the /48 prefixes are delegated from.
pub const PD_POOL: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0), 48);
/// `dual-pd`: the length of each delegated prefix.
pub const PD_LENGTH: u8 = 56;
/// `ipv6-only`: the NAT64 prefix (PREF64, DNS64, tayga): network-specific,
/// see the module doc for why not 64:ff9b::/96.
pub const NAT64_PREFIX: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0, 0), 96);
/// `ipv6-only`: tayga's own IPv6 address (source of its ICMPv6 errors).
pub const TAYGA_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 1, 0, 0, 0, 1);
/// `ipv6-only`: tayga's own IPv4 address.
pub const TAYGA_IP4: Ipv4Addr = Ipv4Addr::new(192, 168, 255, 1);
/// `ipv6-only`: the IPv4 addresses tayga maps IPv6 clients to (what the
/// IPv4-only service sees).
pub const TAYGA_POOL: (Ipv4Addr, u8) = (Ipv4Addr::new(192, 168, 255, 0), 24);
/// `ipv6-only`: the IPv4-only HTTP service (every lab name's A record).
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// `ipv6-only`: the upstream's address toward the service.
pub const SERVICE_GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// `ipv6-only`: the service link's prefix length.
pub const SERVICE_PREFIX: u8 = 24;
/// RFC 7050 §2.2: the A records of `ipv4only.arpa`.
pub const IPV4ONLY_ARPA: [Ipv4Addr; 2] =
    [Ipv4Addr::new(192, 0, 0, 170), Ipv4Addr::new(192, 0, 0, 171)];
/// The DNS search domain the upstream announces (DNSSL, DHCPv6).
pub const SEARCH_DOMAIN: &str = "lab.test";
/// `ipv6-only`: where dnsmasq holds the A records unbound synthesises
/// from (loopback only).
const BACKEND_DNS: (Ipv4Addr, u16) = (Ipv4Addr::LOCALHOST, 5353);
/// The NAT64 TUN's name (in the upstream namespace).
pub const NAT64_TUN: &str = "nat64";
/// Unsolicited RAs this often (radvd's MaxRtrAdvInterval; `lab ra`).
const RA_INTERVAL_SECS: u64 = 10;

impl Flavour {
    /// Its name on the command line and in `lab.json`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Flavour::Ipv4 => "ipv4",
            Flavour::DualPd => "dual-pd",
            Flavour::Dual => "dual",
            Flavour::Ipv6Only => "ipv6-only",
        }
    }

    /// Whether the net-vm's link has IPv4 (DHCPv4 from dnsmasq).
    pub fn ipv4(self) -> bool {
        self != Flavour::Ipv6Only
    }

    /// Whether the link has IPv6 (router advertisements).
    pub fn ipv6(self) -> bool {
        self != Flavour::Ipv4
    }

    /// Whether DHCPv6 delegates prefixes.
    pub fn delegates(self) -> bool {
        self == Flavour::DualPd
    }

    /// Whether IPv4 is reached through NAT64 (and DNS64).
    pub fn nat64(self) -> bool {
        self == Flavour::Ipv6Only
    }

    /// The IPv4 address the lab's names resolve to and an IPv4 client
    /// reaches the upstream's HTTP at: the upstream itself, or (IPv6
    /// only) the IPv4-only service behind NAT64.
    pub fn http_ipv4(self) -> Ipv4Addr {
        if self.nat64() {
            SERVICE_IP
        } else {
            UPSTREAM_IP
        }
    }

    /// One line: the upstream's addresses and what answers there.
    pub fn summary(self) -> String {
        let http = UPSTREAM_HTTP_PORT;
        match self {
            Flavour::Ipv4 => format!("{UPSTREAM_IP}: DHCP + DNS (dnsmasq), HTTP :{http}"),
            Flavour::DualPd => format!(
                "{UPSTREAM_IP}, {UPSTREAM_IP6}: DHCPv4 + DNS (dnsmasq), RA (radvd), DHCPv6 IA_NA + IA_PD /{PD_LENGTH} (kea), HTTP :{http}"
            ),
            Flavour::Dual => format!(
                "{UPSTREAM_IP}, {UPSTREAM_IP6}: DHCPv4 + DNS (dnsmasq), RA (radvd, SLAAC only), HTTP :{http}"
            ),
            Flavour::Ipv6Only => format!(
                "{UPSTREAM_IP6} (no IPv4): RA + PREF64, DNS64 (unbound), NAT64 {}/{} (tayga) to {SERVICE_IP} HTTP :{http}",
                NAT64_PREFIX.0, NAT64_PREFIX.1
            ),
        }
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An upstream flavour name that is none of [`ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown upstream `{0}` (ipv4, dual-pd, dual or ipv6-only)")]
pub struct UnknownFlavour(pub String);

impl FromStr for Flavour {
    type Err = UnknownFlavour;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL.into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFlavour(s.to_owned()))
    }
}

/// `v4` embedded in a /96 NAT64 prefix (RFC 6052 §2.2).
pub fn nat64_address(prefix: Ipv6Addr, v4: Ipv4Addr) -> Ipv6Addr {
    let mut octets = prefix.octets();
    octets[12..].copy_from_slice(&v4.octets());
    Ipv6Addr::from(octets)
}

/// The dnsmasq command line: DHCPv4 and DNS on the link (with AAAA
/// records when the link has IPv6), or (`ipv6-only`) DNS alone on
/// loopback with A records only, the backend unbound synthesises from.
pub fn dnsmasq_args(flavour: Flavour, interface: &str, leases: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--pid-file=",
        "--user=root",
        // Its log into the lab's directory (through stderr), not syslog.
        "--log-facility=-",
    ]
    .map(str::to_owned)
    .to_vec();
    if flavour.nat64() {
        let (ip, port) = BACKEND_DNS;
        args.extend([
            format!("--listen-address={ip}"),
            format!("--port={port}"),
            format!("--local=/{SEARCH_DOMAIN}/"),
            "--log-queries".to_owned(),
        ]);
        args.extend(
            UPSTREAM_NAMES
                .iter()
                .map(|n| format!("--host-record={n},{SERVICE_IP}")),
        );
        args.extend(
            IPV4ONLY_ARPA
                .iter()
                .map(|a| format!("--host-record=ipv4only.arpa,{a}")),
        );
        return args;
    }
    let (first, last) = plan::UPSTREAM_POOL;
    args.extend([
        format!("--interface={interface}"),
        format!("--dhcp-range={first},{last},255.255.255.0,1h"),
        format!("--dhcp-option=option:router,{UPSTREAM_IP}"),
        format!("--dhcp-option=option:dns-server,{UPSTREAM_IP}"),
        format!("--dhcp-leasefile={}", leases.display()),
        "--log-dhcp".to_owned(),
    ]);
    args.extend(UPSTREAM_NAMES.iter().map(|n| {
        if flavour.ipv6() {
            format!("--host-record={n},{UPSTREAM_IP},{UPSTREAM_IP6}")
        } else {
            format!("--host-record={n},{UPSTREAM_IP}")
        }
    }));
    args
}

/// radvd's configuration (`dual-pd`, `dual`): the link's /64 for SLAAC,
/// the upstream as DNS server (RDNSS) and the search domain (DNSSL); O=1
/// when DHCPv6 answers (`dual-pd`), M=0 always.
pub fn radvd_conf(flavour: Flavour, interface: &str) -> String {
    let other = if flavour.delegates() { "on" } else { "off" };
    format!(
        "# netvm lab upstream ({flavour}): router advertisements on the net-vm's link.
interface {interface} {{
    AdvSendAdvert on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval {RA_INTERVAL_SECS};
    AdvManagedFlag off;
    AdvOtherConfigFlag {other};
    AdvDefaultLifetime 1800;
    prefix {LINK_PREFIX6}/64 {{
        AdvOnLink on;
        AdvAutonomous on;
    }};
    # RFC 8106 5.1: at least 3 x MaxRtrAdvInterval (radvd's default is
    # the interval itself and it warns above 2 x, after RFC 6106).
    RDNSS {UPSTREAM_IP6} {{
        AdvRDNSSLifetime 1800;
    }};
    DNSSL {SEARCH_DOMAIN} {{
        AdvDNSSLLifetime 1800;
    }};
}};
"
    )
}

/// The `netvm lab ra` arguments (`ipv6-only`): SLAAC /64, RDNSS, DNSSL,
/// PREF64, no DHCPv6 flags.
pub fn ra_args(interface: &str) -> Vec<String> {
    vec![
        "--interface".to_owned(),
        interface.to_owned(),
        "--prefix".to_owned(),
        LINK_PREFIX6.to_string(),
        "--rdnss".to_owned(),
        UPSTREAM_IP6.to_string(),
        "--dnssl".to_owned(),
        SEARCH_DOMAIN.to_owned(),
        "--pref64".to_owned(),
        format!("{}/{}", NAT64_PREFIX.0, NAT64_PREFIX.1),
        "--interval".to_owned(),
        RA_INTERVAL_SECS.to_string(),
    ]
}

/// Kea's DHCPv6 configuration (`dual-pd`): IA_NA from [`NA_POOL`], IA_PD
/// /[`PD_LENGTH`] from [`PD_POOL`], DNS server and search list; a fixed
/// server DUID (DUID-EN, the documentation enterprise number 32473, RFC
/// 5612) kept nowhere; leases in `leases`; the run_script hook
/// (`hook`) calls `script` on every lease change. Kea retries opening its
/// socket while the interface has no link-local address yet (QEMU mode:
/// until the VM opens its TAP).
pub fn kea_conf(interface: &str, leases: &Path, hook: &Path, script: &Path) -> String {
    let config = serde_json::json!({
        "Dhcp6": {
            "interfaces-config": {
                "interfaces": [interface],
                "service-sockets-max-retries": 100_000,
                "service-sockets-retry-wait-time": 500
            },
            "server-id": {
                "type": "EN",
                "enterprise-id": 32473,
                "identifier": "6e6574766d2d6c6162",
                "persist": false
            },
            "lease-database": {
                "type": "memfile",
                "name": leases.display().to_string(),
                "lfc-interval": 0
            },
            "renew-timer": 1800,
            "rebind-timer": 2880,
            "preferred-lifetime": 3600,
            "valid-lifetime": 7200,
            "option-data": [
                { "name": "dns-servers", "data": UPSTREAM_IP6.to_string() },
                { "name": "domain-search", "data": SEARCH_DOMAIN }
            ],
            "hooks-libraries": [{
                "library": hook.display().to_string(),
                "parameters": { "name": script.display().to_string(), "sync": false }
            }],
            "subnet6": [{
                "id": 1,
                "subnet": format!("{LINK_PREFIX6}/64"),
                "interface": interface,
                "pools": [{ "pool": format!("{}-{}", NA_POOL.0, NA_POOL.1) }],
                "pd-pools": [{
                    "prefix": PD_POOL.0.to_string(),
                    "prefix-len": PD_POOL.1,
                    "delegated-len": PD_LENGTH
                }]
            }],
            "loggers": [{
                "name": "kea-dhcp6",
                "output_options": [{ "output": "stdout" }],
                "severity": "INFO"
            }]
        }
    });
    serde_json::to_string_pretty(&config).unwrap_or_default()
}

/// The script Kea's run_script hook runs: a delegating router must route
/// each delegated prefix to the router that asked for it (RFC 8415 §6.3),
/// and Kea installs no routes. The next hop is the address the request
/// came from (`QUERY6_REMOTE_ADDR`: the requester's link-local address,
/// whatever way its interface identifier was made), so nothing about the
/// net-vm has to be known in advance. Routes are replaced on every
/// commit (renewals too) and removed on release, expiry or decline;
/// each change is logged to `log`.
pub fn pd_route_script(log: &Path) -> String {
    format!(
        r#"#!/bin/sh
# netvm lab upstream (dual-pd): Kea's run_script hook. Routes each delegated
# prefix via the router that requested it; Kea itself installs no routes.
log='{log}'
route() {{ # add|del PREFIX LENGTH [VIA]
    if [ "$1" = add ]; then
        ip -6 route replace "$2/$3" via "$4" dev "$QUERY6_IFACE_NAME" &&
            echo "route $2/$3 via $4 dev $QUERY6_IFACE_NAME" >> "$log"
    else
        ip -6 route del "$2/$3" 2>/dev/null && echo "unroute $2/$3" >> "$log"
    fi
}}
case "$1" in
leases6_committed)
    i=0
    while [ "$i" -lt "${{DELETED_LEASES6_SIZE:-0}}" ]; do
        eval "t=\$DELETED_LEASES6_AT${{i}}_TYPE a=\$DELETED_LEASES6_AT${{i}}_ADDRESS l=\$DELETED_LEASES6_AT${{i}}_PREFIX_LEN"
        [ "$t" = IA_PD ] && route del "$a" "$l"
        i=$((i + 1))
    done
    i=0
    while [ "$i" -lt "${{LEASES6_SIZE:-0}}" ]; do
        eval "t=\$LEASES6_AT${{i}}_TYPE a=\$LEASES6_AT${{i}}_ADDRESS l=\$LEASES6_AT${{i}}_PREFIX_LEN"
        [ "$t" = IA_PD ] && route add "$a" "$l" "$QUERY6_REMOTE_ADDR"
        i=$((i + 1))
    done
    ;;
lease6_release|lease6_expire|lease6_decline)
    [ "$LEASE6_TYPE" = IA_PD ] && route del "$LEASE6_ADDRESS" "$LEASE6_PREFIX_LEN"
    ;;
esac
exit 0
"#,
        log = log.display()
    )
}

/// tayga's configuration (`ipv6-only`): stateless NAT64 between
/// [`NAT64_PREFIX`] and IPv4, each IPv6 client given an address of
/// [`TAYGA_POOL`] (kept in `data_dir`).
pub fn tayga_conf(data_dir: &Path) -> String {
    format!(
        "# netvm lab upstream (ipv6-only): NAT64 toward the IPv4-only service.
tun-device {NAT64_TUN}
ipv4-addr {TAYGA_IP4}
ipv6-addr {TAYGA_IP6}
prefix {}/{}
dynamic-pool {}/{}
data-dir {}
",
        NAT64_PREFIX.0,
        NAT64_PREFIX.1,
        TAYGA_POOL.0,
        TAYGA_POOL.1,
        data_dir.display()
    )
}

/// unbound's configuration (`ipv6-only`): DNS64 on the upstream's IPv6
/// address, everything forwarded to the dnsmasq backend, which knows only
/// A records: so every AAAA is synthesised in [`NAT64_PREFIX`] (unbound
/// synthesises nothing for its own local-data, hence the backend). The
/// RFC 6761 default that blocks `test.` is lifted; no DNSSEC, no root
/// hints, no control socket; `ip-freebind` so it starts before the
/// address is usable (QEMU mode).
pub fn unbound_conf(dir: &Path) -> String {
    let (ip, port) = BACKEND_DNS;
    format!(
        "# netvm lab upstream (ipv6-only): DNS64 in front of dnsmasq.
server:
    username: \"\"
    chroot: \"\"
    directory: \"{dir}\"
    pidfile: \"\"
    use-syslog: no
    logfile: \"\"
    verbosity: 1
    log-queries: yes
    num-threads: 1
    interface: {UPSTREAM_IP6}
    port: 53
    ip-freebind: yes
    do-ip4: yes
    do-ip6: yes
    do-not-query-localhost: no
    access-control: ::/0 allow
    access-control: 0.0.0.0/0 allow
    module-config: \"dns64 iterator\"
    dns64-prefix: {}/{}
    local-zone: \"test.\" nodefault
forward-zone:
    name: \".\"
    forward-addr: {ip}@{port}
remote-control:
    control-enable: no
",
        NAT64_PREFIX.0,
        NAT64_PREFIX.1,
        dir = dir.display()
    )
}

/// Writes `text` to `path`.
fn write(path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(io_error(path))
}

/// Sets `/proc/sys/net/...` keys inside `ns` (per-namespace files).
fn sysctl(ns: &str, keys: &[(&str, &str)]) -> Result<(), LabError> {
    netns::inside(ns, || {
        for (key, value) in keys {
            let path = Path::new("/proc/sys/net").join(key);
            std::fs::write(&path, value).map_err(io_error(&path))?;
        }
        Ok(())
    })?
}

/// Starts `args` in `ns` with its output in `dir/<name>.log`, then waits
/// until the log shows `ready` (or, with `None`, a moment in which it did
/// not stop); fails with the log's tail if it stopped.
fn daemon(
    ns: &str,
    args: &[&str],
    dir: &Path,
    name: &str,
    ready: Option<&str>,
) -> Result<u32, LabError> {
    let log = dir.join(format!("{name}.log"));
    let pid = netns::daemon(ns, args, &log)?;
    let stopped = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        LabError::Lab(format!(
            "{name} stopped; its log ({}):\n{}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    };
    match ready {
        Some(line) => wait(Duration::from_secs(20), &format!("{name} to start"), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(line) {
                return Some(Ok(()));
            }
            (!netns::alive(pid)).then(|| Err(stopped()))
        })??,
        None => {
            std::thread::sleep(Duration::from_millis(300));
            if !netns::alive(pid) {
                return Err(stopped());
            }
        }
    }
    Ok(pid)
}

/// Where Debian (or another layout) keeps Kea's run_script hook.
fn kea_hook() -> Result<PathBuf, LabError> {
    let name = "libdhcp_run_script.so";
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("kea/hooks").join(name))
        .collect();
    candidates
        .extend(["/usr/lib/kea/hooks", "/usr/lib64/kea/hooks"].map(|d| Path::new(d).join(name)));
    candidates.into_iter().find(|p| p.exists()).ok_or_else(|| {
        LabError::Lab(format!(
            "the dual-pd upstream needs Kea's run_script hook ({name}, package kea-common)"
        ))
    })
}

/// Brings the upstream up in `plan.upstream`, whose interface
/// `plan.upstream_if` exists already (a veth to the net-vm or a TAP):
/// addresses, the daemons of `plan.upstream_flavour`, and (`ipv6-only`)
/// the IPv4-only service namespace. Files and logs go to `dir`; `netvm`
/// is the binary that serves HTTP and (`ipv6-only`) advertises.
pub fn start(plan: &LabPlan, dir: &Path, netvm: &Path) -> Result<(), LabError> {
    let flavour = plan.upstream_flavour;
    let up = plan.upstream.as_str();
    let link = plan.upstream_if.as_str();
    let netvm = netvm.display().to_string();
    let path = |name: &str| dir.join(name).display().to_string();
    let http = UPSTREAM_HTTP_PORT.to_string();

    if flavour.ipv6() {
        // A router: it forwards (radvd insists), and toward the NAT64 and
        // the delegated prefixes it has to.
        sysctl(up, &[("ipv6/conf/all/forwarding", "1")])?;
        // No DAD for its own address, so DNS and HTTP bind it at once.
        let cidr = format!("{UPSTREAM_IP6}/64");
        netns::run_in(
            up,
            &["ip", "-6", "addr", "add", &cidr, "dev", link, "nodad"],
        )?;
    }
    if flavour.ipv4() {
        let cidr = format!("{UPSTREAM_IP}/{UPSTREAM_PREFIX}");
        netns::run_in(up, &["ip", "addr", "add", &cidr, "dev", link])?;
    }
    if flavour.nat64() {
        start_nat64(plan, dir, &netvm)?;
    }

    let dnsmasq = dnsmasq_args(flavour, link, &dir.join("dnsmasq.leases"));
    let args: Vec<&str> = dnsmasq.iter().map(String::as_str).collect();
    daemon(up, &args, dir, "dnsmasq", Some("started, version"))?;

    match flavour {
        Flavour::Ipv4 => {}
        Flavour::DualPd | Flavour::Dual => {
            let conf = dir.join("radvd.conf");
            write(&conf, &radvd_conf(flavour, link))?;
            let (conf, pid) = (conf.display().to_string(), path("radvd.pid"));
            let args = [
                "radvd",
                "--nodaemon",
                "--logmethod",
                "stderr",
                "--config",
                &conf,
                "--pidfile",
                &pid,
            ];
            daemon(up, &args, dir, "radvd", Some("started"))?;
        }
        Flavour::Ipv6Only => {
            let conf = dir.join("unbound.conf");
            write(&conf, &unbound_conf(dir))?;
            let conf = conf.display().to_string();
            daemon(
                up,
                &["unbound", "-d", "-c", &conf],
                dir,
                "unbound",
                Some("start of service"),
            )?;
            let mut args = vec![netvm.as_str(), "lab", "ra"];
            let ra = ra_args(link);
            args.extend(ra.iter().map(String::as_str));
            daemon(up, &args, dir, "ra", None)?;
        }
    }
    if flavour.delegates() {
        let script = dir.join("pd-routes.sh");
        write(&script, &pd_route_script(&dir.join("pd-routes.log")))?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(io_error(&script))?;
        let conf = dir.join("kea-dhcp6.json");
        write(
            &conf,
            &kea_conf(link, &dir.join("kea-leases6.csv"), &kea_hook()?, &script),
        )?;
        let (pids, locks) = (
            format!("KEA_PIDFILE_DIR={}", dir.display()),
            format!("KEA_LOCKFILE_DIR={}", dir.display()),
        );
        let conf = conf.display().to_string();
        let args = ["env", &pids, &locks, "kea-dhcp6", "-c", &conf];
        daemon(up, &args, dir, "kea-dhcp6", Some("DHCP6_STARTED"))?;
    }

    let mut serve = vec![netvm.as_str(), "lab", "serve", "upstream", "--port", &http];
    if flavour.ipv6() {
        serve.push("--ipv6");
    }
    daemon(up, &serve, dir, "serve-upstream", Some("serving upstream"))?;
    Ok(())
}

/// `ipv6-only`: the IPv4-only service in its own namespace behind the
/// upstream, and tayga between [`NAT64_PREFIX`] and it.
fn start_nat64(plan: &LabPlan, dir: &Path, netvm: &str) -> Result<(), LabError> {
    let up = plan.upstream.as_str();
    let svc = plan
        .upstream_service
        .as_deref()
        .ok_or_else(|| LabError::Lab("the ipv6-only plan has no service namespace".to_owned()))?;
    sysctl(up, &[("ipv4/ip_forward", "1")])?;
    netns::create(svc)?;
    netns::veth(&plan::Veth {
        a: plan::End {
            ns: up.to_owned(),
            name: "svc0".to_owned(),
            mac: None,
        },
        b: plan::End {
            ns: svc.to_owned(),
            name: "eth0".to_owned(),
            mac: None,
        },
    })?;
    let gateway = SERVICE_GATEWAY.to_string();
    netns::run_in(
        up,
        &[
            "ip",
            "addr",
            "add",
            &format!("{gateway}/{SERVICE_PREFIX}"),
            "dev",
            "svc0",
        ],
    )?;
    netns::run_in(
        svc,
        &[
            "ip",
            "addr",
            "add",
            &format!("{SERVICE_IP}/{SERVICE_PREFIX}"),
            "dev",
            "eth0",
        ],
    )?;
    netns::run_in(svc, &["ip", "route", "add", "default", "via", &gateway])?;
    let http = UPSTREAM_HTTP_PORT.to_string();
    daemon(
        svc,
        &[netvm, "lab", "serve", "upstream", "--port", &http],
        dir,
        "serve-ipv4-service",
        Some("serving upstream"),
    )?;

    // tayga: its TUN made first (so addresses and routes exist before it
    // translates), then the daemon in the foreground.
    let data = dir.join("tayga");
    std::fs::create_dir_all(&data).map_err(io_error(&data))?;
    let conf = dir.join("tayga.conf");
    write(&conf, &tayga_conf(&data))?;
    let conf = conf.display().to_string();
    netns::run_in(up, &["tayga", "--config", &conf, "--mktun"])?;
    netns::run_in(up, &["ip", "link", "set", NAT64_TUN, "up"])?;
    for route in [
        format!("{}/{}", NAT64_PREFIX.0, NAT64_PREFIX.1),
        format!("{TAYGA_IP6}/128"),
        format!("{}/{}", TAYGA_POOL.0, TAYGA_POOL.1),
    ] {
        netns::run_in(up, &["ip", "route", "add", &route, "dev", NAT64_TUN])?;
    }
    daemon(
        up,
        &["tayga", "--config", &conf, "--nodetach"],
        dir,
        "tayga",
        None,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_default_is_ipv4() {
        for f in ALL {
            assert_eq!(f.as_str().parse::<Flavour>(), Ok(f));
            assert_eq!(serde_json::to_value(f).expect("json"), f.as_str());
        }
        assert_eq!(DEFAULT, Flavour::Ipv4);
        assert!("ipv6".parse::<Flavour>().is_err());
    }

    #[test]
    fn what_each_flavour_offers() {
        use Flavour::*;
        let rows: Vec<_> = ALL
            .iter()
            .map(|f| (f.ipv4(), f.ipv6(), f.delegates(), f.nat64()))
            .collect();
        assert_eq!(
            rows,
            [
                (true, false, false, false),
                (true, true, true, false),
                (true, true, false, false),
                (false, true, false, true)
            ]
        );
        assert_eq!(Ipv6Only.http_ipv4(), SERVICE_IP);
        assert_eq!(Dual.http_ipv4(), UPSTREAM_IP);
    }

    #[test]
    fn nat64_addresses_embed_the_ipv4_address_last() {
        let (prefix, _) = NAT64_PREFIX;
        assert_eq!(
            nat64_address(prefix, IPV4ONLY_ARPA[0]),
            "2001:db8:64::c000:aa".parse::<Ipv6Addr>().expect("literal")
        );
        assert_eq!(
            nat64_address(prefix, SERVICE_IP),
            "2001:db8:64::c633:640a"
                .parse::<Ipv6Addr>()
                .expect("literal")
        );
    }

    #[test]
    fn dnsmasq_answers_aaaa_only_where_the_link_has_ipv6() {
        let leases = Path::new("/run/netvm-lab/0/dnsmasq.leases");
        let ipv4 = dnsmasq_args(Flavour::Ipv4, "up0", leases);
        assert!(ipv4.contains(&"--host-record=www.lab.test,203.0.113.1".to_owned()));
        assert!(ipv4.contains(&"--interface=up0".to_owned()));
        let dual = dnsmasq_args(Flavour::Dual, "up0", leases);
        assert!(dual.contains(&"--host-record=www.lab.test,203.0.113.1,2001:db8:10::1".to_owned()));
        assert!(dual.iter().any(|a| a.starts_with("--dhcp-range=")));
        let only = dnsmasq_args(Flavour::Ipv6Only, "up0", leases);
        assert!(!only
            .iter()
            .any(|a| a.starts_with("--dhcp") || a.starts_with("--interface")));
        assert!(only.contains(&"--listen-address=127.0.0.1".to_owned()));
        assert!(only.contains(&"--host-record=www.lab.test,198.51.100.10".to_owned()));
        assert!(only.contains(&"--host-record=ipv4only.arpa,192.0.0.170".to_owned()));
        assert!(only.contains(&"--host-record=ipv4only.arpa,192.0.0.171".to_owned()));
    }

    #[test]
    fn radvd_sets_other_config_only_where_dhcpv6_answers() {
        let pd = radvd_conf(Flavour::DualPd, "up0");
        assert!(pd.contains("interface up0 {"));
        assert!(pd.contains("AdvManagedFlag off;"));
        assert!(pd.contains("AdvOtherConfigFlag on;"));
        assert!(pd.contains("prefix 2001:db8:10::/64 {"));
        assert!(pd.contains("RDNSS 2001:db8:10::1 {"));
        assert!(pd.contains("AdvRDNSSLifetime 1800;"));
        assert!(radvd_conf(Flavour::Dual, "up0").contains("AdvOtherConfigFlag off;"));
    }

    #[test]
    fn kea_delegates_56s_of_the_48_and_runs_the_route_script() {
        let text = kea_conf(
            "up0",
            Path::new("/d/kea-leases6.csv"),
            Path::new("/h/libdhcp_run_script.so"),
            Path::new("/d/pd-routes.sh"),
        );
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let subnet = &v["Dhcp6"]["subnet6"][0];
        assert_eq!(subnet["interface"], "up0");
        assert_eq!(
            subnet["pools"][0]["pool"],
            "2001:db8:10::1000-2001:db8:10::2000"
        );
        assert_eq!(subnet["pd-pools"][0]["prefix"], "2001:db8:100::");
        assert_eq!(subnet["pd-pools"][0]["prefix-len"], 48);
        assert_eq!(subnet["pd-pools"][0]["delegated-len"], 56);
        let hook = &v["Dhcp6"]["hooks-libraries"][0];
        assert_eq!(hook["parameters"]["name"], "/d/pd-routes.sh");
        assert_eq!(v["Dhcp6"]["option-data"][0]["data"], "2001:db8:10::1");
    }

    #[test]
    fn the_route_script_routes_delegations_via_the_requester() {
        let script = pd_route_script(Path::new("/d/pd-routes.log"));
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains(r#"ip -6 route replace "$2/$3" via "$4" dev "$QUERY6_IFACE_NAME""#));
        assert!(script.contains(r#"route add "$a" "$l" "$QUERY6_REMOTE_ADDR""#));
        assert!(script.contains("${LEASES6_SIZE:-0}"));
        assert!(script.contains("log='/d/pd-routes.log'"));
    }

    #[test]
    fn tayga_and_unbound_share_the_nat64_prefix() {
        let tayga = tayga_conf(Path::new("/d/tayga"));
        assert!(tayga.contains("prefix 2001:db8:64::/96\n"));
        assert!(tayga.contains("dynamic-pool 192.168.255.0/24\n"));
        assert!(tayga.contains("tun-device nat64\n"));
        let unbound = unbound_conf(Path::new("/d"));
        assert!(unbound.contains("dns64-prefix: 2001:db8:64::/96\n"));
        assert!(unbound.contains("module-config: \"dns64 iterator\"\n"));
        assert!(unbound.contains("interface: 2001:db8:10::1\n"));
        assert!(unbound.contains("forward-addr: 127.0.0.1@5353\n"));
    }

    #[test]
    fn the_advertiser_announces_pref64() {
        let args = ra_args("up0").join(" ");
        assert_eq!(
            args,
            "--interface up0 --prefix 2001:db8:10:: --rdnss 2001:db8:10::1 --dnssl lab.test --pref64 2001:db8:64::/96 --interval 10"
        );
    }
}
