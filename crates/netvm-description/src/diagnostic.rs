//! What is wrong with a description, where, and what to do about it.
//!
//! Every rejection is a [`Problem`] (a named reason with the values it
//! concerns), placed at a [`FieldPath`] and, when the file has text there,
//! a line and column. [`DescriptionError`] holds all of them and renders
//! them the way compilers do: the line, a caret under the offending text,
//! and a hint.

use crate::source::{FieldPath, Node};
use crate::values::{Ipv4Cidr, Ipv4Range, Ipv6Cidr, MacAddr, PortRange, Seconds};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// A reason to reject a description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The text is not valid TOML/JSON.
    #[error("syntax error: {message}")]
    Syntax {
        /// The parser's message.
        message: String,
    },
    /// A key that the format does not have.
    #[error("unknown key `{key}`")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The closest known key, if any is close.
        suggestion: Option<String>,
        /// The keys allowed here.
        expected: Vec<String>,
    },
    /// A value of the wrong type or form.
    #[error("{message}")]
    InvalidValue {
        /// What is wrong with it.
        message: String,
    },
    /// The subnet is written with host bits set.
    #[error("subnet {subnet} is not a network address")]
    SubnetNotNetworkAddress {
        /// As written.
        subnet: Ipv4Cidr,
    },
    /// The subnet prefix is too short or too long.
    #[error("subnet prefix /{prefix} is not supported")]
    SubnetPrefix {
        /// As written.
        prefix: u8,
    },
    /// MTU out of range.
    #[error("MTU {mtu} is out of range")]
    MtuOutOfRange {
        /// As written.
        mtu: u16,
    },
    /// The MAC prefix has the group bit set.
    #[error("MAC prefix makes multicast addresses")]
    MulticastMacPrefix,
    /// `netvm.uplink` is missing.
    #[error("the net-vm has no uplink")]
    MissingUplink,
    /// Not exactly one of pci/usb/platform/interface.
    #[error("the uplink must name exactly one device, found {found}")]
    UplinkDeviceCount {
        /// What was found, e.g. "none" or "pci and usb".
        found: String,
    },
    /// Two uplinks are the same device or have the same name.
    #[error("this uplink is the same device (or interface, or MAC) as uplink {name}")]
    DuplicateUplink {
        /// The other uplink's interface name.
        name: String,
    },
    /// A Wi-Fi setting on a wired uplink.
    #[error("`{field}` only applies to a Wi-Fi uplink (`kind = \"wifi\"`)")]
    WifiOnly {
        /// The field.
        field: &'static str,
    },
    /// An SSID that is empty or longer than 32 bytes.
    #[error("an SSID is 1 to 32 bytes, not {length}")]
    SsidLength {
        /// Its length in bytes.
        length: usize,
    },
    /// The same SSID twice on one uplink.
    #[error("SSID `{ssid}` is listed twice")]
    DuplicateSsid {
        /// The SSID.
        ssid: String,
    },
    /// A passphrase file named by a relative path.
    #[error("psk_file `{path}` is not an absolute path")]
    PskFileRelative {
        /// The path.
        path: String,
    },
    /// A VM in both `control_allow` and `control_read`.
    #[error("`{name}` is in both `control_allow` and `control_read`")]
    ControlListedTwice {
        /// The VM.
        name: String,
    },
    /// The control port is another service's (or 0).
    #[error("control port {port} is taken by {what}")]
    ControlPortTaken {
        /// The port.
        port: u16,
        /// Whose it is.
        what: &'static str,
    },
    /// IPv6 settings on an uplink other than the first.
    #[error("`{field}` only applies to the first uplink (IPv6 runs on it alone)")]
    Ipv6OnPrimaryOnly {
        /// The field.
        field: &'static str,
    },
    /// A PCI-only uplink setting on another kind of uplink.
    #[error("`{field}` only applies to a PCI uplink (`pci`)")]
    PciOnly {
        /// The field.
        field: &'static str,
    },
    /// A static-only uplink setting with DHCP addressing.
    #[error("`{field}` only applies to static addressing")]
    StaticOnly {
        /// The field.
        field: &'static str,
    },
    /// Static addressing without a required setting.
    #[error("static addressing needs `{field}`")]
    StaticNeeds {
        /// The missing field.
        field: &'static str,
    },
    /// An IPv6 prefix for the internal network that is not a /64.
    #[error("the internal IPv6 prefix {prefix} is not a /64")]
    Ipv6PrefixLength {
        /// As written.
        prefix: Ipv6Cidr,
    },
    /// An IPv6 prefix with bits set beyond its length.
    #[error("{prefix} is not a prefix: it has bits set beyond /{len}")]
    Ipv6PrefixNotNetwork {
        /// As written.
        prefix: Ipv6Cidr,
        /// Its length.
        len: u8,
    },
    /// An internal IPv6 prefix that is neither unique local nor global.
    #[error("{prefix} is neither a unique local (fc00::/7) nor a global (2000::/3) prefix")]
    Ipv6PrefixScope {
        /// As written.
        prefix: Ipv6Cidr,
    },
    /// An IPv6 setting while IPv6 is off.
    #[error("`{field}` is set but IPv6 is off")]
    Ipv6Off {
        /// The field.
        field: &'static str,
    },
    /// A static-only IPv6 uplink setting without static IPv6.
    #[error("`{field}` only applies to `ipv6 = \"static\"`")]
    Ipv6StaticOnly {
        /// The field.
        field: &'static str,
    },
    /// Static IPv6 without a required setting.
    #[error("static IPv6 needs `{field}`")]
    Ipv6StaticNeeds {
        /// The missing field.
        field: &'static str,
    },
    /// A static IPv6 gateway neither link-local nor on the uplink prefix.
    #[error("IPv6 gateway {gateway} is neither link-local nor inside {network}")]
    Ipv6GatewayOutside {
        /// The gateway.
        gateway: Ipv6Addr,
        /// The uplink prefix.
        network: Ipv6Cidr,
    },
    /// An address that cannot be an interface's or a server's.
    #[error("{address} is not a unicast address")]
    Ipv6NotUnicast {
        /// As written.
        address: Ipv6Addr,
    },
    /// A NAT64 prefix of a length RFC 6052 does not define.
    #[error("NAT64 prefix {prefix} must be /32, /40, /48, /56, /64 or /96")]
    Nat64PrefixLength {
        /// As written.
        prefix: Ipv6Cidr,
    },
    /// The static gateway is not in the uplink subnet.
    #[error("gateway {gateway} is not inside the uplink network {network}")]
    GatewayOutsideUplink {
        /// The gateway.
        gateway: Ipv4Addr,
        /// The uplink network.
        network: Ipv4Cidr,
    },
    /// The uplink network overlaps the internal subnet.
    #[error("uplink network {uplink} overlaps the internal subnet {subnet}")]
    UplinkOverlapsInternal {
        /// The uplink network.
        uplink: Ipv4Cidr,
        /// The internal subnet.
        subnet: Ipv4Cidr,
    },
    /// An option that only dev mode has, in secure mode.
    #[error("`{field}` is only allowed in dev mode")]
    DevOnly {
        /// The field.
        field: &'static str,
    },
    /// Dev mode with a passed-through uplink.
    #[error("dev mode cannot pass the uplink through ({kind})")]
    DevModePassthrough {
        /// `pci`, `usb` or `platform`.
        kind: &'static str,
    },
    /// Dev mode without the host's uplink.
    #[error("dev mode needs the host's uplink interface")]
    DevNeedsHostUplink,
    /// host.ip or host.mac while the host has no internal address.
    #[error("`host.{field}` is set but the host has no internal address")]
    HostAddressDisabled {
        /// `ip` or `mac`.
        field: &'static str,
    },
    /// A name used by the system itself.
    #[error("the name `{name}` is reserved")]
    ReservedName {
        /// The name.
        name: String,
    },
    /// Two VMs with one name.
    #[error("the name `{name}` is used twice")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// Two endpoints with one MAC.
    #[error("MAC {mac} is used twice ({first} and {second})")]
    DuplicateMac {
        /// The MAC.
        mac: MacAddr,
        /// The first owner.
        first: String,
        /// The second owner.
        second: String,
    },
    /// Two endpoints with one address.
    #[error("address {ip} is used twice ({first} and {second})")]
    DuplicateIp {
        /// The address.
        ip: Ipv4Addr,
        /// The first owner.
        first: String,
        /// The second owner.
        second: String,
    },
    /// A multicast MAC.
    #[error("MAC {mac} is a multicast address")]
    MulticastMac {
        /// The MAC.
        mac: MacAddr,
    },
    /// The broadcast MAC.
    #[error("MAC {mac} is the broadcast address")]
    BroadcastMac {
        /// The MAC.
        mac: MacAddr,
    },
    /// The all-zero MAC.
    #[error("MAC {mac} is all zeros")]
    ZeroMac {
        /// The MAC.
        mac: MacAddr,
    },
    /// An address outside the internal subnet.
    #[error("address {ip} is outside the subnet {subnet}")]
    IpOutsideSubnet {
        /// The address.
        ip: Ipv4Addr,
        /// The subnet.
        subnet: Ipv4Cidr,
    },
    /// The subnet's network address.
    #[error("address {ip} is the subnet's network address")]
    IpIsNetworkAddress {
        /// The address.
        ip: Ipv4Addr,
    },
    /// The subnet's broadcast address.
    #[error("address {ip} is the subnet's broadcast address")]
    IpIsBroadcast {
        /// The address.
        ip: Ipv4Addr,
    },
    /// A described address inside the dynamic pool.
    #[error("address {ip} of {owner} is inside the dynamic pool {pool}")]
    IpInPool {
        /// The address.
        ip: Ipv4Addr,
        /// Who has it.
        owner: String,
        /// The pool.
        pool: Ipv4Range,
    },
    /// The pool reaches outside the subnet (or onto its first/last address).
    #[error("pool {pool} is not inside the usable addresses of {subnet}")]
    PoolOutsideSubnet {
        /// The pool.
        pool: Ipv4Range,
        /// The subnet.
        subnet: Ipv4Cidr,
    },
    /// No address left to derive.
    #[error("no free address left in {subnet} for {owner}")]
    NoFreeAddress {
        /// Who needed one.
        owner: String,
        /// The subnet.
        subnet: Ipv4Cidr,
    },
    /// The host number does not fit after the MAC prefix.
    #[error(
        "cannot derive a MAC for {owner}: host number {number} does not fit after the MAC prefix"
    )]
    MacPrefixTooLong {
        /// Who needed one.
        owner: String,
        /// The host number.
        number: u32,
    },
    /// A rule names a VM that does not exist.
    #[error("no VM is called `{name}`")]
    UnknownVm {
        /// The name.
        name: String,
        /// The closest VM name, if any is close.
        suggestion: Option<String>,
    },
    /// A rule from a VM to itself.
    #[error("`{name}` has a rule to itself")]
    SelfRule {
        /// The VM.
        name: String,
    },
    /// Ports given for ICMP.
    #[error("ICMP has no ports")]
    PortsWithIcmp,
    /// A port forward for ICMP.
    #[error("only tcp and udp ports can be forwarded")]
    ForwardNotTcpUdp,
    /// Forward target range runs past 65535.
    #[error("forward to port {to_port} runs past 65535 for {ports}")]
    ForwardTargetOverflow {
        /// First target port.
        to_port: u16,
        /// The uplink range.
        ports: PortRange,
    },
    /// Two forwards share an uplink port.
    #[error("uplink {proto} port {ports} is already forwarded to {other}")]
    DuplicateForward {
        /// Protocol.
        proto: crate::values::Protocol,
        /// The ports.
        ports: PortRange,
        /// The VM that has them.
        other: String,
    },
    /// Lease too short.
    #[error("lease time {lease} is shorter than 60 seconds")]
    LeaseTooShort {
        /// The lease time.
        lease: Seconds,
    },
    /// T1 < T2 < lease violated.
    #[error("DHCP times out of order: renew {renew}, rebind {rebind}, lease {lease}")]
    TimesOutOfOrder {
        /// T1.
        renew: Seconds,
        /// T2.
        rebind: Seconds,
        /// Lease.
        lease: Seconds,
    },
    /// A rate limit of zero.
    #[error("`{field}` must be at least 1")]
    ZeroLimit {
        /// The field.
        field: &'static str,
    },
    /// A limit outside the range it may take.
    #[error("`{field}` is {value}, outside {min} to {max}")]
    LimitOutOfRange {
        /// The field.
        field: &'static str,
        /// As written (seconds for durations).
        value: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// A route's gateway outside the subnet.
    #[error("route gateway {gateway} is outside the subnet {subnet}")]
    RouteGatewayOutsideSubnet {
        /// The gateway.
        gateway: Ipv4Addr,
        /// The subnet.
        subnet: Ipv4Cidr,
    },
    /// A route destination with host bits set.
    #[error("route destination {destination} is not a network address")]
    RouteNotNetworkAddress {
        /// As written.
        destination: Ipv4Cidr,
    },
    /// A DNS record whose name a VM already has.
    #[error("DNS record `{name}` has the name of a VM")]
    RecordShadowsVm {
        /// The name.
        name: String,
    },
    /// Two DNS records with one name.
    #[error("DNS record `{name}` is defined twice")]
    DuplicateRecord {
        /// The name.
        name: String,
    },
}

