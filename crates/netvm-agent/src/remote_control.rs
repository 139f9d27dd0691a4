//! The agent's control service for VMs: the control socket's protocol
//! ([`crate::control`]) over TCP on the net-vm's internal address, for
//! the VMs in `[agent] control_allow` (every request) and `control_read`
//! (requests that read).
//!
//! A peer's address is its identity: the ruleset lets only those VMs'
//! addresses reach the port, and the host's port guards and the net-vm's
//! endpoint check drop a VM that sends from another's address. The agent
//! checks again on every connection ([`Users::access`]); a peer that is
//! no user gets the connection closed, without an answer.

use crate::control::{serve_one, Access, Handler};
use netvm_description::System;
use netvm_runtime::{Stop, Wake};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Connections served at once, in all.
const MAX_CONNECTIONS: usize = 16;
/// Connections one VM may hold at once (followed event streams stay
/// open), so one VM cannot take every slot from the others.
const MAX_PER_PEER: usize = 4;

/// Who may use the service: each user VM's IPv4 address and its IPv6
/// interface identifier (its IPv4 host number) in the internal prefix in
/// force, its name and access.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Users {
    by_ip: HashMap<IpAddr, (String, Access)>,
    by_iid: HashMap<u128, (String, Access)>,
    /// The internal /64 in force (no IPv6 user without one).
    prefix6: Option<netvm_description::values::Ipv6Cidr>,
}

/// The low 64 bits of an IPv6 address.
fn iid(address: std::net::Ipv6Addr) -> u128 {
    u128::from(address) & u128::from(u64::MAX)
}

impl Users {
    /// The users `system` names (none when it names none); over IPv6 in
    /// the internal prefix `prefix6`.
    pub fn of(system: &System, prefix6: Option<netvm_description::values::Ipv6Cidr>) -> Users {
        let Some(control) = &system.agent.control else {
            return Users::default();
        };
        let mut users = Users {
            prefix6,
            ..Users::default()
        };
        for vm in &system.vms {
            let access = if control.allow.contains(&vm.name) {
                Access::All
            } else if control.read.contains(&vm.name) {
                Access::Read
            } else {
                continue;
            };
            let user = (vm.name.to_string(), access);
            users
                .by_iid
                .insert(system.ipv6_iid(&vm.endpoint), user.clone());
            users.by_ip.insert(IpAddr::V4(vm.endpoint.ip), user);
        }
        users
    }

    /// What the peer at `address` may ask, if it is a user. An IPv6 peer
    /// is known by its interface identifier: the ruleset lets in only
    /// the users' addresses in the internal prefix, and the endpoint
    /// checks tie each to its VM's port.
    pub fn access(&self, address: IpAddr) -> Option<(&str, Access)> {
        let user = match address {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.by_ip.get(&IpAddr::V4(v4)),
                None if self.prefix6.is_some_and(|p| p.contains(v6)) => self.by_iid.get(&iid(v6)),
                None => None,
            },
            v4 => self.by_ip.get(&v4),
        };
        user.map(|(name, access)| (name.as_str(), *access))
    }
}

