//! The one place where failures become gRPC statuses.
//!
//! Expected domain errors keep their detail (field violations carry the
//! stable code as `reason`); host failures are logged in full and reported
//! to the client by kind only, with the request id to find the log.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::bindings::types::DomainError;
use crate::registry::DeployError;
use crate::runtime::CallError;

/// The `ErrorInfo.domain` of every PolyScale status.
pub const ERROR_DOMAIN: &str = "polyscale";

fn with_reason(code: Code, reason: &str, message: impl Into<String>) -> Status {
    Status::with_error_details(code, message, ErrorDetails::with_error_info(reason, ERROR_DOMAIN, []))
}

pub fn unauthenticated(message: &str) -> Status {
    with_reason(Code::Unauthenticated, "UNAUTHENTICATED", message)
}

pub fn failed_precondition(reason: &str, message: &str) -> Status {
    with_reason(Code::FailedPrecondition, reason, message)
}

pub fn forbidden(message: &str) -> Status {
    with_reason(Code::PermissionDenied, "FORBIDDEN", message)
}

pub fn domain_error(e: DomainError, request_id: &str) -> Status {
    match e {
        DomainError::Invalid(fields) => {
            let violations = fields
                .into_iter()
                .map(|f| {
                    let mut v = FieldViolation::new(f.field, f.message);
                    v.reason = f.code;
                    v
                })
                .collect::<Vec<_>>();
            Status::with_error_details(
                Code::InvalidArgument,
                "invalid input",
                ErrorDetails::with_bad_request(violations),
            )
        }
        DomainError::NotFound(m) => with_reason(Code::NotFound, "NOT_FOUND", m),
        DomainError::Unauthenticated(m) => with_reason(Code::Unauthenticated, "UNAUTHENTICATED", m),
        DomainError::Forbidden(m) => with_reason(Code::PermissionDenied, "FORBIDDEN", m),
        DomainError::Conflict(m) => with_reason(Code::Aborted, "CONFLICT", m),
        DomainError::Unavailable(m) => {
            tracing::warn!(request_id, error = %m, "component reports a dependency unavailable");
            with_reason(Code::Unavailable, "UNAVAILABLE", "a dependency is unavailable; retry later")
        }
        DomainError::Internal(m) => {
            tracing::error!(request_id, error = %m, "component reports an internal error");
            with_reason(Code::Internal, "INTERNAL", format!("internal error (request {request_id})"))
        }
    }
}

pub fn call_error(e: CallError, request_id: &str) -> Status {
    match e {
        CallError::Timeout { timeout } => {
            with_reason(Code::DeadlineExceeded, "TIMEOUT", format!("the call did not finish within {timeout:?}"))
        }
        CallError::FuelExhausted => {
            with_reason(Code::ResourceExhausted, "FUEL_LIMIT", "the call exceeded its instruction budget")
        }
        CallError::MemoryExhausted(_) => {
            with_reason(Code::ResourceExhausted, "MEMORY_LIMIT", "the call exceeded its memory limit")
        }
        CallError::NoActiveVersion { component } => {
            with_reason(Code::Unavailable, "UNAVAILABLE", format!("the {component} service is starting"))
        }
        CallError::Overloaded(_) => {
            with_reason(Code::Unavailable, "OVERLOADED", "the service is at capacity; retry later")
        }
        CallError::Unavailable(detail) => {
            tracing::error!(request_id, error = %detail, "component could not be loaded");
            with_reason(Code::Unavailable, "UNAVAILABLE", "the service is unavailable; retry later")
        }
        CallError::Trapped(detail) => {
            tracing::error!(request_id, error = %detail, "component trapped");
            with_reason(Code::Internal, "COMPONENT_FAILED", format!("internal error (request {request_id})"))
        }
    }
}

pub fn deploy_error(e: DeployError) -> Status {
    let message = e.to_string();
    match e {
        DeployError::TooLarge { .. } => with_reason(Code::InvalidArgument, "TOO_LARGE", message),
        DeployError::InvalidComponent(_) => with_reason(Code::InvalidArgument, "INVALID_COMPONENT", message),
        DeployError::Incompatible(_) => with_reason(Code::InvalidArgument, "INCOMPATIBLE_COMPONENT", message),
        DeployError::UnknownVersion { .. } => with_reason(Code::NotFound, "NOT_FOUND", message),
        DeployError::Migration(_) => with_reason(Code::FailedPrecondition, "MIGRATION_FAILED", message),
        DeployError::Failed(_) => with_reason(Code::FailedPrecondition, "COMPONENT_FAILED", message),
        DeployError::Storage(_) => {
            tracing::error!(error = %message, "component storage failed");
            with_reason(Code::Unavailable, "UNAVAILABLE", "component storage is unavailable")
        }
    }
}
