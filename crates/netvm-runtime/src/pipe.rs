//! A stop handle ([`Stop`]) and a wake-up ([`Bell`]) that threads wait
//! on together with their sockets.
//!
//! Each is a flag beside a connected pair of Unix stream sockets (made
//! the first time a descriptor is needed): ringing sets the flag and
//! writes a byte, so the reading end becomes readable and wakes every
//! `poll` on it. A [`Stop`] is never drained: once stopped it stays
//! readable, for every waiter, for good. A [`Bell`] is drained by
//! [`Bell::take`], so it wakes once per ringing (rings close together
//! may wake once). Signals can ring either ([`Stop::on_signals`],
//! [`Bell::on_signals`]): `signal-hook` sets the flag and writes the byte
//! from the handler, which is all a handler may safely do.

use crate::wait::{wait, Ready};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The socket pair: written to ring, polled to wait.
#[derive(Debug)]
struct Pair {
    reader: UnixStream,
    writer: UnixStream,
}

impl Pair {
    fn open() -> io::Result<Pair> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Pair { reader, writer })
    }

    /// Makes the reader readable. A full buffer is readable already.
    fn ring(&self) {
        let _ = (&self.writer).write(b"!");
    }

    /// Reads what rings left.
    fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.reader).read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// A flag and its socket pair, made when first needed (so making a
/// handle cannot fail). Opening the pair once failed stays failed: the
/// error is returned to every waiter.
#[derive(Debug, Default)]
struct Signalled {
    flag: Arc<AtomicBool>,
    pair: OnceLock<Result<Pair, (io::ErrorKind, String)>>,
}

impl Signalled {
    fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        // Either this sees the pair, or `pair` (below) sees the flag.
        fence(Ordering::SeqCst);
        if let Some(Ok(pair)) = self.pair.get() {
            pair.ring();
        }
    }

    fn pair(&self) -> io::Result<&Pair> {
        let pair = self
            .pair
            .get_or_init(|| Pair::open().map_err(|e| (e.kind(), e.to_string())))
            .as_ref()
            .map_err(|(kind, text)| {
                io::Error::new(*kind, format!("cannot open a wake-up socket pair: {text}"))
            })?;
        fence(Ordering::SeqCst);
        if self.flag.load(Ordering::SeqCst) {
            pair.ring();
        }
        Ok(pair)
    }

    /// Sets the flag and rings the pair on each of `signals`.
    fn on_signals(&self, signals: &[i32]) -> io::Result<SignalGuard> {
        let pair = self.pair()?;
        let mut guard = SignalGuard { ids: Vec::new() };
        for &signal in signals {
            // Registered in this order, so a waiter woken by the byte
            // finds the flag set.
            guard
                .ids
                .push(signal_hook::flag::register(signal, Arc::clone(&self.flag))?);
            guard.ids.push(signal_hook::low_level::pipe::register(
                signal,
                pair.writer.try_clone()?,
            )?);
        }
        Ok(guard)
    }
}

/// Signal handlers installed by `on_signals`; dropping it removes them.
#[must_use = "dropping the guard removes the signal handlers"]
#[derive(Debug)]
pub struct SignalGuard {
    ids: Vec<signal_hook::SigId>,
}

impl SignalGuard {
    /// Keeps the handlers for the rest of the process's life.
    pub fn keep(mut self) {
        self.ids.clear();
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// What ended a wait on a descriptor and a [`Stop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The stop handle was stopped (it wins over a readable descriptor).
    Stopped,
    /// The descriptor is readable (or hung up, or has an error to read).
    Ready,
    /// The deadline passed.
    Deadline,
}

/// A stop handle: clones share it; once stopped it stays stopped. A
/// thread waits on it together with its sockets and deadline
/// ([`Stop::wait_for`], [`Stop::wait_any`]), so it needs no polling.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<Signalled>);

impl Stop {
    /// A handle not yet stopped.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Stops: every waiter wakes, now and later.
    pub fn stop(&self) {
        self.0.set();
    }

