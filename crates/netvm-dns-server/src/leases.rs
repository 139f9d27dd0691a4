//! Host names from DHCP leases: every live DHCP lease that carries a host
//! name is `<name>.<domain>` (A, and the PTR) until the lease ends, and
//! so is the same client's DHCPv6 address (AAAA, and the PTR under
//! `ip6.arpa`).
//!
//! The names come through [`Names`], a handle that whoever runs the DHCP
//! servers feeds with their lease events ([`Names::lease_event`] for
//! DHCPv4, [`Names::lease_event6`] for DHCPv6; the agent does, from its
//! hooks) and that wakes the DNS server when it changes. DHCPv6 clients
//! send no host name our server reads, so an IPv6 lease takes the name of
//! the IPv4 lease of the same client (MAC); one given a name of its own
//! ([`Names::set6`]) keeps it, unless another client's IPv4 lease holds
//! that name. The standalone server (`netvm dns serve --leases JOURNAL`),
//! which runs beside a DHCP server in another process, feeds it from the
//! lease journal instead ([`follow_journal`]): the journal's format is
//! the DHCP engine's (`netvm_dhcp::journal`), read without a lock.

use crate::Shared;
use netvm_description::values::MacAddr;
use netvm_dhcp::{Event, Timestamp};
use netvm_dhcp6::server::Event6;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// One lease: its name (an IPv6 lease may have none of its own), its
/// client, its end.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    name: Option<String>,
    mac: Option<MacAddr>,
    until: Timestamp,
}

/// Leases by address, shared between the feeders and the DNS server
/// (clones share it).
#[derive(Debug, Clone, Default)]
pub struct Names(Arc<watch::Sender<BTreeMap<IpAddr, Named>>>);

impl Names {
    /// No names.
    pub fn new() -> Names {
        Names::default()
    }

    /// Replaces every IPv4 name: `(name, address, client, end of lease)`
    /// (IPv6 leases stay).
    pub fn replace(
        &self,
        leases: impl IntoIterator<Item = (String, Ipv4Addr, Option<MacAddr>, Timestamp)>,
    ) {
        let leases = leases.into_iter().map(|(name, ip, mac, until)| {
            (
                IpAddr::V4(ip),
                Named {
                    name: Some(name),
                    mac,
                    until,
                },
            )
        });
        self.replace_family(false, leases);
    }

    /// Replaces every IPv6 lease: `(address, client, end of lease)` (IPv4
    /// names stay), e.g. the DHCPv6 server's leases when the agent starts.
    pub fn replace6(&self, leases: impl IntoIterator<Item = (Ipv6Addr, MacAddr, Timestamp)>) {
        let leases = leases.into_iter().map(|(ip, mac, until)| {
            (
                IpAddr::V6(ip),
                Named {
                    name: None,
                    mac: Some(mac),
                    until,
                },
            )
        });
        self.replace_family(true, leases);
    }

    fn replace_family(&self, ipv6: bool, leases: impl Iterator<Item = (IpAddr, Named)>) {
        let leases: Vec<(IpAddr, Named)> = leases.collect();
        self.0.send_if_modified(|names| {
            let before = names.clone();
            names.retain(|ip, _| ip.is_ipv6() != ipv6);
            names.extend(leases);
            *names != before
        });
    }

    /// Follows one DHCPv6 lease of `mac`: `ip` (its IA_NA address) until
    /// `until`, named `hostname`, or without one the name of the same
    /// client's IPv4 lease; the client's other IPv6 addresses go (it
    /// moved).
    pub fn set6(&self, ip: Ipv6Addr, mac: MacAddr, hostname: Option<String>, until: Timestamp) {
        let ip = IpAddr::V6(ip);
        self.0.send_if_modified(|names| {
            let before = names.clone();
            names.retain(|other, n| *other == ip || other.is_ipv4() || n.mac != Some(mac));
            names.insert(
                ip,
                Named {
                    name: hostname,
                    mac: Some(mac),
                    until,
                },
            );
            *names != before
        });
    }

