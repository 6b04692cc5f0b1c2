//! Resumption: `Last-Event-ID` (or `lastEventId`) replays exactly what was missed, then live, with
//! no gap and no duplicate, for one topic and for several; trimmed history says so.

use std::time::Duration;

use serde_json::Value;

use support::app::*;

#[tokio::test]
async fn a_single_topic_client_resumes_exactly_after_its_last_event() {
    let app = spawn_app().await;
    let mut s = app.subscribe(&["t"], None).await;
    for i in 0..3 {
        app.publish("t", &format!("{i}")).await;
    }
    assert_eq!(data(&s.events(3).await), ["0", "1", "2"]);
    let last = s.last_event_id().to_owned();
    drop(s);
    for i in 3..6 {
        app.publish("t", &format!("{i}")).await;
    }
    let mut s = app.subscribe(&["t"], Some(&last)).await;
    assert_eq!(data(&s.events(3).await), ["3", "4", "5"]);
    app.publish("t", "6").await;
    assert_eq!(s.next_event().await.data, "6", "then live");
    s.expect_no_event(Duration::from_millis(200)).await;
    assert_eq!(gateway::counters::Counters::get(&app.counters().resumptions), 1);
}

#[tokio::test]
async fn a_multi_topic_cursor_resumes_every_topic_at_its_own_position() {
    let app = spawn_app().await;
    let mut s = app.subscribe(&["a", "b", "quiet"], None).await;
    app.publish("a", "a0").await;
    app.publish("b", "b0").await;
    app.publish("a", "a1").await;
    assert_eq!(data(&s.events(3).await), ["a0", "b0", "a1"]);
    let cursor = s.last_event_id().to_owned();
    drop(s);
    app.publish("b", "b1").await;
    app.publish("a", "a2").await;
    app.publish("quiet", "q0").await;
    // Topic order in the URL does not matter: the cursor is keyed by topic.
    let mut s = app.subscribe(&["quiet", "b", "a"], Some(&cursor)).await;
    let mut got = data(&s.events(3).await).into_iter().map(str::to_owned).collect::<Vec<_>>();
    got.sort();
    assert_eq!(got, ["a2", "b1", "q0"]);
    s.expect_no_event(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn the_last_event_id_query_parameter_resumes_a_fresh_page_load() {
    let app = spawn_app().await;
    let first = app.publish("t", "seen").await;
    app.publish("t", "missed").await;
    let url = format!("{}&lastEventId={first}", app.events_url(&["t"]));
    let resp = app.client.get(url).bearer_auth(token(&["t"], &[])).send().await.expect("connect");
    assert_eq!(resp.status(), 200);
    let mut s = SseClient::new(resp);
    assert_eq!(s.next_event().await.data, "missed");
}

#[tokio::test]
async fn the_header_wins_over_the_query_parameter() {
    let app = spawn_app().await;
    let a = app.publish("t", "a").await;
    let b = app.publish("t", "b").await;
    app.publish("t", "c").await;
    let url = format!("{}&lastEventId={a}", app.events_url(&["t"]));
    let resp = app.client.get(url).bearer_auth(token(&["t"], &[])).header("Last-Event-ID", &b).send().await.expect("connect");
    let mut s = SseClient::new(resp);
    assert_eq!(s.next_event().await.data, "c");
}

#[tokio::test]
async fn a_plain_stream_id_resumes_every_topic_of_a_connection() {
    let app = spawn_app().await;
    let mark = app.publish("a", "before").await;
    app.publish("b", "b-after").await;
    app.publish("a", "a-after").await;
    let mut s = app.subscribe(&["a", "b"], Some(&mark)).await;
    let mut got = data(&s.events(2).await).into_iter().map(str::to_owned).collect::<Vec<_>>();
    got.sort();
    assert_eq!(got, ["a-after", "b-after"]);
}

#[tokio::test]
async fn trimmed_history_gives_the_lost_signal_then_the_oldest_retained_events() {
    let app = spawn_with(|c| c.history_max_len = 3).await;
    let mut s = app.subscribe(&["t"], None).await;
    app.publish("t", "0").await;
    assert_eq!(s.next_event().await.data, "0");
    let last = s.last_event_id().to_owned();
    drop(s);
    let mut ids = Vec::new();
    for i in 1..=5 {
        ids.push(app.publish("t", &i.to_string()).await);
    }
    let mut s = app.subscribe(&["t"], Some(&last)).await;
    let lost = s.next_event().await;
    assert_eq!(lost.event, "gateway.lost");
    assert_eq!(lost.last_event_id, "", "the signal does not move the client's position");
    let info: Value = serde_json::from_str(&lost.data).expect("json");
    assert_eq!(info["topic"], "t");
    assert_eq!(info["after"], last.as_str());
    assert_eq!(info["resumed_from"], ids[2].as_str());
    assert_eq!(data(&s.events(3).await), ["3", "4", "5"]);
    assert_eq!(gateway::counters::Counters::get(&app.counters().lost_signals), 1);
}

#[tokio::test]
async fn a_position_from_before_this_process_is_reported_lost() {
    let app = spawn_app().await;
    app.publish("t", "new").await;
    let mut s = app.subscribe(&["t"], Some("1000-0")).await;
    assert_eq!(s.next_event().await.event, "gateway.lost");
    assert_eq!(s.next_event().await.data, "new");
}

#[tokio::test]
async fn a_cursor_from_the_future_does_not_swallow_new_events() {
    let app = spawn_app().await;
    let mut s = app.subscribe(&["t"], Some("99999999999999-0")).await;
    app.publish("t", "now").await;
    assert_eq!(s.next_event().await.data, "now");
}

/// Registering for live events and reading history must not race: a client resuming while a
/// publisher runs flat out sees every event exactly once, in order.
#[tokio::test]
async fn resuming_during_a_publish_burst_has_no_gap_and_no_duplicate() {
    let app = spawn_app().await;
    const N: usize = 400;
    for round in 0..5 {
        let topic = format!("burst{round}");
        let first = app.publish(&topic, "0").await;
        let publisher = {
            let client = app.client.clone();
            let url = app.url("/publish");
            let topic = topic.clone();
            tokio::spawn(async move {
                for i in 1..N {
                    let body = serde_json::json!({ "topic": topic, "data": i.to_string() });
                    let r = client.post(&url).bearer_auth(token(&[], &["*"])).json(&body).send().await.expect("publish");
                    assert_eq!(r.status(), 200);
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(round * 5)).await;
        let mut s = app.subscribe(&[&topic], Some(&first)).await;
        let got = s.events(N - 1).await;
        let expected: Vec<String> = (1..N).map(|i| i.to_string()).collect();
        assert_eq!(data(&got), expected, "round {round}");
        publisher.await.expect("publisher");
        s.expect_no_event(Duration::from_millis(100)).await;
    }
}

/// Three topics' events in an irregular interleave, `n` of them: `(topic, data)`, in publication
/// order.
fn interleaved(topics: [&str; 3], n: usize) -> Vec<(&str, String)> {
    (0..n)
        .map(|i| {
            let topic = topics[(i + i / 3 + i / 11) % 3];
            (topic, format!("{topic}{i}"))
        })
        .collect()
}

/// A multi-topic stream resumes with the missed events of all its topics merged in the order they
/// were published, across several history pages per topic: the order a client following them
/// live saw, whatever the order of the topics in its URL.
#[tokio::test]
async fn a_multi_topic_resume_replays_in_publish_order_as_live() {
    let app = spawn_app().await;
    let mut live = app.subscribe(&["a", "b", "c", "quiet"], None).await;
    let mut s = app.subscribe(&["a", "b", "c", "quiet"], None).await;
    app.publish("quiet", "q").await;
    assert_eq!(s.next_event().await.data, "q");
    assert_eq!(live.next_event().await.data, "q");
    let cursor = s.last_event_id().to_owned();
    drop(s);

    // More than a history page (256 events) per topic, within the live client's queue (1,024).
    let missed = interleaved(["a", "b", "c"], 900);
    for t in ["a", "b", "c"] {
        assert_eq!(missed.iter().filter(|(topic, _)| *topic == t).count(), 300, "{t} spans two pages");
    }
    // Batches: the embedded bus assigns ids in the batch's order.
    for batch in missed.chunks(100) {
        let body: Vec<Value> = batch.iter().map(|(topic, data)| serde_json::json!({ "topic": topic, "data": data })).collect();
        assert_eq!(app.publish_raw(Value::Array(body)).await.status(), 200);
    }
    let published: Vec<&str> = missed.iter().map(|(_, data)| data.as_str()).collect();
    assert_eq!(data(&live.events(missed.len()).await), published, "live, events come in publication order");

    let mut s = app.subscribe(&["quiet", "c", "b", "a"], Some(&cursor)).await;
    assert_eq!(data(&s.events(missed.len()).await), published, "resumed, in the same order");
    app.publish("b", "then live").await;
    assert_eq!(s.next_event().await.data, "then live");
    s.expect_no_event(Duration::from_millis(200)).await;
}