/// Serves VMs on `port` until `stop` is stopped, asleep until a
/// connection comes or the stop; `users` is read on each connection, so
/// a reload that changes them takes effect at once. Both families on
/// one dual-stack socket (the ruleset lets in only the users, on the
/// internal interface); where the kernel has no IPv6, IPv4 on `ipv4`.
pub fn serve(
    ipv4: std::net::Ipv4Addr,
    port: u16,
    users: Arc<RwLock<Users>>,
    handler: Arc<dyn Handler>,
    stop: Stop,
) -> io::Result<()> {
    let listener = TcpListener::bind(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)))
        .or_else(|_| TcpListener::bind(SocketAddr::from((ipv4, port))))?;
    listener.set_nonblocking(true)?;
    let active = Arc::new(AtomicUsize::new(0));
    let per_peer: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    while stop.wait_for(listener.as_fd(), None)? == Wake::Ready {
        // A connection that went before it was taken: wait again.
        let Ok((stream, peer)) = listener.accept() else {
            continue;
        };
        let user = users
            .read()
            .ok()
            .and_then(|u| u.access(peer.ip()).map(|(n, a)| (n.to_owned(), a)));
        // Not a user (the ruleset should not have let it in): nothing.
        let Some((_name, access)) = user else {
            continue;
        };
        let peer = peer.ip();
        {
            let Ok(mut held) = per_peer.lock() else {
                continue;
            };
            let mine = held.entry(peer).or_insert(0);
            if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS || *mine >= MAX_PER_PEER {
                continue;
            }
            *mine += 1;
        }
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        active.fetch_add(1, Ordering::Relaxed);
        let (handler, stop, active, per_peer) = (
            Arc::clone(&handler),
            stop.clone(),
            Arc::clone(&active),
            Arc::clone(&per_peer),
        );
        std::thread::spawn(move || {
            serve_one(&stream, || Ok(access), handler.as_ref(), &stop);
            active.fetch_sub(1, Ordering::Relaxed);
            if let Ok(mut held) = per_peer.lock() {
                if let Some(mine) = held.get_mut(&peer) {
                    *mine -= 1;
                    if *mine == 0 {
                        held.remove(&peer);
                    }
                }
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(agent: &str) -> System {
        let text = format!(
            "[netvm.uplink]\ninterface = \"eth0\"\n\
             [[vm]]\nname = \"gui-vm\"\n[[vm]]\nname = \"audit-vm\"\n[[vm]]\nname = \"other-vm\"\n\
             [agent]\n{agent}"
        );
        netvm_description::parse("t.toml", &text, netvm_description::Format::Toml).expect("valid")
    }

    #[test]
    fn users_are_the_named_vms_by_address_and_nobody_else() {
        let s = system("control_allow = [\"gui-vm\"]\ncontrol_read = [\"audit-vm\"]\n");
        let users = Users::of(&s, Some("fd00:1:2:3::/64".parse().expect("prefix")));
        let ip = |name: &str| {
            let vm = s.vms.iter().find(|v| v.name.as_str() == name).expect("vm");
            IpAddr::V4(vm.endpoint.ip)
        };
        assert_eq!(users.access(ip("gui-vm")), Some(("gui-vm", Access::All)));
        assert_eq!(
            users.access(ip("audit-vm")),
            Some(("audit-vm", Access::Read))
        );
        assert_eq!(users.access(ip("other-vm")), None);
        assert_eq!(users.access(IpAddr::V4(s.netvm.endpoint.ip)), None);
        // The same address seen on a dual-stack socket.
        let IpAddr::V4(gui) = ip("gui-vm") else {
            unreachable!()
        };
        assert_eq!(
            users.access(IpAddr::V6(gui.to_ipv6_mapped())),
            Some(("gui-vm", Access::All))
        );
        // Over IPv6: its address in the internal prefix, whichever it is.
        let gui_vm = s
            .vms
            .iter()
            .find(|v| v.name.as_str() == "gui-vm")
            .expect("vm");
        let inside = s.ipv6_in(&gui_vm.endpoint, "fd00:1:2:3::/64".parse().expect("prefix"));
        assert_eq!(
            users.access(IpAddr::V6(inside)),
            Some(("gui-vm", Access::All))
        );
        // The same identifier in another prefix (not the internal one) is
        // nobody.
        let outside = s.ipv6_in(
            &gui_vm.endpoint,
            "2001:db8:7:1::/64".parse().expect("prefix"),
        );
        assert_eq!(users.access(IpAddr::V6(outside)), None);
        assert_eq!(users.access("::1".parse().expect("ip")), None);
        assert_eq!(users.access("fd00::ffff:1234".parse().expect("ip")), None);
    }

    #[test]
    fn no_lists_no_users() {
        assert_eq!(Users::of(&system(""), None), Users::default());
    }
}