impl Problem {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        use Problem::*;
        Some(match self {
            Syntax { .. } => return None,
            UnknownKey {
                suggestion: Some(s),
                ..
            } => format!("did you mean `{s}`?"),
            UnknownKey { expected, .. } if expected.is_empty() => {
                "this table takes no keys".to_owned()
            }
            UnknownKey { expected, .. } => format!("expected one of: {}", expected.join(", ")),
            InvalidValue { .. } => "see `netvm schema` or docs/system-description.md".to_owned(),
            SubnetNotNetworkAddress { subnet } => {
                format!("did you mean {}?", subnet.truncated())
            }
            SubnetPrefix { .. } => "use a prefix from /8 to /30".to_owned(),
            MtuOutOfRange { .. } => "use an MTU from 576 to 9000".to_owned(),
            MulticastMacPrefix => {
                "the first octet must be even; 02 (locally administered) is usual".to_owned()
            }
            MissingUplink => {
                "add [netvm.uplink] with pci = \"…\", usb = \"…\", platform = \"…\" or interface = \"…\"".to_owned()
            }
            UplinkDeviceCount { .. } => {
                "keep one of `pci`, `usb`, `platform` or `interface`".to_owned()
            }
            DuplicateUplink { .. } => "describe each uplink once".to_owned(),
            WifiOnly { .. } => "set `kind = \"wifi\"` on this uplink, or remove it".to_owned(),
            SsidLength { .. } => "write the network's name as it is broadcast".to_owned(),
            DuplicateSsid { .. } => "list each network once".to_owned(),
            PskFileRelative { .. } => {
                "name the file by its absolute path in the Net VM, e.g. /etc/netvm/home.psk"
                    .to_owned()
            }
            ControlListedTwice { .. } => {
                "keep the VM in one list: `control_allow` already lets it read".to_owned()
            }
            ControlPortTaken { .. } => {
                "choose another `control_port` (the default is 7071)".to_owned()
            }
            Ipv6OnPrimaryOnly { .. } => {
                "move the IPv6 settings to the first [[netvm.uplink]], or remove them".to_owned()
            }
            PciOnly { .. } => {
                "add `pci = \"…\"`, the NIC's address on the host, or remove it".to_owned()
            }
            StaticOnly { .. } => "set `addressing = \"static\"` or remove it".to_owned(),
            StaticNeeds { field } => format!("add `{field}` to [netvm.uplink]"),
            GatewayOutsideUplink { .. } => "the gateway must be on the uplink's network".to_owned(),
            Ipv6PrefixLength { .. } => {
                "write a /64, e.g. `fd12:3456:789a::/64` (VMs' addresses are the prefix and their IPv4 host number)".to_owned()
            }
            Ipv6PrefixNotNetwork { prefix, .. } => format!("write {}", prefix.truncated()),
            Ipv6PrefixScope { .. } => {
                "use a unique local prefix (fd00::/8) or a global one your network routes to the net-vm".to_owned()
            }
            Ipv6Off { .. } => "set IPv6 on, or remove it".to_owned(),
            Ipv6StaticOnly { .. } => "set `ipv6 = \"static\"` or remove it".to_owned(),
            Ipv6StaticNeeds { field } => format!("add `{field}` to [netvm.uplink]"),
            Ipv6GatewayOutside { .. } => {
                "write the router's link-local address (fe80::…) or one on the uplink prefix".to_owned()
            }
            Ipv6NotUnicast { .. } => "write a unicast address".to_owned(),
            Nat64PrefixLength { .. } => "the well-known prefix is `64:ff9b::/96`".to_owned(),
            UplinkOverlapsInternal { .. } => {
                "choose another internal subnet, or fix the uplink address".to_owned()
            }
            DevOnly { .. } => "set `netvm.mode = \"dev\"` or remove it".to_owned(),
            DevModePassthrough { .. } => {
                "in dev mode the host keeps the NIC: name the net-vm's uplink `interface`"
                    .to_owned()
            }
            DevNeedsHostUplink => "set `host.uplink` to the host's uplink interface".to_owned(),
            HostAddressDisabled { .. } => {
                "set `host.internal_address = true`, or remove it".to_owned()
            }
            ReservedName { .. } => "choose another name".to_owned(),
            DuplicateName { .. } => "give every VM its own name".to_owned(),
            DuplicateMac { .. } => {
                "give each its own MAC, or leave `mac` out to derive one".to_owned()
            }
            DuplicateIp { .. } => {
                "give each its own address, or leave `ip` out to derive one".to_owned()
            }
            MulticastMac { .. } | BroadcastMac { .. } | ZeroMac { .. } => {
                "use a unicast MAC (first octet even), e.g. 02:ad:00:00:00:42".to_owned()
            }
            IpOutsideSubnet { subnet, .. } => {
                format!("use an address from {subnet}, or leave `ip` out")
            }
            IpIsNetworkAddress { .. } | IpIsBroadcast { .. } => {
                "the first and last addresses of the subnet are not for hosts".to_owned()
            }
            IpInPool { .. } => "move the address out of the pool, or shrink `dhcp.pool`".to_owned(),
            PoolOutsideSubnet { subnet, .. } => format!(
                "the pool must lie within {}-{} (without the first and last address)",
                subnet.network(),
                subnet.broadcast()
            ),
            NoFreeAddress { .. } => "use a larger subnet or a smaller dynamic pool".to_owned(),
            MacPrefixTooLong { .. } => {
                "use a shorter `network.mac_prefix` (3 or 4 octets) or give the MAC".to_owned()
            }
            UnknownVm {
                suggestion: Some(s),
                ..
            } => format!("did you mean `{s}`?"),
            UnknownVm { .. } => "rules name VMs declared with [[vm]]".to_owned(),
            SelfRule { .. } => "a VM always reaches itself; remove the rule".to_owned(),
            PortsWithIcmp => "remove `ports`, or use tcp or udp".to_owned(),
            ForwardNotTcpUdp => "use proto = \"tcp\" or \"udp\"".to_owned(),
            ForwardTargetOverflow { .. } => "lower `to_port`".to_owned(),
            DuplicateForward { .. } => "each uplink port can go to one VM only".to_owned(),
            LeaseTooShort { .. } => "use at least 60 seconds, e.g. \"1h\"".to_owned(),
            TimesOutOfOrder { .. } => {
                "renew_time < rebind_time < lease_time (RFC 2131 section 4.4.5)".to_owned()
            }
            ZeroLimit { .. } => "use 1 or more".to_owned(),
            LimitOutOfRange { min, max, .. } => format!("use a value from {min} to {max}"),
            RouteGatewayOutsideSubnet { .. } => {
                "clients reach only gateways on the internal subnet".to_owned()
            }
            RouteNotNetworkAddress { destination } => {
                format!("did you mean {}?", destination.truncated())
            }
            RecordShadowsVm { .. } => "VM names resolve already; rename the record".to_owned(),
            DuplicateRecord { .. } => "keep one record per name".to_owned(),
        })
    }
}

