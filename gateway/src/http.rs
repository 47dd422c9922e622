//! HTTP in front of the schema: GraphQL over HTTP (GET and POST), GraphiQL,
//! health, request ids and body limits.
//!
//! Status codes follow the GraphQL-over-HTTP spec: with the
//! `application/graphql-response+json` media type (the default), a request
//! that fails before execution (unparsable, invalid, over a limit) is a
//! 400; with `application/json` it is a 200 carrying the errors. A body
//! that is not a GraphQL request at all is a 400 either way.

use async_graphql::http::{GraphiQLSource, MultipartOptions};
use async_graphql::{BatchRequest, BatchResponse, ServerError};
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::errors::{Code, coded, finish_errors};
use crate::limits::GraphqlLimits;
use crate::schema::{PolyScaleSchema, RequestContext};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const REQUEST_ID: &str = "x-request-id";

#[derive(Clone)]
struct AppState {
    schema: PolyScaleSchema,
    limits: GraphqlLimits,
}

pub fn router(schema: PolyScaleSchema, limits: GraphqlLimits) -> Router {
    Router::new()
        .route("/graphql", get(graphql).post(graphql))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(AppState { schema, limits })
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

    if is_get && request.uri().query().is_none_or(|q| !q.contains("query=")) {
        let accepts_html =
            headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
        if accepts_html {
            return Html(GraphiQLSource::build().endpoint("/graphql").title("PolyScale GraphiQL").finish())
                .into_response();
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
        request.data.insert(RequestContext::new(request_id.clone()));
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

fn graphql_response(response: BatchResponse, media: Media, request_id: &str) -> Response {
    // A single response with errors and no data never reached execution:
    // a request error (parse, validation or limits).
    let request_failed = match &response {
        BatchResponse::Single(r) => r.data == async_graphql::Value::Null && !r.errors.is_empty(),
        BatchResponse::Batch(_) => false,
    };
    let status =
        if request_failed && media == Media::GraphqlResponse { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let content_type = if media == Media::Json { "application/json" } else { GRAPHQL_RESPONSE };
    let body = match serde_json::to_string(&response) {
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
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, v);
    }
    response
}
