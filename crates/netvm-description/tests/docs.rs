//! The documentation's complete examples are valid descriptions, so the
//! docs cannot drift from the format.

use netvm_description::{parse, Format};

#[test]
fn complete_toml_examples_in_the_docs_are_valid() {
    let doc = include_str!("../../../docs/system-description.md");
    let mut checked = 0;
    let mut rest = doc;
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("closed code block");
        let block = &body[..end];
        if block.contains("[netvm.uplink]") {
            if let Err(error) = parse("docs/system-description.md", block, Format::Toml) {
                panic!("a documented example is invalid:\n{error}");
            }
            checked += 1;
        }
        rest = &body[end..];
    }
    assert!(checked >= 1, "the docs show at least one complete example");
}
