//! Users and groups by name: the uid or gid of an [`Account`], looked up
//! in `<etc>/passwd` or `<etc>/group` (the root a parameter, for tests).

use netvm_description::values::Account;
use std::path::Path;

/// A user or group that does not exist here.
#[derive(Debug, thiserror::Error)]
#[error("no {kind} called {name} in {file}")]
pub struct AccountError {
    /// `user` or `group`.
    pub kind: &'static str,
    /// The name.
    pub name: String,
    /// The file searched.
    pub file: String,
}

/// The uid of `account`.
pub fn uid(etc: &Path, account: &Account) -> Result<u32, AccountError> {
    lookup(etc, "passwd", "user", account)
}

/// The gid of `account`.
pub fn gid(etc: &Path, account: &Account) -> Result<u32, AccountError> {
    lookup(etc, "group", "group", account)
}

fn lookup(
    etc: &Path,
    file: &str,
    kind: &'static str,
    account: &Account,
) -> Result<u32, AccountError> {
    let name = match account {
        Account::Id(id) => return Ok(*id),
        Account::Name(name) => name,
    };
    let path = etc.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    // name:password:id:...
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let entry = fields.next()?;
            let id = fields.nth(1)?.parse::<u32>().ok()?;
            (entry == name).then_some(id)
        })
        .next()
        .ok_or_else(|| AccountError {
            kind,
            name: name.clone(),
            file: path.display().to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_numbers_pass_and_unknowns_are_named() {
        let etc = std::env::temp_dir().join(format!("netvm-accounts-{}", std::process::id()));
        std::fs::create_dir_all(&etc).expect("dir");
        std::fs::write(
            etc.join("passwd"),
            "root:x:0:0::/root:/bin/sh\nqemu:x:107:110::/:/bin/false\n",
        )
        .expect("passwd");
        std::fs::write(etc.join("group"), "root:x:0:\nkvm:x:110:qemu\n").expect("group");
        assert_eq!(uid(&etc, &Account::Name("qemu".into())).expect("qemu"), 107);
        assert_eq!(gid(&etc, &Account::Name("kvm".into())).expect("kvm"), 110);
        assert_eq!(uid(&etc, &Account::Id(5000)).expect("number"), 5000);
        let error = uid(&etc, &Account::Name("nobody2".into())).expect_err("unknown");
        assert!(
            error.to_string().starts_with("no user called nobody2 in "),
            "{error}"
        );
        std::fs::remove_dir_all(&etc).expect("clean");
    }
}
