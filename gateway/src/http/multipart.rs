//! GraphQL multipart requests (jaydenseric/graphql-multipart-request-spec):
//! the one way a file reaches the schema (`uploadPlugin(file:)`).
//!
//! Read here, not by async-graphql's reader, because that one bounds every
//! part by the file limit (a 32 MiB `operations` would be parsed as JSON),
//! neither counts files nor checks the order of the parts, and leaves a
//! map entry naming no variable unnoticed. Here:
//!
//! - the parts come in the spec's order: `operations` (a JSON request or
//!   batch, within the JSON body limit), `map` (a JSON object of file part
//!   names to variable paths, at most [`MAX_MAP_BYTES`]), then the files;
//! - at most [`MAX_FILES`] file, of at most the upload cap; the whole body
//!   at most [`Limits::max_body_bytes`]: beyond either, 413;
//! - every file part is in the map, every name in the map is sent, and
//!   every path in the map names a variable of the operation; anything
//!   else is a 400 that says what is wrong.
//!
//! The file is held in memory (`Bytes`: async-graphql's `tempfile`
//! feature is off): it goes to the plugin service whole in one gRPC
//! message anyway, and the uploads held at once are bounded
//! (`MAX_UPLOADS_IN_FLIGHT`).
//!
//! async-graphql marks a file in the variables with a string
//! ([`FILE_MARKER`]) and panics on a malformed one, so no request may carry
//! that string itself ([`names_a_file`]).

use std::collections::BTreeMap;

use async_graphql::{BatchRequest, UploadValue, Value};
use axum::body::{Body, Bytes};
use multer::{Constraints, Multipart, SizeLimit};

/// At most this many files per request: uploads send one component.
pub const MAX_FILES: usize = 1;
/// Largest `map` part (one file, a few paths).
pub const MAX_MAP_BYTES: usize = 16 * 1024;
/// Paths one file may be given to.
const MAX_PATHS_PER_FILE: usize = 10;
/// Room for the parts' boundaries and headers.
const FRAMING_BYTES: usize = 16 * 1024;

/// How async-graphql marks an uploaded file in the variables
/// (`Request::set_upload`, `Upload::parse`).
const FILE_MARKER: &str = "#__graphql_file__:";

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The JSON body limit, for `operations`.
    pub max_operations_bytes: usize,
    /// The upload cap, for the file.
    pub max_file_bytes: usize,
}

impl Limits {
    /// The largest multipart body: the file, `operations`, `map` and the
    /// framing around them.
    pub fn max_body_bytes(&self) -> usize {
        self.max_file_bytes
            .saturating_add(self.max_operations_bytes)
            .saturating_add(MAX_MAP_BYTES)
            .saturating_add(FRAMING_BYTES)
    }
}

/// Why a multipart body was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 413.
    TooLarge(String),
    /// 400.
    Malformed(String),
}

fn malformed(message: impl Into<String>) -> Refusal {
    Refusal::Malformed(message.into())
}

fn refusal(error: multer::Error, limits: &Limits) -> Refusal {
    match error {
        multer::Error::FieldSizeExceeded { field_name, .. } => match field_name.as_deref() {
            Some("operations") => Refusal::TooLarge(format!(
                "the `operations` part exceeds {} bytes (gateway.max_body_bytes)",
                limits.max_operations_bytes
            )),
            Some("map") => Refusal::TooLarge(format!("the `map` part exceeds {MAX_MAP_BYTES} bytes")),
            _ => Refusal::TooLarge(format!(
                "the file exceeds {} bytes (gateway.max_plugin_upload_bytes)",
                limits.max_file_bytes
            )),
        },
        multer::Error::StreamSizeExceeded { limit } => {
            Refusal::TooLarge(format!("the multipart body exceeds {limit} bytes"))
        }
        multer::Error::StreamReadFailed(_) => malformed("the body could not be read to its end"),
        other => malformed(format!("not a valid multipart/form-data body: {other}")),
    }
}

