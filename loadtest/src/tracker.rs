//! Per-stream accounting of sequence numbers: duplicates, out-of-order arrivals and, at the end,
//! losses, in memory that stays small while events arrive in order.

use std::collections::BTreeSet;

#[derive(Debug, Default, Clone)]
pub(crate) struct Tracker {
    highest: Option<u64>,
    /// Numbers below `highest` not seen yet.
    missing: BTreeSet<u64>,
    pub received: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// The first duplicated numbers (up to `KEEP_DUPLICATES`), so that a run can tell when
    /// they were published.
    pub duplicated: Vec<u64>,
}

/// Duplicated numbers kept per stream: enough to place them in time, bounded if a bug repeats
/// a whole history.
const KEEP_DUPLICATES: usize = 64;

impl Tracker {
    pub(crate) fn record(&mut self, seq: u64) {
        self.received += 1;
        match self.highest {
            None => {
                self.missing.extend(0..seq);
                self.highest = Some(seq);
            }
            Some(h) if seq > h => {
                self.missing.extend(h + 1..seq);
                self.highest = Some(seq);
            }
            Some(_) => {
                if self.missing.remove(&seq) {
                    self.out_of_order += 1;
                } else {
                    self.duplicates += 1;
                    if self.duplicated.len() < KEEP_DUPLICATES {
                        self.duplicated.push(seq);
                    }
                }
            }
        }
    }

    /// Distinct numbers seen.
    pub(crate) fn distinct(&self) -> u64 {
        self.highest.map_or(0, |h| h + 1 - self.missing.len() as u64)
    }

    /// Of the `expected` numbers `0..expected`, how many never came.
    pub(crate) fn lost(&self, expected: u64) -> u64 {
        expected.saturating_sub(self.distinct())
    }

    /// Whether `seq` came at least once.
    pub(crate) fn seen(&self, seq: u64) -> bool {
        self.highest.is_some_and(|h| seq <= h) && !self.missing.contains(&seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_is_complete() {
        let mut t = Tracker::default();
        (0..100).for_each(|s| t.record(s));
        assert_eq!((t.received, t.duplicates, t.out_of_order, t.lost(100)), (100, 0, 0, 0));
        assert!(t.missing.is_empty());
    }

    #[test]
    fn gaps_duplicates_and_late_arrivals_are_told_apart() {
        let mut t = Tracker::default();
        for s in [0, 1, 3, 3, 2, 5] {
            t.record(s);
        }
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.out_of_order, 1);
        assert_eq!(t.lost(7), 2, "4 and 6 never came");
        assert_eq!(t.duplicated, vec![3]);
        assert!(t.seen(2) && t.seen(5) && !t.seen(4) && !t.seen(6));
    }

    #[test]
    fn a_stream_that_starts_late_misses_the_beginning() {
        let mut t = Tracker::default();
        t.record(2);
        assert_eq!(t.lost(3), 2);
        assert_eq!(Tracker::default().lost(5), 5);
    }
}
