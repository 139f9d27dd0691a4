//! Drops the agent to an unprivileged user after setup, keeping only
//! CAP_NET_ADMIN (nftables, links, sysctls under /proc/sys/net),
//! CAP_NET_RAW (the DHCP server's frames, SO_BINDTODEVICE) and
//! CAP_NET_BIND_SERVICE (ports 53 and 67). The three are also made
//! ambient, so the `nft` the agent runs keeps them (and only them).
//! Every other capability leaves the bounding set, so nothing
//! executed later can regain it. Must run before any thread starts:
//! capabilities are per thread.

use caps::{CapSet, Capability};
use nix::unistd::{Gid, Uid, User};
use std::collections::HashSet;

/// The capabilities the agent keeps.
pub const KEPT: [Capability; 3] = [
    Capability::CAP_NET_ADMIN,
    Capability::CAP_NET_RAW,
    Capability::CAP_NET_BIND_SERVICE,
];

/// Why privileges could not be dropped (the agent then stops).
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// No such user.
    #[error("no user `{0}`")]
    NoUser(String),
    /// The agent is not root, so it has nothing to drop to a user.
    #[error("--user needs the agent started as root")]
    NotRoot,
    /// A system call failed.
    #[error("cannot {action}: {message}")]
    Call {
        /// What failed.
        action: &'static str,
        /// Why.
        message: String,
    },
}

fn call<E: std::fmt::Display>(action: &'static str) -> impl Fn(E) -> PrivilegeError {
    move |e| PrivilegeError::Call {
        action,
        message: e.to_string(),
    }
}

/// The user's uid and gid.
pub fn lookup(name: &str) -> Result<(Uid, Gid), PrivilegeError> {
    let user = User::from_name(name)
        .map_err(call("look up the user"))?
        .ok_or_else(|| PrivilegeError::NoUser(name.to_owned()))?;
    Ok((user.uid, user.gid))
}

/// Becomes `uid`/`gid` (no supplementary groups) with only [`KEPT`].
pub fn drop_to(uid: Uid, gid: Gid) -> Result<(), PrivilegeError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(PrivilegeError::NotRoot);
    }
    let kept: HashSet<Capability> = KEPT.into_iter().collect();
    for cap in caps::all() {
        if !kept.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(call("drop from the bounding set"))?;
        }
    }
    nix::sys::prctl::set_keepcaps(true).map_err(call("keep capabilities across setuid"))?;
    nix::unistd::setgroups(&[gid]).map_err(call("set the groups"))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(call("set the group id"))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(call("set the user id"))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(call("set the permitted capabilities"))?;
    caps::set(None, CapSet::Effective, &kept).map_err(call("set the effective capabilities"))?;
    caps::set(None, CapSet::Inheritable, &kept)
        .map_err(call("set the inheritable capabilities"))?;
    for cap in KEPT {
        caps::raise(None, CapSet::Ambient, cap).map_err(call("raise an ambient capability"))?;
    }
    nix::sys::prctl::set_keepcaps(false).map_err(call("clear keep-capabilities"))?;
    Ok(())
}
