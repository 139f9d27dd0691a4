//! `netvm lab up --vms qemu`: the same lab with the net-vm and the VMs as
//! QEMU virtual machines booting the Debian cloud kernel with the images
//! of [`crate::image`]. The host namespace holds the bridge and the TAPs
//! (`netvm host up`), and every QEMU; the net-vm's QEMU alone gets the
//! uplink: a TAP opened inside the upstream namespace and handed to QEMU
//! as a file descriptor, so the host never has it. What the guests see is
//! read from their serial consoles (`console-<vm>.log`).

use crate::image;
use crate::lab::{wait, Lab};
use crate::netns::{self, io_error, LabError};
use crate::plan::{Expected, UPSTREAM_IP};
use netvm_description::Mode;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a TCG guest may take to boot and lease.
const BOOT: Duration = Duration::from_secs(180);

/// One VM's boot.
#[derive(Debug, Clone, PartialEq)]
pub struct Boot {
    /// The VM.
    pub name: String,
    /// From starting QEMU to the first lease (host clock).
    pub to_lease: Duration,
    /// The guest's uptime at its first lease.
    pub guest_secs: Option<f64>,
}

/// The accelerator: `NETVM_LAB_ACCEL` if set, else TCG (a `/dev/kvm`
/// may exist without hardware virtualisation, and then a stock kernel
/// fails under it).
pub fn accelerator() -> String {
    std::env::var("NETVM_LAB_ACCEL").unwrap_or_else(|_| "tcg".to_owned())
}

/// The console log of `vm`.
pub fn console(lab: &Lab, vm: &str) -> PathBuf {
    lab.dir.join(format!("console-{vm}.log"))
}

/// The last `lines` lines of a console log, for an error.
pub fn console_tail(log: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The socket of `vm`'s control channel (a shell on its second serial
/// port).
pub fn control(lab: &Lab, vm: &str) -> PathBuf {
    lab.dir.join(format!("ctl-{vm}.sock"))
}

/// Runs `command` in `vm`'s shell; its output (stdout and stderr) and
/// exit status.
pub fn exec(
    lab: &Lab,
    vm: &str,
    command: &str,
    timeout: Duration,
) -> Result<(String, i32), LabError> {
    use std::io::{BufRead, BufReader, Write};
    let path = control(lab, vm);
    let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(io_error(&path))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(io_error(&path))?;
    let marker = "__netvm_lab_done_";
    writeln!(stream, "{command} 2>&1; echo {marker}$?").map_err(io_error(&path))?;
    let mut output = String::new();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => {
                return Err(LabError::Timeout(format!("`{command}` in {vm}")));
            }
            Ok(_) => {}
        }
        let clean = line.trim_end_matches(['\r', '\n']);
        if let Some(status) = clean
            .strip_prefix(marker)
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            return Ok((output, status));
        }
        output.push_str(clean);
        output.push('\n');
    }
}

/// The `netvm-lab:` lines of `vm`'s console.
pub fn reports(lab: &Lab, vm: &str) -> Vec<String> {
    std::fs::read_to_string(console(lab, vm))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.split_once("netvm-lab: ")
                .map(|(_, r)| r.trim().to_owned())
        })
        .collect()
}

/// The value after `key ` in `vm`'s first report starting with it.
pub fn report(lab: &Lab, vm: &str, key: &str) -> Option<String> {
    reports(lab, vm)
        .into_iter()
        .find_map(|r| r.strip_prefix(&format!("{key} ")).map(str::to_owned))
}

