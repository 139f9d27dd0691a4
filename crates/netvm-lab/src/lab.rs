//! `netvm lab up` and `netvm lab down`: builds the planned namespaces and
//! starts what runs in them, using netvm's own commands for its parts
//! (`netvm host up` in the host, `netvm agent` in the net-vm); removes
//! everything again, also after a crash (what runs is found through the
//! namespaces, not through files that may be stale).
//!
//! A lab's files live in `/run/netvm-lab/<id>/`: the description, the
//! plan (`lab.json`), logs, the agent's lease journal and control socket.

use crate::netns::{self, io_error, LabError};
use crate::plan::{self, LabPlan, UPSTREAM_IP, UPSTREAM_NAMES, UPSTREAM_PREFIX};
use crate::upstream::Flavour;
use netvm_description::{Mode, System};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where labs keep their files.
pub const ROOT: &str = "/run/netvm-lab";
/// Lab ids tried when none is given.
const IDS: std::ops::Range<u32> = 0..100;

/// The embedded default system (secure mode).
pub const DEFAULT_SECURE: &str = include_str!("default-secure.toml");
/// The embedded default system (development mode).
pub const DEFAULT_DEV: &str = include_str!("default-dev.toml");

/// A lab that is up.
#[derive(Debug, Clone)]
pub struct Lab {
    /// What it is made of.
    pub plan: LabPlan,
    /// The description.
    pub system: System,
    /// Its files.
    pub dir: PathBuf,
    /// The netvm binary.
    pub netvm: PathBuf,
    /// Whether the net-vm and the VMs are QEMU virtual machines (their
    /// reports come from their consoles).
    pub qemu: bool,
    /// Whether the host is a QEMU VM passing its NIC to a nested Net VM
    /// (`--vms passthrough`; `qemu` is set too).
    pub passthrough: bool,
    /// QEMU mode: each VM's boot to its first lease (passthrough: each
    /// stage).
    pub boots: Vec<crate::qemu::Boot>,
}

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The description (the embedded default when `None`).
    pub file: Option<PathBuf>,
    /// Which embedded default.
    pub mode: Mode,
    /// The lab id (the first free one when `None`).
    pub id: Option<u32>,
    /// The netvm binary the lab runs.
    pub netvm: PathBuf,
    /// QEMU virtual machines instead of namespaces for the net-vm and VMs.
    pub qemu: bool,
    /// The host as a QEMU VM passing its NIC to a nested Net VM.
    pub passthrough: bool,
    /// Passthrough with no FILE: a USB NIC instead of a PCI one.
    pub usb_nic: bool,
    /// What the upstream offers ([`crate::upstream::DEFAULT`] unless told).
    pub upstream: Flavour,
}

fn dir_of(id: u32) -> PathBuf {
    Path::new(ROOT).join(id.to_string())
}

/// The description a lab keeps in `dir` (JSON if it was given JSON).
fn description_in(dir: &Path) -> PathBuf {
    let json = dir.join("system.json");
    if json.exists() {
        json
    } else {
        dir.join("system.toml")
    }
}

/// Claims a lab id: its directory is created atomically.
fn claim(id: Option<u32>) -> Result<u32, LabError> {
    let root = Path::new(ROOT);
    std::fs::create_dir_all(root).map_err(io_error(root))?;
    let free = |id: u32| {
        netns::list(&plan::prefix(id)).is_empty() && std::fs::create_dir(dir_of(id)).is_ok()
    };
    match id {
        Some(id) if free(id) => Ok(id),
        Some(id) => Err(LabError::Lab(format!(
            "lab {id} exists (or left namespaces behind): `netvm lab down --id {id}` first"
        ))),
        None => IDS
            .clone()
            .find(|id| free(*id))
            .ok_or_else(|| LabError::Lab("no free lab id below 100".to_owned())),
    }
}

