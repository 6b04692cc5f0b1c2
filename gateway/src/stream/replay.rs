//! The replay of a resumed stream: the history of each of its topics after the topic's position,
//! read a page at a time and merged into one sequence in id order.
//!
//! Why merged: live, a multi-topic stream interleaves its topics' events in the order they were
//! published; a client that resumes must see what it missed in that same order, not topic by
//! topic. Ids say that order: on the embedded bus they increase across all topics; on Redis they
//! are the server's clock (`<ms>-<seq>`), so events published in different milliseconds compare
//! by publication. Equal ids (two topics' events in the same millisecond, which Redis does not
//! order) come in the order of the stream's topics.
//!
//! Pure bookkeeping: the stream does the reads ([`Merge::wanted`]) and hands each page in
//! ([`Merge::absorb`]); at most one page per topic is held at a time.

use std::collections::VecDeque;
use std::sync::Arc;

use shared::StreamId;

use crate::bus::Delivery;

/// The topics still replaying, in the stream's topic order.
#[derive(Debug)]
pub(super) struct Merge {
    lanes: Vec<Lane>,
}

#[derive(Debug)]
struct Lane {
    /// Index of the topic in the stream.
    topic: usize,
    /// Events read and not yet handed out, oldest first.
    read: VecDeque<Arc<Delivery>>,
    /// Whether history may hold more than what was read: nothing read yet, or the last page was
    /// full.
    more: bool,
    /// The topic's tail at the last read.
    tail: StreamId,
}

impl Lane {
    /// The order cannot be decided before this lane's next page is read.
    fn needs_read(&self) -> bool {
        self.read.is_empty() && self.more
    }
}

/// What comes next in the merged replay.
#[derive(Debug)]
pub(super) enum Step {
    /// The event with the lowest id among the topics still replaying.
    Send(Arc<Delivery>),
    /// Topic `topic` is replayed to its end; `tail` is its tail at the last read.
    Finished { topic: usize, tail: StreamId },
    /// Some topics need their next page ([`Merge::wanted`]) before anything else can be said.
    Read,
    /// Every topic is replayed.
    Done,
}

impl Merge {
    /// A replay of the topics at these indices, nothing read yet.
    pub(super) fn new(topics: impl IntoIterator<Item = usize>) -> Self {
        let lanes = topics.into_iter().map(|topic| Lane { topic, read: VecDeque::new(), more: true, tail: StreamId::default() }).collect();
        Self { lanes }
    }

    /// The topics whose next page must be read now.
    pub(super) fn wanted(&self) -> impl Iterator<Item = usize> + '_ {
        self.lanes.iter().filter(|l| l.needs_read()).map(|l| l.topic)
    }

    /// A page of `topic`'s history, oldest first, read with a limit of `asked` events: a page as
    /// long as that may have more behind it.
    pub(super) fn absorb(&mut self, topic: usize, page: Vec<Arc<Delivery>>, asked: usize, tail: StreamId) {
        if let Some(lane) = self.lanes.iter_mut().find(|l| l.topic == topic) {
            lane.more = page.len() == asked;
            lane.read.extend(page);
            lane.tail = tail;
        }
    }

    pub(super) fn next(&mut self) -> Step {
        if self.lanes.iter().any(Lane::needs_read) {
            return Step::Read;
        }
        if let Some(i) = self.lanes.iter().position(|l| l.read.is_empty()) {
            let lane = self.lanes.remove(i);
            return Step::Finished { topic: lane.topic, tail: lane.tail };
        }
        // Every lane has a head: the lowest id goes first; `min_by_key` keeps the first of equal
        // ones, which is the earlier topic.
        match self.lanes.iter_mut().min_by_key(|l| l.read.front().map(|d| d.id)) {
            Some(lane) => lane.read.pop_front().map_or(Step::Read, Step::Send),
            None => Step::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use shared::{Event, Topic};

    use super::*;

    fn delivery(topic: &str, ms: u64) -> Arc<Delivery> {
        let event = Event {
            topic: Topic::parse(topic).expect("topic"),
            id: Some(StreamId::new(ms, 0)),
            name: None,
            data: String::new(),
            retry: None,
        };
        Arc::new(Delivery::new(&event, None))
    }

    /// Drives the merge with pages of `page` events cut from each topic's whole history.
    fn replay(histories: &[Vec<Arc<Delivery>>], page: usize) -> (Vec<u64>, Vec<usize>) {
        let mut merge = Merge::new(0..histories.len());
        let mut offsets = vec![0; histories.len()];
        let (mut sent, mut finished) = (Vec::new(), Vec::new());
        loop {
            match merge.next() {
                Step::Send(d) => sent.push(d.id.expect("an id").ms),
                Step::Finished { topic, tail } => {
                    assert_eq!(tail, StreamId::new(99, 0));
                    finished.push(topic);
                }
                Step::Done => return (sent, finished),
                Step::Read => {
                    let wanted: Vec<usize> = merge.wanted().collect();
                    assert!(!wanted.is_empty(), "a read is asked for only when some topic needs one");
                    for t in wanted {
                        let chunk: Vec<_> = histories[t].iter().skip(offsets[t]).take(page).cloned().collect();
                        offsets[t] += chunk.len();
                        merge.absorb(t, chunk, page, StreamId::new(99, 0));
                    }
                }
            }
        }
    }

    #[test]
    fn topics_merge_in_id_order_across_pages() {
        let a = vec![delivery("a", 1), delivery("a", 4), delivery("a", 5), delivery("a", 9)];
        let b = vec![delivery("b", 2), delivery("b", 3), delivery("b", 6)];
        let c = vec![];
        let d = vec![delivery("d", 7), delivery("d", 8)];
        for page in [1, 2, 3, 10] {
            let (sent, finished) = replay(&[a.clone(), b.clone(), c.clone(), d.clone()], page);
            assert_eq!(sent, [1, 2, 3, 4, 5, 6, 7, 8, 9], "page size {page}");
            assert_eq!(finished.len(), 4, "every topic finishes once");
            assert_eq!(finished[0], 2, "the empty topic finishes first");
        }
    }

    #[test]
    fn equal_ids_keep_the_topic_order() {
        let (sent, _) = replay(&[vec![delivery("a", 5)], vec![delivery("b", 5), delivery("b", 6)], vec![delivery("c", 5)]], 1);
        assert_eq!(sent, [5, 5, 5, 6]);
        let mut merge = Merge::new([0, 1]);
        // Pages of one event, asked with a limit of two: nothing more follows.
        merge.absorb(1, vec![delivery("b", 5)], 2, StreamId::new(99, 0));
        merge.absorb(0, vec![delivery("a", 5)], 2, StreamId::new(99, 0));
        assert!(matches!(merge.next(), Step::Send(d) if d.topic.as_str() == "a"), "the earlier topic of the stream first");
    }

    #[test]
    fn nothing_to_replay_is_done_at_once() {
        assert!(matches!(Merge::new([]).next(), Step::Done));
    }
}
