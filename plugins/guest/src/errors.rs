//! Collecting input problems and turning failures into `domain-error`.

use crate::bindings::sql;
use crate::bindings::types::{DomainError, FieldError};

/// Input problems found while parsing a request. Components collect every
/// problem (not just the first) so a client can fix its input in one go.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.0.push(FieldError { field: field.to_string(), code: code.to_string(), message: message.into() });
    }

    /// Records the error of a parse step and returns its value, if any.
    pub fn take<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Ok when nothing was recorded, else `domain-error::invalid`.
    pub fn finish(self) -> Result<(), DomainError> {
        if self.0.is_empty() { Ok(()) } else { Err(DomainError::Invalid(self.0)) }
    }
}

/// Shorthand for a single field problem.
pub trait Invalid {
    fn invalid(field: &str, code: &str, message: impl Into<String>) -> Self;
}

impl Invalid for FieldError {
    fn invalid(field: &str, code: &str, message: impl Into<String>) -> Self {
        FieldError { field: field.to_string(), code: code.to_string(), message: message.into() }
    }
}

impl Invalid for DomainError {
    fn invalid(field: &str, code: &str, message: impl Into<String>) -> Self {
        DomainError::Invalid(vec![FieldError::invalid(field, code, message)])
    }
}

impl From<FieldError> for DomainError {
    fn from(e: FieldError) -> Self {
        DomainError::Invalid(vec![e])
    }
}

/// SQL failures a component did not handle itself. Constraint violations
/// that reach this point are bugs in the component's own checks, so they
/// become `internal`; a component that expects one (a unique slug, say)
/// matches on it before converting.
impl From<sql::Error> for DomainError {
    fn from(e: sql::Error) -> Self {
        match e {
            sql::Error::Unavailable(m) => DomainError::Unavailable(format!("database unavailable: {m}")),
            sql::Error::SerializationFailure(m) => DomainError::Unavailable(format!("concurrent update, retry: {m}")),
            other => DomainError::Internal(format!("database error: {}", describe(&other))),
        }
    }
}

/// A one-line description of a SQL error, for logs and internal errors.
pub fn describe(e: &sql::Error) -> String {
    match e {
        sql::Error::Constraint(c) => format!("constraint violation ({:?}): {}", c.kind, c.message),
        sql::Error::SerializationFailure(m) => format!("serialization failure: {m}"),
        sql::Error::Unavailable(m) => format!("unavailable: {m}"),
        sql::Error::InvalidStatement(m) => format!("invalid statement: {m}"),
        sql::Error::AccessDenied(m) => format!("access denied: {m}"),
        sql::Error::TooLarge(m) => format!("result too large: {m}"),
        sql::Error::TransactionClosed => "transaction already closed".to_string(),
        sql::Error::Other(m) => m.clone(),
    }
}