/// The description text and its file name in the lab's directory.
fn description(options: &UpOptions) -> Result<(String, &'static str), LabError> {
    match &options.file {
        None if options.passthrough => Ok((passthrough_default(options.usb_nic), "system.toml")),
        None => Ok((
            match options.mode {
                Mode::Dev => DEFAULT_DEV.to_owned(),
                _ => DEFAULT_SECURE.to_owned(),
            },
            "system.toml",
        )),
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(io_error(file))?;
            let json = file.extension().is_some_and(|e| e == "json");
            Ok((text, if json { "system.json" } else { "system.toml" }))
        }
    }
}

/// The uplink of the embedded secure default.
const DEFAULT_UPLINK: &str = "[netvm.uplink]\ninterface = \"wan0\"\nmac = \"02:ad:00:00:fe:01\"\n";

/// The embedded secure default with the passthrough lab's hardware as
/// its uplink: the host VM's NIC in slot 3, found in the Net VM by its
/// vendor:device; with `usb`, QEMU's USB NIC by vendor:product.
pub fn passthrough_default(usb: bool) -> String {
    let uplink = if usb {
        format!(
            "[netvm.uplink]\n# The host VM's USB NIC, passed to the Net VM.\nusb = \"{}\"\n",
            crate::passthrough::USB_NIC_ID
        )
    } else {
        format!(
            "[netvm.uplink]\n# The host VM's virtio NIC, passed through to the Net VM.\npci = \"0000:00:03.0\"\npci_id = \"{}\"\n",
            crate::passthrough::NIC_ID
        )
    };
    DEFAULT_SECURE.replace(DEFAULT_UPLINK, &uplink)
}

/// Builds a lab; on any failure everything built so far is removed.
pub fn up(options: &UpOptions) -> Result<Lab, LabError> {
    let (text, name) = description(options)?;
    let format = netvm_description::Format::from_file_name(name);
    let origin = options
        .file
        .as_ref()
        .map_or("the embedded default".to_owned(), |f| {
            f.display().to_string()
        });
    let system = netvm_description::parse(&origin, &text, format)
        .map_err(|e| LabError::Lab(e.to_string()))?;
    let id = claim(options.id)?;
    let dir = dir_of(id);
    let lab = (|| {
        let plan = plan::plan_with(&system, id, options.upstream)
            .map_err(|e| LabError::Lab(e.to_string()))?;
        let file = dir.join(name);
        std::fs::write(&file, &text).map_err(io_error(&file))?;
        let mut lab = Lab {
            plan,
            system: system.clone(),
            dir: dir.clone(),
            netvm: options.netvm.clone(),
            qemu: options.qemu || options.passthrough,
            passthrough: options.passthrough,
            boots: Vec::new(),
        };
        lab.save()?;
        if options.passthrough {
            for marker in ["qemu", "passthrough"] {
                let marker = dir.join(marker);
                std::fs::write(&marker, "").map_err(io_error(&marker))?;
            }
            start_upstream(&lab)?;
            lab.boots = crate::passthrough::build(&lab)?;
        } else if options.qemu {
            let marker = dir.join("qemu");
            std::fs::write(&marker, "").map_err(io_error(&marker))?;
            start_upstream(&lab)?;
            lab.boots = crate::qemu::build(&lab)?;
        } else {
            build(&lab)?;
        }
        Ok(lab)
    })();
    if lab.is_err() && std::env::var_os("NETVM_LAB_KEEP").is_none() {
        down(id);
    }
    lab
}

impl Lab {
    /// The description file in the lab's directory.
    pub fn description_file(&self) -> PathBuf {
        description_in(&self.dir)
    }

    /// The agent's control socket.
    pub fn control(&self) -> PathBuf {
        self.dir.join("agent.sock")
    }

    fn save(&self) -> Result<(), LabError> {
        let path = self.dir.join("lab.json");
        let text = serde_json::to_string_pretty(&self.plan).unwrap_or_default();
        std::fs::write(&path, text).map_err(io_error(&path))
    }

