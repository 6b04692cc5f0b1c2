//! The publisher side of a run: M events at R per second, over HTTP (`POST /publish`, batched per
//! tick), raw `XADD` or `PUBLISH`, or to the Mercure hub (one `POST` per update, in order), each
//! event carrying its per-topic sequence number and send time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use fred::interfaces::{ClientLike, PubsubInterface, StreamsInterface};
use shared::Topic;
use shared::keys::KeyLayout;

use crate::payload;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Via {
    Http,
    Xadd,
    Publish,
}

#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub via: Via,
    /// HTTP: the node to publish on.
    pub target: String,
    pub token: String,
    /// XADD/PUBLISH: the Redis the gateways use, and their key prefix.
    pub redis_url: Option<String>,
    pub prefix: String,
    /// Events go to these topics in turn.
    pub topics: Vec<String>,
    pub events: u64,
    pub rate: f64,
    pub payload: usize,
    /// HTTP to the Mercure hub instead of `/publish` (the topics are then Mercure topics).
    pub mercure: bool,
    /// Mercure: connections a tick's updates are split over, posted concurrently.
    pub publishers: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Events accepted, per topic (their numbers are `0..n`).
    pub published: HashMap<String, u64>,
    pub errors: u64,
    pub seconds: f64,
}

enum Sink {
    Http { client: reqwest::Client, url: String, token: String },
    Mercure { client: reqwest::Client, url: String, token: String, publishers: usize },
    Redis { client: fred::clients::Client, keys: KeyLayout, live: bool, topics: Vec<Topic> },
}

/// How often events are sent: due events of a tick go out together.
const TICK: Duration = Duration::from_millis(5);

/// Publishes per `plan`. `progress` is told the running total.
pub(crate) async fn run(plan: &Plan, progress: impl Fn(u64)) -> anyhow::Result<Outcome> {
    let topics = || -> anyhow::Result<Vec<Topic>> { plan.topics.iter().map(|t| Topic::parse(t).context("topic")).collect() };
    let sink = match plan.via {
        Via::Http if plan.mercure => Sink::Mercure {
            client: reqwest::Client::builder().http1_only().build()?,
            url: format!("{}{}", plan.target, crate::mercure::HUB_PATH),
            token: plan.token.clone(),
            publishers: plan.publishers.max(1),
        },
        Via::Http => Sink::Http {
            client: reqwest::Client::builder().http1_only().build()?,
            url: format!("{}/publish", plan.target),
            token: plan.token.clone(),
        },
        _ if plan.mercure => anyhow::bail!("Mercure updates are published over HTTP only"),
        Via::Xadd | Via::Publish => {
            let url = plan.redis_url.as_deref().context("--redis-url is needed to publish with XADD or PUBLISH")?;
            let config = fred::types::config::Config::from_url(url).context("--redis-url")?;
            let client = fred::types::Builder::from_config(config).build()?;
            client.init().await.context("connecting to Redis")?;
            Sink::Redis { client, keys: KeyLayout::new(&plan.prefix), live: plan.via == Via::Publish, topics: topics()? }
        }
    };
    if !plan.mercure {
        topics()?;
    }
    let mut out = Outcome::default();
    let mut next_seq: Vec<u64> = vec![0; plan.topics.len()];
    let start = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while sent < plan.events {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * plan.rate) as u64 + 1).min(plan.events);
        if due <= sent {
            continue;
        }
        let batch: Vec<(usize, u64)> = (sent..due)
            .map(|n| {
                let t = (n % plan.topics.len() as u64) as usize;
                let seq = next_seq[t];
                next_seq[t] += 1;
                (t, seq)
            })
            .collect();
        sent = due;
        let ok = send(&sink, &plan.topics, &batch, plan.payload).await;
        for ((t, _), accepted) in batch.iter().zip(ok) {
            if accepted {
                *out.published.entry(plan.topics[*t].clone()).or_default() += 1;
            } else {
                out.errors += 1;
            }
        }
        progress(sent);
    }
    out.seconds = start.elapsed().as_secs_f64();
    if let Sink::Redis { client, .. } = &sink {
        let _ = client.quit().await;
    }
    Ok(out)
}

/// Sends one tick's events, in order per topic; says which were accepted.
async fn send(sink: &Sink, names: &[String], batch: &[(usize, u64)], size: usize) -> Vec<bool> {
    match sink {
        Sink::Http { client, url, token } => {
            let mut accepted = Vec::with_capacity(batch.len());
            // Within the gateway's default batch limit; chunks go one after the other, in order.
            for chunk in batch.chunks(500) {
                let body: Vec<serde_json::Value> =
                    chunk.iter().map(|(t, seq)| serde_json::json!({ "topic": names[*t], "data": payload::make(*seq, size) })).collect();
                let ok = matches!(client.post(url).bearer_auth(token).json(&body).send().await, Ok(r) if r.status() == 200);
                accepted.extend(std::iter::repeat_n(ok, chunk.len()));
            }
            accepted
        }
        Sink::Mercure { client, url, token, publishers } => {
            // One update per request (the hub takes no batches), each after the previous one's
            // answer: the hub numbers them in the order it receives them. With several
            // publishers, the tick's updates are split into as many runs, posted concurrently on
            // their own connections: the runs may then be stored in another order.
            let runs = batch.chunks(batch.len().div_ceil(*publishers).max(1)).map(|run| async move {
                let mut accepted = Vec::with_capacity(run.len());
                for (t, seq) in run {
                    let id = crate::mercure::update_id(&names[*t], *seq);
                    let form = [("topic", names[*t].as_str()), ("id", &id), ("data", &payload::make(*seq, size))];
                    // The answer is the update's id; reading it lets the connection be reused.
                    let ok = match client.post(url).bearer_auth(token).form(&form).send().await {
                        Ok(r) if r.status() == 200 => r.text().await.is_ok_and(|answer| answer == id),
                        _ => false,
                    };
                    accepted.push(ok);
                }
                accepted
            });
            futures::future::join_all(runs).await.concat()
        }
        Sink::Redis { client, keys, live, topics } => {
            // One connection, pipelined: commands reach Redis in the order they are issued, so
            // each topic's events keep their order.
            let calls = batch.iter().map(|(t, seq)| {
                let data = payload::make(*seq, size);
                async move {
                    if *live {
                        client.publish::<i64, _, _>(keys.live(&topics[*t]), data).await.is_ok()
                    } else {
                        client
                            .xadd::<String, _, _, _, _>(keys.stream(&topics[*t]), false, None::<()>, "*", vec![("data", data)])
                            .await
                            .is_ok()
                    }
                }
            });
            futures::future::join_all(calls).await
        }
    }
}
