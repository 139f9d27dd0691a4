//! Names: VM names (one DNS label), domain names, DNS record names and
//! Linux interface names, each checked against the rules of where it ends
//! up (RFC 1035 labels, `IFNAMSIZ`).

use super::{string_value, value_error, ValueError};
use std::fmt;
use std::str::FromStr;

/// Checks one DNS label: 1-63 of `a-z`, `0-9`, `-`, not starting or ending
/// with `-` (RFC 1035 section 2.3.1, RFC 1123 section 2.1).
fn check_label(label: &str, whole: &str) -> Result<(), ValueError> {
    if label.is_empty() {
        return Err(value_error!("`{whole}` has an empty DNS label"));
    }
    if label.len() > 63 {
        return Err(value_error!(
            "`{label}` is {} characters long; a DNS label has at most 63",
            label.len()
        ));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        let hint = if bad.is_ascii_uppercase() {
            " (use lower case)"
        } else {
            ""
        };
        return Err(value_error!(
            "`{whole}` is not a valid DNS name: `{bad}` is not allowed; use a-z, 0-9 and -{hint}"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(value_error!(
            "`{whole}` is not a valid DNS name: a label cannot start or end with `-`"
        ));
    }
    Ok(())
}

/// A VM name: one DNS label, so `<name>.<domain>` resolves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VmName(String);

impl VmName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for VmName {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        check_label(text, text)?;
        Ok(VmName(text.to_owned()))
    }
}

impl fmt::Display for VmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_value!(
    VmName,
    "VmName",
    "A VM name: one lower-case DNS label",
    "chrome-vm"
);

/// A DNS name of one or more labels, without a trailing dot; at most 253
/// characters (RFC 1035 section 2.3.4).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnsName(String);

impl DnsName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for a single label (`printer`), which is relative to the domain.
    pub fn is_single_label(&self) -> bool {
        !self.0.contains('.')
    }

    /// True when this name is `domain` or lies below it.
    pub fn is_within(&self, domain: &DomainName) -> bool {
        let domain = domain.as_str();
        self.0 == domain
            || self
                .0
                .strip_suffix(domain)
                .is_some_and(|head| head.ends_with('.'))
    }

    /// `label.domain`.
    pub fn join(label: &VmName, domain: &DomainName) -> DnsName {
        DnsName(format!("{label}.{domain}"))
    }
}

impl FromStr for DnsName {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = text.strip_suffix('.').unwrap_or(text);
        if name.len() > 253 {
            return Err(value_error!(
                "`{text}` is longer than the 253 characters a DNS name may have"
            ));
        }
        for label in name.split('.') {
            check_label(label, text)?;
        }
        Ok(DnsName(name.to_owned()))
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_value!(
    DnsName,
    "DnsName",
    "A DNS name (one or more labels)",
    "printer.internal"
);

/// The internal DNS domain (`internal` by default); short enough that a
/// 63-character VM name still fits below it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(DnsName);

impl DomainName {
    /// The domain as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Default for DomainName {
    fn default() -> Self {
        DomainName(DnsName("internal".to_owned()))
    }
}

impl FromStr for DomainName {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name: DnsName = text.parse()?;
        if name.as_str().len() > 253 - 64 {
            return Err(value_error!(
                "domain `{text}` is too long: VM names below it would exceed 253 characters"
            ));
        }
        Ok(DomainName(name))
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

string_value!(
    DomainName,
    "DomainName",
    "The internal DNS domain",
    "internal"
);

/// A Linux network interface name: 1-15 bytes (`IFNAMSIZ` - 1), no `/`,
/// `:` or white space, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfName(String);

impl IfName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl IfName {
    /// The default name of the host's internal bridge, `vmbr0`.
    pub fn default_bridge() -> IfName {
        IfName("vmbr0".to_owned())
    }
}

impl FromStr for IfName {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() || text.len() > 15 {
            return Err(value_error!(
                "`{text}` is not an interface name: it must be 1 to 15 bytes long"
            ));
        }
        if text == "." || text == ".." {
            return Err(value_error!("`{text}` is not an interface name"));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
        {
            return Err(value_error!(
                "`{text}` is not an interface name: {bad:?} is not allowed"
            ));
        }
        Ok(IfName(text.to_owned()))
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_value!(
    IfName,
    "IfName",
    "A network interface name (at most 15 bytes)",
    "eth0"
);

/// A local user or group, by name (`qemu`, `kvm`) or by number (`107`):
/// who may open the VMs' TAPs without root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// A name, looked up in /etc/passwd or /etc/group when applied.
    Name(String),
    /// A numeric uid or gid.
    Id(u32),
}

impl FromStr for Account {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(id) = text.parse::<u32>() {
            return Ok(Account::Id(id));
        }
        let valid_start = text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        let valid_rest = text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid_start || !valid_rest || text.len() > 32 {
            return Err(value_error!(
                "`{text}` is not a user or group: write a name like `qemu` (lower case, digits, `_`, `-`, at most 32) or a number"
            ));
        }
        Ok(Account::Name(text.to_owned()))
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Name(name) => f.write_str(name),
            Account::Id(id) => write!(f, "{id}"),
        }
    }
}

string_value!(
    Account,
    "Account",
    "A local user or group, by name or number",
    "qemu"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_names_are_dns_labels() {
        assert!("chrome-vm".parse::<VmName>().is_ok());
        assert!("vm1".parse::<VmName>().is_ok());
        for bad in ["", "-vm", "vm-", "Chrome", "a_b", "a.b", &"a".repeat(64)] {
            assert!(bad.parse::<VmName>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn names_within_a_domain() {
        let domain: DomainName = "internal".parse().expect("valid");
        let name: DnsName = "printer.internal".parse().expect("valid");
        assert!(name.is_within(&domain));
        let other: DnsName = "printer.xinternal".parse().expect("valid");
        assert!(!other.is_within(&domain));
        assert_eq!(
            "example.com.".parse::<DnsName>().expect("valid").as_str(),
            "example.com"
        );
    }

    #[test]
    fn interface_names_fit_ifnamsiz() {
        assert!("wlp0s20f3".parse::<IfName>().is_ok());
        assert!("a-very-long-ifname".parse::<IfName>().is_err());
        assert!("eth0:1".parse::<IfName>().is_err());
        assert!("..".parse::<IfName>().is_err());
    }

    #[test]
    fn accounts_are_names_or_numbers() {
        assert_eq!("107".parse::<Account>(), Ok(Account::Id(107)));
        assert_eq!(
            "libvirt-qemu".parse::<Account>(),
            Ok(Account::Name("libvirt-qemu".into()))
        );
        for bad in ["", "Qemu", "-x", "a b", "root;", &"a".repeat(33)] {
            assert!(bad.parse::<Account>().is_err(), "{bad} accepted");
        }
    }
}
