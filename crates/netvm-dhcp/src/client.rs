//! Who a lease belongs to: the client identifier (option 61) when the
//! client sends one, otherwise its hardware address (RFC 2131 section 4.2).

use netvm_description::values::MacAddr;
use serde::Serialize;
use std::fmt;

/// The key a server binds a lease to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientKey {
    /// No client identifier: `chaddr`.
    Mac(MacAddr),
    /// Option 61, as sent (type octet included).
    Id(Vec<u8>),
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::Mac(mac) => write!(f, "mac:{mac}"),
            ClientKey::Id(id) => {
                f.write_str("id:")?;
                for (i, b) in id.iter().enumerate() {
                    if i > 0 {
                        f.write_str(":")?;
                    }
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

impl Serialize for ClientKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
