//! HTTP in front of the schema: GraphQL over HTTP (GET and POST), GraphiQL
//! (unless switched off; `graphiql.rs`), health, request ids and body
//! limits.
//!
//! Status codes follow the GraphQL-over-HTTP spec: with the
//! `application/graphql-response+json` media type (when `Accept` names
//! it), a request that fails before execution (unparsable, invalid, over a
//! limit) is a 400; with `application/json` (the default: `*/*` or no
//! `Accept`) it is a 200 carrying the errors. A body
//! that is not a GraphQL request at all is a 400 either way.
//!
//! A POST must say `Content-Type: application/json`, or be a GraphQL
//! multipart request (`multipart/form-data`, [`multipart`]) carrying a
//! file from a signed-in merchant or admin. Anything else (the
//! `text/plain` and form bodies a cross-site page can send without a CORS
//! preflight, or none) is a 415 and never executes. A multipart request
//! without `Authorization: Bearer` is a 401 before its body is read: a
//! cross-site page cannot send that header without a preflight, so
//! multipart opens no cross-site path. `PUT /plugins/{name}`
//! ([`plugin_upload`]) takes a component as a raw body.
//!
//! Rate limits ([`crate::rate_limit`]) fail the fields over them with
//! `RATE_LIMITED`; a request left with no data by them (every operation
//! limited) is a 429 with `Retry-After`, whatever the media type.

mod multipart;
mod plugin_upload;

use std::net::IpAddr;
use std::sync::Arc;

use async_graphql::http::MultipartOptions;
use async_graphql::{BatchRequest, BatchResponse, ServerError};
use axum::Router;
use axum::body::Body;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post, put};
use polyscale_auth::{Claims, Role, Verifier};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::Clients;
use crate::errors::{Code, coded, finish_errors};
use crate::graphiql;
use crate::limits::GraphqlLimits;
use crate::rate_limit::{Class, RateLimiters, retry_after_secs};
use crate::schema::{PolyScaleSchema, RequestContext};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const REQUEST_ID: &str = "x-request-id";

pub struct HttpConfig {
    pub limits: GraphqlLimits,
    pub verifier: Option<Verifier>,
    pub trusted_proxy_hops: usize,
    /// For the webhook endpoint, which calls the order service directly.
    pub clients: Clients,
    /// Serve GraphiQL to browsers.
    pub graphiql: bool,
    /// The largest plugin component an upload may carry.
    pub max_plugin_upload_bytes: usize,
    /// Uploads are charged before their body is read.
    pub rate_limiters: Arc<RateLimiters>,
}

/// Uploads whose bodies are held at once (each up to the upload cap, and
/// copied on its way to the service): a bound on the memory they take,
/// whoever sends them.
const MAX_UPLOADS_IN_FLIGHT: usize = 4;

#[derive(Clone)]
struct AppState {
    schema: PolyScaleSchema,
    limits: GraphqlLimits,
    verifier: Option<Verifier>,
    trusted_proxy_hops: usize,
    clients: Clients,
    graphiql: bool,
    max_plugin_upload_bytes: usize,
    rate_limiters: Arc<RateLimiters>,
    uploads: Arc<Semaphore>,
}

impl AppState {
    fn multipart_limits(&self) -> multipart::Limits {
        multipart::Limits {
            max_operations_bytes: self.limits.max_body_bytes,
            max_file_bytes: self.max_plugin_upload_bytes,
        }
    }
}

pub fn router(schema: PolyScaleSchema, config: HttpConfig) -> Router {
    let serve_graphiql = config.graphiql;
    let router = Router::new()
        .route("/graphql", get(graphql).post(graphql))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(config.limits.max_body_bytes))
        // After the layer above: webhooks have their own, smaller limit,
        // uploads their own, larger one.
        .route("/webhooks/payments/{provider}", post(payment_webhook))
        .route("/plugins/{name}", put(plugin_upload::put_plugin))
        .with_state(AppState {
            schema,
            limits: config.limits,
            verifier: config.verifier,
            trusted_proxy_hops: config.trusted_proxy_hops,
            clients: config.clients,
            graphiql: serve_graphiql,
            max_plugin_upload_bytes: config.max_plugin_upload_bytes,
            rate_limiters: config.rate_limiters,
            uploads: Arc::new(Semaphore::new(MAX_UPLOADS_IN_FLIGHT)),
        });
    if serve_graphiql { router.merge(graphiql::routes()) } else { router }
}

