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

/// Who may use the service: each user VM's address, its name and access.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Users(HashMap<IpAddr, (String, Access)>);

impl Users {
    /// The users `system` names (none when it names none).
    pub fn of(system: &System) -> Users {
        let Some(control) = &system.agent.control else {
            return Users::default();
        };
        let mut users = HashMap::new();
        for vm in &system.vms {
            let access = if control.allow.contains(&vm.name) {
                Access::All
            } else if control.read.contains(&vm.name) {
                Access::Read
            } else {
                continue;
            };
            users.insert(IpAddr::V4(vm.endpoint.ip), (vm.name.to_string(), access));
        }
        Users(users)
    }

    /// What the peer at `address` may ask, if it is a user.
    pub fn access(&self, address: IpAddr) -> Option<(&str, Access)> {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        self.0
            .get(&address)
            .map(|(name, access)| (name.as_str(), *access))
    }
}

/// Serves VMs on `address` until `stop` is stopped, asleep until a
/// connection comes or the stop; `users` is read on each connection, so
/// a reload that changes them takes effect at once.
pub fn serve(
    address: SocketAddr,
    users: Arc<RwLock<Users>>,
    handler: Arc<dyn Handler>,
    stop: Stop,
) -> io::Result<()> {
    let listener = TcpListener::bind(address)?;
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
        let users = Users::of(&s);
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
    }

    #[test]
    fn no_lists_no_users() {
        assert_eq!(Users::of(&system("")), Users::default());
    }
}
