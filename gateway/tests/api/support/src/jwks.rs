//! A stand-in identity provider for the JWKS tests: a real HTTP server on 127.0.0.1 whose
//! answer the test changes mid-test, counting the fetches it serves; and the test keys (the
//! fixtures) as JWKs and signers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use gateway::config::{ASYMMETRIC, KeyMaterial};
use gateway::config::{JwksConfig, JwtConfig};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::app::*;

pub const RSA_PRIVATE: &[u8] = include_bytes!("../../fixtures/rsa_private.pem");
pub const EC_PRIVATE: &[u8] = include_bytes!("../../fixtures/ec_private.pem");
pub const ED_PRIVATE: &[u8] = include_bytes!("../../fixtures/ed_private.pem");

/// A signing key of the test and the `kid` it is published under.
#[derive(Debug, Clone, Copy)]
pub struct TestKey {
    pub kid: &'static str,
    pub alg: Algorithm,
    pem: &'static [u8],
}

pub const RSA: TestKey = TestKey { kid: "rsa-1", alg: Algorithm::RS256, pem: RSA_PRIVATE };
pub const EC: TestKey = TestKey { kid: "ec-1", alg: Algorithm::ES256, pem: EC_PRIVATE };
pub const ED: TestKey = TestKey { kid: "ed-1", alg: Algorithm::EdDSA, pem: ED_PRIVATE };

impl TestKey {
    fn encoding(&self) -> EncodingKey {
        match self.alg {
            Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_pem(self.pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(self.pem),
            _ => EncodingKey::from_ed_pem(self.pem),
        }
        .expect("a fixture key")
    }

    /// The public half as a JWK with its `kid` and `alg`.
    pub fn jwk(&self) -> Value {
        self.jwk_with(json!({}))
    }

    /// The JWK with `extra` members set (or, when null, removed).
    pub fn jwk_with(&self, extra: Value) -> Value {
        let jwk = Jwk::from_encoding_key(&self.encoding(), self.alg).expect("a JWK of the fixture");
        let mut v = serde_json::to_value(jwk).expect("JSON");
        v["kid"] = json!(self.kid);
        for (k, x) in extra.as_object().expect("an object") {
            match x {
                Value::Null => drop(v.as_object_mut().expect("an object").remove(k)),
                x => v[k] = x.clone(),
            }
        }
        v
    }

    /// A token granting every topic, signed by this key, with `kid` and `alg` in its header.
    pub fn token_as(&self, kid: Option<&str>, alg: Algorithm) -> String {
        let header = Header { kid: kid.map(str::to_owned), ..Header::new(alg) };
        jsonwebtoken::encode(&header, &claims(&["*"], &["*"]), &self.encoding()).expect("sign")
    }

    pub fn token(&self) -> String {
        self.token_as(Some(self.kid), self.alg)
    }

    /// `claims` as they are, signed by this key, with its `kid` and a JOSE `typ`.
    pub fn sign(&self, typ: &str, claims: &Value) -> String {
        let header = Header { kid: Some(self.kid.to_owned()), typ: Some(typ.to_owned()), ..Header::new(self.alg) };
        jsonwebtoken::encode(&header, claims, &self.encoding()).expect("sign")
    }
}

/// A token with an arbitrary header, signed (HMAC) with `secret`.
pub fn hs256_with_kid(secret: &[u8], kid: &str) -> String {
    let header = Header { kid: Some(kid.into()), ..Header::new(Algorithm::HS256) };
    jsonwebtoken::encode(&header, &claims(&["*"], &["*"]), &EncodingKey::from_secret(secret)).expect("sign")
}

/// An unsigned token (`alg: none`) naming `kid`.
pub fn unsigned(kid: &str) -> String {
    let header = b64url(json!({ "alg": "none", "kid": kid }).to_string().as_bytes());
    let body = b64url(serde_json::to_string(&claims(&["*"], &["*"])).expect("claims").as_bytes());
    format!("{header}.{body}.")
}

/// What the identity provider answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A key set, with a `Cache-Control` header if given.
    Keys(Vec<Value>, Option<&'static str>),
    /// A body of `bytes` bytes, with or without a `Content-Length`.
    Oversized {
        bytes: usize,
        announced: bool,
    },
    /// The head, then a body that never comes.
    Stall,
    Status(u16),
}

#[derive(Debug)]
struct Idp {
    answer: Mutex<Answer>,
    fetches: AtomicUsize,
}

/// The identity provider's server; stopped when dropped.
#[derive(Debug)]
pub struct TestIdp {
    pub url: String,
    idp: Arc<Idp>,
    task: JoinHandle<()>,
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestIdp {
    pub async fn start(answer: Answer) -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.expect("bind"), answer)
    }

