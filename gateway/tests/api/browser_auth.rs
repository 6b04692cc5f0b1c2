//! The demo page's auth in Chromium, through the balanced topology: it opens its stream with a
//! ticket, refreshes its token in band with a token from a local identity provider and keeps its
//! one stream past the first token's expiry, and an administrator's revocation ends the stream
//! with `gateway.revoked` (and the page does not come back).

use axum::http::header;
use serde_json::json;
use shared::Claims;

use support::app::*;
use support::browser::*;
use support::processes::*;
use support::topology::*;
use support::wait::Lazily;

/// A stand-in identity provider: `GET /token` answers a fresh, hour-long token of `sub` for
/// `topic`, readable from the page's origin (the balancer's). Stops when dropped.
struct TokenIssuer {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl TokenIssuer {
    async fn start(sub: &'static str, topic: &'static str) -> Self {
        let app = axum::Router::new().route(
            "/token",
            axum::routing::get(move || async move {
                let jti = format!("{:016x}", rand::random::<u64>());
                let claims = Claims { sub: Some(sub.into()), jti: Some(jti), ..claims(&[topic], &[]) };
                let token = gateway::mint(SECRET.as_bytes(), &claims).expect("mint");
                ([(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"), (header::CACHE_CONTROL, "no-store")], token)
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("the issuer listens");
        let url = format!("http://{}/token", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, task }
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the page until `done` holds for what it shows.
async fn until(page: &mut Page, t: &Topology, what: &str, done: impl Fn(&PageView) -> bool) -> PageView {
    let stderr = page.0.stderr_path().to_owned();
    let what = Lazily(|| format!("the page: it {what}\nbrowser:\n{}\n{}", read_log(&stderr), t.logs()));
    eventually(what, PAGE_WAIT, async || {
        let view = page.view().await;
        if done(&view) { Ok(view) } else { Err(format!("state {}, {:?}", view.state, view.events)) }
    })
    .await
}

#[tokio::test]
async fn the_demo_page_refreshes_its_token_in_band_past_its_expiry_and_a_revocation_ends_it() {
    require_browser();
    // No leeway: the first token's stream would end exactly at its `exp`.
    let t = Topology::start_with(&[("GATEWAY_JWT_LEEWAY", "0s")]).await;
    let topic = "news";
    let issuer = TokenIssuer::start("visitor", topic).await;
    let exp = now() + 6;
    let first = Claims { sub: Some("visitor".into()), jti: Some("first".into()), exp, ..claims(&[topic], &[]) };
    let first = gateway::mint(SECRET.as_bytes(), &first).expect("mint");
    let url = t.url(&format!("/#topic={topic}&access_token={first}&token_url={}", issuer.url));
    let mut page = Page::open(&url, &t.dir.0).await;

    // The token lives less than the refresh window: the stream offers a refresh at once, and the
    // page presents a token from the issuer.
    until(&mut page, &t, "refreshed its token", |v| v.state == "open" && v.refreshes >= 1).await;
    support::control::past(exp).await;
    t.publish_on(1, topic, "after the first token").await;
    let view = page.wait_for(1, &t).await;
    assert_eq!((view.events[0].data.as_str(), view.state.as_str()), ("after the first token", "open"));
    let streams: Vec<PageRequest> = page.requests().await.into_iter().filter(|r| r.url.contains("/events?")).collect();
    assert_eq!(streams.len(), 1, "one stream, never reopened: {streams:#?}");
    assert!(streams[0].url.contains("ticket=") && !streams[0].url.contains(first.rsplit('.').next().expect("jwt")));

    // An administrator revokes the subject: the page shows gateway.revoked and stays closed.
    let admin = Claims { sub: Some("ops".into()), admin: true, ..claims(&[], &[]) };
    let admin = gateway::mint(SECRET.as_bytes(), &admin).expect("mint");
    let resp =
        t.client.post(t.url("/admin/disconnect")).bearer_auth(admin).json(&json!({ "subject": "visitor" })).send().await.expect("request");
    assert_eq!(resp.status(), 200);
    let view = until(&mut page, &t, "showed the revocation", |v| v.state == "revoked").await;
    assert_eq!(view.events.last().map(|e| e.event.as_str()), Some("gateway.revoked"));
    let streams = page.requests().await.into_iter().filter(|r| r.url.contains("/events?")).count();
    assert_eq!(streams, 1, "the page did not try to come back");
    page.close().await;
}