    fn netvm_bin(&self) -> String {
        self.netvm.display().to_string()
    }

    /// Starts the agent in the net-vm and waits until it is ready.
    pub fn start_agent(&self) -> Result<(), LabError> {
        let log = self.dir.join("agent.log");
        let _ = std::fs::remove_file(self.control());
        // The log is appended to: only what this start writes counts.
        let skip = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
        let pid = netns::daemon(
            &self.plan.netvm,
            &[
                &self.netvm_bin(),
                "agent",
                &self.description_file().display().to_string(),
                "--journal",
                &self.dir.join("leases").display().to_string(),
                "--control",
                &self.control().display().to_string(),
            ],
            &log,
        )?;
        wait(Duration::from_secs(30), "the agent to be ready", || {
            let all = std::fs::read_to_string(&log).unwrap_or_default();
            let text = all.get(skip..).unwrap_or_default();
            if text.contains("\"event\":\"ready\",\"internal\"") {
                return Some(Ok(()));
            }
            (!netns::alive(pid)).then(|| {
                Err(LabError::Lab(format!(
                    "the agent stopped; its log ({}):\n{}",
                    log.display(),
                    tail(text, 12)
                )))
            })
        })?
    }

    /// `vm`'s address: in QEMU mode as its console reported its lease.
    pub fn vm_address(&self, vm: &crate::plan::VmNode) -> Option<std::net::Ipv4Addr> {
        if self.qemu {
            crate::qemu::report(self, &vm.name, "lease")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        } else {
            self.address_of(&vm.ns)
        }
    }

    /// The VM's current IPv4 address on eth0, if any.
    pub fn address_of(&self, ns: &str) -> Option<std::net::Ipv4Addr> {
        netns::ipv4_on(ns, "eth0")
    }

