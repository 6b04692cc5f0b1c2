//! Stream tickets on Redis: every node sharing the Redis (and the key prefix) can redeem a ticket
//! any other issued, and only one of them can. Keys (see `shared::keys`):
//! - `{prefix}:ticket:{digest}`: the ticket's entry (its claims), `SET … NX PX` for the ticket's
//!   lifetime; once taken, an empty tombstone that keeps the same expiry;
//! - `{prefix}:deployment`: the deployment's tag, kept alive by every node (see [`DEPLOYMENT`]).
//!
//! Both expire: Redis holds no ticket longer than the ticket lives, and no tag longer than
//! [`crate::tickets::DEPLOYMENT_TTL`] after the deployment's last node stopped.

use std::time::Duration;

use async_trait::async_trait;
use fred::interfaces::{KeysInterface, LuaInterface};
use fred::types::{Expiration, SetOptions, Value};

use super::bus::RedisBus;
use super::link::{from_fred, malformed};
use super::scripts::ReplyError;
use crate::bus::BusError;
use crate::bus::tickets::{Stored, Taken, TicketStore};

/// Takes a ticket's entry and leaves a tombstone in its place, in one atomic step. KEYS[1]: the
/// ticket's key. Returns `{'taken', entry}`, `{'used'}` (the tombstone) or `{'unknown'}`.
///
/// Why a script and not `GETDEL`: with `GETDEL` then a `SET` of the tombstone, a replay arriving
/// between the two (an attacker racing the page that got the ticket) would find nothing and be
/// told `ticket_unknown`, not `ticket_used`; and a node stopping between them would leave no
/// trace of the use at all. The tombstone keeps the entry's expiry (`KEEPTTL`): after it the
/// ticket's own expiry time answers `ticket_expired` before Redis is asked.
const REDEEM: &str = r#"
local entry = redis.call('GET', KEYS[1])
if not entry then return {'unknown'} end
if entry == '' then return {'used'} end
redis.call('SET', KEYS[1], '', 'KEEPTTL')
return {'taken', entry}
"#;

/// The deployment's tag: the stored one, or ARGV[1] if none is stored; either way kept for
/// ARGV[2] ms more. KEYS[1]: `{prefix}:deployment`.
///
/// Every node calls it at start and then periodically, so the tag outlives any one node and
/// expires soon after the last one stops (the footprint promise: nothing outlives what is live).
/// If the key is lost while nodes run (Redis restarted empty), the next node to refresh stores
/// its own copy again, which is every running node's copy; a node started in between may store a
/// new tag, which the others then adopt at their next refresh. Atomic, so two nodes starting
/// together agree.
const DEPLOYMENT: &str = r#"
local tag = redis.call('GET', KEYS[1])
if not tag then
  tag = ARGV[1]
  redis.call('SET', KEYS[1], tag)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return tag
"#;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// Reads the reply of [`REDEEM`].
fn taken(reply: Value) -> Result<Taken, BusError> {
    let malformed = || malformed(ReplyError("the redeem script's answer"));
    let Value::Array(parts) = reply else { return Err(malformed()) };
    let mut parts = parts.into_iter().map(|v| v.into_string());
    match (parts.next().flatten().as_deref(), parts.next().flatten()) {
        (Some("taken"), Some(entry)) => Ok(Taken::Entry(entry)),
        (Some("used"), None) => Ok(Taken::Used),
        (Some("unknown"), None) => Ok(Taken::Unknown),
        _ => Err(malformed()),
    }
}

#[async_trait]
impl TicketStore for RedisBus {
    async fn deployment(&self, candidate: &str, ttl: Duration) -> Result<String, BusError> {
        let key = self.keys.deployment().to_owned();
        let args = vec![candidate.to_owned(), millis(ttl).to_string()];
        let tag: Option<String> = self.counters.redis("deployment", self.client.eval(DEPLOYMENT, key, args)).await.map_err(from_fred)?;
        tag.ok_or_else(|| malformed(ReplyError("the deployment script's tag")))
    }

    async fn put_ticket(&self, key: &str, entry: String, ttl: Duration) -> Result<Stored, BusError> {
        let key = self.keys.ticket(key);
        // NX: a ticket's key is its digest, so a collision would need a SHA-256 collision; NX
        // still makes sure an entry, once stored, can never be replaced.
        let set: Option<String> = self
            .counters
            .redis("ticket_issue", self.client.set(key, entry, Some(Expiration::PX(millis(ttl))), Some(SetOptions::NX), false))
            .await
            .map_err(from_fred)?;
        match set {
            Some(_) => Ok(Stored::Kept),
            None => Err(BusError::Unavailable("a ticket with this digest already exists".into())),
        }
    }

    async fn take_ticket(&self, key: &str) -> Result<Taken, BusError> {
        let key = self.keys.ticket(key);
        let reply: Value =
            self.counters.redis("ticket_redeem", self.client.eval(REDEEM, key, Vec::<String>::new())).await.map_err(from_fred)?;
        taken(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redeem_replies_are_read_and_anything_else_is_an_error() {
        let s = |v: &str| Value::String(v.into());
        assert_eq!(taken(Value::Array(vec![s("taken"), s("{}")])).expect("taken"), Taken::Entry("{}".into()));
        assert_eq!(taken(Value::Array(vec![s("used")])).expect("used"), Taken::Used);
        assert_eq!(taken(Value::Array(vec![s("unknown")])).expect("unknown"), Taken::Unknown);
        for bad in [Value::Null, Value::Array(vec![s("taken")]), Value::Array(vec![s("used"), s("x")]), s("taken")] {
            assert!(taken(bad).is_err());
        }
    }
}