/// Largest payment webhook body.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 64 * 1024;
/// The header carrying a payment provider's signature
/// (`t=<unix seconds>,v1=<hex HMAC-SHA256>`).
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

fn webhook_answer(status: StatusCode, body: serde_json::Value, request_id: &str) -> Response {
    json_response(status, "application/json", body.to_string(), request_id)
}

/// `POST /webhooks/payments/{provider}`: a provider's event. The gateway
/// holds no provider secret: it reads the raw body (at most 64 KiB) and
/// the signature header and forwards both, with its service token, to
/// `OrderService.ApplyPaymentWebhook`, whose host verifies the signature
/// before the order component sees anything. 200 when applied or applied
/// before (a replay), 401 for a bad or stale signature, 404 for a
/// provider without webhooks, 400 for a malformed event, 413 for a body
/// too large, 503 when the order service cannot answer (providers retry).
async fn payment_webhook(
    State(state): State<AppState>,
    axum::extract::Path(provider): axum::extract::Path<String>,
    request: Request,
) -> Response {
    let request_id = request_id(request.headers());
    let error = |status: StatusCode, message: &str| {
        webhook_answer(status, serde_json::json!({ "error": message }), &request_id)
    };
    let named = !provider.is_empty()
        && provider.len() <= 32
        && provider.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !named {
        return error(StatusCode::NOT_FOUND, "no such payment provider");
    }
    let Some(signature) = request.headers().get(WEBHOOK_SIGNATURE).and_then(|v| v.to_str().ok()).map(str::to_string)
    else {
        return error(StatusCode::UNAUTHORIZED, "the Webhook-Signature header is missing");
    };
    if signature.len() > 1024 {
        return error(StatusCode::UNAUTHORIZED, "the signature header is too long");
    }
    let client_address = client_address(&request, state.trusted_proxy_hops);
    let body = match axum::body::to_bytes(request.into_body(), MAX_WEBHOOK_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, &format!("the body exceeds {MAX_WEBHOOK_BODY_BYTES} bytes"));
        }
    };
    let context = RequestContext::new(request_id.clone(), client_address);
    let message = polyscale_proto::order::v1::ApplyPaymentWebhookRequest { provider, body: body.to_vec(), signature };
    let clients = &state.clients;
    match clients.order.clone().apply_payment_webhook(clients.request(message, &context)).await {
        Ok(r) => {
            let r = r.into_inner();
            webhook_answer(
                StatusCode::OK,
                serde_json::json!({ "received": true, "eventId": r.event_id, "applied": r.applied }),
                &request_id,
            )
        }
        Err(status) => {
            use tonic::Code as G;
            let code = match status.code() {
                G::Unauthenticated => StatusCode::UNAUTHORIZED,
                G::NotFound => StatusCode::NOT_FOUND,
                G::InvalidArgument => StatusCode::BAD_REQUEST,
                G::PermissionDenied => {
                    tracing::error!(
                        "the order service refused the gateway's webhook delivery: is the service key shared?"
                    );
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(code, status.message())
        }
    }
}

/// The client's address. With no trusted proxy it is the TCP peer. Behind
/// `hops` proxies that each append the address they were reached from to
/// `X-Forwarded-For`, it is the `hops`-th entry from the right: the
/// right-most one no trusted proxy wrote, so whatever the client put in
/// the header itself (to the left of it) is never believed. With fewer
/// entries than hops (a path with fewer proxies), the left-most; an entry
/// that is not an address falls back to the peer.
fn client_address(request: &Request, hops: usize) -> String {
    let peer = crate::server::peer(request).map(|p| p.ip());
    let forwarded = if hops > 0 { forwarded_for(request.headers(), hops) } else { None };
    match forwarded.or(peer) {
        Some(ip) => ip.to_canonical().to_string(),
        None => "unknown".into(),
    }
}

fn forwarded_for(headers: &HeaderMap, hops: usize) -> Option<IpAddr> {
    // Proxies may add a header line of their own rather than extend the
    // last one: the lines, in order, make one list.
    let mut entries = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let value = value.to_str().ok()?;
        entries.extend(value.split(',').map(str::trim).filter(|e| !e.is_empty()));
    }
    let entry = entries.get(entries.len().saturating_sub(hops))?;
    entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

/// Verifies a bearer token if one is sent. A token that is sent but not
/// valid is an error (401, RFC 6750), not an anonymous request.
fn authenticate(headers: &HeaderMap, verifier: Option<&Verifier>) -> Result<Option<(String, Claims)>, String> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let token = value
        .to_str()
        .ok()
        .and_then(polyscale_auth::bearer)
        .ok_or("the Authorization header must be `Bearer <token>`")?;
    let verifier = verifier.ok_or("this gateway accepts no tokens (no public key configured)")?;
    let claims = verifier.verify(token).map_err(|e| e.to_string())?;
    Ok(Some((token.to_string(), claims)))
}