    /// The DHCPv6 lease of `ip` ended (released, expired, declined,
    /// revoked): its name goes.
    pub fn remove6(&self, ip: Ipv6Addr) {
        self.0
            .send_if_modified(|names| names.remove(&IpAddr::V6(ip)).is_some());
    }

    /// Follows one lease event of the DHCPv6 server (its clock is the
    /// system's, milliseconds since the Unix epoch, like [`Timestamp`]):
    /// a grant or renewal names the address after the client's IPv4
    /// lease, an ended lease unnames it.
    pub fn lease_event6(&self, event: &Event6) {
        if let Some((ip, mac)) = event.removal() {
            self.0.send_if_modified(|names| {
                let ip = IpAddr::V6(ip);
                let ours = names.get(&ip).is_some_and(|n| n.mac == Some(mac));
                ours && names.remove(&ip).is_some()
            });
        } else if let Event6::LeaseGranted { ip, mac, until }
        | Event6::LeaseRenewed { ip, mac, until } = event
        {
            self.set6(*ip, *mac, None, Timestamp(*until));
        }
    }

    /// Follows one lease event of the DHCP server: a grant names its
    /// address (or unnames it, without a host name; a client that moved
    /// leaves its old address), a release or an expiry unnames it.
    pub fn lease_event(&self, event: &Event) {
        self.0.send_if_modified(|names| match event {
            Event::LeaseGranted {
                ip,
                mac,
                hostname,
                until,
                ..
            } => {
                let before = names.clone();
                let ip = IpAddr::V4(*ip);
                names.retain(|other, n| *other == ip || other.is_ipv6() || n.mac != Some(*mac));
                match hostname {
                    Some(name) => {
                        names.insert(
                            ip,
                            Named {
                                name: Some(name.clone()),
                                mac: Some(*mac),
                                until: *until,
                            },
                        );
                    }
                    None => {
                        names.remove(&ip);
                    }
                }
                *names != before
            }
            Event::LeaseReleased { ip, .. } | Event::LeaseExpired { ip, .. } => {
                names.remove(&IpAddr::V4(*ip)).is_some()
            }
            Event::AddressDeclined { .. } | Event::PoolExhausted { .. } => false,
        });
    }

    fn subscribe(&self) -> watch::Receiver<BTreeMap<IpAddr, Named>> {
        self.0.subscribe()
    }
}

/// The names of the leases live at `now`, IPv4 first, and the next end
/// of one. An IPv6 lease without a name of its own takes the name of the
/// same client's live IPv4 lease. A name goes to the client (MAC) of its
/// first lease: another client's lease with the same name is left out (a
/// client without a known MAC, from the journal, conflicts with nobody).
fn live(
    names: &BTreeMap<IpAddr, Named>,
    now: Timestamp,
) -> (Vec<(String, IpAddr)>, Option<Timestamp>) {
    let leases = || names.iter().filter(|(_, n)| n.until > now);
    let by_mac: HashMap<MacAddr, &str> = leases()
        .filter(|(ip, _)| ip.is_ipv4())
        .filter_map(|(_, n)| Some((n.mac?, n.name.as_deref()?)))
        .collect();
    let mut owners: HashMap<String, Option<MacAddr>> = HashMap::new();
    let mut live = Vec::new();
    for (ip, n) in leases() {
        let name = match (&n.name, n.mac) {
            (Some(name), _) => name.as_str(),
            (None, Some(mac)) => match by_mac.get(&mac) {
                Some(name) => name,
                None => continue,
            },
            (None, None) => continue,
        };
        let owner = owners.entry(name.to_ascii_lowercase()).or_insert(n.mac);
        if owner.is_none() {
            *owner = n.mac;
        } else if n.mac.is_some() && *owner != n.mac {
            continue;
        }
        live.push((name.to_owned(), *ip));
    }
    let next_end = names.values().map(|n| n.until).filter(|u| *u > now).min();
    (live, next_end)
}

