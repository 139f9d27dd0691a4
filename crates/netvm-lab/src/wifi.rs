//! The Wi-Fi lab: one QEMU guest (TCG) booting Debian's full kernel
//! with `mac80211_hwsim` ([`crate::wifi_image`]), whose simulated radios
//! hear each other. A test puts each radio's phy into a network
//! namespace of the guest ([`WifiLab::radio_to_netns`]), runs an access
//! point on one ([`WifiLab::start_ap`]: hostapd, WPA2-PSK with CCMP, on
//! [`AP_ADDRESS`]; [`WifiLab::serve`]: dnsmasq's DHCP and DNS and busybox
//! httpd behind it) and a station on another, and drives the guest
//! through the control shell on its second serial port
//! ([`WifiLab::run`], [`WifiLab::must`], [`WifiLab::spawn`] for
//! background processes whose output lands in files of the guest).
//!
//! The guest has no network device: nothing it does leaves it. Its
//! files on this machine (image, console, control socket, QEMU's log,
//! the transcript of every command) are in a directory of its own under
//! `$TMPDIR/netvm-wifi/`; dropping the [`WifiLab`] (also while a failed
//! test unwinds) kills QEMU and removes them, and a lab whose test
//! process died is removed by the next [`WifiLab::boot`].

use crate::image;
use crate::lab::wait;
use crate::netns::{io_error, LabError};
use crate::wifi_image::{self, RUN_DIR};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The access point's address on its radio.
pub const AP_ADDRESS: &str = "10.77.0.1";
/// The access point's subnet.
pub const AP_SUBNET: &str = "10.77.0.0/24";
/// The addresses its DHCP server leases.
pub const DHCP_RANGE: (&str, &str) = ("10.77.0.100", "10.77.0.199");
/// A name the access point's DNS server answers (with [`AP_ADDRESS`]).
pub const AP_NAME: &str = "ap.wifi.lab";

/// iproute2's `ip` in the guest, by its path: the shell runs busybox's
/// applet for a bare `ip`, which has no `netns` or `-n`.
pub const IP: &str = "/usr/sbin/ip";

/// How long the guest may take to boot to its shell.
const BOOT: Duration = Duration::from_secs(180);
/// A command's default time limit.
const COMMAND: Duration = Duration::from_secs(60);
/// How long hostapd may take to enable its access point.
const AP_START: Duration = Duration::from_secs(60);
/// The guest's memory.
const MEMORY: &str = "512M";

/// A process running in the background in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Background {
    /// Its name (its output is `/run/wifi/<name>.log`).
    pub name: String,
    /// Its pid in the guest.
    pub pid: u32,
    /// The file in the guest with its standard output and error.
    pub log: String,
}

/// An access point to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApConfig {
    /// The namespace holding its radio.
    pub ns: String,
    /// Its radio's interface in that namespace.
    pub interface: String,
    /// The SSID (1 to 32 bytes).
    pub ssid: String,
    /// The WPA2 passphrase (8 to 63 printable ASCII characters).
    pub passphrase: String,
    /// The 2.4 GHz channel (1 to 11).
    pub channel: u8,
}

/// An access point that runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ap {
    /// What it was started with.
    pub config: ApConfig,
    /// hostapd's control socket directory in the guest.
    pub ctrl_dir: String,
    /// hostapd.
    pub hostapd: Background,
    /// What [`WifiLab::serve`] started: dnsmasq and httpd.
    pub services: Vec<Background>,
}

impl Ap {
    /// What the access point's HTTP service answers for `/`.
    pub fn http_body(&self) -> String {
        format!("wifi-ap {}", self.config.ns)
    }
}

/// The Wi-Fi guest, up.
pub struct WifiLab {
    dir: PathBuf,
    qemu: Child,
    boot: Duration,
    /// Every command with its output, status and time; held while a
    /// command runs, so commands from several threads take turns.
    transcript: Mutex<std::fs::File>,
    commands: AtomicU32,
}