    /// Starts (or restarts) the DHCP client in `ns`.
    pub fn start_dhcp_client(&self, ns: &str, hostname: &str) -> Result<(), LabError> {
        let log = self.dir.join(format!("udhcpc-{ns}.log"));
        netns::daemon(
            ns,
            &[
                "udhcpc",
                "-i",
                "eth0",
                "-f",
                "-t",
                "30",
                "-T",
                "1",
                "-A",
                "2",
                "-x",
                &format!("hostname:{hostname}"),
            ],
            &log,
        )?;
        Ok(())
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `check` every 100 ms until it returns something or `timeout`.
pub fn wait<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, LabError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(done) = check() {
            return Ok(done);
        }
        if Instant::now() >= deadline {
            return Err(LabError::Timeout(what.to_owned()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates the lab's namespaces: all of them with the veths between
/// them, or (QEMU mode) the upstream, with a TAP as its interface, and
/// the host; then starts the upstream of the plan's flavour
/// ([`crate::upstream::start`]).
fn start_upstream(lab: &Lab) -> Result<(), LabError> {
    let plan = &lab.plan;
    if lab.qemu {
        for ns in [&plan.upstream, &plan.host] {
            netns::create(ns)?;
        }
        let up = &plan.upstream;
        netns::run_in(
            up,
            &[
                "ip",
                "tuntap",
                "add",
                "dev",
                &plan.upstream_if,
                "mode",
                "tap",
            ],
        )?;
        netns::run_in(up, &["ip", "link", "set", &plan.upstream_if, "up"])?;
    } else {
        for ns in plan.namespaces() {
            netns::create(&ns)?;
        }
        for veth in &plan.veths {
            netns::veth(veth)?;
        }
    }
    crate::upstream::start(plan, &lab.dir, &lab.netvm)
}

/// Brings up only the upstream of lab `id` (with `flavour`), and the
/// net-vm's namespace holding the far end of the uplink (`eth9`, the
/// embedded secure default's uplink MAC) and nothing else: no host,
/// agent or VMs. A client put there meets the upstream exactly as the
/// net-vm would (the upstream flavour tests). `lab down` removes it.
pub fn up_upstream(id: u32, flavour: Flavour, netvm: &Path) -> Result<Lab, LabError> {
    let system = netvm_description::parse(
        "the embedded default",
        DEFAULT_SECURE,
        netvm_description::Format::Toml,
    )
    .map_err(|e| LabError::Lab(e.to_string()))?;
    let id = claim(Some(id))?;
    let dir = dir_of(id);
    let lab = (|| {
        let plan =
            plan::plan_with(&system, id, flavour).map_err(|e| LabError::Lab(e.to_string()))?;
        let file = dir.join("system.toml");
        std::fs::write(&file, DEFAULT_SECURE).map_err(io_error(&file))?;
        let lab = Lab {
            plan,
            system: system.clone(),
            dir: dir.clone(),
            netvm: netvm.to_owned(),
            qemu: false,
            passthrough: false,
            boots: Vec::new(),
        };
        lab.save()?;
        let plan = &lab.plan;
        let uplink = plan
            .veths
            .iter()
            .find(|v| v.a.ns == plan.upstream && v.b.ns == plan.netvm)
            .ok_or_else(|| LabError::Lab("the plan has no uplink veth".to_owned()))?;
        for ns in [&plan.upstream, &plan.netvm] {
            netns::create(ns)?;
        }
        netns::veth(uplink)?;
        crate::upstream::start(plan, &lab.dir, &lab.netvm)?;
        Ok(lab)
    })();
    if lab.is_err() && std::env::var_os("NETVM_LAB_KEEP").is_none() {
        down(id);
    }
    lab
}

fn build(lab: &Lab) -> Result<(), LabError> {
    start_upstream(lab)?;
    let plan = &lab.plan;
    let netvm = lab.netvm_bin();

    // The host: dev mode keeps an uplink address and route; then netvm's
    // own host side (bridge, isolated ports, layer-2 guards); then the
    // extra VM's port, which the description does not know.
    let host = &plan.host;
    if let Some(uplink) = &plan.host_uplink {
        let cidr = format!("{}/{UPSTREAM_PREFIX}", plan::HOST_DEV_IP);
        netns::run_in(host, &["ip", "addr", "add", &cidr, "dev", uplink])?;
        netns::run_in(
            host,
            &[
                "ip",
                "route",
                "add",
                "default",
                "via",
                &UPSTREAM_IP.to_string(),
            ],
        )?;
    }
    let file = lab.description_file().display().to_string();
    netns::run_in(host, &[&netvm, "host", "up", &file])?;
    if let Some(extra) = plan.vms.iter().find(|v| v.expected == plan::Expected::Pool) {
        netns::attach_isolated(host, &extra.host_port, &plan.bridge)?;
    }

    // The net-vm.
    lab.start_agent()?;

    // The VMs: a service and a DHCP client each (and a DHCPv6 client,
    // dhclient -6 and dhcpcd in turn, when the network has IPv6).
    for (index, vm) in plan.vms.iter().enumerate() {
        let ports: Vec<String> = vm.tcp_ports.iter().map(u16::to_string).collect();
        let mut args = vec![netvm.as_str(), "lab", "serve", vm.name.as_str()];
        for p in &ports {
            args.extend_from_slice(&["--port", p]);
        }
        if plan.ipv6 {
            args.push("--ipv6");
        }
        netns::daemon(
            &vm.ns,
            &args,
            &lab.dir.join(format!("serve-{}.log", vm.name)),
        )?;
        lab.start_dhcp_client(&vm.ns, &vm.name)?;
        if plan.ipv6 {
            crate::ipv6::start_client(&lab.dir, &vm.ns, crate::ipv6::Dhcp6Client::for_vm(index))?;
        }
    }
    wait(Duration::from_secs(40), "every VM's lease", || {
        plan.vms
            .iter()
            .all(|vm| lab.address_of(&vm.ns).is_some())
            .then_some(())
    })?;
    if plan.ipv6 {
        wait(Duration::from_secs(40), "every VM's DHCPv6 lease", || {
            plan.vms
                .iter()
                .all(|vm| crate::ipv6::ipv6_on(&vm.ns, "eth0").is_some())
                .then_some(())
        })?;
    }
    // Up means usable: a VM resolves an upstream name through the net-vm
    // (so the uplink has its lease and DNS its upstreams).
    let first = plan.vms.first().map(|v| v.ns.clone()).unwrap_or_default();
    wait(
        Duration::from_secs(40),
        "the uplink and upstream DNS",
        || {
            netns::inside(&first, || {
                crate::probe::resolve(plan.netvm_ip, UPSTREAM_NAMES[0], Duration::from_millis(500))
            })
            .ok()
            .filter(|found| found.contains(&plan.upstream_flavour.http_ipv4()))
            .map(|_| ())
        },
    )
}

/// Finds lab `id` (or the only lab when `None`).
pub fn find(id: Option<u32>, netvm: &Path) -> Result<Lab, LabError> {
    let id = match id {
        Some(id) => id,
        None => {
            let ids = existing();
            match ids.as_slice() {
                [one] => *one,
                [] => {
                    return Err(LabError::Lab(
                        "no lab is up: `netvm lab up` first".to_owned(),
                    ))
                }
                _ => {
                    return Err(LabError::Lab(format!(
                        "labs {ids:?} are up: say which with --id"
                    )))
                }
            }
        }
    };
    let dir = dir_of(id);
    let file = description_in(&dir);
    if !file.exists() {
        return Err(LabError::Lab(format!(
            "lab {id} is not up (no {})",
            file.display()
        )));
    }
    // The plan is a pure function of the description and the id.
    let system = netvm_description::load(&file).map_err(|e| LabError::Lab(e.to_string()))?;
    let plan = plan::plan_with(&system, id, flavour_in(&dir)?)
        .map_err(|e| LabError::Lab(e.to_string()))?;
    let qemu = dir.join("qemu").exists();
    let passthrough = dir.join("passthrough").exists();
    Ok(Lab {
        plan,
        system,
        dir,
        netvm: netvm.to_owned(),
        qemu,
        passthrough,
        boots: Vec::new(),
    })
}

/// The upstream flavour lab.json records (labs from before the flavours
/// have none: `ipv4`).
fn flavour_in(dir: &Path) -> Result<Flavour, LabError> {
    let path = dir.join("lab.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Flavour::Ipv4);
    };
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| LabError::Lab(format!("{}: {e}", path.display())))?;
    match json.get("upstream_flavour").and_then(|f| f.as_str()) {
        None => Ok(Flavour::Ipv4),
        Some(name) => name
            .parse()
            .map_err(|e| LabError::Lab(format!("{}: {e}", path.display()))),
    }
}

/// The ids of labs with files or namespaces.
pub fn existing() -> Vec<u32> {
    let mut ids: Vec<u32> = std::fs::read_dir(ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for ns in netns::list("nvl") {
        if let Some(id) = ns
            .strip_prefix("nvl")
            .and_then(|r| r.split('-').next())
            .and_then(|n| n.parse().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Removes lab `id`: every process in its namespaces, the namespaces
/// (and with them every link), its files. What was already gone is
/// skipped; a second call does nothing.
pub fn down(id: u32) -> Vec<String> {
    let mut removed = Vec::new();
    let namespaces = netns::list(&plan::prefix(id));
    for ns in &namespaces {
        for pid in netns::pids(ns) {
            netns::signal(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && namespaces.iter().any(|ns| !netns::pids(ns).is_empty()) {
        std::thread::sleep(Duration::from_millis(100));
    }
    for ns in &namespaces {
        for pid in netns::pids(ns) {
            netns::signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
        netns::delete(ns);
        removed.push(ns.clone());
    }
    let dir = dir_of(id);
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        removed.push(dir.display().to_string());
    }
    removed
}
