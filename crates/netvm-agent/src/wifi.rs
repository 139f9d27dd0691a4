//! Wi-Fi uplinks: one wpa_supplicant (Debian's) per Wi-Fi uplink while
//! its interface exists, driven over its control socket with the typed
//! commands of [`netvm_wifi::ctrl`].
//!
//! The supplicant is started with a configuration that holds only its
//! control directory (and the random-MAC switches): the networks are
//! handed to it over the socket, each key as the PSK derived from the
//! passphrase (WPA2) or as the SAE password (WPA3), hex-encoded, so no
//! secret is ever in a file of ours but the saved-networks file
//! ([`Saved`], mode 0600) or in an event. wpa_supplicant itself scans,
//! picks by priority, reconnects and roams; the agent reads its events:
//! `wifi_connected`, `wifi_disconnected`, `wifi_failed` (wrong key, no
//! such network, the supplicant gone, ...), and tells the uplink manager
//! when the uplink is associated, so addressing starts once keys are
//! installed. A supplicant that exits is started again with backoff.

use crate::hub::Hub;
use netvm_description::{Uplink, WifiSecurity};
use netvm_events::control::{Passphrase, WifiInfo, WifiNetworkInfo, WifiSeen};
use netvm_events::{Event, Kind};
use netvm_runtime::Stop;
use netvm_wifi::ctrl::{self, Command, Field, KeyMgmt, NetworkId};
use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The supplicant's program.
pub const WPA_SUPPLICANT: &str = "wpa_supplicant";

/// A network an uplink may join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Its name.
    pub ssid: String,
    /// Its passphrase.
    pub secret: Passphrase,
    /// WPA2, WPA3 or either.
    pub security: WifiSecurity,
    /// Higher is preferred.
    pub priority: u32,
    /// `described` or `saved`.
    pub source: &'static str,
}

/// A network saved with `netvm wifi connect`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedNetwork {
    /// Its name.
    pub ssid: String,
    /// Its passphrase.
    pub passphrase: Passphrase,
    /// Higher is preferred.
    pub priority: u32,
}

/// The saved networks by uplink: a JSON file beside the lease journal,
/// mode 0600, replaced whole (written, synced, renamed) on each change,
/// so a crash leaves the old or the new file, never half of one.
#[derive(Debug, Clone)]
pub struct Saved {
    path: PathBuf,
}

impl Saved {
    /// The file beside `journal` (`<journal>.wifi`).
    pub fn beside(journal: &Path) -> Saved {
        let mut name = journal.file_name().unwrap_or_default().to_os_string();
        name.push(".wifi");
        Saved {
            path: journal.with_file_name(name),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved networks (none when there is no file yet).
    pub fn load(&self) -> io::Result<BTreeMap<String, Vec<SavedNetwork>>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e),
        }
    }

    /// Replaces the file with `all`.
    pub fn store(&self, all: &BTreeMap<String, Vec<SavedNetwork>>) -> io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = serde_json::to_vec_pretty(all).map_err(io::Error::other)?;
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".new");
        let temporary = PathBuf::from(temporary);
        {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            file.write_all(&text)?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, &self.path)?;
        if let Some(dir) = self.path.parent() {
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}

/// Reads a passphrase file: its text, one trailing newline dropped.
pub fn read_passphrase(path: &Path) -> Result<Passphrase, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text =
        netvm_wifi::psk::from_file_text(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Passphrase(text.to_owned()))
}

