//! The hub's settings as the handlers use them: its configuration and the update rules derived
//! from it once, at start.

use crate::config::MercureConfig;
use crate::mercure::update::UpdateRules;

/// The hub's settings as the handlers use them.
#[derive(Debug)]
pub(crate) struct Hub {
    pub config: MercureConfig,
    pub rules: UpdateRules,
}
