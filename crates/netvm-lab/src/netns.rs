//! Network namespaces and what runs in them: create and delete them (each
//! with its own `/etc/netns/<name>/resolv.conf`, so a DHCP client's script
//! never writes the machine's), wire veth pairs between them, run
//! commands and daemons inside, and run a closure on a thread that has
//! entered one (for probes that need no external tool).

use crate::plan::Veth;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a lab step failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command failed.
    #[error("`{command}` failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Its error output or why it did not start.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Something did not happen in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// The lab cannot be planned or found.
    #[error("{0}")]
    Lab(String),
}

/// `Io` for `path`.
pub fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Runs a command; its standard output.
pub fn run(args: &[&str]) -> Result<String, LabError> {
    let command = args.join(" ");
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Command {
            command: command.clone(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command,
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command inside namespace `ns`.
pub fn run_in(ns: &str, args: &[&str]) -> Result<String, LabError> {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    run(&all)
}

/// Runs a command inside `ns`; its standard output and error together,
/// whether it succeeded or not (for clients that report on stderr).
pub fn output_in(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("cannot run {}: {e}", args.join(" ")),
    }
}

fn etc_dir(name: &str) -> PathBuf {
    Path::new("/etc/netns").join(name)
}

/// Creates namespace `name` with loopback up and its own resolv.conf.
pub fn create(name: &str) -> Result<(), LabError> {
    let etc = etc_dir(name);
    std::fs::create_dir_all(&etc).map_err(io_error(&etc))?;
    let resolv = etc.join("resolv.conf");
    std::fs::write(&resolv, "").map_err(io_error(&resolv))?;
    run(&["ip", "netns", "add", name])?;
    run_in(name, &["ip", "link", "set", "lo", "up"])?;
    Ok(())
}

/// Deletes namespace `name` (and its /etc/netns files); quiet when gone.
pub fn delete(name: &str) {
    let _ = run(&["ip", "netns", "delete", name]);
    let _ = std::fs::remove_dir_all(etc_dir(name));
}

/// The namespaces whose names start with `prefix`.
pub fn list(prefix: &str) -> Vec<String> {
    let out = run(&["ip", "netns", "list"]).unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Runs busybox `udhcpc` once on `ns`'s `eth0` (`tries` DISCOVERs a
/// second apart, then it gives up), with `more` arguments; what it said.
pub fn udhcpc_once(ns: &str, tries: u32, more: &[&str]) -> String {
    let tries = tries.to_string();
    let mut args = vec!["udhcpc", "-i", "eth0", "-n", "-q", "-t", &tries, "-T", "1"];
    args.extend_from_slice(more);
    output_in(ns, &args)
}

/// Makes the veth pair, sets the MACs given and both ends up.
pub fn veth(v: &Veth) -> Result<(), LabError> {
    run(&[
        "ip", "link", "add", "name", &v.a.name, "netns", &v.a.ns, "type", "veth", "peer", "name",
        &v.b.name, "netns", &v.b.ns,
    ])?;
    for end in [&v.a, &v.b] {
        if let Some(mac) = end.mac {
            run_in(
                &end.ns,
                &["ip", "link", "set", &end.name, "address", &mac.to_string()],
            )?;
        }
        run_in(&end.ns, &["ip", "link", "set", &end.name, "up"])?;
    }
    Ok(())
}

/// Starts `args` inside `ns` in its own process group (it outlives the
/// lab command), output appended to `log`; its pid.
pub fn daemon(ns: &str, args: &[&str], log: &Path) -> Result<u32, LabError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_error(log))?;
    let err = file.try_clone().map_err(io_error(log))?;
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| LabError::Command {
            command: args.join(" "),
            message: e.to_string(),
        })?;
    Ok(child.id())
}

/// Runs `f` on a thread inside namespace `ns` (sockets it opens belong
/// to that namespace).
pub fn inside<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
    let path = Path::new("/run/netns").join(ns);
    let file = File::open(&path).map_err(io_error(&path))?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| LabError::Lab(format!("cannot enter namespace {ns}: {e}")))?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(LabError::Lab(format!("a probe in {ns} panicked"))))
    })
}

/// The processes inside namespace `ns`.
pub fn pids(ns: &str) -> Vec<u32> {
    run(&["ip", "netns", "pids", ns])
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Sends `signal` to process `pid` (quiet when it is gone).
pub fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// Puts `port` (in namespace `ns`) on `bridge`, up and isolated, as
/// `netvm host up` does for the ports it knows.
pub fn attach_isolated(ns: &str, port: &str, bridge: &str) -> Result<(), LabError> {
    run_in(ns, &["ip", "link", "set", port, "master", bridge, "up"])?;
    run_in(
        ns,
        &["bridge", "link", "set", "dev", port, "isolated", "on"],
    )?;
    Ok(())
}

/// Whether process `pid` is running (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// The first IPv4 address on `interface` inside `ns`, if any.
pub fn ipv4_on(ns: &str, interface: &str) -> Option<std::net::Ipv4Addr> {
    let out = run_in(ns, &["ip", "-4", "-o", "addr", "show", "dev", interface]).ok()?;
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
}
