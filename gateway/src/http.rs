//! HTTP in front of the schema: GraphQL over HTTP (GET and POST), GraphiQL
//! (unless switched off; `graphiql.rs`), health, request ids and body
//! limits.
//!
//! Status codes follow the GraphQL-over-HTTP spec: with the
//! `application/graphql-response+json` media type (the default), a request
//! that fails before execution (unparsable, invalid, over a limit) is a
//! 400; with `application/json` it is a 200 carrying the errors. A body
//! that is not a GraphQL request at all is a 400 either way.

use async_graphql::http::MultipartOptions;
use async_graphql::{BatchRequest, BatchResponse, ServerError};
use axum::Router;
use axum::body::Body;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::get;

use polyscale_auth::{Claims, Verifier};

use crate::errors::{Code, coded, finish_errors};
use crate::graphiql;
use crate::limits::GraphqlLimits;
use crate::schema::{PolyScaleSchema, RequestContext};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const REQUEST_ID: &str = "x-request-id";

pub struct HttpConfig {
    pub limits: GraphqlLimits,
    pub verifier: Option<Verifier>,
    pub trust_forwarded_for: bool,
    /// Serve GraphiQL to browsers.
    pub graphiql: bool,
}

#[derive(Clone)]
struct AppState {
    schema: PolyScaleSchema,
    limits: GraphqlLimits,
    verifier: Option<Verifier>,
    trust_forwarded_for: bool,
    graphiql: bool,
}

pub fn router(schema: PolyScaleSchema, config: HttpConfig) -> Router {
    let serve_graphiql = config.graphiql;
    let router = Router::new()
        .route("/graphql", get(graphql).post(graphql))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(config.limits.max_body_bytes))
        .with_state(AppState {
            schema,
            limits: config.limits,
            verifier: config.verifier,
            trust_forwarded_for: config.trust_forwarded_for,
            graphiql: serve_graphiql,
        });
    if serve_graphiql { router.merge(graphiql::routes()) } else { router }
}

/// The client's address: the TCP peer, or the first `X-Forwarded-For`
/// entry when a trusted proxy sets it.
fn client_address(request: &Request, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for {
        let forwarded = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .and_then(|v| v.parse::<std::net::IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ip.to_string();
        }
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
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

fn negotiate(headers: &HeaderMap) -> Media {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("application/json") && !accept.contains(GRAPHQL_RESPONSE) {
        Media::Json
    } else {
        Media::GraphqlResponse
    }
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
    let mut context = RequestContext::new(request_id.clone(), client_address(&request, state.trust_forwarded_for));
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

    if state.graphiql && is_get && request.uri().query().is_none_or(|q| !q.contains("query=")) {
        let accepts_html =
            headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
        if accepts_html {
            return graphiql::page();
        }
    }

    let batch = match read_request(request, &state.limits).await {
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
    let mut response = state.schema.execute_batch(batch).await;
    match &mut response {
        BatchResponse::Single(r) => finish_errors(&mut r.errors, &request_id),
        BatchResponse::Batch(rs) => rs.iter_mut().for_each(|r| finish_errors(&mut r.errors, &request_id)),
    }
    graphql_response(response, media, &request_id)
}

type RequestError = (StatusCode, Code, String);

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

/// Reads a GraphQL request from the query string (GET) or the body (POST).
async fn read_request(request: Request, limits: &GraphqlLimits) -> Result<BatchRequest, RequestError> {
    if request.method() == Method::GET {
        let query = request.uri().query().unwrap_or_default();
        return async_graphql::http::parse_query_string(query)
            .map(BatchRequest::Single)
            .map_err(|e| (StatusCode::BAD_REQUEST, Code::BadRequest, format!("invalid query string: {e}")));
    }
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    if content_type.as_deref().is_some_and(|ct| ct.starts_with("multipart/")) {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::BadRequest,
            "multipart requests are not supported".into(),
        ));
    }
    let too_large = || {
        (StatusCode::PAYLOAD_TOO_LARGE, Code::BadRequest, format!("the body exceeds {} bytes", limits.max_body_bytes))
    };
    let body = axum::body::to_bytes(request.into_body(), limits.max_body_bytes).await.map_err(|_| too_large())?;
    let options = MultipartOptions::default().max_file_size(0).max_num_files(0);
    async_graphql::http::receive_batch_body(content_type.or(Some("application/json".into())), &body[..], options)
        .await
        .map_err(|e| match e {
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

fn graphql_response(response: BatchResponse, media: Media, request_id: &str) -> Response {
    let request_failed = matches!(&response, BatchResponse::Single(r) if failed_before_execution(r));
    let status =
        if request_failed && media == Media::GraphqlResponse { StatusCode::BAD_REQUEST } else { StatusCode::OK };
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
    json_response(status, content_type, body, request_id)
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
