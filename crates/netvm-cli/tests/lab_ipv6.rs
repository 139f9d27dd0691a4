//! `netvm lab` behind each IPv6 upstream flavour, as a user runs it: up,
//! the acceptance matrix (its IPv4 and IPv6 rows), down. `dual-pd`: the
//! internal /64 comes from the delegated prefix and is routed (the
//! upstream sees each VM's own address); `dual`: the ULA, masqueraded
//! (NAT66); `ipv6-only`: no IPv4 on the uplink, the VMs' IPv4 goes
//! through the net-vm's CLAT to the upstream's NAT64. Runs as root; needs
//! radvd, kea-dhcp6-server, tayga, unbound, dnsmasq, dhclient and dhcpcd.
//! Each test uses its own lab id.

use std::process::Command;

const NETVM: &str = env!("CARGO_BIN_EXE_netvm");

fn netvm(args: &[&str]) -> (bool, String) {
    let out = Command::new(NETVM).args(args).output().expect("netvm runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Removes the lab even when an assertion failed.
struct Down(&'static str);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = netvm(&["lab", "down", "--id", self.0]);
    }
}

/// Brings lab `id` up behind `upstream`, checks that its report has
/// every one of `expected`, runs the matrix, takes it down.
fn up_test_down(id: &'static str, upstream: &str, expected: &[&str]) {
    let _down = Down(id);
    let (ok, text) = netvm(&["lab", "up", "--id", id, "--upstream", upstream]);
    assert!(ok, "{text}");
    for e in expected {
        assert!(text.contains(e), "`{e}` missing from:\n{text}");
    }
    let (ok, report) = netvm(&["lab", "test", "--id", id]);
    assert!(ok, "{report}");
    assert!(report.contains("all 16 checks passed"), "{report}");
    let (ok, text) = netvm(&["lab", "down", "--id", id]);
    assert!(ok, "{text}");
}

#[test]
fn behind_a_delegated_prefix_vms_are_routed_with_their_own_addresses() {
    up_test_down(
        "73",
        "dual-pd",
        &[
            "INTERNET OVER IPV6",
            "2001:db8:100::65",
            "yes, seen as 2001:db8:100::65",
            "yes, seen as 203.0.113.",
        ],
    );
}

#[test]
fn behind_a_single_64_vms_are_masqueraded_from_the_ula() {
    up_test_down(
        "74",
        "dual",
        &["INTERNET OVER IPV6", "yes, seen as 2001:db8:10:"],
    );
}

#[test]
fn behind_an_ipv6_only_uplink_ipv4_vms_get_out_through_the_clat() {
    up_test_down(
        "75",
        "ipv6-only",
        &[
            "ipv6-only upstream",
            "yes, seen as 192.168.255.",
            "INTERNET OVER IPV6",
        ],
    );
}