/// Gives the engine the live names whenever they change or one ends,
/// for as long as the server runs.
pub(crate) async fn serve(shared: Rc<Shared>, names: Names) {
    let mut changes = names.subscribe();
    loop {
        let now = Timestamp::now();
        let (live, next_end) = live(&changes.borrow_and_update(), now);
        shared.engine.borrow_mut().set_learned(&live);
        // Leases end without an event when nobody feeds expiries (the
        // journal): the next end is a deadline of its own.
        let until_end = next_end.map(|end| Duration::from_millis(end.0 - now.0));
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = sleep_or_forever(until_end) => {}
        }
    }
}

async fn sleep_or_forever(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}

/// Follows the lease journal at `journal` into `names`: read again
/// whenever the file changes (checked every second; the standalone
/// server has no other way to learn of a change).
pub(crate) async fn follow_journal(names: Names, journal: PathBuf) {
    let mut seen: Option<(SystemTime, u64)> = None;
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        let stamp = std::fs::metadata(&journal)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp != seen {
            seen = stamp;
            names.replace(read(&journal));
        }
    }
}

/// Host names of bound leases in the journal (none if it is unreadable).
fn read(journal: &Path) -> Vec<(String, Ipv4Addr, Option<MacAddr>, Timestamp)> {
    let Ok(bytes) = std::fs::read(journal) else {
        return Vec::new();
    };
    let Ok(replay) = netvm_dhcp::journal::replay(&bytes) else {
        return Vec::new();
    };
    netvm_dhcp::journal::fold(&replay.records)
        .into_iter()
        .filter(|l| l.state == "bound")
        .filter_map(|l| Some((l.hostname?, l.ip, l.mac, l.until)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_dhcp::ClientKey;

    fn grant(ip: [u8; 4], mac: u8, name: Option<&str>) -> Event {
        let mac = MacAddr([2, 0, 0, 0, 0, mac]);
        Event::LeaseGranted {
            ip: Ipv4Addr::from(ip),
            mac,
            client: ClientKey::Mac(mac),
            hostname: name.map(str::to_owned),
            until: Timestamp(u64::MAX),
        }
    }

    fn names(names: &Names) -> Vec<(IpAddr, String)> {
        names
            .0
            .borrow()
            .iter()
            .filter_map(|(ip, n)| Some((*ip, n.name.clone()?)))
            .collect()
    }

    #[test]
    fn grants_name_and_releases_unname() {
        let feed = Names::new();
        let mut changes = feed.subscribe();
        feed.lease_event(&grant([10, 0, 0, 2], 1, Some("laptop")));
        assert!(changes.has_changed().expect("open"));
        changes.borrow_and_update();
        // The same grant again (a renewal) changes nothing: no wake.
        feed.lease_event(&grant([10, 0, 0, 2], 1, Some("laptop")));
        assert!(!changes.has_changed().expect("open"));
        // A client that moves leaves its old address.
        feed.lease_event(&grant([10, 0, 0, 3], 1, Some("laptop")));
        assert_eq!(
            names(&feed),
            [(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)), "laptop".into())]
        );
        feed.lease_event(&Event::LeaseExpired {
            ip: Ipv4Addr::new(10, 0, 0, 3),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
        });
        assert!(names(&feed).is_empty());
        // A grant without a name unnames the address.
        feed.lease_event(&grant([10, 0, 0, 4], 2, Some("phone")));
        feed.lease_event(&grant([10, 0, 0, 4], 2, None));
        assert!(names(&feed).is_empty());
    }

    fn v6(iid: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfd12, 0x3456, 0x789a, 0, 0, 0, 0, iid)
    }

    fn live_now(feed: &Names) -> Vec<(String, IpAddr)> {
        live(&feed.0.borrow(), Timestamp(0)).0
    }

    fn granted6(iid: u16, mac: u8) -> Event6 {
        Event6::LeaseGranted {
            ip: v6(iid),
            mac: MacAddr([2, 0, 0, 0, 0, mac]),
            until: u64::MAX,
        }
    }

    #[test]
    fn ipv6_leases_take_the_name_of_the_clients_ipv4_lease() {
        let feed = Names::new();
        let mut changes = feed.subscribe();
        feed.lease_event6(&granted6(0xc8, 1));
        assert!(changes.has_changed().expect("open"));
        changes.borrow_and_update();
        assert!(live_now(&feed).is_empty(), "no IPv4 name yet");
        feed.lease_event(&grant([10, 0, 0, 2], 1, Some("laptop")));
        assert_eq!(
            live_now(&feed),
            [
                ("laptop".to_owned(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))),
                ("laptop".to_owned(), IpAddr::V6(v6(0xc8))),
            ]
        );
        changes.borrow_and_update();
        // A renewal changes nothing: no wake.
        feed.lease_event6(&Event6::LeaseRenewed {
            ip: v6(0xc8),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            until: u64::MAX,
        });
        assert!(!changes.has_changed().expect("open"));
        // Another client's removal event does not touch it; its own does.
        feed.lease_event6(&Event6::LeaseReleased {
            ip: v6(0xc8),
            mac: MacAddr([2, 0, 0, 0, 0, 9]),
        });
        assert_eq!(live_now(&feed).len(), 2);
        feed.lease_event6(&Event6::LeaseExpired {
            ip: v6(0xc8),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
        });
        assert_eq!(live_now(&feed).len(), 1);
        // The IPv4 lease goes: the IPv6 address loses its name with it.
        feed.lease_event6(&granted6(0xc9, 1));
        assert_eq!(live_now(&feed).len(), 2);
        feed.lease_event(&Event::LeaseReleased {
            ip: Ipv4Addr::new(10, 0, 0, 2),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
        });
        assert!(live_now(&feed).is_empty());
    }

    #[test]
    fn own_ipv6_names_yield_to_another_clients_ipv4_name() {
        let feed = Names::new();
        let mac = |n| MacAddr([2, 0, 0, 0, 0, n]);
        feed.lease_event(&grant([10, 0, 0, 2], 1, Some("laptop")));
        feed.set6(v6(0xc9), mac(2), Some("LAPTOP".into()), Timestamp(u64::MAX));
        feed.set6(v6(0xca), mac(3), Some("phone".into()), Timestamp(u64::MAX));
        assert_eq!(
            live_now(&feed),
            [
                ("laptop".to_owned(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))),
                ("phone".to_owned(), IpAddr::V6(v6(0xca))),
            ]
        );
        // A client that moves leaves its old IPv6 address, not its IPv4 one.
        feed.set6(v6(0xcb), mac(3), Some("phone".into()), Timestamp(u64::MAX));
        feed.lease_event(&grant([10, 0, 0, 3], 3, Some("phone")));
        assert_eq!(
            live_now(&feed),
            [
                ("laptop".to_owned(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))),
                ("phone".to_owned(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3))),
                ("phone".to_owned(), IpAddr::V6(v6(0xcb))),
            ]
        );
        feed.remove6(v6(0xcb));
        feed.remove6(v6(0xc9));
        assert_eq!(live_now(&feed).len(), 2);
        // Replacing one family keeps the other.
        feed.replace6([(v6(0xcc), mac(1), Timestamp(u64::MAX))]);
        assert_eq!(live_now(&feed).len(), 3);
        feed.replace(Vec::new());
        assert!(live_now(&feed).is_empty());
        assert_eq!(feed.0.borrow().len(), 1, "the IPv6 lease stays");
    }

    #[test]
    fn ended_leases_are_not_live_and_the_next_end_is_known() {
        let feed = Names::new();
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        feed.set6(v6(1), mac, Some("a".into()), Timestamp(10));
        feed.replace([(
            "b".to_owned(),
            Ipv4Addr::new(10, 0, 0, 2),
            None,
            Timestamp(20),
        )]);
        let (names, next) = live(&feed.0.borrow(), Timestamp(15));
        assert_eq!(
            names,
            [("b".to_owned(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)))]
        );
        assert_eq!(next, Some(Timestamp(20)));
    }
}
