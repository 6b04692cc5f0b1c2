//! What the upstream knows of each followed topic: where its reading stands, which topics wait to
//! be read, and which are set aside because Redis answers about them with what cannot be read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use shared::{StreamId, Topic};
use tokio::time::Instant;

/// Ids remembered per topic to find, after a failover, where the server's history and what the
/// node delivered part (and not to deliver an event twice across a rewind).
const RECENT: usize = 32;
/// How long a topic whose read came back malformed waits before it is read again, the first time;
/// each further malformed read doubles it, up to [`SET_ASIDE_MAX`]. An `xadd` notification for
/// the topic has it read at once (something wrote a stream there).
const SET_ASIDE_FIRST: Duration = Duration::from_secs(1);
const SET_ASIDE_MAX: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(super) struct Follow {
    /// The newest id read (delivered to the fan-out, or skipped), or the tail when the topic was
    /// armed.
    pub(super) last: StreamId,
    /// The ids delivered last, oldest first.
    pub(super) recent: VecDeque<StreamId>,
}

impl Follow {
    pub(super) fn new(tail: StreamId) -> Self {
        Self { last: tail, recent: VecDeque::new() }
    }

    /// Records `id` among the recently delivered ids; false if it is there already (it was
    /// delivered before a rewind).
    pub(super) fn remember(&mut self, id: StreamId) -> bool {
        if self.recent.contains(&id) {
            return false;
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
        true
    }

    /// Moves the position to `id` if that is forward; says whether it moved.
    pub(super) fn advance(&mut self, id: StreamId) -> bool {
        if id > self.last {
            self.last = id;
            return true;
        }
        false
    }
}

/// A topic whose last read came back malformed: not read again before `until`.
#[derive(Debug)]
struct SetAside {
    until: Instant,
    wait: Duration,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) followed: HashMap<Topic, Follow>,
    pub(super) pending: HashSet<Topic>,
    /// Topics whose position must be checked against the server before the next read.
    pub(super) verify: HashSet<Topic>,
    set_aside: HashMap<Topic, SetAside>,
}

impl State {
    /// Up to `max` pending topics with their positions, taken off the pending set. Topics set aside
    /// until later are dropped from it too: [`State::release_due`] brings them back.
    pub(super) fn take_batch(&mut self, max: usize, now: Instant) -> Vec<(Topic, StreamId)> {
        let set_aside = &self.set_aside;
        self.pending.retain(|t| set_aside.get(t).is_none_or(|s| s.until <= now));
        let take: Vec<Topic> = self.pending.iter().take(max).cloned().collect();
        take.into_iter()
            .filter_map(|t| {
                self.pending.remove(&t);
                self.followed.get(&t).map(|f| (t, f.last))
            })
            .collect()
    }

    /// Sets `topic` aside after a malformed read: for [`SET_ASIDE_FIRST`], or twice as long as
    /// the last time. True the first time (the caller logs then, not on every retry).
    pub(super) fn set_aside(&mut self, topic: &Topic, now: Instant) -> bool {
        match self.set_aside.get_mut(topic) {
            Some(s) => {
                s.wait = (s.wait * 2).min(SET_ASIDE_MAX);
                s.until = now + s.wait;
                false
            }
            None => {
                self.set_aside.insert(topic.clone(), SetAside { until: now + SET_ASIDE_FIRST, wait: SET_ASIDE_FIRST });
                true
            }
        }
    }

    /// `topic` was read well: it is no longer set aside. True if it was.
    pub(super) fn recovered(&mut self, topic: &Topic) -> bool {
        self.set_aside.remove(topic).is_some()
    }

    /// Has a set-aside topic read at the next pass (something wrote to its stream).
    pub(super) fn release(&mut self, topic: &Topic, now: Instant) {
        if let Some(s) = self.set_aside.get_mut(topic) {
            s.until = now;
        }
    }

    /// Marks the set-aside topics whose wait is over pending; returns when the next one's is.
    pub(super) fn release_due(&mut self, now: Instant) -> Option<Instant> {
        self.set_aside.retain(|t, _| self.followed.contains_key(t));
        for (t, s) in &self.set_aside {
            if s.until <= now {
                self.pending.insert(t.clone());
            }
        }
        self.set_aside.values().map(|s| s.until).filter(|until| *until > now).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(topics: &[&str]) -> (State, Vec<Topic>) {
        let mut state = State::default();
        let topics: Vec<Topic> = topics.iter().map(|t| Topic::parse(t).expect("topic")).collect();
        for t in &topics {
            state.followed.insert(t.clone(), Follow::new(StreamId::new(1, 0)));
            state.pending.insert(t.clone());
        }
        (state, topics)
    }

    #[test]
    fn a_topic_set_aside_is_left_out_until_its_wait_is_over_and_waits_longer_each_time() {
        let (mut state, topics) = state_with(&["bad", "good"]);
        let now = Instant::now();
        assert!(state.set_aside(&topics[0], now), "the first time is the one to log");
        let batch = state.take_batch(10, now);
        assert_eq!(batch.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>(), vec![topics[1].clone()]);
        assert_eq!(state.release_due(now), Some(now + SET_ASIDE_FIRST));
        assert!(state.pending.is_empty());
        let later = now + SET_ASIDE_FIRST;
        assert_eq!(state.release_due(later), None);
        assert_eq!(state.take_batch(10, later).len(), 1, "read again once its wait is over");
        assert!(!state.set_aside(&topics[0], later), "logged once");
        assert_eq!(state.release_due(later), Some(later + 2 * SET_ASIDE_FIRST), "the wait doubles");
        for _ in 0..10 {
            state.set_aside(&topics[0], later);
        }
        assert_eq!(state.release_due(later), Some(later + SET_ASIDE_MAX), "up to a bound");
        state.release(&topics[0], later);
        assert_eq!(state.release_due(later), None, "an xadd notification has it read at once");
        assert!(state.pending.contains(&topics[0]));
        assert!(state.recovered(&topics[0]));
        assert!(!state.recovered(&topics[0]));
    }

    #[test]
    fn a_position_only_moves_forward_and_an_id_is_delivered_once() {
        let mut f = Follow::new(StreamId::new(5, 0));
        assert!(!f.advance(StreamId::new(4, 0)));
        assert!(f.advance(StreamId::new(6, 0)));
        assert!(f.remember(StreamId::new(6, 0)));
        assert!(!f.remember(StreamId::new(6, 0)));
    }
}
