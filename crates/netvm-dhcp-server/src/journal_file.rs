//! The lease journal on disk: opening and replaying it, appending with
//! group commit, and compacting it in the background.
//!
//! Durability rule: records of a batch are appended to a buffer and
//! written with one `write` and one `fdatasync` ([`JournalFile::commit`]);
//! the driver sends the batch's ACKs only after that returns. Many ACKs
//! share one sync, so throughput stays high under load.
//!
//! Compaction writes a snapshot of the live leases to `<journal>.compact`
//! and syncs it on a background thread; records committed meanwhile are
//! kept in memory and appended to the new file before it is renamed over
//! the journal and the directory is synced. At every moment one complete
//! journal is in place, so a crash during compaction loses nothing.
//!
//! A damaged tail found at open (a torn last write) is reported, the whole
//! file is first copied to `<journal>.damaged-<unix time>`, and the
//! journal is cut back to its valid part. The journal is locked
//! (`flock`) so two servers never share it.

use netvm_dhcp::journal::{self, JournalError, Record, HEADER};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::thread;

/// Compact once the journal is this large and four times its last snapshot.
const COMPACT_AFTER_BYTES: u64 = 1 << 20;

/// Why the journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalFileError {
    /// Opening, reading, writing or syncing failed.
    #[error("lease journal {}: cannot {action}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not a lease journal.
    #[error("lease journal {}: not a netvm lease journal", path.display())]
    NotAJournal {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: JournalError,
    },
    /// Another process holds the journal.
    #[error("lease journal {} is in use by another process", path.display())]
    InUse {
        /// The file.
        path: PathBuf,
    },
}

/// What opening found.
#[derive(Debug)]
pub struct Opened {
    /// The journal, ready for appends.
    pub journal: JournalFile,
    /// The records of its valid part.
    pub records: Vec<Record>,
    /// Bytes of damaged tail cut off.
    pub ignored_bytes: usize,
    /// Where the damaged original was copied, if it was.
    pub damaged_copy: Option<PathBuf>,
}

/// A finished compaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Journal size before.
    pub before: u64,
    /// Journal size after.
    pub after: u64,
}

struct Compaction {
    done: Receiver<io::Result<u64>>,
    /// Records committed since the snapshot was taken.
    since: Vec<u8>,
}

/// An open, locked lease journal.
pub struct JournalFile {
    path: PathBuf,
    file: File,
    len: u64,
    pending: Vec<u8>,
    snapshot_len: u64,
    compaction: Option<Compaction>,
    /// Rung when a background compaction has written its snapshot.
    compacted: Option<netvm_runtime::Bell>,
}

impl std::fmt::Debug for JournalFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalFile")
            .field("path", &self.path)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

fn compact_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".compact");
    PathBuf::from(name)
}

