//! Logs, traces and metrics for the process.

use std::sync::{Arc, OnceLock};

use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::config::{LogFormat, TelemetrySection};

/// Installs the Prometheus recorder once per process and returns its
/// handle (several embedded systems in one test process share it).
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; metrics
            // then go there and this handle renders an empty page.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Human-readable logs on stderr, filtered by `RUST_LOG` (default `info`):
/// the commands that run no server.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt().with_env_filter(env_filter()).with_writer(std::io::stderr).try_init();
}

fn env_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// A server's logs and traces, set up once per process: logs on stderr
/// (text or JSON, filtered by `RUST_LOG`), and with
/// `telemetry.otlp_endpoint` every span of PolyScale's own code at `info`
/// exported over OTLP/gRPC, whatever `RUST_LOG` says. Call
/// [`Telemetry::shutdown`] before exiting: it flushes the spans not yet
/// sent.
pub fn init(config: &TelemetrySection, role: &str) -> anyhow::Result<Telemetry> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let logs = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(env_filter());

    let (traces, provider) = match &config.otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry::trace::TracerProvider;
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .with_context(|| format!("the OTLP exporter for {endpoint}"))?;
            let exporter = OnTokio { inner: Arc::new(exporter), runtime: tokio::runtime::Handle::current() };
            let name = config.service_name.clone().unwrap_or_else(|| role.to_string());
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(name).build())
                .build();
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("polyscale"))
                .with_filter(tracing_subscriber::filter::Targets::new().with_target("polyscale", tracing::Level::INFO));
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    tracing_subscriber::registry().with(logs).with(traces).try_init().context("a logger was already installed")?;
    Ok(Telemetry { provider })
}

/// What [`init`] set up.
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans not yet exported (within a few seconds) and stops.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // Blocks until the exporter thread is done: off the runtime's
            // workers, which that thread's exports run on.
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = flushed {
                tracing::warn!(error = %e, "flushing spans at shutdown");
            }
        }
    }
}

/// The OTLP exporter, run on the process's Tokio runtime. The batch span
/// processor exports from a thread of its own, where tonic finds no
/// reactor (opentelemetry-rust#2673): each export is spawned onto the
/// runtime instead.
#[derive(Debug)]
struct OnTokio {
    inner: Arc<opentelemetry_otlp::SpanExporter>,
    runtime: tokio::runtime::Handle,
}

impl opentelemetry_sdk::trace::SpanExporter for OnTokio {
    async fn export(&self, batch: Vec<opentelemetry_sdk::trace::SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        let inner = self.inner.clone();
        match self.runtime.spawn(async move { inner.export(batch).await }).await {
            Ok(result) => result,
            Err(e) => Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(e.to_string())),
        }
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        // Called once, before any export holds a clone.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}
