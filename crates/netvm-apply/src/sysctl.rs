//! Kernel settings: each a write of its value to `<root>/<path>`
//! (equivalent to `sysctl -w`), skipped when it already holds it.

use std::path::{Path, PathBuf};

/// A setting could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot set {} to {value}", path.display())]
pub struct SysctlError {
    /// The file under /proc/sys.
    pub path: PathBuf,
    /// The value.
    pub value: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Writes every `(path, value)` under `root`.
pub fn apply(root: &Path, settings: &[(String, String)]) -> Result<(), SysctlError> {
    for (key, value) in settings {
        let path = root.join(key);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current.trim() == value {
            continue;
        }
        std::fs::write(&path, value).map_err(|source| SysctlError {
            path: path.clone(),
            value: value.clone(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_what_differs_and_names_what_failed() {
        let root = std::env::temp_dir().join(format!("netvm-sysctl-{}", std::process::id()));
        std::fs::create_dir_all(root.join("net/ipv4")).expect("dir");
        std::fs::write(root.join("net/ipv4/ip_forward"), "0\n").expect("write");
        let settings = vec![("net/ipv4/ip_forward".to_owned(), "1".to_owned())];
        apply(&root, &settings).expect("applied");
        assert_eq!(
            std::fs::read_to_string(root.join("net/ipv4/ip_forward")).expect("read"),
            "1"
        );
        let missing = vec![("net/ipv4/conf/nope/rp_filter".to_owned(), "1".to_owned())];
        let error = apply(&root, &missing).expect_err("no such interface");
        assert!(
            error.to_string().contains("net/ipv4/conf/nope/rp_filter"),
            "{error}"
        );
        std::fs::remove_dir_all(root).expect("cleanup");
    }
}
