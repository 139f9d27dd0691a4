//! Ethernet MAC addresses and the prefix that derived MACs start with.

use super::{string_value, value_error, ValueError};
use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet address, written `02:ad:00:00:00:01` (`-` also read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// True for group (multicast) addresses, including broadcast.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    /// True for `00:00:00:00:00:00`.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

/// Reads 1..=6 colon- or dash-separated hex octets.
fn octets(text: &str, what: &str) -> Result<Vec<u8>, ValueError> {
    text.split([':', '-'])
        .map(|part| {
            if part.len() != 2 {
                return Err(value_error!(
                    "`{text}` is not a {what}: each octet is two hex digits, e.g. 02:ad:00:00:00:01"
                ));
            }
            u8::from_str_radix(part, 16)
                .map_err(|_| value_error!("`{text}` is not a {what}: `{part}` is not hex"))
        })
        .collect()
}

impl FromStr for MacAddr {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = octets(text, "MAC address")?;
        let array: [u8; 6] = bytes.try_into().map_err(|b: Vec<u8>| {
            value_error!(
                "`{text}` is not a MAC address: it has {} octets, not 6",
                b.len()
            )
        })?;
        Ok(MacAddr(array))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

string_value!(
    MacAddr,
    "MacAddr",
    "Ethernet address, six hex octets separated by colons",
    "02:ad:00:00:00:05"
);

/// The first 3 to 5 octets of every derived MAC; the remaining octets hold
/// the host part of the VM's derived IPv4 address (Ghaf style).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacPrefix(Vec<u8>);

impl MacPrefix {
    /// The prefix octets.
    pub fn octets(&self) -> &[u8] {
        &self.0
    }

    /// The MAC for host number `n`, or `None` when `n` does not fit in the
    /// octets the prefix leaves free.
    pub fn mac_for(&self, n: u32) -> Option<MacAddr> {
        let free = 6 - self.0.len();
        if free < 4 && n >= 1 << (8 * free) {
            return None;
        }
        let mut mac = [0u8; 6];
        mac[..self.0.len()].copy_from_slice(&self.0);
        let tail = n.to_be_bytes();
        mac[self.0.len()..].copy_from_slice(&tail[4 - free..]);
        Some(MacAddr(mac))
    }

    /// True when derived MACs would be group addresses.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }
}

impl Default for MacPrefix {
    fn default() -> Self {
        MacPrefix(vec![0x02, 0xad, 0x00, 0x00, 0x00])
    }
}

impl FromStr for MacPrefix {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = octets(text, "MAC prefix")?;
        if !(3..=5).contains(&bytes.len()) {
            return Err(value_error!(
                "`{text}` is not a MAC prefix: it needs 3 to 5 octets, found {}",
                bytes.len()
            ));
        }
        Ok(MacPrefix(bytes))
    }
}

impl fmt::Display for MacPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text: Vec<String> = self.0.iter().map(|b| format!("{b:02x}")).collect();
        f.write_str(&text.join(":"))
    }
}

string_value!(
    MacPrefix,
    "MacPrefix",
    "First 3 to 5 octets of derived MAC addresses",
    "02:ad:00:00:00"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_macs() {
        let mac: MacAddr = "02:AD:00:00:00:0A".parse().expect("valid");
        assert_eq!(mac.to_string(), "02:ad:00:00:00:0a");
        assert_eq!("02-ad-00-00-00-0a".parse::<MacAddr>(), Ok(mac));
        assert!("02:ad:00:00:00".parse::<MacAddr>().is_err());
        assert!("02:ad:00:00:00:0g".parse::<MacAddr>().is_err());
        assert!("ff:ff:ff:ff:ff:ff"
            .parse::<MacAddr>()
            .expect("valid")
            .is_broadcast());
    }

    #[test]
    fn prefix_leaves_room_for_the_host_number() {
        let prefix = MacPrefix::default();
        assert_eq!(
            prefix.mac_for(101).expect("fits").to_string(),
            "02:ad:00:00:00:65"
        );
        assert_eq!(prefix.mac_for(256), None);
        let short: MacPrefix = "02:ad:00".parse().expect("valid");
        assert_eq!(
            short.mac_for(0x1_0203).expect("fits").to_string(),
            "02:ad:00:01:02:03"
        );
        assert!("02:ad".parse::<MacPrefix>().is_err());
    }
}
