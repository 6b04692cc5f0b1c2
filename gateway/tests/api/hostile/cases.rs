//! The hostile cases, each a function of the [`Target`] run in every round: heads and bodies,
//! tokens, positions, topic names, data that looks like SSE, and clients that never read.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use shared::sse::{Item, Parser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use support::app::*;
use support::wait::Lazily;

use super::target::*;

/// Sockets that send nothing, half a head byte by byte, or half an HTTP/2 preface: each is
/// closed once `GATEWAY_HEADER_TIMEOUT` passes, and a complete request still gets through
/// beside them.
pub(super) async fn slowloris_heads_are_closed_at_the_header_timeout(t: &Target) {
    let addr = t.node.addr;
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let start = Instant::now();
    let silent: Vec<TcpStream> =
        futures::future::join_all((0..100).map(|_| connect_from(local, addr))).await.into_iter().map(|s| s.expect("connect")).collect();
    let mut preface: Vec<TcpStream> = Vec::new();
    for _ in 0..20 {
        let mut s = connect_from(local, addr).await.expect("connect");
        s.write_all(b"PRI * HTTP/2.0\r\n").await.expect("half a preface");
        preface.push(s);
    }
    // Byte by byte, every 100 ms: each byte resets no timer.
    let dribblers: Vec<JoinHandle<Duration>> = (0..20)
        .map(|i| {
            tokio::spawn(async move {
                let opened = Instant::now();
                let mut s = connect_from(local, addr).await.expect("connect");
                let head = format!("GET /events?topic=slow{i} HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n", "a".repeat(200));
                for b in head.bytes() {
                    if s.write_all(&[b]).await.is_err() {
                        return opened.elapsed();
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                panic!("a dribbled head of {} bytes was never cut", head.len());
            })
        })
        .collect();
    // Meanwhile a normal request is served at once.
    let r = t.client.get(t.url("/healthz")).send().await.expect("healthz");
    assert_eq!(r.status(), 200);

    for mut s in silent.into_iter().chain(preface) {
        let (answer, closed) = exchange(&mut s, b"", HEADER_TIMEOUT * 3).await;
        assert!(closed, "a socket without a complete head is still open after {:?}", start.elapsed());
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "unexpected answer: {answer:?}");
    }
    for d in dribblers {
        let lasted = d.await.expect("dribbler");
        assert!(lasted < HEADER_TIMEOUT * 3, "a dribbled head lasted {lasted:?}");
    }
    println!("slowloris: 140 sockets without a complete head all closed within {:?}", start.elapsed());
}

/// A head over 64 KiB, or with too many headers, is 431 before any handler; bodies over
/// `GATEWAY_MAX_BODY_BYTES` (announced or streamed) are 413 with a JSON error.
pub(super) async fn oversized_heads_are_431_and_oversized_bodies_413(t: &Target) {
    let addr = t.node.addr;
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let big_header = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(80 * 1024));
    let many_headers =
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n", (0..200).map(|i| format!("X-H{i}: v\r\n")).collect::<String>());
    for head in [big_header, many_headers] {
        let mut s = connect_from(local, addr).await.expect("connect");
        let (answer, closed) = exchange(&mut s, head.as_bytes(), WAIT).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "expected 431, got {:?}", answer.lines().next());
        assert!(closed, "the socket is closed after a 431");
    }
    // A token in a header just under the limit is read and judged like any other.
    let padded = {
        let mut c = claims(&["*"], &[]);
        c.aud = Some(json!(AUDIENCE));
        let mut v = serde_json::to_value(&c).expect("claims");
        v["padding"] = json!("p".repeat(40 * 1024));
        sign(&v)
    };
    let r = t.client.get(t.url("/events?topic=padded")).bearer_auth(&padded).send().await.expect("stream");
    assert_eq!(r.status(), 200, "a 55 KiB token under the head limit is accepted");
    drop(r);

    let publish = token_for(&[], &["*"]);
    let over = json!({ "topic": "big", "data": "x".repeat(1024 * 1024 + 1) }).to_string();
    let r = t.client.post(t.url("/publish")).bearer_auth(&publish).header("content-type", "application/json").body(over.clone());
    assert_eq!(json_error(r.send().await.expect("publish")).await, (413, "payload_too_large".to_owned()));
    // Streamed without a length: cut when the limit is crossed.
    let chunks =
        futures::stream::iter(over.into_bytes().chunks(64 * 1024).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
    let r = t
        .client
        .post(t.url("/publish"))
        .bearer_auth(&publish)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks));
    assert_eq!(json_error(r.send().await.expect("publish")).await, (413, "payload_too_large".to_owned()));
    // Announcing 10 GB and sending nothing: refused from the header alone.
    let mut s = connect_from(local, addr).await.expect("connect");
    let head = format!(
        "POST /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {publish}\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
    );
    let (answer, _) = exchange(&mut s, head.as_bytes(), WAIT).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "expected 413, got {:?}", answer.lines().next());
    assert!(answer.contains("payload_too_large"), "{answer}");
}

