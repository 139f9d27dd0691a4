//! Keeps the ruleset's `endpoints` set (who may send from the internal
//! side: address and MAC) in step with the DHCP leases of clients the
//! description does not name: a granted lease adds its pair, a released
//! or expired one removes it. Reserved pairs are in the ruleset itself
//! and are never removed. A grant is applied at once, before the DHCP
//! server sends its ACK ([`apply_now`]), and a grant nft refuses is not
//! acknowledged (the caller reports nft's stderr); removals go to a thread that
//! applies them with `nft -f -`, each on its own, so one that is already
//! gone does not undo the others.

use netvm_description::values::MacAddr;
use netvm_dhcp::Event;
use std::collections::HashSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
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

/// The nft command for `change`.
pub fn statement(change: Change) -> String {
    let table = netvm_plan::ruleset::TABLE;
    match change {
        Change::Add(ip, mac) => format!("add element inet {table} endpoints {{ {ip} . {mac} }}\n"),
        Change::Remove(ip, mac) => {
            format!("delete element inet {table} endpoints {{ {ip} . {mac} }}\n")
        }
    }
}

/// Runs `nft -f -` on `text`; nft's own words when it fails (its
/// stderr, or why it could not be run).
fn nft(text: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(text.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| format!("nft did not finish: {e}"))?;
    if output.status.success() {
        if let Some(Err(e)) = written {
            return Err(format!("cannot write to nft: {e}"));
        }
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    Err(if stderr.is_empty() {
        format!("nft failed ({})", output.status)
    } else {
        stderr
    })
}

/// Applies `change` now (the DHCP server calls this for a new pool
/// lease before it sends the ACK, so the client's first packets are not
/// taken for spoofing); nft's error text when it refused.
pub fn apply_now(change: Change) -> Result<(), String> {
    nft(&statement(change))
}

/// Starts the thread that applies changes; `reserved` pairs are left
/// alone.
pub fn start(reserved: HashSet<(Ipv4Addr, MacAddr)>) -> Sender<Change> {
    let (sender, receiver) = channel();
    std::thread::spawn(move || apply_forever(&receiver, &reserved));
    sender
}

fn apply_forever(receiver: &Receiver<Change>, reserved: &HashSet<(Ipv4Addr, MacAddr)>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        batch.extend(receiver.try_iter());
        let mut adds = String::new();
        for change in batch {
            match change {
                Change::Add(ip, mac) if !reserved.contains(&(ip, mac)) => {
                    adds.push_str(&statement(change));
                }
                Change::Remove(ip, mac) if !reserved.contains(&(ip, mac)) => {
                    // Already gone is fine: the pair may not send anyway.
                    let _ = nft(&statement(change));
                }
                _ => {}
            }
        }
        if !adds.is_empty() {
            // Grants were applied before their ACK; these are repeats.
            let _ = nft(&adds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_events_become_set_statements() {
        let mac: MacAddr = "02:aa:00:00:00:07".parse().expect("mac");
        let ip = Ipv4Addr::new(192, 168, 100, 200);
        let granted = Event::LeaseReleased { ip, mac };
        assert_eq!(change_for(&granted), Some(Change::Remove(ip, mac)));
        assert_eq!(
            statement(Change::Add(ip, mac)),
            "add element inet netvm endpoints { 192.168.100.200 . 02:aa:00:00:00:07 }\n"
        );
        assert_eq!(change_for(&Event::PoolExhausted { mac }), None);
    }
}
