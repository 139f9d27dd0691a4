//! Reading the live state back through netlink, for the posture audit:
//! the addresses an interface carries (`ip addr show dev NAME`).

use crate::links::{addresses_of, connect, index_of_opt, runtime};
use crate::LinkError;

/// The IPv4 and IPv6 addresses (with prefix) on `name`; `None` when there
/// is no such interface.
pub fn addresses(name: &str) -> Result<Option<Vec<String>>, LinkError> {
    runtime()?.block_on(async {
        let handle = connect()?;
        let Some(index) = index_of_opt(&handle, name).await? else {
            return Ok(None);
        };
        let listed = addresses_of(&handle, index, name).await?;
        Ok(Some(
            listed
                .iter()
                .map(|(ip, m)| format!("{ip}/{}", m.header.prefix_len))
                .collect(),
        ))
    })
}