/// Which media type the client wants back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Media {
    GraphqlResponse,
    Json,
}

/// `application/graphql-response+json` when the client names it;
/// otherwise (`application/json`, `*/*`, no `Accept` at all) the legacy
/// `application/json`, as the GraphQL-over-HTTP spec recommends for
/// clients that predate the new type: they read errors from a 200.
fn negotiate(headers: &HeaderMap) -> Media {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains(GRAPHQL_RESPONSE) { Media::GraphqlResponse } else { Media::Json }
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

async fn graphql(State(state): State<AppState>, request: Request) -> Response {
    let headers = request.headers().clone();
    let media = negotiate(&headers);
    let request_id = request_id(&headers);
    let is_get = request.method() == Method::GET;
    let body = if is_get {
        PostBody::Json
    } else {
        match post_body(&headers) {
            Ok(body) => body,
            Err((status, message)) => return request_error(status, Code::BadRequest, &message, &request_id),
        }
    };
    let mut context = RequestContext::new(request_id.clone(), client_address(&request, state.trusted_proxy_hops));
    match authenticate(&headers, state.verifier.as_ref()) {
        Ok(Some((token, claims))) => context = context.authenticated(token, claims),
        Ok(None) => {}
        Err(reason) => {
            let mut response = request_error(StatusCode::UNAUTHORIZED, Code::Unauthenticated, &reason, &request_id);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
            return response;
        }
    }
    // Held until the response is made: the file lives as long as the
    // request.
    let _upload_permit = match &body {
        PostBody::Multipart(_) => {
            let max_body = state.multipart_limits().max_body_bytes();
            match admit_upload(&state, &headers, context.caller.as_ref(), &context.client_address, max_body) {
                Ok(permit) => Some(permit),
                Err(refused) => {
                    let mut response = request_error(refused.status, refused.code, &refused.message, &request_id);
                    refused.headers(&mut response);
                    return response;
                }
            }
        }
        PostBody::Json => None,
    };

    if state.graphiql && is_get && request.uri().query().is_none_or(|q| !q.contains("query=")) {
        let accepts_html =
            headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
        if accepts_html {
            return graphiql::page();
        }
    }

    let batch = match read_request(request, &body, &state).await {
        Ok(batch) => batch,
        Err((status, code, message)) => return request_error(status, code, &message, &request_id),
    };
    if let BatchRequest::Batch(items) = &batch {
        if items.len() > state.limits.max_batch {
            let message = format!("the batch has {} operations; the limit is {}", items.len(), state.limits.max_batch);
            return request_error(StatusCode::BAD_REQUEST, Code::BadRequest, &message, &request_id);
        }
        if items.is_empty() {
            return request_error(StatusCode::BAD_REQUEST, Code::BadRequest, "the batch is empty", &request_id);
        }
    }

    let mut batch = batch;
    if batch.iter().any(|r| r.query.trim().is_empty()) {
        return request_error(StatusCode::BAD_REQUEST, Code::BadRequest, "the request has no `query`", &request_id);
    }
    // A file stands in the variables only where the multipart reader put
    // it (which checked the client's own parts for the marker).
    if matches!(body, PostBody::Json) && batch.iter().any(multipart::names_a_file) {
        let message = "the request names a file, but files come only in multipart requests";
        return request_error(StatusCode::BAD_REQUEST, Code::BadRequest, message, &request_id);
    }
    for request in batch.iter_mut() {
        // GET must not change anything (GraphQL over HTTP: 405 for a
        // mutation over GET).
        if is_get && is_mutation(request) {
            let mut response = request_error(
                StatusCode::METHOD_NOT_ALLOWED,
                Code::BadRequest,
                "mutations must be sent with POST",
                &request_id,
            );
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        request.data.insert(context.clone());
    }
    // The operation's span: the root of its trace (or a child of the
    // client's, given a `traceparent`); every service call it makes
    // carries it on.
    let span = graphql_span(&batch, &request_id);
    polyscale_proto::trace::continue_trace(&span, &headers);
    let mut response = state.schema.execute_batch(batch).instrument(span).await;
    match &mut response {
        BatchResponse::Single(r) => finish_errors(&mut r.errors, &request_id),
        BatchResponse::Batch(rs) => rs.iter_mut().for_each(|r| finish_errors(&mut r.errors, &request_id)),
    }
    graphql_response(response, media, &request_id)
}

/// `graphql PlaceOrder`, say: the operation's name (never the document,
/// whose literals may be secrets).
fn graphql_span(batch: &BatchRequest, request_id: &str) -> tracing::Span {
    let name = batch.iter().next().and_then(|r| r.operation_name.as_deref()).unwrap_or_default();
    tracing::info_span!(
        "graphql",
        otel.name = %format!("graphql {name}").trim_end(),
        otel.kind = "server",
        graphql.operation.name = name,
        operations = batch.iter().count(),
        request_id = %request_id,
    )
}

type RequestError = (StatusCode, Code, String);

/// What a POST body is.
#[derive(Debug, PartialEq, Eq)]
enum PostBody {
    Json,
    /// A GraphQL multipart request, with its boundary.
    Multipart(String),
}

/// A POST body must be JSON and say so, or be a GraphQL multipart
/// request. The other media types a cross-site form or `fetch` may send
/// without a CORS preflight (`text/plain`,
/// `application/x-www-form-urlencoded`) are refused (415), as is a body
/// with no type; multipart is admitted only with a bearer token
/// ([`admit_upload`]), which no cross-site page can send unasked.
fn post_body(headers: &HeaderMap) -> Result<PostBody, (StatusCode, String)> {
    let content_type = headers.get(header::CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()));
    let essence = content_type.as_ref().map(|ct| ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    let unsupported = |message: String| Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, message));
    match essence.as_deref() {
        Some("application/json") => Ok(PostBody::Json),
        Some("multipart/form-data") => match multer::parse_boundary(content_type.unwrap_or_default()) {
            Ok(boundary) => Ok(PostBody::Multipart(boundary)),
            Err(_) => Err((StatusCode::BAD_REQUEST, "a multipart/form-data body needs a `boundary`".into())),
        },
        Some(other) => unsupported(format!(
            "a POST body must be `Content-Type: application/json` (or a multipart upload), not `{other}`"
        )),
        None => unsupported("a POST body must be `Content-Type: application/json`; none was given".into()),
    }
}

