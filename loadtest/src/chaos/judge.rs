//! The verdict of a chaos run: every client's events against what the topics' streams really
//! hold (read back from Redis after the run), and every interruption's time to resume, per phase.

use std::collections::{HashMap, HashSet};

use super::report::{ChaosReport, Phase, Spread};
use crate::streams::{Interruption, Outcome};

/// One topic's stream as Redis holds it: each entry's sequence number and publish time, in
/// stream order.
pub(super) type Entries = Vec<(u64, u64)>;

/// The phase an event published at `ts` belongs to.
fn phase_of(starts_us: &[u64], ts: u64) -> usize {
    starts_us.partition_point(|&s| s <= ts).saturating_sub(1)
}

/// Holds every stream to its topic's true content: each entry must have come exactly once.
pub(super) fn judge(
    report: &mut ChaosReport,
    truth: &HashMap<String, Entries>,
    outcomes: &[Outcome],
    starts_us: &[u64],
    phases: &mut [Phase],
) {
    let mut when: HashMap<&str, HashMap<u64, u64>> = HashMap::new();
    for (topic, entries) in truth {
        report.stream_entries += entries.len() as u64;
        let times = when.entry(topic.as_str()).or_default();
        for &(seq, ts) in entries {
            if times.insert(seq, ts).is_some() {
                report.stream_duplicates += 1;
            }
            phases[phase_of(starts_us, ts)].events += 1;
        }
    }
    for (topic, times) in &when {
        let accepted: HashSet<u64> = report.publish.accepted_seqs.get(*topic).map(|s| s.iter().copied().collect()).unwrap_or_default();
        report.accepted_missing += accepted.iter().filter(|s| !times.contains_key(s)).count() as u64;
        report.unknown_landed += times.keys().filter(|s| !accepted.contains(s)).count() as u64;
    }
    for outcome in outcomes {
        let entries = truth.get(&outcome.topic).map(Vec::as_slice).unwrap_or_default();
        let t = &outcome.tracker;
        report.deliveries_expected += entries.len() as u64;
        report.deliveries_received += t.received;
        report.duplicated += t.duplicates;
        report.out_of_order += t.out_of_order;
        let mut seen_in_stream = 0;
        for &(seq, ts) in entries {
            if t.seen(seq) {
                seen_in_stream += 1;
            } else {
                report.lost += 1;
                phases[phase_of(starts_us, ts)].lost += 1;
            }
        }
        report.phantom += t.distinct().saturating_sub(seen_in_stream);
        let times = when.get(outcome.topic.as_str());
        for seq in &t.duplicated {
            if let Some(ts) = times.and_then(|m| m.get(seq)) {
                phases[phase_of(starts_us, *ts)].duplicated += 1;
            }
        }
    }
}

/// Per phase: the clients interrupted and their times to reopen and to catch up.
pub(super) fn resume_times(interruptions: &[Interruption], phases: &mut [Phase]) {
    for (i, phase) in phases.iter_mut().enumerate() {
        let delayed: Vec<&Interruption> = interruptions.iter().filter(|x| x.phase == i && !x.broke).collect();
        let mut streams: Vec<usize> = delayed.iter().map(|x| x.stream).collect();
        streams.sort_unstable();
        streams.dedup();
        phase.streams_delayed = streams.len() as u64;
        phase.delayed_ms = Spread::of(delayed.iter().filter_map(|x| x.caught_up).collect());
        let here: Vec<&Interruption> = interruptions.iter().filter(|x| x.phase == i && x.broke).collect();
        let mut streams: Vec<usize> = here.iter().map(|x| x.stream).collect();
        streams.sort_unstable();
        streams.dedup();
        phase.streams_interrupted = streams.len() as u64;
        phase.interruptions = here.len() as u64;
        phase.not_reopened = here.iter().filter(|x| x.reopened.is_none()).count() as u64;
        phase.not_caught_up = here.iter().filter(|x| x.caught_up.is_none()).count() as u64;
        phase.reopened_ms = Spread::of(here.iter().filter_map(|x| x.reopened).collect());
        phase.caught_up_ms = Spread::of(here.iter().filter_map(|x| x.caught_up).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::Tracker;

    #[test]
    fn events_are_placed_in_the_phase_they_were_published_in() {
        let starts = [100, 200, 300];
        assert_eq!([phase_of(&starts, 100), phase_of(&starts, 199), phase_of(&starts, 200), phase_of(&starts, 1000)], [0, 0, 1, 2]);
    }

    #[test]
    fn streams_are_held_to_what_redis_holds_not_to_what_was_sent() {
        // Seq 2 was sent with an unknown outcome and never landed: nobody must be blamed for it.
        let truth = HashMap::from([("t".to_owned(), vec![(0, 150), (1, 160), (3, 250), (4, 260)])]);
        let mut complete = Tracker::default();
        [0, 1, 3, 4].into_iter().for_each(|s| complete.record(s));
        let mut gappy = Tracker::default();
        [0, 1, 1, 4].into_iter().for_each(|s| gappy.record(s));
        let outcomes = vec![Outcome { topic: "t".into(), tracker: complete }, Outcome { topic: "t".into(), tracker: gappy }];
        let mut phases = vec![Phase::default(), Phase::default()];
        let mut report = ChaosReport::default();
        judge(&mut report, &truth, &outcomes, &[100, 200], &mut phases);
        assert_eq!((report.stream_entries, report.deliveries_expected), (4, 8));
        assert_eq!((report.lost, report.duplicated, report.phantom), (1, 1, 0));
        assert_eq!((phases[0].duplicated, phases[1].lost), (1, 1), "seq 1 was published in phase 0, seq 3 in phase 1");
        assert!(!report.is_clean());
    }
}
