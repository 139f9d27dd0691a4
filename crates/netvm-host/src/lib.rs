//! The host side of netvm, the parts that read or change the live host
//! rather than plan it: the network devices sysfs shows (PCI, USB and
//! platform) and their IOMMU groups (`netvm host devices`) and the uplink
//! stanza for each (`--describe`), handing a PCI NIC to `vfio-pci` or a
//! platform NIC to `vfio-platform` and back (`netvm host passthrough`),
//! and the posture audit (`netvm host audit`).
//!
//! Every file access goes through a [`HostRoot`], normally `/`, so the
//! tests run on synthetic sysfs trees.

#![forbid(unsafe_code)]

pub mod audit;
pub mod describe;
pub mod devices;
pub mod passthrough;
pub mod platform;
mod root;

pub use root::{AccessError, HostRoot};