/// Why an upload was refused before its body was read.
struct UploadRefusal {
    status: StatusCode,
    code: Code,
    message: String,
    retry_after: Option<u64>,
}

impl UploadRefusal {
    fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    fn headers(&self, response: &mut Response) {
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
    }
}

/// Admits an upload (a multipart request, a `PUT /plugins/{name}`) before
/// a byte of its body is read: a signed-in merchant or admin (the token's
/// roles: a customer cannot make the gateway hold 30 MiB), a declared
/// length within `max_body` (a longer body without one is cut off while
/// it is read), the caller's address within the plugin rate limit, and a
/// free upload slot.
fn admit_upload(
    state: &AppState,
    headers: &HeaderMap,
    caller: Option<&Claims>,
    address: &str,
    max_body: usize,
) -> Result<OwnedSemaphorePermit, UploadRefusal> {
    let Some(caller) = caller else {
        return Err(UploadRefusal::new(
            StatusCode::UNAUTHORIZED,
            Code::Unauthenticated,
            "uploads need a signed-in merchant or admin: send Authorization: Bearer <access token>",
        ));
    };
    if !caller.roles.iter().any(|r| matches!(r, Role::Merchant | Role::Admin)) {
        return Err(UploadRefusal::new(
            StatusCode::FORBIDDEN,
            Code::Forbidden,
            "only merchants and admins upload plugins (made a merchant just now? sign in again for a fresh token)",
        ));
    }
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = declared
        && length > max_body as u64
    {
        return Err(UploadRefusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::BadRequest,
            format!(
                "the body is {length} bytes; an upload may be at most {max_body} (gateway.max_plugin_upload_bytes)"
            ),
        ));
    }
    if let Err(wait) = state.rate_limiters.check(Class::Plugin, address) {
        let seconds = retry_after_secs(wait);
        return Err(UploadRefusal {
            retry_after: Some(seconds),
            ..UploadRefusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                Code::RateLimited,
                crate::rate_limit::refusal(Class::Plugin, seconds),
            )
        });
    }
    state.uploads.clone().try_acquire_owned().map_err(|_| UploadRefusal {
        retry_after: Some(1),
        ..UploadRefusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::ServiceUnavailable,
            "too many uploads in progress; retry in a moment",
        )
    })
}

