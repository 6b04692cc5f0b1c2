//! The Mercure protocol core (issue 14), kept pure so that the `/.well-known/mercure` endpoint
//! can be built on it: parsing, validation, matching and encoding, with no I/O.

pub mod claims;
pub mod frame;
pub mod selector;
pub mod template;
pub mod text;
pub mod update;
pub mod version;
