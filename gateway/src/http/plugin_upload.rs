//! `PUT /plugins/{name}?kind=pricing|validation[&activate=true][&merchantId=…]`:
//! a plugin upload for command lines (`curl -T plugin.wasm`), the
//! component as the raw body, answered in plain JSON.
//!
//! The same rules as a multipart `uploadPlugin` ([`super::admit_upload`]:
//! a signed-in merchant or admin, the upload cap, the plugin rate limit,
//! an upload slot), checked before the body is read. Answers:
//! 201 `{"merchantId","name","kind","version","sizeBytes","active"}` when
//! the plugin has this version only (the upload created it), 200 when it
//! has others; `{"error":{"code","message"}}` with 400 (a bad
//! query, an invalid or incompatible component), 401, 403, 404 (another
//! merchant, or an unknown `merchantId`), 409, 413, 415, 429 or 503.

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use polyscale_proto::plugin::v1 as pb;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{AppState, admit_upload, authenticate, client_address, json_response, request_id};
use crate::errors::Code;
use crate::schema::RequestContext;
use crate::schema::plugins::{self, PluginKind};

/// What the query string asks.
#[derive(Debug, PartialEq, Eq)]
struct UploadQuery {
    kind: PluginKind,
    activate: bool,
    merchant_id: String,
}

fn parse_query(uri: &Uri) -> Result<UploadQuery, String> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|e| format!("the query string is not form-encoded: {}", e.body_text()))?;
    let (mut kind, mut activate, mut merchant_id) = (None, None, None);
    for (key, value) in pairs {
        let slot = match key.as_str() {
            "kind" => &mut kind,
            "activate" => &mut activate,
            "merchantId" => &mut merchant_id,
            other => return Err(format!("unknown query parameter `{other}` (kind, activate, merchantId)")),
        };
        if slot.replace(value).is_some() {
            return Err(format!("the query parameter `{key}` is given twice"));
        }
    }
    let kind = match kind.as_deref() {
        Some(name) => {
            PluginKind::parse(name).ok_or_else(|| format!("`kind` must be `pricing` or `validation`, not `{name}`"))?
        }
        None => return Err("`kind` is required: `?kind=pricing` or `?kind=validation`".into()),
    };
    let activate = match activate.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(format!("`activate` must be `true` or `false`, not `{other}`")),
    };
    Ok(UploadQuery { kind, activate, merchant_id: merchant_id.unwrap_or_default() })
}

/// A component's media type: `application/wasm`, `application/octet-stream`,
/// or none (`curl -T` sends none).
fn wasm_content_type(headers: &HeaderMap) -> Result<(), String> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok(()) };
    let value = String::from_utf8_lossy(value.as_bytes());
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/wasm" | "application/octet-stream" => Ok(()),
        other => Err(format!("the body must be a component: `Content-Type: application/wasm`, not `{other}`")),
    }
}

fn answer(status: StatusCode, body: serde_json::Value, request_id: &str) -> Response {
    json_response(status, "application/json", body.to_string(), request_id)
}

