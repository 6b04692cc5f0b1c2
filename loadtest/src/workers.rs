//! Spreading the streams over worker processes: a process may hold about 20,000 open files, so
//! a large run starts K copies of this program, each opening every K-th stream. Protocol, one line
//! each on the worker's stdout/stdin: worker → `READY` once its streams are open; parent →
//! `DONE <json: events published per topic>` once publishing is over; worker → `REPORT <json>`.
//! The parent merges the reports.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;

use crate::cli::Cli;
use crate::report::Report;
use crate::setup::Setup;
use crate::streams::Live;
use crate::subscribers;

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

pub(crate) struct Workers(Vec<Worker>);

impl Workers {
    /// Starts `k` workers with this process's own arguments.
    pub(crate) fn spawn(k: usize, run_id: &str) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating this program")?;
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut workers = Vec::with_capacity(k);
        for i in 0..k {
            let mut child = Command::new(&exe)
                .args(&args)
                .args(["--worker", &format!("{i}/{k}"), "--run-id", run_id, "--quiet"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .context("starting a worker")?;
            let stdin = child.stdin.take().context("worker stdin")?;
            let lines = BufReader::new(child.stdout.take().context("worker stdout")?).lines();
            workers.push(Worker { child, stdin, lines });
        }
        Ok(Self(workers))
    }

    /// Waits until every worker has opened its streams.
    pub(crate) async fn ready(&mut self) -> anyhow::Result<()> {
        for (i, w) in self.0.iter_mut().enumerate() {
            match w.lines.next_line().await? {
                Some(l) if l == "READY" => {}
                other => bail!("worker {i} did not get ready: {other:?}"),
            }
        }
        Ok(())
    }

    /// Tells every worker what was published and merges their reports.
    pub(crate) async fn finish(mut self, published: &HashMap<String, u64>) -> anyhow::Result<Report> {
        let line = format!("DONE {}\n", serde_json::to_string(published)?);
        for w in &mut self.0 {
            w.stdin.write_all(line.as_bytes()).await?;
            w.stdin.flush().await?;
        }
        let mut merged: Option<Report> = None;
        for (i, w) in self.0.iter_mut().enumerate() {
            let report = loop {
                match w.lines.next_line().await? {
                    Some(l) => {
                        if let Some(json) = l.strip_prefix("REPORT ") {
                            break serde_json::from_str::<Report>(json).with_context(|| format!("worker {i}'s report"))?;
                        }
                    }
                    None => bail!("worker {i} ended without a report"),
                }
            };
            match &mut merged {
                None => merged = Some(report),
                Some(m) => m.merge(&report)?,
            }
            let _ = w.child.wait().await;
        }
        merged.context("no workers")
    }
}

/// Runs as worker `spec` ("I/K"): opens every K-th stream from the I-th.
pub(crate) async fn child(cli: Cli, spec: &str) -> anyhow::Result<u8> {
    let (i, k) =
        spec.split_once('/').and_then(|(i, k)| Some((i.parse::<usize>().ok()?, k.parse::<usize>().ok()?))).context("--worker I/K")?;
    let run_id = cli.opts.run_id.clone().context("a worker needs --run-id")?;
    let setup = Setup::new(cli, run_id)?;
    let streams = setup.streams()?.into_iter().enumerate().filter(|(n, _)| n % k == i).map(|(_, s)| s).collect();
    let plan = setup.subscriber_plan(streams);
    let (ready_tx, ready_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    let task = tokio::spawn(subscribers::run(plan, Arc::new(Live::default()), ready_tx, done_rx));
    let mut stdout = tokio::io::stdout();
    if ready_rx.await.is_ok() {
        stdout.write_all(b"READY\n").await?;
        stdout.flush().await?;
    }
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let published: HashMap<String, u64> = loop {
        match stdin.next_line().await? {
            Some(l) => {
                if let Some(json) = l.strip_prefix("DONE ") {
                    break serde_json::from_str(json).context("the parent's DONE line")?;
                }
            }
            None => bail!("the parent went away"),
        }
    };
    let _ = done_tx.send(published);
    let report = task.await??;
    stdout.write_all(format!("REPORT {}\n", serde_json::to_string(&report)?).as_bytes()).await?;
    stdout.flush().await?;
    Ok(0)
}
