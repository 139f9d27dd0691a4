//! What runs inside the Net VM: [`daemon`] (`netvm agent`) applies the
//! data plane and runs the DHCP server, the DNS server and the uplink's
//! DHCP client ([`uplink`]) together in one process.

#![forbid(unsafe_code)]

pub mod daemon;
pub mod endpoints;
pub mod uplink;
