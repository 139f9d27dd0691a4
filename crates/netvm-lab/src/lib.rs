//! `netvm lab`: the whole system on one machine. Network namespaces
//! stand in for the upstream (Internet/LAN), the host, the net-vm and the
//! VMs ([`plan`], pure); [`lab`] builds one with netvm's own commands
//! (`netvm host up` in the host, `netvm agent` in the net-vm) and removes
//! it; [`report`] prints what came up; [`matrix`] is the acceptance
//! suite; [`probe`] and [`serve`] are the real traffic both use.
//! [`verify`] is the policy oracle: the reachability [`expect`]ed from
//! the description alone, [`measure`]d with real packets, and the
//! layer-2 [`attack`]s; [`generate`] makes seeded systems for it.

#![forbid(unsafe_code)]

pub mod attack;
pub mod cpio;
pub mod expect;
pub mod generate;
pub mod image;
pub mod lab;
pub mod matrix;
pub mod matrix_qemu;
pub mod measure;
pub mod netns;
pub mod passthrough;
pub mod passthrough_image;
pub mod plan;
pub mod probe;
pub mod qemu;
pub mod report;
pub mod serve;
pub mod verify;