    /// On `addr`, where a gateway may already be trying to reach it.
    pub async fn start_at(addr: SocketAddr, answer: Answer) -> Self {
        Self::start_on(TcpListener::bind(addr).await.expect("bind the identity provider's port"), answer)
    }

    fn start_on(listener: TcpListener, answer: Answer) -> Self {
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().expect("addr"));
        let idp = Arc::new(Idp { answer: Mutex::new(answer), fetches: AtomicUsize::new(0) });
        let app = Router::new().route("/.well-known/jwks.json", get(serve)).with_state(Arc::clone(&idp));
        let task = tokio::spawn(async move { axum::serve(listener, app).await.expect("the identity provider serves") });
        Self { url, idp, task }
    }

    pub fn set(&self, answer: Answer) {
        *self.idp.answer.lock().expect("lock") = answer;
    }

    /// Requests served so far.
    pub fn fetches(&self) -> usize {
        self.idp.fetches.load(Ordering::SeqCst)
    }
}

async fn serve(State(idp): State<Arc<Idp>>) -> Response {
    idp.fetches.fetch_add(1, Ordering::SeqCst);
    let answer = idp.answer.lock().expect("lock").clone();
    let builder = Response::builder().header(header::CONTENT_TYPE, "application/json");
    match answer {
        Answer::Keys(keys, cache) => {
            let builder = match cache {
                Some(c) => builder.header(header::CACHE_CONTROL, c),
                None => builder,
            };
            builder.body(Body::from(json!({ "keys": keys }).to_string()))
        }
        Answer::Oversized { bytes, announced } => {
            let body = format!("{{\"keys\":[],\"padding\":\"{}\"}}", "x".repeat(bytes));
            if announced {
                builder.body(Body::from(body))
            } else {
                // Chunked: the size shows only while reading.
                let chunks: Vec<Result<Bytes, std::io::Error>> =
                    body.into_bytes().chunks(16 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
                builder.body(Body::from_stream(futures::stream::iter(chunks)))
            }
        }
        Answer::Stall => {
            let head = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"{\"keys\":[")) });
            builder.body(Body::from_stream(futures::StreamExt::chain(head, futures::stream::pending())))
        }
        Answer::Status(code) => Response::builder().status(code).body(Body::from("unavailable")),
    }
    .expect("a response")
}

/// Token settings: the JWKS at `urls`, beside the test secret when `with_secret`.
pub fn jwt_config(urls: &[&str], with_secret: bool, min_refresh: Duration, timeout: Duration) -> JwtConfig {
    let mut algorithms = ASYMMETRIC.to_vec();
    if with_secret {
        algorithms.push(Algorithm::HS256);
    }
    JwtConfig {
        key: with_secret.then(|| KeyMaterial::Secret(SECRET.as_bytes().to_vec())),
        algorithms,
        jwks: Some(JwksConfig { urls: urls.iter().map(|u| u.parse().expect("a URL")).collect(), min_refresh, timeout }),
        issuer: None,
        audience: None,
        leeway: Duration::from_secs(5),
    }
}