    /// Whether it was stopped.
    pub fn is_stopped(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// The descriptor that becomes readable when stopped, for a `poll` of
    /// one's own.
    pub fn fd(&self) -> io::Result<BorrowedFd<'_>> {
        Ok(self.0.pair()?.reader.as_fd())
    }

    /// Stops on each of `signals` (e.g. SIGTERM, SIGINT) until the guard
    /// is dropped.
    pub fn on_signals(&self, signals: &[i32]) -> io::Result<SignalGuard> {
        self.0.on_signals(signals)
    }

    /// Waits until `fd` is readable, the handle is stopped, or `deadline`
    /// (none: no deadline) passes: the loop of a thread serving one
    /// socket is `while let Wake::Ready = stop.wait_for(fd, None)? {…}`.
    pub fn wait_for(&self, fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<Wake> {
        Ok(match self.wait_any(&[fd], deadline)? {
            None => Wake::Stopped,
            Some(ready) if ready.is_none() => Wake::Deadline,
            Some(_) => Wake::Ready,
        })
    }

    /// Waits until one of `fds` is readable, the handle is stopped, or
    /// `deadline` passes. `None` when stopped; otherwise which of `fds`
    /// are ready (none: the deadline passed).
    pub fn wait_any(
        &self,
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
    ) -> io::Result<Option<Ready>> {
        if self.is_stopped() {
            return Ok(None);
        }
        let mut all = Vec::with_capacity(fds.len() + 1);
        all.extend_from_slice(fds);
        all.push(self.fd()?);
        let ready = wait(&all, deadline)?;
        if ready.is_ready(fds.len()) || self.is_stopped() {
            return Ok(None);
        }
        Ok(Some(ready))
    }

    /// Sleeps for `duration` unless stopped first; whether it was stopped.
    pub fn sleep(&self, duration: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + duration;
        Ok(self.wait_any(&[], Some(deadline))?.is_none())
    }

    /// Blocks until stopped.
    pub fn wait(&self) -> io::Result<()> {
        while self.wait_any(&[], None)?.is_some() {}
        Ok(())
    }

    /// Resolves when stopped: a stop for a tokio task's `select!`. Each
    /// call registers a copy of the descriptor with the runtime.
    #[cfg(feature = "tokio")]
    pub async fn stopped(&self) -> io::Result<()> {
        let reader = self.0.pair()?.reader.try_clone()?;
        let reader = tokio::net::UnixStream::from_std(reader)?;
        loop {
            reader.readable().await?;
            if self.is_stopped() {
                return Ok(());
            }
            // The flag is set before the byte is written: this wake was
            // not a stop. Forget it (reading nothing) and wait again.
            let _ = reader.try_io(tokio::io::Interest::READABLE, || {
                Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
            });
        }
    }
}

/// A wake-up: rung by one thread (or a signal), it wakes a thread that
/// waits on its [`Bell::fd`] once, until [`Bell::take`]n.
#[derive(Debug, Clone, Default)]
pub struct Bell(Arc<Signalled>);

impl Bell {
    /// A bell not yet rung.
    pub fn new() -> Bell {
        Bell::default()
    }

    /// Rings it.
    pub fn ring(&self) {
        self.0.set();
    }

    /// Whether it rang since the last call; readies it for the next ring.
    pub fn take(&self) -> bool {
        // Drain first: a ring between the two leaves its flag and its
        // byte, so it is seen now or wakes the next wait (never lost).
        if let Some(Ok(pair)) = self.0.pair.get() {
            pair.drain();
        }
        self.0.flag.swap(false, Ordering::SeqCst)
    }

    /// The descriptor that is readable while it is rung.
    pub fn fd(&self) -> io::Result<BorrowedFd<'_>> {
        Ok(self.0.pair()?.reader.as_fd())
    }

