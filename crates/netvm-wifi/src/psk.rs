//! The WPA2 pre-shared key: PBKDF2-HMAC-SHA1(passphrase, SSID, 4096
//! rounds, 32 bytes), IEEE 802.11 annex J. The agent hands wpa_supplicant
//! these 64 hex digits, never the passphrase. A passphrase must be 8 to
//! 63 printable ASCII characters; anything else is refused here, since
//! wpa_supplicant logs a malformed one in full.

use std::num::NonZeroU32;

/// Why a passphrase cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PskError {
    /// Not 8 to 63 characters.
    #[error("a WPA passphrase has 8 to 63 characters, this one has {0}")]
    Length(usize),
    /// A character outside printable ASCII (0x20 to 0x7e).
    #[error("a WPA passphrase is printable ASCII only (character {0} is not)")]
    NotPrintable(usize),
    /// The SSID is empty or longer than 32 bytes.
    #[error("an SSID has 1 to 32 bytes, this one has {0}")]
    Ssid(usize),
}

/// Checks a passphrase without deriving anything.
pub fn check_passphrase(passphrase: &str) -> Result<(), PskError> {
    let len = passphrase.len();
    if let Some(at) = passphrase.bytes().position(|b| !(0x20..=0x7e).contains(&b)) {
        return Err(PskError::NotPrintable(passphrase[..at].chars().count() + 1));
    }
    if !(8..=63).contains(&len) {
        return Err(PskError::Length(len));
    }
    Ok(())
}

/// A passphrase as a file (or standard input) holds it: one trailing
/// line end (`\n` or `\r\n`) dropped, the rest checked.
pub fn from_file_text(text: &str) -> Result<&str, PskError> {
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text);
    check_passphrase(text)?;
    Ok(text)
}

/// The 32-byte PSK for `passphrase` on `ssid`.
pub fn derive(passphrase: &str, ssid: &[u8]) -> Result<[u8; 32], PskError> {
    check_passphrase(passphrase)?;
    if ssid.is_empty() || ssid.len() > 32 {
        return Err(PskError::Ssid(ssid.len()));
    }
    let mut out = [0u8; 32];
    let rounds = NonZeroU32::new(4096).unwrap_or(NonZeroU32::MIN);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA1,
        rounds,
        ssid,
        passphrase.as_bytes(),
        &mut out,
    );
    Ok(out)
}

/// [`derive`] as 64 lowercase hex digits (wpa_supplicant's `psk`).
pub fn derive_hex(passphrase: &str, ssid: &[u8]) -> Result<String, PskError> {
    Ok(crate::ctrl::hex(&derive(passphrase, ssid)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_loses_one_line_end_and_no_more() {
        assert_eq!(from_file_text("correct horse\n"), Ok("correct horse"));
        assert_eq!(from_file_text("correct horse\r\n"), Ok("correct horse"));
        assert_eq!(from_file_text("correct horse"), Ok("correct horse"));
        // A second line end is part of the text, and not printable.
        assert!(from_file_text("correct horse\n\n").is_err());
        assert!(from_file_text("short\n").is_err());
    }
    use proptest::prelude::*;

    #[test]
    fn the_standard_vectors_hold() {
        // IEEE 802.11 annex J.4.2, and one checked with wpa_passphrase.
        assert_eq!(
            derive_hex("password", b"IEEE").expect("psk"),
            "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
        );
        assert_eq!(
            derive_hex("correct horse", b"netvm-test").expect("psk"),
            "0d185cb808f21bf656b2319c8d9e2aa665309d87febbdc3eaaeddc9f66274de8"
        );
    }

    #[test]
    fn bad_passphrases_and_ssids_are_refused_without_echoing_them() {
        assert_eq!(derive("short", b"x"), Err(PskError::Length(5)));
        assert_eq!(derive(&"a".repeat(64), b"x"), Err(PskError::Length(64)));
        assert_eq!(derive("pass\nword1", b"x"), Err(PskError::NotPrintable(5)));
        assert_eq!(derive("pässword12", b"x"), Err(PskError::NotPrintable(2)));
        assert_eq!(derive("password", b""), Err(PskError::Ssid(0)));
        assert_eq!(derive("password", &[b'a'; 33]), Err(PskError::Ssid(33)));
        let message = derive("secret\tpassword", b"x")
            .expect_err("a tab")
            .to_string();
        assert!(!message.contains("secret"), "{message}");
    }

    proptest! {
        // Each case derives twice (4096 rounds each, slow in a debug build).
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// Any printable passphrase of 8 to 63 characters on any SSID of
        /// 1 to 32 bytes gives a key; the same input, the same key.
        #[test]
        fn every_valid_input_gives_one_key(
            passphrase in "[ -~]{8,63}",
            ssid in proptest::collection::vec(any::<u8>(), 1..=32)
        ) {
            let a = derive_hex(&passphrase, &ssid).expect("valid");
            prop_assert_eq!(a.len(), 64);
            prop_assert_eq!(derive_hex(&passphrase, &ssid).expect("valid"), a);
        }
    }
}
