//! A stream's life under its token: the refresh offer before it expires, the end at expiry, and
//! what the control plane says (revoked: a last `gateway.revoked`; extended by a fresh token: a
//! new end and a new offer before it).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::EventStream;
use super::signals::{refresh_frame, revoked_frame};
use crate::control::Registration;

impl EventStream {
    /// Sets the expiry timer: to the refresh point while a refresh is due, else the token's end.
    pub(super) fn schedule_expiry(&mut self) {
        let at = match &self.refresh {
            Some(r) if !r.offered => self.expires_at.checked_sub(r.offer.window).unwrap_or_else(Instant::now).max(Instant::now()),
            _ => self.expires_at,
        };
        self.expiry.as_mut().reset(at);
    }

    pub(super) fn on_deadline(&mut self) {
        let now = Instant::now();
        if now >= self.expires_at {
            self.counters.token_expired_disconnects.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("token expired, closing stream");
            self.done = true;
            return;
        }
        if let Some(r) = self.refresh.as_mut().filter(|r| !r.offered) {
            r.offered = true;
            let left = self.expires_at.saturating_duration_since(now).as_secs();
            let id = self.control.as_ref().map_or("", |c| c.entry().id());
            self.pending.push_back(refresh_frame(&r.offer.url(id), left));
        }
        self.expiry.as_mut().reset(self.expires_at);
    }

    /// The control plane revoked the stream (it ends after `gateway.revoked`) or extended it
    /// (a fresh token: a new end, and a new refresh offer before it).
    pub(super) fn on_control(&mut self) {
        let Some(entry) = self.control.as_ref().map(|r| Arc::clone(r.entry())) else { return };
        // Re-armed before the state is read: a change after this read wakes the next wait.
        self.control_wake = Some(Box::pin(entry.wake().notified_owned()));
        if self.revoked() {
            return;
        }
        self.expires_at = Instant::now() + entry.expires_in();
        if let Some(r) = self.refresh.as_mut() {
            r.offered = false;
        }
        self.schedule_expiry();
    }

    /// If the stream was revoked: queues its last frame, ends it and says so.
    pub(super) fn revoked(&mut self) -> bool {
        let Some(entry) = self.control.as_ref().map(Registration::entry).filter(|e| e.is_revoked()) else { return false };
        if let Some(frame) = revoked_frame(entry) {
            self.pending.push_back(frame);
        }
        self.counters.revoked_disconnects.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("stream revoked, closing it");
        self.done = true;
        true
    }
}
