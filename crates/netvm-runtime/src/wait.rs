//! Waiting for any of several file descriptors to be readable, or a
//! deadline, whichever comes first: `poll(2)`. A thread built on it wakes
//! only when one of its sockets has something, its stop handle is stopped
//! or its next timer is due.

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// Which of the descriptors given to [`wait`] are ready (readable, or
/// hung up or failed: reading says which). None is ready when the
/// deadline came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready(u64);

impl Ready {
    /// Whether descriptor `index` (its place in the slice) is ready.
    pub fn is_ready(self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }

    /// Whether none is (the deadline came).
    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}

/// Most descriptors one [`wait`] takes.
pub const MAX_FDS: usize = 64;

/// The `poll` timeout for `deadline`: rounded up to the next millisecond
/// (a wait never ends before its deadline, so a timer is never run early
/// and waited for again), at most what `poll` can take.
fn timeout(deadline: Option<Instant>) -> PollTimeout {
    let Some(at) = deadline else {
        return PollTimeout::NONE;
    };
    let left = at.saturating_duration_since(Instant::now());
    let millis = left
        .as_nanos()
        .div_ceil(Duration::from_millis(1).as_nanos());
    PollTimeout::try_from(millis.min(i32::MAX as u128)).unwrap_or(PollTimeout::MAX)
}

/// Blocks until one of `fds` is readable or `deadline` (none: forever)
/// has passed. A signal that interrupts the wait does not end it.
pub fn wait(fds: &[BorrowedFd<'_>], deadline: Option<Instant>) -> io::Result<Ready> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("wait takes at most {MAX_FDS} descriptors"),
        ));
    }
    let mut polls: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    loop {
        match poll(&mut polls, timeout(deadline)) {
            Ok(_) => break,
            Err(Errno::EINTR) if deadline.is_none_or(|at| Instant::now() < at) => continue,
            Err(Errno::EINTR) => return Ok(Ready::default()),
            Err(errno) => return Err(errno.into()),
        }
    }
    let mut ready = Ready::default();
    for (index, fd) in polls.iter().enumerate() {
        // Flags nix does not know still mean the descriptor has news.
        if fd.any().unwrap_or(true) {
            ready.0 |= 1 << index;
        }
    }
    Ok(ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_deadline_ends_the_wait_with_nothing_ready() {
        let (a, _b) = UnixStream::pair().expect("pair");
        let start = Instant::now();
        let at = start + Duration::from_millis(30);
        let ready = wait(&[a.as_fd()], Some(at)).expect("wait");
        assert!(ready.is_none());
        assert!(Instant::now() >= at, "never before the deadline");
    }

    #[test]
    fn says_which_descriptor_is_readable() {
        let (a, _a) = UnixStream::pair().expect("pair");
        let (b, mut b_writer) = UnixStream::pair().expect("pair");
        b_writer.write_all(b"x").expect("write");
        let ready = wait(&[a.as_fd(), b.as_fd()], None).expect("wait");
        assert!(!ready.is_ready(0));
        assert!(ready.is_ready(1));
        assert!(!ready.is_none());
    }

    #[test]
    fn a_deadline_in_the_past_returns_at_once() {
        let (a, _b) = UnixStream::pair().expect("pair");
        let past = Instant::now();
        assert!(wait(&[a.as_fd()], Some(past)).expect("wait").is_none());
    }
}
