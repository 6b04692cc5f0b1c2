//! Time-dependent behaviour of a stream, on tokio's paused clock, with the real embedded bus.

use std::time::Duration;

use shared::event::{REFRESH_EVENT, REVOKED_EVENT};
use shared::sse::{Item, Parser};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::bus::NewEvent;
use crate::bus::memory::MemoryBus;

struct Harness {
    fanout: Arc<Fanout>,
    bus: Arc<MemoryBus>,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
}

impl Harness {
    fn new() -> Self {
        let counters = Arc::new(Counters::default());
        let fanout = Arc::new(Fanout::new(16, Arc::clone(&counters)));
        let bus = Arc::new(MemoryBus::new(Arc::clone(&fanout), 100, Duration::from_secs(3600)));
        Self { fanout, bus, counters, shutdown: CancellationToken::new() }
    }

    async fn connect(&self, topics: &[&str], expires_in: Duration) -> EventStream {
        let topics = topics.iter().map(|t| Topic::parse(t).expect("topic")).collect();
        let settings = StreamSettings {
            heartbeat: Duration::from_secs(15),
            retry_ms: 3000,
            shutdown_retry_ms: 4321,
            expires_in,
            shutdown: self.shutdown.clone(),
            slow: CancellationToken::new(),
            control: None,
            refresh: None,
            render: None,
        };
        let bus: Arc<dyn Bus> = self.bus.clone();
        EventStream::start(topics, None, &self.fanout, bus, settings, Arc::clone(&self.counters)).await.expect("starts")
    }

    async fn publish(&self, topic: &str, data: &str) {
        let e = NewEvent::new(Topic::parse(topic).expect("topic"), data.into());
        self.bus.publish(vec![e]).await.expect("publish");
    }
}

fn parse(chunk: &Bytes) -> Vec<Item> {
    Parser::new().feed(chunk)
}

