//! The CLAT applier: makes a [`ClatPlan`] true and runs tayga on it.
//!
//! [`apply`] (each step with its command-line equivalent):
//! 1. leftovers of an earlier CLAT go: a tayga still running on our
//!    configuration file is stopped, `ip link del clat0`, and proxy-NDP
//!    entries on the uplink with clat6's interface identifier (an earlier
//!    prefix) are deleted;
//! 2. tayga's configuration is written and its data dir made;
//! 3. the persistent TUN (`ip tuntap add dev clat0 mode tun`; ioctls,
//!    netlink cannot make one), `ip link set clat0 mtu M up`,
//!    `ip addr replace 192.0.0.1/32 dev clat0`, the plan's routes
//!    (`ip route replace …`);
//! 4. the sysctls (`proxy_ndp=1` on the uplink) and
//!    `ip -6 neigh replace proxy CLAT6 dev UPLINK` (netlink, `NTF_PROXY`);
//! 5. `tayga -d -c CONFIG [-u USER -g GROUP -r]`, output appended to the
//!    caller's log, and a wait until it has attached (the TUN reports a
//!    carrier).
//!
//! The returned [`Clat`] owns tayga. [`Clat::remove`] (or dropping it)
//! undoes everything in reverse: tayga stopped (SIGTERM, then SIGKILL)
//! and reaped *first* — tayga 0.9.2 spins on read errors once its TUN
//! is gone — then the proxy entry, then `ip link del clat0`, which takes
//! the TUN's address and both routes with it. The uplink's `proxy_ndp`
//! stays 1 (harmless without entries). A failed apply undoes what it
//! did. A new prefix is applied by removing, then applying the new plan
//! ([`Clat::reapply`]).
//!
//! Netlink and `/proc/sys` act in the calling thread's network namespace,
//! and tayga starts in it. Like the rest of this crate, these functions
//! must not be called from inside a tokio runtime.
//!
//! tayga's own messages go to its stdout, which it buffers: they reach
//! the log when it exits (startup errors do) or every 4 KiB.

use crate::links::{connect, index_of, index_of_opt, link_named, refused, runtime, set_up};
use crate::sysctl::{self, SysctlError};
use crate::tap::{self, TapError};
use crate::LinkError;
use futures::TryStreamExt;
use netvm_plan::clat::{ClatPlan, ClatRoute};
use rtnetlink::packet_route::link::{LinkAttribute, State};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage,
};
use rtnetlink::packet_route::route::{RouteAttribute, RouteMetric, RouteScope};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};
use std::fs::OpenOptions;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The program started; a path, or a name looked up in `PATH`.
pub const TAYGA: &str = "tayga";

/// How long tayga gets to exit on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How often readiness and exit are polled.
const POLL: Duration = Duration::from_millis(20);