/// Reads a GraphQL multipart request whose `Content-Type` gave `boundary`.
pub async fn read(body: Body, boundary: &str, limits: Limits) -> Result<BatchRequest, Refusal> {
    let sizes = SizeLimit::new()
        .whole_stream(limits.max_body_bytes() as u64)
        .per_field(limits.max_file_bytes as u64)
        .for_field("operations", limits.max_operations_bytes as u64)
        .for_field("map", MAX_MAP_BYTES as u64);
    let mut multipart =
        Multipart::with_constraints(body.into_data_stream(), boundary, Constraints::new().size_limit(sizes));
    let mut operations: Option<BatchRequest> = None;
    let mut map: Option<BTreeMap<String, Vec<String>>> = None;
    let mut files: Vec<(String, UploadValue)> = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(|e| refusal(e, &limits))? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "operations" => {
                if operations.is_some() || map.is_some() || !files.is_empty() {
                    return Err(malformed("`operations` must be the first part, and sent once"));
                }
                let bytes = field.bytes().await.map_err(|e| refusal(e, &limits))?;
                let request = async_graphql::http::receive_batch_body(
                    Some("application/json"),
                    &bytes[..],
                    async_graphql::http::MultipartOptions::default(),
                )
                .await
                .map_err(|e| malformed(format!("`operations` is not a GraphQL request: {e}")))?;
                if request.iter().any(names_a_file) {
                    return Err(malformed(format!("`operations` may not contain `{FILE_MARKER}`")));
                }
                operations = Some(request);
            }
            "map" => {
                if operations.is_none() {
                    return Err(malformed("the `operations` part must come before `map`"));
                }
                if map.is_some() || !files.is_empty() {
                    return Err(malformed("`map` must come before the files, and be sent once"));
                }
                let bytes = field.bytes().await.map_err(|e| refusal(e, &limits))?;
                map = Some(parse_map(&bytes)?);
            }
            _ => {
                let Some(map) = &map else {
                    return Err(malformed(format!(
                        "the part `{name}` came before `operations` and `map`, which must come first"
                    )));
                };
                if !map.contains_key(&name) {
                    return Err(malformed(format!("the part `{name}` is not named in `map`")));
                }
                if files.iter().any(|(sent, _)| *sent == name) {
                    return Err(malformed(format!("the file `{name}` is sent twice")));
                }
                if files.len() >= MAX_FILES {
                    return Err(malformed(format!("at most {MAX_FILES} file may be sent per request")));
                }
                let filename = field.file_name().unwrap_or_default().to_string();
                let content_type = field.content_type().map(ToString::to_string);
                let content: Bytes = field.bytes().await.map_err(|e| refusal(e, &limits))?;
                files.push((name, UploadValue { filename, content_type, content }));
            }
        }
    }
    let mut request = operations.ok_or_else(|| malformed("the `operations` part is missing"))?;
    let map = map.ok_or_else(|| malformed("the `map` part is missing"))?;
    for (name, paths) in map {
        let Some(index) = files.iter().position(|(sent, _)| *sent == name) else {
            return Err(malformed(format!("`map` names the file `{name}`, but no part `{name}` was sent")));
        };
        let (_, upload) = &files[index];
        for path in paths {
            if !set_upload(&mut request, &path, upload) {
                return Err(malformed(format!(
                    "the `map` path `{path}` names no variable of the operation (expected `variables.NAME`, \
                     or `INDEX.variables.NAME` in a batch)"
                )));
            }
        }
    }
    Ok(request)
}

/// `map`: a JSON object of file part names to the variable paths each
/// file fills, within the limits.
fn parse_map(bytes: &[u8]) -> Result<BTreeMap<String, Vec<String>>, Refusal> {
    let map: BTreeMap<String, Vec<String>> = serde_json::from_slice(bytes).map_err(|e| {
        malformed(format!(
            "`map` must be a JSON object of file part names to arrays of variable paths, e.g. \
             {{\"0\": [\"variables.file\"]}}: {e}"
        ))
    })?;
    if map.len() > MAX_FILES {
        return Err(malformed(format!("`map` names {} files; at most {MAX_FILES} may be sent per request", map.len())));
    }
    for (name, paths) in &map {
        if name.is_empty() || matches!(name.as_str(), "operations" | "map") {
            return Err(malformed(format!("`{name}` cannot name a file part")));
        }
        if paths.is_empty() || paths.len() > MAX_PATHS_PER_FILE {
            return Err(malformed(format!("the file `{name}` must fill 1 to {MAX_PATHS_PER_FILE} variable paths")));
        }
    }
    Ok(map)
}

