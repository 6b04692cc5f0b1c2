//! Wall-clock time as the wire and the store count it: seconds since the Unix epoch for token
//! claims (`exp`, `iat`), milliseconds for revocations, tickets and the embedded bus's ids. A leaf
//! every module that dates something imports.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Now, in milliseconds since the epoch: how revocations, tickets and the embedded bus's ids are
/// dated.
pub(crate) fn now_millis() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}
