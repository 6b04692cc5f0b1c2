//! The demo page in a real browser (`e2e/browser.mjs`: Chromium through playwright-core), read
//! and waited on from the test.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::app::WAIT;
use crate::e2e::{CHROMIUM, Script, require_chromium, require_package};
use crate::processes::{START, read_log};
use crate::topology::Topology;
use crate::wait::{Lazily, eventually};

/// Longest a page may take to show what it is waiting for. Chromium reconnects after the
/// gateway's `retry:` (3 s plus up to 2 s of jitter by default).
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

/// One item of the page's event list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PageEvent {
    pub id: String,
    pub event: String,
    pub data: String,
}

/// What the page shows.
#[derive(Debug, Deserialize)]
pub struct PageView {
    pub state: String,
    pub count: usize,
    /// Tokens the page refreshed in band.
    pub refreshes: usize,
    pub events: Vec<PageEvent>,
}

/// One HTTP request the page made, as it left the browser.
#[derive(Debug, Deserialize)]
pub struct PageRequest {
    pub method: String,
    pub url: String,
}

/// The demo page open in Chromium.
#[derive(Debug)]
pub struct Page(pub Script);

impl Page {
    pub async fn open(url: &str, log_dir: &Path) -> Self {
        require_browser();
        let mut script = Script::spawn("browser.mjs", &[("PAGE_URL", url), ("CHROMIUM", CHROMIUM)], log_dir);
        let ready = script.next(START).await;
        assert_eq!(ready["kind"], "ready", "{ready}");
        Self(script)
    }

    pub async fn view(&mut self) -> PageView {
        self.0.send("events").await;
        let v = self.0.next(WAIT).await;
        assert_eq!(v["kind"], "events", "{v}");
        serde_json::from_value(v).expect("a page view")
    }

    pub async fn requests(&mut self) -> Vec<PageRequest> {
        self.0.send("requests").await;
        let v = self.0.next(WAIT).await;
        assert_eq!(v["kind"], "requests", "{v}");
        serde_json::from_value(v["requests"].clone()).expect("the page's requests")
    }

    /// Asserts that none of `tokens` travelled in a URL the page requested, and that it opened
    /// at least `streams` event streams, each with a ticket of its own, each after the first
    /// resuming with `lastEventId`, each ticket got from `POST /tickets`.
    pub async fn assert_streams_opened_with_tickets(&mut self, tokens: &[&str], streams: usize) {
        let requests = self.requests().await;
        for r in &requests {
            // What goes over the wire: a fragment never does.
            let sent = r.url.split('#').next().unwrap_or_default();
            assert!(!sent.contains("access_token") && !sent.contains("publish_token"), "a token parameter in {} {sent}", r.method);
            for token in tokens {
                let signature = token.rsplit('.').next().expect("a JWT");
                assert!(!sent.contains(signature), "a token in the URL of {} {sent}", r.method);
            }
        }
        let opened: Vec<HashMap<String, String>> = requests
            .iter()
            .filter(|r| r.method == "GET" && r.url.contains("/events?"))
            .map(|r| form_urlencoded::parse(r.url.split_once('?').expect("a query").1.as_bytes()).into_owned().collect())
            .collect();
        assert!(opened.len() >= streams, "the page opened {} streams, expected at least {streams}: {requests:#?}", opened.len());
        let mut tickets: Vec<&str> = opened.iter().map(|q| q.get("ticket").expect("every stream opened with a ticket").as_str()).collect();
        assert!(opened.iter().skip(1).all(|q| q.contains_key("lastEventId")), "every later stream resumes: {opened:#?}");
        tickets.sort_unstable();
        tickets.dedup();
        assert_eq!(tickets.len(), opened.len(), "a new ticket for each stream");
        let issued = requests.iter().filter(|r| r.method == "POST" && r.url.ends_with("/tickets")).count();
        assert!(issued >= opened.len(), "{issued} tickets asked for, {} streams opened", opened.len());
    }

    /// Reads the page until it lists `n` events (failing if it lists more, or not in time).
    pub async fn wait_for(&mut self, n: usize, t: &Topology) -> PageView {
        let stderr = self.0.stderr_path().to_owned();
        let what = Lazily(|| format!("the page to show the {n} events published\nbrowser:\n{}\n{}", read_log(&stderr), t.logs()));
        eventually(what, PAGE_WAIT, async || {
            let view = self.view().await;
            assert!(view.events.len() <= n, "the page shows more than the {n} events published: {:#?}", view.events);
            if view.events.len() == n {
                Ok(view)
            } else {
                Err(format!("{} of {n} events (state {}): {:#?}", view.events.len(), view.state, view.events))
            }
        })
        .await
    }

    /// Reads the page until its `EventSource` is open.
    pub async fn wait_open(&mut self, t: &Topology) {
        let stderr = self.0.stderr_path().to_owned();
        let what = Lazily(|| format!("the page's EventSource to open\nbrowser:\n{}\n{}", read_log(&stderr), t.logs()));
        eventually(what, PAGE_WAIT, async || self.view().await.state == "open").await;
    }

    /// Reads the page until it shows an event beyond the first `n`; returns when it did.
    pub async fn first_beyond(&mut self, n: usize, t: &Topology) -> Instant {
        let stderr = self.0.stderr_path().to_owned();
        let what = Lazily(|| format!("the page to resume\nbrowser:\n{}\n{}", read_log(&stderr), t.logs()));
        eventually(what, PAGE_WAIT, async || (self.view().await.events.len() > n).then(Instant::now)).await
    }

    pub async fn close(self) {
        self.0.close().await;
    }
}

/// Node.js, playwright-core and Chromium: checked before anything starts.
pub fn require_browser() {
    require_package("playwright-core");
    require_chromium();
}
