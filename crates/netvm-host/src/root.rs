//! The host's filesystem root and the few ways this crate touches it.
//!
//! Every read and write of `netvm-host` goes through a [`HostRoot`]: `/`
//! on a live host, a temporary directory holding a synthetic `sys/`,
//! `proc/` and `run/` in the tests. Reads are lenient (a missing or odd
//! attribute is `None` or an empty list, never a panic); writes are strict
//! and name the path they touched. A sysfs attribute is never created: a
//! write to one that does not exist fails instead of leaving a stray file.

use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};

/// The directory the host's `/sys`, `/proc` and `/run` hang from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot(PathBuf);

/// A file access under a [`HostRoot`] that failed, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A directory could not be listed.
    #[error("cannot list {}", path.display())]
    List {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An attribute could not be written.
    #[error("cannot write {value:?} to {}", path.display())]
    Write {
        /// The attribute.
        path: PathBuf,
        /// What was written.
        value: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A state file (under `run/`) could not be created or replaced.
    #[error("cannot save {}", path.display())]
    Save {
        /// The state file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A state file could not be removed.
    #[error("cannot remove {}", path.display())]
    Remove {
        /// The state file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl HostRoot {
    /// The running host: `/`.
    pub fn live() -> Self {
        Self(PathBuf::from("/"))
    }

    /// A tree rooted at `path` (a test fixture, a chroot).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    /// The root directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `<root>/sys/<rel>`.
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.under("sys", rel)
    }

    /// `<root>/proc/<rel>`.
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.under("proc", rel)
    }

    /// `<root>/run/<rel>`, where netvm keeps state between commands.
    pub fn run(&self, rel: &str) -> PathBuf {
        self.under("run", rel)
    }

    fn under(&self, top: &str, rel: &str) -> PathBuf {
        // A leading `/` would make `join` replace the root.
        let rel = rel.trim_start_matches('/');
        let base = self.0.join(top);
        if rel.is_empty() {
            base
        } else {
            base.join(rel)
        }
    }

    /// The contents of a file, whitespace-trimmed; `None` when it is
    /// missing, unreadable or not UTF-8.
    pub(crate) fn read(&self, path: &Path) -> Option<String> {
        self.check(path);
        fs::read_to_string(path).ok().map(|t| t.trim().to_owned())
    }

    /// The last component of a symlink's target (`driver` -> `e1000e`,
    /// `iommu_group` -> `7`); `None` when `path` is not a symlink.
    pub(crate) fn link_name(&self, path: &Path) -> Option<String> {
        self.check(path);
        let target = fs::read_link(path).ok()?;
        target.file_name()?.to_str().map(str::to_owned)
    }

    /// Whether `path` exists (following symlinks) and is a directory.
    pub(crate) fn is_dir(&self, path: &Path) -> bool {
        self.check(path);
        path.is_dir()
    }

    /// Whether `path` exists (following symlinks).
    pub(crate) fn exists(&self, path: &Path) -> bool {
        self.check(path);
        path.exists()
    }

    /// The names of a directory's entries, sorted; empty when the
    /// directory does not exist. Names that are not UTF-8 are skipped
    /// (sysfs and procfs names always are).
    pub(crate) fn entries(&self, dir: &Path) -> Result<Vec<String>, AccessError> {
        self.check(dir);
        let list_error = |source| AccessError::List {
            path: dir.to_owned(),
            source,
        };
        let reader = match fs::read_dir(dir) {
            Ok(reader) => reader,
            Err(e) if is_absent(&e) => return Ok(Vec::new()),
            Err(e) => return Err(list_error(e)),
        };
        let mut names = Vec::new();
        for entry in reader {
            let entry = entry.map_err(list_error)?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Like [`entries`](Self::entries), but an unreadable directory is
    /// empty too: for per-device details where a listing of the other
    /// devices is worth more than the error.
    pub(crate) fn entries_or_empty(&self, dir: &Path) -> Vec<String> {
        self.entries(dir).unwrap_or_default()
    }

    /// Writes `value` to an existing attribute in one `write`, equivalent
    /// to `echo -n value > path`; never creates the file.
    pub(crate) fn write(&self, path: &Path, value: &str) -> Result<(), AccessError> {
        self.check(path);
        let result = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            .and_then(|mut file| file.write_all(value.as_bytes()));
        result.map_err(|source| AccessError::Write {
            path: path.to_owned(),
            value: value.to_owned(),
            source,
        })
    }

    /// Creates or replaces a state file, creating its directories.
    pub(crate) fn save(&self, path: &Path, contents: &str) -> Result<(), AccessError> {
        self.check(path);
        let result = match path.parent() {
            Some(dir) => fs::create_dir_all(dir),
            None => Ok(()),
        };
        result
            .and_then(|()| fs::write(path, contents))
            .map_err(|source| AccessError::Save {
                path: path.to_owned(),
                source,
            })
    }

    /// Removes a state file; one that is already gone is fine.
    pub(crate) fn remove(&self, path: &Path) -> Result<(), AccessError> {
        self.check(path);
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(AccessError::Remove {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Every path the crate touches is built from this root; catching a
    /// stray absolute path here keeps tests from reading the live host.
    fn check(&self, path: &Path) {
        debug_assert!(
            path.starts_with(&self.0),
            "{} is outside {}",
            path.display(),
            self.0.display()
        );
    }
}

fn is_absent(error: &io::Error) -> bool {
    matches!(error.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_below_the_root() {
        let root = HostRoot::new("/tmp/x");
        assert_eq!(root.sys("bus/pci"), Path::new("/tmp/x/sys/bus/pci"));
        assert_eq!(root.sys("/bus/pci"), Path::new("/tmp/x/sys/bus/pci"));
        assert_eq!(root.proc("net/route"), Path::new("/tmp/x/proc/net/route"));
        assert_eq!(root.run(""), Path::new("/tmp/x/run"));
        assert_eq!(HostRoot::live().sys("kernel"), Path::new("/sys/kernel"));
    }

    #[test]
    fn reads_lists_and_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = HostRoot::new(dir.path());
        let attr = root.sys("class");
        let missing = root.sys("missing");
        fs::create_dir_all(root.sys("")).expect("mkdir sys");
        fs::write(&attr, "0x020000\n").expect("write class");
        assert_eq!(root.read(&attr).as_deref(), Some("0x020000"));
        assert_eq!(root.read(&missing), None);
        assert_eq!(root.entries(&root.sys("")).expect("list"), ["class"]);
        assert!(root.entries(&missing).expect("absent").is_empty());

        root.write(&attr, "x").expect("existing attribute");
        assert_eq!(fs::read_to_string(&attr).expect("read back"), "x");
        let error = root.write(&missing, "y").expect_err("never creates");
        assert!(error.to_string().contains("sys/missing"), "{error}");
        assert!(!missing.exists());

        let state = root.run("netvm/a/b");
        root.save(&state, "e1000e\n").expect("save");
        assert_eq!(root.read(&state).as_deref(), Some("e1000e"));
        root.remove(&state).expect("remove");
        root.remove(&state).expect("remove again");
    }
}
