//! Keeps the ruleset's `endpoints` and `endpoints6` sets (who may send
//! from the internal side: address and MAC) in step with the DHCP and
//! DHCPv6 leases of clients the
//! description does not name: a granted lease adds its pair, a released
//! or expired one removes it. Reserved pairs are in the ruleset itself
//! and are never removed. A grant is applied at once, before the DHCP
//! server sends its ACK ([`apply_now`]), and a grant the kernel refuses
//! is not acknowledged (the caller reports why); removals go to a thread
//! that applies them in batches. Both talk to nf_tables over one
//! long-lived netlink socket each ([`netvm_netfilter::NfTables`]): no
//! process per lease.

use netvm_description::values::MacAddr;
use netvm_dhcp::Event;
use netvm_netfilter::{Element, NfTables};
use netvm_runtime::error_chain;
use std::cell::RefCell;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::mpsc::{channel, Receiver, Sender};

/// One change to the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A client may now send as (address, MAC).
    Add(IpAddr, MacAddr),
    /// It may not any more.
    Remove(IpAddr, MacAddr),
}

/// The set that holds pairs of `ip`'s family.
fn set_of(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "endpoints",
        IpAddr::V6(_) => "endpoints6",
    }
}

/// The change a DHCP event asks for, if any.
pub fn change_for(event: &Event) -> Option<Change> {
    match event {
        Event::LeaseGranted { ip, mac, .. } => Some(Change::Add(IpAddr::V4(*ip), *mac)),
        Event::LeaseReleased { ip, mac } | Event::LeaseExpired { ip, mac } => {
            Some(Change::Remove(IpAddr::V4(*ip), *mac))
        }
        _ => None,
    }
}

/// The set element a change is about, and its set.
fn element(change: Change) -> (&'static str, Element) {
    match change {
        Change::Add(ip, mac) | Change::Remove(ip, mac) => (
            set_of(ip),
            match ip {
                IpAddr::V4(ip) => Element::ipv4_mac(ip, mac),
                IpAddr::V6(ip) => Element::ipv6_mac(ip, mac),
            },
        ),
    }
}

/// Whether a change is about `ip`'s pair in general (either family).
fn pair(change: Change) -> (IpAddr, MacAddr) {
    match change {
        Change::Add(ip, mac) | Change::Remove(ip, mac) => (ip, mac),
    }
}

/// A netlink handle to nf_tables, opened on first use and opened again
/// after an error (the next call then starts from a fresh socket).
#[derive(Default)]
struct Writer {
    socket: Option<NfTables>,
}

impl Writer {
    /// Adds (`add`) or removes the elements; the kernel's refusal, in
    /// words, when it said no.
    fn apply(&mut self, add: bool, set: &str, elements: &[Element]) -> Result<(), String> {
        if elements.is_empty() {
            return Ok(());
        }
        let table = netvm_plan::ruleset::TABLE;
        let socket = match self.socket.as_mut() {
            Some(socket) => socket,
            None => self
                .socket
                .insert(NfTables::open().map_err(|e| error_chain(&e))?),
        };
        let done = if add {
            socket.add(table, set, elements)
        } else {
            socket.remove(table, set, elements)
        };
        done.map_err(|e| {
            if matches!(e, netvm_netfilter::Error::Io { .. }) {
                self.socket = None;
            }
            error_chain(&e)
        })
    }
}

thread_local! {
    /// The DHCP thread's own socket for grants.
    static GRANTS: RefCell<Writer> = RefCell::new(Writer::default());
}

/// Applies `change` now (the DHCP server calls this for a new pool
/// lease before it sends the ACK, so the client's first packets are not
/// taken for spoofing); why, when the kernel refused it.
pub fn apply_now(change: Change) -> Result<(), String> {
    let add = matches!(change, Change::Add(..));
    let (set, element) = element(change);
    GRANTS.with(|writer| writer.borrow_mut().apply(add, set, &[element]))
}

/// Starts the thread that applies removals (grants are applied before
/// their ACK with [`apply_now`]); `reserved` pairs are left alone.
/// `failed` hears of every batch the kernel refused.
pub fn start(
    reserved: HashSet<(IpAddr, MacAddr)>,
    failed: impl Fn(String) + Send + 'static,
) -> Sender<Change> {
    let (sender, receiver) = channel();
    std::thread::spawn(move || remove_forever(&receiver, &reserved, &failed));
    sender
}

fn remove_forever(
    receiver: &Receiver<Change>,
    reserved: &HashSet<(IpAddr, MacAddr)>,
    failed: &dyn Fn(String),
) {
    let mut writer = Writer::default();
    while let Ok(first) = receiver.recv() {
        let mut removals: Vec<(&'static str, Element)> = std::iter::once(first)
            .chain(receiver.try_iter())
            .filter(|change| matches!(change, Change::Remove(..)))
            .filter(|change| !reserved.contains(&pair(*change)))
            .map(element)
            .collect();
        removals.sort_by_key(|(set, _)| *set);
        // One batch per set. Already gone is fine (the kernel's ENOENT
        // is not an error here).
        for set in ["endpoints", "endpoints6"] {
            let batch: Vec<Element> = removals
                .iter()
                .filter(|(s, _)| *s == set)
                .map(|(_, e)| e.clone())
                .collect();
            if let Err(error) = writer.apply(false, set, &batch) {
                failed(error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn lease_events_become_set_elements() {
        let mac: MacAddr = "02:aa:00:00:00:07".parse().expect("mac");
        let ip = Ipv4Addr::new(192, 168, 100, 200);
        let granted = Event::LeaseReleased { ip, mac };
        assert_eq!(change_for(&granted), Some(Change::Remove(ip.into(), mac)));
        let (set, e) = element(Change::Add(ip.into(), mac));
        assert_eq!(
            (set, e.to_string().as_str()),
            ("endpoints", "192.168.100.200 . 02:aa:00:00:00:07")
        );
        let ip6: std::net::Ipv6Addr = "fd00:1::1:0:c8".parse().expect("ip");
        let (set, e) = element(Change::Add(ip6.into(), mac));
        assert_eq!(
            (set, e.to_string().as_str()),
            ("endpoints6", "fd00:1::1:0:c8 . 02:aa:00:00:00:07")
        );
        assert_eq!(change_for(&Event::PoolExhausted { mac }), None);
    }
}
