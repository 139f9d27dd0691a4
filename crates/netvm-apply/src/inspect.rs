//! Reading the live state back through netlink, for the posture audit:
//! the addresses an interface carries (`ip addr show dev NAME`).

use crate::links::{connect, index_of_opt, refused, runtime};
use crate::LinkError;
use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use std::net::IpAddr;

/// The IPv4 and IPv6 addresses (with prefix) on `name`; `None` when there
/// is no such interface.
pub fn addresses(name: &str) -> Result<Option<Vec<String>>, LinkError> {
    runtime()?.block_on(async {
        let handle = connect()?;
        let Some(index) = index_of_opt(&handle, name).await? else {
            return Ok(None);
        };
        let listed: Vec<_> = handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(refused(format!("ip addr show dev {name}"), name))?;
        Ok(Some(
            listed
                .iter()
                .filter_map(|m| {
                    m.attributes.iter().find_map(|a| match a {
                        AddressAttribute::Address(ip @ (IpAddr::V4(_) | IpAddr::V6(_))) => {
                            Some(format!("{ip}/{}", m.header.prefix_len))
                        }
                        _ => None,
                    })
                })
                .collect(),
        ))
    })
}
