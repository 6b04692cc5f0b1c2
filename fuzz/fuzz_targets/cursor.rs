//! The resumption cursor decoder and encoder (`Last-Event-ID`).
//! The properties are `shared::properties::cursor`, which `cargo test` also runs on this corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::properties::cursor(data));
