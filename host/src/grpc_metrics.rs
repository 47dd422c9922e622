//! `polyscale_grpc_server_seconds{method, code}`: the latency of every
//! gRPC call a process serves, by method and status code, as a tower layer
//! on the data plane. Calls to methods the server does not have
//! (`UNIMPLEMENTED`) are not recorded: their paths are the client's choice
//! and would grow the label set without bound.

use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use tonic::codegen::http;

/// The layer; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().trim_start_matches('/').to_string();
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let result = answer.await;
            if let Ok(response) = &result {
                // A failed unary call answers with its status in the
                // headers (trailers-only); a successful one in trailers.
                let code = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0");
                if code != "12" {
                    metrics::histogram!("polyscale_grpc_server_seconds", "method" => method, "code" => code.to_string())
                        .record(started.elapsed().as_secs_f64());
                }
            }
            result
        })
    }
}
