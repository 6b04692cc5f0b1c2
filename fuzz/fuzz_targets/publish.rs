//! The `POST /publish` body parser, through to the frame subscribers read.
//! The properties are `shared::properties::publish`, which `cargo test` also runs on this corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::properties::publish(data));
