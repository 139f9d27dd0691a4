//! Appliers: make a Net VM plan (`netvm_plan::datapath::NetVmPlan`) true on
//! this machine. Each step is small and named after its command-line
//! equivalent; each is idempotent (a second apply changes nothing):
//!
//! 1. links (netlink): MTU, up, the internal address, a static uplink
//!    address (`ip link set … mtu … up`, `ip addr replace …`);
//! 2. sysctls (`/proc/sys`, the root a parameter);
//! 3. the ruleset: one `nft -f -` transaction that replaces our table
//!    only. nft applies a file all or nothing, so a rejected ruleset
//!    leaves the previous one in place;
//! 4. routes (netlink, `ip route replace …`).
//!
//! Not yet: removing conntrack entries of flows a new policy forbids, and
//! addresses a previous plan added that the new one drops.

mod links;
mod nft;
mod sysctl;

pub use links::LinkError;
pub use nft::NftError;
pub use sysctl::SysctlError;

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
}

/// Applies `plan`; `proc_sys` is normally `/proc/sys`.
pub fn apply_netvm(plan: &NetVmPlan, proc_sys: &Path) -> Result<(), ApplyError> {
    links::apply_links(plan)?;
    sysctl::apply(proc_sys, &plan.sysctls)?;
    nft::apply(&plan.ruleset)?;
    links::apply_routes(plan)?;
    Ok(())
}

pub use nft::apply as apply_ruleset;
