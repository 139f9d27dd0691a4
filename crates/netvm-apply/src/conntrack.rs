//! Connections must not outlive their permission: after a new ruleset is
//! in force, every tracked connection the new policy would not allow is
//! removed (over ctnetlink: the IPv4 and IPv6 tables are listed, then each
//! forbidden entry is deleted by its exact original tuple). Its next
//! packet is then judged as new, and the forward chain drops it.

use netvm_netfilter::conntrack::{Conntrack, Tuple};
use netvm_plan::policy::{Connection, Connection6, Protocol};
use std::net::IpAddr;

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

/// A tracked connection's original direction as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judged {
    /// An IPv4 connection.
    V4(Connection),
    /// An IPv6 connection.
    V6(Connection6),
}

/// The policy's view of a tracked connection's original direction;
/// `None` for a tuple whose addresses are of two families (the kernel
/// lists none).
fn connection(tuple: &Tuple) -> Option<Judged> {
    let proto = |icmp| match tuple.proto {
        6 => Protocol::Tcp,
        17 => Protocol::Udp,
        p if p == icmp => Protocol::Icmp,
        _ => Protocol::Other,
    };
    match (tuple.src, tuple.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Some(Judged::V4(Connection {
            src,
            dst,
            proto: proto(1),
            dport: tuple.dport,
        })),
        (IpAddr::V6(src), IpAddr::V6(dst)) => Some(Judged::V6(Connection6 {
            src,
            dst,
            proto: proto(58),
            dport: tuple.dport,
        })),
        _ => None,
    }
}

/// Removes every tracked connection the judge of its family says no to:
/// `forbidden4` for IPv4, `forbidden6` for IPv6 (ICMPv6 is
/// [`Protocol::Icmp`] there). Returns how many were removed (entries that
/// vanished meanwhile are not counted). Works in the calling thread's
/// network namespace.
pub fn cut(
    forbidden4: &dyn Fn(&Connection) -> bool,
    forbidden6: &dyn Fn(&Connection6) -> bool,
) -> Result<usize, ConntrackError> {
    let error = |action| move |source| ConntrackError { action, source };
    let mut conntrack = Conntrack::open().map_err(error("list"))?;
    let mut removed = 0;
    for tuple in conntrack.dump_all().map_err(error("list"))? {
        let forbidden = match connection(&tuple) {
            Some(Judged::V4(c)) => forbidden4(&c),
            Some(Judged::V6(c)) => forbidden6(&c),
            None => false,
        };
        if forbidden && conntrack.delete(&tuple).map_err(error("delete"))? {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_netfilter::conntrack::Icmp;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(tuple: &Tuple) -> Connection {
        match connection(tuple) {
            Some(Judged::V4(c)) => c,
            other => panic!("an IPv4 connection, not {other:?}"),
        }
    }

    fn v6(tuple: &Tuple) -> Connection6 {
        match connection(tuple) {
            Some(Judged::V6(c)) => c,
            other => panic!("an IPv6 connection, not {other:?}"),
        }
    }

    #[test]
    fn reads_the_original_direction() {
        let (a, b) = (
            Ipv4Addr::new(192, 168, 100, 101),
            Ipv4Addr::new(192, 168, 100, 102),
        );
        let tcp = Tuple {
            proto: 6,
            src: a.into(),
            dst: b.into(),
            sport: Some(40000),
            dport: Some(8080),
            icmp: None,
            zone: 0,
        };
        let c = v4(&tcp);
        assert_eq!((c.src, c.dst), (a, b));
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
        let c = v4(&icmp);
        assert_eq!((c.proto, c.dport), (Protocol::Icmp, None));
        assert_eq!(v4(&Tuple { proto: 47, ..tcp }).proto, Protocol::Other);
        assert_eq!(v4(&Tuple { proto: 17, ..tcp }).proto, Protocol::Udp);
        assert_eq!(v4(&Tuple { proto: 58, ..tcp }).proto, Protocol::Other);
    }

    #[test]
    fn reads_an_ipv6_original_direction() {
        let a: Ipv6Addr = "fd00:1::a".parse().expect("address");
        let b: Ipv6Addr = "fd00:1::1:0:c8".parse().expect("address");
        let tcp = Tuple {
            proto: 6,
            src: a.into(),
            dst: b.into(),
            sport: Some(40000),
            dport: Some(22),
            icmp: None,
            zone: 0,
        };
        let c = v6(&tcp);
        assert_eq!((c.src, c.dst), (a, b));
        assert_eq!((c.proto, c.dport), (Protocol::Tcp, Some(22)));
        assert_eq!(v6(&Tuple { proto: 17, ..tcp }).proto, Protocol::Udp);
        assert_eq!(v6(&Tuple { proto: 58, ..tcp }).proto, Protocol::Icmp);
        assert_eq!(v6(&Tuple { proto: 1, ..tcp }).proto, Protocol::Other);
        let mixed = Tuple {
            dst: Ipv4Addr::LOCALHOST.into(),
            ..tcp
        };
        assert_eq!(connection(&mixed), None);
    }
}
