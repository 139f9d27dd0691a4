//! Network-namespace fixtures for integration tests, so every test builds
//! its topology the same way and never leaves anything behind.
//!
//! * [`Netns`]: a namespace with a unique name (`nvt<pid>-<n>-<role>`),
//!   loopback up, deleted on drop (also while unwinding from a failed
//!   assertion) after killing whatever still runs in it. Namespaces left
//!   by a test process that died are removed the next time one is made.
//! * [`veth`]: a veth pair with each end created directly inside its
//!   namespace, so names never meet in the machine's own namespace.
//! * [`Process`]: a program started in a namespace whose output lines are
//!   collected, so tests wait for a line instead of sleeping; killed on
//!   drop.
//!
//! Tests that use these need root; [`require_root`] fails them with a clear
//! message otherwise (never a silent pass). Traffic stays inside the
//! namespaces a test made.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::time::{Duration, Instant};

const PREFIX: &str = "nvt";

/// Fails the test unless it runs as root.
pub fn require_root() {
    // /proc/self/status "Uid:" line: real, effective, saved, fs.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    assert_eq!(
        euid, "0",
        "this test builds network namespaces and must run as root (CI does); run the suite with sudo"
    );
}

/// Runs a command and returns its output; panics if it cannot start.
pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// Runs a command that must succeed.
pub fn run_ok(args: &[&str]) -> String {
    let output = run(args);
    assert!(
        output.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn pid_alive(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
}

/// Deletes namespaces of ours whose test process is gone.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()) && !pid_alive(pid) {
            kill_all_in(&name);
            let _ = run(&["ip", "netns", "del", &name]);
            let _ = std::fs::remove_dir_all(etc_of(&name));
        }
    }
}

/// The namespace's own `/etc` overlay: `ip netns exec` bind-mounts each
/// file in it over the machine's, so DHCP clients' scripts (udhcpc,
/// dhclient, dhcpcd) write this `resolv.conf`, never the machine's.
fn etc_of(name: &str) -> String {
    format!("/etc/netns/{name}")
}

fn kill_all_in(name: &str) {
    let pids = run(&["ip", "netns", "pids", name]);
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let _ = run(&["kill", "-9", pid]);
    }
}

