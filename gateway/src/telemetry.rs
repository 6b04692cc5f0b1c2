//! Logs and traces. Logs: structured `tracing` output, text or JSON, filtered by `RUST_LOG`
//! (default `info`). Traces: with an OTLP endpoint configured, spans also go to OpenTelemetry,
//! batched and exported over gRPC; without one no OpenTelemetry layer exists and no trace-only
//! span is created. Functions, so that tests and tools can set up the same thing with their own
//! exporter.
//!
//! Spans (see docs/operations.md, "Traces"): `request` per HTTP request (the route template, never the
//! query string, which may hold a token); `publish` around a publish's append to the bus; and
//! `deliver`, once per event per node, when the node hands the event to its streams. A
//! publish's [`TraceContext`] travels with its events (in Redis, as fields of the stream entry),
//! so every node's `deliver` span is a child of the `publish` span that caused it.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::OtelConfig;

/// Whether an OpenTelemetry layer is installed: the trace-only spans and context propagation are
/// skipped entirely without one.
static TRACES: AtomicBool = AtomicBool::new(false);

/// How long the final flush may take at exit.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether spans are exported (an OpenTelemetry layer is installed).
pub fn traces_on() -> bool {
    TRACES.load(Ordering::Relaxed)
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP trace exporter")]
pub struct TelemetryError(#[source] opentelemetry_otlp::ExporterBuildError);

/// What [`init`] installed; [`Telemetry::shutdown`] exports what is still buffered.
#[derive(Debug)]
#[must_use = "call shutdown at exit, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered and stops the exporter, within a bounded time. The last
    /// step of shutdown, after the app has stopped (so that its own shutdown spans are in it).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else { return };
        // The batch processor's shutdown blocks until its export thread is done. Not tracked: it is
        // awaited right here, the last step of shutdown, after the tracker has drained.
        match tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "spans not flushed at exit"),
            Err(e) => tracing::warn!(error = %e, "spans not flushed at exit"),
        }
    }
}

/// The OTLP/gRPC exporter for `config`, batched. Must run inside the Tokio runtime (the gRPC
/// channel lives on it). The OpenTelemetry SDK reads the other standard variables itself
/// (`OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`, `_COMPRESSION`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`,
/// `OTEL_RESOURCE_ATTRIBUTES`, …).
pub fn otlp(config: &OtelConfig) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter =
        opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(config.endpoint.clone()).build().map_err(TelemetryError)?;
    Ok(tracer_provider(exporter, &config.service_name))
}

/// A tracer provider that batches spans to `exporter`, as `service_name`.
pub fn tracer_provider(exporter: impl SpanExporter + 'static, service_name: &str) -> SdkTracerProvider {
    let resource = Resource::builder().with_service_name(service_name.to_owned()).build();
    SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build()
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logs {
    Text,
    Json,
    /// None (tests that only look at spans).
    Off,
}

/// Installs the process-wide subscriber: logs to stdout, and spans to `traces` when given. A
/// second call (tests) keeps the first subscriber.
pub fn init(logs: Logs, traces: Option<SdkTracerProvider>) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_target(false).with_ansi(std::io::stdout().is_terminal());
    let logs = match logs {
        Logs::Text => Some(fmt.with_filter(filter).boxed()),
        Logs::Json => Some(fmt.json().with_filter(filter).boxed()),
        Logs::Off => None,
    };
    // Spans are the gateway's own, at INFO, whatever `RUST_LOG` asks of the logs; the events
    // logged inside them become span events.
    let spans = traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("sse-gateway"))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            // Event streams are polled, and so their request spans entered, at every event:
            // neither timing nor activating a context on every entry is worth it.
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_filter(Targets::new().with_target("gateway", LevelFilter::INFO))
    });
    let installed = Registry::default().with(logs).with(spans).try_init().is_ok();
    if installed && traces.is_some() {
        TRACES.store(true, Ordering::Relaxed);
    }
    Telemetry { provider: traces }
}

/// The W3C trace context (`traceparent`, and `tracestate` when it has entries) of the span that
/// published an event. It travels with the event: in `bus::NewEvent` and
/// `bus::Delivery`, and with Redis as fields of the stream entry, so that the `deliver`
/// span of every node is a child of the `publish` span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

impl TraceContext {
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";

    /// The context of `span`; `None` when traces are off or the span is not recorded.
    pub fn of(span: &Span) -> Option<Self> {
        if !traces_on() {
            return None;
        }
        let mut fields = Fields::default();
        TraceContextPropagator::new().inject_context(&span.context(), &mut fields);
        Some(Self { traceparent: fields.traceparent?, tracestate: fields.tracestate.filter(|s| !s.is_empty()) })
    }

    /// Makes this context the parent of `span`, which must not have been entered yet. A
    /// `traceparent` that does not parse leaves `span` a root: a raw `XADD` may carry anything.
    pub fn parent(&self, span: &Span) {
        let cx = self.context();
        if cx.span().span_context().is_valid() {
            // An error only means that the span is not recorded (traces off, or filtered out).
            let _ = span.set_parent(cx);
        }
    }

    fn context(&self) -> opentelemetry::Context {
        TraceContextPropagator::new().extract(self)
    }
}

/// The `traceparent` of an incoming HTTP request, as the parent of its `request` span: a
/// publisher's own trace continues through the gateway.
pub fn parent_from_headers(span: &Span, headers: &http::HeaderMap) {
    if !traces_on() {
        return;
    }
    let Some(traceparent) = headers.get(TraceContext::TRACEPARENT).and_then(|v| v.to_str().ok()) else { return };
    let tracestate = headers.get(TraceContext::TRACESTATE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    TraceContext { traceparent: traceparent.to_owned(), tracestate }.parent(span);
}

/// What the propagator writes.
#[derive(Default)]
struct Fields {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Injector for Fields {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TraceContext::TRACEPARENT => self.traceparent = Some(value),
            TraceContext::TRACESTATE => self.tracestate = Some(value),
            _ => {}
        }
    }
}

impl Extractor for TraceContext {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            Self::TRACEPARENT => Some(&self.traceparent),
            Self::TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![Self::TRACEPARENT, Self::TRACESTATE]
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt as _;

    use super::*;

    #[test]
    fn a_traceparent_reads_as_a_remote_parent() {
        let trace = TraceContext {
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            tracestate: Some("congo=t61rcWkgMzE".into()),
        };
        let cx = trace.context();
        let parent = cx.span().span_context().clone();
        assert!(parent.is_valid() && parent.is_remote() && parent.is_sampled());
        assert_eq!(parent.trace_id().to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(parent.span_id().to_string(), "b7ad6b7169203331");
        assert_eq!(parent.trace_state().header(), "congo=t61rcWkgMzE");
    }

    #[test]
    fn a_malformed_traceparent_gives_no_parent() {
        for bad in
            ["", "hello", "00-00000000000000000000000000000000-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"]
        {
            let trace = TraceContext { traceparent: bad.into(), tracestate: None };
            assert!(!trace.context().span().span_context().is_valid(), "{bad:?}");
        }
    }

    #[test]
    fn traces_are_off_until_an_exporter_is_installed() {
        // The unit tests never install one: no context is taken, whatever the span.
        assert!(!traces_on());
        assert_eq!(TraceContext::of(&tracing::info_span!("publish")), None);
    }
}
