//! Connections must not outlive their permission: after a new ruleset is
//! in force, every tracked connection the new policy would not allow is
//! removed (equivalent to `conntrack -L`, then `conntrack -D` with the
//! connection's exact original tuple). Its next packet is then judged as
//! new, and the forward chain drops it.

use netvm_plan::policy::{Connection, Protocol};
use std::process::Command;

/// conntrack could not be run.
#[derive(Debug, thiserror::Error)]
#[error("cannot run conntrack {action} (is the conntrack package installed?)")]
pub struct ConntrackError {
    /// What was being done.
    pub action: &'static str,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// One entry: its original tuple as conntrack prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    proto: String,
    src: String,
    dst: String,
    sport: Option<String>,
    dport: Option<String>,
}

/// Reads `conntrack -L` lines; the first `src=`/`dst=`/`sport=`/`dport=`
/// of a line are the original direction.
pub(crate) fn parse(listing: &str) -> Vec<Entry> {
    listing
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let proto = words.next()?.to_owned();
            let first = |key: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .map(str::to_owned)
            };
            Some(Entry {
                proto,
                src: first("src=")?,
                dst: first("dst=")?,
                sport: first("sport="),
                dport: first("dport="),
            })
        })
        .collect()
}

impl Entry {
    fn connection(&self) -> Option<Connection> {
        Some(Connection {
            src: self.src.parse().ok()?,
            dst: self.dst.parse().ok()?,
            proto: match self.proto.as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "icmp" => Protocol::Icmp,
                _ => Protocol::Other,
            },
            dport: self.dport.as_deref().and_then(|p| p.parse().ok()),
        })
    }
}

/// Removes every tracked connection `forbidden` says no to; returns how
/// many were removed.
pub fn cut(forbidden: &dyn Fn(&Connection) -> bool) -> Result<usize, ConntrackError> {
    let listing = Command::new("conntrack")
        .args(["-L", "-f", "ipv4"])
        .output()
        .map_err(|source| ConntrackError {
            action: "-L",
            source,
        })?;
    let mut removed = 0;
    for entry in parse(&String::from_utf8_lossy(&listing.stdout)) {
        let Some(connection) = entry.connection() else {
            continue;
        };
        if !forbidden(&connection) {
            continue;
        }
        let mut args = vec!["-D", "-p", &entry.proto, "-s", &entry.src, "-d", &entry.dst];
        if let (Some(sport), Some(dport)) = (&entry.sport, &entry.dport) {
            args.extend(["--sport", sport, "--dport", dport]);
        }
        // Exit status 1 means it was already gone: fine.
        let status = Command::new("conntrack")
            .args(&args)
            .output()
            .map_err(|source| ConntrackError {
                action: "-D",
                source,
            })?;
        if status.status.success() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_original_direction() {
        let listing = "tcp      6 431999 ESTABLISHED src=192.168.100.101 dst=192.168.100.102 sport=40000 dport=8080 src=192.168.100.102 dst=192.168.100.101 sport=8080 dport=40000 [ASSURED] mark=0 use=1\n\
                       icmp     1 29 src=192.168.100.103 dst=192.168.100.1 type=8 code=0 id=7 src=192.168.100.1 dst=192.168.100.103 type=0 code=0 id=7 mark=0 use=1\n";
        let entries = parse(listing);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].dport.as_deref(), Some("8080"));
        assert_eq!(entries[0].src, "192.168.100.101");
        let icmp = entries[1].connection().expect("icmp");
        assert_eq!((icmp.proto, icmp.dport), (Protocol::Icmp, None));
    }
}