/// Maps an I/O error to [`JournalFileError::Io`] naming `path` and `action`.
fn io_error(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> JournalFileError {
    let path = path.to_owned();
    move |source| JournalFileError::Io {
        path,
        action,
        source,
    }
}

/// Reads a journal without changing it (for `netvm leases`).
pub fn read(path: &Path) -> Result<journal::Replay, JournalFileError> {
    let bytes = std::fs::read(path).map_err(io_error(path, "read it"))?;
    journal::replay(&bytes).map_err(|source| JournalFileError::NotAJournal {
        path: path.to_owned(),
        source,
    })
}

/// The bound leases a journal holds (ended ones included: filter on
/// `until`); none when it cannot be read. For readers beside the server
/// (the DNS server's host names, the agent's `endpoints` set).
pub fn bound_leases(path: &Path) -> Vec<journal::JournalLease> {
    let Ok(replay) = read(path) else {
        return Vec::new();
    };
    journal::fold(&replay.records)
        .into_iter()
        .filter(|l| l.state == "bound")
        .collect()
}

impl JournalFile {
    /// Opens (creating if needed), locks and replays the journal at `path`.
    pub fn open(path: &Path, unix_secs: u64) -> Result<Opened, JournalFileError> {
        let io_error = |action| io_error(path, action);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_error("create its directory"))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_error("open it"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(JournalFileError::InUse {
                    path: path.to_owned(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error("lock it")(e)),
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error("read it"))?;
        let replay = journal::replay(&bytes).map_err(|source| JournalFileError::NotAJournal {
            path: path.to_owned(),
            source,
        })?;
        let mut damaged_copy = None;
        if replay.ignored > 0 {
            let mut copy = path.as_os_str().to_owned();
            copy.push(format!(".damaged-{unix_secs}"));
            let copy = PathBuf::from(copy);
            std::fs::write(&copy, &bytes).map_err(io_error("keep a copy of its damaged tail"))?;
            file.set_len(replay.valid_len as u64)
                .map_err(io_error("cut its damaged tail"))?;
            file.sync_all().map_err(io_error("sync it"))?;
            damaged_copy = Some(copy);
        }
        let mut len = replay.valid_len as u64;
        if len == 0 {
            file.write_all(HEADER)
                .map_err(io_error("write its header"))?;
            file.sync_all().map_err(io_error("sync it"))?;
            sync_dir(path).map_err(io_error("sync its directory"))?;
            len = HEADER.len() as u64;
        }
        // A compaction interrupted by a crash left a file nobody needs.
        let _ = std::fs::remove_file(compact_path(path));
        Ok(Opened {
            journal: JournalFile {
                path: path.to_owned(),
                file,
                snapshot_len: len,
                len,
                pending: Vec::new(),
                compaction: None,
                compacted: None,
            },
            records: replay.records,
            ignored_bytes: replay.ignored,
            damaged_copy,
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds `record` to the next commit.
    pub fn append(&mut self, record: &Record) {
        record.encode(&mut self.pending);
    }

    /// True when records wait for [`JournalFile::commit`].
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes and syncs every pending record (one `write`, one
    /// `fdatasync`). On error nothing is acknowledged; the records stay
    /// pending and are tried again at the next commit.
    pub fn commit(&mut self) -> Result<(), JournalFileError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let io_error = |action| io_error(&self.path, action);
        self.file
            .write_all(&self.pending)
            .map_err(io_error("append to it"))?;
        self.file.sync_data().map_err(io_error("sync it"))?;
        self.len += self.pending.len() as u64;
        if let Some(compaction) = &mut self.compaction {
            compaction.since.extend_from_slice(&self.pending);
        }
        self.pending.clear();
        Ok(())
    }

    /// Current size on disk.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: a journal holds at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// True when the journal has grown enough to be worth compacting.
    pub fn wants_compaction(&self) -> bool {
        self.compaction.is_none()
            && self.len > COMPACT_AFTER_BYTES
            && self.len > self.snapshot_len.saturating_mul(4)
    }

    /// Rings `bell` whenever a background compaction has written its
    /// snapshot, so a server waiting on it calls
    /// [`JournalFile::finish_compaction`] without polling.
    pub fn ring_when_compacted(&mut self, bell: netvm_runtime::Bell) {
        self.compacted = Some(bell);
    }

    /// Starts writing `snapshot` (the records of the current state) to a
    /// new journal on a background thread. Call right after a commit.
    pub fn start_compaction(&mut self, snapshot: Vec<Record>) {
        if self.compaction.is_some() {
            return;
        }
        let target = compact_path(&self.path);
        let (tell, done) = mpsc::channel();
        let compacted = self.compacted.clone();
        thread::spawn(move || {
            let write = || -> io::Result<u64> {
                let mut bytes = HEADER.to_vec();
                for record in &snapshot {
                    record.encode(&mut bytes);
                }
                let mut file = File::create(&target)?;
                file.write_all(&bytes)?;
                file.sync_all()?;
                Ok(bytes.len() as u64)
            };
            let _ = tell.send(write());
            if let Some(bell) = compacted {
                bell.ring();
            }
        });
        self.compaction = Some(Compaction {
            done,
            since: Vec::new(),
        });
    }

    /// Finishes a compaction whose snapshot is on disk: appends what was
    /// committed since, renames it over the journal, syncs the directory.
    pub fn finish_compaction(&mut self) -> Result<Option<Compacted>, JournalFileError> {
        let Some(compaction) = &self.compaction else {
            return Ok(None);
        };
        let written = match compaction.done.try_recv() {
            Err(TryRecvError::Empty) => return Ok(None),
            Err(TryRecvError::Disconnected) => Err(io::Error::other("compaction thread ended")),
            Ok(result) => result,
        };
        let Some(compaction) = self.compaction.take() else {
            return Ok(None);
        };
        let target = compact_path(&self.path);
        let io_error = |action| io_error(&target, action);
        let snapshot_len = written.map_err(io_error("write the compacted journal"))?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&target)
            .map_err(io_error("reopen the compacted journal"))?;
        file.try_lock().map_err(|_| JournalFileError::InUse {
            path: target.clone(),
        })?;
        file.write_all(&compaction.since)
            .map_err(io_error("append to the compacted journal"))?;
        file.sync_data()
            .map_err(io_error("sync the compacted journal"))?;
        std::fs::rename(&target, &self.path).map_err(io_error("rename the compacted journal"))?;
        sync_dir(&self.path).map_err(io_error("sync the journal's directory"))?;
        let before = self.len;
        self.file = file;
        self.snapshot_len = snapshot_len;
        self.len = snapshot_len + compaction.since.len() as u64;
        Ok(Some(Compacted {
            before,
            after: self.len,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_description::values::MacAddr;
    use netvm_dhcp::{ClientKey, Timestamp};
    use std::net::Ipv4Addr;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("netvm-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn bound(last: u8) -> Record {
        Record::Bound {
            ip: Ipv4Addr::new(10, 0, 0, last),
            mac: MacAddr([2, 0, 0, 0, 0, last]),
            client: ClientKey::Mac(MacAddr([2, 0, 0, 0, 0, last])),
            until: Timestamp(u64::from(last)),
            hostname: None,
        }
    }

    #[test]
    fn committed_records_survive_reopening_and_a_torn_tail_is_cut_and_kept() {
        let dir = dir("torn");
        let path = dir.join("leases");
        let mut opened = JournalFile::open(&path, 1).expect("open");
        assert!(opened.records.is_empty());
        opened.journal.append(&bound(1));
        opened.journal.append(&bound(2));
        opened.journal.commit().expect("commit");
        opened.journal.append(&bound(3)); // never committed
        drop(opened);
        // A torn write: half a record at the end.
        let mut bytes = std::fs::read(&path).expect("read");
        let mut torn = Vec::new();
        bound(4).encode(&mut torn);
        bytes.extend_from_slice(&torn[..torn.len() / 2]);
        std::fs::write(&path, &bytes).expect("write");

        let reopened = JournalFile::open(&path, 99).expect("reopen");
        assert_eq!(reopened.records, [bound(1), bound(2)]);
        assert_eq!(reopened.ignored_bytes, torn.len() / 2);
        let copy = reopened.damaged_copy.clone().expect("copy kept");
        assert_eq!(std::fs::read(copy).expect("copy"), bytes);
        assert_eq!(
            std::fs::metadata(&path).expect("meta").len(),
            reopened.journal.len()
        );
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn a_journal_is_locked_against_a_second_server() {
        let dir = dir("lock");
        let path = dir.join("leases");
        let first = JournalFile::open(&path, 1).expect("open");
        assert!(matches!(
            JournalFile::open(&path, 1),
            Err(JournalFileError::InUse { .. })
        ));
        drop(first);
        assert!(JournalFile::open(&path, 1).is_ok());
        std::fs::write(dir.join("other"), b"not a journal").expect("write");
        assert!(matches!(
            JournalFile::open(&dir.join("other"), 1),
            Err(JournalFileError::NotAJournal { .. })
        ));
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn compaction_keeps_records_committed_while_it_ran() {
        let dir = dir("compact");
        let path = dir.join("leases");
        let mut journal = JournalFile::open(&path, 1).expect("open").journal;
        for last in 1..=50 {
            journal.append(&bound(last));
        }
        journal.commit().expect("commit");
        journal.start_compaction(vec![bound(7)]);
        journal.append(&bound(8));
        journal.commit().expect("commit");
        let done = loop {
            if let Some(done) = journal.finish_compaction().expect("finish") {
                break done;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert!(done.after < done.before);
        journal.append(&bound(9));
        journal.commit().expect("commit");
        drop(journal);
        let records = JournalFile::open(&path, 1).expect("reopen").records;
        assert_eq!(records, [bound(7), bound(8), bound(9)]);
        assert!(!compact_path(&path).exists());
        std::fs::remove_dir_all(dir).expect("cleanup");
    }
}
