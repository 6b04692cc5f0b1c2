//! The chaos run: streams spread over three local gateway nodes sharing one Redis, a steady
//! publish rate on a few stream topics, and faults one after the other with pauses between them:
//! a node killed and started again, Redis restarted, some clients stalled until the gateway cuts
//! them, a rolling restart of every node. At the end every client's events are compared with what
//! the topics' streams really hold (read back from Redis), per fault, and every interruption's
//! time to resume is reported.
//!
//! `harness.rs` starts and breaks the processes, `publish.rs` publishes with fail-over,
//! `judge.rs` holds every stream to what Redis holds, `report.rs` holds the figures; the streams are the other scenarios' (`subscribers.rs`).

mod harness;
mod judge;
mod publish;
mod report;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fred::interfaces::{ClientLike, StreamsInterface};
use indicatif::ProgressBar;
use shared::Topic;
use shared::keys::KeyLayout;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Opts};
use crate::payload;
use crate::report::Report;
use crate::setup::Setup;
use crate::streams::Live;
use crate::subscribers;
use harness::{Node, Redis};
use judge::{Entries, judge, resume_times};
use report::{ChaosReport, Phase};

/// The faults a run can inject, in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Fault {
    /// SIGKILL one node and start it again on the same port.
    KillNode,
    /// Stop Redis (SIGTERM) and start it again on the same port and data.
    RestartRedis,
    /// The stalling streams stop reading until the gateway cuts them, then resume.
    Stall,
    /// SIGTERM each node in turn (it drains), wait for its exit, start it again, wait until ready.
    Rolling,
}

impl Fault {
    pub(crate) const ALL: [Fault; 4] = [Fault::KillNode, Fault::RestartRedis, Fault::Stall, Fault::Rolling];

    fn name(self) -> &'static str {
        match self {
            Self::KillNode => "kill-node",
            Self::RestartRedis => "restart-redis",
            Self::Stall => "stall",
            Self::Rolling => "rolling",
        }
    }
}

/// Nodes the harness starts.
const NODES: usize = 3;
/// Prefix of the harness's Redis keys.
const PREFIX: &str = "chaos";

/// The progress line, and the run's steps as lines above it (on standard error, also when it is
/// not a terminal and the line is not drawn: a log of a long run shows the faults as they come).
struct Progress {
    bar: ProgressBar,
    quiet: bool,
}

