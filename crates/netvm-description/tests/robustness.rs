//! The description parser never panics, whatever it is given: random
//! bytes, and valid files with random damage. Every rejection carries at
//! least one problem and locations inside the text. (`fuzz/` runs the
//! same entry point under libFuzzer for longer.)

use netvm_description::{parse, Format};
use proptest::prelude::*;

const VALID: &str = include_str!("../../../examples/ghaf-laptop.toml");

fn check(text: &str, format: Format) -> Result<(), TestCaseError> {
    if let Err(error) = parse("fuzz", text, format) {
        prop_assert!(!error.diagnostics.is_empty());
        for d in &error.diagnostics {
            if let Some(loc) = &d.location {
                prop_assert!(loc.span.start <= text.len(), "{:?} past the end", loc);
                prop_assert!(loc.line >= 1 && loc.column >= 1);
            }
        }
        // Rendering must not panic either.
        let _ = error.to_string();
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_text_never_panics(text in ".{0,400}") {
        check(&text, Format::Toml)?;
        check(&text, Format::Json)?;
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        check(&text, Format::Toml)?;
        check(&text, Format::Json)?;
    }

    #[test]
    fn damaged_valid_files_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), "[\"\\[\\]{}=,.:a-z0-9 \n-]{0,3}", 0usize..4), 1..6)
    ) {
        let mut text = VALID.to_owned();
        for (at, insert, remove) in edits {
            let mut start = at.index(text.len() + 1);
            while !text.is_char_boundary(start) { start -= 1; }
            let mut end = (start + remove).min(text.len());
            while !text.is_char_boundary(end) { end += 1; }
            text.replace_range(start..end, &insert);
        }
        check(&text, Format::Toml)?;
    }
}

#[test]
fn json_of_the_same_structure_never_panics_when_damaged() {
    let json = serde_json::to_string(&toml::from_str::<serde_json::Value>(VALID).expect("valid"))
        .expect("json");
    for cut in (0..json.len()).step_by(7) {
        if json.is_char_boundary(cut) {
            check(&json[..cut], Format::Json).expect("no panic");
        }
    }
}
