//! The command line: the seven scenarios and the options they share.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::publisher::Via;

#[derive(Debug, Clone, Parser)]
#[command(name = "loadtest", about = "Load and correctness tool for the SSE gateway", version, args_override_self = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
    #[command(flatten)]
    pub opts: Opts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub(crate) enum Scenario {
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
pub(crate) struct Opts {
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
    pub(crate) fn name(self) -> &'static str {
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
