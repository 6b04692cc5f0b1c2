//! Thin entry point: config → telemetry → App::build → run until SIGTERM/SIGINT → flush telemetry.
//! Or, as `gateway healthcheck`, probe the running server and exit.

use std::process::ExitCode;

use gateway::config::{ConfigError, Invocation};
use gateway::{App, Config, shutdown, telemetry};

/// Exit code for a configuration error (EX_USAGE from sysexits.h), as operators' tooling expects.
const EXIT_CONFIG: u8 = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = match Invocation::load() {
        Ok(Invocation::Serve(c)) => *c,
        Ok(Invocation::HealthCheck(probe)) => return probe.run().await,
        Err(ConfigError::Display(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let traces = match config.otel.as_ref().map(telemetry::otlp).transpose() {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("gateway: {}", chain(e));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let logs = if config.json_logs { telemetry::Logs::Json } else { telemetry::Logs::Text };
    let telemetry = telemetry::init(logs, traces);
    raise_open_files_limit();
    let code = match App::build(config).await {
        Ok(app) => {
            if let Some(banner) = app.demo_banner() {
                println!("{banner}");
            }
            app.run(shutdown::signal()).await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gateway: {}", chain(e));
            ExitCode::FAILURE
        }
    };
    // The last step of shutdown: the app has stopped, so its spans are all ended.
    telemetry.shutdown().await;
    code
}

/// Every client holds a socket: a soft open-files limit of 1024 (a common default) would cap a
/// node far below what it serves. The soft limit is raised to the hard one, as nginx's
/// `worker_rlimit_nofile` or Go's runtime do; a node that cannot raise it says so and goes on.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
}

/// An error and its causes on one line.
fn chain(e: impl std::error::Error + Send + Sync + 'static) -> String {
    anyhow::Error::from(e).chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
}
