//! A pool lease the agent cannot make effective is not acknowledged
//! (issue 13, hole 8): with the ruleset's table gone, `nft` refuses to add
//! the new lease's (IP, MAC) pair to `endpoints`; the client must get no
//! ACK, the agent must report `lease_refused` with nft's own error text,
//! and the journal must not hold the lease after a restart. Runs as root
//! in namespaces it creates; needs nft and udhcpc.

use netvm_testsupport::{veth, Netns};
use std::path::Path;
use std::time::Duration;

const NETVM: &str = env!("CARGO_BIN_EXE_netvm");
const LONG: Duration = Duration::from_secs(30);

const DESCRIPTION: &str = r#"
[netvm.uplink]
interface = "eth0"
addressing = "static"
address = "10.9.0.2/24"
gateway = "10.9.0.1"

[dns]
upstreams = ["10.9.0.1"]
"#;

fn scratch(name: &str, text: &str) -> String {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("endpoints-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_str().expect("utf-8").to_owned()
}

#[test]
fn a_pool_lease_nft_refuses_is_not_acknowledged_and_is_reported() {
    let description = scratch("system.toml", DESCRIPTION);
    let journal = scratch("journal", "");
    std::fs::remove_file(&journal).expect("remove");
    let up = Netns::new("epu");
    let nv = Netns::new("epn");
    let pool_vm = Netns::new("epp");
    veth(&up, "u0", &nv, "eth0");
    nv.ok(&["ip", "link", "add", "br-int", "type", "bridge"]);
    nv.ok(&[
        "ip",
        "link",
        "set",
        "br-int",
        "address",
        "02:ad:00:00:00:01",
    ]);
    nv.ok(&["ip", "link", "set", "br-int", "up"]);
    veth(&pool_vm, "eth0", &nv, "p-pool");
    nv.ok(&["ip", "link", "set", "p-pool", "master", "br-int"]);

    let mut agent = nv.spawn(&[NETVM, "agent", &description, "--journal", &journal]);
    agent.wait_for(LONG, |l| l.contains("\"event\":\"ready\""));
    // The ruleset's table disappears (an operator's `nft flush ruleset`,
    // another tool): adding to `endpoints` now fails.
    nv.ok(&["nft", "delete", "table", "inet", "netvm"]);

    let out = pool_vm.exec(&[
        "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "3", "-T", "1",
    ]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!said.contains("obtained"), "acknowledged anyway: {said}");
    let refused = agent.wait_for(LONG, |l| l.contains("lease_refused"));
    let event: serde_json::Value = serde_json::from_str(&refused).expect("json");
    let error = event["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("No such file or directory") || error.contains("Error"),
        "nft's own words: {refused}"
    );
    assert!(
        !agent.lines().iter().any(|l| l.contains("lease_granted")),
        "a refused lease reported as granted"
    );
    agent.signal("TERM");
    assert!(agent.wait_exit(LONG), "the agent stops");

    // The journal does not bring the lease back.
    let leases = nv.ok(&[NETVM, "leases", "--file", &journal, "--format", "json"]);
    let leases: serde_json::Value = serde_json::from_str(&leases).expect("json");
    let bound = leases
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|l| l["state"] == "bound")
                .cloned()
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert!(bound.is_empty(), "refused lease in the journal: {bound:?}");
}
