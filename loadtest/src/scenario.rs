//! The command line, the seven scenarios as plans, and the run itself: open the streams, publish,
//! collect, report.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::oneshot;

use crate::publisher::{self, Via};
use crate::report::Report;
use crate::streams::{Live, Plan, StreamSpec};
use crate::subscribers;
use crate::tokens::Tokens;
use crate::{memory, workers};

#[derive(Debug, Clone, Parser)]
#[command(name = "loadtest", about = "Load and correctness tool for the SSE gateway", version, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
    #[command(flatten)]
    pub opts: Opts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Scenario {
    /// Open N streams and hold them: gateway memory per idle connection (give --gateway-pid).
    Idle,
    /// N streams on one topic; M events at R/s to it.
    Fanout,
    /// N streams, each on its own topic; M events at R/s spread over the topics.
    ManyTopics,
    /// Streams spread over every --target; events published on one node (--publish-target).
    CrossNode,
    /// Every stream on --kill-target; half-way through publishing, --kill-pid is killed and every
    /// stream resumes on the other targets with its Last-Event-ID.
    ReconnectStorm,
    /// A fan-out where --slow-fraction of the streams stop reading: the others keep their latency.
    SlowConsumers,
    /// Starts Redis and three gateway nodes itself; streams spread over the nodes on --topics
    /// topics, events at --rate/s until the end, and --faults one after the other, --pause apart:
    /// every client must get every event its topic's stream holds exactly once. Reports, per
    /// fault, the clients interrupted and their times to resume. --events and --target are not used.
    Chaos,
}

#[derive(Debug, Clone, Args)]
pub struct Opts {
    /// Gateway base URL; repeat for several nodes (streams are spread over them).
    #[arg(long = "target", global = true, default_value = "http://127.0.0.1:8080")]
    pub targets: Vec<String>,
    /// Local source address for streams; repeat (e.g. 127.0.0.2, 127.0.0.3) so that one
    /// address's port range is no limit.
    #[arg(long = "source-ip", global = true, default_value = "127.0.0.1")]
    pub source_ips: Vec<IpAddr>,
    /// Streams to open.
    #[arg(long, short = 'n', global = true, default_value_t = 100)]
    pub connections: usize,
    /// New streams per second.
    #[arg(long, global = true, default_value_t = 2000.0)]
    pub ramp: f64,
    /// Worker processes sharing the streams (each process may hold about 20,000 open files).
    #[arg(long, global = true, default_value_t = 1)]
    pub workers: usize,
    /// HS256 secret to mint tokens with (the gateway's GATEWAY_JWT_SECRET).
    #[arg(long, global = true, env = "LOADTEST_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// PEM private key to mint tokens with (see --key-alg).
    #[arg(long, global = true)]
    pub key_file: Option<PathBuf>,
    #[arg(long, global = true, default_value = "RS256")]
    pub key_alg: String,
    /// File of ready tokens, one per line, used in turn (they must allow every topic).
    #[arg(long, global = true)]
    pub tokens_file: Option<PathBuf>,
    /// Events to publish.
    #[arg(long, short = 'm', global = true, default_value_t = 1000)]
    pub events: u64,
    /// Events per second.
    #[arg(long, short = 'r', global = true, default_value_t = 100.0)]
    pub rate: f64,
    /// Event data size in bytes.
    #[arg(long, global = true, default_value_t = 256)]
    pub payload: usize,
    /// How events are published.
    #[arg(long, global = true, value_enum, default_value_t = Via::Http)]
    pub via: Via,
    #[command(flatten)]
    pub mercure: crate::mercure::Opts,
    /// Which --target HTTP publishes go to (index from 0).
    #[arg(long, global = true, default_value_t = 0)]
    pub publish_target: usize,
    /// The gateways' Redis, for --via xadd or publish.
    #[arg(long, global = true)]
    pub redis_url: Option<String>,
    /// The gateways' GATEWAY_REDIS_PREFIX.
    #[arg(long, global = true, default_value = "sse")]
    pub redis_prefix: String,
    /// Topic names start with this (then the run id and a number).
    #[arg(long, global = true, default_value = "lt")]
    pub topic_prefix: String,
    /// Idle: how long to hold the streams once open.
    #[arg(long, global = true, default_value = "5s")]
    pub hold: humantime::Duration,
    /// After publishing: how long to wait for the last deliveries.
    #[arg(long, global = true, default_value = "10s")]
    pub drain: humantime::Duration,
    /// Local gateway process(es) whose RSS to measure.
    #[arg(long = "gateway-pid", global = true)]
    pub gateway_pids: Vec<u32>,
    /// Reconnect storm: the process to kill (SIGKILL).
    #[arg(long, global = true)]
    pub kill_pid: Option<u32>,
    /// Reconnect storm: the --target index of the node that is killed.
    #[arg(long, global = true, default_value_t = 0)]
    pub kill_target: usize,
    /// Slow consumers: the share of streams that stop reading.
    #[arg(long, global = true, default_value_t = 0.1)]
    pub slow_fraction: f64,
    /// A shell command to run once every stream is open, just before publishing (e.g. to reset
    /// Redis's command statistics, or to start a profiler).
    #[arg(long, global = true)]
    pub before_publish: Option<String>,
    /// Chaos: the faults, in order.
    #[arg(long, global = true, value_enum, value_delimiter = ',', default_values_t = crate::chaos::Fault::ALL)]
    pub faults: Vec<crate::chaos::Fault>,
    /// Chaos: steady publishing before the first fault and after each one.
    #[arg(long, global = true, default_value = "5s")]
    pub pause: humantime::Duration,
    /// Chaos: topics the streams and the events are spread over.
    #[arg(long, global = true, default_value_t = 4)]
    pub topics: usize,
    /// Chaos: the share of streams that stall in the stall fault.
    #[arg(long, global = true, default_value_t = 0.1)]
    pub stall_fraction: f64,
    /// Chaos: the longest the stalling streams stop reading. They read again as soon as the
    /// nodes have cut them all (their metrics say so): a node cuts a client whose socket takes
    /// nothing for 1 s, once the socket's buffers are full.
    #[arg(long, global = true, default_value = "30s")]
    pub stall_for: humantime::Duration,
    /// Chaos: how long a killed node or a stopped Redis stays down before it is started again.
    #[arg(long, global = true, default_value = "1s")]
    pub down_for: humantime::Duration,
    /// Chaos: a stream that keeps its connection but receives nothing for this long (while
    /// events are published) counts as interrupted: a delayed client.
    #[arg(long, global = true, default_value = "500ms")]
    pub silence: humantime::Duration,
    /// Chaos: the gateway binary to start (default: `gateway` beside this program).
    #[arg(long, global = true)]
    pub gateway_bin: Option<PathBuf>,
    /// Chaos: the Redis server to start.
    #[arg(long, global = true, default_value = "redis-server")]
    pub redis_server: PathBuf,
    /// Chaos: keep the run's directory (Redis's file, the nodes' logs) even when the run is clean.
    #[arg(long, global = true)]
    pub keep_files: bool,
    /// Write the JSON report here.
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// No progress line.
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Names this run's topics (workers of one run share it).
    #[arg(long, global = true, hide = true)]
    pub run_id: Option<String>,
    /// Internal: run as worker I of K ("I/K").
    #[arg(long, global = true, hide = true)]
    pub worker: Option<String>,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Fanout => "fanout",
            Self::ManyTopics => "many-topics",
            Self::CrossNode => "cross-node",
            Self::ReconnectStorm => "reconnect-storm",
            Self::SlowConsumers => "slow-consumers",
            Self::Chaos => "chaos",
        }
    }
}

