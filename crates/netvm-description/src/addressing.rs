//! Ghaf-style address derivation: which IPv4 address and MAC every
//! endpoint gets when the description does not say.
//!
//! Host numbers: the net-vm 1 and the host 2 (fixed: a VM that claims
//! one of them is a duplicate, not a reason to move them), system VMs from
//! 3 and app VMs from 101, each in declaration order, skipping every
//! address the description gives explicitly and the dynamic pool. An endpoint that
//! finds nothing free above its start wraps around to the lowest free
//! number. A derived MAC is
//! the MAC prefix followed by the host number. Pure and deterministic:
//! the same description always gives the same addresses.

use crate::model::Origin;
use crate::values::{Ipv4Cidr, Ipv4Range, MacAddr, MacPrefix};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// One endpoint asking for an address.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// Host number where the search for a free address starts.
    pub start: u32,
    /// The address the description gives, if any.
    pub ip: Option<Ipv4Addr>,
    /// A fixed address to use when the description gives none (the
    /// net-vm's host number 1, the host's 2): never moved by another.
    pub fixed: Option<Ipv4Addr>,
    /// The MAC the description gives, if any.
    pub mac: Option<MacAddr>,
}

/// What an endpoint was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Assigned {
    pub ip: Ipv4Addr,
    pub ip_origin: Origin,
    pub mac: MacAddr,
    pub mac_origin: Origin,
}

/// Why an endpoint got nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shortage {
    /// Every host number is taken.
    NoFreeAddress,
    /// The host number does not fit after the MAC prefix.
    MacDoesNotFit(u32),
}

/// Assigns every request an address and MAC, in order.
pub(crate) fn assign(
    subnet: Ipv4Cidr,
    prefix: &MacPrefix,
    pool: Option<Ipv4Range>,
    requests: &[Request],
) -> Vec<Result<Assigned, Shortage>> {
    // Highest host number (the broadcast address is not one).
    let last = u32::try_from(subnet.size() - 2).unwrap_or(u32::MAX - 1);
    let mut taken: HashSet<u32> = requests
        .iter()
        .filter_map(|r| r.ip.or(r.fixed))
        .filter(|ip| subnet.contains(*ip))
        .map(|ip| subnet.host_number(ip))
        .collect();
    let in_pool = |n: u32| pool.is_some_and(|p| subnet.host(n).is_some_and(|ip| p.contains(ip)));
    // Per start number: every number from the start up to here is taken.
    let mut cursors: HashMap<u32, u32> = HashMap::new();
    let mut free_from = |from: u32, to: u32, taken: &mut HashSet<u32>| -> Option<u32> {
        let cursor = cursors.entry(from).or_insert(from);
        while *cursor <= to {
            let n = *cursor;
            if !taken.contains(&n) && !in_pool(n) {
                taken.insert(n);
                return Some(n);
            }
            *cursor += 1;
        }
        None
    };

    requests
        .iter()
        .map(|request| {
            let (ip, ip_origin, number) = match (request.ip, request.fixed) {
                (Some(ip), _) => (ip, Origin::Described, subnet.host_number(ip)),
                (None, Some(ip)) => (ip, Origin::Derived, subnet.host_number(ip)),
                (None, None) => {
                    let number = free_from(request.start.max(1), last, &mut taken)
                        .or_else(|| {
                            let below = request.start.min(last + 1).checked_sub(1)?;
                            free_from(1, below, &mut taken)
                        })
                        .ok_or(Shortage::NoFreeAddress)?;
                    let ip = subnet.host(number).ok_or(Shortage::NoFreeAddress)?;
                    (ip, Origin::Derived, number)
                }
            };
            let (mac, mac_origin) = match request.mac {
                Some(mac) => (mac, Origin::Described),
                None => (
                    prefix
                        .mac_for(number)
                        .ok_or(Shortage::MacDoesNotFit(number))?,
                    Origin::Derived,
                ),
            };
            Ok(Assigned {
                ip,
                ip_origin,
                mac,
                mac_origin,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derived(start: u32) -> Request {
        Request {
            start,
            ip: None,
            fixed: None,
            mac: None,
        }
    }

    fn ips(results: &[Result<Assigned, Shortage>]) -> Vec<String> {
        results
            .iter()
            .map(|r| r.map_or_else(|e| format!("{e:?}"), |a| a.ip.to_string()))
            .collect()
    }

    #[test]
    fn ghaf_numbering() {
        let subnet = Ipv4Cidr::default_subnet();
        let mut netvm = derived(1);
        netvm.fixed = subnet.host(1);
        let requests = [netvm, derived(3), derived(3), derived(101), derived(101)];
        let results = assign(subnet, &MacPrefix::default(), None, &requests);
        assert_eq!(
            ips(&results),
            [
                "192.168.100.1",
                "192.168.100.3",
                "192.168.100.4",
                "192.168.100.101",
                "192.168.100.102"
            ]
        );
        let app = results[3].expect("assigned");
        assert_eq!(app.mac.to_string(), "02:ad:00:00:00:65");
    }

    #[test]
    fn skips_explicit_addresses_and_the_pool() {
        let subnet = Ipv4Cidr::default_subnet();
        let mut explicit = derived(3);
        explicit.ip = Some(Ipv4Addr::new(192, 168, 100, 4));
        let pool = Ipv4Range::new(
            Ipv4Addr::new(192, 168, 100, 5),
            Ipv4Addr::new(192, 168, 100, 9),
        );
        let requests = [derived(3), derived(3), explicit];
        let results = assign(subnet, &MacPrefix::default(), pool, &requests);
        assert_eq!(
            ips(&results),
            ["192.168.100.3", "192.168.100.10", "192.168.100.4"]
        );
    }

    #[test]
    fn app_vms_wrap_and_small_subnets_work() {
        let subnet: Ipv4Cidr = "10.0.0.0/28".parse().expect("valid");
        let requests = [derived(1), derived(101), derived(101)];
        let results = assign(subnet, &MacPrefix::default(), None, &requests);
        assert_eq!(ips(&results), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    }

    #[test]
    fn fixed_addresses_are_not_moved() {
        let subnet = Ipv4Cidr::default_subnet();
        let mut netvm = derived(1);
        netvm.fixed = subnet.host(1);
        let mut claimer = derived(3);
        claimer.ip = subnet.host(1);
        let results = assign(subnet, &MacPrefix::default(), None, &[netvm, claimer]);
        assert_eq!(ips(&results), ["192.168.100.1", "192.168.100.1"]);
    }

    #[test]
    fn running_out_is_reported() {
        let subnet: Ipv4Cidr = "10.0.0.0/30".parse().expect("valid");
        let requests = [derived(1), derived(3), derived(3)];
        let results = assign(subnet, &MacPrefix::default(), None, &requests);
        assert_eq!(ips(&results), ["10.0.0.1", "10.0.0.2", "NoFreeAddress"]);
    }

    #[test]
    fn mac_must_fit_after_the_prefix() {
        let subnet: Ipv4Cidr = "10.0.0.0/16".parse().expect("valid");
        let mut far = derived(3);
        far.ip = Some(Ipv4Addr::new(10, 0, 1, 0));
        let results = assign(subnet, &MacPrefix::default(), None, &[far]);
        assert_eq!(results[0], Err(Shortage::MacDoesNotFit(256)));
    }
}
