//! Keeps the ruleset's `endpoints` set (who may send from the internal
//! side: address and MAC) in step with the DHCP leases of clients the
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
use std::net::Ipv4Addr;
use std::sync::mpsc::{channel, Receiver, Sender};

/// One change to the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A client may now send as (address, MAC).
    Add(Ipv4Addr, MacAddr),
    /// It may not any more.
    Remove(Ipv4Addr, MacAddr),
}

/// The change a DHCP event asks for, if any.
pub fn change_for(event: &Event) -> Option<Change> {
    match event {
        Event::LeaseGranted { ip, mac, .. } => Some(Change::Add(*ip, *mac)),
        Event::LeaseReleased { ip, mac } | Event::LeaseExpired { ip, mac } => {
            Some(Change::Remove(*ip, *mac))
        }
        _ => None,
    }
}

/// The set element a change is about.
fn element(change: Change) -> Element {
    match change {
        Change::Add(ip, mac) | Change::Remove(ip, mac) => Element::ipv4_mac(ip, mac),
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
    fn apply(&mut self, add: bool, elements: &[Element]) -> Result<(), String> {
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
            socket.add(table, "endpoints", elements)
        } else {
            socket.remove(table, "endpoints", elements)
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
    GRANTS.with(|writer| writer.borrow_mut().apply(add, &[element(change)]))
}

/// Starts the thread that applies removals (grants are applied before
/// their ACK with [`apply_now`]); `reserved` pairs are left alone.
/// `failed` hears of every batch the kernel refused.
pub fn start(
    reserved: HashSet<(Ipv4Addr, MacAddr)>,
    failed: impl Fn(String) + Send + 'static,
) -> Sender<Change> {
    let (sender, receiver) = channel();
    std::thread::spawn(move || remove_forever(&receiver, &reserved, &failed));
    sender
}

fn remove_forever(
    receiver: &Receiver<Change>,
    reserved: &HashSet<(Ipv4Addr, MacAddr)>,
    failed: &dyn Fn(String),
) {
    let mut writer = Writer::default();
    while let Ok(first) = receiver.recv() {
        let removals: Vec<Element> = std::iter::once(first)
            .chain(receiver.try_iter())
            .filter_map(|change| match change {
                Change::Remove(ip, mac) if !reserved.contains(&(ip, mac)) => Some(element(change)),
                _ => None,
            })
            .collect();
        // Already gone is fine (the kernel's ENOENT is not an error here).
        if let Err(error) = writer.apply(false, &removals) {
            failed(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_events_become_set_elements() {
        let mac: MacAddr = "02:aa:00:00:00:07".parse().expect("mac");
        let ip = Ipv4Addr::new(192, 168, 100, 200);
        let granted = Event::LeaseReleased { ip, mac };
        assert_eq!(change_for(&granted), Some(Change::Remove(ip, mac)));
        assert_eq!(
            element(Change::Add(ip, mac)).to_string(),
            "192.168.100.200 . 02:aa:00:00:00:07"
        );
        assert_eq!(change_for(&Event::PoolExhausted { mac }), None);
    }
}