/// Whether the operation a request selects is a mutation. Unparsable
/// queries are not: execution reports their parse error.
fn is_mutation(request: &async_graphql::Request) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else { return false };
    let is_mutation = |ty: OperationType| ty == OperationType::Mutation;
    match &document.operations {
        DocumentOperations::Single(op) => is_mutation(op.node.ty),
        DocumentOperations::Multiple(ops) => match &request.operation_name {
            Some(name) => ops.get(name.as_str()).is_some_and(|op| is_mutation(op.node.ty)),
            None => ops.values().any(|op| is_mutation(op.node.ty)),
        },
    }
}

/// Reads a GraphQL request from the query string (GET) or the body (POST:
/// JSON, or multipart).
async fn read_request(request: Request, body: &PostBody, state: &AppState) -> Result<BatchRequest, RequestError> {
    let limits = &state.limits;
    if let PostBody::Multipart(boundary) = body {
        return multipart::read(request.into_body(), boundary, state.multipart_limits()).await.map_err(|refusal| {
            match refusal {
                multipart::Refusal::TooLarge(message) => (StatusCode::PAYLOAD_TOO_LARGE, Code::BadRequest, message),
                multipart::Refusal::Malformed(message) => {
                    (StatusCode::BAD_REQUEST, Code::BadRequest, format!("invalid multipart request: {message}"))
                }
            }
        });
    }
    if request.method() == Method::GET {
        let query = request.uri().query().unwrap_or_default();
        return async_graphql::http::parse_query_string(query)
            .map(BatchRequest::Single)
            .map_err(|e| (StatusCode::BAD_REQUEST, Code::BadRequest, format!("invalid query string: {e}")));
    }
    let too_large = || {
        (StatusCode::PAYLOAD_TOO_LARGE, Code::BadRequest, format!("the body exceeds {} bytes", limits.max_body_bytes))
    };
    let body = axum::body::to_bytes(request.into_body(), limits.max_body_bytes).await.map_err(|_| too_large())?;
    // `graphql` checked the content type: JSON.
    let options = MultipartOptions::default().max_file_size(0).max_num_files(0);
    async_graphql::http::receive_batch_body(Some("application/json"), &body[..], options).await.map_err(|e| match e {
        async_graphql::ParseRequestError::PayloadTooLarge => too_large(),
        other => (StatusCode::BAD_REQUEST, Code::BadRequest, format!("not a GraphQL request: {other}")),
    })
}

fn request_error(status: StatusCode, code: Code, message: &str, request_id: &str) -> Response {
    let mut error = coded(ServerError::new(message, None), code);
    error.extensions.get_or_insert_with(Default::default).set("requestId", request_id);
    let body = serde_json::json!({ "errors": [error] });
    json_response(status, GRAPHQL_RESPONSE, body.to_string(), request_id)
}

/// Whether a response failed before execution (parse, validation,
/// limits). Such a response has no `data` at all, per the spec; an
/// execution error that nulls the whole `data` is still a 200.
fn failed_before_execution(response: &async_graphql::Response) -> bool {
    const REQUEST_ERRORS: [Code; 3] = [Code::GraphqlParseFailed, Code::GraphqlValidationFailed, Code::QueryTooComplex];
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| {
            let code = e.extensions.as_ref().and_then(|x| x.get("code")).cloned();
            REQUEST_ERRORS.iter().any(|c| code == Some(async_graphql::Value::from(c.as_str())))
        })
}

/// If a rate limit left this response with no data at all: the longest
/// `retryAfter` (seconds) of its `RATE_LIMITED` errors.
fn rate_limited(response: &async_graphql::Response) -> Option<u64> {
    if response.data != async_graphql::Value::Null {
        return None;
    }
    let limited = async_graphql::Value::from(Code::RateLimited.as_str());
    response
        .errors
        .iter()
        .filter_map(|e| e.extensions.as_ref())
        .filter(|x| x.get("code") == Some(&limited))
        .map(|x| match x.get("retryAfter") {
            Some(async_graphql::Value::Number(n)) => n.as_u64().unwrap_or(1),
            _ => 1,
        })
        .max()
}

