//! The Lua scripts the Redis bus runs, and the parsing of their replies. Each runs atomically on
//! the shard that holds its topic (every key of a script call shares the topic's hash tag).

use fred::types::Value;
use shared::{Event, EventName, StreamId, Topic};

use crate::telemetry::TraceContext;

/// Appends events to one topic's stream and trims it, in one atomic step, at most once per call.
/// `KEYS[1]`: the stream; `KEYS[2]`: this call's receipt; `KEYS[3…]`: the alias keys of the events that
/// have one, in order. ARGV: max length (0 = none), max age in ms (0 = none), the receipt's
/// lifetime in ms, then for each event the number of field/value pairs, the pairs (`data`,
/// `event`, `retry`, `via`, and with traces on `traceparent`, `tracestate`: see [`entry`]), and
/// `1` if the event has an alias key (`0` if not). Returns the ids in order. Age trimming uses
/// the server's clock (`TIME`), the clock its ids come from.
///
/// An alias key holds its event's id for the max age (a day without one); it is set only if
/// absent, so a name given twice resolves to the earliest event that bears it, as Mercure asks.
///
/// Trimming alone runs only when the next event comes, so a topic that goes quiet would keep its
/// stream for ever (a million per-user topics: gigabytes). So the stream also expires: at the
/// last id's millisecond plus the max age (`PEXPIREAT`, in the same atomic step as the `XADD`s).
/// From the last id rather than from `TIME`: the id is never earlier than `TIME` and is later if
/// Redis's clock went back, and [`READ`]'s rule for a missing stream relies on "a stream that is
/// gone held no id younger than the max age".
///
/// The receipt makes the call idempotent: the link sends a command again after a
/// reconnect when its reply never came, but the script may have run (Redis stopped after running
/// it, or the link broke). A call that finds its receipt appends nothing and returns the
/// ids of the first run.
pub(crate) const PUBLISH: &str = r#"
local receipt = redis.call('GET', KEYS[2])
if receipt then return cjson.decode(receipt) end
local maxlen, maxage = tonumber(ARGV[1]), tonumber(ARGV[2])
local aliasttl = maxage > 0 and maxage or 86400000
local ids, i, k = {}, 4, 3
while i <= #ARGV do
  local n = tonumber(ARGV[i]); i = i + 1
  local args = {'XADD', KEYS[1]}
  if maxlen > 0 then args[#args+1] = 'MAXLEN'; args[#args+1] = '~'; args[#args+1] = maxlen end
  args[#args+1] = '*'
  for _ = 1, 2 * n do args[#args+1] = ARGV[i]; i = i + 1 end
  local id = redis.call(unpack(args))
  ids[#ids+1] = id
  if ARGV[i] == '1' then
    redis.call('SET', KEYS[k], id, 'PX', aliasttl, 'NX')
    k = k + 1
  end
  i = i + 1
end
if maxage > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XTRIM', KEYS[1], 'MINID', '~', tostring(now - maxage))
  if #ids > 0 then
    local last = tonumber(string.match(ids[#ids], '^(%d+)'))
    redis.call('PEXPIREAT', KEYS[1], tostring(math.max(now, last) + maxage))
  end
end
redis.call('SET', KEYS[2], cjson.encode(ids), 'PX', ARGV[3])
return ids
"#;

/// Reads what decides whether entries after a position are gone (see [`ReadReply::lost_after`])
/// and, when `ARGV[1]` is not empty, up to `ARGV[2]` entries after `ARGV[1]`, atomically, so that "were
/// events lost?" and "what comes next" describe the same moment. `ARGV[3]`: the max age in ms (0 or
/// absent: none). Returns {tail, max_deleted, first_entry, trimmed (0/1), held (1 if the stream
/// holds an entry with id `ARGV[1]`), expired_before, entries}. Needs Redis 7.0.
///
/// A stream expires the max age after its last id (see [`PUBLISH`]), so when it is missing, or
/// was born again after expiring, any earlier life of it held only ids older than its birth (now,
/// for a missing stream) minus the max age: `expired_before`. A position at or after that
/// missed nothing that expired. A missing stream's tail is the millisecond before now and its
/// first entry now: `XADD *` can only give a later id, and an SSE stream that starts at that tail
/// keeps a position that says "nothing was missed until now" (a tail of `0-0` would read as
/// "lost" once history expired).
pub(crate) const READ: &str = r#"
local maxage = tonumber(ARGV[3] or '0') or 0
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function expired_before(born)
  if maxage > 0 and born > maxage then return tostring(born - maxage) .. '-0' end
  return '0-0'
end
local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[1])
if not ok then
  local now = now_ms()
  return {tostring(now - 1) .. '-18446744073709551615', '0-0', tostring(now) .. '-0', 0, 0, expired_before(now), {}}
end
local f = {}
for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
local trimmed = 0
if tonumber(f['entries-added']) > tonumber(f['length']) then trimmed = 1 end
local first = f['recorded-first-entry-id']
local born
if first == '0-0' then born = now_ms() else born = tonumber(string.match(first, '^(%d+)')) end
local head = {f['last-generated-id'], f['max-deleted-entry-id'], first, trimmed, 0, expired_before(born)}
if ARGV[1] == '' then
  head[7] = {}
else
  if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) > 0 then head[5] = 1 end
  head[7] = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
end
return head
"#;

/// Where a node should continue reading a stream after it reconnected, given what it delivered.
/// `KEYS[1]`: the stream. `ARGV[1]`: the node's position (the newest id it read); `ARGV[2..]`: ids it
/// delivered recently, oldest first. Returns the position if the server holds it; else the newest
/// of the recent ids the server holds; else, when the server holds nothing at or before the
/// position, the position (history was trimmed past it, or starts after it); else the newest
/// entry at or before the oldest recent id. Anything other than `ARGV[1]` means the server's
/// history diverged from what the node delivered (a failover lost the newest writes): the node
/// rewinds there and delivers what it has not delivered yet.
pub(crate) const RESUME_POINT: &str = r#"
local function held(id) return #redis.call('XRANGE', KEYS[1], id, id) > 0 end
if held(ARGV[1]) then return ARGV[1] end
for i = #ARGV, 2, -1 do
  if held(ARGV[i]) then return ARGV[i] end
end
if #redis.call('XREVRANGE', KEYS[1], ARGV[1], '-', 'COUNT', 1) == 0 then return ARGV[1] end
local oldest = ARGV[2] or ARGV[1]
local before = redis.call('XREVRANGE', KEYS[1], oldest, '-', 'COUNT', 1)
if #before > 0 then return before[1][1] end
return oldest
"#;

/// Why a reply could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("unexpected reply from Redis: {0}")]
pub(crate) struct ReplyError(pub &'static str);

pub(crate) fn string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_string()),
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

pub(crate) fn stream_id(v: &Value) -> Result<StreamId, ReplyError> {
    string(v).and_then(|s| StreamId::parse(&s).ok()).ok_or(ReplyError("a stream id"))
}

/// The parsed reply of [`READ`].
#[derive(Debug)]
pub(crate) struct ReadReply {
    pub tail: StreamId,
    /// The highest id removed by `XDEL`.
    max_deleted: StreamId,
    /// The oldest id still held.
    first: StreamId,
    /// Whether trimming (or `XDEL`) ever removed entries.
    removed_any: bool,
    /// Whether the stream holds an entry with the asked position's id.
    held: bool,
    /// Ids below this may have been in an earlier life of the stream that expired.
    expired_before: StreamId,
    pub entries: Vec<Value>,
}

impl ReadReply {
    /// Whether entries after `position` are gone. Trimming removes the oldest entries (Redis 7.0
    /// records that in `entries-added` and `recorded-first-entry-id`, not in
    /// `max-deleted-entry-id`), `XDEL` any entry (recorded in `max-deleted-entry-id`). A position
    /// that was itself the newest trimmed entry is reported too: the signal errs on the side of
    /// telling, never on the side of silent loss.
    ///
    /// A position inside the stream's range that is not one of its entries was never in this
    /// history: a client saw events that a failover discarded, and entries the new master wrote
    /// meanwhile may have lower ids than its position. It is reported as lost too.
    ///
    /// A position older than the max age before the stream's birth (now, if it is missing) may
    /// have had events after it in a life of the stream that expired, so it is reported lost, even
    /// when the client had seen them all: once the key is gone nothing says what it held.
    pub(crate) fn lost_after(&self, position: StreamId) -> bool {
        let foreign = !self.held && position > StreamId::ZERO && self.first <= position && position <= self.tail;
        position < self.max_deleted || (self.removed_any && position < self.first) || foreign || position < self.expired_before
    }
}

pub(crate) fn read_reply(v: Value) -> Result<ReadReply, ReplyError> {
    let Value::Array(mut parts) = v else { return Err(ReplyError("an array")) };
    if parts.len() != 7 {
        return Err(ReplyError("seven parts"));
    }
    let entries = match parts.pop() {
        Some(Value::Array(e)) => e,
        Some(Value::Null) | None => Vec::new(),
        Some(_) => return Err(ReplyError("an entry list")),
    };
    Ok(ReadReply {
        tail: stream_id(&parts[0])?,
        max_deleted: stream_id(&parts[1])?,
        first: stream_id(&parts[2])?,
        removed_any: matches!(&parts[3], Value::Integer(1)),
        held: matches!(&parts[4], Value::Integer(1)),
        expired_before: stream_id(&parts[5])?,
        entries,
    })
}

/// What one stream entry means. Entries a client could be harmed by (an event name with a line
/// break, no `data` field) are refused here: the gateway cannot answer an `XADD` with an error,
/// so it logs and skips them rather than deliver something else than was meant.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EntryError {
    #[error("entry is not [id, fields]")]
    Shape,
    #[error("entry {0} has no data field")]
    NoData(StreamId),
    #[error("entry {0} has an invalid event name: {1}")]
    EventName(StreamId, shared::ValidationError),
}

/// The field a gateway's own `POST /publish` adds to its entries (`via gateway`), so that nodes
/// can tell them from raw `XADD`s in their metrics.
pub(crate) const VIA_FIELD: &str = "via";
pub(crate) const VIA_GATEWAY: &str = "gateway";

/// A stream entry, understood.
#[derive(Debug)]
pub(crate) struct Entry {
    pub event: Event,
    /// Whether a gateway's `POST /publish` wrote it (rather than another service's `XADD`).
    pub from_gateway: bool,
    /// The publishing span's W3C context, when the entry carries a `traceparent`.
    pub trace: Option<TraceContext>,
}

/// Turns `[id, [field, value, …]]` into an event. Fields: `data` (required), `event`, `retry`,
/// `via`, `traceparent` and `tracestate` (W3C trace context); others are ignored. A malformed
/// trace context is not an error: the delivery then starts a trace of its own.
pub(crate) fn entry(topic: &Topic, v: &Value) -> Result<Entry, EntryError> {
    let Value::Array(pair) = v else { return Err(EntryError::Shape) };
    let [id, Value::Array(fields)] = pair.as_slice() else { return Err(EntryError::Shape) };
    let id = stream_id(id).map_err(|_| EntryError::Shape)?;
    let (mut data, mut name, mut retry, mut from_gateway) = (None, None, None, false);
    let (mut traceparent, mut tracestate) = (None, None);
    for kv in fields.chunks(2) {
        let [k, v] = kv else { continue };
        match string(k).as_deref() {
            Some("data") => data = string(v),
            Some("event") => name = string(v),
            Some("retry") => retry = string(v).and_then(|s| s.parse().ok()),
            Some(VIA_FIELD) => from_gateway = string(v).as_deref() == Some(VIA_GATEWAY),
            Some(TraceContext::TRACEPARENT) => traceparent = string(v),
            Some(TraceContext::TRACESTATE) => tracestate = string(v),
            _ => {}
        }
    }
    let data = data.ok_or(EntryError::NoData(id))?;
    let name = name.map(|n| EventName::parse(&n)).transpose().map_err(|e| EntryError::EventName(id, e))?;
    let trace = traceparent.map(|traceparent| TraceContext { traceparent, tracestate });
    Ok(Entry { event: Event { topic: topic.clone(), id: Some(id), name, data, retry }, from_gateway, trace })
}

/// The `(stream key, entries)` pairs of an `XREAD` reply, RESP2 (arrays) or RESP3 (a map).
pub(crate) fn xread_reply(v: Value) -> Result<Vec<(String, Vec<Value>)>, ReplyError> {
    let pairs: Vec<(Value, Value)> = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Map(map) => map.inner().into_iter().map(|(k, v)| (Value::from(k), v)).collect(),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Array(mut kv) if kv.len() == 2 => {
                    let entries = kv.pop().unwrap_or(Value::Null);
                    let key = kv.pop().unwrap_or(Value::Null);
                    Ok((key, entries))
                }
                _ => Err(ReplyError("[key, entries] pairs")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ReplyError("an XREAD reply")),
    };
    pairs
        .into_iter()
        .map(|(k, entries)| {
            let key = string(&k).ok_or(ReplyError("a stream key"))?;
            match entries {
                Value::Array(e) => Ok((key, e)),
                _ => Err(ReplyError("an entry list")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(fields: &[&str]) -> Value {
        Value::Array(vec![Value::from("1700000000000-0"), Value::Array(fields.iter().map(|f| Value::from(*f)).collect())])
    }

    fn reply(tail: &str, first: &str, trimmed: bool, expired_before: &str) -> ReadReply {
        let id = |s: &str| StreamId::parse(s).expect("id");
        ReadReply {
            tail: id(tail),
            max_deleted: StreamId::ZERO,
            first: id(first),
            removed_any: trimmed,
            held: false,
            expired_before: id(expired_before),
            entries: Vec::new(),
        }
    }

    #[test]
    fn a_missing_stream_lost_nothing_after_a_position_younger_than_the_max_age() {
        // Now is 10000 ms, the max age 2000 ms: what READ answers for a missing stream.
        let missing = reply("9999-18446744073709551615", "10000-0", false, "8000-0");
        assert!(!missing.lost_after(StreamId::new(8000, 0)), "the stream would have been younger than its expiry");
        assert!(!missing.lost_after(StreamId::new(9999, 7)), "a position inside its range is not taken for a foreign one");
        assert!(missing.lost_after(StreamId::new(7999, 3)), "events after it may have expired");
        assert!(missing.lost_after(StreamId::ZERO));
    }

    #[test]
    fn a_stream_born_again_reports_positions_from_before_its_last_life() {
        let reborn = reply("50000-0", "50000-0", false, "48000-0");
        assert!(reborn.lost_after(StreamId::new(47000, 0)), "an earlier life may have held events after it");
        assert!(!reborn.lost_after(StreamId::new(48500, 0)), "an earlier life expired before 48000");
    }

    #[test]
    fn a_raw_entry_has_no_trace_context() {
        let topic = Topic::parse("t").expect("topic");
        let e = entry(&topic, &raw(&["data", "hello", "event", "greeting"])).expect("an event");
        assert_eq!(e.event.data, "hello");
        assert!(!e.from_gateway);
        assert_eq!(e.trace, None);
    }

    #[test]
    fn trace_fields_are_read_with_the_event() {
        let topic = Topic::parse("t").expect("topic");
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let e = entry(&topic, &raw(&["data", "x", "via", "gateway", "traceparent", traceparent, "tracestate", "k=v"])).expect("an event");
        assert!(e.from_gateway);
        assert_eq!(e.trace, Some(TraceContext { traceparent: traceparent.into(), tracestate: Some("k=v".into()) }));
        let e = entry(&topic, &raw(&["traceparent", "garbage", "data", "x"])).expect("a malformed context is no error");
        assert_eq!(e.trace.map(|t| t.traceparent).as_deref(), Some("garbage"));
    }
}
