//! netvm's agent on a real Wi-Fi uplink: a QEMU guest (TCG) booting
//! Debian's full kernel with three `mac80211_hwsim` radios
//! ([`netvm_lab::wifi`]). Two access points (hostapd, WPA2-PSK, each with
//! dnsmasq and an HTTP service) in namespaces `ap` and `ap2`; the agent in
//! namespace `nv` with radio 1 as its Wi-Fi uplink (preferred) and a
//! wired uplink to namespace `wired` (dnsmasq, HTTP) as the backup; two
//! VMs as namespaces on its internal bridge, `gui-vm` allowed to steer it
//! (`[agent] control_allow`), `app-vm` not.
//!
//! It proves: the agent associates with the described network (with a
//! random MAC: `random_mac`), gets its lease from the access point, and a VM reaches the service behind it;
//! `netvm wifi list|scan|connect` from gui-vm over the control service,
//! nothing for app-vm; a wrong passphrase is the event `wifi_failed`
//! (`wrong_key`); the right one switches networks (the VM then reaches
//! the second access point); the saved network is in a 0600 file and
//! never in the agent's output, and a restarted agent joins it again;
//! the access points stop and the agent fails over to the wired uplink.
//! Runs as root; skipped (saying what to install) where the full kernel
//! or hostapd is missing.

use netvm_lab::wifi::{self, in_netns, quote, ApConfig, Background, WifiLab, AP_ADDRESS, IP};
use netvm_lab::wifi_image::UDHCPC_SCRIPT;
use std::path::Path;
use std::time::{Duration, Instant};

const FIRST: (&str, &str) = ("netvm-lab", "correct horse battery");
const SECOND: (&str, &str) = ("netvm-lab-2", "second network key");
const CONTROL: &str = "/run/wifi/agent.sock";
const JOURNAL: &str = "/run/wifi/agent/leases";
const AGENT: &str = "192.168.100.1:7071";
const WIRED: &str = "10.88.0.1";
const LONG: Duration = Duration::from_secs(120);

fn description(wlan: &str) -> String {
    format!(
        r#"[network]
subnet = "192.168.100.0/24"
domain = "internal"

[[netvm.uplink]]
interface = "{wlan}"
kind = "wifi"
priority = 10
random_mac = true
wifi = [{{ ssid = "{}", psk_file = "/etc/netvm/lab.psk" }}]

[[netvm.uplink]]
interface = "wan0"
priority = 20
ipv6 = "off"

[[vm]]
name = "gui-vm"

[[vm]]
name = "app-vm"

[agent]
control_allow = ["gui-vm"]
uplink_probe_every = "2s"
uplink_probe_failures = 2
"#,
        FIRST.0
    )
}

/// The agent's event lines named `kind` that contain `text`, as a shell
/// condition on its log.
fn logged(agent: &Background, kind: &str, text: &str) -> String {
    format!(
        "grep '\"event\":\"{kind}\"' {} | grep -q {}",
        agent.log,
        quote(text)
    )
}

/// `netvm …` from a VM over the agent's control service.
fn remote(ns: &str, args: &str) -> String {
    in_netns(ns, &format!("netvm {args} --agent {AGENT}"))
}

/// The active uplink is `name`, as `netvm uplinks` says.
fn active(name: &str) -> String {
    format!(
        "netvm uplinks --control {CONTROL} --format json | tr -d ' \\n' | grep -q '\"name\":\"{name}\",\"priority\":[0-9]*,\"state\":\"up\",\"active\":true'"
    )
}

