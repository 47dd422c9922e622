//! Trace context across gRPC: W3C `traceparent` (and `tracestate`) in the
//! metadata of every call between PolyScale processes, so that the spans of
//! one request, from the gateway's GraphQL operation through each service,
//! component call and capability call, share one trace.
//!
//! Clients call [`inject`] on each outgoing request: it carries the
//! current `tracing` span's OpenTelemetry context. Servers name
//! [`server_span`] as their `trace_fn`: each call gets a span whose parent
//! is the caller's. Without an OpenTelemetry layer in the subscriber
//! (no exporter configured) spans carry no context and nothing is sent.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Puts the current span's trace context into `metadata`.
pub fn inject(metadata: &mut MetadataMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut MetadataInjector(metadata));
}

/// The span of one gRPC call served, its parent the caller's span (from
/// the call's `traceparent`), if any.
pub fn server_span(request: &tonic::codegen::http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.method = %path,
    );
    continue_trace(&span, request.headers());
    span
}

/// Makes `span` a child of the remote span named by `headers`
/// (`traceparent`), if any: a gRPC caller, or an HTTP client that traces.
pub fn continue_trace(span: &tracing::Span, headers: &tonic::codegen::http::HeaderMap) {
    if headers.contains_key("traceparent") {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        // Fails only without an OpenTelemetry layer: then there is no trace.
        let _ = span.set_parent(parent);
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (MetadataKey::from_bytes(key.as_bytes()), MetadataValue::try_from(value)) {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a tonic::codegen::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