/// `alg: none`, expired, another audience, another key, and a huge claim set are all 401;
/// nothing of the token is echoed back.
pub(super) async fn hostile_tokens_are_401(t: &Target) {
    let b64 = |v: &Value| b64url(v.to_string().as_bytes());
    let mut good = claims(&["*"], &[]);
    good.aud = Some(json!(AUDIENCE));
    let good_json = serde_json::to_value(&good).expect("claims");
    let alg_none = format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "JWT" })), b64(&good_json));
    let alg_none_signed = format!("{}.{}.c2ln", b64(&json!({ "alg": "none" })), b64(&good_json));
    let expired = {
        let mut c = good.clone();
        c.exp = now() - 3600;
        sign(&c)
    };
    let other_audience = {
        let mut c = good.clone();
        c.aud = Some(json!("someone-else"));
        sign(&c)
    };
    let no_audience = sign(&claims(&["*"], &[]));
    let other_key =
        jsonwebtoken::encode(&Header::default(), &good, &EncodingKey::from_secret(b"another-secret-0123456789abcdefgh")).expect("sign");
    // 1,500 patterns and 500 audiences: a claim set far beyond any real token, signed
    // with another key so that its size, not its grants, is what the node has to cope with.
    let huge = {
        let mut v = good_json.clone();
        v["subscribe"] = json!((0..1500).map(|i| format!("topic.{i}.*")).collect::<Vec<_>>());
        v["aud"] = json!((0..500).map(|i| format!("aud-{i:016}")).collect::<Vec<_>>());
        jsonwebtoken::encode(&Header::default(), &v, &EncodingKey::from_secret(b"another-secret-0123456789abcdefgh")).expect("sign")
    };
    let cases = [
        ("alg none", alg_none),
        ("alg none with a signature", alg_none_signed),
        ("expired", expired),
        ("another audience", other_audience),
        ("no audience", no_audience),
        ("another key", other_key.clone()),
        ("huge claim set", huge),
        ("not a token", "a.b.c".to_owned()),
    ];
    for (what, token) in &cases {
        let r = t.client.get(t.url("/events?topic=t")).bearer_auth(token).send().await.expect("request");
        assert!(r.headers().get("www-authenticate").is_some_and(|v| !v.to_str().unwrap_or("").contains(token.as_str())));
        let (status, code) = json_error(r).await;
        assert_eq!((status, code.as_str()), (401, "unauthorized"), "{what}");
        let r =
            t.client.post(t.url("/publish")).bearer_auth(token).json(&json!({ "topic": "t", "data": 1 })).send().await.expect("request");
        assert_eq!(json_error(r).await.0, 401, "{what} (publish)");
    }
    // The huge set with the right key is read, and its grants hold: topic.7.x is granted,
    // other.x is not.
    let mut v = good_json.clone();
    v["subscribe"] = json!((0..2000).map(|i| format!("topic.{i}.*")).collect::<Vec<_>>());
    let big = sign(&v);
    let r = t.client.get(t.url("/events?topic=topic.7.x")).bearer_auth(&big).send().await.expect("request");
    assert_eq!(r.status(), 200);
    drop(r);
    let r = t.client.get(t.url("/events?topic=other.x")).bearer_auth(&big).send().await.expect("request");
    assert_eq!(json_error(r).await, (403, "forbidden".to_owned()));
    let log = t.log();
    for (what, token) in &cases {
        assert!(!log.contains(token.as_str()), "the node's log holds the {what} token");
    }
}

