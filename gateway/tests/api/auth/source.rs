//! Where a token may come from: the `Authorization` header, the `access_token` query parameter,
//! the auth cookie (never for publishing), and which one wins.

use gateway::counters::Counters;
use serde_json::json;

use super::common::*;
use support::app::*;

#[tokio::test]
async fn events_accept_a_bearer_header() {
    let app = spawn_app().await;
    let resp = get_events(&app, &["t"], &token(&["*"], &[])).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn events_accept_an_access_token_query_parameter() {
    let app = spawn_app().await;
    let url = format!("{}&access_token={}", app.events_url(&["t"]), token(&["*"], &[]));
    let resp = app.client.get(url).send().await.expect("request");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn events_accept_the_default_auth_cookie() {
    let app = spawn_app().await;
    let cookie = format!("theme=dark; sse_token={}; other=1", token(&["*"], &[]));
    let resp = app.client.get(app.events_url(&["t"])).header("cookie", cookie).send().await.expect("request");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn events_read_the_cookie_named_by_the_config_and_no_other() {
    let app = spawn_with(|c| c.auth_cookie = "my_token".into()).await;
    let t = token(&["*"], &[]);
    let resp = app.client.get(app.events_url(&["t"])).header("cookie", format!("my_token={t}")).send().await.expect("request");
    assert_eq!(resp.status(), 200);
    let resp = app.client.get(app.events_url(&["t"])).header("cookie", format!("sse_token={t}")).send().await.expect("request");
    assert_unauthorized(resp, None).await;
}

#[tokio::test]
async fn the_header_wins_over_the_query_parameter_and_the_cookie() {
    let app = spawn_app().await;
    let good = token(&["*"], &[]);
    // A good header beside a bad query token and a bad cookie: the header is the one used.
    let url = format!("{}&access_token=garbage", app.events_url(&["t"]));
    let resp = app.client.get(&url).bearer_auth(&good).header("cookie", "sse_token=garbage").send().await.expect("request");
    assert_eq!(resp.status(), 200);
    // A bad header beside a good query token and a good cookie: still the header, refused.
    let url = format!("{}&access_token={good}", app.events_url(&["t"]));
    let resp = app.client.get(&url).bearer_auth("garbage").header("cookie", format!("sse_token={good}")).send().await.expect("request");
    assert_unauthorized(resp, Some("malformed")).await;
}

#[tokio::test]
async fn publish_accepts_the_header_and_the_query_parameter() {
    let app = spawn_app().await;
    let t = token(&[], &["*"]);
    assert_eq!(publish_as(&app, &t, "t").await.status(), 200);
    let resp = app
        .client
        .post(app.url(&format!("/publish?access_token={t}")))
        .json(&json!({ "topic": "t", "data": "x" }))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
}

#[tokio::test]
async fn publish_ignores_the_cookie() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(app.url("/publish"))
        .header("cookie", format!("sse_token={}", token(&[], &["*"])))
        .json(&json!({ "topic": "t", "data": "x" }))
        .send()
        .await
        .expect("request");
    assert_unauthorized(resp, None).await;
    assert_eq!(Counters::get(&app.counters().events_published), 0);
}