impl Progress {
    fn say(&self, line: String) {
        if self.quiet {
            return;
        }
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

/// The processes of a run and where their files go.
struct Local {
    dir: PathBuf,
    redis: Redis,
    nodes: Vec<Node>,
}

pub(crate) async fn run(mut cli: Cli) -> anyhow::Result<u8> {
    let run_id = crate::setup::random_id();
    if cli.opts.secret.is_none() && cli.opts.key_file.is_none() && cli.opts.tokens_file.is_none() {
        cli.opts.secret = Some(format!("chaos-{run_id}-{:032x}", payload::now_micros()));
    }
    let secret = cli.opts.secret.clone().context("the local nodes verify tokens with --secret; give that instead of a key or a file")?;
    let o = cli.opts.clone();
    if o.connections == 0 || o.topics == 0 || o.rate <= 0.0 {
        bail!("chaos needs --connections, --topics and --rate above 0");
    }
    let gateway_bin = match &o.gateway_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name(format!("gateway{}", std::env::consts::EXE_SUFFIX)),
    };
    if !gateway_bin.exists() {
        bail!("no gateway binary at {} (build it: cargo build -p gateway; or give --gateway-bin)", gateway_bin.display());
    }
    let dir = std::env::temp_dir().join(format!("loadtest-chaos-{run_id}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let bar = if o.quiet { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
    bar.enable_steady_tick(Duration::from_millis(200));
    let bar = Progress { bar, quiet: o.quiet };
    let say = |line: String| bar.say(line);

    let redis = Redis::start(&o.redis_server, &dir).await?;
    let mut env: Vec<(String, String)> = vec![
        ("GATEWAY_JWT_SECRET".into(), secret),
        ("GATEWAY_REDIS_URL".into(), redis.url()),
        ("GATEWAY_REDIS_PREFIX".into(), PREFIX.into()),
        ("RUST_LOG".into(), "warn".into()),
    ];
    env.extend(harness::GATEWAY_ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let mut nodes = Vec::with_capacity(NODES);
    for i in 0..NODES {
        nodes.push(Node::start(&gateway_bin, env.clone(), dir.join(format!("gateway-{i}.log"))).await?);
    }
    let mut local = Local { dir, redis, nodes };
    say(format!("harness: redis {} and nodes {} (files in {})", local.redis.url(), local.targets().join(" "), local.dir.display()));
    cli.opts.targets = local.targets();
    let setup = Setup::new(cli, run_id)?;
    let result = drive(&setup, &mut local, &bar).await;
    bar.bar.finish_and_clear();
    let report = result?;
    print!("{}", report.human());
    if let Some(path) = &o.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?).with_context(|| format!("writing {}", path.display()))?;
    }
    if o.keep_files || !report.is_clean() {
        println!("files               {}", local.dir.display());
    } else {
        drop(local.nodes);
        drop(local.redis);
        let _ = std::fs::remove_dir_all(&local.dir);
    }
    Ok(if !report.is_clean() {
        1
    } else if !report.is_complete() {
        3
    } else {
        0
    })
}

impl Local {
    fn targets(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// Streams the nodes have cut as too slow (queue full or write timeout), from their metrics.
    async fn cut_clients(&self) -> anyhow::Result<u64> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let mut total = 0;
        for node in &self.nodes {
            let text = client.get(format!("{}/metrics", node.url())).send().await?.text().await?;
            total += text
                .lines()
                .filter(|l| {
                    l.starts_with("sse_gateway_connections_closed_total{")
                        && (l.contains(r#"reason="slow""#) || l.contains(r#"reason="write_timeout""#))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64;
        }
        Ok(total)
    }
}

/// Opens the streams, publishes, injects the faults, and judges every stream against Redis.
async fn drive(setup: &Setup, local: &mut Local, bar: &Progress) -> anyhow::Result<ChaosReport> {
    let o = &setup.cli.opts;
    let streams = setup.streams()?;
    let live = Arc::new(Live { pausable: streams.iter().filter(|s| s.pausable).count() as u64, ..Live::default() });
    let specs = streams.clone();
    let (ready_tx, ready) = oneshot::channel();
    let (done, done_rx) = oneshot::channel();
    let subscribers = tokio::spawn(subscribers::run_streams(setup.subscriber_plan(streams), Arc::clone(&live), ready_tx, done_rx));
    let counters = Arc::new(publish::Counters::default());
    let ticker = {
        let (bar, live, counters, total) = (bar.bar.clone(), Arc::clone(&live), Arc::clone(&counters), o.connections);
        tokio::spawn(async move {
            loop {
                bar.set_message(format!(
                    "streams {}/{total} open, {} failed, {} resumed; {} published ({} unknown); {} events received",
                    live.established.load(Ordering::Relaxed),
                    live.failed.load(Ordering::Relaxed),
                    live.reconnects.load(Ordering::Relaxed),
                    counters.accepted.load(Ordering::Relaxed),
                    counters.unknown.load(Ordering::Relaxed),
                    live.received.load(Ordering::Relaxed),
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let opening = Instant::now();
    ready.await.context("the streams' task ended early")?;
    bar.say(format!(
        "streams: {} open, {} failed in {:.1} s",
        live.established.load(Ordering::Relaxed),
        live.failed.load(Ordering::Relaxed),
        opening.elapsed().as_secs_f64()
    ));

    let topics = setup.publish_topics();
    let stop = CancellationToken::new();
    let plan = publish::Plan {
        targets: local.targets(),
        token: setup.tokens.token(usize::MAX, Duration::from_secs(24 * 3600))?,
        topics: topics.clone(),
        rate: o.rate,
        payload: o.payload,
    };
    let started_us = payload::now_micros();
    let started = Instant::now();
    let publisher = tokio::spawn(publish::run(plan, Arc::clone(&counters), stop.clone()));
    let pause: Duration = o.pause.into();
    let mut phases = vec![Phase { name: "steady".into(), ..Phase::default() }];
    // Phase starts in publish-time microseconds, to place every event.
    let mut starts_us = vec![started_us];
    tokio::time::sleep(pause).await;
    for (i, fault) in o.faults.iter().enumerate() {
        let phase = i + 1;
        live.phase.store(phase, Ordering::Relaxed);
        starts_us.push(payload::now_micros());
        let at = started.elapsed();
        bar.say(format!("fault {phase}/{} {} at {:.1} s", o.faults.len(), fault.name(), at.as_secs_f64()));
        let detail = inject(*fault, local, &live, o, phase, bar).await?;
        let took = started.elapsed() - at;
        bar.say(format!("  {detail}"));
        phases.push(Phase { name: fault.name().into(), detail, at_s: at.as_secs_f64(), took_s: took.as_secs_f64(), ..Phase::default() });
        tokio::time::sleep(pause).await;
    }
    stop.cancel();
    let tally = publisher.await??;
    bar.say(format!("published {} events in {:.1} s; reading the streams back", tally.sent, tally.seconds));

    let truth = read_streams(&local.redis.url(), &topics).await?;
    let expected: HashMap<String, u64> = truth.iter().map(|(t, entries)| (t.clone(), entries.len() as u64)).collect();
    let _ = done.send(expected);
    let (base, outcomes) = subscribers.await??;
    ticker.abort();

    let mut report = ChaosReport {
        scenario: "chaos".into(),
        nodes: NODES,
        connections: o.connections as u64,
        topics: topics.len(),
        rate: o.rate,
        payload: o.payload,
        stalled_streams: specs.iter().filter(|s| s.pausable).count() as u64,
        publish: tally,
        gateway_env: harness::GATEWAY_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        ..ChaosReport::default()
    };
    judge(&mut report, &truth, &outcomes, &starts_us, &mut phases);
    let interruptions = std::mem::take(&mut *live.interruptions.lock().unwrap_or_else(|e| e.into_inner()));
    resume_times(&interruptions, &mut phases);
    report.phases = phases;
    report.lost_signals = base.lost_signals;
    report.streams = Report {
        scenario: "chaos".into(),
        events_published: report.stream_entries,
        publish_errors: report.publish.unknown + report.publish.failed,
        publish_seconds: report.publish.seconds,
        deliveries_expected: report.deliveries_expected,
        deliveries_received: report.deliveries_received,
        lost: report.lost,
        duplicated: report.duplicated,
        out_of_order: report.out_of_order,
        ..base
    };
    Ok(report)
}

/// Does `fault`; says what was done and how long the processes took.
async fn inject(fault: Fault, local: &mut Local, live: &Live, o: &Opts, phase: usize, bar: &Progress) -> anyhow::Result<String> {
    let (down_for, stall_for): (Duration, Duration) = (o.down_for.into(), o.stall_for.into());
    Ok(match fault {
        Fault::KillNode => {
            let i = (phase - 1) % local.nodes.len();
            let away = local.nodes[i].kill_and_restart(down_for).await?;
            format!("node {i} ({}) killed (SIGKILL) and ready again after {:.2} s", local.nodes[i].url(), away.as_secs_f64())
        }
        Fault::RestartRedis => {
            let away = local.redis.restart(down_for).await?;
            format!("redis stopped (SIGTERM) and answering again after {:.2} s", away.as_secs_f64())
        }
        Fault::Stall => {
            let before = local.cut_clients().await?;
            let stalled = live.pausable;
            let started = Instant::now();
            live.pause.send_replace(true);
            let mut cut = 0;
            while started.elapsed() < stall_for {
                tokio::time::sleep(Duration::from_millis(200)).await;
                cut = local.cut_clients().await?.saturating_sub(before);
                if cut >= stalled {
                    break;
                }
            }
            live.pause.send_replace(false);
            format!(
                "{stalled} streams stopped reading; the nodes cut {cut} slow clients (queue full or write timeout) within {:.1} s, then they read again",
                started.elapsed().as_secs_f64()
            )
        }
        Fault::Rolling => {
            let mut said = Vec::new();
            for (i, node) in local.nodes.iter_mut().enumerate() {
                let (exited, away) = node.roll().await?;
                bar.say(format!(
                    "  node {i} drained and exited in {:.2} s, ready again after {:.2} s",
                    exited.as_secs_f64(),
                    away.as_secs_f64()
                ));
                said.push(format!("node {i} exited in {:.2} s, back after {:.2} s", exited.as_secs_f64(), away.as_secs_f64()));
            }
            format!("rolling restart (SIGTERM, wait for exit, start, wait until ready): {}", said.join("; "))
        }
    })
}

/// Reads every topic's stream from Redis.
async fn read_streams(url: &str, topics: &[String]) -> anyhow::Result<HashMap<String, Entries>> {
    let config = fred::types::config::Config::from_url(url)?;
    let client = fred::types::Builder::from_config(config).build()?;
    client.init().await.context("connecting to Redis to read the streams back")?;
    let keys = KeyLayout::new(PREFIX);
    let mut truth = HashMap::new();
    for topic in topics {
        let key = keys.stream(&Topic::parse(topic).context("topic")?);
        let mut entries = Vec::new();
        let mut from = "-".to_owned();
        loop {
            let page: Vec<(String, HashMap<String, String>)> = client.xrange(&key, from.as_str(), "+", Some(10_000)).await?;
            let Some((last, _)) = page.last() else { break };
            from = format!("({last}");
            for (id, fields) in &page {
                let (seq, ts) = fields.get("data").and_then(|d| payload::parse(d)).with_context(|| format!("entry {id} of {key}"))?;
                entries.push((seq, ts));
            }
        }
        truth.insert(topic.clone(), entries);
    }
    let _ = client.quit().await;
    Ok(truth)
}
