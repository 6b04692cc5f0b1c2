//! Authentication and authorization: where a token may come from, why one is refused (and that the
//! refusal says why), key families and algorithm confusion, per-topic grants, and the stream that
//! closes when its token expires.

mod common;
mod grants;
mod keys;
mod refusal;
mod source;