/// A step of the CLAT failed.
#[derive(Debug, thiserror::Error)]
pub enum ClatError {
    /// Links, addresses, routes or the proxy entry.
    #[error(transparent)]
    Links(#[from] LinkError),
    /// The TUN could not be made.
    #[error(transparent)]
    Tun(#[from] TapError),
    /// A kernel setting.
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    /// tayga's configuration or data dir could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The log could not be opened.
    #[error("cannot open tayga's log {}", path.display())]
    Log {
        /// The log.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// tayga could not be started (is the tayga package installed?).
    #[error("cannot start {TAYGA}")]
    Spawn(#[source] std::io::Error),
    /// tayga ended while starting; the end of its log says why.
    #[error("{TAYGA} exited ({status}) while starting: {log}")]
    Exited {
        /// How it ended.
        status: ExitStatus,
        /// The last lines of its log.
        log: String,
    },
    /// tayga did not attach to the TUN in time.
    #[error("{TAYGA} did not attach to {tun} within {waited:?}")]
    NotReady {
        /// The TUN.
        tun: String,
        /// How long it was given.
        waited: Duration,
    },
    /// tayga could not be signalled or reaped.
    #[error("cannot stop {TAYGA}")]
    Stop(#[source] std::io::Error),
}

/// Who tayga runs as once it has attached to its TUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// User name (`tayga -u`; a name, tayga looks it up).
    pub user: String,
    /// Group name (`tayga -g`; without it tayga keeps root's group).
    pub group: String,
}

/// Where the CLAT keeps its files and how tayga runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClatOptions {
    /// tayga's configuration file (written; its directory is made).
    pub config: PathBuf,
    /// tayga's stdout and stderr, appended.
    pub log: PathBuf,
    /// Normally `/proc/sys`.
    pub proc_sys: PathBuf,
    /// `Some`: tayga drops to this user and group and chroots to its
    /// data dir after attaching (`-u U -g G -r`). Needs root
    /// (CAP_SETUID, CAP_SETGID, CAP_SYS_CHROOT) when tayga starts.
    /// `None`: tayga keeps the caller's user and capabilities.
    pub sandbox: Option<Sandbox>,
    /// How long tayga may take to attach.
    pub ready_timeout: Duration,
}

/// A running CLAT: tayga and what was set up for it. Dropping it removes
/// everything, like [`Clat::remove`] but ignoring errors.
#[derive(Debug)]
pub struct Clat {
    plan: ClatPlan,
    options: ClatOptions,
    tayga: Option<Child>,
    removed: bool,
}

/// Sets up the CLAT of `plan` and starts tayga; see the module doc.
pub fn apply(plan: &ClatPlan, options: &ClatOptions) -> Result<Clat, ClatError> {
    stop_stale_tayga(&options.config);
    let mut clat = Clat {
        plan: plan.clone(),
        options: options.clone(),
        tayga: None,
        removed: false,
    };
    runtime()?.block_on(remove_links(plan, true))?;
    // From here on, a failure drops `clat`, which undoes what was done.
    write_files(plan, options)?;
    tap::ensure_tun(plan.tun.as_str())?;
    runtime()?.block_on(set_links(plan))?;
    sysctl::apply(&options.proc_sys, &plan.sysctls)?;
    if plan.proxy_ndp {
        runtime()?.block_on(add_proxy(plan))?;
    }
    clat.start()?;
    Ok(clat)
}

impl Clat {
    /// The plan this CLAT runs.
    pub fn plan(&self) -> &ClatPlan {
        &self.plan
    }

    /// tayga's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.tayga.as_ref().map(Child::id)
    }

    /// Supervision: `None` while tayga runs; if it has ended, it is
    /// reaped and started again, and how it ended is returned.
    pub fn supervise(&mut self) -> Result<Option<ExitStatus>, ClatError> {
        let Some(child) = self.tayga.as_mut() else {
            self.start()?;
            return Ok(None);
        };
        match child.try_wait().map_err(ClatError::Stop)? {
            None => Ok(None),
            Some(status) => {
                self.tayga = None;
                self.start()?;
                Ok(Some(status))
            }
        }
    }

    /// Replaces this CLAT by one for `plan` (a new prefix, say): this one
    /// removed, then `plan` applied with the same options. Never apply a
    /// second plan while a [`Clat`] lives: the new apply would take over
    /// its TUN, and dropping the old handle would then delete it.
    pub fn reapply(&mut self, plan: &ClatPlan) -> Result<(), ClatError> {
        self.teardown()?;
        let options = self.options.clone();
        *self = apply(plan, &options)?;
        Ok(())
    }

    /// Stops tayga and undoes the setup, in reverse order.
    pub fn remove(mut self) -> Result<(), ClatError> {
        self.teardown()
    }

    /// Starts tayga and waits until it has attached to the TUN.
    fn start(&mut self) -> Result<(), ClatError> {
        let options = &self.options;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&options.log)
            .map_err(|source| ClatError::Log {
                path: options.log.clone(),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| ClatError::Log {
            path: options.log.clone(),
            source,
        })?;
        let mut command = Command::new(TAYGA);
        command.arg("-d").arg("-c").arg(&options.config);
        if let Some(sandbox) = &options.sandbox {
            command.args(["-u", &sandbox.user, "-g", &sandbox.group, "-r"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(ClatError::Spawn)?;
        let child = self.tayga.insert(child);
        let deadline = Instant::now() + options.ready_timeout;
        let tun = self.plan.tun.as_str();
        let exited = runtime()?.block_on(async {
            let handle = connect()?;
            loop {
                if let Some(status) = child.try_wait().map_err(ClatError::Stop)? {
                    return Ok(Some(status));
                }
                if has_carrier(&handle, tun).await? {
                    return Ok(None);
                }
                if Instant::now() >= deadline {
                    return Err(ClatError::NotReady {
                        tun: tun.to_owned(),
                        waited: options.ready_timeout,
                    });
                }
                std::thread::sleep(POLL);
            }
        })?;
        match exited {
            None => Ok(()),
            Some(status) => {
                self.tayga = None;
                Err(ClatError::Exited {
                    status,
                    log: log_tail(&options.log),
                })
            }
        }
    }

    fn teardown(&mut self) -> Result<(), ClatError> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        let stopped = self.tayga.take().map(stop).transpose();
        let links = runtime()
            .map_err(ClatError::from)
            .and_then(|rt| Ok(rt.block_on(remove_links(&self.plan, false))?));
        stopped.and(links).map(|_| ())
    }
}

impl Drop for Clat {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// SIGTERM (tayga exits at once on it, flushing its log), SIGKILL after
/// [`STOP_GRACE`], and reaped either way.
fn stop(mut child: Child) -> Result<ExitStatus, ClatError> {
    if let Ok(pid) = i32::try_from(child.id()) {
        let pid = nix::unistd::Pid::from_raw(pid);
        // It may have ended already: reaping below tells.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().map_err(ClatError::Stop)? {
            return Ok(status);
        }
        std::thread::sleep(POLL);
    }
    child.kill().map_err(ClatError::Stop)?;
    child.wait().map_err(ClatError::Stop)
}

/// A tayga left running on `config` by an earlier agent (one that died
/// without stopping it) is killed: it would spin once its TUN goes.
fn stop_stale_tayga(config: &Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let wanted = config.as_os_str().as_encoded_bytes();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != TAYGA {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if cmdline.split(|b| *b == 0).any(|arg| arg == wanted) {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn write_files(plan: &ClatPlan, options: &ClatOptions) -> Result<(), ClatError> {
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| ClatError::Write { path, source }
    };
    let data_dir = Path::new(&plan.data_dir);
    std::fs::create_dir_all(data_dir).map_err(failed(data_dir))?;
    if let Some(dir) = options.config.parent() {
        std::fs::create_dir_all(dir).map_err(failed(dir))?;
    }
    std::fs::write(&options.config, &plan.tayga_config).map_err(failed(&options.config))
}

/// The last lines of the log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" / ")
}

/// Up with its MTU, its /32, and the routes.
async fn set_links(plan: &ClatPlan) -> Result<(), LinkError> {
    let handle = connect()?;
    let name = plan.tun.as_str();
    let index = index_of(&handle, name).await?;
    set_up(&handle, name, index, Some(plan.tun_mtu), None).await?;
    let host = plan.host_ipv4;
    handle
        .address()
        .add(index, IpAddr::V4(host), 32)
        .replace()
        .execute()
        .await
        .map_err(refused(
            format!("ip addr replace {host}/32 dev {name}"),
            name,
        ))?;
    for route in &plan.routes {
        let message = match *route {
            ClatRoute::Ipv4Default { metric, mtu } => {
                let mut message = RouteMessageBuilder::<Ipv4Addr>::new()
                    .output_interface(index)
                    .scope(RouteScope::Link)
                    .priority(metric)
                    .build();
                message
                    .attributes
                    .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(u32::from(
                        mtu,
                    ))]));
                message
            }
            ClatRoute::Ipv6Host(clat6) => RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(clat6, 128)
                .output_interface(index)
                .build(),
        };
        handle
            .route()
            .add(message)
            .replace()
            .execute()
            .await
            .map_err(refused(route.to_string(), name))?;
    }
    Ok(())
}

/// Whether `tun` has a carrier, i.e. tayga holds it open.
async fn has_carrier(handle: &Handle, tun: &str) -> Result<bool, LinkError> {
    let link = link_named(handle, tun).await?;
    Ok(link.is_some_and(|link| {
        link.attributes.iter().any(|a| {
            matches!(
                a,
                LinkAttribute::Carrier(1) | LinkAttribute::OperState(State::Up)
            )
        })
    }))
}

/// `ip -6 neigh replace proxy CLAT6 dev UPLINK`.
async fn add_proxy(plan: &ClatPlan) -> Result<(), LinkError> {
    let handle = connect()?;
    let uplink = plan.uplink.as_str();
    let index = index_of(&handle, uplink).await?;
    handle
        .neighbours()
        .add(index, IpAddr::V6(plan.clat6))
        .flags(NeighbourFlags::Proxy)
        .replace()
        .execute()
        .await
        .map_err(refused(
            format!("ip -6 neigh replace proxy {} dev {uplink}", plan.clat6),
            uplink,
        ))
}

/// The proxy entries on `index` (`ip -6 neigh show proxy dev UPLINK`).
async fn proxies(handle: &Handle, index: u32, uplink: &str) -> Result<Vec<Ipv6Addr>, LinkError> {
    let listed: Vec<NeighbourMessage> = handle
        .neighbours()
        .get()
        .proxies()
        .set_address_family(AddressFamily::Inet6)
        .execute()
        .try_collect()
        .await
        .map_err(refused(
            format!("ip -6 neigh show proxy dev {uplink}"),
            uplink,
        ))?;
    Ok(listed
        .into_iter()
        .filter(|m| m.header.ifindex == index)
        .filter_map(|m| {
            m.attributes.into_iter().find_map(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => Some(ip),
                _ => None,
            })
        })
        .collect())
}

/// Takes away the proxy entry and the TUN (with its address and
/// routes). `stale`: also every proxy entry on the uplink with clat6's
/// interface identifier, whatever its prefix. Missing pieces are fine.
async fn remove_links(plan: &ClatPlan, stale: bool) -> Result<(), LinkError> {
    let handle = connect()?;
    let uplink = plan.uplink.as_str();
    if plan.proxy_ndp || stale {
        if let Some(index) = index_of_opt(&handle, uplink).await? {
            let iid = u128::from(plan.clat6) & u128::from(u64::MAX);
            let mut gone: Vec<Ipv6Addr> = if stale {
                proxies(&handle, index, uplink)
                    .await?
                    .into_iter()
                    .filter(|ip| u128::from(*ip) & u128::from(u64::MAX) == iid)
                    .collect()
            } else {
                vec![plan.clat6]
            };
            gone.dedup();
            for ip in gone {
                del_proxy(&handle, index, uplink, ip).await?;
            }
        }
    }
    let tun = plan.tun.as_str();
    if let Some(index) = index_of_opt(&handle, tun).await? {
        match handle.link().del(index).execute().await {
            Ok(()) => {}
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {}
            Err(e) => return Err(refused(format!("ip link del {tun}"), tun)(e)),
        }
    }
    Ok(())
}

/// `ip -6 neigh del proxy IP dev UPLINK`; an entry already gone is fine.
async fn del_proxy(
    handle: &Handle,
    index: u32,
    uplink: &str,
    ip: Ipv6Addr,
) -> Result<(), LinkError> {
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Inet6;
    message.header.ifindex = index;
    message.header.flags = NeighbourFlags::Proxy;
    message
        .attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)));
    match handle.neighbours().del(message).execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENOENT => Ok(()),
        Err(e) => Err(refused(
            format!("ip -6 neigh del proxy {ip} dev {uplink}"),
            uplink,
        )(e)),
    }
}
