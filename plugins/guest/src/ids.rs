//! Opaque ids: UUIDv7 text, time-ordered so keyset paging by id follows
//! creation order.

use crate::bindings::types::FieldError;
use crate::errors::Invalid;

pub fn new_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

/// Longest id accepted as input; real ids are 36 characters.
pub const MAX_ID_LEN: usize = 64;

/// Checks that `id` could be an id at all. Ids are opaque to clients, but a
/// value that no id can have (empty, huge, odd characters) is bad input,
/// not a missing entity.
pub fn parse_id(field: &str, id: &str) -> Result<String, FieldError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(id.to_string()) } else { Err(FieldError::invalid(field, "INVALID_ID", "not a valid id")) }
}