/// Everything both sides of a run derive from the command line.
pub struct Setup {
    pub cli: Cli,
    pub run_id: String,
    pub tokens: Tokens,
}

impl Setup {
    pub fn new(cli: Cli, run_id: String) -> anyhow::Result<Self> {
        let o = &cli.opts;
        if o.targets.is_empty() || o.connections == 0 && cli.scenario != Scenario::Idle {
            bail!("give at least one --target and one connection");
        }
        if o.publish_target >= o.targets.len() || o.kill_target >= o.targets.len() {
            bail!("--publish-target and --kill-target are indexes into the {} --target values", o.targets.len());
        }
        if cli.scenario == Scenario::ReconnectStorm && o.targets.len() < 2 {
            bail!("reconnect-storm needs at least two --target nodes (one is killed)");
        }
        if o.mercure.protocol.is_some() && (o.via != Via::Http || cli.scenario == Scenario::Chaos) {
            bail!("--mercure publishes with --via http, and chaos has no Mercure mode");
        }
        if o.mercure.match_template && cli.scenario == Scenario::ManyTopics {
            bail!("--match-template matches every topic of the run: not for many-topics");
        }
        let tokens = match (&o.secret, &o.key_file, &o.tokens_file) {
            (Some(s), None, None) => Tokens::from_secret(s),
            (None, Some(k), None) => Tokens::from_key_file(k, &o.key_alg)?,
            (None, None, Some(f)) => Tokens::from_file(f)?,
            _ => bail!("give exactly one of --secret (or LOADTEST_SECRET), --key-file, --tokens-file"),
        };
        Ok(Self { cli, run_id, tokens })
    }

