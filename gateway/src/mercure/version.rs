//! Which Mercure protocol the hub endpoint speaks. The values are configuration
//! (`GATEWAY_MERCURE`, parsed in `config/mercure_version.rs`); the protocol rules in this module
//! and the hub branch on them.

pub(crate) use crate::config::Protocol;
