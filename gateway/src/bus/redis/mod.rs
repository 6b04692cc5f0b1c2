//! The Redis bus: any number of stateless gateway nodes sharing one Redis behave as one.
//!
//! Key layout (see `shared::keys`): topic `T` is the stream `{prefix}:stream:{T}` (history and
//! ids) and the channel `{prefix}:live:{T}` (live-only events). Publishing paths:
//! - `POST /publish` on any node: one atomic script per topic appends (`XADD`, trimmed by
//!   `MAXLEN ~` and `MINID ~`, the stream set to expire the max age after its last event); nodes
//!   deliver from the stream, so a delivered event is always in history;
//! - a plain `XADD {prefix}:stream:{T} * data <payload> [event <name>]` by any service: the same;
//!   with a `traceparent` field (and `tracestate`), as a gateway's own publishes carry when
//!   traces are on, the nodes' `deliver` spans join that trace;
//! - `PUBLISH {prefix}:live:{T} <payload>`: live only, to clients connected at that moment, with
//!   no id and no resumption.
//!
//! Each node learns of new stream entries by keyspace notifications (`notify-keyspace-events`
//! must include `K` and `t`; the gateway sets it at start if it may) and reads them with `XREAD`
//! from the last id it delivered: see `upstream/`. Which links it listens on, for each Redis
//! shape (standalone, Sentinel, Cluster), is `subscriber.rs` (`shards.rs` for a Cluster); how every
//! link is built and kept alive, `link.rs`.

mod bus;
mod channels;
pub(crate) mod control;
mod link;
mod pump;
mod push;
pub(crate) mod scripts;
mod sentinel;
mod shards;
mod subscriber;
mod tails;
mod tickets;
pub(crate) mod tls;
mod upstream;

pub(crate) use bus::{RedisBus, RedisSettings};