fn refusal(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response {
    answer(status, json!({ "error": { "code": code, "message": message } }), request_id)
}

/// A service refusal as an HTTP status and a code (as GraphQL would give
/// it: a userError's code, or a top-level error's).
fn from_status(status: &tonic::Status) -> (StatusCode, String, String) {
    use tonic::Code as G;
    if let Ok(errors) = plugins::user_errors(status)
        && let Some(first) = errors.into_iter().next()
    {
        let http = match status.code() {
            G::InvalidArgument if first.code == "TOO_LARGE" => StatusCode::PAYLOAD_TOO_LARGE,
            G::InvalidArgument => StatusCode::BAD_REQUEST,
            G::NotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::CONFLICT,
        };
        return (http, first.code, first.message);
    }
    let (http, code, message) = match status.code() {
        G::InvalidArgument => (StatusCode::BAD_REQUEST, Code::BadUserInput, status.message()),
        G::Unauthenticated => (StatusCode::UNAUTHORIZED, Code::Unauthenticated, status.message()),
        G::PermissionDenied => (StatusCode::FORBIDDEN, Code::Forbidden, status.message()),
        G::ResourceExhausted => (StatusCode::SERVICE_UNAVAILABLE, Code::ResourceExhausted, status.message()),
        G::DeadlineExceeded | G::Cancelled => {
            (StatusCode::GATEWAY_TIMEOUT, Code::Timeout, "the service did not answer in time")
        }
        G::Unavailable => {
            tracing::warn!(status = %status.message(), "plugin service unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, Code::ServiceUnavailable, "the service is unavailable; retry later")
        }
        _ => {
            tracing::error!(code = ?status.code(), status = %status.message(), "plugin upload failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Code::InternalServerError, "internal error")
        }
    };
    (http, code.as_str().to_string(), message.to_string())
}

/// The answer to a stored upload: the version is the body's SHA-256.
fn uploaded(plugin: &pb::Plugin, sha256: &str, size: usize) -> (StatusCode, serde_json::Value) {
    let version = plugin.versions.iter().find(|v| v.sha256 == sha256);
    let created = plugin.versions.len() == 1 && version.is_some();
    let body = json!({
        "merchantId": plugin.merchant_id,
        "name": plugin.name,
        "kind": PluginKind::name_of(plugin.kind),
        "version": sha256,
        "sizeBytes": version.map_or(size as u64, |v| v.size_bytes),
        "active": version.is_some_and(|v| v.active) || plugin.active_version == sha256,
    });
    (if created { StatusCode::CREATED } else { StatusCode::OK }, body)
}

pub(super) async fn put_plugin(State(state): State<AppState>, Path(name): Path<String>, request: Request) -> Response {
    let headers = request.headers().clone();
    let request_id = request_id(&headers);
    let fail = |status: StatusCode, code: &str, message: &str| refusal(status, code, message, &request_id);

    let (token, claims) = match authenticate(&headers, state.verifier.as_ref()) {
        Ok(Some(caller)) => caller,
        Ok(None) => {
            let mut response = fail(
                StatusCode::UNAUTHORIZED,
                Code::Unauthenticated.as_str(),
                "send Authorization: Bearer <access token> (a merchant's or an admin's)",
            );
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return response;
        }
        Err(reason) => {
            let mut response = fail(StatusCode::UNAUTHORIZED, Code::Unauthenticated.as_str(), &reason);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer error=\"invalid_token\""));
            return response;
        }
    };
    let query = match parse_query(request.uri()) {
        Ok(query) => query,
        Err(message) => return fail(StatusCode::BAD_REQUEST, Code::BadRequest.as_str(), &message),
    };
    if let Err(message) = wasm_content_type(&headers) {
        return fail(StatusCode::UNSUPPORTED_MEDIA_TYPE, Code::BadRequest.as_str(), &message);
    }
    let address = client_address(&request, state.trusted_proxy_hops);
    let cap = state.max_plugin_upload_bytes;
    let _permit = match admit_upload(&state, &headers, Some(&claims), &address, cap) {
        Ok(permit) => permit,
        Err(refused) => {
            let code =
                if refused.status == StatusCode::PAYLOAD_TOO_LARGE { "TOO_LARGE" } else { refused.code.as_str() };
            let mut response = fail(refused.status, code, &refused.message);
            refused.headers(&mut response);
            return response;
        }
    };
    let wasm = match axum::body::to_bytes(request.into_body(), cap).await {
        Ok(body) => body.to_vec(),
        Err(_) => {
            let message = format!("the component exceeds {cap} bytes (gateway.max_plugin_upload_bytes)");
            return fail(StatusCode::PAYLOAD_TOO_LARGE, "TOO_LARGE", &message);
        }
    };
    let sha256 = hex::encode(Sha256::digest(&wasm));
    let size = wasm.len();
    let context = RequestContext::new(request_id.clone(), address).authenticated(token, claims);
    let message = pb::UploadPluginRequest {
        plugin: Some(pb::PluginRef { merchant_id: query.merchant_id, name }),
        kind: query.kind.to_pb() as i32,
        wasm,
        activate: query.activate,
    };
    let clients = &state.clients;
    match clients.plugin.clone().upload_plugin(clients.upload_request(message, &context)).await {
        Ok(plugin) => {
            let (status, body) = uploaded(&plugin.into_inner(), &sha256, size);
            answer(status, body, &request_id)
        }
        Err(status) => {
            let (http, code, message) = from_status(&status);
            fail(http, &code, &message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: Option<&str>) -> Result<UploadQuery, String> {
        let uri = match query {
            Some(q) => format!("/plugins/p?{q}"),
            None => "/plugins/p".to_string(),
        };
        parse_query(&uri.parse().unwrap())
    }

    #[test]
    fn the_query_names_a_kind_and_nothing_unknown() {
        assert_eq!(
            parse(Some("kind=pricing")),
            Ok(UploadQuery { kind: PluginKind::Pricing, activate: false, merchant_id: String::new() })
        );
        assert_eq!(
            parse(Some("kind=validation&activate=true&merchantId=m-1")),
            Ok(UploadQuery { kind: PluginKind::Validation, activate: true, merchant_id: "m-1".into() })
        );
        for (bad, says) in [
            (None, "`kind` is required"),
            (Some(""), "`kind` is required"),
            (Some("kind=discount"), "`kind` must be `pricing` or `validation`"),
            (Some("kind=PRICING"), "`kind` must be"),
            (Some("kind=pricing&activate=yes"), "`activate` must be"),
            (Some("kind=pricing&kind=validation"), "given twice"),
            (Some("kind=pricing&activte=true"), "unknown query parameter `activte`"),
        ] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
    }

    #[test]
    fn components_come_as_wasm_or_octets() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, header::HeaderValue::from_str(ct).unwrap());
            wasm_content_type(&h)
        };
        assert!(with("application/wasm").is_ok());
        assert!(with("application/octet-stream").is_ok());
        assert!(wasm_content_type(&HeaderMap::new()).is_ok());
        assert!(with("application/json").is_err());
        assert!(with("multipart/form-data; boundary=x").is_err());
    }

    #[test]
    fn an_upload_answers_its_version() {
        let version = |sha: &str, active: bool| pb::PluginVersion {
            sha256: sha.into(),
            size_bytes: 10,
            uploaded_by: "m".into(),
            uploaded_at_ms: 0,
            active,
        };
        let mut plugin = pb::Plugin {
            merchant_id: "m".into(),
            name: "tiers".into(),
            kind: pb::PluginKind::Pricing as i32,
            versions: vec![version("aa", false)],
            ..Default::default()
        };
        let (status, body) = uploaded(&plugin, "aa", 10);
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            body,
            json!({ "merchantId": "m", "name": "tiers", "kind": "pricing", "version": "aa", "sizeBytes": 10, "active": false })
        );
        plugin.versions.insert(0, version("bb", true));
        plugin.active_version = "bb".into();
        let (status, body) = uploaded(&plugin, "bb", 10);
        assert_eq!((status, &body["active"]), (StatusCode::OK, &json!(true)));
    }

    #[test]
    fn refusals_keep_their_codes() {
        use tonic_types::{ErrorDetails, StatusExt};
        let reason = |code: tonic::Code, reason: &str| {
            tonic::Status::with_error_details(
                code,
                "refused",
                ErrorDetails::with_error_info(reason, "polyscale", std::collections::HashMap::new()),
            )
        };
        let check = |status: tonic::Status, http: StatusCode, code: &str| {
            let (got_http, got_code, _) = from_status(&status);
            assert_eq!((got_http, got_code.as_str()), (http, code), "{status:?}");
        };
        check(reason(tonic::Code::InvalidArgument, "TOO_LARGE"), StatusCode::PAYLOAD_TOO_LARGE, "TOO_LARGE");
        check(reason(tonic::Code::InvalidArgument, "INVALID_COMPONENT"), StatusCode::BAD_REQUEST, "INVALID_COMPONENT");
        check(
            reason(tonic::Code::InvalidArgument, "INCOMPATIBLE_COMPONENT"),
            StatusCode::BAD_REQUEST,
            "INCOMPATIBLE_COMPONENT",
        );
        check(tonic::Status::not_found("no such merchant"), StatusCode::NOT_FOUND, "NOT_FOUND");
        check(tonic::Status::permission_denied("merchants only"), StatusCode::FORBIDDEN, "FORBIDDEN");
        check(tonic::Status::unauthenticated("expired"), StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
        check(tonic::Status::unavailable("down"), StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE");
        check(tonic::Status::internal("bug"), StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR");
    }
}