/// The networks `uplink` may join: the described ones (whose passphrase
/// files can be read; the others are reported) and the saved ones, most
/// preferred first.
pub fn networks(
    uplink: &Uplink,
    saved: &BTreeMap<String, Vec<SavedNetwork>>,
    hub: &Hub,
) -> Vec<Network> {
    let mut all = Vec::new();
    let name = uplink.name.to_string();
    if let Some(wifi) = &uplink.wifi {
        for n in &wifi.networks {
            match read_passphrase(&n.psk_file) {
                Ok(secret) => all.push(Network {
                    ssid: n.ssid.clone(),
                    secret,
                    security: n.security,
                    priority: n.priority,
                    source: "described",
                }),
                Err(detail) => failed(hub, &name, Some(&n.ssid), "psk_file", Some(detail)),
            }
        }
    }
    for n in saved.get(&name).into_iter().flatten() {
        if all.iter().any(|d: &Network| d.ssid == n.ssid) {
            continue;
        }
        all.push(Network {
            ssid: n.ssid.clone(),
            secret: n.passphrase.clone(),
            security: WifiSecurity::Wpa2Wpa3,
            priority: n.priority,
            source: "saved",
        });
    }
    all.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.ssid.cmp(&b.ssid)));
    all
}

/// The `SET_NETWORK` fields of `network` (keys included: never log them).
pub fn fields(network: &Network, random_mac: bool) -> Result<Vec<Field>, String> {
    let ssid = network.ssid.as_bytes();
    let pass = network.secret.0.as_str();
    let psk = || netvm_wifi::psk::derive(pass, ssid).map_err(|e| e.to_string());
    let mut fields = vec![Field::Ssid(ssid.to_vec())];
    match network.security {
        WifiSecurity::Wpa2 => {
            fields.push(Field::KeyMgmt(KeyMgmt::WpaPsk));
            fields.push(Field::Psk(psk()?));
            fields.push(Field::Ieee80211w(1));
        }
        WifiSecurity::Wpa3 => {
            netvm_wifi::psk::check_passphrase(pass).map_err(|e| e.to_string())?;
            fields.push(Field::KeyMgmt(KeyMgmt::Sae));
            fields.push(Field::SaePassword(pass.to_owned()));
            fields.push(Field::Ieee80211w(2));
        }
        WifiSecurity::Wpa2Wpa3 => {
            fields.push(Field::KeyMgmt(KeyMgmt::WpaPskOrSae));
            fields.push(Field::Psk(psk()?));
            fields.push(Field::SaePassword(pass.to_owned()));
            fields.push(Field::Ieee80211w(1));
        }
    }
    fields.push(Field::Priority(network.priority));
    if random_mac {
        fields.push(Field::MacAddr(1));
    }
    Ok(fields)
}

/// What a supplicant tells the uplink manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    /// The uplink.
    pub uplink: String,
    /// Associated with keys installed (or no longer).
    pub associated: bool,
}

/// Where a supplicant reports association changes.
pub type Report = Arc<dyn Fn(Association) + Send + Sync>;

/// The Wi-Fi uplinks' supplicants (while their interfaces exist) and the
/// saved networks, shared by the uplink manager and the control requests.
#[derive(Clone)]
pub struct Radios {
    /// The running supplicants by uplink.
    pub running: Arc<Mutex<BTreeMap<String, Arc<Supplicant>>>>,
    /// The saved networks.
    pub saved: Saved,
    /// Where the supplicants' control sockets are.
    pub dir: PathBuf,
    /// Held while the saved networks change.
    pub changing: Arc<Mutex<()>>,
}

impl Radios {
    /// For an agent whose lease journal is `journal`: the saved networks
    /// beside it, the control sockets in `<journal>.wpa/`.
    pub fn beside(journal: &Path) -> Radios {
        let mut dir = journal.file_name().unwrap_or_default().to_os_string();
        dir.push(".wpa");
        Radios {
            running: Arc::default(),
            saved: Saved::beside(journal),
            dir: journal.with_file_name(dir),
            changing: Arc::default(),
        }
    }

    /// The supplicant of `uplink`, if it runs.
    pub fn get(&self, uplink: &str) -> Option<Arc<Supplicant>> {
        self.running.lock().ok()?.get(uplink).cloned()
    }
}