    /// Rings on each of `signals` (e.g. SIGHUP) until the guard is
    /// dropped.
    pub fn on_signals(&self, signals: &[i32]) -> io::Result<SignalGuard> {
        self.0.on_signals(signals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::thread;

    fn socket() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").expect("bind")
    }

    #[test]
    fn stop_wakes_a_waiter_blocked_on_a_socket() {
        let stop = Stop::new();
        let theirs = stop.clone();
        let waiter = thread::spawn(move || {
            let socket = socket();
            theirs.wait_for(socket.as_fd(), None)
        });
        // Whether the waiter is blocked yet or not, it must see the stop.
        thread::sleep(Duration::from_millis(20));
        stop.stop();
        assert_eq!(waiter.join().expect("join").expect("wait"), Wake::Stopped);
        // And it stays stopped for later waiters.
        let socket = socket();
        assert_eq!(
            stop.wait_for(socket.as_fd(), None).expect("wait"),
            Wake::Stopped
        );
    }

    #[test]
    fn a_stop_before_the_descriptor_exists_is_not_lost() {
        let stop = Stop::new();
        stop.stop();
        let socket = socket();
        assert_eq!(
            stop.wait_for(socket.as_fd(), None).expect("wait"),
            Wake::Stopped
        );
        assert!(stop.sleep(Duration::from_secs(3600)).expect("sleep"));
    }

    #[test]
    fn a_deadline_wakes_the_waiter_and_nothing_else_does() {
        let stop = Stop::new();
        let socket = socket();
        let bell = Bell::new();
        let at = Instant::now() + Duration::from_millis(50);
        let woke = stop
            .wait_any(&[socket.as_fd(), bell.fd().expect("bell")], Some(at))
            .expect("wait");
        assert_eq!(woke, Some(Ready::default()), "nothing ready");
        assert!(Instant::now() >= at, "not before the deadline");
        assert!(!stop.is_stopped());
        assert!(!bell.take());
    }

    #[test]
    fn a_datagram_wakes_the_waiter() {
        let stop = Stop::new();
        let receiver = socket();
        socket()
            .send_to(b"hello", receiver.local_addr().expect("addr"))
            .expect("send");
        let at = Instant::now() + Duration::from_secs(60);
        assert_eq!(
            stop.wait_for(receiver.as_fd(), Some(at)).expect("wait"),
            Wake::Ready
        );
    }

    #[test]
    fn a_bell_wakes_once_per_ring() {
        let stop = Stop::new();
        let bell = Bell::new();
        let theirs = bell.clone();
        thread::spawn(move || theirs.ring());
        let fds = [bell.fd().expect("fd")];
        let ready = stop
            .wait_any(&fds, None)
            .expect("wait")
            .expect("not stopped");
        assert!(ready.is_ready(0));
        assert!(bell.take());
        let soon = Instant::now() + Duration::from_millis(20);
        let fds = [bell.fd().expect("fd")];
        let again = stop.wait_any(&fds, Some(soon)).expect("wait");
        assert_eq!(again, Some(Ready::default()), "taken: no second wake");
        assert!(!bell.take());
    }

    #[test]
    fn a_signal_stops() {
        let stop = Stop::new();
        let guard = stop
            .on_signals(&[signal_hook::consts::SIGUSR2])
            .expect("signals");
        signal_hook::low_level::raise(signal_hook::consts::SIGUSR2).expect("raise");
        stop.wait().expect("wait");
        assert!(stop.is_stopped());
        drop(guard);
    }

    #[cfg(feature = "tokio")]
    #[tokio::test(flavor = "current_thread")]
    async fn the_future_resolves_when_stopped() {
        let stop = Stop::new();
        let theirs = stop.clone();
        let never = tokio::time::sleep(Duration::from_secs(3600));
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            theirs.stop();
        });
        tokio::select! {
            result = stop.stopped() => result.expect("stopped"),
            _ = never => panic!("the stop was lost"),
        }
    }
}
