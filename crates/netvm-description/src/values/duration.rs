//! Durations in whole seconds: `3600`, `"3600"`, `"1h"`, `"1h30m"`, `"2d"`.

use super::{int_or_string_value, value_error, ValueError};
use schemars::JsonSchema;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// A duration in whole seconds (DHCP times are 32-bit seconds, RFC 2131).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seconds(pub u32);

impl FromStr for Seconds {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            value_error!(
                "`{text}` is not a duration: write seconds (3600) or units like 1h, 30m, 1d12h"
            )
        };
        let mut total: u64 = 0;
        let mut number = String::new();
        let mut saw_unit = false;
        for c in text.trim().chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit: u64 = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 604_800,
                _ => return Err(bad()),
            };
            let n: u64 = number.parse().map_err(|_| bad())?;
            total = total.saturating_add(n.saturating_mul(unit));
            number.clear();
            saw_unit = true;
        }
        if !number.is_empty() {
            if saw_unit {
                return Err(bad());
            }
            total = number.parse().map_err(|_| bad())?;
        } else if !saw_unit {
            return Err(bad());
        }
        u32::try_from(total)
            .map(Seconds)
            .map_err(|_| value_error!("`{text}` is too long: at most {} seconds", u32::MAX))
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        if rest == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.0)
    }
}

int_or_string_value!(
    Seconds,
    "a duration: seconds, or a string like \"1h\" or \"30m\""
);

impl JsonSchema for Seconds {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: whole seconds, or a string with units s, m, h, d, w",
            "oneOf": [
                { "type": "integer", "minimum": 0, "maximum": u32::MAX },
                { "type": "string", "pattern": "^([0-9]+|([0-9]+[smhdw])+)$" }
            ],
            "examples": [3600, "12h"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_units() {
        assert_eq!("3600".parse(), Ok(Seconds(3600)));
        assert_eq!("1h30m".parse(), Ok(Seconds(5400)));
        assert_eq!("2d".parse(), Ok(Seconds(172_800)));
        assert!("1 fortnight".parse::<Seconds>().is_err());
        assert!("h".parse::<Seconds>().is_err());
        assert!("1h30".parse::<Seconds>().is_err());
        assert!("99999999w".parse::<Seconds>().is_err());
        assert_eq!(Seconds(5400).to_string(), "1h30m");
    }
}
