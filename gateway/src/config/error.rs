//! Why a configuration was refused: one line naming the variable (and flag) that was wrong, or
//! the text `--help`/`--version` asked for.

use std::borrow::Cow;

use clap::CommandFactory;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use super::args::Args;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {var}: {reason}")]
    Invalid { var: Cow<'static, str>, reason: String },
    /// `--help` or `--version`: print and exit 0.
    #[error("{0}")]
    Display(String),
}

pub(super) fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { var: Cow::Borrowed(var), reason: reason.into() }
}

/// Turns a clap error into one line naming the variable (and flag) that was wrong.
pub(super) fn clap_error(err: clap::Error) -> ConfigError {
    if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) {
        return ConfigError::Display(err.to_string());
    }
    let arg = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let long = arg.split_whitespace().next().unwrap_or_default().trim_start_matches("--").to_owned();
    let cmd = Args::command();
    let var = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long.as_str()))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned());
    let reason = err.to_string().lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned();
    match var {
        Some(var) => ConfigError::Invalid { var: Cow::Owned(var), reason: format!("{value:?} (--{long}): {reason}") },
        None => ConfigError::Invalid { var: Cow::Borrowed("arguments"), reason },
    }
}
