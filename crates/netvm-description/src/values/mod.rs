//! Domain values of the description (MAC addresses, subnets, names, ports,
//! durations, device ids), each a newtype with `FromStr` + `Display`, read
//! and written as strings so TOML, JSON and the JSON Schema agree.
//!
//! Parsing checks only the value's own syntax (a MAC has six octets, a port
//! range is in order); how values relate to each other is `validate`'s job.

mod device;
mod duration;
mod ipv4;
mod ipv6;
mod mac;
mod names;
mod ports;

pub use device::{PciAddress, PciId, PlatformDevice, UsbId};
pub use duration::Seconds;
pub use ipv4::{DnsUpstream, Ipv4Cidr, Ipv4Range, PoolSetting};
pub use ipv6::Ipv6Cidr;
pub use mac::{MacAddr, MacPrefix};
pub use names::{Account, DnsName, DomainName, IfName, VmName};
pub use ports::{PortRange, Protocol};

use std::fmt;

/// Why a value could not be read: a sentence naming what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError(pub String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

/// Builds a [`ValueError`] from `format!` arguments.
macro_rules! value_error {
    ($($arg:tt)*) => { $crate::values::ValueError(format!($($arg)*)) };
}
pub(crate) use value_error;

/// Implements serde and JSON Schema for a newtype that reads from and
/// writes to a string through `FromStr` / `Display`.
macro_rules! string_value {
    ($ty:ty, $name:literal, $description:literal, $example:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "description": $description,
                    "examples": [$example],
                })
            }
        }
    };
}
pub(crate) use string_value;

/// Implements `Deserialize` for a value that may be written as an integer
/// or as a string; both are read through `FromStr`.
macro_rules! int_or_string_value {
    ($ty:ty, $expecting:literal) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $ty;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$ty, E> {
                        self.visit_str(&v.to_string())
                    }

                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$ty, E> {
                        self.visit_str(&v.to_string())
                    }

                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_any(Visitor)
            }
        }
    };
}
pub(crate) use int_or_string_value;