/// The next chunk if one comes within `d` of (paused) time.
async fn within(c: &mut EventStream, d: Duration) -> Option<Option<Bytes>> {
    tokio::time::timeout(d, c.next_chunk()).await.ok()
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_comes_after_each_idle_interval_and_not_before() {
    let h = Harness::new();
    let mut c = h.connect(&["t"], Duration::from_secs(3600)).await;
    assert_eq!(parse(&c.next_chunk().await.expect("retry")), vec![Item::Retry(3000)]);
    assert!(within(&mut c, Duration::from_secs(14)).await.is_none(), "no heartbeat before 15 s");
    let hb = within(&mut c, Duration::from_secs(2)).await.expect("a heartbeat by 16 s").expect("open");
    assert_eq!(&hb[..], HEARTBEAT);
    assert_eq!(parse(&hb), vec![Item::Comment(String::new())]);
    // Traffic resets the idle timer: an event 10 s later pushes the next heartbeat to 15 s after it.
    tokio::time::sleep(Duration::from_secs(10)).await;
    h.publish("t", "x").await;
    let ev = c.next_chunk().await.expect("event");
    assert!(matches!(parse(&ev).as_slice(), [Item::Event(e)] if e.data == "x"));
    assert!(within(&mut c, Duration::from_secs(14)).await.is_none(), "the event reset the heartbeat timer");
    assert!(within(&mut c, Duration::from_secs(2)).await.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_stream_ends_when_its_token_expires() {
    let h = Harness::new();
    let mut c = h.connect(&["t"], Duration::from_secs(40)).await;
    c.next_chunk().await.expect("retry");
    let mut heartbeats = 0;
    while let Some(chunk) = within(&mut c, Duration::from_secs(60)).await.expect("ends within the expiry") {
        assert_eq!(&chunk[..], HEARTBEAT);
        heartbeats += 1;
    }
    assert_eq!(heartbeats, 2, "heartbeats at 15 s and 30 s, then the end at 40 s");
    assert_eq!(Counters::get(&h.counters.token_expired_disconnects), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_sends_a_last_retry_and_ends() {
    let h = Harness::new();
    let mut c = h.connect(&["t"], Duration::from_secs(3600)).await;
    c.next_chunk().await.expect("retry");
    h.shutdown.cancel();
    assert_eq!(parse(&c.next_chunk().await.expect("last retry")), vec![Item::Retry(4321)]);
    assert!(c.next_chunk().await.is_none());
    assert_eq!(Counters::get(&h.counters.shutdown_disconnects), 1);
}

#[tokio::test]
async fn a_multi_topic_connection_sends_shared_fields_and_its_own_cursor() {
    let h = Harness::new();
    let mut c = h.connect(&["a", "b"], Duration::from_secs(3600)).await;
    c.next_chunk().await.expect("retry");
    h.publish("b", "hello").await;
    let mut p = Parser::new();
    let mut items = p.feed(&c.next_chunk().await.expect("fields"));
    items.extend(p.feed(&c.next_chunk().await.expect("cursor")));
    let [Item::Event(e)] = items.as_slice() else { panic!("{items:?}") };
    assert_eq!(e.data, "hello");
    assert_eq!(e.last_event_id, c.cursor());
    let cursor = Cursor::parse(&e.last_event_id).expect("cursor");
    let b = Topic::parse("b").expect("topic");
    let id = h.bus.read(&b, None, 0).await.expect("read").tail;
    assert_eq!(cursor.position(&b), Some(id));
}

#[tokio::test]
async fn dropping_a_connection_releases_its_topics() {
    let h = Harness::new();
    let c = h.connect(&["a", "b"], Duration::from_secs(3600)).await;
    assert_eq!(h.fanout.active_topics().len(), 2);
    assert_eq!(Counters::get(&h.counters.streams_open), 1);
    drop(c);
    assert!(h.fanout.active_topics().is_empty());
    assert_eq!(Counters::get(&h.counters.streams_open), 0);
}

/// A stream registered with a control plane (the embedded bus's), offering refresh `window`
/// before its token's end, `lifetime` from now.
async fn controlled(h: &Harness, lifetime: u64, window: u64) -> (EventStream, Arc<crate::control::Control>, String) {
    use crate::control::{Control, INCOMING_QUEUE, LocalLink, node_name};
    let (tx, rx) = tokio::sync::mpsc::channel(INCOMING_QUEUE);
    let control = Control::new(node_name(), Arc::new(LocalLink::new(tx)), Duration::ZERO, Arc::clone(&h.counters));
    // Not on a tracker: a test's task ends with its shutdown token or with the test's runtime.
    tokio::spawn(Arc::clone(&control).run(rx, h.shutdown.clone()));
    let claims = shared::Claims {
        sub: Some("alice".into()),
        exp: crate::epoch::now_secs() + lifetime,
        subscribe: vec![shared::TopicPattern::parse("*").expect("pattern")],
        ..shared::Claims::default()
    };
    let topics = vec![Topic::parse("t").expect("topic")];
    let registration = control.register(&claims, &topics).expect("registers");
    let id = registration.entry().id().to_owned();
    let settings = StreamSettings {
        heartbeat: Duration::from_secs(3600),
        retry_ms: 3000,
        shutdown_retry_ms: 4321,
        expires_in: Duration::from_secs(lifetime),
        shutdown: h.shutdown.clone(),
        slow: CancellationToken::new(),
        control: Some(registration),
        refresh: Some(RefreshOffer { window: Duration::from_secs(window), public_url: "".into() }),
        render: None,
    };
    let bus: Arc<dyn Bus> = h.bus.clone();
    let c = EventStream::start(topics, None, &h.fanout, bus, settings, Arc::clone(&h.counters)).await.expect("starts");
    (c, control, id)
}

fn named(chunk: &Bytes) -> (String, serde_json::Value) {
    let items = parse(chunk);
    let [Item::Event(e)] = items.as_slice() else { panic!("one event: {items:?}") };
    (e.event.clone(), serde_json::from_str(&e.data).expect("json"))
}

#[tokio::test(start_paused = true)]
async fn a_refresh_is_offered_a_window_before_expiry_and_a_fresh_token_moves_the_end() {
    let h = Harness::new();
    let (mut c, control, id) = controlled(&h, 100, 60).await;
    c.next_chunk().await.expect("retry");
    assert!(within(&mut c, Duration::from_secs(39)).await.is_none(), "no offer before 40 s");
    let (name, data) = named(&within(&mut c, Duration::from_secs(2)).await.expect("offer").expect("open"));
    assert_eq!(name, REFRESH_EVENT);
    assert_eq!(data["url"], format!("/streams/{id}/refresh"));
    assert!(data["expires_in"].as_u64().is_some_and(|s| (59..=60).contains(&s)), "{data}");

    let fresh = shared::Claims {
        sub: Some("alice".into()),
        exp: crate::epoch::now_secs() + 1000,
        subscribe: vec![shared::TopicPattern::parse("t").expect("pattern")],
        ..shared::Claims::default()
    };
    assert!(matches!(control.refresh(&id, fresh).await.expect("refresh"), crate::control::RefreshOutcome::Refreshed { .. }));
    // The old end (100 s) passes; the next offer comes 60 s before the new one.
    assert!(within(&mut c, Duration::from_secs(900)).await.is_none(), "open past the first token's end");
    let (name, _) = named(&within(&mut c, Duration::from_secs(60)).await.expect("a new offer").expect("open"));
    assert_eq!(name, REFRESH_EVENT);
    assert!(within(&mut c, Duration::from_secs(61)).await.expect("ends").is_none(), "ends at the new expiry");
    assert_eq!(Counters::get(&h.counters.token_expired_disconnects), 1);
}

#[tokio::test(start_paused = true)]
async fn a_revoked_connection_sends_gateway_revoked_and_ends() {
    let h = Harness::new();
    let (mut c, control, _) = controlled(&h, 3600, 60).await;
    c.next_chunk().await.expect("retry");
    let target = crate::control::Target::Subject("alice".into());
    let (tally, _) = control.revoke(target, Duration::from_secs(60)).await.expect("revokes");
    assert_eq!(tally.streams, 1);
    let (name, data) = named(&c.next_chunk().await.expect("last frame"));
    assert_eq!((name.as_str(), data["reason"].as_str()), (REVOKED_EVENT, Some("subject")));
    assert!(c.next_chunk().await.is_none());
    assert_eq!(Counters::get(&h.counters.revoked_disconnects), 1);
}
