//! Connections must not outlive their permission: after a new ruleset is
//! in force, every tracked connection the new policy would not allow is
//! removed (over ctnetlink: the IPv4 table is listed, then each forbidden
//! entry is deleted by its exact original tuple). Its next packet is then
//! judged as new, and the forward chain drops it.

use netvm_netfilter::conntrack::{Conntrack, Tuple};
use netvm_plan::policy::{Connection, Protocol};

/// The connection-tracking table could not be listed or an entry not
/// deleted.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} tracked connections")]
pub struct ConntrackError {
    /// What was being done: `list` or `delete`.
    pub action: &'static str,
    /// Why.
    #[source]
    pub source: netvm_netfilter::Error,
}

/// The policy's view of a tracked connection's original direction.
fn connection(tuple: &Tuple) -> Connection {
    Connection {
        src: tuple.src,
        dst: tuple.dst,
        proto: match tuple.proto {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            1 => Protocol::Icmp,
            _ => Protocol::Other,
        },
        dport: tuple.dport,
    }
}

/// Removes every tracked connection `forbidden` says no to; returns how
/// many were removed (entries that vanished meanwhile are not counted).
pub fn cut(forbidden: &dyn Fn(&Connection) -> bool) -> Result<usize, ConntrackError> {
    let error = |action| move |source| ConntrackError { action, source };
    let mut conntrack = Conntrack::open().map_err(error("list"))?;
    let mut removed = 0;
    for tuple in conntrack.dump_ipv4().map_err(error("list"))? {
        if forbidden(&connection(&tuple)) && conntrack.delete(&tuple).map_err(error("delete"))? {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_netfilter::conntrack::Icmp;
    use std::net::Ipv4Addr;

    #[test]
    fn reads_the_original_direction() {
        let tcp = Tuple {
            proto: 6,
            src: Ipv4Addr::new(192, 168, 100, 101),
            dst: Ipv4Addr::new(192, 168, 100, 102),
            sport: Some(40000),
            dport: Some(8080),
            icmp: None,
            zone: 0,
        };
        let c = connection(&tcp);
        assert_eq!((c.src, c.dst), (tcp.src, tcp.dst));
        assert_eq!((c.proto, c.dport), (Protocol::Tcp, Some(8080)));
        let icmp = Tuple {
            proto: 1,
            sport: None,
            dport: None,
            icmp: Some(Icmp {
                kind: 8,
                code: 0,
                id: 7,
            }),
            ..tcp
        };
        let c = connection(&icmp);
        assert_eq!((c.proto, c.dport), (Protocol::Icmp, None));
        assert_eq!(
            connection(&Tuple { proto: 47, ..tcp }).proto,
            Protocol::Other
        );
        assert_eq!(connection(&Tuple { proto: 17, ..tcp }).proto, Protocol::Udp);
    }
}
