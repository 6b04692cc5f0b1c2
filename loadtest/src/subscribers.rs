//! The subscriber side of a run: N SSE streams, ramped in at a given rate, spread over the target
//! nodes and the local source addresses, each read and checked event by event (sequence,
//! duplicates, order, latency) by `stream.rs`; here, the plan, the counters they share and the
//! report they make together.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::report::{Report, histogram};
use crate::stream::Stream;
use crate::streams::{Histograms, Live, Outcome, Plan, lock};

/// Opens every stream of `plan`, reports `ready` once all are open (or failed), then reads until
/// `done` brings the number of events published per topic and every stream has them all, or
/// `plan.drain` passes after that.
pub(crate) async fn run(
    plan: Plan,
    live: Arc<Live>,
    ready: oneshot::Sender<()>,
    done: oneshot::Receiver<HashMap<String, u64>>,
) -> anyhow::Result<Report> {
    let (expected_tx, expected_rx) = oneshot::channel();
    let streams = plan.streams.clone();
    let finishing = async move {
        let expected = done.await.unwrap_or_default();
        let _ = expected_tx.send(expected.clone());
        expected
    };
    let (finished, expected) = tokio::join!(run_streams(plan, live, ready, expected_rx), finishing);
    let (mut report, outcomes) = finished?;
    for (outcome, spec) in outcomes.into_iter().zip(&streams) {
        if spec.stall {
            // A slow consumer is expected to be cut; its events are not counted.
            continue;
        }
        let exp = expected.get(&outcome.topic).copied().unwrap_or(0);
        report.deliveries_expected += exp;
        report.deliveries_received += outcome.tracker.received;
        report.lost += outcome.tracker.lost(exp);
        report.duplicated += outcome.tracker.duplicates;
        report.out_of_order += outcome.tracker.out_of_order;
    }
    Ok(report)
}

/// `run` without the accounting: the report has the connection figures and latencies, and every
/// stream's outcome comes back (in `plan.streams` order) for the caller to judge. `done` brings
/// how many events each topic's streams are to receive.
pub(crate) async fn run_streams(
    plan: Plan,
    live: Arc<Live>,
    ready: oneshot::Sender<()>,
    done: oneshot::Receiver<HashMap<String, u64>>,
) -> anyhow::Result<(Report, Vec<Outcome>)> {
    let clients: Vec<reqwest::Client> = plan
        .source_ips
        .iter()
        .map(|ip| {
            reqwest::Client::builder()
                .local_address(*ip)
                .http1_only()
                .connect_timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .build()
        })
        .collect::<Result<_, _>>()?;
    let histograms = Arc::new(Histograms::new());
    let stop = CancellationToken::new();
    let targets = Arc::new(plan.targets.clone());
    let gap = Duration::from_secs_f64(1.0 / plan.ramp.max(1.0));
    let mut next = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(plan.streams.len());
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    for (i, spec) in plan.streams.iter().cloned().enumerate() {
        tokio::time::sleep_until(next).await;
        next += gap;
        let stream = Stream {
            client: clients[i % clients.len()].clone(),
            source: plan.source_ips[i % clients.len()],
            targets: Arc::clone(&targets),
            spec,
            index: i,
            reconnect: plan.reconnect,
            silence: plan.silence,
            live: Arc::clone(&live),
            histograms: Arc::clone(&histograms),
            shard: i % 64,
            stop: stop.clone(),
            opened: opened_tx.clone(),
        };
        tasks.push(tokio::spawn(stream.run()));
    }
    drop(opened_tx);
    // Every stream reports once: open, or failed for good.
    for _ in 0..plan.streams.len() {
        if opened_rx.recv().await.is_none() {
            break;
        }
    }
    let _ = ready.send(());

    let expected = done.await.unwrap_or_default();
    let deadline = tokio::time::Instant::now() + plan.drain;
    let want: u64 = plan.streams.iter().filter(|s| !s.stall).map(|s| expected.get(&s.topic).copied().unwrap_or(0)).sum();
    // Wait until the streams that read have everything, or the drain time is over.
    while live.received_by_readers.load(Ordering::Relaxed) < want && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let mut report = Report { connections_attempted: plan.streams.len() as u64, ..Report::default() };
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await?);
    }
    report.connections_established = live.established.load(Ordering::Relaxed);
    report.connections_failed = live.failed.load(Ordering::Relaxed);
    report.reconnects = live.reconnects.load(Ordering::Relaxed);
    report.lost_signals = live.lost_signals.load(Ordering::Relaxed);
    let mut latency = histogram();
    for shard in &histograms.latency {
        latency.add(&*lock(shard))?;
    }
    report.set_histograms(&latency, &lock(&histograms.connect), &lock(&histograms.resume));
    Ok((report, outcomes))
}