/// `Last-Event-ID` headers and `lastEventId` parameters that are not a stream id or a cursor.
pub(super) async fn malformed_positions_are_400(t: &Target) {
    let token = token_for(&["*"], &[]);
    let long_cursor = (0..1200).map(|i| format!("{i:010}.zz-0")).collect::<Vec<_>>().join(",");
    let header_cases = [
        "garbage",
        "1-2-3",
        "-1",
        "1-",
        "-",
        "18446744073709551616-0",
        "1-18446744073709551616",
        "0x10-0",
        "١-٠",
        "a.b,c.d",
        "1a.m3u5w7hc-0,1a.m3u5w7hd-0",
        "1a.m3u5w7hc-0,",
        long_cursor.as_str(),
    ];
    for id in header_cases {
        let r = t.client.get(t.url("/events?topic=t")).bearer_auth(&token).header("Last-Event-ID", id).send().await.expect("request");
        assert_eq!(json_error(r).await, (400, "invalid_last_event_id".to_owned()), "Last-Event-ID {:?}", &id[..id.len().min(40)]);
    }
    // In the query string, bytes a header could not carry.
    for id in ["1-0%0Aid:%202-0", "1-0%00", "%E2%80%AE1-0", "1-0%0D%0Adata:x"] {
        let r = t.client.get(t.url(&format!("/events?topic=t&lastEventId={id}"))).bearer_auth(&token).send().await.expect("request");
        assert_eq!(json_error(r).await, (400, "invalid_last_event_id".to_owned()), "lastEventId={id}");
    }
}

/// Newlines, NUL, CR, confusable and invisible characters: no such topic exists, to follow or
/// to publish on, so none can alias another or reach the wire.
pub(super) async fn hostile_topic_names_are_400(t: &Target) {
    let (sub, publish) = (token_for(&["*"], &[]), token_for(&[], &["*"]));
    let names = [
        "a\nb",
        "a\r\nid: 1-0",
        "a\0b",
        "orders\u{0}",
        "\u{043e}rders",  // Cyrillic о
        "\u{ff4f}rders",  // fullwidth ｏ
        "or\u{200b}ders", // zero-width space
        "orders\u{202e}", // right-to-left override
        "ord\u{0435}rs",  // Cyrillic е
        "orders\u{fe0f}", // variation selector
        " orders",
        "",
    ];
    for name in names {
        let query: String = form_urlencoded::Serializer::new(String::new()).append_pair("topic", name).finish();
        let r = t.client.get(t.url(&format!("/events?{query}"))).bearer_auth(&sub).send().await.expect("request");
        assert_eq!(json_error(r).await, (400, "invalid_topic".to_owned()), "follow {name:?}");
        let r = t
            .client
            .post(t.url("/publish"))
            .bearer_auth(&publish)
            .json(&json!({ "topic": name, "data": "x" }))
            .send()
            .await
            .expect("request");
        assert_eq!(json_error(r).await, (400, "invalid_topic".to_owned()), "publish on {name:?}");
    }
}

