//! What can go wrong behind the bus seam, told apart by what a caller does about it.

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The backing store cannot be reached; callers answer 503 and retry later.
    #[error("the event bus is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backing store answered, but with what the gateway cannot read: a reply of an
    /// unexpected shape, or a key holding another type than the gateway keeps there (something
    /// else wrote it). Asking again gets the same answer, so callers do not retry it at once: the
    /// API answers 502 (`error.rs`) and the Redis upstream sets the topic aside for a while
    /// (`redis/upstream/`).
    #[error("the event bus gave a reply the gateway cannot read")]
    Malformed(#[source] Box<dyn std::error::Error + Send + Sync>),
}
