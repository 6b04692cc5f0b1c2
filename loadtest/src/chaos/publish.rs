//! The chaos run's publisher: a steady rate of numbered events over HTTP, each batch to the next
//! node in turn, moving on to another node when one is down. A batch is sent again only when it
//! surely never landed (the connection was refused, or the node said it is draining before
//! reading it). Any other failure leaves its outcome unknown: the batch is not sent again (it
//! might be in the stream already, and a second copy would be a duplicate the gateway did not
//! make), and the run asks Redis at the end what the streams hold.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::payload;

pub(super) struct Plan {
    pub targets: Vec<String>,
    pub token: String,
    pub topics: Vec<String>,
    pub rate: f64,
    pub payload: usize,
}

/// Counted as the publisher goes (the progress line reads them).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub sent: AtomicU64,
    pub accepted: AtomicU64,
    pub unknown: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
}

/// What the publisher did, in events.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Tally {
    /// Events given a sequence number.
    pub sent: u64,
    /// Answered 200.
    pub accepted: u64,
    /// Sent, but no answer or an error answer: they may or may not be in the stream.
    pub unknown: u64,
    /// Never landed for sure (every node refused them).
    pub failed: u64,
    /// Batch sends repeated on another node after a sure refusal.
    pub retried: u64,
    pub seconds: f64,
    /// The sequence numbers answered 200, per topic: each must be in its stream.
    #[serde(skip)]
    pub accepted_seqs: HashMap<String, Vec<u64>>,
}

/// How one batch send ended.
enum Sent {
    Accepted,
    /// Nothing reached the stream: another node may take the batch.
    Refused,
    Unknown,
}

/// How often due events are sent.
const TICK: Duration = Duration::from_millis(5);

/// Publishes at `plan.rate` until `stop` fires.
pub(super) async fn run(plan: Plan, counters: Arc<Counters>, stop: CancellationToken) -> anyhow::Result<Tally> {
    let client = reqwest::Client::builder().http1_only().timeout(Duration::from_secs(3)).build()?;
    let mut next_seq = vec![0u64; plan.topics.len()];
    let start = Instant::now();
    let mut sent = 0u64;
    let mut node = 0usize;
    let mut accepted_seqs: HashMap<String, Vec<u64>> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.is_cancelled() {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * plan.rate) as u64 + 1;
        if due <= sent {
            continue;
        }
        // Within the gateway's default batch limit; chunks go one after the other, in order.
        let numbers: Vec<(usize, u64)> = (sent..due.min(sent + 500))
            .map(|n| {
                let t = (n % plan.topics.len() as u64) as usize;
                let seq = next_seq[t];
                next_seq[t] += 1;
                (t, seq)
            })
            .collect();
        let batch: Vec<serde_json::Value> = numbers
            .iter()
            .map(|(t, seq)| serde_json::json!({ "topic": plan.topics[*t], "data": payload::make(*seq, plan.payload) }))
            .collect();
        let n = batch.len() as u64;
        sent += n;
        counters.sent.fetch_add(n, Ordering::Relaxed);
        node = (node + 1) % plan.targets.len();
        let mut tries = 0;
        let counter = loop {
            match send(&client, &plan.targets[node], &plan.token, &batch).await {
                Sent::Accepted => {
                    for (t, seq) in &numbers {
                        accepted_seqs.entry(plan.topics[*t].clone()).or_default().push(*seq);
                    }
                    break &counters.accepted;
                }
                Sent::Unknown => break &counters.unknown,
                Sent::Refused if tries < 5 * plan.targets.len() && !stop.is_cancelled() => {
                    tries += 1;
                    counters.retried.fetch_add(1, Ordering::Relaxed);
                    node = (node + 1) % plan.targets.len();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Sent::Refused => break &counters.failed,
            }
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Ok(Tally {
        sent: get(&counters.sent),
        accepted: get(&counters.accepted),
        unknown: get(&counters.unknown),
        failed: get(&counters.failed),
        retried: get(&counters.retried),
        seconds: start.elapsed().as_secs_f64(),
        accepted_seqs,
    })
}

async fn send(client: &reqwest::Client, target: &str, token: &str, batch: &[serde_json::Value]) -> Sent {
    let response = match client.post(format!("{target}/publish")).bearer_auth(token).json(batch).send().await {
        Ok(r) => r,
        // Refused or unreachable: the request never left.
        Err(e) if e.is_connect() => return Sent::Refused,
        Err(_) => return Sent::Unknown,
    };
    match response.status().as_u16() {
        200 => Sent::Accepted,
        // A draining node answers before reading the batch.
        503 => match response.json::<serde_json::Value>().await {
            Ok(body) if body["error"] == "shutting_down" => Sent::Refused,
            _ => Sent::Unknown,
        },
        _ => Sent::Unknown,
    }
}
