//! `netvm lab`: the whole system on one machine. Network namespaces
//! stand in for the upstream (Internet/LAN), the host, the net-vm and the
//! VMs ([`plan`], pure); [`lab`] builds one with netvm's own commands
//! (`netvm host up` in the host, `netvm agent` in the net-vm) and removes
//! it; [`report`] prints what came up; [`matrix`] is the acceptance
//! suite; [`probe`] and [`serve`] are the real traffic both use.
//! [`verify`] is the policy oracle: the reachability [`expect`]ed from
//! the description alone, [`measure`]d with real packets, and the
//! layer-2 [`attack`]s; [`generate`] makes seeded systems for it.
//! [`upstream`] is what the net-vm's uplink meets, in four flavours
//! (IPv4, dual stack with or without prefix delegation, IPv6-only with
//! NAT64), [`ra`] the router advertiser radvd cannot replace there.
//! [`wifi`] boots a guest with simulated radios ([`wifi_image`]) for
//! Wi-Fi uplinks: an access point and a station in its namespaces.

#![forbid(unsafe_code)]

pub mod attack;
pub mod cpio;
pub mod expect;
pub mod generate;
pub mod image;
pub mod ipv6;
pub mod lab;
pub mod matrix;
pub mod matrix6;
pub mod matrix_qemu;
pub mod measure;
pub mod netns;
pub mod passthrough;
pub mod passthrough_image;
pub mod plan;
pub mod probe;
pub mod qemu;
pub mod ra;
pub mod report;
pub mod serve;
pub mod upstream;
pub mod verify;
pub mod wifi;
pub mod wifi_image;