fn failed(hub: &Hub, uplink: &str, ssid: Option<&str>, reason: &str, detail: Option<String>) {
    hub.emit(
        Event::new(Kind::WifiFailed {
            uplink: uplink.to_owned(),
            ssid: ssid.map(str::to_owned),
            reason: reason.to_owned(),
            detail,
        }),
        true,
    );
}

/// One socket to a supplicant's control interface (bound to a path of
/// our own, which goes with it).
struct Ctrl {
    socket: UnixDatagram,
    local: PathBuf,
}

static SOCKETS: AtomicU64 = AtomicU64::new(0);

impl Ctrl {
    fn open(dir: &Path, interface: &str) -> io::Result<Ctrl> {
        let n = SOCKETS.fetch_add(1, Ordering::Relaxed);
        let local = dir.join(format!(".netvm-{}-{n}", std::process::id()));
        let _ = std::fs::remove_file(&local);
        let socket = UnixDatagram::bind(&local)?;
        let ctrl = Ctrl { socket, local };
        ctrl.socket.connect(dir.join(interface))?;
        ctrl.socket.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(ctrl)
    }

    /// Sends `command` and reads its reply (events that come first on an
    /// attached socket are skipped).
    fn ask(&self, command: &Command) -> io::Result<String> {
        self.socket.send(command.text().as_bytes())?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = self.socket.recv(&mut buf)?;
            if buf.first() == Some(&b'<') {
                continue;
            }
            return Ok(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }

    fn ok(&self, command: &Command) -> Result<(), String> {
        let reply = self.ask(command).map_err(|e| e.to_string())?;
        ctrl::expect_ok(&reply).map_err(|e| e.to_string())
    }
}

impl Drop for Ctrl {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.local);
    }
}

/// What the requests of a supplicant share with its thread.
struct Inner {
    uplink: String,
    dir: PathBuf,
    random_mac: bool,
    /// Our networks and their ids in the running supplicant.
    networks: Mutex<Vec<(Network, Option<NetworkId>)>>,
    /// The command socket, while the supplicant runs.
    ctrl: Mutex<Option<Ctrl>>,
    /// Scans finished, and their bell.
    scans: Mutex<u64>,
    scanned: Condvar,
}

/// wpa_supplicant on one Wi-Fi uplink, and the thread that reads its
/// events and starts it again should it exit.
pub struct Supplicant {
    inner: Arc<Inner>,
    stop: Stop,
    thread: Option<JoinHandle<()>>,
}

impl Supplicant {
    /// Starts driving `uplink` (its interface exists) with `networks`;
    /// control sockets under `dir`. Association changes go to `report`.
    pub fn start(
        uplink: &Uplink,
        networks: Vec<Network>,
        dir: &Path,
        hub: Arc<Hub>,
        report: Report,
    ) -> Supplicant {
        let inner = Arc::new(Inner {
            uplink: uplink.name.to_string(),
            dir: dir.to_owned(),
            random_mac: uplink.wifi.as_ref().is_some_and(|w| w.random_mac),
            networks: Mutex::new(networks.into_iter().map(|n| (n, None)).collect()),
            ctrl: Mutex::new(None),
            scans: Mutex::new(0),
            scanned: Condvar::new(),
        });
        let stop = Stop::new();
        let thread = {
            let (inner, stop) = (Arc::clone(&inner), stop.clone());
            std::thread::spawn(move || supervise(&inner, &stop, &hub, &report))
        };
        Supplicant {
            inner,
            stop,
            thread: Some(thread),
        }
    }

