//! `loadtest`: opens many SSE streams against the gateway, publishes numbered, timestamped events,
//! and reports connections, deliveries (lost, duplicated, out of order), publish-to-deliver
//! latency, throughput and gateway memory. Exits 1 when an event was lost or duplicated, 3 when
//! streams could not be opened or publishes failed, 2 on bad usage.
//!
//! Data flow of a run: `scenario.rs` turns the command line into a plan; `subscribers.rs` opens
//! and checks the streams (in this process, or split over worker processes by `workers.rs`), each
//! one in `stream.rs`: HTTP in `wire.rs`, events in `frames.rs`; `publisher.rs` publishes once
//! every stream is open; `report.rs` merges and prints.

mod chaos;
mod cli;
mod frames;
mod memory;
mod mercure;
mod payload;
mod publisher;
mod report;
mod scenario;
mod setup;
mod stream;
mod streams;
mod subscribers;
mod tokens;
mod tracker;
mod wire;
mod workers;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadtest: cannot start the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(scenario::run(cli)) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
