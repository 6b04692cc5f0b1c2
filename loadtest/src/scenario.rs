//! The run itself: open the streams (here or in worker processes), publish, collect, report.
//! The command line is in `cli.rs`, what a run derives from it in `setup.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::oneshot;

use crate::cli::{Cli, Scenario};
use crate::publisher;
use crate::report::Report;
use crate::setup::{Setup, random_id};
use crate::streams::Live;
use crate::subscribers;
use crate::{memory, workers};

/// The subscriber side, in this process or in workers.
enum Side {
    Local {
        ready: oneshot::Receiver<()>,
        done: oneshot::Sender<HashMap<String, u64>>,
        join: tokio::task::JoinHandle<anyhow::Result<Report>>,
    },
    Workers(workers::Workers),
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<u8> {
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