/// Puts the file at `path` of the request (or of the batch's request the
/// path's first segment indexes); whether the path named a variable.
fn set_upload(request: &mut BatchRequest, path: &str, upload: &UploadValue) -> bool {
    let (request, path) = match request {
        BatchRequest::Single(request) => (request, path),
        BatchRequest::Batch(requests) => {
            let Some((index, path)) = path.split_once('.') else { return false };
            let Some(request) = index.parse::<usize>().ok().and_then(|i| requests.get_mut(i)) else { return false };
            (request, path)
        }
    };
    let before = request.uploads.len();
    // Bytes clone: the same buffer, shared.
    let Ok(upload) = upload.try_clone() else { return false };
    request.set_upload(path, upload);
    request.uploads.len() > before
}

/// Whether a request carries async-graphql's file marker itself, in its
/// query or its variables: it would stand for a file that was never sent
/// (async-graphql panics on it), so such requests are refused.
pub fn names_a_file(request: &async_graphql::Request) -> bool {
    fn within(value: &Value) -> bool {
        match value {
            Value::String(s) => s.contains(FILE_MARKER),
            Value::List(items) => items.iter().any(within),
            Value::Object(fields) => fields.values().any(within),
            _ => false,
        }
    }
    request.query.contains(FILE_MARKER) || request.variables.values().any(within)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_operations_bytes: 1024, max_file_bytes: 4096 };
    const UPLOAD: &str = r#"{"query":"mutation($file: Upload!) { uploadPlugin(file: $file, kind: PRICING, name: \"p\") { plugin { name } } }","variables":{"file":null}}"#;

    fn body(parts: &[(&str, Option<&str>, &[u8])]) -> Body {
        let mut out = Vec::new();
        for (name, filename, content) in parts {
            out.extend_from_slice(b"--XyZ\r\n");
            match filename {
                Some(f) => out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/wasm\r\n\r\n").as_bytes(),
                ),
                None => out.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
            }
            out.extend_from_slice(content);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--XyZ--\r\n");
        Body::from(out)
    }

    async fn read_parts(parts: &[(&str, Option<&str>, &[u8])]) -> Result<BatchRequest, Refusal> {
        read(body(parts), "XyZ", LIMITS).await
    }

    fn message(result: Result<BatchRequest, Refusal>) -> String {
        match result {
            Err(Refusal::Malformed(m)) => m,
            Err(other) => panic!("not a 400: {other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[tokio::test]
    async fn a_file_fills_the_variable_the_map_names() {
        let request = read_parts(&[
            ("operations", None, UPLOAD.as_bytes()),
            ("map", None, br#"{"0":["variables.file"]}"#),
            ("0", Some("plugin.wasm"), b"\0asm-bytes"),
        ])
        .await
        .unwrap()
        .into_single()
        .unwrap();
        assert_eq!(request.uploads.len(), 1);
        assert_eq!(request.uploads[0].filename, "plugin.wasm");
        assert_eq!(request.uploads[0].content_type.as_deref(), Some("application/wasm"));
        assert_eq!(&request.uploads[0].content[..], b"\0asm-bytes");
        assert_eq!(request.variables.get("file"), Some(&Value::String(format!("{FILE_MARKER}0"))));

        // In a batch, the path starts with the operation's index.
        let batch = format!("[{UPLOAD},{UPLOAD}]");
        let request = read_parts(&[
            ("operations", None, batch.as_bytes()),
            ("map", None, br#"{"f":["1.variables.file"]}"#),
            ("f", Some("p.wasm"), b"x"),
        ])
        .await
        .unwrap();
        let BatchRequest::Batch(requests) = request else { panic!("a batch") };
        assert_eq!((requests[0].uploads.len(), requests[1].uploads.len()), (0, 1));
    }

    #[tokio::test]
    async fn sizes_are_bounded_part_by_part() {
        let big = vec![b'a'; LIMITS.max_file_bytes + 1];
        let result = read_parts(&[
            ("operations", None, UPLOAD.as_bytes()),
            ("map", None, br#"{"0":["variables.file"]}"#),
            ("0", Some("big.wasm"), &big),
        ])
        .await;
        assert!(matches!(&result, Err(Refusal::TooLarge(m)) if m.contains("the file exceeds 4096")), "{result:?}");

        // `operations` has the JSON limit, not the file's.
        let padded = format!("{}{}", UPLOAD, " ".repeat(LIMITS.max_operations_bytes));
        let result = read_parts(&[("operations", None, padded.as_bytes())]).await;
        assert!(matches!(&result, Err(Refusal::TooLarge(m)) if m.contains("`operations`")), "{result:?}");

        let map = format!(r#"{{"0":["variables.file"],"pad":"{}"}}"#, " ".repeat(MAX_MAP_BYTES));
        let result = read_parts(&[("operations", None, UPLOAD.as_bytes()), ("map", None, map.as_bytes())]).await;
        assert!(matches!(&result, Err(Refusal::TooLarge(m)) if m.contains("`map`")), "{result:?}");

        // The whole body, whatever makes it long (here a preamble before
        // the first part).
        let mut long = vec![b'-'; LIMITS.max_body_bytes() + 1];
        long.extend_from_slice(
            b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{}\r\n--XyZ--\r\n",
        );
        let result = read(Body::from(long), "XyZ", LIMITS).await;
        assert!(matches!(&result, Err(Refusal::TooLarge(m)) if m.contains("multipart body exceeds")), "{result:?}");
    }

    #[tokio::test]
    async fn malformed_requests_say_what_is_wrong() {
        let ops = ("operations", None, UPLOAD.as_bytes());
        let map = ("map", None, &br#"{"0":["variables.file"]}"#[..]);
        let file = ("0", Some("p.wasm"), &b"x"[..]);
        assert!(
            message(read_parts(&[ops, ("map", None, b"[1,2]"), file]).await).contains("`map` must be a JSON object")
        );
        assert!(
            message(read_parts(&[ops, ("map", None, b"{\"0\":\"variables.file\"}"), file]).await).contains("`map`")
        );
        assert!(message(read_parts(&[ops, map]).await).contains("no part `0` was sent"));
        assert!(message(read_parts(&[map, ops, file]).await).contains("`operations` part must come before `map`"));
        assert!(message(read_parts(&[ops, file, map]).await).contains("came before"));
        assert!(
            message(read_parts(&[ops, map, file, ("1", Some("q.wasm"), b"y")]).await).contains("not named in `map`")
        );
        assert!(message(read_parts(&[ops, map, file, file]).await).contains("sent twice"));
        assert!(
            message(
                read_parts(&[ops, ("map", None, br#"{"0":["variables.file"],"1":["variables.other"]}"#), file]).await
            )
            .contains("at most 1 may be sent")
        );
        assert!(
            message(read_parts(&[ops, ("map", None, br#"{"0":["variables.nope"]}"#), file]).await)
                .contains("names no variable")
        );
        assert!(
            message(read_parts(&[("operations", None, b"{nope"), map, file]).await).contains("not a GraphQL request")
        );
        assert!(message(read_parts(&[map, file]).await).contains("before `map`"));
        assert!(message(read_parts(&[]).await).contains("`operations` part is missing"));
        assert!(message(read_parts(&[ops]).await).contains("`map` part is missing"));
        // Not multipart at all.
        let result = read(Body::from("{\"query\":\"{ __typename }\"}"), "XyZ", LIMITS).await;
        assert!(matches!(result, Err(Refusal::Malformed(_))), "{result:?}");

        // A file marker smuggled in by the client.
        let smuggled = r##"{"query":"mutation($file: Upload!) { uploadPlugin(file: $file, kind: PRICING, name: \"p\") { plugin { name } } }","variables":{"file":"#__graphql_file__:x"}}"##;
        assert!(
            message(read_parts(&[("operations", None, smuggled.as_bytes()), map, file]).await)
                .contains("may not contain")
        );
    }

    #[test]
    fn the_file_marker_is_found_anywhere_in_a_request() {
        let request = |query: &str, variables: serde_json::Value| {
            async_graphql::Request::new(query).variables(async_graphql::Variables::from_json(variables))
        };
        assert!(!names_a_file(&request("{ __typename }", serde_json::json!({ "a": "b" }))));
        assert!(names_a_file(&request("{ f(file: \"#__graphql_file__:0\") }", serde_json::json!({}))));
        assert!(names_a_file(&request(
            "{ __typename }",
            serde_json::json!({ "a": [{ "b": "#__graphql_file__:abc" }] })
        )));
    }
}
