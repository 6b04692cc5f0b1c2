//! Waiting on a server: one bound for a single await ([`WAIT`]) and one way to wait for a
//! condition ([`eventually`]), so a test that waits for something that never comes fails saying
//! what it waited for, instead of hanging.

use std::fmt::Display;
use std::time::Duration;

use tokio::time::Instant;

/// How long any single wait on the server may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// How often [`eventually`] looks again: short, so a wait ends soon after its condition holds.
const POLL: Duration = Duration::from_millis(10);

/// What one look at a condition found: done (with what it yields), or not yet (with what was
/// seen instead, for the failure message).
pub trait Outcome {
    /// What a met condition yields to the waiter.
    type Value;
    /// `Ok` when the condition holds; `Err` with what was seen instead (may be empty).
    fn into_result(self) -> Result<Self::Value, String>;
}

impl Outcome for bool {
    type Value = ();
    fn into_result(self) -> Result<(), String> {
        if self { Ok(()) } else { Err(String::new()) }
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn into_result(self) -> Result<T, String> {
        self.ok_or_else(String::new)
    }
}

impl<T, E: Display> Outcome for Result<T, E> {
    type Value = T;
    fn into_result(self) -> Result<T, String> {
        self.map_err(|seen| seen.to_string())
    }
}

/// A description written only if a wait fails: one that reads logs, say.
pub struct Lazily<F>(pub F);

impl<F: Fn() -> String> Display for Lazily<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&(self.0)())
    }
}

impl<F> std::fmt::Debug for Lazily<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lazily(..)")
    }
}

/// Looks at `check` (on tokio's clock) until it holds, and returns what it yields; fails after
/// `within`, naming `what` it waited for and what the last look saw. A look that takes long is
/// not cut short: the bound is checked between looks.
pub async fn eventually<O: Outcome>(what: impl Display, within: Duration, mut check: impl AsyncFnMut() -> O) -> O::Value {
    let deadline = Instant::now() + within;
    loop {
        let seen = match check().await.into_result() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            let seen = if seen.is_empty() { String::new() } else { format!("; last seen: {seen}") };
            panic!("waited {within:?} for {what}{seen}");
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn eventually_returns_what_the_check_yields_once_it_holds() {
        let mut looks = 0;
        let got = eventually("the third look", WAIT, async || {
            looks += 1;
            (looks == 3).then_some(looks)
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "waited 1s for the answer; last seen: 41")]
    async fn eventually_fails_naming_what_it_waited_for_and_what_it_last_saw() {
        eventually("the answer", Duration::from_secs(1), async || Err::<(), _>(41)).await;
    }
}
