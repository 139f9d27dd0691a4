//! A `newc` cpio archive, the format the Linux kernel unpacks as an
//! initramfs. Pure: entries in, bytes out. Parent directories are added
//! for every path; the archive is sorted, so the same entries always give
//! the same bytes.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File { data: Vec<u8>, mode: u32 },
    Symlink(String),
}

/// An archive being put together.
#[derive(Debug, Clone, Default)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

fn clean(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_owned()
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Archive {
        Archive::default()
    }

    fn parents(&mut self, path: &str) {
        let mut at = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            self.entries.entry(at.clone()).or_insert(Entry::Dir);
        }
    }

    /// A directory.
    pub fn dir(&mut self, path: &str) {
        let path = clean(path);
        self.parents(&path);
        self.entries.insert(path, Entry::Dir);
    }

    /// A file with `mode` (permission bits).
    pub fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) {
        let path = clean(path);
        self.parents(&path);
        self.entries.insert(path, Entry::File { data, mode });
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        let path = clean(path);
        self.parents(&path);
        self.entries.insert(path, Entry::Symlink(target.to_owned()));
    }

    /// Whether `path` is in the archive.
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(&clean(path))
    }

    /// The archive's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, entry)) in (1u32..).zip(self.entries.iter()) {
            let (mode, data): (u32, &[u8]) = match entry {
                Entry::Dir => (0o040_755, &[]),
                Entry::File { data, mode } => (0o100_000 | (mode & 0o7777), data),
                Entry::Symlink(target) => (0o120_777, target.as_bytes()),
            };
            header(&mut out, ino, mode, data.len(), path);
            out.extend_from_slice(data);
            pad(&mut out);
        }
        header(&mut out, 0, 0, 0, "TRAILER!!!");
        out
    }
}

fn header(out: &mut Vec<u8>, ino: u32, mode: u32, size: usize, name: &str) {
    let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime: fixed, so images are reproducible
        size as u32,
        0, // devmajor
        0, // devminor
        0, // rdevmajor
        0, // rdevminor
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad(out);
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_aligned_and_parents_added() {
        let mut a = Archive::new();
        a.file("/bin/hello", b"hi\n".to_vec(), 0o755);
        a.symlink("/bin/sh", "busybox");
        let bytes = a.to_bytes();
        assert!(a.contains("bin"));
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(bytes.len() % 4, 0);
        // bin, bin/hello, bin/sh, trailer.
        assert_eq!(bytes.windows(6).filter(|w| *w == b"070701").count(), 4);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("bin/hello\0"));
        assert!(text.contains("TRAILER!!!\0"));
        // Same entries, same bytes.
        let mut b = Archive::new();
        b.symlink("bin/sh", "busybox");
        b.file("bin/hello", b"hi\n".to_vec(), 0o755);
        assert_eq!(b.to_bytes(), bytes);
    }

    #[test]
    fn the_system_cpio_reads_it_back() {
        let mut a = Archive::new();
        a.file("etc/netvm/system.toml", b"[netvm]\n".to_vec(), 0o644);
        a.symlink("sbin/modprobe", "/bin/busybox");
        let dir = std::env::temp_dir().join(format!("netvm-cpio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let archive = dir.join("a.cpio");
        std::fs::write(&archive, a.to_bytes()).expect("write");
        let listed = std::process::Command::new("cpio")
            .args(["-it", "-F"])
            .arg(&archive)
            .output();
        let _ = std::fs::remove_dir_all(&dir);
        // cpio(1) comes with the test command's packages.
        let out = listed.expect("cpio(1) runs");
        assert!(
            out.status.success(),
            "cpio rejected the archive: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let names = String::from_utf8_lossy(&out.stdout);
        assert!(names.contains("etc/netvm/system.toml"), "{names}");
        assert!(names.contains("sbin/modprobe"), "{names}");
    }
}
