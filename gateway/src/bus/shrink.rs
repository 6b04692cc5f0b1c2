//! Giving the room of emptied per-topic tables back (the embedded bus, the fan-out, the upstream).

use std::collections::HashMap;
use std::hash::Hash;

/// Gives a per-topic table's spare room back once it is under a quarter full: `remove` and
/// `retain` never shrink a `HashMap`, so a burst of short-lived topics (a million users passing
/// by) would keep the table at its peak size for ever. Shrinking to twice the length only when a
/// quarter full keeps the cost amortised: each shrink follows at least as many removals as it
/// moves entries.
pub(crate) fn shrink_idle<K: Eq + Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}