/// A network namespace that exists as long as this value.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Runs `f` on a thread that entered this namespace: sockets and
    /// netlink handles it opens belong to it (and may be returned).
    pub fn inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        use nix::sched::{setns, CloneFlags};
        let path = format!("/run/netns/{}", self.name());
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).expect("open the namespace");
                setns(&file, CloneFlags::CLONE_NEWNET).expect("enter the namespace");
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Creates a namespace named after `role` (a few letters) with
    /// loopback up.
    pub fn new(role: &str) -> Netns {
        static CLEAN: Once = Once::new();
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        require_root();
        CLEAN.call_once(remove_stale);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{role}", std::process::id());
        run_ok(&["ip", "netns", "add", &name]);
        let etc = etc_of(&name);
        std::fs::create_dir_all(&etc)
            .and_then(|()| std::fs::write(format!("{etc}/resolv.conf"), ""))
            .unwrap_or_else(|e| panic!("cannot make {etc}/resolv.conf: {e}"));
        let ns = Netns { name };
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args(args);
        command
    }

    /// Runs a command inside and returns its output.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {}: {e}", self.name))
    }

    /// Runs a command inside that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.exec(args);
        assert!(
            output.status.success(),
            "{args:?} in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs a command that puts a daemon in the background and must
    /// succeed. Its output goes to /dev/null: a daemon that inherited a
    /// pipe would die of SIGPIPE once the pipe's reader is gone.
    pub fn daemonize(&self, args: &[&str]) {
        let status = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {}: {e}", self.name));
        assert!(
            status.success(),
            "{args:?} in {} failed: {status}",
            self.name
        );
    }

    /// Starts a program inside; its stdout and stderr lines are collected.
    pub fn spawn(&self, args: &[&str]) -> Process {
        let child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {}: {e}", self.name));
        Process::collect(child, args.join(" "))
    }

    /// The IPv4 addresses on `interface`, as `a.b.c.d/len`.
    pub fn ipv4_addresses(&self, interface: &str) -> Vec<String> {
        let out = self.ok(&["ip", "-4", "-o", "addr", "show", "dev", interface]);
        out.lines()
            .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_all_in(&self.name);
        let _ = run(&["ip", "netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(etc_of(&self.name));
    }
}

/// A Python TCP server for `python3 -u -c PEER_SERVER PORT`: prints
/// `listening`, then answers every connection with the peer's address
/// as it sees it (what NAT made of the client).
pub const PEER_SERVER: &str = "import socket,sys\n\
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(16); print('listening', flush=True)\n\
while True:\n    c,a=s.accept(); c.sendall((a[0]+'\\n').encode()); c.close()\n";

/// Its client, `python3 -c PEER_CLIENT IP PORT`: prints what the server
/// saw it as (3 s to connect).
pub const PEER_CLIENT: &str = "import socket,sys\n\
s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n\
print(s.recv(100).decode().strip())\n";

/// Checks `ruleset` with `nft -c -f -` (nothing is loaded); panics with
/// nft's complaint and the ruleset, named `what`, when nft rejects it.
pub fn nft_check(what: &str, ruleset: &str) {
    use std::io::Write;
    let mut nft = Command::new("nft")
        .args(["-c", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nft (Debian package nftables) runs");
    nft.stdin
        .take()
        .expect("stdin")
        .write_all(ruleset.as_bytes())
        .expect("write");
    let output = nft.wait_with_output().expect("nft finishes");
    assert!(
        output.status.success(),
        "{what}: nft -c rejected the ruleset:\n{}\n{ruleset}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Creates a veth pair: `a_if` in `a`, `b_if` in `b`, both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    run_ok(&[
        "ip",
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]);
    a.ok(&["ip", "link", "set", a_if, "up"]);
    b.ok(&["ip", "link", "set", b_if, "up"]);
}

type Lines = Arc<(Mutex<Vec<String>>, Condvar)>;

/// A running program whose output lines are kept; killed on drop.
#[derive(Debug)]
pub struct Process {
    child: Child,
    what: String,
    lines: Lines,
}

impl Process {
    fn collect(mut child: Child, what: String) -> Process {
        let lines: Lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let readers: Vec<Box<dyn Read + Send>> = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        for reader in readers {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    let (store, ready) = &*lines;
                    store.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                    ready.notify_all();
                }
            });
        }
        Process { child, what, lines }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until `count` lines match `predicate`; returns them, or
    /// `None` after `timeout`.
    pub fn try_wait_for_n(
        &self,
        count: usize,
        timeout: Duration,
        predicate: impl Fn(&str) -> bool,
    ) -> Option<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let (store, ready) = &*self.lines;
        let mut lines = store.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let found: Vec<String> = lines.iter().filter(|l| predicate(l)).cloned().collect();
            if found.len() >= count {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            lines = ready
                .wait_timeout(lines, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits until `count` lines match `predicate`; returns them, or
    /// panics after `timeout` showing everything the program printed.
    pub fn wait_for_n(
        &self,
        count: usize,
        timeout: Duration,
        predicate: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        match self.try_wait_for_n(count, timeout, predicate) {
            Some(found) => found,
            None => panic!(
                "timed out after {timeout:?} waiting for {count} matching line(s) from `{}`; it printed:\n{}",
                self.what,
                self.lines().join("\n")
            ),
        }
    }

    /// Waits for one line matching `predicate`.
    pub fn wait_for(&self, timeout: Duration, predicate: impl Fn(&str) -> bool) -> String {
        self.wait_for_n(1, timeout, predicate).remove(0)
    }

    /// Sends `signal` (e.g. "TERM", "USR1", "KILL").
    pub fn signal(&self, signal: &str) {
        let _ = run(&["kill", &format!("-{signal}"), &self.child.id().to_string()]);
    }

    /// Waits for the process to exit (up to `timeout`); true if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
