//! What both sides of a run (the parent and its workers) derive from the command line: the
//! checked options, the tokens, the topics and every stream's plan.

use std::time::Duration;

use anyhow::bail;

use crate::cli::{Cli, Scenario};
use crate::publisher::Via;
use crate::streams::{Plan, StreamSpec};
use crate::tokens::Tokens;

/// Everything both sides of a run derive from the command line.
pub(crate) struct Setup {
    pub cli: Cli,
    pub run_id: String,
    pub tokens: Tokens,
}

impl Setup {
    pub(crate) fn new(cli: Cli, run_id: String) -> anyhow::Result<Self> {
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
    pub(crate) fn publish_topics(&self) -> Vec<String> {
        match self.cli.scenario {
            Scenario::ManyTopics => (0..self.cli.opts.connections).map(|i| self.topic(i)).collect(),
            Scenario::Chaos => (0..self.cli.opts.topics).map(|i| self.topic(i)).collect(),
            _ => vec![self.topic(0)],
        }
    }

    /// Every stream of the run (workers take their share).
    pub(crate) fn streams(&self) -> anyhow::Result<Vec<StreamSpec>> {
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

    pub(crate) fn subscriber_plan(&self, streams: Vec<StreamSpec>) -> Plan {
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

pub(crate) fn random_id() -> String {
    format!("{:08x}", std::process::id() ^ (payload_seed() as u32))
}

fn payload_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