#[test]
fn the_agent_joins_wifi_switches_networks_and_fails_over_to_wired() {
    netvm_testsupport::require_root();
    if let Some(why) = wifi::unavailable() {
        eprintln!("SKIPPED: the Wi-Fi lab cannot run here: {why}");
        return;
    }
    let total = Instant::now();
    let lab = WifiLab::boot(Some(Path::new(env!("CARGO_BIN_EXE_netvm")))).expect("the guest boots");
    eprintln!("boot: {:.1?}", lab.boot_time());

    // Two access points, one radio each.
    let mut aps = Vec::new();
    for (radio, ns, (ssid, passphrase), channel) in [(0, "ap", FIRST, 1), (2, "ap2", SECOND, 6)] {
        let interface = lab.radio_to_netns(radio, ns).expect("radio into its AP");
        let mut ap = lab
            .start_ap(&ApConfig {
                ns: ns.to_owned(),
                interface,
                ssid: ssid.to_owned(),
                passphrase: passphrase.to_owned(),
                channel,
            })
            .expect("hostapd");
        lab.serve(&mut ap).expect("its services");
        aps.push(ap);
    }
    // The net-vm: radio 1, a wired uplink, the internal bridge and two VMs.
    let wlan = lab.radio_to_netns(1, "nv").expect("radio 1 into nv");
    lab.add_netns("wired").expect("wired");
    for ns in ["gui", "app"] {
        lab.add_netns(ns).expect("vm namespace");
    }
    for command in [
        format!("{IP} link add wan0 netns nv type veth peer name w0 netns wired"),
        format!("{IP} -n wired addr add {WIRED}/24 dev w0"),
        format!("{IP} -n wired link set w0 up"),
        format!("{IP} -n nv link add ethint0 type bridge"),
        format!("{IP} -n nv link set ethint0 up"),
        format!("{IP} link add p-gui netns nv type veth peer name eth0 netns gui"),
        format!("{IP} link add p-app netns nv type veth peer name eth0 netns app"),
        format!("{IP} -n gui link set eth0 address 02:ad:00:00:00:65"),
        format!("{IP} -n app link set eth0 address 02:ad:00:00:00:66"),
    ] {
        lab.must(&command).expect("links");
    }
    for (ns, port) in [("gui", "p-gui"), ("app", "p-app")] {
        lab.must(&format!("{IP} -n nv link set {port} master ethint0 up"))
            .expect("port");
        lab.must(&format!(
            "{IP} -n nv link set dev {port} type bridge_slave isolated on"
        ))
        .expect("isolated");
        lab.must(&format!("{IP} -n {ns} link set eth0 up"))
            .expect("up");
        lab.must(&format!("{IP} -n {ns} link set lo up"))
            .expect("lo");
    }
    lab.must("mkdir -p /var/www/wired && echo wired > /var/www/wired/index.html")
        .expect("wired page");
    let _wired_dhcp = lab
        .spawn(
            "dnsmasq-wired",
            Some("wired"),
            &format!(
                "dnsmasq --keep-in-foreground --log-facility=- --conf-file=/dev/null --user=root --group=root \
                 --interface=w0 --bind-interfaces --dhcp-range=10.88.0.100,10.88.0.150,255.255.255.0,12h \
                 --dhcp-option=option:router,{WIRED} --dhcp-option=option:dns-server,{WIRED} \
                 --dhcp-leasefile=/run/wifi/dnsmasq-wired.leases --pid-file=/run/wifi/dnsmasq-wired.pid \
                 --no-resolv --no-hosts --local=/wired.lab/"
            ),
        )
        .expect("wired dnsmasq");
    let _wired_http = lab
        .spawn(
            "httpd-wired",
            Some("wired"),
            &format!("busybox httpd -f -p {WIRED}:80 -h /var/www/wired"),
        )
        .expect("wired httpd");

    // The agent, with the first network described.
    lab.must("mkdir -p /etc/netvm /run/wifi/agent")
        .expect("dirs");
    lab.write_file("/etc/netvm/system.toml", description(&wlan).as_bytes())
        .expect("description");
    lab.write_file("/etc/netvm/lab.psk", format!("{}\n", FIRST.1).as_bytes())
        .expect("passphrase file");
    lab.must("chmod 600 /etc/netvm/lab.psk").expect("chmod");
    let start_agent = |name: &str| {
        lab.spawn(
            name,
            Some("nv"),
            &format!("netvm agent /etc/netvm/system.toml --journal {JOURNAL} --control {CONTROL}"),
        )
        .expect("the agent starts")
    };
    let permanent = lab
        .must(&in_netns(
            "nv",
            &format!("cat /sys/class/net/{wlan}/address"),
        ))
        .expect("the radio's MAC")
        .trim()
        .to_owned();
    let at = Instant::now();
    let agent = start_agent("agent");
    lab.wait_until(&logged(&agent, "wifi_connected", FIRST.0), LONG)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.output(&agent).unwrap_or_default()));
    eprintln!("associated: {:.1?}", at.elapsed());
    lab.wait_until(&active(&wlan), LONG)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.output(&agent).unwrap_or_default()));
    eprintln!("Wi-Fi uplink active: {:.1?}", at.elapsed());

    // The VMs get their leases; gui-vm reaches the service behind the AP.
    for ns in ["gui", "app"] {
        let leased = lab
            .must(&in_netns(
                ns,
                &format!(
                    "WIFI_REPORT=/run/wifi/{ns}-lease udhcpc -i eth0 -s {UDHCPC_SCRIPT} -n -q -t 10 -T 2 >/dev/null 2>&1; cat /run/wifi/{ns}-lease"
                ),
            ))
            .expect("udhcpc");
        assert!(leased.contains("lease 192.168.100.10"), "{ns}: {leased}");
    }
    let fetch = |ns: &str, url: &str| {
        lab.run(&in_netns(ns, &format!("timeout 10 wget -q -O - {url}")))
            .map(|(out, status)| (out.trim().to_owned(), status))
            .unwrap_or_default()
    };
    assert_eq!(
        fetch("gui", &format!("http://{AP_ADDRESS}/")),
        (aps[0].http_body(), 0)
    );

    // The control service: gui-vm may, app-vm gets nothing.
    let listed = lab.must(&remote("gui", "wifi list")).expect("wifi list");
    assert!(
        listed.contains(&format!("{wlan}: COMPLETED to `{}`", FIRST.0)),
        "{listed}"
    );
    // `random_mac`: it joined with another MAC than the radio's own.
    let json = lab
        .must(&remote("gui", "wifi list --format json"))
        .expect("wifi list as JSON");
    let info: serde_json::Value = serde_json::from_str(&json).expect("json");
    let address = info[0]["address"].as_str().unwrap_or_default().to_owned();
    assert!(
        !address.is_empty() && address != permanent,
        "random MAC expected, the radio's is {permanent}: {json}"
    );
    eprintln!("joined as {address} (the radio's own MAC: {permanent})");
    let scanned = lab.must(&remote("gui", "wifi scan")).expect("wifi scan");
    assert!(
        scanned.contains(FIRST.0) && scanned.contains(SECOND.0),
        "{scanned}"
    );
    let (out, status) = lab.run(&remote("app", "wifi list")).expect("run");
    assert_ne!(status, 0, "{out}");
    assert!(
        out.contains("cannot reach the agent's control service"),
        "{out}"
    );

    // A wrong passphrase for the second network: the event says so.
    lab.write_file("/run/wifi/wrong.psk", b"not the key at all\n")
        .expect("wrong");
    lab.must(&remote(
        "gui",
        &format!("wifi connect {} --psk-file /run/wifi/wrong.psk", SECOND.0),
    ))
    .expect("the request is taken");
    lab.wait_until(&logged(&agent, "wifi_failed", "wrong_key"), LONG)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.output(&agent).unwrap_or_default()));
    let failed = lab
        .must(&format!("grep '\"wifi_failed\"' {}", agent.log))
        .expect("grep");
    assert!(failed.contains(SECOND.0), "{failed}");

    // The right one: the agent switches networks, and gui-vm reaches the
    // second access point's service through it.
    lab.write_file("/run/wifi/right.psk", format!("{}\n", SECOND.1).as_bytes())
        .expect("right");
    let at = Instant::now();
    lab.must(&remote(
        "gui",
        &format!("wifi connect {} --psk-file /run/wifi/right.psk", SECOND.0),
    ))
    .expect("connect");
    lab.wait_until(&logged(&agent, "wifi_connected", SECOND.0), LONG)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.output(&agent).unwrap_or_default()));
    let body = aps[1].http_body();
    lab.wait_until(
        &in_netns(
            "gui",
            &format!(
                "timeout 5 wget -q -O - http://{AP_ADDRESS}/ | grep -q {}",
                quote(&body)
            ),
        ),
        LONG,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.output(&agent).unwrap_or_default()));
    eprintln!("switched networks: {:.1?}", at.elapsed());

    // Saved in a 0600 file; no passphrase in what the agent printed.
    let mode = lab
        .must(&format!("stat -c %a {JOURNAL}.wifi"))
        .expect("stat");
    assert_eq!(mode.trim(), "600");
    let output = lab.output(&agent).expect("output");
    for secret in [FIRST.1, SECOND.1, "not the key at all"] {
        assert!(!output.contains(secret), "a passphrase in the output");
    }

    // A restarted agent joins the saved network again (the first AP is
    // gone, so only the saved one is in range).
    lab.stop_ap(&aps[0]).expect("first AP stops");
    lab.stop(&agent).expect("the agent stops");
    let agent = start_agent("agent-again");
    lab.wait_until(&logged(&agent, "wifi_connected", SECOND.0), LONG)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.output(&agent).unwrap_or_default()));
    lab.wait_until(&active(&wlan), LONG)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.output(&agent).unwrap_or_default()));

    // The second AP stops too: the agent fails over to the wired uplink.
    let at = Instant::now();
    lab.stop_ap(&aps[1]).expect("second AP stops");
    lab.wait_until(&active("wan0"), LONG)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.output(&agent).unwrap_or_default()));
    eprintln!("failed over to wired: {:.1?}", at.elapsed());
    lab.wait_until(
        &in_netns(
            "gui",
            &format!("timeout 5 wget -q -O - http://{WIRED}/ | grep -q wired"),
        ),
        LONG,
    )
    .expect("gui-vm reaches the wired side");
    let switched = lab
        .must(&format!("grep '\"uplink_switched\"' {}", agent.log))
        .expect("switched");
    assert!(
        switched.contains(&format!("\"from\":\"{wlan}\",\"to\":\"wan0\"")),
        "{switched}"
    );
    lab.stop(&agent).expect("the agent stops");
    // Printed, not asserted (tests never assert a timing).
    eprintln!("total: {:.1?}", total.elapsed());
}
