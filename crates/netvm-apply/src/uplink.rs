//! The uplink's address from its DHCP lease: `ip addr replace ADDR/PREFIX
//! dev UPLINK`, no other IPv4 address on it, and `ip route replace
//! default via ROUTER dev UPLINK`; or, when the lease is lost, no IPv4
//! address at all (its routes go with it).

use crate::links::{connect, index_of_opt, replace_default_route, runtime, set_only_ipv4};
use crate::LinkError;
use std::net::Ipv4Addr;

/// Puts `address`/`prefix` (and a default route via `router`) on
/// `interface`, or with `None` takes every IPv4 address off it.
pub fn set_uplink(
    interface: &str,
    address: Option<(Ipv4Addr, u8)>,
    router: Option<Ipv4Addr>,
) -> Result<(), LinkError> {
    runtime()?.block_on(async {
        let handle = connect()?;
        let index = index_of_opt(&handle, interface)
            .await?
            .ok_or_else(|| LinkError::Missing {
                name: interface.to_owned(),
            })?;
        set_only_ipv4(&handle, index, interface, address).await?;
        if let (Some(_), Some(router)) = (address, router) {
            replace_default_route(&handle, index, interface, router).await?;
        }
        Ok(())
    })
}
