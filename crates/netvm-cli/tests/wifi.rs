//! The Wi-Fi lab ([`netvm_lab::wifi`]) with plain wpa_supplicant as the
//! station: a QEMU guest (TCG) booting Debian's full kernel with three
//! `mac80211_hwsim` radios; hostapd (WPA2-PSK) with dnsmasq and httpd
//! behind it in namespace `ap` on radio 0, wpa_supplicant in namespace
//! `sta` on radio 1. It proves association (`wpa_cli status` says
//! COMPLETED), a DHCP lease from the access point and an HTTP GET of its
//! service, and that a wrong passphrase is reported as
//! `CTRL-EVENT-SSID-TEMP-DISABLED … reason=WRONG_KEY` on the supplicant's
//! control interface: the harness `wifi_agent.rs` runs netvm's agent on.
//! A test binary of its own, so no other QEMU shares the two
//! cores with it. Runs as root; skipped (saying what to install) where
//! the full kernel or hostapd is missing.

use netvm_lab::wifi::{self, in_netns, quote, ApConfig, WifiLab, AP_ADDRESS, AP_NAME, IP};
use netvm_lab::wifi_image::UDHCPC_SCRIPT;
use std::path::Path;
use std::time::{Duration, Instant};

const SSID: &str = "netvm-lab";
const PASSPHRASE: &str = "correct horse battery";
/// The station's control socket directory in the guest.
const STA_CTRL: &str = "/run/wifi/wpa-sta";

/// wpa_supplicant's configuration for `passphrase`; with `disabled`, the
/// network waits for `wpa_cli enable_network 0`.
fn supplicant_conf(passphrase: &str, disabled: bool) -> String {
    let disabled = u8::from(disabled);
    format!(
        "ctrl_interface={STA_CTRL}\nnetwork={{\n  ssid=\"{SSID}\"\n  psk=\"{passphrase}\"\n  key_mgmt=WPA-PSK\n  proto=RSN\n  pairwise=CCMP\n  group=CCMP\n  disabled={disabled}\n}}\n"
    )
}

/// `wpa_cli` on the station's interface.
fn wpa_cli(interface: &str, command: &str) -> String {
    format!("wpa_cli -p {STA_CTRL} -i {interface} {command}")
}

