//! QEMU accepts the arguments `netvm host vmm-args` writes: in a
//! namespace where `netvm host up` made the real TAPs, QEMU (TCG,
//! stopped with `-S`) starts with each VM's generated arguments, reports
//! the NICs on the right TAPs with the right MACs over QMP, and quits.
//! Runs as root; needs qemu-system-x86.

use netvm_testsupport::Netns;
use std::path::Path;
use std::time::Duration;

const NETVM: &str = env!("CARGO_BIN_EXE_netvm");

/// A secure system whose net-vm gets a USB NIC.
const USB: &str = r#"
[netvm.uplink]
usb = "0bda:8153"

[[vm]]
name = "chrome-vm"
"#;

/// A dev system: the net-vm has a second TAP for its uplink.
const DEV: &str = r#"
[netvm]
mode = "dev"

[netvm.uplink]
interface = "eth1"
mac = "02:00:00:00:aa:01"

[host]
uplink = "eth9"
"#;

/// Connects to QMP, prints `info network`, quits QEMU.
const QMP: &str = "import socket,json,sys,time\n\
for _ in range(300):\n    try:\n        s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); break\n    except OSError: time.sleep(0.1)\n\
f=s.makefile('rw')\n\
def rx():\n    while True:\n        m=json.loads(f.readline())\n        if 'event' not in m: return m\n\
def cmd(c, **a):\n    f.write(json.dumps({'execute':c,'arguments':a})+'\\n'); f.flush(); return rx()\n\
rx(); cmd('qmp_capabilities')\n\
print(cmd('human-monitor-command', **{'command-line':'info network'})['return'], flush=True)\n\
cmd('quit')\n";

/// Starts QEMU in `ns` with `vm`'s arguments and returns `info network`.
fn qemu_network(ns: &Netns, description: &str, vm: &str, dir: &Path) -> String {
    let json = ns.ok(&[
        NETVM,
        "host",
        "vmm-args",
        description,
        "--vm",
        vm,
        "--vmm",
        "qemu",
        "--format",
        "json",
    ]);
    let args: Vec<String> = serde_json::from_str(&json).expect("a JSON array");
    let socket = dir.join(format!("{vm}.qmp"));
    let socket = socket.to_str().expect("utf-8");
    let qmp = format!("unix:{socket},server=on,wait=off");
    let mut argv = vec![
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-M",
        "q35",
        "-S",
        "-nodefaults",
        "-display",
        "none",
        "-qmp",
        &qmp,
    ];
    argv.extend(args.iter().map(String::as_str));
    let mut qemu = ns.spawn(&argv);
    let info = ns.ok(&["python3", "-c", QMP, socket]);
    assert!(
        qemu.wait_exit(Duration::from_secs(20)),
        "QEMU did not quit: {:?}",
        qemu.lines()
    );
    info
}

#[test]
fn qemu_accepts_the_generated_network_arguments() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("vmm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");

    let usb = dir.join("usb.toml");
    std::fs::write(&usb, USB).expect("write");
    let usb = usb.to_str().expect("utf-8");
    let host = Netns::new("qemu");
    host.ok(&[NETVM, "host", "up", usb]);
    let info = qemu_network(&host, usb, "chrome-vm", &dir);
    assert!(
        info.contains("ifname=tap-chrome-vm") && info.contains("macaddr=02:ad:00:00:00:65"),
        "{info}"
    );
    let info = qemu_network(&host, usb, "net-vm", &dir);
    assert!(
        info.contains("ifname=tap-net-vm") && info.contains("macaddr=02:ad:00:00:00:01"),
        "{info}"
    );

    let dev = dir.join("dev.toml");
    std::fs::write(&dev, DEV).expect("write");
    let dev = dev.to_str().expect("utf-8");
    let host = Netns::new("qemud");
    host.ok(&[
        "ip", "link", "add", "eth9", "type", "veth", "peer", "name", "eth9p",
    ]);
    host.ok(&[NETVM, "host", "up", dev]);
    let info = qemu_network(&host, dev, "net-vm", &dir);
    assert!(
        info.contains("ifname=tap-net-vm,") && info.contains("ifname=tap-net-vm-up"),
        "{info}"
    );
    assert!(info.contains("macaddr=02:00:00:00:aa:01"), "{info}");
}
