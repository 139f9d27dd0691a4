//! Table-driven rejection tests: each case is a small description with one
//! defect, the exact message it must produce, and where (line, column).

use netvm_description::{parse, Format};

/// Lines 1-2 of most cases: a valid uplink, so the defect is the only one.
const UPLINK: &str = "[netvm.uplink]\ninterface = \"eth0\"\n";

struct Case {
    name: &'static str,
    format: Format,
    text: String,
    message: &'static str,
    line: usize,
    column: usize,
}

fn toml(name: &'static str, text: &str, message: &'static str, line: usize, column: usize) -> Case {
    Case {
        name,
        format: Format::Toml,
        text: text.to_owned(),
        message,
        line,
        column,
    }
}

fn with_uplink(
    name: &'static str,
    rest: &str,
    message: &'static str,
    line: usize,
    column: usize,
) -> Case {
    toml(name, &format!("{UPLINK}{rest}"), message, line, column)
}

fn cases() -> Vec<Case> {
    vec![
        with_uplink(
            "toml syntax",
            "[[vm]]\nname = \"a\nkind = \"app\"\n",
            "syntax error: invalid basic string, expected `\"`",
            4,
            10,
        ),
        Case {
            name: "json syntax",
            format: Format::Json,
            text: "{\n  \"netvm\": {\"uplink\": {\"interface\": \"eth0\",}}\n}\n".to_owned(),
            message: "syntax error: trailing comma: JSON allows none before `}` or `]`",
            line: 2,
            column: 44,
        },
        Case {
            name: "json duplicate key",
            format: Format::Json,
            text: "{\n  \"netvm\": {\"uplink\": {\"interface\": \"eth0\"}},\n  \"netvm\": {}\n}\n".to_owned(),
            message: "syntax error: duplicate key `netvm`",
            line: 3,
            column: 3,
        },
        with_uplink("unknown top-level table", "[firewall]\nx = 1\n", "unknown key `firewall`", 3, 2),
        with_uplink(
            "unknown key in a vm",
            "[[vm]]\nname = \"a\"\nipv4 = \"192.168.100.9\"\n",
            "unknown key `ipv4`",
            5,
            1,
        ),
        toml(
            "wrong type",
            &format!("[network]\nmtu = \"big\"\n{UPLINK}"),
            "invalid type: string \"big\", expected u16",
            2,
            7,
        ),
        toml(
            "subnet with host bits",
            &format!("[network]\nsubnet = \"10.0.0.1/24\"\n{UPLINK}"),
            "subnet 10.0.0.1/24 is not a network address",
            2,
            10,
        ),
        toml(
            "subnet too small",
            &format!("[network]\nsubnet = \"10.0.0.0/31\"\n{UPLINK}"),
            "subnet prefix /31 is not supported",
            2,
            10,
        ),
        toml(
            "mtu out of range",
            &format!("{UPLINK}[network]\nmtu = 100\n"),
            "MTU 100 is out of range",
            4,
            7,
        ),
        toml(
            "multicast mac prefix",
            &format!("{UPLINK}[network]\nmac_prefix = \"03:00:00\"\n"),
            "MAC prefix makes multicast addresses",
            4,
            14,
        ),
        with_uplink(
            "mac with five octets",
            "[[vm]]\nname = \"a\"\nmac = \"02:ad:00:00:00\"\n",
            "`02:ad:00:00:00` is not a MAC address: it has 5 octets, not 6",
            5,
            7,
        ),
        with_uplink(
            "multicast mac",
            "[[vm]]\nname = \"a\"\nmac = \"03:00:00:00:00:01\"\n",
            "MAC 03:00:00:00:00:01 is a multicast address",
            5,
            7,
        ),
        with_uplink(
            "broadcast mac",
            "[[vm]]\nname = \"a\"\nmac = \"ff:ff:ff:ff:ff:ff\"\n",
            "MAC ff:ff:ff:ff:ff:ff is the broadcast address",
            5,
            7,
        ),
        with_uplink(
            "duplicate vm name",
            "[[vm]]\nname = \"a\"\n[[vm]]\nname = \"a\"\n",
            "the name `a` is used twice",
            6,
            8,
        ),
        with_uplink(
            "vm named like the net-vm",
            "[[vm]]\nname = \"net-vm\"\n",
            "the name `net-vm` is used twice",
            4,
            8,
        ),
        with_uplink(
            "reserved name",
            "[[vm]]\nname = \"host\"\n",
            "the name `host` is reserved",
            4,
            8,
        ),
        with_uplink(
            "duplicate mac",
            "[[vm]]\nname = \"a\"\nmac = \"02:00:00:00:00:01\"\n[[vm]]\nname = \"b\"\nmac = \"02:00:00:00:00:01\"\n",
            "MAC 02:00:00:00:00:01 is used twice (a and b)",
            8,
            7,
        ),
        with_uplink(
            "duplicate ip",
            "[[vm]]\nname = \"a\"\nip = \"192.168.100.9\"\n[[vm]]\nname = \"b\"\nip = \"192.168.100.9\"\n",
            "address 192.168.100.9 is used twice (a and b)",
            8,
            6,
        ),
        with_uplink(
            "ip of the net-vm",
            "[[vm]]\nname = \"a\"\nip = \"192.168.100.1\"\n",
            "address 192.168.100.1 is used twice (net-vm and a)",
            5,
            6,
        ),
        with_uplink(
            "ip outside the subnet",
            "[[vm]]\nname = \"a\"\nip = \"10.1.2.3\"\n",
            "address 10.1.2.3 is outside the subnet 192.168.100.0/24",
            5,
            6,
        ),
        with_uplink(
            "network address",
            "[[vm]]\nname = \"a\"\nip = \"192.168.100.0\"\n",
            "address 192.168.100.0 is the subnet's network address",
            5,
            6,
        ),
        with_uplink(
            "broadcast address",
            "[[vm]]\nname = \"a\"\nip = \"192.168.100.255\"\n",
            "address 192.168.100.255 is the subnet's broadcast address",
            5,
            6,
        ),
        with_uplink(
            "pool outside the subnet",
            "[dhcp]\npool = \"192.168.100.200-192.168.101.10\"\n",
            "pool 192.168.100.200-192.168.101.10 is not inside the usable addresses of 192.168.100.0/24",
            4,
            8,
        ),
        with_uplink(
            "pool overlapping a static address",
            "[[vm]]\nname = \"a\"\nip = \"192.168.100.210\"\n",
            "address 192.168.100.210 of a is inside the dynamic pool 192.168.100.200-192.168.100.254",
            5,
            6,
        ),
        with_uplink(
            "pool out of order",
            "[dhcp]\npool = \"192.168.100.250-192.168.100.200\"\n",
            "range `192.168.100.250-192.168.100.200` is out of order: 192.168.100.250 comes after 192.168.100.200",
            4,
            8,
        ),
        with_uplink(
            "vm name with capitals and underscore",
            "[[vm]]\nname = \"Chrome_VM\"\n",
            "`Chrome_VM` is not a valid DNS name: `C` is not allowed; use a-z, 0-9 and - (use lower case)",
            4,
            8,
        ),
        with_uplink(
            "vm name starting with a hyphen",
            "[[vm]]\nname = \"-vm\"\n",
            "`-vm` is not a valid DNS name: a label cannot start or end with `-`",
            4,
            8,
        ),
        with_uplink(
            "metrics reader naming an unknown vm",
            "[[vm]]\nname = \"admin-vm\"\n[agent]\nmetrics_port = 9100\nmetrics_allow = [\"admin-wm\"]\n",
            "no VM is called `admin-wm`",
            7,
            18,
        ),
        toml(
            "wifi networks on a wired uplink",
            "[netvm.uplink]\ninterface = \"eth0\"\nwifi = [{ ssid = \"home\", psk_file = \"/etc/netvm/home.psk\" }]\n",
            "`wifi` only applies to a Wi-Fi uplink (`kind = \"wifi\"`)",
            3,
            1,
        ),
        toml(
            "ssid too long",
            &format!("[netvm.uplink]\ninterface = \"wlan0\"\nkind = \"wifi\"\nwifi = [{{ ssid = \"{}\", psk_file = \"/etc/p\" }}]\n", "x".repeat(33)),
            "an SSID is 1 to 32 bytes, not 33",
            4,
            18,
        ),
        toml(
            "relative psk file",
            "[netvm.uplink]\ninterface = \"wlan0\"\nkind = \"wifi\"\nwifi = [{ ssid = \"home\", psk_file = \"home.psk\" }]\n",
            "psk_file `home.psk` is not an absolute path",
            4,
            37,
        ),
        with_uplink(
            "control user naming an unknown vm",
            "[[vm]]\nname = \"gui-vm\"\n[agent]\ncontrol_allow = [\"gui-wm\"]\n",
            "no VM is called `gui-wm`",
            6,
            18,
        ),
        with_uplink(
            "control user in both lists",
            "[[vm]]\nname = \"gui-vm\"\n[agent]\ncontrol_allow = [\"gui-vm\"]\ncontrol_read = [\"gui-vm\"]\n",
            "`gui-vm` is in both `control_allow` and `control_read`",
            7,
            17,
        ),
        with_uplink(
            "control port on the metrics port",
            "[[vm]]\nname = \"gui-vm\"\n[agent]\nmetrics_port = 9100\ncontrol_port = 9100\ncontrol_read = [\"gui-vm\"]\n",
            "control port 9100 is taken by the metrics",
            7,
            16,
        ),
        with_uplink(
            "rule naming an unknown vm",
            "[[vm]]\nname = \"gui-vm\"\n[[vm]]\nname = \"b\"\nallow = [{ to = \"gui-wm\", proto = \"tcp\" }]\n",
            "no VM is called `gui-wm`",
            7,
            17,
        ),
        with_uplink(
            "rule to itself",
            "[[vm]]\nname = \"a\"\nallow = [{ to = \"a\", proto = \"udp\" }]\n",
            "`a` has a rule to itself",
            5,
            17,
        ),
        with_uplink(
            "port range out of order",
            "[[vm]]\nname = \"a\"\n[[vm]]\nname = \"b\"\nallow = [{ to = \"a\", proto = \"tcp\", ports = \"9000-80\" }]\n",
            "port range `9000-80` is out of order: 9000 comes after 80",
            7,
            45,
        ),
        with_uplink(
            "icmp with ports",
            "[[vm]]\nname = \"a\"\n[[vm]]\nname = \"b\"\nallow = [{ to = \"a\", proto = \"icmp\", ports = 1 }]\n",
            "ICMP has no ports",
            7,
            38,
        ),
        with_uplink(
            "two vms forward one port",
            "[[vm]]\nname = \"a\"\nforward = [{ proto = \"tcp\", port = \"8000-8010\" }]\n[[vm]]\nname = \"b\"\nforward = [{ proto = \"tcp\", port = 8005 }]\n",
            "uplink tcp port 8005 is already forwarded to a",
            8,
            36,
        ),
        with_uplink(
            "dev-only option in secure mode",
            "[host]\nuplink = \"eth1\"\n",
            "`host.uplink` is only allowed in dev mode",
            4,
            1,
        ),
        with_uplink(
            "secure host with an internal address",
            "[host]\ninternal_address = true\n",
            "`host.internal_address = true` is only allowed in dev mode",
            4,
            20,
        ),
        with_uplink(
            "tap owner that is no account",
            "[host]\ntap_user = \"Qemu\"\n",
            "`Qemu` is not a user or group: write a name like `qemu` (lower case, digits, `_`, `-`, at most 32) or a number",
            4,
            12,
        ),
        toml(
            "dev mode with a passed-through nic",
            "[netvm]\nmode = \"dev\"\n[netvm.uplink]\npci = \"0000:00:14.3\"\n[host]\nuplink = \"eth0\"\n",
            "dev mode cannot pass the uplink through (pci)",
            4,
            1,
        ),
        toml("no uplink", "[[vm]]\nname = \"a\"\n", "the net-vm has no uplink", 1, 1),
        toml(
            "two uplink devices",
            "[netvm.uplink]\ninterface = \"eth0\"\nusb = \"0bda:8153\"\n",
            "the uplink must name exactly one device, found usb and interface",
            2,
            1,
        ),
        toml(
            "platform device name that is a path",
            "[netvm.uplink]\nplatform = \"../2490000.ethernet\"\n",
            "`../2490000.ethernet` is not a platform device name: write the kernel's name of the device-tree node as in /sys/bus/platform/devices, e.g. 2490000.ethernet (letters, digits and , . _ + - : @; at most 64)",
            2,
            12,
        ),
        toml(
            "platform and pci uplink",
            "[netvm.uplink]\npci = \"0000:00:14.3\"\nplatform = \"2490000.ethernet\"\n",
            "the uplink must name exactly one device, found pci and platform",
            3,
            1,
        ),
        toml(
            "dev mode with a platform nic",
            "[netvm]\nmode = \"dev\"\n[netvm.uplink]\nplatform = \"2490000.ethernet\"\n[host]\nuplink = \"eth0\"\n",
            "dev mode cannot pass the uplink through (platform)",
            4,
            1,
        ),
        toml(
            "pci id with a platform nic",
            "[netvm.uplink]\nplatform = \"2490000.ethernet\"\npci_id = \"1af4:1041\"\n",
            "`pci_id` only applies to a PCI uplink (`pci`)",
            3,
            1,
        ),
        toml(
            "two uplinks on one interface",
            "[[netvm.uplink]]\ninterface = \"eth0\"\n[[netvm.uplink]]\ninterface = \"eth0\"\n",
            "this uplink is the same device (or interface, or MAC) as uplink eth0",
            3,
            1,
        ),
        toml(
            "two uplinks with one MAC",
            "[[netvm.uplink]]\ninterface = \"eth0\"\nmac = \"02:00:00:00:99:01\"\n[[netvm.uplink]]\nusb = \"0bda:8153\"\nmac = \"02:00:00:00:99:01\"\n",
            "this uplink is the same device (or interface, or MAC) as uplink eth0",
            4,
            1,
        ),
        toml(
            "IPv6 settings on a backup uplink",
            "[[netvm.uplink]]\ninterface = \"eth0\"\n[[netvm.uplink]]\ninterface = \"eth1\"\nnat64_prefix = \"64:ff9b::/96\"\n",
            "`nat64_prefix` only applies to the first uplink (IPv6 runs on it alone)",
            5,
            1,
        ),
        toml(
            "an empty uplink list",
            "[netvm]\nuplink = []\n",
            "the net-vm has no uplink",
            1,
            1,
        ),
        toml(
            "pci id without a pci address",
            "[netvm.uplink]\ninterface = \"eth0\"\npci_id = \"1af4:1041\"\n",
            "`pci_id` only applies to a PCI uplink (`pci`)",
            3,
            1,
        ),
        toml(
            "pci id that is no id",
            "[netvm.uplink]\npci = \"0000:00:03.0\"\npci_id = \"1af4:41\"\n",
            "`1af4:41` is not a PCI id: write vendor:device, e.g. 8086:15f3",
            3,
            10,
        ),
        toml(
            "static addressing without gateway",
            "[netvm.uplink]\ninterface = \"eth0\"\naddressing = \"static\"\naddress = \"203.0.113.10/24\"\n",
            "static addressing needs `gateway`",
            1,
            1,
        ),
        toml(
            "static-only option with dhcp",
            "[netvm.uplink]\ninterface = \"eth0\"\ngateway = \"203.0.113.1\"\n",
            "`gateway` only applies to static addressing",
            3,
            1,
        ),
        with_uplink(
            "renew after lease",
            "[dhcp]\nlease_time = \"1h\"\nrenew_time = \"2h\"\n",
            "DHCP times out of order: renew 2h, rebind 52m30s, lease 1h",
            5,
            14,
        ),
        with_uplink(
            "lease too short",
            "[dhcp]\nlease_time = 30\n",
            "lease time 30s is shorter than 60 seconds",
            4,
            14,
        ),
        with_uplink(
            "duration with an unknown unit",
            "[dhcp]\nlease_time = \"1 fortnight\"\n",
            "`1 fortnight` is not a duration: write seconds (3600) or units like 1h, 30m, 1d12h",
            4,
            14,
        ),
        with_uplink(
            "offer hold too long",
            "[dhcp.limits]\noffer_hold = \"10m\"\n",
            "`offer_hold` is 600, outside 1 to 300",
            4,
            14,
        ),
        with_uplink(
            "offer hold of zero",
            "[dhcp.limits]\noffer_hold = 0\n",
            "`offer_hold` is 0, outside 1 to 300",
            4,
            14,
        ),
        with_uplink(
            "probation of zero",
            "[dhcp.limits]\nprobation = 0\n",
            "`probation` is 0, outside 1 to 86400",
            4,
            13,
        ),
        with_uplink(
            "probation cap above the pool",
            "[dhcp]\npool = \"192.168.100.200-192.168.100.209\"\n[dhcp.limits]\nprobation_max = 11\n",
            "`probation_max` is 11, outside 0 to 10",
            6,
            17,
        ),
        with_uplink(
            "too many new MACs per unknown port",
            "[host]\nunknown_port_new_macs = 10001\n",
            "`unknown_port_new_macs` is 10001, outside 0 to 10000",
            4,
            25,
        ),
        with_uplink("vm without a name", "[[vm]]\nkind = \"app\"\n", "missing key `name`", 3, 1),
        with_uplink(
            "relay outside the subnet",
            "[dhcp]\nrelays = [\"10.0.0.1\"]\n",
            "address 10.0.0.1 is outside the subnet 192.168.100.0/24",
            4,
            11,
        ),
        with_uplink(
            "dns record shadowing a vm",
            "[[vm]]\nname = \"a\"\n[dns]\nrecords = [{ name = \"a\", ip = \"192.168.100.7\" }]\n",
            "DNS record `a.internal` has the name of a VM",
            6,
            21,
        ),
        toml(
            "internal ipv6 prefix not a /64",
            &format!("[network]\nipv6_prefix = \"fd00:1::/48\"\n{UPLINK}"),
            "the internal IPv6 prefix fd00:1::/48 is not a /64",
            2,
            15,
        ),
        toml(
            "internal ipv6 prefix with host bits",
            &format!("[network]\nipv6_prefix = \"fd00:1::5/64\"\n{UPLINK}"),
            "fd00:1::5/64 is not a prefix: it has bits set beyond /64",
            2,
            15,
        ),
        toml(
            "internal ipv6 prefix link-local",
            &format!("[network]\nipv6_prefix = \"fe80::/64\"\n{UPLINK}"),
            "fe80::/64 is neither a unique local (fc00::/7) nor a global (2000::/3) prefix",
            2,
            15,
        ),
        toml(
            "internal ipv6 prefix with ipv6 off",
            &format!("[network]\nipv6 = false\nipv6_prefix = \"fd00:1::/64\"\n{UPLINK}"),
            "`ipv6_prefix` is set but IPv6 is off",
            3,
            15,
        ),
        toml(
            "nat64 prefix length",
            "[netvm.uplink]\ninterface = \"eth0\"\nnat64_prefix = \"64:ff9b::/80\"\n",
            "NAT64 prefix 64:ff9b::/80 must be /32, /40, /48, /56, /64 or /96",
            3,
            16,
        ),
        toml(
            "static ipv6 without static",
            "[netvm.uplink]\ninterface = \"eth0\"\nipv6_address = \"2001:db8::2/64\"\n",
            "`ipv6_address` only applies to `ipv6 = \"static\"`",
            3,
            1,
        ),
        toml(
            "static ipv6 gateway outside",
            "[netvm.uplink]\ninterface = \"eth0\"\nipv6 = \"static\"\nipv6_address = \"2001:db8::2/64\"\nipv6_gateway = \"2001:db9::1\"\n",
            "IPv6 gateway 2001:db9::1 is neither link-local nor inside 2001:db8::/64",
            5,
            16,
        ),
        toml(
            "no free address",
            "[network]\nsubnet = \"10.0.0.0/30\"\n[netvm.uplink]\ninterface = \"eth0\"\n[[vm]]\nname = \"a\"\n[[vm]]\nname = \"b\"\n",
            "no free address left in 10.0.0.0/30 for b",
            7,
            1,
        ),
    ]
}

