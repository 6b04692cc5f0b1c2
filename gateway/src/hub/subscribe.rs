//! `GET /.well-known/mercure`: a subscription, as an SSE stream of the updates its selectors
//! choose and its token (or lack of one) allows.
//!
//! The stream is a native one following the internal `$mercure` topic with a Mercure
//! [`MercureRender`]: registration before the response head (an update published right after the
//! stream opens arrives), heartbeats, shutdown, slow-client cut, stream limits and the end at
//! token expiry are the native ones.
//!
//! Resuming: the `Last-Event-ID` header, else the version's query parameter (`lastEventID` for
//! 0.x, `last_event_id` for 1.0), names an update id. The hub resolves it to its place in history
//! (`Bus::find_alias`, the same on every node) and replays what follows. `earliest`, or an id no
//! longer (or never) in history, replays all the history held; the response header (0.x
//! `Last-Event-ID`, 1.0 `Mercure-Last-Event-ID`) then says `earliest`, which tells the client that
//! updates may have been lost (also when the id is known but history was trimmed after it); when
//! nothing after the id was lost, the id is echoed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use shared::{Cursor, StreamId, Topic};

use super::announce::{self, Matcher};
use super::error::HubError;
use super::render::MercureRender;
use super::settings::Hub;
use super::token::{self, Purpose};
use crate::config::Protocol;
use crate::error::ApiError;
use crate::event_stream;
use crate::listener::ClientInfo;
use crate::mercure::claims::BearerError;
use crate::mercure::selector::{self, MatcherType};
use crate::mercure::update::EARLIEST;
use crate::state::AppState;
use crate::stream::{EventStream, StreamSettings};

/// How long a stream under a token without `exp` (0.x allows it) lasts before the client is
/// asked to reconnect: long, but not for ever, so that a token's grant is read again now and then.
const NO_EXPIRY: Duration = Duration::from_secs(24 * 3600);
/// Longest `Last-Event-ID` read (update ids are at most 256 bytes).
const MAX_LAST_EVENT_ID: usize = 1024;

pub(super) async fn subscribe(
    State(state): State<AppState>,
    Extension(hub): Extension<Arc<Hub>>,
    client: Option<Extension<ConnectInfo<ClientInfo>>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, HubError> {
    if state.shutdown.is_draining() {
        return Err(ApiError::ShuttingDown.into());
    }
    let protocol = hub.config.protocol;
    let query: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect();
    let params = query.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let selectors = match protocol {
        Protocol::Legacy => selector::legacy_subscription(params)?,
        Protocol::V1 => selector::v1_subscription(params, &hub.config.hub_url)?,
    };
    let grant = match token::find(protocol, &headers, &query, Purpose::Subscribe)? {
        Some(token) => Some(token::grant(&state, &hub, token).await?),
        None if hub.config.anonymous => None,
        None => return Err(HubError::MissingToken),
    };
    let (cursor, echoed) = match last_event_id(protocol, &headers, &query)? {
        None => (None, None),
        Some(id) => {
            let (from, echoed) = resume_point(&state, id).await?;
            (Some(Cursor::Position(from)), Some(echoed))
        }
    };
    let subject = grant.as_ref().and_then(|g| g.subject.clone());
    let expires_in = match grant.as_ref().and_then(|g| g.expires_at()) {
        Some(at) => at.duration_since(SystemTime::now()).unwrap_or_default() + state.leeway(),
        None => NO_EXPIRY,
    };
    let permit = state.stream_permit(subject.as_deref())?;
    // Registered before the stream starts, under the lock revocations take (see `control/`).
    let exp = match grant.as_ref().and_then(|g| g.exp) {
        Some(exp) => exp.ceil() as u64,
        None => crate::epoch::now_secs() + NO_EXPIRY.as_secs(),
    };
    let registration = state
        .control
        .register(&token::control_claims(grant.as_ref(), exp), &[Topic::mercure()])
        .map_err(|_| HubError::Bearer(BearerError::InvalidToken))?;
    // What subscription events name: each matcher as the client wrote it, with its type.
    let matchers: Vec<Matcher> = if hub.config.subscriptions {
        query
            .iter()
            .filter_map(|(k, v)| Some(Matcher::new(MatcherType::from_param(k).ok()??, v, grant.as_ref(), &hub.config.hub_url)))
            .collect()
    } else {
        Vec::new()
    };
    let render = MercureRender { protocol, selectors, grant, hub_url: hub.config.hub_url.clone() };
    let lean = client.as_ref().is_some_and(|Extension(ConnectInfo(c))| c.lean);
    let settings = StreamSettings {
        heartbeat: state.config.heartbeat,
        retry_ms: state.jittered_retry_ms(),
        shutdown_retry_ms: state.jittered_retry_ms(),
        expires_in,
        shutdown: state.shutdown.token(),
        slow: client.map(|Extension(ConnectInfo(c))| c.kill).unwrap_or_default(),
        control: Some(registration),
        refresh: None,
        render: Some(Box::new(render)),
    };
    let conn = EventStream::start(vec![Topic::mercure()], cursor, &state.fanout, state.bus.clone(), settings, state.counters.clone())
        .await
        .map_err(ApiError::from)?;
    tracing::debug!(subject = subject.as_deref().unwrap_or(""), "Mercure subscription opened");
    let announced = if matchers.is_empty() { None } else { Some(announce::announce(&state, &matchers).await) };
    // The permit and the announcement go with the stream: dropped with it.
    let mut response = event_stream::response(conn, (permit, announced), lean);
    if let Some(v) = echoed.and_then(|e| HeaderValue::from_str(&e).ok()) {
        let name = match protocol {
            Protocol::Legacy => HeaderName::from_static("last-event-id"),
            Protocol::V1 => HeaderName::from_static("mercure-last-event-id"),
        };
        response.headers_mut().insert(name, v);
    }
    Ok(response)
}

/// Where a stream resuming after update `id` starts, and what the response header answers: the
/// id itself when nothing after it was lost, else `earliest` and the oldest update held.
async fn resume_point(state: &AppState, id: &str) -> Result<(StreamId, String), ApiError> {
    let found = if id == EARLIEST { None } else { state.bus.find_alias(&Topic::mercure(), id).await? };
    // An update still named but already trimmed (history's length bound) lost what followed it
    // as surely as one no longer named.
    let complete = match found {
        Some(at) => !state.bus.read(&Topic::mercure(), Some(at), 1).await?.lost,
        None => false,
    };
    Ok(match found {
        Some(at) if complete => (at, id.to_owned()),
        _ => (StreamId::new(0, 0), EARLIEST.to_owned()),
    })
}

/// The id to resume after: the header wins over the query parameter; empty is none. Ids are
/// IRIs, so the header may carry UTF-8 (what `EventSource` sends back for a non-ASCII id).
fn last_event_id<'a>(protocol: Protocol, headers: &'a HeaderMap, query: &'a [(String, String)]) -> Result<Option<&'a str>, HubError> {
    let param = match protocol {
        Protocol::Legacy => "lastEventID",
        Protocol::V1 => "last_event_id",
    };
    let raw = match headers.get("last-event-id") {
        Some(v) => Some(std::str::from_utf8(v.as_bytes()).map_err(|_| HubError::LastEventId("Last-Event-ID is not UTF-8"))?),
        None => query.iter().find(|(k, _)| k == param).map(|(_, v)| v.as_str()),
    };
    match raw {
        Some(id) if id.len() > MAX_LAST_EVENT_ID => Err(HubError::LastEventId("the last event id is too long")),
        Some("") | None => Ok(None),
        Some(id) => Ok(Some(id)),
    }
}
