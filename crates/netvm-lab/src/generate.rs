//! Random valid system descriptions from a seed, for `netvm lab verify`
//! on systems nobody wrote by hand: 2 to 8 VMs of random kinds and
//! Internet flags, allow rules (TCP, UDP, ICMP; single ports, ranges,
//! every port), port forwards (single, a range, a target port shifted
//! from the uplink's), a pool of random size, metrics and the agent's control
//! service for a random few.
//! Pure: the same seed gives the same TOML text (the lab's uplink, as in
//! the embedded default, so `netvm lab up FILE` runs it).

use crate::expect::Rng;
use std::fmt::Write;

/// The description for `seed`, as TOML.
pub fn system(seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let count = rng.range(2, 8) as usize;
    let names: Vec<String> = (0..count)
        .map(|i| {
            format!(
                "{}-{i}",
                ["sys", "app", "work", "media"][rng.range(0, 3) as usize]
            )
        })
        .collect();
    let mut t = String::new();
    let _ = writeln!(t, "# netvm lab verify: generated from seed {seed}");
    t.push_str(
        "[network]\nsubnet = \"192.168.100.0/24\"\ndomain = \"internal\"\n\n\
         [netvm]\nname = \"net-vm\"\nmode = \"secure\"\n\n\
         [netvm.uplink]\ninterface = \"wan0\"\nmac = \"02:ad:00:00:fe:01\"\naddressing = \"dhcp\"\n",
    );
    // Forwarded uplink ports, never two on one port.
    let mut taken: Vec<(u16, u16)> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let kind = if rng.chance(40) { "system" } else { "app" };
        let _ = write!(
            t,
            "\n[[vm]]\nname = \"{name}\"\nkind = \"{kind}\"\ninternet = {}\n",
            rng.chance(50)
        );
        let mut rules = Vec::new();
        for _ in 0..rng.range(0, 3) {
            let to = rng.range(0, count as u64 - 1) as usize;
            if to == i {
                continue;
            }
            let rule = match rng.range(0, 9) {
                0 | 1 => format!("{{ to = \"{}\", proto = \"icmp\" }}", names[to]),
                n => {
                    let proto = if n < 6 { "tcp" } else { "udp" };
                    let first = rng.range(2000, 40000) as u16;
                    let ports = match rng.range(0, 5) {
                        0 => String::new(),
                        1 | 2 => {
                            format!(", ports = \"{first}-{}\"", first + rng.range(1, 6) as u16)
                        }
                        _ => format!(", ports = {first}"),
                    };
                    format!("{{ to = \"{}\", proto = \"{proto}\"{ports} }}", names[to])
                }
            };
            rules.push(rule);
        }
        if !rules.is_empty() {
            let _ = writeln!(t, "allow = [{}]", rules.join(", "));
        }
        let mut forwards = Vec::new();
        if rng.chance(35) {
            let proto = if rng.chance(60) { "tcp" } else { "udp" };
            let first = rng.range(1, 60000) as u16;
            let len = if rng.chance(40) {
                rng.range(1, 3) as u16
            } else {
                0
            };
            let last = first + len;
            if !taken.iter().any(|(a, b)| first <= *b && *a <= last) {
                taken.push((first, last));
                let port = if len == 0 {
                    first.to_string()
                } else {
                    format!("\"{first}-{last}\"")
                };
                let to_port = if rng.chance(50) {
                    format!(", to_port = {}", rng.range(1025, 60000))
                } else {
                    String::new()
                };
                forwards.push(format!("{{ proto = \"{proto}\", port = {port}{to_port} }}"));
            }
        }
        if !forwards.is_empty() {
            let _ = writeln!(t, "forward = [{}]", forwards.join(", "));
        }
    }
    let last = rng.range(200, 250);
    let _ = write!(
        t,
        "\n[dhcp]\npool = \"192.168.100.200-192.168.100.{last}\"\nlease_time = \"1h\"\n"
    );
    if rng.chance(70) {
        let readers: Vec<String> = names
            .iter()
            .filter(|_| rng.chance(40))
            .map(|n| format!("\"{n}\""))
            .collect();
        let _ = write!(
            t,
            "\n[agent]\nmetrics_port = {}\nmetrics_allow = [{}]\n",
            rng.range(9100, 9200),
            readers.join(", ")
        );
        // The agent's control service for a random few: some may change,
        // others only read (a VM is in one list at most).
        let (mut allow, mut read) = (Vec::new(), Vec::new());
        for n in &names {
            match rng.range(0, 10) {
                0 => allow.push(format!("\"{n}\"")),
                1 => read.push(format!("\"{n}\"")),
                _ => {}
            }
        }
        let _ = write!(
            t,
            "control_port = {}\ncontrol_allow = [{}]\ncontrol_read = [{}]\n",
            rng.range(7000, 7100),
            allow.join(", "),
            read.join(", ")
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_gives_a_valid_description() {
        for seed in 0..200 {
            let text = system(seed);
            if let Err(e) = netvm_description::parse("seed", &text, netvm_description::Format::Toml)
            {
                panic!("seed {seed}: {e}\n{text}");
            }
        }
    }

    #[test]
    fn seeds_vary_what_matters() {
        let all: Vec<netvm_description::System> = (0..200)
            .filter_map(|s| {
                netvm_description::parse("seed", &system(s), netvm_description::Format::Toml).ok()
            })
            .collect();
        let counts: std::collections::BTreeSet<usize> = all.iter().map(|s| s.vms.len()).collect();
        assert_eq!(counts, (2..=8).collect());
        let forwards = all.iter().flat_map(|s| &s.vms).flat_map(|v| &v.forwards);
        assert!(forwards.clone().any(|f| f.uplink_ports.len() > 1));
        assert!(forwards
            .clone()
            .any(|f| f.vm_ports.first() != f.uplink_ports.first()));
        let rules: Vec<_> = all
            .iter()
            .flat_map(|s| &s.vms)
            .flat_map(|v| &v.allow)
            .collect();
        assert!(rules
            .iter()
            .any(|r| r.proto == netvm_description::values::Protocol::Icmp));
        assert!(rules.iter().any(|r| r.ports.is_some_and(|p| p.len() > 1)));
        assert!(rules.iter().any(|r| r.ports.is_none()));
    }

    #[test]
    fn the_same_seed_gives_the_same_text() {
        assert_eq!(system(42), system(42));
        assert_ne!(system(42), system(43));
    }
}
