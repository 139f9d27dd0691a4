//! What a server needs to know about its interface, read from sysfs
//! (`<root>/class/net/<name>/{ifindex,address}`); the root is a
//! parameter so tests can use a fake tree.

use netvm_description::values::{IfName, MacAddr};
use std::path::{Path, PathBuf};

/// An interface's kernel index and hardware address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// `ifindex`.
    pub index: i32,
    /// Hardware address.
    pub mac: MacAddr,
}

/// Why an interface could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A sysfs file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A sysfs file held something unexpected.
    #[error("unexpected content in {}: {content:?}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held.
        content: String,
    },
}

impl Link {
    /// Reads `name` under the sysfs root `sys` (normally `/sys`).
    pub fn read(sys: &Path, name: &IfName) -> Result<Link, LinkError> {
        let dir = sys.join("class/net").join(name.as_str());
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path)
                .map(|s| (s.trim().to_owned(), path.clone()))
                .map_err(|source| LinkError::Read { path, source })
        };
        let (index, index_path) = read("ifindex")?;
        let (mac, mac_path) = read("address")?;
        Ok(Link {
            index: index.parse().map_err(|_| LinkError::Parse {
                path: index_path,
                content: index.clone(),
            })?,
            mac: mac.parse().map_err(|_| LinkError::Parse {
                path: mac_path,
                content: mac.clone(),
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_fake_sysfs() {
        let root = std::env::temp_dir().join(format!("netvm-link-{}", std::process::id()));
        let dir = root.join("class/net/veth0");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("ifindex"), "7\n").expect("write");
        std::fs::write(dir.join("address"), "02:ad:00:00:00:01\n").expect("write");
        let link = Link::read(&root, &"veth0".parse().expect("name")).expect("link");
        assert_eq!(link.index, 7);
        assert_eq!(link.mac.to_string(), "02:ad:00:00:00:01");
        let missing = Link::read(&root, &"nope".parse().expect("name"));
        assert!(matches!(missing, Err(LinkError::Read { .. })));
        std::fs::remove_dir_all(root).expect("cleanup");
    }
}
