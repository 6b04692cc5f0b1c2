//! The control plane on one node (the embedded bus's link), with its task running.

use shared::TopicPattern;

use super::*;

fn claims(sub: &str, jti: &str, grants: &[&str], exp: u64) -> Claims {
    Claims {
        sub: Some(sub.into()),
        jti: Some(jti.into()),
        exp,
        subscribe: grants.iter().map(|g| TopicPattern::parse(g).expect("pattern")).collect(),
        ..Claims::default()
    }
}

fn topics(names: &[&str]) -> Vec<Topic> {
    names.iter().map(|t| Topic::parse(t).expect("topic")).collect()
}

fn node() -> (Arc<Control>, CancellationToken) {
    let (tx, rx) = mpsc::channel(INCOMING_QUEUE);
    let control = Control::new(node_name(), Arc::new(LocalLink::new(tx)), Duration::ZERO, Arc::default());
    let stop = CancellationToken::new();
    // Not on a tracker: a test's task ends with `stop` or with the test's runtime.
    tokio::spawn(Arc::clone(&control).run(rx, stop.clone()));
    (control, stop)
}

fn later() -> u64 {
    crate::epoch::now_secs() + 3600
}

#[tokio::test]
async fn a_revocation_closes_what_it_covers_and_refuses_it_while_it_stands() {
    let (control, _stop) = node();
    let alice = control.register(&claims("alice", "j1", &["*"], later()), &topics(&["a"])).expect("registers");
    let bob = control.register(&claims("bob", "j2", &["*"], later()), &topics(&["b"])).expect("registers");
    let (tally, until) = control.revoke(Target::Subject("alice".into()), Duration::from_secs(60)).await.expect("revokes");
    assert_eq!(tally, Tally { streams: 1, nodes: 1, expected: 1 });
    assert!(until.is_some());
    assert!(alice.entry().is_revoked());
    assert_eq!(alice.entry().revoked_by().map(|(t, _)| t), Some(Target::Subject("alice".into())));
    assert!(!bob.entry().is_revoked());
    let refused = control.register(&claims("alice", "j3", &["*"], later()), &topics(&["c"])).expect_err("refused");
    assert_eq!(refused.target, Target::Subject("alice".into()));
    assert!(control.refusing(&claims("alice", "j4", &[], later())).is_some());
    assert!(control.refusing(&claims("carol", "j1", &[], later())).is_none());
}

#[tokio::test]
async fn a_disconnect_without_duration_refuses_nothing_and_a_topic_revocation_refuses_the_topic() {
    let (control, _stop) = node();
    let s = control.register(&claims("alice", "j1", &["*"], later()), &topics(&["a", "b"])).expect("registers");
    let (tally, until) = control.revoke(Target::Topic(topics(&["b"])[0].clone()), Duration::ZERO).await.expect("kicks");
    assert_eq!((tally.streams, until), (1, None));
    assert!(s.entry().is_revoked());
    control.register(&claims("alice", "j1", &["*"], later()), &topics(&["b"])).expect("a kick refuses nothing");
    control.revoke(Target::Topic(topics(&["b"])[0].clone()), Duration::from_secs(60)).await.expect("revokes");
    assert!(control.register(&claims("bob", "j9", &["*"], later()), &topics(&["a", "b"])).is_err(), "the topic is refused");
    control.register(&claims("bob", "j9", &["*"], later()), &topics(&["a"])).expect("other topics are not");
}

#[tokio::test]
async fn counts_see_every_stream_a_target_covers_and_dropped_streams_leave() {
    let (control, _stop) = node();
    let a = control.register(&claims("alice", "j1", &["*"], later()), &topics(&["t"])).expect("registers");
    let _b = control.register(&claims("alice", "j2", &["*"], later()), &topics(&["u"])).expect("registers");
    let _c = control.register(&claims("bob", "j3", &["*"], later()), &topics(&["t"])).expect("registers");
    assert_eq!(control.count(Target::Subject("alice".into())).await.expect("counts").streams, 2);
    assert_eq!(control.count(Target::Topic(topics(&["t"])[0].clone())).await.expect("counts").streams, 2);
    assert_eq!(control.count(Target::Jti("j3".into())).await.expect("counts").streams, 1);
    drop(a);
    assert_eq!(control.count(Target::Subject("alice".into())).await.expect("counts").streams, 1);
    assert_eq!(control.streams(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_refresh_extends_only_with_the_same_subject_every_topic_and_a_later_expiry() {
    let (control, _stop) = node();
    let exp = later();
    let s =
        control.register(&claims("alice", "j1", &["user.alice.*"], exp), &topics(&["user.alice.a", "user.alice.b"])).expect("registers");
    let id = s.entry().id().to_owned();
    let refresh = |c: Claims| {
        let control = Arc::clone(&control);
        let id = id.clone();
        async move { control.refresh(&id, c).await.expect("asks") }
    };
    assert_eq!(refresh(claims("bob", "j2", &["*"], exp + 60)).await, RefreshOutcome::Refused(RefreshRefusal::Subject));
    assert_eq!(refresh(claims("alice", "j2", &["user.alice.a"], exp + 60)).await, RefreshOutcome::Refused(RefreshRefusal::Topics));
    assert_eq!(refresh(claims("alice", "j2", &["user.alice.*"], exp)).await, RefreshOutcome::Refused(RefreshRefusal::NotLater));
    assert_eq!(refresh(claims("alice", "j2", &["user.alice.*"], exp + 60)).await, RefreshOutcome::Refreshed { exp: exp + 60 });
    // The stream now answers to the new token's id.
    assert_eq!(control.count(Target::Jti("j2".into())).await.expect("counts").streams, 1);
    let unknown = control.refresh(&format!("{}{:032x}", control.node(), 7), claims("alice", "j2", &["*"], exp + 90)).await.expect("asks");
    assert_eq!(unknown, RefreshOutcome::Unknown);
}
