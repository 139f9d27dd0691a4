//! Event lines: one JSON object per line. A reader that went away never
//! stops the writer.

use std::io::Write;

/// Writes `value` as one line to `out` (not flushed: a loop that writes
/// many flushes once per batch).
pub fn emit(out: &mut dyn Write, value: &impl serde::Serialize) {
    // The whole line in one write: parts on other threads write to the
    // same stdout, and std locks it per call, so a line written in
    // pieces could be cut by another part's.
    if let Ok(mut line) = serde_json::to_vec(value) {
        line.push(b'\n');
        let _ = out.write_all(&line);
    }
}

/// [`emit`], then flush.
pub fn emit_flushed(out: &mut dyn Write, value: &impl serde::Serialize) {
    emit(out, value);
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_object_per_line() {
        let mut out = Vec::new();
        emit(&mut out, &serde_json::json!({"event": "ready"}));
        emit_flushed(&mut out, &serde_json::json!({"event": "stopped"}));
        assert_eq!(
            String::from_utf8_lossy(&out),
            "{\"event\":\"ready\"}\n{\"event\":\"stopped\"}\n"
        );
    }
}
