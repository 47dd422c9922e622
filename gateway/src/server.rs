//! The HTTP/1.1 server under the gateway's router, hardened for a public
//! listener (hyper's connection builder under a tokio accept loop):
//!
//! - **connections**: at most `max_connections` are served at once; past
//!   that, new ones wait in the kernel's listen backlog until one closes
//!   (established connections go on unaffected);
//! - **header reads**: a request's headers must arrive within
//!   `header_read_timeout` of the connection (or its previous response)
//!   becoming ready to read them, else the connection is closed: a
//!   slowloris client, or an idle keep-alive connection, does not keep its
//!   slot;
//! - **requests**: reading the body and answering must fit in
//!   `request_timeout` (`upload_timeout` for a plugin upload: a multipart
//!   `POST` or a `PUT /plugins/…`), else 408.
//!
//! HTTP/2 is not served here (h2c by prior knowledge was never used by
//! browsers; a proxy in front terminates TLS and HTTP/2).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// A plugin upload: `PUT /plugins/…` or a multipart `POST`.
fn is_upload<B>(request: &Request<B>) -> bool {
    let multipart = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    (request.method() == axum::http::Method::PUT && request.uri().path().starts_with("/plugins/"))
        || (request.method() == axum::http::Method::POST && multipart)
}

/// Bounds on the HTTP connections of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time to receive a request's headers, counted from when the server
    /// starts waiting for them (a new connection, or the end of the
    /// previous response on a kept-alive one).
    pub header_read_timeout: Duration,
    /// Time to read a request's body and answer it.
    pub request_timeout: Duration,
    /// The same for a plugin upload (up to 32 MiB in, then validated and
    /// compiled by the host).
    pub upload_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            upload_timeout: crate::clients::UPLOAD_TIMEOUT,
            max_connections: 1024,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// requests in flight finish (for at most `request_timeout`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (normal, upload) = (limits.request_timeout, limits.upload_timeout);
    let router = router.layer(axum::middleware::from_fn(move |request: Request<axum::body::Body>, next: Next| {
        let limit = if is_upload(&request) { upload } else { normal };
        async move {
            match tokio::time::timeout(limit, next.run(request)).await {
                Ok(response) => response,
                Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
            }
        }
    }));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        // A slot first, then a connection: past the cap, clients wait in
        // the backlog rather than being accepted and starved.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let response = router.clone().oneshot(request);
            async move { Ok::<_, Infallible>(response.await.unwrap_or_else(|never| match never {})) }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.request_timeout) => {
            tracing::warn!("connections still open {:?} after shutdown; leaving them", limits.request_timeout);
        }
    }
    Ok(())
}

/// The peer address of the connection a request came on.
pub(crate) fn peer(request: &Request<axum::body::Body>) -> Option<SocketAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| *peer)
}
