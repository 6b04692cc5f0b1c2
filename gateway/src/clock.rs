//! The built-in `clock` topic: the current time (RFC 3339, UTC) every few seconds, published
//! through the bus like any event, so the demo page shows a live, resumable stream at once.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shared::Topic;
use shared::keys::KeyLayout;
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, NewEvent};

pub(crate) async fn run(bus: Arc<dyn Bus>, topic: Topic, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // With several nodes on one bus, one of them publishes each tick: the first to claim the
        // tick's slot (wall-clock time divided by the interval).
        let now = SystemTime::now();
        let slot = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis() / every.as_millis().max(1);
        match bus.claim(&KeyLayout::clock_claim(&topic, slot), every * 2).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "clock tick not claimed");
                continue;
            }
        }
        let data = humantime::format_rfc3339_seconds(now).to_string();
        let event = NewEvent::new(topic.clone(), data);
        if let Err(e) = bus.publish(vec![event]).await {
            tracing::warn!(error = %e, "clock tick not published");
        }
    }
}
