//! The `netvm` binary as a user runs it: exit codes, output and errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn netvm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netvm"))
        .args(args)
        .output()
        .expect("netvm runs")
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml" || e == "json"))
        .collect();
    files.sort();
    files
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn every_example_passes_check() {
    let files = examples();
    assert!(files.len() >= 3, "examples/ has the three required files");
    for file in files {
        let output = netvm(&["check", file.to_str().expect("utf-8 path")]);
        assert!(
            output.status.success(),
            "{}: {}",
            file.display(),
            stderr(&output)
        );
        let out = stdout(&output);
        assert!(out.starts_with("NAME"), "{out}");
        assert!(out.contains("net-vm.internal"), "{out}");
        assert!(out.trim_end().ends_with(": valid"), "{out}");
    }
}

#[test]
fn check_rejects_with_location_and_exit_code_1() {
    let dir = tempdir();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[netvm.uplink]\ninterface = \"eth0\"\n[[vm]]\nname = \"a\"\nip = \"10.9.9.9\"\n",
    )
    .expect("write");
    let output = netvm(&["check", file.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("bad.toml:5:6"), "{err}");
    assert!(
        err.contains("address 10.9.9.9 is outside the subnet 192.168.100.0/24"),
        "{err}"
    );
    assert!(err.contains("= hint:"), "{err}");
    assert!(stdout(&output).is_empty(), "nothing printed as valid");
}

#[test]
fn check_names_a_missing_file() {
    let output = netvm(&["check", "/nonexistent/system.toml"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("cannot read /nonexistent/system.toml: No such file"),
        "{err}"
    );
}

#[test]
fn plan_json_is_stable_and_machine_readable() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ghaf-laptop.toml");
    let first = netvm(&["plan", file.to_str().expect("utf-8"), "--format", "json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let second = netvm(&["plan", file.to_str().expect("utf-8"), "--format", "json"]);
    assert_eq!(first.stdout, second.stdout);
    let plan: serde_json::Value = serde_json::from_slice(&first.stdout).expect("json");
    assert_eq!(plan["network"]["gateway"], "192.168.100.1");
    assert_eq!(plan["addresses"].as_array().map(Vec::len), Some(7));

    let table = netvm(&["plan", file.to_str().expect("utf-8")]);
    let text = stdout(&table);
    assert!(text.contains("policy (default deny)"), "{text}");
}

#[test]
fn schema_is_json_schema_of_the_description() {
    let output = netvm(&["schema"]);
    assert!(output.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert!(schema["$schema"]
        .as_str()
        .is_some_and(|s| s.contains("json-schema.org")));
    let properties = schema["properties"].as_object().expect("properties");
    for key in ["network", "netvm", "host", "vm", "dhcp", "dns"] {
        assert!(properties.contains_key(key), "schema lacks {key}");
    }
    assert_eq!(schema["additionalProperties"], false);
}

#[test]
fn schema_prints_the_events_and_the_control_protocol() {
    for (flag, title, defs) in [
        (
            "--events",
            "netvm event",
            &["Ready", "Flow", "Severity"][..],
        ),
        (
            "--control",
            "netvm control protocol line",
            &["Request", "Response", "Status", "Event"][..],
        ),
    ] {
        let output = netvm(&["schema", flag]);
        assert!(output.status.success(), "{}", stderr(&output));
        let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
        assert_eq!(schema["title"], title);
        for name in defs {
            assert!(
                schema["$defs"].get(name).is_some(),
                "{flag}: no {name} in {schema:#}"
            );
        }
    }
    assert!(!netvm(&["schema", "--events", "--control"]).status.success());
}

/// A fresh directory under the target dir (removed at the next run).
fn tempdir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tempdir");
    dir
}

#[test]
fn plan_for_the_net_vm_prints_its_data_plane() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ghaf-laptop.toml");
    let file = file.to_str().expect("utf-8");
    let table = netvm(&["plan", file, "--role", "net-vm"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(
        text.contains("ethint0    internal  192.168.100.1/24 mtu 1500"),
        "{text}"
    );
    assert!(
        text.contains("net/ipv4/conf/ethint0/proxy_arp_pvlan = 1"),
        "{text}"
    );
    // IPv6 (on by default): the net-vm's address in the derived /64.
    let v6 = text
        .lines()
        .find(|l| l.starts_with("ipv6 on ethint0: fd"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(v6.contains(" nat66, net-vm fd"), "{v6}");
    assert!(text.contains("mtu 1500 fd"), "{text}");
    assert!(text.contains("table inet netvm {"), "{text}");
    let json = netvm(&["plan", file, "--role", "net-vm", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(
        plan["interfaces"][1]["name"], "uplink0",
        "a passed-through NIC gets a fixed name"
    );
    assert!(plan["ruleset"]
        .as_str()
        .is_some_and(|r| r.contains("masquerade")));
    // What the servers and the event listener run, from the same plan.
    assert_eq!(plan["dhcp"]["reservations"][0]["name"], "gui-vm");
    assert_eq!(plan["dns"]["domain"], "internal");
    assert_eq!(plan["endpoints_seed"][0][0], "192.168.100.3");
    assert_eq!(plan["event_sets"][0]["name"], "ev_spoofed");
    assert_eq!(plan["event_sets"][0]["log_group"], 7);
    assert!(text.contains("ev_spoofed"), "{text}");
}
