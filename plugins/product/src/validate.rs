//! Parsing product input into values the catalog can store.

use polyscale_guest::bindings::types::{DomainError, FieldError, Money};
use polyscale_guest::{FieldErrors, Invalid, money};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Stock is bounded so `stock + delta` never overflows and fits a GraphQL
/// `Int` (32 bits).
pub const MAX_STOCK: i64 = 1_000_000_000;

pub fn name(field: &str, value: &str) -> Result<String, FieldError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        Err(FieldError::invalid(field, "REQUIRED", "the name must not be empty"))
    } else if trimmed.chars().count() > MAX_NAME_CHARS {
        Err(FieldError::invalid(field, "TOO_LONG", format!("the name is longer than {MAX_NAME_CHARS} characters")))
    } else {
        Ok(trimmed.to_string())
    }
}

pub fn description(field: &str, value: &str) -> Result<String, FieldError> {
    if value.chars().count() > MAX_DESCRIPTION_CHARS {
        Err(FieldError::invalid(
            field,
            "TOO_LONG",
            format!("the description is longer than {MAX_DESCRIPTION_CHARS} characters"),
        ))
    } else {
        Ok(value.to_string())
    }
}

pub fn stock(field: &str, value: i64) -> Result<i64, FieldError> {
    if value < 0 {
        Err(FieldError::invalid(field, "NEGATIVE_STOCK", "stock must not be negative"))
    } else if value > MAX_STOCK {
        Err(FieldError::invalid(field, "TOO_LARGE", format!("stock may not exceed {MAX_STOCK}")))
    } else {
        Ok(value)
    }
}

pub fn stock_delta(field: &str, value: i64) -> Result<i64, FieldError> {
    if value.unsigned_abs() > MAX_STOCK as u64 {
        Err(FieldError::invalid(field, "TOO_LARGE", format!("a stock change may not exceed {MAX_STOCK} units")))
    } else {
        Ok(value)
    }
}

pub fn price(errors: &mut FieldErrors, field: &str, value: Money) -> Option<Money> {
    match money::parse_price(field, value) {
        Ok(m) => Some(m),
        Err(es) => {
            for e in es {
                errors.add(&e.field, &e.code, e.message);
            }
            None
        }
    }
}

/// A URL-safe slug of a category name: lower-case ASCII letters and digits
/// separated by single dashes.
pub fn slug(name: &str) -> Result<String, DomainError> {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() {
        Err(DomainError::invalid("name", "INVALID_NAME", "the name needs at least one letter or digit"))
    } else {
        Ok(slug)
    }
}
