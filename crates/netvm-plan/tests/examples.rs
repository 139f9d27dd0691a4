//! The example descriptions: TOML and JSON of one system give one plan, and
//! each example's plan matches its golden file (regenerate with
//! `NETVM_UPDATE_GOLDEN=1 cargo test -p netvm-plan --test examples` and
//! review the diff).

use netvm_description::{load, parse, Format};
use netvm_testsupport::nft_check;
use std::path::{Path, PathBuf};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn plan_of(path: &Path) -> netvm_plan::Plan {
    let system = load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    netvm_plan::plan(&system)
}

#[test]
fn json_and_toml_of_one_system_give_one_plan() {
    let dir = examples_dir();
    let from_toml = plan_of(&dir.join("ghaf-laptop.toml"));
    let from_json = plan_of(&dir.join("ghaf-laptop.json"));
    assert_eq!(from_toml, from_json);

    // And for every TOML example, its JSON translation.
    for entry in std::fs::read_dir(&dir).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).expect("readable");
            let value: serde_json::Value = toml::from_str(&text).expect("toml");
            let json = serde_json::to_string_pretty(&value).expect("json");
            let system = parse("translated.json", &json, Format::Json).expect("valid json");
            assert_eq!(
                plan_of(&path),
                netvm_plan::plan(&system),
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn example_plans_match_their_golden_files() {
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("NETVM_UPDATE_GOLDEN").is_some();
    for name in ["ghaf-laptop", "dev-mode", "minimal", "orin-platform"] {
        let plan = plan_of(&examples_dir().join(format!("{name}.toml")));
        let json = serde_json::to_string_pretty(&plan).expect("json") + "\n";
        let text = plan.to_text();
        let system = load(&examples_dir().join(format!("{name}.toml"))).expect("valid");
        let netvm = netvm_plan::datapath::plan(&system, &[]);
        let netvm_json = serde_json::to_string_pretty(&netvm).expect("json") + "\n";
        let ruleset = netvm.ruleset;
        let host = netvm_plan::host::plan(&system).expect("host plan");
        let host_json = serde_json::to_string_pretty(&host).expect("json") + "\n";
        let vmm = vmm_table(&system, &host);
        for (file, actual) in [
            (format!("{name}.plan.json"), &json),
            (format!("{name}.plan.txt"), &text),
            (format!("{name}.netvm.nft"), &ruleset),
            (format!("{name}.netvm.json"), &netvm_json),
            (format!("{name}.host.json"), &host_json),
            (format!("{name}.host.nft"), &host.ruleset),
            (format!("{name}.vmm.txt"), &vmm),
        ] {
            let path = golden_dir.join(&file);
            if update {
                std::fs::write(&path, actual).expect("write golden");
                continue;
            }
            let expected = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (set NETVM_UPDATE_GOLDEN=1)", path.display()));
            assert_eq!(actual, &expected, "{file} differs from its golden file");
        }
    }
}

/// With IPv6 off in the description, the Net VM's plan is exactly what
/// it was before IPv6: its JSON and ruleset match the IPv4-only golden
/// files kept in `golden/ipv6-off/` (never regenerated).
#[test]
fn with_ipv6_off_the_net_vm_plan_is_the_ipv4_one() {
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/ipv6-off");
    for name in ["ghaf-laptop", "dev-mode", "minimal", "orin-platform"] {
        let mut system = load(&examples_dir().join(format!("{name}.toml"))).expect("valid");
        system.network.ipv6 = None;
        // Added since those files were written: the agent's control
        // service for VMs (ghaf-laptop names users).
        system.agent.control = None;
        // And the uplinks as they were: the first alone, wired.
        system.netvm.uplinks.truncate(1);
        system.netvm.uplinks[0].wifi = None;
        let netvm = netvm_plan::datapath::plan(&system, &[]);
        let json = serde_json::to_string_pretty(&netvm).expect("json") + "\n";
        for (file, actual) in [
            (format!("{name}.netvm.nft"), &netvm.ruleset),
            (format!("{name}.netvm.json"), &json),
        ] {
            let expected = std::fs::read_to_string(golden_dir.join(&file)).expect("golden");
            assert_eq!(actual, &expected, "ipv6-off/{file}");
        }
    }
}

/// Every VM's arguments under every VMM, one line each (or the error).
fn vmm_table(system: &netvm_description::System, host: &netvm_plan::host::HostPlan) -> String {
    use netvm_plan::vmm::{self, Vmm};
    let mut out = String::new();
    for port in &host.ports {
        for tool in [Vmm::Qemu, Vmm::CloudHypervisor, Vmm::Crosvm] {
            let line = match vmm::args(system, host, &port.vm, tool) {
                Ok(args) => vmm::shell_line(&args),
                Err(e) => format!("error: {e}"),
            };
            out.push_str(&format!("{} {tool}: {line}\n", port.vm));
        }
    }
    out
}

/// The kernel's own parser accepts every example's rulesets, the Net
/// VM's and the host's (`nft -c` checks without changing anything; needs
/// root and the nftables package): IPv6 masqueraded (the default),
/// routed in a delegated prefix, with a CLAT, and off.
#[test]
fn example_rulesets_pass_nft_check() {
    use netvm_plan::datapath::{ClatHook, Ipv6Uplink};
    let clat = ClatHook {
        tun: "clat0".parse().expect("name"),
        clat6: "2001:db8:1:ff::c1a7".parse().expect("address"),
    };
    let lease6 = (
        "2001:db8:1:f0::1:0:de".parse().expect("address"),
        "02:00:00:00:00:df".parse().expect("mac"),
    );
    for name in ["ghaf-laptop", "dev-mode", "minimal", "orin-platform"] {
        let system = load(&examples_dir().join(format!("{name}.toml"))).expect("valid");
        nft_check(name, &netvm_plan::datapath::plan(&system, &[]).ruleset);
        let routed = Ipv6Uplink {
            delegated: Some("2001:db8:1:f0::/60".parse().expect("prefix")),
            clat: Some(clat.clone()),
        };
        let plan = netvm_plan::datapath::plan_with(&system, &[], &[lease6], &routed);
        assert_eq!(
            plan.ipv6.as_ref().expect("on").leases6_admitted,
            1,
            "{name}"
        );
        nft_check(name, &plan.ruleset);
        let nat66_clat = Ipv6Uplink {
            delegated: None,
            clat: Some(clat.clone()),
        };
        nft_check(
            name,
            &netvm_plan::datapath::plan_with(&system, &[], &[], &nat66_clat).ruleset,
        );
        let mut off = system.clone();
        off.network.ipv6 = None;
        nft_check(
            name,
            &netvm_plan::datapath::plan_with(&off, &[], &[], &nat66_clat).ruleset,
        );
        // With pool leases seeding `endpoints` too.
        let lease = (
            std::net::Ipv4Addr::new(192, 168, 100, 222),
            "02:00:00:00:00:de".parse().expect("mac"),
        );
        let seeded = netvm_plan::datapath::plan(&system, &[lease]);
        assert!(seeded.endpoints_seed.contains(&lease), "{name}");
        nft_check(name, &seeded.ruleset);
        nft_check(
            name,
            &netvm_plan::host::plan(&system).expect("host plan").ruleset,
        );
    }
}
