//! Error codes and the one place service failures become GraphQL errors.
//!
//! Expected failures of a mutation are `userErrors` in its payload; every
//! other failure is a top-level error whose `extensions.code` is one of
//! [`Code`] and whose `extensions.requestId` finds the logs. Clients see a
//! clear message and a stable code, never an internal string.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    ErrorExtensionValues, ErrorExtensions, ServerError, ServerResult, SimpleObject, ValidationResult, Variables,
};
use tonic_types::StatusExt;

/// Stable codes in `extensions.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    GraphqlParseFailed,
    GraphqlValidationFailed,
    QueryTooComplex,
    BadRequest,
    BadUserInput,
    NotFound,
    Unauthenticated,
    Forbidden,
    Conflict,
    Timeout,
    ResourceExhausted,
    /// Over a per-address rate limit; `extensions.retryAfter` says when to
    /// retry (seconds).
    RateLimited,
    ServiceUnavailable,
    InternalServerError,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            Code::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Code::QueryTooComplex => "QUERY_TOO_COMPLEX",
            Code::BadRequest => "BAD_REQUEST",
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::NotFound => "NOT_FOUND",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::Conflict => "CONFLICT",
            Code::Timeout => "TIMEOUT",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::RateLimited => "RATE_LIMITED",
            Code::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Code::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }
}

/// Sets `extensions.code` (unless a code is already there).
pub fn coded(mut error: ServerError, code: Code) -> ServerError {
    let extensions = error.extensions.get_or_insert_with(ErrorExtensionValues::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code.as_str());
    }
    error
}

/// A top-level resolver error with a code.
pub fn api_error(code: Code, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code.as_str()))
}

/// An expected failure of a mutation, returned in its payload.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct UserError {
    /// Path to the input field at fault, e.g. `["input", "price", "currency"]`.
    pub field: Option<Vec<String>>,
    /// Stable, SCREAMING_SNAKE_CASE.
    pub code: String,
    pub message: String,
}

/// What a failed service call means to a resolver.
pub enum Failure {
    /// Expected: the payload's `userErrors`.
    User(Vec<UserError>),
    /// Anything else: a top-level error.
    Api(async_graphql::Error),
}

/// Maps a service `Status`. `path` turns a service field name ("price.amount")
/// into the GraphQL input path of the operation.
pub fn from_status(status: &tonic::Status, path: &dyn Fn(&str) -> Vec<String>) -> Failure {
    use tonic::Code as G;
    let reason = status.get_details_error_info().map(|i| i.reason);
    match status.code() {
        G::InvalidArgument => match status.get_details_bad_request() {
            Some(bad) if !bad.field_violations.is_empty() => Failure::User(
                bad.field_violations
                    .into_iter()
                    .map(|v| UserError {
                        field: (!v.field.is_empty()).then(|| path(&v.field)),
                        code: if v.reason.is_empty() { "INVALID".into() } else { v.reason },
                        message: v.description,
                    })
                    .collect(),
            ),
            _ => Failure::Api(api_error(Code::BadUserInput, status.message())),
        },
        G::NotFound => Failure::User(vec![UserError {
            field: Some(path("id")),
            code: "NOT_FOUND".into(),
            message: status.message().to_string(),
        }]),
        G::Aborted | G::AlreadyExists | G::FailedPrecondition => Failure::User(vec![UserError {
            field: None,
            code: reason.unwrap_or_else(|| "CONFLICT".into()),
            message: status.message().to_string(),
        }]),
        _ => Failure::Api(top_level(status)),
    }
}

/// A service failure as a top-level error (queries, and mutation failures
/// that are not the caller's input).
pub fn top_level(status: &tonic::Status) -> async_graphql::Error {
    use tonic::Code as G;
    let (code, message) = match status.code() {
        G::InvalidArgument => {
            let detail = status
                .get_details_bad_request()
                .and_then(|b| b.field_violations.into_iter().next())
                .map(|v| format!("{}: {}", v.field, v.description));
            (Code::BadUserInput, detail.unwrap_or_else(|| status.message().to_string()))
        }
        G::NotFound => (Code::NotFound, status.message().to_string()),
        G::Unauthenticated => (Code::Unauthenticated, status.message().to_string()),
        G::PermissionDenied => (Code::Forbidden, status.message().to_string()),
        G::Aborted | G::AlreadyExists | G::FailedPrecondition => (Code::Conflict, status.message().to_string()),
        G::DeadlineExceeded | G::Cancelled => (Code::Timeout, "the service did not answer in time".to_string()),
        G::ResourceExhausted => (Code::ResourceExhausted, status.message().to_string()),
        G::Unavailable => {
            tracing::warn!(status = %status.message(), "service unavailable");
            (Code::ServiceUnavailable, "the service is unavailable; retry later".to_string())
        }
        _ => {
            tracing::error!(code = ?status.code(), status = %status.message(), "service failed");
            (Code::InternalServerError, "internal error".to_string())
        }
    };
    let mut error = api_error(code, message);
    if let Some(bad) = status.get_details_bad_request()
        && let Some(v) = bad.field_violations.into_iter().next()
    {
        error = error.extend_with(|_, ext| {
            ext.set("field", v.field.clone());
            ext.set("reason", v.reason.clone());
        });
    }
    error
}

/// Codes parse failures, validation failures and the limits they enforce.
/// Resolver errors bring their own codes; the HTTP layer gives whatever is
/// left `INTERNAL_SERVER_ERROR` and adds the request id
/// ([`finish_errors`]).
pub struct ErrorShape;

impl ExtensionFactory for ErrorShape {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorShape)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorShape {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|e| {
            let code = if e.message.starts_with("The recursion depth") || e.message.contains("directives") {
                Code::QueryTooComplex
            } else {
                Code::GraphqlParseFailed
            };
            coded(e, code)
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    let code = if e.message.starts_with("Query is nested too deep")
                        || e.message.starts_with("Query is too complex")
                    {
                        Code::QueryTooComplex
                    } else {
                        Code::GraphqlValidationFailed
                    };
                    coded(e, code)
                })
                .collect()
        })
    }
}

/// Gives every error of a response a code and the request id.
pub fn finish_errors(errors: &mut [ServerError], request_id: &str) {
    for error in errors {
        let extensions = error.extensions.get_or_insert_with(ErrorExtensionValues::default);
        if extensions.get("code").is_none() {
            extensions.set("code", Code::InternalServerError.as_str());
        }
        extensions.set("requestId", request_id);
    }
}
