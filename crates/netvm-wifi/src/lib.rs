//! Wi-Fi uplinks, the parts without I/O.
//!
//! * [`ctrl`]: wpa_supplicant's control protocol: commands built (SSIDs and
//!   keys hex-encoded, so no value can break out of its command), and
//!   replies (`STATUS`, `SCAN_RESULTS`) and events read.
//! * [`psk`]: the WPA2 PSK derived from a passphrase
//!   (PBKDF2-HMAC-SHA1, 4096 rounds), so the supplicant is handed the key
//!   and never the passphrase, and a malformed passphrase is refused
//!   before wpa_supplicant would log it.

#![forbid(unsafe_code)]

pub mod ctrl;
pub mod psk;