    /// Its state now, as `netvm wifi list` shows it.
    pub fn info(&self) -> WifiInfo {
        let status = self
            .inner
            .ctrl
            .lock()
            .ok()
            .and_then(|c| c.as_ref().and_then(|c| c.ask(&Command::Status).ok()))
            .map(|reply| ctrl::parse_status(&reply));
        let networks = self
            .inner
            .networks
            .lock()
            .map(|n| {
                n.iter()
                    .map(|(n, _)| WifiNetworkInfo {
                        ssid: n.ssid.clone(),
                        source: n.source.to_owned(),
                        priority: n.priority,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let connected = status.as_ref().filter(|s| s.connected());
        WifiInfo {
            uplink: self.inner.uplink.clone(),
            state: status
                .as_ref()
                .map_or("not_running".to_owned(), |s| s.wpa_state.clone()),
            ssid: connected
                .and_then(|s| s.ssid.as_ref())
                .map(|s| String::from_utf8_lossy(s).into_owned()),
            bssid: connected.and_then(|s| s.bssid.clone()),
            address: status.as_ref().and_then(|s| s.address.clone()),
            networks,
        }
    }

    /// Scans and returns what is in range: the new scan's results, or,
    /// should it take longer than 20 s (a scan while connected leaves
    /// the channel between probes, and slow machines take their time),
    /// the supplicant's latest ones.
    pub fn scan(&self) -> Result<Vec<WifiSeen>, String> {
        let before = self.inner.scans.lock().map(|s| *s).unwrap_or(0);
        {
            let ctrl = self.inner.ctrl.lock().map_err(|_| "poisoned")?;
            let ctrl = ctrl.as_ref().ok_or("wpa_supplicant is not running")?;
            let reply = ctrl.ask(&Command::Scan).map_err(|e| e.to_string())?;
            match ctrl::expect_ok(&reply) {
                Ok(()) | Err(ctrl::Refused::Busy) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut scans = self.inner.scans.lock().map_err(|_| "poisoned")?;
        while *scans == before {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            scans = self
                .inner
                .scanned
                .wait_timeout(scans, left)
                .map_err(|_| "poisoned")?
                .0;
        }
        drop(scans);
        let ctrl = self.inner.ctrl.lock().map_err(|_| "poisoned")?;
        let ctrl = ctrl.as_ref().ok_or("wpa_supplicant is not running")?;
        let reply = ctrl.ask(&Command::ScanResults).map_err(|e| e.to_string())?;
        let mut seen: Vec<WifiSeen> = ctrl::parse_scan_results(&reply)
            .into_iter()
            .map(|b| WifiSeen {
                uplink: self.inner.uplink.clone(),
                security: b.security().to_owned(),
                ssid: String::from_utf8_lossy(&b.ssid).into_owned(),
                bssid: b.bssid,
                signal: b.signal,
                freq: b.freq,
            })
            .collect();
        seen.sort_by_key(|s| std::cmp::Reverse(s.signal));
        Ok(seen)
    }

    /// Joins `network` now (it is added, or replaces the one of its
    /// name), keeping the others enabled to fall back to.
    pub fn connect(&self, network: Network) -> Result<(), String> {
        let fields = fields(&network, self.inner.random_mac)?;
        let ctrl = self.inner.ctrl.lock().map_err(|_| "poisoned")?;
        let ctrl = ctrl.as_ref().ok_or("wpa_supplicant is not running")?;
        let mut networks = self.inner.networks.lock().map_err(|_| "poisoned")?;
        let old = networks.iter().position(|(n, _)| n.ssid == network.ssid);
        if let Some((_, Some(id))) = old.map(|i| &networks[i]) {
            ctrl.ok(&Command::RemoveNetwork(*id))?;
        }
        if let Some(i) = old {
            networks.remove(i);
        }
        let id = add(ctrl, &fields)?;
        ctrl.ok(&Command::SelectNetwork(id))?;
        for (_, other) in networks.iter() {
            if let Some(other) = other {
                ctrl.ok(&Command::EnableNetwork(*other))?;
            }
        }
        networks.insert(0, (network, Some(id)));
        Ok(())
    }

    /// Drops the network named `ssid` (it must be one of ours).
    pub fn forget(&self, ssid: &str) -> Result<(), String> {
        // The same order as everywhere: the socket, then the networks.
        let ctrl = self.inner.ctrl.lock().map_err(|_| "poisoned")?;
        let mut networks = self.inner.networks.lock().map_err(|_| "poisoned")?;
        let Some(i) = networks.iter().position(|(n, _)| n.ssid == ssid) else {
            return Err(format!("no network `{ssid}` on {}", self.inner.uplink));
        };
        if let (Some(id), Some(ctrl)) = (networks[i].1, ctrl.as_ref()) {
            ctrl.ok(&Command::RemoveNetwork(id))?;
        }
        networks.remove(i);
        Ok(())
    }
}

/// Dropping it stops the thread and the supplicant.
impl Drop for Supplicant {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `ADD_NETWORK`, its fields, `ENABLE_NETWORK`: its id.
fn add(ctrl: &Ctrl, fields: &[Field]) -> Result<NetworkId, String> {
    let reply = ctrl.ask(&Command::AddNetwork).map_err(|e| e.to_string())?;
    let id = ctrl::network_id(&reply).map_err(|e| e.to_string())?;
    for field in fields {
        // The error names the field, never its value.
        ctrl.ok(&Command::SetNetwork(id, field.clone()))
            .map_err(|e| format!("setting {:?}: {e}", field))?;
    }
    ctrl.ok(&Command::EnableNetwork(id))?;
    Ok(id)
}

/// Runs the supplicant until stopped, again after it exits (5 s, then
/// doubling up to 60 s).
fn supervise(inner: &Inner, stop: &Stop, hub: &Hub, report: &Report) {
    let mut backoff = Duration::from_secs(5);
    while !stop.is_stopped() {
        let started = Instant::now();
        match run_once(inner, stop, hub, report) {
            Ok(()) => return,
            Err(detail) => {
                if let Ok(mut ctrl) = inner.ctrl.lock() {
                    *ctrl = None;
                }
                if stop.is_stopped() {
                    return;
                }
                failed(hub, &inner.uplink, None, "supplicant", Some(detail));
                report(Association {
                    uplink: inner.uplink.clone(),
                    associated: false,
                });
            }
        }
        if started.elapsed() > Duration::from_secs(120) {
            backoff = Duration::from_secs(5);
        }
        if stop.sleep(backoff).unwrap_or(true) {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// The child (waited for by a thread of its own, which rings `exited`)
/// and its configuration file, both gone when dropped.
struct Running {
    pid: nix::unistd::Pid,
    exited: netvm_runtime::Bell,
    waiter: Option<JoinHandle<io::Result<std::process::ExitStatus>>>,
    config: PathBuf,
}

impl Running {
    fn start(child: Child, config: PathBuf) -> Running {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let exited = netvm_runtime::Bell::new();
        let waiter = {
            let exited = exited.clone();
            let mut child = child;
            std::thread::spawn(move || {
                let status = child.wait();
                exited.ring();
                status
            })
        };
        Running {
            pid,
            exited,
            waiter: Some(waiter),
            config,
        }
    }

    fn has_exited(&self) -> bool {
        self.waiter.as_ref().is_none_or(|w| w.is_finished())
    }

    /// How it ended (once it has).
    fn status(&mut self) -> String {
        match self.waiter.take().map(JoinHandle::join) {
            Some(Ok(Ok(status))) => status.to_string(),
            Some(Ok(Err(e))) => e.to_string(),
            _ => "unknown".to_owned(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            if !waiter.is_finished() {
                let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGTERM);
            }
            let _ = waiter.join();
        }
        let _ = std::fs::remove_file(&self.config);
    }
}

/// One life of the supplicant: started, given the networks, its events
/// read until it exits (an error) or the stop (`Ok`).
fn run_once(inner: &Inner, stop: &Stop, hub: &Hub, report: &Report) -> Result<(), String> {
    let dir = &inner.dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let config = dir.join(format!("{}.conf", inner.uplink));
    let mut text = format!("ctrl_interface={}\nupdate_config=0\n", dir.display());
    if inner.random_mac {
        text.push_str("mac_addr=1\npreassoc_mac_addr=1\n");
    }
    std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
    let _ = std::fs::remove_file(dir.join(&inner.uplink));
    let child = std::process::Command::new(WPA_SUPPLICANT)
        .args(["-i", &inner.uplink, "-D", "nl80211", "-c"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {WPA_SUPPLICANT}: {e} (apt-get install wpasupplicant)"))?;
    let mut running = Running::start(child, config);
    // Its control socket appears once it has set the interface up.
    let deadline = Instant::now() + Duration::from_secs(15);
    let events = loop {
        if running.has_exited() {
            return Err(format!(
                "wpa_supplicant exited at start ({})",
                running.status()
            ));
        }
        if dir.join(&inner.uplink).exists() {
            if let Ok(ctrl) = Ctrl::open(dir, &inner.uplink) {
                if ctrl.ok(&Command::Attach).is_ok() {
                    break ctrl;
                }
            }
        }
        if Instant::now() > deadline {
            return Err("wpa_supplicant opened no control socket within 15 s".to_owned());
        }
        if stop.sleep(Duration::from_millis(100)).unwrap_or(true) {
            return Ok(());
        }
    };
    let commands = Ctrl::open(dir, &inner.uplink).map_err(|e| e.to_string())?;
    commands.ok(&Command::RemoveAllNetworks)?;
    {
        let mut networks = inner.networks.lock().map_err(|_| "poisoned")?;
        if networks.is_empty() {
            failed(hub, &inner.uplink, None, "no_networks", None);
        }
        for (network, id) in networks.iter_mut() {
            *id = match fields(network, inner.random_mac).and_then(|f| add(&commands, &f)) {
                Ok(new) => Some(new),
                Err(detail) => {
                    failed(
                        hub,
                        &inner.uplink,
                        Some(&network.ssid),
                        "supplicant",
                        Some(detail),
                    );
                    None
                }
            };
        }
    }
    if let Ok(mut ctrl) = inner.ctrl.lock() {
        *ctrl = Some(commands);
    }
    let mut missing_reported = false;
    let mut buf = vec![0u8; 8192];
    events
        .socket
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let bell_of_exit = running.exited.clone();
    let exited = bell_of_exit.fd().map_err(|e| e.to_string())?;
    loop {
        let ready = match stop.wait_any(&[events.socket.as_fd(), exited], None) {
            Ok(Some(ready)) => ready,
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        if ready.is_ready(1) && running.has_exited() {
            return Err(format!("wpa_supplicant exited ({})", running.status()));
        }
        while let Ok(n) = events.socket.recv(&mut buf) {
            let Some(event) = ctrl::parse_event(&buf[..n]) else {
                continue;
            };
            handle(inner, hub, report, &event, &mut missing_reported);
        }
    }
}

fn handle(
    inner: &Inner,
    hub: &Hub,
    report: &Report,
    event: &ctrl::Event,
    missing_reported: &mut bool,
) {
    let uplink = inner.uplink.clone();
    let associated = |yes: bool| {
        report(Association {
            uplink: uplink.clone(),
            associated: yes,
        });
    };
    match event {
        ctrl::Event::Connected { bssid, id } => {
            *missing_reported = false;
            let ssid = inner
                .networks
                .lock()
                .ok()
                .and_then(|n| {
                    n.iter()
                        .find(|(_, nid)| nid.is_some() && *nid == *id)
                        .map(|(n, _)| n.ssid.clone())
                })
                .unwrap_or_default();
            hub.emit(
                Event::new(Kind::WifiConnected {
                    uplink: uplink.clone(),
                    ssid,
                    bssid: bssid.clone(),
                }),
                true,
            );
            associated(true);
        }
        ctrl::Event::Disconnected { bssid, reason, .. } => {
            hub.emit(
                Event::new(Kind::WifiDisconnected {
                    uplink: uplink.clone(),
                    bssid: bssid.clone(),
                    reason: *reason,
                }),
                true,
            );
            associated(false);
        }
        ctrl::Event::TempDisabled {
            ssid,
            failures,
            reason,
            ..
        } => {
            let why = match reason {
                ctrl::DisabledReason::WrongKey => "wrong_key".to_owned(),
                ctrl::DisabledReason::AuthFailed => "auth_failed".to_owned(),
                ctrl::DisabledReason::ConnFailed => "conn_failed".to_owned(),
                ctrl::DisabledReason::NoPsk => "no_psk".to_owned(),
                ctrl::DisabledReason::Other(o) => o.to_ascii_lowercase(),
            };
            failed(
                hub,
                &uplink,
                Some(&String::from_utf8_lossy(ssid)),
                &why,
                Some(format!(
                    "{failures} failure(s) in a row; wpa_supplicant tries again later"
                )),
            );
        }
        ctrl::Event::NetworkNotFound if !*missing_reported => {
            *missing_reported = true;
            failed(
                hub,
                &uplink,
                None,
                "network_not_found",
                Some("no network it may join is in range; still scanning".to_owned()),
            );
        }
        ctrl::Event::ScanResults => {
            if let Ok(mut scans) = inner.scans.lock() {
                *scans += 1;
                inner.scanned.notify_all();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(security: WifiSecurity) -> Network {
        Network {
            ssid: "home".into(),
            secret: Passphrase("correct horse".into()),
            security,
            priority: 3,
            source: "described",
        }
    }

    #[test]
    fn keys_go_by_security_and_never_show() {
        let wpa2 = fields(&network(WifiSecurity::Wpa2), false).expect("fields");
        assert!(wpa2.contains(&Field::KeyMgmt(KeyMgmt::WpaPsk)));
        assert!(wpa2.iter().any(|f| matches!(f, Field::Psk(_))));
        assert!(!wpa2.iter().any(|f| matches!(f, Field::SaePassword(_))));
        let wpa3 = fields(&network(WifiSecurity::Wpa3), true).expect("fields");
        assert!(wpa3.contains(&Field::Ieee80211w(2)));
        assert!(wpa3.contains(&Field::MacAddr(1)));
        assert!(!wpa3.iter().any(|f| matches!(f, Field::Psk(_))));
        let both = fields(&network(WifiSecurity::Wpa2Wpa3), false).expect("fields");
        let shown = format!("{both:?}{:?}", network(WifiSecurity::Wpa2Wpa3));
        assert!(!shown.contains("correct"), "{shown}");
        let mut short = network(WifiSecurity::Wpa2);
        short.secret = Passphrase("short".into());
        assert!(fields(&short, false).is_err());
    }

    #[test]
    fn saved_networks_survive_in_a_0600_file_and_a_crash_leaves_no_half() {
        let dir = std::env::temp_dir().join(format!("netvm-wifi-saved-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let saved = Saved::beside(&dir.join("leases"));
        assert!(saved.load().expect("none yet").is_empty());
        let mut all = BTreeMap::new();
        all.insert(
            "wlan0".to_owned(),
            vec![SavedNetwork {
                ssid: "cafe".into(),
                passphrase: Passphrase("espresso!".into()),
                priority: 7,
            }],
        );
        saved.store(&all).expect("store");
        assert_eq!(saved.load().expect("load"), all);
        let mode = std::fs::metadata(dir.join("leases.wifi"))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.join("leases.wifi.new").exists());
        std::fs::write(dir.join("leases.wifi"), "{").expect("write");
        assert!(
            saved.load().is_err(),
            "a broken file is an error, not empty"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_passphrase_file_loses_one_newline_and_must_be_valid() {
        let dir = std::env::temp_dir().join(format!("netvm-wifi-psk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("p");
        std::fs::write(&file, "correct horse\n").expect("write");
        assert_eq!(read_passphrase(&file).expect("ok").0, "correct horse");
        std::fs::write(&file, "short\n").expect("write");
        let error = read_passphrase(&file).expect_err("too short");
        assert!(!error.contains("short\n"));
        assert!(read_passphrase(&dir.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
