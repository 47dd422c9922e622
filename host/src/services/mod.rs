//! gRPC services: each decodes a request, calls the active component
//! version, and encodes the answer. Errors map to `Status` in one place
//! ([`status`]).

pub mod admin;
pub mod product;
pub mod status;

use std::time::Duration;

use polyscale_proto::metadata::{COMPONENT_VERSION, REQUEST_ID};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response};

use crate::registry::Served;
use crate::runtime::CallInfo;

/// Longest request id accepted from a client; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// The call facts carried by a gRPC request's metadata.
pub fn call_info<T>(request: &Request<T>) -> (CallInfo, Option<Duration>) {
    let metadata = request.metadata();
    let request_id = metadata
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let timeout = metadata.get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout);
    (CallInfo::new(request_id, None), timeout)
}

/// Parses a `grpc-timeout` header value: up to 8 digits and a unit.
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A response tagged with the component version that produced it.
pub fn respond<T>(message: T, version: &str) -> Response<T> {
    let mut response = Response::new(message);
    if let Ok(v) = MetadataValue::try_from(version) {
        response.metadata_mut().insert(COMPONENT_VERSION, v);
    }
    response
}

/// Maps the value of a served call, keeping its version.
pub fn served_map<T, U>(served: Served<T>, f: impl FnOnce(T) -> U) -> Served<U> {
    Served { value: f(served.value), version: served.version }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
    }
}