    fn topic(&self, i: usize) -> String {
        self.cli.opts.mercure.topic(&self.run_name(), i)
    }

    fn run_name(&self) -> String {
        format!("{}-{}", self.cli.opts.topic_prefix, self.run_id)
    }

    /// The topics events are published to.
    pub fn publish_topics(&self) -> Vec<String> {
        match self.cli.scenario {
            Scenario::ManyTopics => (0..self.cli.opts.connections).map(|i| self.topic(i)).collect(),
            Scenario::Chaos => (0..self.cli.opts.topics).map(|i| self.topic(i)).collect(),
            _ => vec![self.topic(0)],
        }
    }

    /// Every stream of the run (workers take their share).
    pub fn streams(&self) -> anyhow::Result<Vec<StreamSpec>> {
        let o = &self.cli.opts;
        let ttl = Duration::from_secs(24 * 3600);
        let stall_every = if self.cli.scenario == Scenario::SlowConsumers && o.slow_fraction > 0.0 {
            Some((1.0 / o.slow_fraction).round().max(1.0) as usize)
        } else {
            None
        };
        let pause_every = if self.cli.scenario == Scenario::Chaos && o.stall_fraction > 0.0 {
            Some((1.0 / o.stall_fraction).round().max(1.0) as usize)
        } else {
            None
        };
        (0..o.connections)
            .map(|i| {
                let topic = match self.cli.scenario {
                    Scenario::ManyTopics => self.topic(i),
                    Scenario::Chaos => self.topic(i % o.topics.max(1)),
                    _ => self.topic(0),
                };
                Ok(StreamSpec {
                    path: o.mercure.path(&self.run_name(), &topic),
                    topic,
                    mercure: o.mercure.protocol.is_some(),
                    target: if self.cli.scenario == Scenario::ReconnectStorm { o.kill_target } else { i % o.targets.len() },
                    token: o.mercure.token(&self.tokens, i, ttl)?,
                    stall: stall_every.is_some_and(|k| i % k == 0),
                    // Offset so that the stalling streams are not all on the first topic and node.
                    pausable: pause_every.is_some_and(|k| i % k == k / 2),
                })
            })
            .collect()
    }

    pub fn subscriber_plan(&self, streams: Vec<StreamSpec>) -> Plan {
        let o = &self.cli.opts;
        Plan {
            targets: o.targets.iter().map(|t| t.trim_end_matches('/').to_owned()).collect(),
            source_ips: o.source_ips.clone(),
            streams,
            ramp: o.ramp / o.workers.max(1) as f64,
            reconnect: matches!(self.cli.scenario, Scenario::ReconnectStorm | Scenario::Chaos),
            drain: o.drain.into(),
            silence: (self.cli.scenario == Scenario::Chaos).then(|| o.silence.into()),
        }
    }
}

pub fn random_id() -> String {
    format!("{:08x}", std::process::id() ^ (payload_seed() as u32))
}

fn payload_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The subscriber side, in this process or in workers.
enum Side {
    Local {
        ready: oneshot::Receiver<()>,
        done: oneshot::Sender<HashMap<String, u64>>,
        join: tokio::task::JoinHandle<anyhow::Result<Report>>,
    },
    Workers(workers::Workers),
}

pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    if let Some(w) = cli.opts.worker.clone() {
        return workers::child(cli, &w).await;
    }
    if cli.scenario == Scenario::Chaos {
        if cli.opts.workers > 1 {
            bail!("chaos runs its streams in this process: leave --workers at 1");
        }
        return crate::chaos::run(cli).await;
    }
    let run_id = cli.opts.run_id.clone().unwrap_or_else(random_id);
    let setup = Setup::new(cli.clone(), run_id.clone())?;
    let o = &setup.cli.opts;
    let scenario = setup.cli.scenario;
    let bar = progress(o.quiet);
    let rss_before = if o.gateway_pids.is_empty() { None } else { Some(memory::rss(&o.gateway_pids)?) };

    let live = Arc::new(Live::default());
    let started = Instant::now();
    let mut side = if o.workers > 1 {
        Side::Workers(workers::Workers::spawn(o.workers, &run_id)?)
    } else {
        let (ready_tx, ready) = oneshot::channel();
        let (done, done_rx) = oneshot::channel();
        let plan = setup.subscriber_plan(setup.streams()?);
        let join = tokio::spawn(subscribers::run(plan, Arc::clone(&live), ready_tx, done_rx));
        Side::Local { ready, done, join }
    };
    // Open every stream.
    let ticker = {
        let (bar, live, total) = (bar.clone(), Arc::clone(&live), o.connections);
        tokio::spawn(async move {
            loop {
                bar.set_message(format!(
                    "streams {}/{total} open, {} failed; {} events received",
                    live.established.load(Ordering::Relaxed),
                    live.failed.load(Ordering::Relaxed),
                    live.received.load(Ordering::Relaxed)
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    match &mut side {
        Side::Local { ready, .. } => ready.await.context("the streams' task ended early")?,
        Side::Workers(w) => w.ready().await?,
    }
    let open_secs = started.elapsed().as_secs_f64();
    bar.println(format!("streams opened in {open_secs:.1} s"));

    let mut report_memory = None;
    if let Some(before) = rss_before {
        // Let allocations settle before reading the after figure.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = memory::rss(&o.gateway_pids)?;
        // Per connection once the reports are in (with workers, only they know how many opened).
        report_memory = Some(crate::report::Memory { rss_before_bytes: before, rss_after_bytes: after, per_connection_bytes: 0 });
    }

    if let Some(cmd) = &o.before_publish {
        let status = tokio::process::Command::new("sh").args(["-c", cmd]).status().await.context("running --before-publish")?;
        if !status.success() {
            bail!("--before-publish exited with {status}");
        }
    }
    let mut outcome = publisher::Outcome::default();
    let mut notes = Vec::new();
    let mut gateway_cpu = None;
    if scenario == Scenario::Idle {
        tokio::time::sleep(o.hold.into()).await;
    } else {
        let plan = publisher::Plan {
            via: o.via,
            target: o.targets[o.publish_target].trim_end_matches('/').to_owned(),
            token: o.mercure.token(&setup.tokens, usize::MAX, Duration::from_secs(24 * 3600))?,
            redis_url: o.redis_url.clone(),
            prefix: o.redis_prefix.clone(),
            topics: setup.publish_topics(),
            events: o.events,
            rate: o.rate,
            payload: o.payload,
            mercure: o.mercure.protocol.is_some(),
            publishers: o.mercure.publishers,
        };
        let kill_at = (scenario == Scenario::ReconnectStorm).then_some(o.events / 2);
        if kill_at.is_some() && o.kill_pid.is_none() {
            notes.push("no --kill-pid: the node was not killed".to_owned());
        }
        let kill_pid = o.kill_pid;
        let killed = std::sync::Mutex::new(None::<Instant>);
        let events = o.events;
        let cpu_before = if o.gateway_pids.is_empty() { None } else { Some(memory::cpu_seconds(&o.gateway_pids)?) };
        outcome = publisher::run(&plan, |sent| {
            bar.set_length(events);
            bar.set_position(sent);
            if let (Some(at), Some(pid)) = (kill_at, kill_pid)
                && sent >= at
            {
                let mut k = killed.lock().unwrap_or_else(|e| e.into_inner());
                if k.is_none() {
                    let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
                    *k = Some(Instant::now());
                }
            }
        })
        .await?;
        if let Some(before) = cpu_before {
            gateway_cpu = Some(memory::cpu_seconds(&o.gateway_pids)? - before);
        }
        if let Some(at) = *killed.lock().unwrap_or_else(|e| e.into_inner()) {
            notes.push(format!(
                "killed process {} ({}) {:.1} s before publishing ended",
                kill_pid.unwrap_or(0),
                o.targets[o.kill_target],
                at.elapsed().as_secs_f64()
            ));
        }
    }
    let publish_end = Instant::now();
    let mut report = match side {
        Side::Local { done, join, .. } => {
            let _ = done.send(outcome.published.clone());
            join.await??
        }
        Side::Workers(w) => w.finish(&outcome.published).await?,
    };
    ticker.abort();
    bar.finish_and_clear();
    report.scenario = scenario.name().to_owned();
    report.events_published = outcome.published.values().sum();
    report.publish_errors = outcome.errors;
    report.publish_seconds = outcome.seconds;
    let window = outcome.seconds + publish_end.elapsed().as_secs_f64().min(o.drain.as_secs_f64());
    report.delivered_per_sec = if window > 0.0 { report.deliveries_received as f64 / window } else { 0.0 };
    if let Some(m) = &mut report_memory {
        m.per_connection_bytes = m.rss_after_bytes.saturating_sub(m.rss_before_bytes) / report.connections_established.max(1);
    }
    report.memory = report_memory;
    report.gateway_cpu = gateway_cpu.map(|seconds| crate::report::Cpu::new(seconds, &report));
    report.notes.extend(notes);
    print!("{}", report.human());
    if let Some(path) = &o.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if !report.is_clean() {
        1
    } else if report.connections_failed > 0 || report.publish_errors > 0 {
        // The run could not do what was asked: its figures do not stand for the target.
        3
    } else {
        0
    })
}

fn progress(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} published  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
