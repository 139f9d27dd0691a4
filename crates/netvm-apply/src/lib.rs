//! Appliers: make a Net VM plan (`netvm_plan::datapath::NetVmPlan`) true on
//! this machine. Each step is small and named after its command-line
//! equivalent; each is idempotent (a second apply changes nothing):
//!
//! 1. links (netlink): MTU, up, the internal address, a static uplink
//!    address (`ip link set … mtu … up`, `ip addr replace …`), and no
//!    other IPv4 address on those interfaces (`ip addr del …`);
//! 2. sysctls (`/proc/sys`, the root a parameter);
//! 3. the ruleset: one `nft -f -` transaction that replaces our table
//!    only. nft applies a file all or nothing, so a rejected ruleset
//!    leaves the previous one in place;
//! 4. routes (netlink, `ip route replace …`).
//!
//! 5. connections the new policy forbids are removed from conntrack, so
//!    no connection outlives its permission.
//!
//! The host's plan (`netvm_plan::host::HostPlan`) is applied the same way
//! by [`apply_host`] (links, sysctls, the guard ruleset, then the links wired and up) and
//! undone by [`remove_host`].
//!
//! The CLAT of an IPv6-only uplink ([`clat`]: TUN, addresses, routes,
//! proxy NDP, tayga) is applied and removed on its own, when the uplink
//! calls for it.

mod accounts;
pub mod clat;
pub mod conntrack;
pub mod guest;
mod host_links;
pub mod inspect;
pub mod link_watch;
mod links;
mod nft;
mod sysctl;
mod tap;
mod uplink;

pub use accounts::AccountError;
pub use conntrack::ConntrackError;
pub use host_links::{Removed, MADE_BY_NETVM};
pub use links::{uplink_address6, LinkError};
pub use nft::NftError;
pub use sysctl::SysctlError;
pub use tap::{open as open_tap, TapError};
pub use uplink::{move_default_route, set_active_uplink, set_uplink, set_uplink_at};

use netvm_plan::datapath::NetVmPlan;
use std::path::Path;

/// Why an apply stopped; the steps before it took effect.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Links, addresses or routes.
    #[error(transparent)]
    Links(#[from] LinkError),
    /// Kernel settings.
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    /// The ruleset was rejected (the previous one stays).
    #[error(transparent)]
    Ruleset(#[from] NftError),
    /// Forbidden connections could not be removed.
    #[error(transparent)]
    Conntrack(#[from] ConntrackError),
    /// The TAPs' user or group does not exist.
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Tracked connections removed because the policy no longer allows them.
    pub connections_cut: usize,
}

/// Applies `plan`; `proc_sys` is normally `/proc/sys`; `forbidden4` and
/// `forbidden6` say which tracked IPv4 and IPv6 connections the new
/// policy no longer allows.
pub fn apply_netvm(
    plan: &NetVmPlan,
    proc_sys: &Path,
    forbidden4: &dyn Fn(&netvm_plan::policy::Connection) -> bool,
    forbidden6: &dyn Fn(&netvm_plan::policy::Connection6) -> bool,
) -> Result<Applied, ApplyError> {
    // With several uplinks, one not plugged in is configured when it
    // appears (the agent applies the plan again then).
    let absent: Vec<String> = if plan.names.managed {
        plan.names
            .uplinks
            .iter()
            .filter(|n| !proc_sys.join("net/ipv4/conf").join(n.as_str()).exists())
            .map(|n| n.to_string())
            .collect()
    } else {
        Vec::new()
    };
    links::apply_links(plan, &absent)?;
    let sysctls: Vec<(String, String)> = plan
        .sysctls
        .iter()
        .filter(|(key, _)| !absent.iter().any(|a| key.contains(&format!("/conf/{a}/"))))
        .cloned()
        .collect();
    sysctl::apply(proc_sys, &sysctls)?;
    nft::apply(&plan.ruleset)?;
    links::apply_routes(plan)?;
    let connections_cut = conntrack::cut(forbidden4, forbidden6)?;
    Ok(Applied { connections_cut })
}

pub use nft::apply as apply_ruleset;

/// Makes the host's plan true: bridges and TAPs (owned by the planned
/// user and group, looked up under `etc`), their sysctls, ports wired
/// and isolated, and the layer-2 guards in one nft transaction.
/// Idempotent.
pub fn apply_host(
    plan: &netvm_plan::host::HostPlan,
    proc_sys: &Path,
    etc: &Path,
) -> Result<(), ApplyError> {
    let user = plan
        .tap_user
        .as_ref()
        .map(|a| accounts::uid(etc, a))
        .transpose()?;
    let group = plan
        .tap_group
        .as_ref()
        .map(|a| accounts::gid(etc, a))
        .transpose()?;
    host_links::create(plan, (user, group))?;
    sysctl::apply(proc_sys, &plan.sysctls)?;
    // The guards before any port is up: a port is guarded from its first
    // frame, and the secure host's own frames are dropped from the start.
    nft::apply(&plan.ruleset)?;
    host_links::wire(plan)?;
    Ok(())
}

/// Undoes [`apply_host`]: the guard table goes, links netvm made are
/// deleted, interfaces that were there before are only detached, and in
/// dev mode the uplink gets its addresses and default route back.
pub fn remove_host(plan: &netvm_plan::host::HostPlan) -> Result<Removed, ApplyError> {
    let table = netvm_plan::l2guard::TABLE;
    nft::apply(&format!(
        "table bridge {table}\ndelete table bridge {table}\n{}",
        netvm_plan::host_firewall::removal()
    ))?;
    Ok(host_links::remove(plan)?)
}
