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

impl std::str::FromStr for ClientKey {
    type Err = String;

    /// Reads what [`fmt::Display`] writes: `mac:02:ad:…` or `id:01:02:…`.
    fn from_str(text: &str) -> Result<ClientKey, String> {
        if let Some(mac) = text.strip_prefix("mac:") {
            return mac.parse().map(ClientKey::Mac).map_err(|e| e.to_string());
        }
        let id = text
            .strip_prefix("id:")
            .ok_or_else(|| format!("`{text}` is not a client key: mac:… or id:…"))?;
        id.split(':')
            .map(|b| u8::from_str_radix(b, 16).map_err(|_| format!("`{b}` is not a hex octet")))
            .collect::<Result<Vec<u8>, String>>()
            .map(ClientKey::Id)
    }
}

impl Serialize for ClientKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ClientKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for ClientKey {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ClientKey".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "The lease owner: `mac:` and its MAC, or `id:` and the client identifier (option 61) in hex octets",
            "pattern": "^(mac|id):[0-9a-f]{2}(:[0-9a-f]{2})*$",
            "examples": ["mac:02:ad:00:00:00:65"],
        })
    }
}
