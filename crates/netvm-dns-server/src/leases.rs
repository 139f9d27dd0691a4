//! Host names from DHCP leases: every live lease that carries a host
//! name is `<name>.<domain>` until the lease ends.
//!
//! The names come through [`Names`], a handle that whoever runs the DHCP
//! server feeds with its lease events ([`Names::lease_event`]; the agent
//! does, from its DHCP hook) and that wakes the DNS server when it
//! changes. The standalone server (`netvm dns serve --leases JOURNAL`),
//! which runs beside a DHCP server in another process, feeds it from the
//! lease journal instead ([`follow_journal`]): the journal's format is
//! the DHCP engine's (`netvm_dhcp::journal`), read without a lock.

use crate::Shared;
use netvm_description::values::MacAddr;
use netvm_dhcp::{Event, Timestamp};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// One lease's name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    name: String,
    mac: Option<MacAddr>,
    until: Timestamp,
}

/// Host names of live leases by address, shared between the feeder and
/// the DNS server (clones share it).
#[derive(Debug, Clone, Default)]
pub struct Names(Arc<watch::Sender<BTreeMap<Ipv4Addr, Named>>>);

impl Names {
    /// No names.
    pub fn new() -> Names {
        Names::default()
    }

    /// Replaces every name: `(name, address, end of lease)`.
    pub fn replace(&self, leases: impl IntoIterator<Item = (String, Ipv4Addr, Timestamp)>) {
        let all = leases
            .into_iter()
            .map(|(name, ip, until)| {
                (
                    ip,
                    Named {
                        name,
                        mac: None,
                        until,
                    },
                )
            })
            .collect();
        self.0.send_replace(all);
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
                names.retain(|other, n| other == ip || n.mac != Some(*mac));
                match hostname {
                    Some(name) => {
                        names.insert(
                            *ip,
                            Named {
                                name: name.clone(),
                                mac: Some(*mac),
                                until: *until,
                            },
                        );
                    }
                    None => {
                        names.remove(ip);
                    }
                }
                *names != before
            }
            Event::LeaseReleased { ip, .. } | Event::LeaseExpired { ip, .. } => {
                names.remove(ip).is_some()
            }
            Event::AddressDeclined { .. } | Event::PoolExhausted { .. } => false,
        });
    }

    fn subscribe(&self) -> watch::Receiver<BTreeMap<Ipv4Addr, Named>> {
        self.0.subscribe()
    }
}

/// Gives the engine the live names whenever they change or one ends,
/// for as long as the server runs.
pub(crate) async fn serve(shared: Rc<Shared>, names: Names) {
    let mut changes = names.subscribe();
    loop {
        let now = Timestamp::now();
        let (live, next_end) = {
            let names = changes.borrow_and_update();
            let live: Vec<(String, Ipv4Addr)> = names
                .iter()
                .filter(|(_, n)| n.until > now)
                .map(|(ip, n)| (n.name.clone(), *ip))
                .collect();
            let next_end = names.values().map(|n| n.until).filter(|u| *u > now).min();
            (live, next_end)
        };
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
fn read(journal: &Path) -> Vec<(String, Ipv4Addr, Timestamp)> {
    let Ok(bytes) = std::fs::read(journal) else {
        return Vec::new();
    };
    let Ok(replay) = netvm_dhcp::journal::replay(&bytes) else {
        return Vec::new();
    };
    netvm_dhcp::journal::fold(&replay.records)
        .into_iter()
        .filter(|l| l.state == "bound")
        .filter_map(|l| Some((l.hostname?, l.ip, l.until)))
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

    fn names(names: &Names) -> Vec<(Ipv4Addr, String)> {
        names
            .0
            .borrow()
            .iter()
            .map(|(ip, n)| (*ip, n.name.clone()))
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
            [(Ipv4Addr::new(10, 0, 0, 3), "laptop".into())]
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
}
