//! What runs inside the Net VM. So far: the uplink's DHCP client on its
//! interface ([`uplink`]), which puts each lease on the uplink (address,
//! default route) and reports it; the agent that ties the data plane,
//! DHCP and DNS together will be built around it.

#![forbid(unsafe_code)]

pub mod uplink;
