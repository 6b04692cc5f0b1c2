//! `gateway healthcheck`, the container image's HEALTHCHECK, run as Docker runs it: the real
//! binary, configured by the same environment as the server, judged by its exit code.

use std::process::Output;

use support::app::*;

/// Runs `gateway healthcheck` with only `GATEWAY_LISTEN_ADDR` set, as in the server's container.
async fn healthcheck(listen_addr: &str) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("healthcheck")
        .env_clear()
        .env("GATEWAY_LISTEN_ADDR", listen_addr)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(WAIT, run).await.expect("the probe ends within its own timeout").expect("the gateway binary runs")
}

#[tokio::test]
async fn the_healthcheck_exits_0_while_the_node_serves_and_1_once_it_is_gone() {
    let app = spawn_app().await;
    let addr = app.addr.to_string();
    let up = healthcheck(&addr).await;
    assert_eq!(up.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&up.stderr));
    assert!(up.stdout.is_empty() && up.stderr.is_empty(), "a healthy probe is silent");

    app.shutdown().await;
    let down = healthcheck(&addr).await;
    assert_eq!(down.status.code(), Some(1), "Docker reads any other code as reserved");
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(stderr.starts_with("gateway healthcheck: cannot connect to") && stderr.contains(&addr), "{stderr}");
}
