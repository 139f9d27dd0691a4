//! Property tests of address derivation over random valid systems: up to
//! 150 VMs with random names, kinds and optional explicit addresses.

use netvm_description::{parse, Format};
use proptest::prelude::*;
use std::collections::HashSet;
use std::net::Ipv4Addr;

#[derive(Debug, Clone)]
struct VmSpec {
    name: String,
    system: bool,
    /// Explicit host number, if any.
    host: Option<u32>,
}

#[derive(Debug, Clone)]
struct SystemSpec {
    wide: bool,
    host_address: bool,
    vms: Vec<VmSpec>,
}

fn system() -> impl Strategy<Value = SystemSpec> {
    let names = prop::collection::btree_set("[a-z][a-z0-9-]{0,12}[a-z0-9]", 0..=150);
    (any::<bool>(), any::<bool>(), names)
        .prop_flat_map(|(wide, host_address, names)| {
            let names: Vec<String> = names
                .into_iter()
                .filter(|n| n != "net-vm" && n != "host")
                .collect();
            let count = names.len();
            // Explicit host numbers: distinct, clear of the net-vm (1), the
            // host (2) and the default pool (200-254).
            let hosts = prop::sample::subsequence((3u32..200).collect::<Vec<_>>(), count.min(197));
            let flags = prop::collection::vec((any::<bool>(), any::<bool>()), count);
            (Just((wide, host_address, names)), hosts, flags)
        })
        .prop_map(|((wide, host_address, names), hosts, flags)| {
            let mut hosts = hosts.into_iter();
            let vms = names
                .into_iter()
                .zip(flags)
                .map(|(name, (system, explicit))| VmSpec {
                    name,
                    system,
                    host: if explicit { hosts.next() } else { None },
                })
                .collect();
            SystemSpec {
                wide,
                host_address,
                vms,
            }
        })
}

fn subnet(spec: &SystemSpec) -> (Ipv4Addr, u8) {
    if spec.wide {
        (Ipv4Addr::new(10, 40, 0, 0), 16)
    } else {
        (Ipv4Addr::new(192, 168, 100, 0), 24)
    }
}

fn to_toml(spec: &SystemSpec) -> String {
    let (net, prefix) = subnet(spec);
    // Only a dev-mode host has an internal address.
    let (mode, host_uplink) = if spec.host_address {
        ("dev", "uplink = \"eth9\"\n")
    } else {
        ("secure", "")
    };
    let mut text = format!(
        "[network]\nsubnet = \"{net}/{prefix}\"\nmac_prefix = \"02:ad:00:00\"\n\
         [netvm]\nmode = \"{mode}\"\n[netvm.uplink]\ninterface = \"eth0\"\n\
         [host]\ninternal_address = {}\n{host_uplink}",
        spec.host_address
    );
    for vm in &spec.vms {
        text += &format!(
            "[[vm]]\nname = \"{}\"\nkind = \"{}\"\n",
            vm.name,
            if vm.system { "system" } else { "app" }
        );
        if let Some(n) = vm.host {
            text += &format!("ip = \"{}\"\n", Ipv4Addr::from(u32::from(net) | n));
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn derived_plans_are_unique_inside_the_subnet_and_deterministic(spec in system()) {
        let text = to_toml(&spec);
        let system = parse("random.toml", &text, Format::Toml)
            .map_err(|e| TestCaseError::fail(format!("valid system rejected:\n{e}")))?;
        let plan = netvm_plan::plan(&system);

        let (net, prefix) = subnet(&spec);
        let size = 1u32 << (32 - prefix);
        let expected_rows = 1 + usize::from(spec.host_address) + spec.vms.len();
        prop_assert_eq!(plan.addresses.len(), expected_rows);
        let mut ips = HashSet::new();
        let mut macs = HashSet::new();
        for row in &plan.addresses {
            let offset = u32::from(row.ip).wrapping_sub(u32::from(net));
            prop_assert!(offset > 0 && offset < size - 1, "{} outside {}/{}", row.ip, net, prefix);
            prop_assert!(ips.insert(row.ip), "duplicate address {}", row.ip);
            prop_assert!(macs.insert(row.mac.clone()), "duplicate MAC {}", row.mac);
        }
        // Explicit addresses are kept as written.
        for vm in &spec.vms {
            if let Some(n) = vm.host {
                let row = plan.addresses.iter().find(|r| r.name == vm.name).expect("row");
                prop_assert_eq!(row.ip, Ipv4Addr::from(u32::from(net) | n));
            }
        }
        let again = netvm_plan::plan(&parse("random.toml", &text, Format::Toml).expect("valid"));
        prop_assert_eq!(plan, again);
    }
}
