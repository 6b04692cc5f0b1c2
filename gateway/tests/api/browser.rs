//! A real browser: Debian's headless Chromium, driven by playwright-core (`e2e/browser.mjs`),
//! opens the demo page through the balanced topology (nginx, three gateway processes, Redis).
//! The page's own `EventSource` does the work: it shows events live, and when the node serving
//! its stream is killed it opens a new stream through the balancer, with a fresh one-time ticket
//! and the last id it saw (`lastEventId`), and shows what was published meanwhile, each event
//! once. Its tokens stay out of every URL it requests: the demo link carries them after `#`, and
//! each stream is opened with a ticket from `POST /tickets`.
//!
//! Needs Node.js 20+, `npm ci --prefix e2e`, Chromium at /usr/bin/chromium, and nginx.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::app::*;
use support::browser::*;
use support::processes::*;
use support::topology::*;
use support::wait::Lazily;

/// The demo URL node 1 printed at start ("Demo page: …"), with its tokens.
async fn printed_demo_url(t: &Topology) -> String {
    let line = eventually(Lazily(|| format!("the demo banner:\n{}", t.logs())), WAIT, async || {
        read_log(&t.nodes[0].log).lines().find(|l| l.contains("Demo page:")).map(str::to_owned)
    })
    .await;
    line.split_whitespace().last().expect("the demo URL").to_owned()
}

/// The nodes still running.
fn running(t: &Topology) -> Vec<usize> {
    (0..t.nodes.len()).filter(|i| t.nodes[*i].child.is_some()).collect()
}

/// Kills the node holding the page's stream; asserts that no stream is open anywhere after
/// `publish` ran, so that what it published can only reach the page by resumption.
async fn kill_holder_and_publish<T>(t: &mut Topology, publish: impl AsyncFnOnce(&Topology, [usize; 2]) -> T) -> (Instant, T) {
    let holder = t.stream_holder().await;
    t.nodes[holder].kill().await;
    let killed_at = Instant::now();
    let alive = running(t);
    let published = publish(t, [alive[0], alive[1]]).await;
    let open = t.streams_per_node().await;
    assert!(open.iter().all(|n| *n == 0.0), "the page reconnected before the events were published (streams per node: {open:?})");
    (killed_at, published)
}

#[tokio::test]
async fn the_demo_page_in_chromium_shows_events_and_resumes_every_missed_event_once_after_its_node_is_killed() {
    require_browser();
    let mut t = Topology::start().await;
    let url = printed_demo_url(&t).await;
    let topic = "clock";
    assert!(url.contains(&format!("/#topic={topic}&")), "the demo page follows the clock topic, its tokens after #: {url}");
    let fragment: HashMap<String, String> =
        form_urlencoded::parse(url.split_once('#').expect("a fragment").1.as_bytes()).into_owned().collect();
    let tokens = [fragment["access_token"].as_str(), fragment["publish_token"].as_str()];
    let mut page = Page::open(&url, &t.dir.0).await;
    page.wait_open(&t).await;

    // Live: published on each node in turn, each shown by the page.
    let mut published = Vec::new();
    for i in 0..6 {
        let data = format!("live-{i}");
        published.push(PageEvent { id: t.publish_on(i % 3, topic, &data).await, event: "message".into(), data });
        page.wait_for(published.len(), &t).await;
    }

    // The node holding the page's stream dies; events are published on the nodes left.
    let before = published.len();
    let (killed_at, during) = kill_holder_and_publish(&mut t, async |t, alive| {
        let mut during = Vec::new();
        for i in 0..6 {
            let data = format!("during-{i}");
            let id = t.publish_on(alive[i % 2], topic, &data).await;
            during.push(PageEvent { id, event: "message".into(), data });
        }
        during
    })
    .await;
    published.extend(during);
    let resumed_at = page.first_beyond(before, &t).await;
    page.wait_for(published.len(), &t).await;
    println!("browser, one topic: first resumed event shown {:?} after the kill", resumed_at - killed_at);

    // Live again, through the balancer too.
    for i in 0..3 {
        let data = format!("after-{i}");
        let id = match i {
            0 => t.publish_at(&t.url("/publish"), topic, &data).await,
            _ => t.publish_on(running(&t)[i % 2], topic, &data).await,
        };
        published.push(PageEvent { id, event: "message".into(), data });
    }
    let view = page.wait_for(published.len(), &t).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let view_later = page.view().await;
    assert_eq!(view.events, published, "the page shows every event once, in order, with its id\n{}", t.logs());
    assert_eq!(view_later.events, published, "and nothing more");
    assert_eq!((view_later.state.as_str(), view_later.count), ("open", published.len()), "the page's own state and counter");
    page.assert_streams_opened_with_tickets(&tokens, 2).await;
    println!("browser, one topic: {} events published, {} shown", published.len(), view_later.events.len());
    page.close().await;
}

#[tokio::test]
async fn a_page_following_three_topics_shows_each_topics_events_once_in_order_across_a_node_kill() {
    require_browser();
    let mut t = Topology::start().await;
    let topics = ["alpha", "beta", "gamma"];
    let query: String = topics.iter().map(|topic| format!("topic={topic}&")).collect();
    let bearer = token(&topics, &[]);
    let url = t.url(&format!("/#{query}access_token={bearer}"));
    let mut page = Page::open(&url, &t.dir.0).await;
    page.wait_open(&t).await;

    // Interleaved across topics and nodes.
    let mut published: HashMap<&str, Vec<String>> = HashMap::new();
    let mut total = 0;
    for round in 0..4 {
        for (k, topic) in topics.iter().enumerate() {
            let data = format!("{topic}-live-{round}");
            t.publish_on((round + k) % 3, topic, &data).await;
            published.entry(topic).or_default().push(data);
            total += 1;
        }
    }
    page.wait_for(total, &t).await;

    let before = total;
    let (killed_at, during) = kill_holder_and_publish(&mut t, async |t, alive| {
        let mut during = Vec::new();
        for round in 0..3 {
            for (k, topic) in topics.iter().enumerate() {
                let data = format!("{topic}-during-{round}");
                t.publish_on(alive[(round + k) % 2], topic, &data).await;
                during.push((*topic, data));
            }
        }
        during
    })
    .await;
    for (topic, data) in during {
        published.entry(topic).or_default().push(data);
        total += 1;
    }
    let resumed_at = page.first_beyond(before, &t).await;
    println!("browser, three topics: first resumed event shown {:?} after the kill", resumed_at - killed_at);
    for topic in topics {
        let data = format!("{topic}-after");
        t.publish_on(running(&t)[0], topic, &data).await;
        published.entry(topic).or_default().push(data);
        total += 1;
    }
    let view = page.wait_for(total, &t).await;

    // Per topic: every event once, in publish order (the page's data says which topic).
    for topic in topics {
        let shown: Vec<&str> = view.events.iter().map(|e| e.data.as_str()).filter(|d| d.starts_with(&format!("{topic}-"))).collect();
        assert_eq!(shown, published[topic], "topic {topic}: every event once, in order\n{}", t.logs());
    }
    // Each event carries a resumption id (the multi-topic cursor), never the same twice.
    let mut ids: Vec<&str> = view.events.iter().map(|e| e.id.as_str()).collect();
    assert!(ids.iter().all(|id| !id.is_empty()), "every event has an id: {:#?}", view.events);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "no id twice");
    page.assert_streams_opened_with_tickets(&[&bearer], 2).await;
    println!("browser, three topics: {total} events published, {} shown", view.events.len());
    page.close().await;
}
