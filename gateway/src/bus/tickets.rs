//! Where stream tickets are kept (see `crate::tickets` for what a ticket is): part of the bus
//! seam, because a ticket issued on one node must be redeemable on every node sharing the bus.
//!
//! The store knows nothing of the ticket format: it keeps an opaque entry under an opaque key
//! (the ticket's digest) for a lifetime, and hands the entry out once. What it must tell apart
//! for the client's sake is a ticket that was used ([`Taken::Used`]) from one it never had or
//! has forgotten ([`Taken::Unknown`]), so a used entry leaves a tombstone until the ticket would
//! have expired anyway; after that, the ticket's own expiry time says `ticket_expired` before the
//! store is asked.
//!
//! The embedded bus keeps them in a [`TicketTable`], bounded and swept; the Redis bus in keys
//! that expire with the ticket (`redis/tickets.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::error::BusError;
use super::shrink::shrink_idle;

/// What presenting a ticket's key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// The entry, now taken: nobody else can take it.
    Entry(String),
    /// The ticket was taken before.
    Used,
    /// No such ticket (never issued here, or forgotten after its expiry).
    Unknown,
}

/// Whether a new ticket was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Kept,
    /// The store holds its maximum of unexpired tickets (the embedded bus's bound).
    Full(usize),
}

/// Ticket storage, shared by every node on the same bus.
#[async_trait]
pub trait TicketStore {
    /// The tag of this deployment: the one already stored, or `candidate` if there is none yet.
    /// Every call keeps the stored tag alive for `ttl` more (the embedded bus: the process is the
    /// deployment, and `candidate` is its tag).
    async fn deployment(&self, candidate: &str, ttl: Duration) -> Result<String, BusError>;

    /// Keeps `entry` under `key` for `ttl`.
    async fn put_ticket(&self, key: &str, entry: String, ttl: Duration) -> Result<Stored, BusError>;

    /// Takes the entry under `key`, atomically: of two nodes presenting the same ticket at once,
    /// exactly one gets [`Taken::Entry`].
    async fn take_ticket(&self, key: &str) -> Result<Taken, BusError>;
}

/// Unexpired tickets (used ones included) one embedded bus keeps at most: a token holder asking
/// for tickets in a loop fills this, not the process's memory. At a few hundred bytes of claims
/// each, the table stays under a few tens of MB.
pub(crate) const MAX_TICKETS: usize = 65_536;

/// One ticket: its entry until it is taken (then `None`, the tombstone), and when it expires.
#[derive(Debug)]
struct Slot {
    entry: Option<String>,
    until: Instant,
}

/// The embedded bus's tickets: in process memory, at most [`MAX_TICKETS`], expired ones dropped
/// by [`TicketTable::sweep`] (the bus's periodic sweep) and whenever the table is full.
#[derive(Debug)]
pub(crate) struct TicketTable {
    slots: Mutex<HashMap<String, Slot>>,
    max: usize,
}

impl Default for TicketTable {
    fn default() -> Self {
        Self::with_capacity(MAX_TICKETS)
    }
}

impl TicketTable {
    pub(crate) fn with_capacity(max: usize) -> Self {
        Self { slots: Mutex::default(), max }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many tickets (used ones included) the table holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots().len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the tickets expired at `now`.
    pub(crate) fn sweep_at(&self, now: Instant) {
        let mut slots = self.slots();
        slots.retain(|_, slot| slot.until > now);
        shrink_idle(&mut slots);
    }

    #[expect(clippy::disallowed_methods, reason = "the embedded bus's ticket TTL is wall-clock, as Redis's own TTL is for the Redis bus")]
    pub(crate) fn sweep(&self) {
        self.sweep_at(Instant::now());
    }

    pub(crate) fn put_at(&self, key: &str, entry: String, until: Instant, now: Instant) -> Stored {
        let mut slots = self.slots();
        if slots.len() >= self.max {
            slots.retain(|_, slot| slot.until > now);
            if slots.len() >= self.max {
                return Stored::Full(self.max);
            }
        }
        slots.insert(key.to_owned(), Slot { entry: Some(entry), until });
        Stored::Kept
    }

    pub(crate) fn take_at(&self, key: &str, now: Instant) -> Taken {
        let mut slots = self.slots();
        match slots.get_mut(key) {
            // Expired but not swept yet: as good as gone.
            Some(slot) if slot.until <= now => {
                slots.remove(key);
                Taken::Unknown
            }
            Some(slot) => slot.entry.take().map_or(Taken::Used, Taken::Entry),
            None => Taken::Unknown,
        }
    }
}

#[cfg(test)]
#[expect(clippy::disallowed_methods, reason = "any origin will do: the table is handed `now` explicitly")]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn an_entry_is_taken_once_then_reads_as_used_until_it_expires() {
        let (table, now) = (TicketTable::default(), Instant::now());
        assert_eq!(table.put_at("k", "claims".into(), now + SECOND, now), Stored::Kept);
        assert_eq!(table.take_at("k", now), Taken::Entry("claims".into()));
        assert_eq!(table.take_at("k", now), Taken::Used);
        assert_eq!(table.take_at("other", now), Taken::Unknown);
        assert_eq!(table.take_at("k", now + SECOND), Taken::Unknown, "a tombstone lives as long as its ticket");
        assert!(table.is_empty());
    }

    #[test]
    fn an_expired_entry_is_never_handed_out_even_before_a_sweep() {
        let (table, now) = (TicketTable::default(), Instant::now());
        table.put_at("k", "claims".into(), now + SECOND, now);
        assert_eq!(table.take_at("k", now + 2 * SECOND), Taken::Unknown);
    }

    #[test]
    fn the_table_is_bounded_and_makes_room_from_expired_tickets_only() {
        let (table, now) = (TicketTable::with_capacity(3), Instant::now());
        for k in ["a", "b"] {
            assert_eq!(table.put_at(k, "x".into(), now + SECOND, now), Stored::Kept);
        }
        assert_eq!(table.put_at("c", "x".into(), now + 10 * SECOND, now), Stored::Kept);
        assert_eq!(table.take_at("a", now), Taken::Entry("x".into()));
        assert_eq!(table.put_at("d", "x".into(), now + SECOND, now), Stored::Full(3), "a tombstone still counts");
        let later = now + 2 * SECOND;
        assert_eq!(table.put_at("d", "x".into(), later + SECOND, later), Stored::Kept, "expired ones make room");
        assert_eq!(table.len(), 2);
        assert_eq!(table.take_at("c", later), Taken::Entry("x".into()), "an unexpired ticket is never evicted");
    }

    #[test]
    fn a_sweep_drops_expired_tickets_and_gives_the_room_back() {
        let (table, now) = (TicketTable::default(), Instant::now());
        for i in 0..10_000 {
            table.put_at(&i.to_string(), "x".into(), now + SECOND, now);
        }
        table.put_at("late", "x".into(), now + 10 * SECOND, now);
        table.sweep_at(now + 2 * SECOND);
        assert_eq!(table.len(), 1);
        assert!(table.slots().capacity() < 1_000, "the table shrinks: {}", table.slots().capacity());
    }
}
