//! Topic and pattern parsing, pattern matching and the Redis key layout.
//! The properties are `shared::properties::topic`, which `cargo test` also runs on this corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::properties::topic(data));