#[test]
fn a_station_associates_leases_and_reaches_the_access_point() {
    netvm_testsupport::require_root();
    if let Some(why) = wifi::unavailable() {
        eprintln!("SKIPPED: the Wi-Fi lab cannot run here: {why}");
        return;
    }
    let total = Instant::now();
    let lab = WifiLab::boot(Some(Path::new(env!("CARGO_BIN_EXE_netvm")))).expect("the guest boots");
    eprintln!("boot (QEMU start to shell): {:.1?}", lab.boot_time());
    let console = lab.console_text();
    assert!(
        console.contains("netvm-wifi: radios phy0 phy1 phy2"),
        "three radios expected:\n{console}"
    );
    lab.must("netvm --version")
        .expect("netvm runs in the guest");

    // The access point in `ap`, the station's radio in `sta`.
    let ap_if = lab.radio_to_netns(0, "ap").expect("radio 0 into ap");
    let sta_if = lab.radio_to_netns(1, "sta").expect("radio 1 into sta");
    let at = Instant::now();
    let mut ap = lab
        .start_ap(&ApConfig {
            ns: "ap".to_owned(),
            interface: ap_if,
            ssid: SSID.to_owned(),
            passphrase: PASSPHRASE.to_owned(),
            channel: 1,
        })
        .expect("hostapd enables the access point");
    lab.serve(&mut ap).expect("dnsmasq and httpd start");
    eprintln!("access point up with its services: {:.1?}", at.elapsed());

    // (a) Association.
    let conf = "/run/wifi/sta.conf";
    lab.write_file(conf, supplicant_conf(PASSPHRASE, false).as_bytes())
        .expect("supplicant configuration");
    let at = Instant::now();
    let supplicant = lab
        .spawn(
            "wpa-sta",
            Some("sta"),
            &format!("wpa_supplicant -D nl80211 -i {sta_if} -c {conf}"),
        )
        .expect("wpa_supplicant starts");
    lab.wait_output(&supplicant, "CTRL-EVENT-CONNECTED", Duration::from_secs(90))
        .expect("the station connects");
    let associated = at.elapsed();
    let status = lab
        .must(&wpa_cli(&sta_if, "status"))
        .expect("wpa_cli status");
    assert!(
        status.lines().any(|l| l.trim() == "wpa_state=COMPLETED"),
        "{status}"
    );
    assert!(status.contains("key_mgmt=WPA2-PSK"), "{status}");
    assert!(status.contains("pairwise_cipher=CCMP"), "{status}");
    eprintln!("association (supplicant start to COMPLETED): {associated:.1?}");
    lab.wait_output(&ap.hostapd, "AP-STA-CONNECTED", Duration::from_secs(10))
        .expect("hostapd saw the station");

    // (b) A lease from the access point, and its HTTP service.
    let at = Instant::now();
    let leased = lab
        .must(&in_netns(
            "sta",
            &format!(
                "WIFI_REPORT=/run/wifi/sta-lease udhcpc -i {sta_if} -s {UDHCPC_SCRIPT} -n -q -t 10 -T 2 >/dev/null 2>&1; cat /run/wifi/sta-lease"
            ),
        ))
        .expect("udhcpc");
    let lease_time = at.elapsed();
    assert!(leased.contains("lease 10.77.0.1"), "no lease: {leased:?}");
    assert!(leased.contains(&format!("router {AP_ADDRESS}")), "{leased}");
    eprintln!("DHCP lease: {lease_time:.1?} ({})", leased.trim());
    let body = lab
        .must(&in_netns(
            "sta",
            &format!("timeout 20 wget -q -O - http://{AP_ADDRESS}/"),
        ))
        .expect("HTTP GET of the access point's service");
    assert_eq!(body.trim(), ap.http_body());
    let resolved = lab
        .must(&in_netns(
            "sta",
            &format!("nslookup {AP_NAME} {AP_ADDRESS}"),
        ))
        .expect("the access point's DNS answers");
    assert!(resolved.contains(AP_ADDRESS), "{resolved}");
    lab.must(&in_netns("sta", &format!("ping -c 1 -W 5 {AP_ADDRESS}")))
        .expect("ping the access point");

    // (c) A wrong passphrase: the control interface says WRONG_KEY (its
    // events, read by a wpa_cli attached to it before the network is
    // enabled, so it misses none).
    lab.stop(&supplicant).expect("stop the supplicant");
    lab.must(&format!("{IP} -n sta addr flush dev {sta_if}"))
        .expect("flush");
    let wrong = "/run/wifi/sta-wrong.conf";
    lab.write_file(
        wrong,
        supplicant_conf("not the passphrase", true).as_bytes(),
    )
    .expect("wrong configuration");
    let at = Instant::now();
    let supplicant = lab
        .spawn(
            "wpa-sta-wrong",
            Some("sta"),
            &format!("wpa_supplicant -D nl80211 -i {sta_if} -c {wrong}"),
        )
        .expect("wpa_supplicant starts");
    lab.wait_until(
        &format!("[ -S {STA_CTRL}/{sta_if} ]"),
        Duration::from_secs(30),
    )
    .expect("the control socket");
    let monitor = lab
        .spawn(
            "wpa-cli-events",
            None,
            &format!(
                "sh -c {}",
                quote(&format!("sleep 600 | {}", wpa_cli(&sta_if, "")))
            ),
        )
        .expect("wpa_cli starts");
    lab.wait_output(&monitor, "Interactive mode", Duration::from_secs(30))
        .expect("wpa_cli attaches");
    lab.must(&wpa_cli(&sta_if, "enable_network 0"))
        .expect("enable the network");
    lab.wait_output(&monitor, "reason=WRONG_KEY", Duration::from_secs(90))
        .expect("the control interface reports WRONG_KEY");
    eprintln!("wrong passphrase reported: {:.1?}", at.elapsed());
    let events = lab.output(&monitor).expect("events");
    let line = events
        .lines()
        .find(|l| l.contains("reason=WRONG_KEY"))
        .unwrap_or_default();
    assert!(
        line.contains("CTRL-EVENT-SSID-TEMP-DISABLED") && line.contains(SSID),
        "{events}"
    );
    let status = lab
        .must(&wpa_cli(&sta_if, "status"))
        .expect("wpa_cli status");
    assert!(!status.contains("wpa_state=COMPLETED"), "{status}");
    for process in [&monitor, &supplicant] {
        lab.stop(process).expect("stop");
    }
    lab.stop_ap(&ap).expect("the access point stops");

    let console = lab.console_text();
    for line in console.lines().filter(|l| l.contains("cfg80211")) {
        eprintln!("console: {line}");
    }
    // Printed, not asserted (tests never assert a timing).
    eprintln!("total: {:.1?}", total.elapsed());
}
