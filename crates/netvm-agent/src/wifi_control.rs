//! The Wi-Fi control requests (`netvm wifi list|scan|connect|forget`):
//! each answered from the running supplicants ([`crate::wifi`]) and the
//! saved networks, which `connect` and `forget` change (the file first,
//! so what is answered is what survives a restart).

use crate::parts::Shared;
use crate::wifi::{Network, SavedNetwork};
use netvm_description::{System, Uplink, WifiSecurity};
use netvm_events::control::{Request, Response, WifiInfo, WifiNetworkInfo};

/// The answer to a Wi-Fi request, or why not.
pub fn answer(shared: &Shared, request: &Request) -> Result<Response, String> {
    let system = shared
        .state
        .lock()
        .map_err(|_| "the agent's state is unreadable".to_owned())?
        .system
        .clone();
    let wifi: Vec<&Uplink> = system
        .netvm
        .uplinks
        .iter()
        .filter(|u| u.wifi.is_some())
        .collect();
    if wifi.is_empty() {
        return Err("the description has no Wi-Fi uplink (`kind = \"wifi\"`)".to_owned());
    }
    match request {
        Request::WifiList => Ok(Response::wifi(list(shared, &system))),
        Request::WifiScan => {
            let mut seen = Vec::new();
            let mut running = 0;
            for uplink in &wifi {
                if let Some(supplicant) = shared.wifi.get(uplink.name.as_str()) {
                    running += 1;
                    seen.extend(supplicant.scan()?);
                }
            }
            if running == 0 {
                return Err("no Wi-Fi uplink is present now".to_owned());
            }
            seen.sort_by_key(|s| std::cmp::Reverse(s.signal));
            Ok(Response::wifi_scan(seen))
        }
        Request::WifiConnect {
            ssid,
            passphrase,
            uplink,
        } => {
            let uplink = pick(&wifi, uplink.as_deref())?;
            if ssid.is_empty() || ssid.len() > 32 {
                return Err(format!("an SSID is 1 to 32 bytes, not {}", ssid.len()));
            }
            netvm_wifi::psk::check_passphrase(&passphrase.0)
                .map_err(|e| format!("the passphrase: {e}"))?;
            let _changing = shared.wifi.changing.lock().map_err(|_| "poisoned")?;
            let mut saved = shared.wifi.saved.load().map_err(|e| e.to_string())?;
            let name = uplink.name.to_string();
            let described = uplink
                .wifi
                .iter()
                .flat_map(|w| &w.networks)
                .map(|n| n.priority);
            let mine = saved.entry(name.clone()).or_default();
            let priority = described
                .chain(mine.iter().filter(|n| n.ssid != *ssid).map(|n| n.priority))
                .max()
                .map_or(1, |p| p.saturating_add(1));
            mine.retain(|n| n.ssid != *ssid);
            mine.push(SavedNetwork {
                ssid: ssid.clone(),
                passphrase: passphrase.clone(),
                priority,
            });
            shared.wifi.saved.store(&saved).map_err(|e| {
                format!(
                    "cannot save the network in {}: {e}",
                    shared.wifi.saved.path().display()
                )
            })?;
            if let Some(supplicant) = shared.wifi.get(&name) {
                supplicant.connect(Network {
                    ssid: ssid.clone(),
                    secret: passphrase.clone(),
                    security: WifiSecurity::Wpa2Wpa3,
                    priority,
                    source: "saved",
                })?;
            }
            Ok(Response::wifi(list(shared, &system)))
        }
        Request::WifiForget { ssid, uplink } => {
            let uplink = pick(&wifi, uplink.as_deref())?;
            if uplink
                .wifi
                .iter()
                .flat_map(|w| &w.networks)
                .any(|n| n.ssid == *ssid)
            {
                return Err(format!(
                    "`{ssid}` is in the description; remove it there and reload"
                ));
            }
            let _changing = shared.wifi.changing.lock().map_err(|_| "poisoned")?;
            let mut saved = shared.wifi.saved.load().map_err(|e| e.to_string())?;
            let name = uplink.name.to_string();
            let mine = saved.entry(name.clone()).or_default();
            let before = mine.len();
            mine.retain(|n| n.ssid != *ssid);
            if mine.len() == before {
                return Err(format!("no saved network `{ssid}` on {name}"));
            }
            shared.wifi.saved.store(&saved).map_err(|e| e.to_string())?;
            if let Some(supplicant) = shared.wifi.get(&name) {
                let _ = supplicant.forget(ssid);
            }
            Ok(Response::wifi(list(shared, &system)))
        }
        _ => Err("not a Wi-Fi request".to_owned()),
    }
}

/// The uplink a request names, or the first Wi-Fi uplink.
fn pick<'a>(wifi: &[&'a Uplink], named: Option<&str>) -> Result<&'a Uplink, String> {
    match named {
        None => wifi
            .first()
            .copied()
            .ok_or_else(|| "no Wi-Fi uplink".to_owned()),
        Some(name) => wifi
            .iter()
            .find(|u| u.name.as_str() == name)
            .copied()
            .ok_or_else(|| format!("`{name}` is not a Wi-Fi uplink")),
    }
}

/// Each Wi-Fi uplink: its supplicant's view, or (absent) what it would
/// join.
fn list(shared: &Shared, system: &System) -> Vec<WifiInfo> {
    let saved = shared.wifi.saved.load().unwrap_or_default();
    system
        .netvm
        .uplinks
        .iter()
        .filter(|u| u.wifi.is_some())
        .map(|u| match shared.wifi.get(u.name.as_str()) {
            Some(supplicant) => supplicant.info(),
            None => {
                let mut networks: Vec<WifiNetworkInfo> = u
                    .wifi
                    .iter()
                    .flat_map(|w| &w.networks)
                    .map(|n| WifiNetworkInfo {
                        ssid: n.ssid.clone(),
                        source: "described".to_owned(),
                        priority: n.priority,
                    })
                    .chain(saved.get(u.name.as_str()).into_iter().flatten().map(|n| {
                        WifiNetworkInfo {
                            ssid: n.ssid.clone(),
                            source: "saved".to_owned(),
                            priority: n.priority,
                        }
                    }))
                    .collect();
                networks.sort_by_key(|n| std::cmp::Reverse(n.priority));
                WifiInfo {
                    uplink: u.name.to_string(),
                    state: "absent".to_owned(),
                    ssid: None,
                    bssid: None,
                    address: None,
                    networks,
                }
            }
        })
        .collect()
}