fn graphql_response(response: BatchResponse, media: Media, request_id: &str) -> Response {
    let request_failed = matches!(&response, BatchResponse::Single(r) if failed_before_execution(r));
    // Every operation of the request limited: the request as a whole is.
    let retry_after = match &response {
        BatchResponse::Single(r) => rate_limited(r),
        BatchResponse::Batch(rs) => {
            rs.iter().map(rate_limited).collect::<Option<Vec<_>>>().and_then(|w| w.into_iter().max())
        }
    };
    let status = if retry_after.is_some() {
        StatusCode::TOO_MANY_REQUESTS
    } else if request_failed && media == Media::GraphqlResponse {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let content_type = if media == Media::Json { "application/json" } else { GRAPHQL_RESPONSE };
    let serialized = match &response {
        // No `data` entry for a request that never executed.
        BatchResponse::Single(r) if request_failed => serde_json::to_string(&serde_json::json!({ "errors": r.errors })),
        _ => serde_json::to_string(&response),
    };
    let body = match serialized {
        Ok(body) => body,
        Err(e) => {
            return request_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::InternalServerError,
                &e.to_string(),
                request_id,
            );
        }
    };
    let mut response = json_response(status, content_type, body, request_id);
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    response
}

fn json_response(status: StatusCode, content_type: &'static str, body: String, request_id: &str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The page's `script-src 'self'` must not admit a response as a script.
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    fn client(lines: &[&str], hops: usize) -> Option<String> {
        forwarded_for(&headers(lines), hops).map(|ip| ip.to_string())
    }

    #[test]
    fn the_client_is_the_right_most_entry_no_trusted_proxy_wrote() {
        // One proxy: it appended the address it saw, last.
        assert_eq!(client(&["6.6.6.6, 203.0.113.9"], 1).as_deref(), Some("203.0.113.9"));
        // Two proxies (a CDN, then a load balancer): the CDN's entry is the
        // right-most, the client's is before it.
        assert_eq!(client(&["6.6.6.6, 203.0.113.9, 198.51.100.1"], 2).as_deref(), Some("203.0.113.9"));
        // Header lines of their own, in order.
        assert_eq!(client(&["6.6.6.6", "203.0.113.9, 198.51.100.1"], 2).as_deref(), Some("203.0.113.9"));
        // Fewer entries than hops: all written by proxies; the farthest.
        assert_eq!(client(&["203.0.113.9"], 2).as_deref(), Some("203.0.113.9"));
        // Ports and IPv6.
        assert_eq!(client(&["203.0.113.9:4711"], 1).as_deref(), Some("203.0.113.9"));
        assert_eq!(client(&["[2001:db8::1]:4711"], 1).as_deref(), Some("2001:db8::1"));
        assert_eq!(client(&["2001:db8::1"], 1).as_deref(), Some("2001:db8::1"));
        // Not an address, or no header: the peer is used.
        assert_eq!(client(&["6.6.6.6, unknown"], 1), None);
        assert_eq!(client(&[], 1), None);
    }

    #[test]
    fn posts_must_be_json_or_multipart() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            post_body(&h)
        };
        assert_eq!(with("application/json"), Ok(PostBody::Json));
        assert_eq!(with("application/json; charset=utf-8"), Ok(PostBody::Json));
        assert_eq!(with("APPLICATION/JSON"), Ok(PostBody::Json));
        assert_eq!(with("multipart/form-data; boundary=----x"), Ok(PostBody::Multipart("----x".into())));
        assert_eq!(with("Multipart/Form-Data; boundary=\"a b\""), Ok(PostBody::Multipart("a b".into())));
        assert_eq!(with("multipart/form-data").map_err(|e| e.0), Err(StatusCode::BAD_REQUEST));
        for refused in
            ["text/plain", "application/x-www-form-urlencoded", "multipart/mixed; boundary=x", "application/jsonx"]
        {
            assert_eq!(with(refused).map_err(|e| e.0), Err(StatusCode::UNSUPPORTED_MEDIA_TYPE), "{refused}");
        }
        assert_eq!(post_body(&HeaderMap::new()).map_err(|e| e.0), Err(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
}
