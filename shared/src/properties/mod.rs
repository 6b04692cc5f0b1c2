//! The properties the fuzz targets (`fuzz/`, libFuzzer) check, one function per target, each
//! taking the fuzzer's raw bytes and panicking when a property fails.
//!
//! They live here rather than in the fuzz crate so that `cargo test` replays every committed
//! corpus input through the same checks ([`TARGETS`], see the test below): a regression the
//! fuzzer once found stays found without a fuzzer. Compiled only into this crate's tests and
//! with the `fuzzing` feature.

mod cursor;
mod input;
mod publish;
mod sse;
mod topic;

/// A target's check: the fuzzer's bytes in, a panic when a property fails.
pub type Check = fn(&[u8]);

/// Each fuzz target: its name (the binary in `fuzz/` and the folder of its corpus) and its check.
pub const TARGETS: &[(&str, Check)] = &[("sse", sse), ("cursor", cursor), ("topic", topic), ("publish", publish)];

/// The SSE encoder/parser round trip and the parser against chunking and a reference reading.
pub fn sse(data: &[u8]) {
    sse::check(data)
}

/// The resumption cursor: decoding arbitrary text, and encoding then decoding positions.
pub fn cursor(data: &[u8]) {
    cursor::check(data)
}

/// Topic and pattern parsing against reference models, matching, and the Redis key layout.
pub fn topic(data: &[u8]) {
    topic::check(data)
}

/// The `POST /publish` body parser and what it accepts, through to the frame subscribers read.
pub fn publish(data: &[u8]) {
    publish::check(data)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every committed corpus input passes its target's checks: the fuzzers' findings and seeds
    /// are regression tests of the normal test run.
    #[test]
    fn the_fuzz_corpora_pass() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        for (target, check) in TARGETS {
            let dir = root.join(target);
            let mut inputs = 0;
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let path = entry.expect("a directory entry").path();
                let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                if std::panic::catch_unwind(|| check(&data)).is_err() {
                    panic!("{target}: {} fails its checks (see the panic above; the fuzz binary runs one file)", path.display());
                }
                inputs += 1;
            }
            assert!(inputs > 0, "{target}: empty corpus in {}", dir.display());
        }
    }
}