/// Starts QEMU for `name` in the lab's host namespace: its console
/// (first serial port) and control shell (second) in the lab's
/// directory, `extra` after everything else; its pid.
pub(crate) fn start(
    lab: &Lab,
    kernel: &image::Kernel,
    name: &str,
    memory: &str,
    initrd: &str,
    append: &str,
    extra: &[String],
) -> Result<u32, LabError> {
    let mut args: Vec<String> = [
        "qemu-system-x86_64",
        "-accel",
        &accelerator(),
        "-M",
        "q35",
        "-m",
        memory,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        &format!("file:{}", console(lab, name).display()),
        "-chardev",
        &format!(
            "socket,id=ctl,path={},server=on,wait=off",
            control(lab, name).display()
        ),
        "-serial",
        "chardev:ctl",
        "-kernel",
        &kernel.image.display().to_string(),
        "-initrd",
        initrd,
        "-append",
        append,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend_from_slice(extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    netns::daemon(
        &lab.plan.host,
        &refs,
        &lab.dir.join(format!("qemu-{name}.log")),
    )
}

/// The upstream's TAP, opened inside the upstream namespace and left
/// open across exec, for the QEMU that gets the uplink (`-netdev
/// tap,fd=N`): the host namespace never holds an interface on the
/// upstream.
pub(crate) fn uplink_tap(lab: &Lab) -> Result<std::fs::File, LabError> {
    let tap = netns::inside(&lab.plan.upstream, || {
        netvm_apply::open_tap(&lab.plan.upstream_if)
    })?
    .map_err(|e| LabError::Lab(netvm_runtime::error_chain(&e)))?;
    let flags = nix::fcntl::FdFlag::empty();
    nix::fcntl::fcntl(&tap, nix::fcntl::FcntlArg::F_SETFD(flags))
        .map_err(|e| LabError::Lab(format!("cannot pass the uplink TAP to QEMU: {e}")))?;
    Ok(tap)
}

/// Builds the QEMU lab (the upstream is started by the caller).
pub fn build(lab: &Lab) -> Result<Vec<Boot>, LabError> {
    if lab.plan.mode != Mode::Secure {
        return Err(LabError::Lab(
            "--vms qemu builds the secure scenario only (dev mode runs in namespaces)".to_owned(),
        ));
    }
    let kernel = image::find_kernel()?;
    let netvm_text = std::fs::read_to_string(lab.description_file())
        .map_err(io_error(&lab.description_file()))?;
    let vm_image = lab.dir.join("vm.cpio");
    let netvm_image = lab.dir.join("net-vm.cpio");
    std::fs::write(&vm_image, image::vm_image(&kernel)?).map_err(io_error(&vm_image))?;
    std::fs::write(
        &netvm_image,
        image::netvm_image(&kernel, &lab.netvm, &netvm_text)?,
    )
    .map_err(io_error(&netvm_image))?;

    // The host: bridge, TAPs and guards; a TAP for the VM the
    // description does not know.
    let host = &lab.plan.host;
    let file = lab.description_file().display().to_string();
    netns::run_in(
        host,
        &[&lab.netvm.display().to_string(), "host", "up", &file],
    )?;
    if let Some(extra) = lab.plan.vms.iter().find(|v| v.expected == Expected::Pool) {
        netns::run_in(
            host,
            &[
                "ip",
                "tuntap",
                "add",
                "dev",
                &extra.host_port,
                "mode",
                "tap",
            ],
        )?;
        netns::attach_isolated(host, &extra.host_port, &lab.plan.bridge)?;
    }
    let host_plan =
        netvm_plan::host::plan(&lab.system).map_err(|e| LabError::Lab(e.to_string()))?;
    let vmm_args = |vm: &str| {
        netvm_plan::vmm::args(&lab.system, &host_plan, vm, netvm_plan::vmm::Vmm::Qemu)
            .map_err(|e| LabError::Lab(e.to_string()))
    };

    // The net-vm, with the uplink opened in the upstream namespace.
    let uplink_tap = uplink_tap(lab)?;
    let fd = uplink_tap.as_raw_fd();
    let uplink_mac = lab
        .system
        .netvm
        .uplink()
        .mac
        .map(|m| format!(",mac={m}"))
        .unwrap_or_default();
    let mut extra = vmm_args(lab.system.netvm.name.as_str())?;
    extra.extend([
        "-netdev".to_owned(),
        format!("tap,id=uplink,fd={fd}"),
        "-device".to_owned(),
        format!("virtio-net-pci,netdev=uplink{uplink_mac}"),
    ]);
    let netvm_name = lab.system.netvm.name.to_string();
    start(
        lab,
        &kernel,
        &netvm_name,
        "512M",
        &netvm_image.display().to_string(),
        "console=ttyS0 panic=-1 quiet",
        &extra,
    )?;
    drop(uplink_tap);
    let netvm_started = Instant::now();
    let log = console(lab, &netvm_name);
    wait(BOOT, "the net-vm's agent to be ready", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("\"event\":\"ready\",\"internal\"") {
            return Some(Ok(()));
        }
        text.contains("netvm-lab: agent exited").then(|| {
            Err(LabError::Lab(format!(
                "the net-vm's agent stopped; see {}",
                log.display()
            )))
        })
    })??;

    let netvm_boot = Boot {
        name: format!("{netvm_name} (to agent ready)"),
        to_lease: netvm_started.elapsed(),
        guest_secs: None,
    };
    // The VMs check names and the Internet as soon as they are leased:
    // they start once the net-vm holds its uplink lease, so what they
    // report is the data plane, not the upstream's DHCP timing.
    wait(BOOT, "the net-vm's uplink lease", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("\"event\":\"uplink_bound\"").then_some(())
    })
    .map_err(|e| LabError::Lab(format!("{e}; the net-vm said:\n{}", console_tail(&log, 20))))?;

    // The VMs.
    let mut started = Vec::new();
    // Each VM resolves these once leased (row 2 of `lab test`).
    let mut names: Vec<String> = lab.plan.vms.iter().filter_map(|v| v.fqdn.clone()).collect();
    names.push(crate::plan::UPSTREAM_NAMES[0].to_owned());
    for vm in &lab.plan.vms {
        let ports: Vec<String> = vm.tcp_ports.iter().map(u16::to_string).collect();
        let append = format!(
            "console=ttyS0 panic=-1 quiet netvm.name={} netvm.ports={} netvm.names={} netvm.domain={} netvm.dns={} netvm.upstream={UPSTREAM_IP}",
            vm.name,
            ports.join(","),
            names.join(","),
            lab.plan.domain,
            lab.plan.netvm_ip
        );
        let extra = match vm.expected {
            Expected::Reserved(_) => vmm_args(&vm.name)?,
            Expected::Pool => vec![
                "-netdev".to_owned(),
                format!("tap,id=n0,ifname={},script=no,downscript=no", vm.host_port),
                "-device".to_owned(),
                format!("virtio-net-pci,netdev=n0,mac={}", vm.mac),
            ],
        };
        start(
            lab,
            &kernel,
            &vm.name,
            "192M",
            &vm_image.display().to_string(),
            &append,
            &extra,
        )?;
        started.push((vm.name.clone(), Instant::now()));
    }
    // Every VM's first lease, timed when its console first shows it.
    let mut boots: Vec<Boot> = Vec::new();
    let deadline = Instant::now() + BOOT;
    while boots.len() < started.len() {
        for (name, at) in &started {
            if boots.iter().any(|b| &b.name == name) {
                continue;
            }
            if let Some(lease) = report(lab, name, "lease") {
                boots.push(Boot {
                    name: name.clone(),
                    to_lease: at.elapsed(),
                    guest_secs: lease.rsplit(' ').next().and_then(|s| s.parse().ok()),
                });
            }
        }
        if Instant::now() >= deadline {
            let missing: Vec<&str> = started
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| !boots.iter().any(|b| b.name == *n))
                .collect();
            return Err(LabError::Timeout(format!("the leases of {missing:?}")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    boots.insert(0, netvm_boot);
    boots.sort_by(|a, b| {
        started
            .iter()
            .position(|(n, _)| *n == a.name)
            .cmp(&started.iter().position(|(n, _)| *n == b.name))
    });
    // The VMs check their names and the Internet once leased; each name
    // is asked for up to 60 s (see VM_CHECKS), so this only ends a lab
    // whose VMs stopped reporting.
    wait(Duration::from_secs(120), "every VM's own checks", || {
        lab.plan
            .vms
            .iter()
            .all(|vm| report(lab, &vm.name, "internet").is_some())
            .then_some(())
    })?;
    Ok(boots)
}
