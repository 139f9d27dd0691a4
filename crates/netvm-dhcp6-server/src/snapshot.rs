//! The lease snapshot: every live lease as one JSON document, replaced
//! whole after each batch of changes (written to `<file>.tmp`, synced,
//! renamed over the file, the directory synced), so a crash leaves the
//! old snapshot or the new one, never a mix. Leases granted after the
//! last snapshot are lost by a crash; their clients find out when they
//! renew (NoBinding) and ask again.

use netvm_dhcp6::server::Lease6;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    leases: Vec<Lease6>,
}

/// Why a snapshot could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading failed.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not a snapshot; it was moved aside to `kept`.
    #[error("{} is not a lease snapshot (kept as {})", path.display(), kept.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where it was moved.
        kept: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Writing failed.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file written.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Reads the snapshot at `path`: no file is no leases. A file that is
/// not a snapshot is moved aside (`<file>.damaged`) and reported.
pub fn read(path: &Path) -> Result<Vec<Lease6>, SnapshotError> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SnapshotError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    serde_json::from_slice::<Snapshot>(&text)
        .map(|s| s.leases)
        .map_err(|source| {
            let kept = with_suffix(path, ".damaged");
            let _ = fs::rename(path, &kept);
            SnapshotError::Parse {
                path: path.to_owned(),
                kept,
                source,
            }
        })
}

/// Replaces the snapshot at `path` with `leases`.
pub fn write(path: &Path, leases: Vec<Lease6>) -> Result<(), SnapshotError> {
    let tmp = with_suffix(path, ".tmp");
    let error = |path: &Path| {
        let path = path.to_owned();
        move |source| SnapshotError::Write { path, source }
    };
    let text = serde_json::to_vec(&Snapshot { leases }).map_err(io::Error::from);
    let mut file = File::create(&tmp).map_err(error(&tmp))?;
    file.write_all(&text.map_err(error(&tmp))?)
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(error(&tmp))?;
    fs::rename(&tmp, path).map_err(error(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(error(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_description::values::MacAddr;

    #[test]
    fn writes_reads_and_keeps_a_damaged_file() {
        let dir = std::env::temp_dir().join(format!("n6s-snapshot-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("leases6.json");
        assert_eq!(read(&path).expect("none yet"), vec![]);
        let leases = vec![Lease6 {
            mac: MacAddr([2, 0xaa, 0, 0, 0, 7]),
            ip: "fd00::7".parse().expect("ip"),
            duid: vec![0, 3, 0, 1, 2, 0xaa, 0, 0, 0, 7],
            iaid: 7,
            expires_at: 99,
        }];
        write(&path, leases.clone()).expect("write");
        assert_eq!(read(&path).expect("read"), leases);
        assert!(!with_suffix(&path, ".tmp").exists());
        fs::write(&path, "{\"leases\":[").expect("damage");
        assert!(matches!(read(&path), Err(SnapshotError::Parse { .. })));
        assert!(with_suffix(&path, ".damaged").exists());
        assert_eq!(read(&path).expect("moved aside"), vec![]);
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
