//! What can go wrong behind the bus seam, told apart by what a caller does about it.

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The backing store cannot be reached; callers answer 503 and retry later.
    #[error("the event bus is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}
