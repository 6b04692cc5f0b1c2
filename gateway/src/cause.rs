//! How a server-side failure is written to the log: the error and all its sources on one line.
//! A leaf of its own because every module that logs a failure needs it, and `error.rs` (which
//! maps those modules' errors to responses) must not be what they import.

/// Writes `err` and its sources on one line, for the log entry of a server-side failure.
pub(crate) fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
