//! `gateway healthcheck`: the container image's `HEALTHCHECK`. The runtime image has no shell and
//! no curl, so the binary probes its own server: one `GET /healthz` over loopback, a short
//! deadline, exit 0 or 1. Written on plain tokio I/O because an HTTP client crate would be a heavy
//! dependency for one request whose answer we only need the status line of.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The probe is a configuration value (`config/probe.rs`); running it is this module's.
use crate::config::Probe;

/// Longest status line read; `HTTP/1.1 200 OK` is 15 bytes.
const MAX_STATUS_LINE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot connect to {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the request to {addr} failed")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("{addr} answered {status:?}, not 200")]
    Status { addr: SocketAddr, status: String },
}

impl Probe {
    /// `Ok` when the server answers `GET /healthz` with 200 within the timeout.
    pub async fn check(&self) -> Result<(), ProbeError> {
        let (addr, timeout) = (self.addr, self.timeout);
        tokio::time::timeout(timeout, self.request()).await.map_err(|_| ProbeError::Timeout { addr, timeout })?
    }

    /// What `main` returns: 0 healthy, 1 not (Docker reserves other codes), and one line on stderr
    /// saying why, which `docker inspect` shows in the container's health log.
    pub async fn run(&self) -> ExitCode {
        match self.check().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let causes: Vec<String> =
                    std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source()).map(ToString::to_string).collect();
                eprintln!("gateway healthcheck: {}", causes.join(": "));
                ExitCode::FAILURE
            }
        }
    }

    async fn request(&self) -> Result<(), ProbeError> {
        let addr = self.addr;
        let io = |source| ProbeError::Io { addr, source };
        let mut stream = TcpStream::connect(addr).await.map_err(|source| ProbeError::Connect { addr, source })?;
        let host = match addr {
            SocketAddr::V4(a) => a.to_string(),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nUser-Agent: gateway-healthcheck\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut line = Vec::with_capacity(64);
        let mut buf = [0u8; 64];
        while !line.contains(&b'\n') && line.len() < MAX_STATUS_LINE {
            let n = stream.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            line.extend_from_slice(&buf[..n]);
        }
        let status = String::from_utf8_lossy(&line).lines().next().unwrap_or_default().trim().to_owned();
        let mut parts = status.split(' ');
        match (parts.next(), parts.next()) {
            (Some(version), Some("200")) if version.starts_with("HTTP/1.") => Ok(()),
            _ => Err(ProbeError::Status { addr, status }),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// A one-shot server that reads the request and answers `reply` (or nothing at all).
    async fn server(reply: Option<&'static str>) -> (SocketAddr, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Not on a tracker: the test awaits its handle, and the runtime ends with the test.
        let handle = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut req = vec![0u8; 1024];
            let n = s.read(&mut req).await.expect("read");
            match reply {
                Some(r) => s.write_all(r.as_bytes()).await.expect("write"),
                None => tokio::time::sleep(Duration::from_secs(5)).await,
            }
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        (addr, handle)
    }

    fn probe(addr: SocketAddr) -> Probe {
        Probe { addr, timeout: Duration::from_millis(500) }
    }

    #[tokio::test]
    async fn a_200_is_healthy_and_the_request_is_a_plain_get_of_healthz() {
        let (addr, handle) = server(Some("HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}")).await;
        probe(addr).check().await.expect("healthy");
        let request = handle.await.expect("join");
        assert!(request.starts_with("GET /healthz HTTP/1.1\r\n"), "{request}");
        assert!(request.contains(&format!("Host: {addr}\r\n")), "{request}");
    }

    #[tokio::test]
    async fn any_other_status_or_garbage_is_unhealthy() {
        for reply in ["HTTP/1.1 503 Service Unavailable\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "200 OK\r\n\r\n", ""] {
            let (addr, _handle) = server(Some(reply)).await;
            let err = probe(addr).check().await.expect_err(reply);
            assert!(matches!(err, ProbeError::Status { .. }), "{reply:?}: {err:?}");
        }
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (addr, _handle) = server(None).await;
        assert!(matches!(probe(addr).check().await, Err(ProbeError::Timeout { .. })));
    }

    #[tokio::test]
    async fn nothing_listening_is_unhealthy() {
        let addr = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
        // The listener is dropped: the port is closed.
        assert!(matches!(probe(addr).check().await, Err(ProbeError::Connect { .. })));
    }

    #[test]
    fn a_wildcard_listen_address_is_probed_on_loopback() {
        let t = Duration::from_secs(2);
        let probed = |listen: &str| Probe::for_listen_addr(listen.parse().expect("addr"), t).addr.to_string();
        assert_eq!(probed("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(probed("[::]:8080"), "[::1]:8080");
        assert_eq!(probed("10.1.2.3:9000"), "10.1.2.3:9000");
    }
}