/// Line and column (1-based, columns in characters) of a byte span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The byte span.
    pub span: Range<usize>,
}

impl Location {
    /// The location of `span` in `text`.
    pub fn of(text: &str, span: Range<usize>) -> Location {
        let start = span.start.min(text.len());
        let before = text.get(..start).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location { line, column, span }
    }
}

/// One problem at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong.
    pub problem: Problem,
    /// Where in the document (e.g. `vm[2].mac`).
    pub path: FieldPath,
    /// Where in the file, when the file has text there.
    pub location: Option<Location>,
}

impl Diagnostic {
    /// A diagnostic at a known byte span.
    pub(crate) fn at_span(
        text: &str,
        problem: Problem,
        path: FieldPath,
        span: Option<Range<usize>>,
    ) -> Diagnostic {
        Diagnostic {
            problem,
            path,
            location: span.map(|s| Location::of(text, s)),
        }
    }

    /// A diagnostic at `path`: the value there, or the nearest enclosing
    /// value the file has (for derived or missing values). With `on_key`,
    /// points at the key instead of the value.
    pub(crate) fn at_path(
        text: &str,
        root: &Node,
        problem: Problem,
        path: FieldPath,
        on_key: bool,
    ) -> Diagnostic {
        let mut span = if on_key { root.key_span(&path) } else { None };
        let mut probe = Some(path.clone());
        while span.is_none() {
            let Some(p) = probe else { break };
            span = root.get(&p).map(|n| n.span.clone());
            probe = p.parent();
        }
        Diagnostic::at_span(text, problem, path, span)
    }
}