/// Data holding CR, CRLF, blank lines and text that looks like SSE fields reaches a client as
/// that data: every line of it after `data: `, the event's only `id:` the gateway's own.
pub(super) async fn data_that_looks_like_sse_arrives_as_data(t: &Target) {
    let nasty = [
        "line1\rline2",
        "a\r\n\r\nid: 999-0\r\nevent: evil\r\n\r\ndata: injected",
        "\n\nretry: 1\n\n",
        "data: x\nid: 1-0\nevent: gateway.lost\n:comment\n",
        "trailing\r",
        "\r\n",
        "id:",
        "\u{2028}\u{85}unicode line separators stay\u{0}",
    ];
    // A raw socket: the bytes on the wire are checked, not only what a parser made of them.
    let mut s = connect_from(IpAddr::V4(Ipv4Addr::LOCALHOST), t.node.addr).await.expect("connect");
    let head = format!("GET /events?topic=nasty HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n", token_for(&["nasty"], &[]));
    s.write_all(head.as_bytes()).await.expect("request");
    // The stream is open (and follows the topic) once its first frame, the `retry:`, is in.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&raw).contains("retry: ") {
        let n = tokio::time::timeout(WAIT, s.read(&mut buf)).await.expect("the stream opens in time").expect("read");
        assert!(n > 0, "the stream ended: {:?}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    }
    let mut ids = Vec::new();
    for data in nasty {
        let r = t.client.post(t.url("/publish")).bearer_auth(token_for(&[], &["nasty"])).json(&json!({ "topic": "nasty", "data": data }));
        let r = r.send().await.expect("publish");
        assert_eq!(r.status(), 200);
        ids.push(r.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned());
    }
    // Read until every event is in; then check the body's lines and the parsed events.
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while events.len() < nasty.len() {
        let read = tokio::time::timeout_at(deadline, s.read(&mut buf)).await;
        let n = read
            .unwrap_or_else(|_| panic!("{} of {} events in time: {:?}", events.len(), nasty.len(), String::from_utf8_lossy(&raw)))
            .expect("read");
        assert!(n > 0, "the stream ended");
        raw.extend_from_slice(&buf[..n]);
        let body_start = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
        if let Some(start) = body_start {
            events =
                dechunk(&raw[start..]).map(|body| Parser::new().feed(&body)).unwrap_or_default().into_iter().filter_map(event).collect();
        }
    }
    for ((e, data), id) in events.iter().zip(nasty).zip(&ids) {
        // What a conforming EventSource gets: each of CRLF, CR and LF ends a line.
        let expected = data.replace("\r\n", "\n").replace('\r', "\n");
        assert_eq!((e.data.as_str(), e.last_event_id.as_str(), e.event.as_str()), (expected.as_str(), id.as_str(), "message"));
    }
    // Every line of the body, as an EventSource splits them (CR, LF and CRLF), is a `data:`
    // line, one of the gateway's own fields, a comment or blank.
    let start = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let body = String::from_utf8_lossy(&dechunk(&raw[start..]).expect("chunked")).into_owned();
    let fields: Vec<&str> = body.split(['\r', '\n']).filter(|l| !l.is_empty() && !l.starts_with("data: ") && !l.starts_with(':')).collect();
    let fields: Vec<&str> =
        fields.into_iter().filter(|l| l.starts_with("id:") || l.starts_with("event:") || l.starts_with("retry:")).collect();
    let ours: Vec<String> = ids.iter().map(|id| format!("id: {id}")).collect();
    assert!(fields.iter().all(|f| ours.iter().any(|o| o == f) || f.starts_with("retry: ")), "fields the gateway did not write: {fields:?}");
}

/// The body of a chunked response so far (whole chunks only).
pub(super) fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else { return Some(out) };
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).ok()?.trim(), 16).ok()?;
        if raw.len() < eol + 2 + size + 2 {
            return Some(out);
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
}

pub(super) fn event(item: Item) -> Option<shared::sse::ParsedEvent> {
    match item {
        Item::Event(e) => Some(e),
        _ => None,
    }
}

/// Streams whose clients never read a byte: cut by the write timeout or their queue, while
/// the bystander keeps getting its events.
pub(super) async fn clients_that_never_read_are_cut(t: &Target) {
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let mut s = socket.connect(t.node.addr).await.expect("connect");
        let head = format!("GET /events?topic=flood HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n", token_for(&["flood"], &[]));
        s.write_all(head.as_bytes()).await.expect("request");
        stalled.push(s);
    }
    let publish = token_for(&[], &["flood"]);
    let payload = "x".repeat(32 * 1024);
    let cut_so_far = async || {
        let m = t.node.metrics(&t.client).await;
        m.value("sse_gateway_connections_closed_total{reason=\"slow\"}")
            + m.value("sse_gateway_connections_closed_total{reason=\"write_timeout\"}")
    };
    let before = cut_so_far().await;
    let start = Instant::now();
    eventually(Lazily(|| format!("20 stalled streams to be cut\n{}", t.log())), Duration::from_secs(30), async || {
        let cut = cut_so_far().await - before;
        if cut >= 20.0 {
            return Ok(());
        }
        let batch: Vec<Value> = (0..16).map(|_| json!({ "topic": "flood", "data": payload })).collect();
        let r = t.client.post(t.url("/publish")).bearer_auth(&publish).json(&batch).send().await.expect("publish");
        assert_eq!(r.status(), 200);
        // Pacing, not waiting: one 512 KiB batch per 50 ms, a steady publisher rather than a flood.
        tokio::time::sleep(Duration::from_millis(40)).await;
        Err(format!("only {cut} of 20 cut"))
    })
    .await;
    println!("never-reading clients: 20 stalled streams cut within {:?}", start.elapsed());
}
