//! The Net VM plan's ruleset as the kernel takes it: applied for real in
//! a namespace of its own (root, nftables), with a pool lease seeding
//! `endpoints` in the same transaction, and its NFLOG event rules, one in
//! front of every rule that adds to an event set, listed back.

use netvm_description::load;
use netvm_plan::ruleset::{EVENT_LOG_GROUP, EVENT_SETS};
use netvm_testsupport::Netns;
use std::net::Ipv4Addr;
use std::path::Path;

#[test]
fn the_kernel_takes_the_event_log_rules_and_the_seed() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for name in ["ghaf-laptop", "minimal"] {
        let system = load(&examples.join(format!("{name}.toml"))).expect("valid");
        let lease = (
            Ipv4Addr::new(192, 168, 100, 222),
            "02:00:00:00:00:de".parse().expect("mac"),
        );
        let plan = netvm_plan::datapath::plan(&system, &[lease]);
        let file = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("event-rules-{}-{name}.nft", std::process::id()));
        std::fs::write(&file, &plan.ruleset).expect("write the ruleset");
        let ns = Netns::new("evr");
        ns.ok(&["nft", "-f", file.to_str().expect("utf-8")]);
        let _ = std::fs::remove_file(&file);
        let listed = ns.ok(&["nft", "list", "table", "inet", "netvm"]);

        assert!(
            listed.contains("192.168.100.222 . 02:00:00:00:00:de"),
            "{name}: the lease is in endpoints:\n{listed}"
        );
        for set in &plan.event_sets {
            let logs: Vec<&str> = listed
                .lines()
                .filter(|l| {
                    l.contains(&format!("!= @{} ", set.name))
                        && l.contains(&format!(
                            "log prefix \"{}\" group {EVENT_LOG_GROUP}",
                            set.log_prefix
                        ))
                })
                .collect();
            // ev_scan and ev_scan6 are added in input and in forward.
            let expected = if set.name.starts_with("ev_scan") {
                2
            } else {
                1
            };
            assert_eq!(logs.len(), expected, "{name}: {}:\n{listed}", set.name);
        }
        assert_eq!(plan.event_sets, EVENT_SETS);
    }
}
