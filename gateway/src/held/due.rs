//! What a held stream does when the node's schedule (`schedule.rs`) says it is due: a heartbeat
//! if nothing was written for a whole interval, the refresh offer before its token expires, the
//! end when it expired, and a last jittered `retry:` at shutdown.

use shared::sse;
use tokio::time::Instant;

use super::schedule::Timed;
use super::stream::{End, Held, State};
use crate::stream::refresh_frame;

impl Timed for Held {
    fn first_due(&self) -> (Instant, (Instant, u32)) {
        let st = self.state();
        (st.last_write + self.node.heartbeat, deadline(&st))
    }

    fn heartbeat_due(&self, now: Instant) -> Option<Instant> {
        let mut st = self.state();
        if st.end.is_some() {
            return None;
        }
        let due = st.last_write + self.node.heartbeat;
        if now < due {
            return Some(due);
        }
        // A stream writing its backlog is not idle: its task is busy with the socket.
        if !Held::is_behind(&st) {
            self.heartbeat(&mut st);
        }
        Some(now + self.node.heartbeat)
    }

    fn deadline_due(&self, generation: u32, now: Instant) -> Option<Instant> {
        let mut st = self.state();
        if st.end.is_some() || generation != st.deadline_gen {
            return None;
        }
        if now >= st.expires_at {
            tracing::debug!("token expired, closing stream");
            self.end(&mut st, End::Expired, None);
            return None;
        }
        let (at, _) = deadline(&st);
        if now < at {
            return Some(at);
        }
        st.offered = true;
        let left = st.expires_at.saturating_duration_since(now).as_secs();
        let id = st.keep.as_ref().and_then(|k| k.control.as_ref()).map_or("", |c| c.entry().id());
        let frame = refresh_frame(&st.refresh.as_ref().map_or(String::new(), |r| r.url(id)), left);
        self.send_own(&mut st, &frame);
        Some(st.expires_at)
    }

    fn close_for_shutdown(&self) {
        let mut st = self.state();
        let retry = sse::retry_frame(st.shutdown_retry_ms);
        self.end(&mut st, End::Shutdown, Some(&retry));
    }
}

/// A new deadline for the stream (a fresh token extended it): older deadline entries become
/// stale. What the schedule's `reschedule` takes.
pub(super) fn new_deadline(st: &mut State) -> (Instant, u32) {
    st.deadline_gen = st.deadline_gen.wrapping_add(1);
    deadline(st)
}

/// The stream's next deadline: the refresh offer while one is due, else the token's end.
fn deadline(st: &State) -> (Instant, u32) {
    let at = match &st.refresh {
        Some(offer) if !st.offered => st.expires_at.checked_sub(offer.window).unwrap_or(st.expires_at),
        _ => st.expires_at,
    };
    (at, st.deadline_gen)
}