/// Why a description was rejected: every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptionError {
    /// The file name (or other origin) shown in messages.
    pub origin: String,
    /// The text that was read.
    pub text: String,
    /// The problems, at least one.
    pub diagnostics: Vec<Diagnostic>,
}

impl std::error::Error for DescriptionError {}

impl fmt::Display for DescriptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            render(f, &self.origin, &self.text, d)?;
        }
        let n = self.diagnostics.len();
        write!(
            f,
            "\n{} rejected: {n} problem{}",
            self.origin,
            if n == 1 { "" } else { "s" }
        )
    }
}

/// Renders one diagnostic like a compiler: message, `--> file:line:col`,
/// the line, carets under the offending text, and the hint.
fn render(f: &mut fmt::Formatter<'_>, origin: &str, text: &str, d: &Diagnostic) -> fmt::Result {
    writeln!(f, "error: {} (at {})", d.problem, d.path)?;
    let Some(loc) = &d.location else {
        writeln!(f, " --> {origin}")?;
        if let Some(hint) = d.problem.hint() {
            writeln!(f, "  = hint: {hint}")?;
        }
        return Ok(());
    };
    let number = loc.line.to_string();
    let pad = " ".repeat(number.len());
    writeln!(f, "{pad}--> {origin}:{}:{}", loc.line, loc.column)?;
    let line_text = text.lines().nth(loc.line - 1).unwrap_or("");
    let span_len = text
        .get(loc.span.clone())
        .map_or(1, |s| s.lines().next().unwrap_or("").chars().count())
        .max(1);
    let available = line_text
        .chars()
        .count()
        .saturating_sub(loc.column - 1)
        .max(1);
    writeln!(f, "{pad} |")?;
    writeln!(f, "{number} | {line_text}")?;
    writeln!(
        f,
        "{pad} | {}{}",
        " ".repeat(loc.column - 1),
        "^".repeat(span_len.min(available))
    )?;
    if let Some(hint) = d.problem.hint() {
        writeln!(f, "{pad} = hint: {hint}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_lines_and_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        let at = text.find("\"x\"").expect("present");
        let loc = Location::of(text, at..at + 3);
        assert_eq!((loc.line, loc.column), (2, 6));
    }

    #[test]
    fn renders_caret_under_the_value() {
        let text = "[network]\nmtu = 99999\n";
        let at = text.find("99999").expect("present");
        let error = DescriptionError {
            origin: "x.toml".to_owned(),
            text: text.to_owned(),
            diagnostics: vec![Diagnostic::at_span(
                text,
                Problem::MtuOutOfRange { mtu: 9999 },
                FieldPath::root().key("network").key("mtu"),
                Some(at..at + 5),
            )],
        };
        let shown = error.to_string();
        assert!(shown.contains(" --> x.toml:2:7\n  |\n"), "{shown}");
        assert!(
            shown.contains("2 | mtu = 99999\n  |       ^^^^^\n"),
            "{shown}"
        );
        assert!(
            shown.contains("= hint: use an MTU from 576 to 9000"),
            "{shown}"
        );
    }
}
