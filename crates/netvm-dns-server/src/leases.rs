//! Host names from the DHCP server's lease journal: read again whenever
//! the file changes (checked every second), and every live lease that
//! carries a host name becomes `<name>.<domain>` until the lease ends.

use crate::Shared;
use netvm_dhcp::Timestamp;
use netvm_dhcp_server::journal_file;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

/// Follows `journal` for as long as the server runs.
pub(crate) async fn follow(shared: Rc<Shared>, journal: PathBuf) {
    let mut seen: Option<(SystemTime, u64)> = None;
    let mut names: Vec<(String, Ipv4Addr, Timestamp)> = Vec::new();
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        let stamp = std::fs::metadata(&journal)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp != seen {
            seen = stamp;
            names = read(&journal);
        }
        // Leases end without the journal changing: filter every time.
        let now = Timestamp::now();
        let live: Vec<(String, Ipv4Addr)> = names
            .iter()
            .filter(|(_, _, until)| *until > now)
            .map(|(name, ip, _)| (name.clone(), *ip))
            .collect();
        shared.engine.borrow_mut().set_learned(&live);
    }
}

/// Host names of bound leases in the journal (none if it is unreadable).
fn read(journal: &std::path::Path) -> Vec<(String, Ipv4Addr, Timestamp)> {
    journal_file::bound_leases(journal)
        .into_iter()
        .filter_map(|l| Some((l.hostname?, l.ip, l.until)))
        .collect()
}
