//! Thin entry point: config → telemetry → App::build → run until SIGTERM/SIGINT. Or, as
//! `gateway healthcheck`, probe the running server and exit.

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
    telemetry::init(config.json_logs);
    let app = match App::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("gateway: {}", anyhow::Error::from(e).chain().map(ToString::to_string).collect::<Vec<_>>().join(": "));
            return ExitCode::FAILURE;
        }
    };
    if let Some(banner) = app.demo_banner() {
        println!("{banner}");
    }
    match app.run(shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: server error: {e}");
            ExitCode::FAILURE
        }
    }
}
