//! A `redis-server` that speaks only TLS, with certificates made for the test.

use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::Child;

use super::process::{free_port, redis_process};
use crate::wait::eventually;

/// A `redis-server` speaking only TLS, on a free loopback port, with a certificate from a CA made
/// for the test (openssl), killed with it.
#[derive(Debug)]
pub struct TestTlsRedis {
    pub url: String,
    /// The CA that signed the server's certificate.
    pub ca_file: PathBuf,
    /// Another CA, which did not.
    pub other_ca_file: PathBuf,
    dir: PathBuf,
    _child: Child,
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("this test needs openssl on PATH to make its certificates: {e}"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl TestTlsRedis {
    pub async fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("gateway-test-tls-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        for ca in ["ca", "other-ca"] {
            let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
            openssl(
                &dir,
                &[&["req", "-x509"][..], &ec, &["-keyout", &key, "-out", &crt, "-days", "1", "-subj", "/CN=gateway test CA"]].concat(),
            );
        }
        openssl(&dir, &[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]].concat());
        std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("ext.cnf");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "1",
                "-extfile",
                "ext.cnf",
            ],
        );
        let path = |f: &str| dir.join(f).to_str().expect("utf8 path").to_owned();
        let child = redis_process(
            &[
                &["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"][..],
                &["--tls-cert-file", &path("server.crt"), "--tls-key-file", &path("server.key")],
                &["--tls-ca-cert-file", &path("ca.crt"), "--tls-auth-clients", "no", "--loglevel", "warning"],
                &["--dir", &path(".")],
            ]
            .concat(),
        );
        eventually("the TLS redis-server to listen", Duration::from_secs(30), async || {
            TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        Self {
            url: format!("rediss://127.0.0.1:{port}"),
            ca_file: dir.join("ca.crt"),
            other_ca_file: dir.join("other-ca.crt"),
            dir,
            _child: child,
        }
    }
}

impl Drop for TestTlsRedis {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