/// Where labs keep their files on this machine.
fn root() -> PathBuf {
    std::env::temp_dir().join("netvm-wifi")
}

/// The guest's kernel command line: beyond the console, no crypto
/// self-tests, no zeroing of allocated pages, no mitigations, audit or
/// AppArmor (what a TCG boot spends its time on).
fn cmdline() -> String {
    let tsc = crate::passthrough::tsc_khz()
        .map(|k| format!(" tsc_early_khz={k}"))
        .unwrap_or_default();
    format!("console=ttyS0 panic=-1 quiet cryptomgr.notests init_on_alloc=0 mitigations=off audit=0 apparmor=0{tsc}")
}

/// `text` as one shell word.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `command` run in namespace `ns` of the guest (iproute2's `ip netns
/// exec`), as one shell command line.
pub fn in_netns(ns: &str, command: &str) -> String {
    format!("{IP} netns exec {} sh -c {}", quote(ns), quote(command))
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether process `pid` of this machine runs.
fn alive(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
}

/// Removes labs whose test process is gone: kills their QEMU (the one
/// whose command line names the lab's directory) and deletes their files.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(root()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let owner = name.split('-').next().unwrap_or_default();
        if owner.is_empty() || alive(owner) {
            continue;
        }
        let dir = entry.path();
        let qemu = std::fs::read_to_string(dir.join("qemu.pid")).unwrap_or_default();
        let qemu = qemu.trim();
        let cmdline = std::fs::read(Path::new("/proc").join(qemu).join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .unwrap_or_default();
        if !qemu.is_empty() && cmdline.contains(&dir.display().to_string()) {
            let _ = Command::new("kill").args(["-9", qemu]).status();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A new directory for a lab of this process.
fn claim_dir() -> Result<PathBuf, LabError> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let root = root();
    std::fs::create_dir_all(&root).map_err(io_error(&root))?;
    loop {
        let dir = root.join(format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(&dir)(e)),
        }
    }
}

/// Why this machine cannot run the lab (the kernel or a program is
/// missing), with the line that installs what it lacks; `None` when it can.
pub fn unavailable() -> Option<String> {
    let install = "apt-get install -y linux-image-amd64 hostapd iw wpasupplicant";
    if wifi_image::find_kernel().is_err() {
        return Some(format!(
            "no kernel in /boot has {} (the cloud kernel has no Wi-Fi stack): {install}",
            wifi_image::HWSIM
        ));
    }
    let missing = wifi_image::missing_tools();
    if !missing.is_empty() {
        return Some(format!(
            "missing {}: {install} iproute2 nftables dnsmasq-base",
            missing.join(", ")
        ));
    }
    let qemu = "qemu-system-x86_64";
    if wifi_image::tool(qemu).is_none() {
        return Some(format!("no {qemu}: apt-get install -y qemu-system-x86"));
    }
    None
}

impl WifiLab {
    /// Builds the image (with `netvm` at `/usr/bin/netvm` when given),
    /// boots it and returns once its control shell answers.
    pub fn boot(netvm: Option<&Path>) -> Result<WifiLab, LabError> {
        remove_stale();
        let kernel = wifi_image::find_kernel()?;
        let dir = claim_dir()?;
        let started = (|| {
            let initrd = dir.join("wifi.cpio");
            std::fs::write(&initrd, wifi_image::wifi_image(&kernel, netvm)?)
                .map_err(io_error(&initrd))?;
            let path = dir.join("commands.txt");
            let transcript = std::fs::File::create(&path).map_err(io_error(&path))?;
            Ok((
                start_qemu(&dir, &kernel, &initrd)?,
                Instant::now(),
                transcript,
            ))
        })();
        let (qemu, at, transcript) = match started {
            Ok(started) => started,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        // From here on, dropping the lab stops QEMU and removes `dir`.
        let mut lab = WifiLab {
            dir,
            qemu,
            boot: Duration::ZERO,
            transcript: Mutex::new(transcript),
            commands: AtomicU32::new(0),
        };
        lab.wait_boot()?;
        lab.boot = at.elapsed();
        Ok(lab)
    }

    /// Waits for `/init` to report, then for the shell to answer cleanly
    /// (its banner, and input sent before it read, behind us).
    fn wait_boot(&mut self) -> Result<(), LabError> {
        let console = self.console();
        let qemu = &mut self.qemu;
        let log = self.dir.join("qemu.log");
        wait(BOOT, "the Wi-Fi guest to boot", || {
            if std::fs::read_to_string(&console)
                .unwrap_or_default()
                .contains("netvm-wifi: up at")
            {
                return Some(Ok(()));
            }
            match qemu.try_wait() {
                Ok(Some(status)) => Some(Err(LabError::Lab(format!(
                    "QEMU exited ({status}): {}\nconsole:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default().trim(),
                    tail(&std::fs::read_to_string(&console).unwrap_or_default(), 20)
                )))),
                _ => None,
            }
        })
        .map_err(|e| {
            LabError::Lab(format!(
                "{e}; its console:\n{}",
                tail(&self.console_text(), 20)
            ))
        })??;
        wait(Duration::from_secs(30), "the Wi-Fi guest's shell", || {
            self.run_for("echo ok", Duration::from_secs(3))
                .ok()
                .filter(|(out, status)| *status == 0 && out.trim() == "ok")
        })?;
        Ok(())
    }

    /// From QEMU's start to the shell answering.
    pub fn boot_time(&self) -> Duration {
        self.boot
    }

    /// The lab's directory on this machine.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The guest's console log (the kernel's messages, `/init`'s lines).
    pub fn console(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    /// What the console says so far.
    pub fn console_text(&self) -> String {
        std::fs::read_to_string(self.console()).unwrap_or_default()
    }

    /// Runs `command` (a shell command line) in the guest; its output
    /// (stdout and stderr) and exit status. Times out after 60 s.
    pub fn run(&self, command: &str) -> Result<(String, i32), LabError> {
        self.run_for(command, COMMAND)
    }

    /// Runs `command`, which must exit 0; its output.
    pub fn must(&self, command: &str) -> Result<String, LabError> {
        let (out, status) = self.run(command)?;
        if status != 0 {
            return Err(LabError::Lab(format!(
                "in the Wi-Fi guest, `{command}` exited {status}:\n{}",
                out.trim_end()
            )));
        }
        Ok(out)
    }

    /// [`WifiLab::run`] with a time limit for the command's output.
    pub fn run_for(&self, command: &str, timeout: Duration) -> Result<(String, i32), LabError> {
        let mut transcript = self.transcript.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let n = self.commands.fetch_add(1, Ordering::Relaxed);
        let result = exec(&self.dir.join("ctl.sock"), command, n, timeout);
        let took = started.elapsed().as_secs_f64();
        let _ = match &result {
            Ok((out, status)) => {
                write!(
                    transcript,
                    "# {took:.1} s, exit {status}\n$ {command}\n{out}\n"
                )
            }
            Err(e) => write!(transcript, "# {took:.1} s, {e}\n$ {command}\n\n"),
        };
        result
    }

    /// Writes `contents` to `path` in the guest (in pieces the serial
    /// line takes; any bytes).
    pub fn write_file(&self, path: &str, contents: &[u8]) -> Result<(), LabError> {
        let encoded = base64(contents);
        self.must(&format!(": > {}", quote(path)))?;
        for chunk in encoded.as_bytes().chunks(3000) {
            let chunk = String::from_utf8_lossy(chunk);
            self.must(&format!("echo {chunk} | base64 -d >> {}", quote(path)))?;
        }
        Ok(())
    }

    /// Starts `command` in the background in the guest, in namespace
    /// `ns` if given; its standard output and error go to
    /// `/run/wifi/<name>.log` (truncated first).
    pub fn spawn(
        &self,
        name: &str,
        ns: Option<&str>,
        command: &str,
    ) -> Result<Background, LabError> {
        let log = format!("{RUN_DIR}/{name}.log");
        let inner = format!("exec {command}");
        let line = match ns {
            Some(ns) => in_netns(ns, &inner),
            None => format!("sh -c {}", quote(&inner)),
        };
        let out = self.must(&format!(
            "{line} > {} 2>&1 < /dev/null & echo $!",
            quote(&log)
        ))?;
        let pid = out
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| LabError::Lab(format!("no pid from starting {name}: {out}")))?;
        Ok(Background {
            name: name.to_owned(),
            pid,
            log,
        })
    }

    /// What `process` has written so far.
    pub fn output(&self, process: &Background) -> Result<String, LabError> {
        Ok(self.run(&format!("cat {}", quote(&process.log)))?.0)
    }

    /// Whether `process` still runs.
    pub fn running(&self, process: &Background) -> Result<bool, LabError> {
        Ok(self.run(&format!("kill -0 {}", process.pid))?.1 == 0)
    }

    /// Stops `process` (TERM, then KILL after 2 s).
    pub fn stop(&self, process: &Background) -> Result<(), LabError> {
        let pid = process.pid;
        self.must(&format!(
            "kill {pid} 2>/dev/null; for i in $(seq 20); do kill -0 {pid} 2>/dev/null || break; sleep 0.1; done; kill -9 {pid} 2>/dev/null; true"
        ))?;
        Ok(())
    }

    /// Waits until `process`'s output contains `needle`; how long that
    /// took. Fails early, with its output, if the process ends first.
    pub fn wait_output(
        &self,
        process: &Background,
        needle: &str,
        timeout: Duration,
    ) -> Result<Duration, LabError> {
        let at = Instant::now();
        let script = r#"until grep -qF -e "$0" "$1"; do kill -0 "$2" 2>/dev/null || { grep -qF -e "$0" "$1" && exit 0; exit 3; }; sleep 0.2; done"#;
        let (_, status) = self.run_for(
            &format!(
                "timeout {} sh -c {} {} {} {}",
                timeout.as_secs().max(1),
                quote(script),
                quote(needle),
                quote(&process.log),
                process.pid
            ),
            timeout + Duration::from_secs(30),
        )?;
        if status == 0 {
            return Ok(at.elapsed());
        }
        let output = self.output(process).unwrap_or_default();
        let why = if status == 3 { "ended" } else { "timed out" };
        Err(LabError::Lab(format!(
            "{} {why} before printing `{needle}`; its output ({}):\n{}",
            process.name,
            process.log,
            tail(&output, 30)
        )))
    }

    /// Waits until the shell `condition` succeeds in the guest (tried
    /// every 0.2 s); how long that took.
    pub fn wait_until(&self, condition: &str, timeout: Duration) -> Result<Duration, LabError> {
        let at = Instant::now();
        let (_, status) = self.run_for(
            &format!(
                "timeout {} sh -c {} {}",
                timeout.as_secs().max(1),
                quote(r#"until eval "$0" >/dev/null 2>&1; do sleep 0.2; done"#),
                quote(condition)
            ),
            timeout + Duration::from_secs(30),
        )?;
        if status != 0 {
            return Err(LabError::Timeout(format!(
                "`{condition}` in the Wi-Fi guest ({} s)",
                timeout.as_secs()
            )));
        }
        Ok(at.elapsed())
    }

    /// Creates namespace `ns` in the guest (loopback up), unless it exists.
    pub fn add_netns(&self, ns: &str) -> Result<(), LabError> {
        let ns = quote(ns);
        self.must(&format!(
            "[ -e /run/netns/{ns} ] || {{ {IP} netns add {ns} && {IP} -n {ns} link set lo up; }}"
        ))?;
        Ok(())
    }

    /// Moves radio `radio`'s phy (`phy<radio>`, with its interface) into
    /// namespace `ns` (created if needed): `iw phy phyN set netns name
    /// NS`. The interface's name (`wlan<radio>`).
    pub fn radio_to_netns(&self, radio: u32, ns: &str) -> Result<String, LabError> {
        let phy = format!("phy{radio}");
        let interface = self
            .must(&format!("ls /sys/class/ieee80211/{phy}/device/net"))?
            .split_whitespace()
            .next()
            .map(str::to_owned)
            .ok_or_else(|| LabError::Lab(format!("{phy} has no interface")))?;
        self.add_netns(ns)?;
        self.must(&format!("iw phy {phy} set netns name {}", quote(ns)))?;
        self.must(&format!(
            "{IP} -n {} link show {}",
            quote(ns),
            quote(&interface)
        ))?;
        Ok(interface)
    }

    /// Starts hostapd for `config` (WPA2-PSK, CCMP, 802.11g) with
    /// [`AP_ADDRESS`]/24 on its interface; returns once the access
    /// point is enabled. Its control socket directory is
    /// `/run/wifi/hostapd-<ns>`.
    pub fn start_ap(&self, config: &ApConfig) -> Result<Ap, LabError> {
        validate(config)?;
        let ctrl_dir = format!("{RUN_DIR}/hostapd-{}", config.ns);
        let file = format!("{RUN_DIR}/hostapd-{}.conf", config.ns);
        self.write_file(&file, hostapd_conf(config, &ctrl_dir).as_bytes())?;
        let (ns, interface) = (quote(&config.ns), quote(&config.interface));
        self.must(&format!(
            "{IP} -n {ns} addr replace {AP_ADDRESS}/24 dev {interface} && {IP} -n {ns} link set {interface} up"
        ))?;
        let hostapd = self.spawn(
            &format!("hostapd-{}", config.ns),
            Some(&config.ns),
            &format!("hostapd {}", quote(&file)),
        )?;
        self.wait_output(&hostapd, "AP-ENABLED", AP_START)?;
        Ok(Ap {
            config: config.clone(),
            ctrl_dir,
            hostapd,
            services: Vec::new(),
        })
    }

    /// Starts the access point's services on its interface: dnsmasq
    /// (DHCP from [`DHCP_RANGE`] with [`AP_ADDRESS`] as router and DNS
    /// server; its DNS answers [`AP_NAME`], knows no other name of
    /// `wifi.lab` and refuses the rest: it has no upstream) and busybox
    /// httpd on port 80 answering [`Ap::http_body`].
    pub fn serve(&self, ap: &mut Ap) -> Result<(), LabError> {
        let ns = &ap.config.ns;
        let www = format!("/var/www/{ns}");
        self.must(&format!("mkdir -p {}", quote(&www)))?;
        self.write_file(
            &format!("{www}/index.html"),
            format!("{}\n", ap.http_body()).as_bytes(),
        )?;
        let (first, last) = DHCP_RANGE;
        let dnsmasq = self.spawn(
            &format!("dnsmasq-{ns}"),
            Some(ns),
            &format!(
                "dnsmasq --keep-in-foreground --log-facility=- --log-dhcp --conf-file=/dev/null --user=root --group=root \
--interface={} --bind-interfaces --dhcp-authoritative --dhcp-range={first},{last},255.255.255.0,12h \
--dhcp-option=option:router,{AP_ADDRESS} --dhcp-option=option:dns-server,{AP_ADDRESS} \
--dhcp-leasefile={RUN_DIR}/dnsmasq-{ns}.leases --pid-file={RUN_DIR}/dnsmasq-{ns}.pid \
--no-resolv --no-hosts --local=/wifi.lab/ --host-record={AP_NAME},{AP_ADDRESS}",
                quote(&ap.config.interface)
            ),
        )?;
        ap.services.push(dnsmasq.clone());
        self.wait_output(&dnsmasq, "DHCP, IP range", Duration::from_secs(30))?;
        let httpd = self.spawn(
            &format!("httpd-{ns}"),
            Some(ns),
            &format!("httpd -f -p {AP_ADDRESS}:80 -h {}", quote(&www)),
        )?;
        ap.services.push(httpd);
        Ok(())
    }

    /// Stops the access point: its services, hostapd, and its address.
    pub fn stop_ap(&self, ap: &Ap) -> Result<(), LabError> {
        for process in ap.services.iter().chain([&ap.hostapd]) {
            self.stop(process)?;
        }
        self.must(&format!(
            "{IP} -n {} addr flush dev {}",
            quote(&ap.config.ns),
            quote(&ap.config.interface)
        ))?;
        Ok(())
    }
}

impl Drop for WifiLab {
    /// Kills QEMU and removes the lab's files; a failing test first gets
    /// the console's end on standard error.
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        if std::thread::panicking() {
            eprintln!(
                "the Wi-Fi guest's console ({}), last lines:\n{}",
                self.console().display(),
                tail(&self.console_text(), 40)
            );
        }
        if std::env::var_os("NETVM_LAB_KEEP").is_some() {
            eprintln!("NETVM_LAB_KEEP: kept {}", self.dir.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts QEMU for the lab in `dir`: no network device; the console on
/// the first serial port, the control shell's socket on the second; an
/// entropy source (hostapd and wpa_supplicant read randomness at start).
fn start_qemu(dir: &Path, kernel: &image::Kernel, initrd: &Path) -> Result<Child, LabError> {
    let log_path = dir.join("qemu.log");
    let log = std::fs::File::create(&log_path).map_err(io_error(&log_path))?;
    let log2 = log.try_clone().map_err(io_error(&log_path))?;
    let args: Vec<String> = vec![
        "-accel".to_owned(),
        crate::qemu::accelerator(),
        "-M".to_owned(),
        "q35".to_owned(),
        "-cpu".to_owned(),
        "max".to_owned(),
        "-smp".to_owned(),
        "2".to_owned(),
        "-m".to_owned(),
        MEMORY.to_owned(),
        "-nodefaults".to_owned(),
        "-no-user-config".to_owned(),
        "-display".to_owned(),
        "none".to_owned(),
        "-no-reboot".to_owned(),
        "-pidfile".to_owned(),
        dir.join("qemu.pid").display().to_string(),
        "-serial".to_owned(),
        format!("file:{}", dir.join("console.log").display()),
        "-chardev".to_owned(),
        format!(
            "socket,id=ctl,path={},server=on,wait=off",
            dir.join("ctl.sock").display()
        ),
        "-serial".to_owned(),
        "chardev:ctl".to_owned(),
        "-device".to_owned(),
        "virtio-rng-pci".to_owned(),
        "-kernel".to_owned(),
        kernel.image.display().to_string(),
        "-initrd".to_owned(),
        initrd.display().to_string(),
        "-append".to_owned(),
        cmdline(),
    ];
    Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| LabError::Command {
            command: "qemu-system-x86_64".to_owned(),
            message: e.to_string(),
        })
}

/// Runs `command` through the control shell's socket: its output and
/// exit status, found by a marker numbered `n` (a command that timed out
/// earlier cannot end this one).
fn exec(
    socket: &Path,
    command: &str,
    n: u32,
    timeout: Duration,
) -> Result<(String, i32), LabError> {
    let mut stream = UnixStream::connect(socket).map_err(io_error(socket))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(io_error(socket))?;
    let marker = format!("__netvm_wifi_done_{n}_");
    // The braces take the whole line's stderr; the newline lets the
    // command end in `&` or a comment.
    writeln!(stream, "{{ {command}\n}} 2>&1; echo {marker}$?").map_err(io_error(socket))?;
    let mut output = String::new();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => {
                return Err(LabError::Timeout(format!("`{command}` in the Wi-Fi guest")));
            }
            Ok(_) => {}
        }
        let clean = line.trim_end_matches(['\r', '\n']);
        // Output that does not end in a newline shares the marker's line.
        if let Some((before, status)) = clean
            .rsplit_once(&marker)
            .and_then(|(before, s)| Some((before, s.trim().parse::<i32>().ok()?)))
        {
            output.push_str(before);
            return Ok((output, status));
        }
        output.push_str(clean);
        output.push('\n');
    }
}

/// Refuses what hostapd's configuration could not hold.
fn validate(config: &ApConfig) -> Result<(), LabError> {
    let bad = |what: String| Err(LabError::Lab(format!("access point {}: {what}", config.ns)));
    if config.ssid.is_empty() || config.ssid.len() > 32 {
        return bad(format!(
            "the SSID must have 1 to 32 bytes, not {}",
            config.ssid.len()
        ));
    }
    let printable = config.passphrase.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !(8..=63).contains(&config.passphrase.len()) || !printable {
        return bad("the passphrase must have 8 to 63 printable ASCII characters".to_owned());
    }
    if !(1..=11).contains(&config.channel) {
        return bad(format!("channel {} is not 1 to 11", config.channel));
    }
    for (what, value) in [("namespace", &config.ns), ("interface", &config.interface)] {
        let fine = !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !fine {
            return bad(format!(
                "the {what} {value:?} must be letters, digits, - and _"
            ));
        }
    }
    Ok(())
}

/// hostapd's configuration: WPA2-PSK with CCMP; the SSID hex-encoded
/// (`ssid2`), so any bytes are fine.
fn hostapd_conf(config: &ApConfig, ctrl_dir: &str) -> String {
    let ssid: String = config.ssid.bytes().map(|b| format!("{b:02x}")).collect();
    format!(
        "interface={}\ndriver=nl80211\nctrl_interface={ctrl_dir}\nssid2={ssid}\nhw_mode=g\nchannel={}\n\
wpa=2\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nwpa_passphrase={}\n",
        config.interface, config.channel, config.passphrase
    )
}

/// Standard base64 (busybox `base64 -d` reads it).
fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ApConfig {
        ApConfig {
            ns: "ap".to_owned(),
            interface: "wlan0".to_owned(),
            ssid: "netvm lab".to_owned(),
            passphrase: "correct horse".to_owned(),
            channel: 1,
        }
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }

    #[test]
    fn quoting_keeps_one_word() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(
            in_netns("sta", "echo 'x'"),
            r"/usr/sbin/ip netns exec 'sta' sh -c 'echo '\''x'\'''"
        );
    }

    #[test]
    fn hostapd_gets_wpa2_psk_ccmp_and_a_hex_ssid() {
        let conf = hostapd_conf(&config(), "/run/wifi/hostapd-ap");
        for line in [
            "interface=wlan0",
            "ssid2=6e6574766d206c6162",
            "wpa=2",
            "wpa_key_mgmt=WPA-PSK",
            "rsn_pairwise=CCMP",
            "wpa_passphrase=correct horse",
            "ctrl_interface=/run/wifi/hostapd-ap",
        ] {
            assert!(conf.lines().any(|l| l == line), "{line} missing:\n{conf}");
        }
    }

    #[test]
    fn what_hostapd_cannot_hold_is_refused() {
        assert!(validate(&config()).is_ok());
        let with = |f: &dyn Fn(&mut ApConfig)| {
            let mut c = config();
            f(&mut c);
            validate(&c).is_err()
        };
        assert!(with(&|c| c.passphrase = "short".to_owned()));
        assert!(with(&|c| c.passphrase = "new\nline in it".to_owned()));
        assert!(with(&|c| c.ssid = String::new()));
        assert!(with(&|c| c.ssid = "x".repeat(33)));
        assert!(with(&|c| c.channel = 14));
        assert!(with(&|c| c.ns = "a b".to_owned()));
    }
}
