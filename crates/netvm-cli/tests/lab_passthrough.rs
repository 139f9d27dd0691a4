//! `netvm lab up --vms passthrough`: the ADR's secure scenario on
//! emulated hardware, end to end. The host is a QEMU VM with a vIOMMU;
//! inside it netvm lists its NIC, binds it to vfio-pci, builds the
//! bridge, passes its audit and boots the Net VM in a nested QEMU with
//! the generated VFIO arguments; the Net VM finds the NIC by PCI
//! vendor:device, leases the uplink through it and serves the VMs. Then
//! the acceptance rows that make sense there, the NIC given back, and
//! every QEMU process and namespace gone. A test binary of its own, so
//! no other QEMU lab shares the two cores with it. Runs as root.
//!
//! The lab runs an optimized netvm (built here with `cargo build
//! --release`, nothing to do when the README's test command built it
//! first): the nested Net VM runs under TCG inside TCG, where starting a
//! debug build of the agent alone takes minutes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

const DEBUG_NETVM: &str = env!("CARGO_BIN_EXE_netvm");

/// `target/release/netvm`, built from this tree.
fn optimized() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--locked",
                "-p",
                "netvm",
                "--bin",
                "netvm",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build --release failed");
        let target = Path::new(DEBUG_NETVM)
            .parent()
            .and_then(Path::parent)
            .expect("the target directory");
        target.join("release").join("netvm")
    })
}

fn netvm(args: &[&str]) -> (bool, String) {
    let out = Command::new(optimized())
        .args(args)
        .output()
        .expect("netvm runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// QEMU processes started for lab `id` (their files are in its directory).
fn lab_qemus(id: &str) -> Vec<String> {
    let dir = format!("/run/netvm-lab/{id}/");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("qemu-system") && c.contains(&dir))
        .collect()
}

/// The namespaces of lab `id`.
fn namespaces(id: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("nvl{id}-")))
        .map(str::to_owned)
        .collect()
}

/// Removes the lab even when an assertion failed.
struct Down(&'static str);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = netvm(&["lab", "down", "--id", self.0]);
    }
}

/// One nested lab at a time: two would share the two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Up (with `nic`), the transcript holds `commands`, test (every row
/// passes), down, and nothing left behind.
fn up_test_down(id: &'static str, nic: &str, commands: &[&str]) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let _down = Down(id);
    let (ok, text) = netvm(&[
        "lab",
        "up",
        "--id",
        id,
        "--vms",
        "passthrough",
        "--nic",
        nic,
    ]);
    // The stages' times, for the log of the run.
    println!("{text}");
    assert!(ok, "{text}");
    for expected in [
        "STAGE",
        "host VM boot",
        "Net VM boot",
        "first uplink lease",
        "first VM lease",
        "192.168.100.101 (reserved)",
        "(pool)",
        "yes, seen as 203.0.113.",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` missing from:\n{text}"
        );
    }
    let transcript = std::fs::read_to_string(format!("/run/netvm-lab/{id}/host-vm-commands.txt"))
        .expect("the host VM's transcript");
    let common = [
        "$ netvm host devices\n",
        "$ netvm host devices --describe",
        "$ netvm host up /etc/netvm/system.toml",
        "$ netvm host audit /etc/netvm/system.toml",
        "check(s), 0 failed",
    ];
    for expected in common.iter().chain(commands) {
        assert!(
            transcript.contains(expected),
            "`{expected}` missing from the transcript:\n{transcript}"
        );
    }
    let (ok, report) = netvm(&["lab", "test", "--id", id]);
    println!("{report}");
    assert!(ok, "{report}");
    assert!(report.contains("all 5 checks passed"), "{report}");
    let (ok, text) = netvm(&["lab", "down", "--id", id]);
    assert!(ok, "{text}");
    assert!(lab_qemus(id).is_empty(), "{:?}", lab_qemus(id));
    assert!(namespaces(id).is_empty(), "{:?}", namespaces(id));
    assert!(!Path::new("/run/netvm-lab").join(id).exists());
}

#[test]
fn the_nic_passes_through_a_viommu_to_a_nested_net_vm_that_serves_the_vms() {
    up_test_down(
        "69",
        "pci",
        &[
            "1af4:1041",
            "pci_id = \"1af4:1041\"",
            "$ netvm host passthrough bind 0000:00:03.0",
            "-device vfio-pci,host=0000:00:03.0",
        ],
    );
}

/// The same chain with a USB NIC. Not in the default run: it needs
/// `linux-image-amd64` (the cloud kernel has no USB support; 410 MB
/// installed) and takes seven more minutes, which CI's time cannot hold;
/// and it fails today: rows 1, 2, 9 and 10 pass, but in row 3 the port
/// forward does not answer the upstream through the USB uplink (outbound
/// NAT through it works; the cause is not found yet). Run it with `cargo
/// test -p netvm --test lab_passthrough -- --ignored`.
#[test]
#[ignore = "needs linux-image-amd64; row 3 (the port forward over the USB uplink) fails, cause open"]
fn a_usb_nic_passes_to_a_nested_net_vm_by_vendor_and_product() {
    up_test_down(
        "58",
        "usb",
        &[
            "0525:a4a2",
            "usb = \"0525:a4a2\"",
            "-device qemu-xhci,id=netvm-xhci -device usb-host,bus=netvm-xhci.0,vendorid=0x0525,productid=0xa4a2",
        ],
    );
}
