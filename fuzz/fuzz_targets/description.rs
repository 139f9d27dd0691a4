//! Fuzzes the system description parser (TOML and JSON) end to end:
//! syntax, typed reading, validation and error rendering must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netvm_description::{parse, Format};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in [Format::Toml, Format::Json] {
        if let Err(error) = parse("fuzz", text, format) {
            assert!(!error.diagnostics.is_empty());
            let _ = error.to_string();
        }
    }
});
