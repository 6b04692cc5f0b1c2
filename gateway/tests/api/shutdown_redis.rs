//! Shutdown while Redis is away: the tasks' last Redis round trips (the control reader taking the
//! node off the live set) would each wait out the command timeout; the drain bounds them
//! (`shutdown::TASKS_GRACE`), so the node still stops promptly.

use std::time::{Duration, Instant};

use support::redis::*;

#[tokio::test]
async fn a_node_whose_redis_is_gone_stops_within_the_tasks_grace_not_the_command_timeout() {
    let mut redis = TestRedis::start().await;
    if !redis.can_restart() {
        eprintln!("skipped: this test stops its own redis-server");
        return;
    }
    let node = spawn_node(&redis, &unique_prefix()).await;
    let _stream = node.subscribe(&["t"], None).await;
    redis.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    node.shutdown().await;
    let took = started.elapsed();
    assert!(took >= gateway::shutdown::TASKS_GRACE, "the control reader's last round trip was waited for: {took:?}");
    // What the grace saves is the links' 3 s command timeout (twice, 6 s): the bound is that
    // timeout, not a guess at how busy the machine is.
    assert!(took < Duration::from_secs(3), "not for its 3 s command timeout, twice: {took:?}");
}
