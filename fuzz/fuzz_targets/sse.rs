//! The SSE encoder/parser round trip, and the parser against chunking and a reference reading.
//! The properties are `shared::properties::sse`, which `cargo test` also runs on this corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::properties::sse(data));