#[test]
fn every_invalid_description_is_rejected_with_message_and_place() {
    let cases = cases();
    assert!(cases.len() >= 25, "the issue asks for at least 25 cases");
    let mut failures = Vec::new();
    for case in &cases {
        let error = match parse("case.toml", &case.text, case.format) {
            Ok(_) => {
                failures.push(format!("{}: accepted", case.name));
                continue;
            }
            Err(error) => error,
        };
        let first = &error.diagnostics[0];
        let place = first.location.as_ref().map(|l| (l.line, l.column));
        let got = (first.problem.to_string(), place);
        let want = (case.message.to_owned(), Some((case.line, case.column)));
        if got != want {
            failures.push(format!(
                "{}:\n  got  {got:?}\n  want {want:?}\n{error}",
                case.name
            ));
        }
        if error.diagnostics.len() != 1 {
            failures.push(format!(
                "{}: expected exactly one problem\n{error}",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_problems_are_reported_in_one_run_in_file_order() {
    let text = format!(
        "{UPLINK}[[vm]]\nname = \"a\"\nmac = \"ff:ff:ff:ff:ff:ff\"\nipv4 = \"x\"\n[[vm]]\nname = \"a\"\nallow = [{{ to = \"zz\", proto = \"tcp\" }}]\n"
    );
    let error = parse("many.toml", &text, Format::Toml).expect_err("invalid");
    let lines: Vec<usize> = error
        .diagnostics
        .iter()
        .map(|d| d.location.as_ref().expect("located").line)
        .collect();
    assert_eq!(lines, [5, 6, 8, 9], "{error}");
    let shown = error.to_string();
    assert!(shown.ends_with("many.toml rejected: 4 problems"), "{shown}");
}

#[test]
fn rendered_errors_show_file_line_caret_and_hint() {
    let text = format!("{UPLINK}[[vm]]\nname = \"a\"\nmca = \"02:00:00:00:00:01\"\n");
    let error = parse("laptop.toml", &text, Format::Toml).expect_err("invalid");
    let shown = error.to_string();
    let expected = "error: unknown key `mca` (at vm[0].mca)
 --> laptop.toml:5:1
  |
5 | mca = \"02:00:00:00:00:01\"
  | ^^^
  = hint: did you mean `mac`?
";
    assert!(shown.starts_with(expected), "{shown}");
}

/// The limits' defaults: a quarter of the default 55-address pool in
/// probation, 10 s offers, 10 min probation, 10 new MACs per minute.
#[test]
fn limit_defaults() {
    let system = parse("t.toml", UPLINK, Format::Toml).expect("a valid description");
    assert_eq!(system.dhcp.offer_hold.0, 10);
    assert_eq!(system.dhcp.probation.0, 600);
    assert_eq!(system.dhcp.probation_max, 55 / 4);
    assert_eq!(system.host.unknown_port_new_macs, 10);
    let text = format!(
        "{UPLINK}[host]\nunknown_port_new_macs = 0\n[dhcp]\npool = \"none\"\n\
         [dhcp.limits]\noffer_hold = \"5m\"\nprobation = \"1d\"\n"
    );
    let system = parse("t.toml", &text, Format::Toml).expect("a valid description");
    assert_eq!(system.host.unknown_port_new_macs, 0);
    assert_eq!(system.dhcp.offer_hold.0, 300);
    assert_eq!(system.dhcp.probation_max, 0);
}
