//! Plugin uploads through the gateway alone, over HTTP: what the gateway
//! decides by itself (who may send a multipart request or a
//! `PUT /plugins/{name}`, sizes, malformed requests, rate limits) and how
//! it forwards the rest.
//!
//! Behind it stands a recording stand-in for `PluginService` (the real one
//! lives in the order service's host; the end-to-end tests are
//! `cli/tests/it/plugin_api.rs`). The stand-in counts every call, so a
//! refusal "before the service" is proven by a count of zero.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use polyscale_auth::{KeyPair, Role, Signer};
use polyscale_gateway::{Gateway, GatewayConfig, Rate, RateLimits};
use polyscale_proto::plugin::v1 as pb;
use polyscale_proto::plugin::v1::plugin_service_server::{PluginService, PluginServiceServer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

const CAP: usize = polyscale_gateway::MIN_PLUGIN_UPLOAD_BYTES;

/// What the stand-in saw.
#[derive(Default)]
struct Seen {
    calls: usize,
    uploads: Vec<(pb::UploadPluginRequest, Option<String>)>,
    previews: Vec<pb::PreviewPluginRequest>,
}

#[derive(Clone, Default)]
struct StandIn(Arc<Mutex<Seen>>);

fn reason(code: tonic::Code, reason: &str, message: &str) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, "polyscale", std::collections::HashMap::new()),
    )
}

fn plugin(name: &str, versions: &[&str], active: Option<&str>) -> pb::Plugin {
    pb::Plugin {
        merchant_id: "merchant-1".into(),
        name: name.into(),
        kind: pb::PluginKind::Pricing as i32,
        enabled: active.is_some(),
        active_version: active.unwrap_or_default().into(),
        position: 0,
        on_failure: pb::FailureMode::Block as i32,
        settings: vec![pb::Setting { name: "tiers".into(), value: "5:10".into() }],
        versions: versions
            .iter()
            .map(|v| pb::PluginVersion {
                sha256: v.to_string(),
                size_bytes: 8,
                uploaded_by: "merchant-1".into(),
                uploaded_at_ms: 1_700_000_000_000,
                active: Some(*v) == active,
            })
            .collect(),
        stats: Some(pb::PluginStats {
            calls: 3_000_000_000,
            failures: vec![pb::FailureCount { kind: "fuel".into(), count: 2 }],
            duration_p50_ms: 0.5,
            duration_p99_ms: 2.5,
            fuel_p99: 12_345,
        }),
        updated_at_ms: 1_700_000_000_000,
    }
}

impl StandIn {
    fn calls(&self) -> usize {
        self.0.lock().unwrap().calls
    }

    fn count(&self) {
        self.0.lock().unwrap().calls += 1;
    }
}

#[tonic::async_trait]
impl PluginService for StandIn {
    async fn upload_plugin(&self, request: Request<pb::UploadPluginRequest>) -> Result<Response<pb::Plugin>, Status> {
        self.count();
        let authorization = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
        let message = request.into_inner();
        let name = message.plugin.clone().unwrap_or_default().name;
        let sha = hex::encode(Sha256::digest(&message.wasm));
        let activate = message.activate;
        let valid = message.wasm.starts_with(b"\0asm");
        self.0.lock().unwrap().uploads.push((message, authorization));
        if !valid {
            return Err(reason(tonic::Code::InvalidArgument, "INVALID_COMPONENT", "not a WebAssembly component"));
        }
        match name.as_str() {
            "someone-elses" => Err(Status::not_found("no such plugin")),
            "second" => Ok(Response::new(plugin(&name, &[&sha, "older"], activate.then_some(sha.as_str())))),
            _ => Ok(Response::new(plugin(&name, &[&sha], activate.then_some(sha.as_str())))),
        }
    }

    async fn list_plugins(
        &self,
        _: Request<pb::ListPluginsRequest>,
    ) -> Result<Response<pb::ListPluginsResponse>, Status> {
        self.count();
        Ok(Response::new(pb::ListPluginsResponse { plugins: vec![plugin("tiers", &["v2", "v1"], Some("v2"))] }))
    }

    async fn get_plugin(&self, request: Request<pb::PluginRef>) -> Result<Response<pb::Plugin>, Status> {
        self.count();
        match request.into_inner().name.as_str() {
            "tiers" => Ok(Response::new(plugin("tiers", &["v2", "v1"], Some("v2")))),
            _ => Err(Status::not_found("no such plugin")),
        }
    }

    async fn activate_plugin(
        &self,
        request: Request<pb::ActivatePluginRequest>,
    ) -> Result<Response<pb::Plugin>, Status> {
        self.count();
        let version = request.into_inner().version;
        Ok(Response::new(plugin("tiers", &["v2", "v1"], Some(&version))))
    }

    async fn rollback_plugin(&self, _: Request<pb::PluginRef>) -> Result<Response<pb::Plugin>, Status> {
        self.count();
        Err(reason(tonic::Code::FailedPrecondition, "NO_PREVIOUS_VERSION", "nothing to go back to"))
    }

    async fn disable_plugin(&self, _: Request<pb::PluginRef>) -> Result<Response<pb::Plugin>, Status> {
        self.count();
        Err(Status::permission_denied("merchants and admins only"))
    }

    async fn configure_plugin(
        &self,
        request: Request<pb::ConfigurePluginRequest>,
    ) -> Result<Response<pb::Plugin>, Status> {
        self.count();
        let message = request.into_inner();
        let mut answer = plugin("tiers", &["v1"], Some("v1"));
        if message.replace_settings {
            answer.settings = message.settings;
        }
        if let Some(position) = message.position {
            answer.position = position;
        }
        if message.on_failure != 0 {
            answer.on_failure = message.on_failure;
        }
        Ok(Response::new(answer))
    }

    async fn preview_plugin(
        &self,
        request: Request<pb::PreviewPluginRequest>,
    ) -> Result<Response<pb::PreviewResult>, Status> {
        self.count();
        let message = request.into_inner();
        self.0.lock().unwrap().previews.push(message.clone());
        if message.kind != pb::PluginKind::Pricing as i32 {
            return Err(reason(tonic::Code::InvalidArgument, "WRONG_KIND", "`tiers` is a pricing plugin"));
        }
        let line = &message.lines[0];
        let price = line.unit_price.clone().unwrap_or_default();
        Ok(Response::new(pb::PreviewResult {
            adjustments: vec![pb::Adjustment {
                line: 0,
                change: Some(pb::adjustment::Change::Discount(100)),
                message: "10% off from 5 units".into(),
            }],
            lines: vec![pb::PricedLine {
                product_id: line.product_id.clone(),
                quantity: line.quantity,
                unit_price: Some(price.clone()),
                discount: 100,
                line_total: Some(polyscale_proto::types::v1::Money {
                    amount: price.amount * line.quantity - 100,
                    currency: price.currency.clone(),
                }),
            }],
            fuel_used: 4_000_000_000,
            peak_memory_bytes: 1 << 20,
            duration_us: 120,
            logs: "priced 1 line\n".into(),
            version: "v2".into(),
            ..Default::default()
        }))
    }
}

struct Harness {
    url: String,
    addr: std::net::SocketAddr,
    client: reqwest::Client,
    stand_in: StandIn,
    merchant: String,
    customer: String,
}

impl Harness {
    async fn start() -> Self {
        Self::start_with(RateLimits::OFF).await
    }

    async fn start_with(rate_limits: RateLimits) -> Self {
        let stand_in = StandIn::default();
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_addr = grpc.local_addr().unwrap();
        let service = PluginServiceServer::new(stand_in.clone()).max_decoding_message_size(CAP + (2 << 20));
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc))
                .await
                .unwrap()
        });

        let keys = KeyPair::generate().unwrap();
        let signer = Signer::new(&keys, Duration::from_secs(600)).unwrap();
        let merchant = signer.issue("merchant-1", "s1", &[Role::Customer, Role::Merchant]).unwrap().0;
        let customer = signer.issue("customer-1", "s2", &[Role::Customer]).unwrap().0;
        let mut config = GatewayConfig::new(format!("http://{grpc_addr}"));
        config.token_public_key = Some(keys.public_pem().to_string());
        config.rate_limits = rate_limits;
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = http.local_addr().unwrap();
        let url = format!("http://{addr}");
        let gateway = Gateway::build(config).unwrap();
        tokio::spawn(async move { gateway.run(http, std::future::pending()).await.unwrap() });
        Self { url, addr, client: reqwest::Client::new(), stand_in, merchant, customer }
    }

    /// POSTs a multipart body, asking for
    /// `application/graphql-response+json` (request errors are 400s);
    /// returns the status, the headers and the JSON answer.
    async fn multipart(&self, token: Option<&str>, body: Vec<u8>) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.url))
            .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
            .header("accept", "application/graphql-response+json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.json().await.unwrap())
    }

    async fn graphql(&self, token: &str, query: &str, variables: Value) -> Value {
        let response = self
            .client
            .post(format!("{}/graphql", self.url))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.json().await.unwrap()
    }

    async fn put(&self, token: Option<&str>, path: &str, body: Vec<u8>) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request =
            self.client.put(format!("{}{path}", self.url)).header("content-type", "application/wasm").body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.json().await.unwrap())
    }
}

const BOUNDARY: &str = "polyscale-test-boundary";
const UPLOAD: &str = "mutation($file: Upload!, $name: String!) { uploadPlugin(file: $file, kind: PRICING, name: $name, activate: true) { plugin { name kind activeVersion versions { sha256 sizeBytes active } } userErrors { field code message } } }";

/// A multipart body: `(name, filename, content)` parts, in order.
fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, filename, content) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/wasm\r\n\r\n"
            ),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
        };
        out.extend_from_slice(disposition.as_bytes());
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

fn operations(name: &str) -> Vec<u8> {
    json!({ "query": UPLOAD, "variables": { "file": null, "name": name } }).to_string().into_bytes()
}

const MAP: &[u8] = br#"{"0":["variables.file"]}"#;

fn component(size: usize) -> Vec<u8> {
    let mut wasm = b"\0asm\x0d\0\x01\0".to_vec();
    wasm.resize(size.max(8), 0x42);
    wasm
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_default()
}

fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_merchant_uploads_through_multipart_and_the_bytes_arrive_whole() {
    let h = Harness::start().await;
    // As large as allowed: the gRPC message has room for it.
    let wasm = component(CAP);
    let body =
        form(&[("operations", None, &operations("tiers")), ("map", None, MAP), ("0", Some("tiers.wasm"), &wasm)]);
    let (status, _, answer) = h.multipart(Some(&h.merchant), body).await;
    assert_eq!(status, 200, "{answer}");
    let payload = &answer["data"]["uploadPlugin"];
    assert_eq!(payload["userErrors"], json!([]), "{answer}");
    let sha = hex::encode(Sha256::digest(&wasm));
    assert_eq!(payload["plugin"]["activeVersion"], json!(sha));
    assert_eq!(payload["plugin"]["kind"], json!("PRICING"));

    let seen = h.stand_in.0.lock().unwrap();
    let (upload, authorization) = &seen.uploads[0];
    assert_eq!(upload.wasm.len(), CAP);
    assert_eq!(hex::encode(Sha256::digest(&upload.wasm)), sha);
    assert_eq!(upload.kind, pb::PluginKind::Pricing as i32);
    assert!(upload.activate);
    assert_eq!(upload.plugin.as_ref().unwrap().name, "tiers");
    assert_eq!(authorization.as_deref(), Some(format!("Bearer {}", h.merchant).as_str()));
}

#[tokio::test]
async fn service_refusals_of_an_upload_are_user_errors() {
    let h = Harness::start().await;
    let body =
        form(&[("operations", None, &operations("tiers")), ("map", None, MAP), ("0", Some("x.wasm"), b"not wasm")]);
    let (status, _, answer) = h.multipart(Some(&h.merchant), body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["data"]["uploadPlugin"],
        json!({ "plugin": null, "userErrors": [{ "field": ["file"], "code": "INVALID_COMPONENT", "message": "not a WebAssembly component" }] })
    );
}

#[tokio::test]
async fn oversized_multipart_is_refused_before_the_service() {
    let h = Harness::start().await;
    // The file over the cap, the body within the whole limit: refused
    // while the file is read.
    // (The gateway answers and closes without reading the rest, so the
    // client may see the connection reset instead: status 0. The stand-in's
    // count below proves the file never went further either way.)
    let wasm = component(CAP + 1);
    let body = form(&[("operations", None, &operations("tiers")), ("map", None, MAP), ("0", Some("big.wasm"), &wasm)]);
    let multipart = [
        format!("authorization: Bearer {}", h.merchant),
        format!("content-type: multipart/form-data; boundary={BOUNDARY}"),
    ];
    let (status, answer) = polyscale_testkit::http::send_refused(h.addr, "POST /graphql", &multipart, body).await;
    assert!(status == 413 || status == 0, "{status} {answer}");
    if status == 413 {
        assert!(answer.contains(&format!("the file exceeds {CAP} bytes")), "{answer}");
        assert!(answer.contains("BAD_REQUEST"), "{answer}");
    }

    // A declared length over the whole limit: refused on the headers,
    // before the body is asked for.
    let (status, answer) =
        polyscale_testkit::http::refused_before_body(h.addr, "POST /graphql", &multipart, CAP + (3 << 20)).await;
    assert_eq!(status, 413, "{answer}");

    // `operations` keeps the JSON limit (1 MiB), however large the file
    // limit is.
    let padded = json!({ "query": UPLOAD, "variables": { "file": null, "name": "tiers", "pad": "x".repeat(2 << 20) } });
    let body = form(&[
        ("operations", None, padded.to_string().as_bytes()),
        ("map", None, MAP),
        ("0", Some("x.wasm"), b"\0asm"),
    ]);
    let (status, _, answer) = h.multipart(Some(&h.merchant), body).await;
    assert_eq!(status, 413, "{answer}");
    assert!(message(&answer).contains("`operations`"), "{answer}");

    assert_eq!(h.stand_in.calls(), 0);
}

#[tokio::test]
async fn only_merchants_and_admins_may_send_multipart() {
    let h = Harness::start().await;
    let body =
        || form(&[("operations", None, &operations("tiers")), ("map", None, MAP), ("0", Some("t.wasm"), b"\0asm")]);
    let (status, headers, answer) = h.multipart(None, body()).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(code(&answer), "UNAUTHENTICATED");
    assert_eq!(headers.get("www-authenticate").unwrap(), "Bearer");

    let (status, _, answer) = h.multipart(Some(&h.customer), body()).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(code(&answer), "FORBIDDEN");

    let (status, _, answer) = h.multipart(Some("not-a-token"), body()).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(h.stand_in.calls(), 0);

    // Other types keep their answers: 415 without executing.
    let response = h
        .client
        .post(format!("{}/graphql", h.url))
        .bearer_auth(&h.merchant)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("query={__typename}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
}

#[tokio::test]
async fn malformed_multipart_is_a_clear_400() {
    let h = Harness::start().await;
    let ops = operations("tiers");
    let file = ("0", Some("t.wasm"), &b"\0asm"[..]);
    for (parts, says) in [
        (
            vec![("operations", None, &ops[..]), ("map", None, &b"{\"0\": \"variables.file\"}"[..]), file],
            "`map` must be a JSON object",
        ),
        (vec![("operations", None, &ops[..]), ("map", None, &b"not json"[..]), file], "`map` must be a JSON object"),
        (
            vec![("operations", None, &ops[..]), ("map", None, &br#"{"0":["variables.nothing"]}"#[..]), file],
            "names no variable",
        ),
        (vec![("operations", None, &ops[..]), ("map", None, MAP)], "no part `0` was sent"),
        (
            vec![
                ("operations", None, &ops[..]),
                ("map", None, &br#"{"0":["variables.file"],"1":["variables.name"]}"#[..]),
                file,
                ("1", Some("u.wasm"), &b"\0asm"[..]),
            ],
            "at most 1 may be sent",
        ),
        (
            vec![("operations", None, &ops[..]), ("map", None, MAP), file, ("1", Some("u.wasm"), &b"\0asm"[..])],
            "the part `1` is not named in `map`",
        ),
        (vec![("map", None, MAP), ("operations", None, &ops[..]), file], "must come before `map`"),
        (vec![("operations", None, &b"{\"query\": 1}"[..]), ("map", None, MAP), file], "not a GraphQL request"),
    ] {
        let (status, _, answer) = h.multipart(Some(&h.merchant), form(&parts)).await;
        assert_eq!(status, 400, "{says}: {answer}");
        assert_eq!(code(&answer), "BAD_REQUEST", "{answer}");
        assert!(message(&answer).contains(says), "{says}: {answer}");
    }
    // Not multipart at all, and no boundary.
    let (status, _, answer) = h.multipart(Some(&h.merchant), b"{}".to_vec()).await;
    assert_eq!(status, 400, "{answer}");
    let response = h
        .client
        .post(format!("{}/graphql", h.url))
        .bearer_auth(&h.merchant)
        .header("content-type", "multipart/form-data")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(h.stand_in.calls(), 0);
}

#[tokio::test]
async fn a_file_cannot_be_named_without_being_sent() {
    let h = Harness::start().await;
    // async-graphql's own marker, sent in JSON: refused, not a panic.
    for variables in
        [json!({ "file": "#__graphql_file__:0", "name": "t" }), json!({ "file": "#__graphql_file__:x", "name": "t" })]
    {
        let response = h
            .client
            .post(format!("{}/graphql", h.url))
            .bearer_auth(&h.merchant)
            .json(&json!({ "query": UPLOAD, "variables": variables }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400);
        let answer: Value = response.json().await.unwrap();
        assert!(message(&answer).contains("files come only in multipart requests"), "{answer}");
    }
    // In a query literal too.
    let literal =
        "mutation { uploadPlugin(file: \"#__graphql_file__:0\", kind: PRICING, name: \"t\") { userErrors { code } } }";
    let response = h
        .client
        .post(format!("{}/graphql", h.url))
        .bearer_auth(&h.merchant)
        .json(&json!({ "query": literal }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    // A string where the file goes: a type error, as any other.
    let response = h
        .client
        .post(format!("{}/graphql", h.url))
        .bearer_auth(&h.merchant)
        .json(&json!({ "query": UPLOAD, "variables": { "file": "plugin.wasm", "name": "t" } }))
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    assert!(answer["errors"].is_array(), "{answer}");
    assert_eq!(h.stand_in.calls(), 0);
}

#[tokio::test]
async fn query_limits_apply_to_multipart_requests() {
    let h = Harness::start().await;
    // 31 aliases, over the limit of 30.
    let aliases: String = (0..31).map(|i| format!("a{i}: __typename ")).collect();
    let ops = json!({ "query": format!("{{ {aliases} }}"), "variables": {} }).to_string();
    let body = form(&[("operations", None, ops.as_bytes()), ("map", None, b"{}")]);
    let (status, _, answer) = h.multipart(Some(&h.merchant), body).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(code(&answer), "QUERY_TOO_COMPLEX", "{answer}");
    assert_eq!(h.stand_in.calls(), 0);
}

#[tokio::test]
async fn put_uploads_a_component_and_answers_json() {
    let h = Harness::start().await;
    let wasm = component(1000);
    let sha = hex::encode(Sha256::digest(&wasm));
    let (status, _, answer) = h.put(Some(&h.merchant), "/plugins/tiers?kind=pricing&activate=true", wasm.clone()).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        answer,
        json!({ "merchantId": "merchant-1", "name": "tiers", "kind": "pricing", "version": sha, "sizeBytes": 8, "active": true })
    );
    // A plugin with other versions: 200.
    let (status, _, answer) = h.put(Some(&h.merchant), "/plugins/second?kind=pricing", wasm.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["active"], json!(false));
    {
        let seen = h.stand_in.0.lock().unwrap();
        assert_eq!(seen.uploads[0].0.wasm, wasm);
        assert!(seen.uploads[0].0.activate);
        assert!(!seen.uploads[1].0.activate);
        assert_eq!(seen.uploads[0].1.as_deref(), Some(format!("Bearer {}", h.merchant).as_str()));
    }

    // The service's refusals keep their codes.
    let (status, _, answer) = h.put(Some(&h.merchant), "/plugins/tiers?kind=pricing", b"garbage".to_vec()).await;
    assert_eq!((status, &answer["error"]["code"]), (400, &json!("INVALID_COMPONENT")), "{answer}");
    let (status, _, answer) = h.put(Some(&h.merchant), "/plugins/someone-elses?kind=pricing", wasm.clone()).await;
    assert_eq!((status, &answer["error"]["code"]), (404, &json!("NOT_FOUND")), "{answer}");
}

#[tokio::test]
async fn put_refusals_before_the_service() {
    let h = Harness::start().await;
    let wasm = component(100);
    let (status, headers, answer) = h.put(None, "/plugins/tiers?kind=pricing", wasm.clone()).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"]["code"], json!("UNAUTHENTICATED"));
    assert_eq!(headers.get("www-authenticate").unwrap(), "Bearer");

    let (status, _, answer) = h.put(Some(&h.customer), "/plugins/tiers?kind=pricing", wasm.clone()).await;
    assert_eq!((status, &answer["error"]["code"]), (403, &json!("FORBIDDEN")), "{answer}");

    for path in ["/plugins/tiers?kind=discount", "/plugins/tiers", "/plugins/tiers?kind=pricing&activate=yes"] {
        let (status, _, answer) = h.put(Some(&h.merchant), path, wasm.clone()).await;
        assert_eq!((status, &answer["error"]["code"]), (400, &json!("BAD_REQUEST")), "{path}: {answer}");
    }

    // One byte over, declared: refused on the headers, before the body is
    // asked for (a client that sends it anyway may see the reset).
    let headers = [format!("authorization: Bearer {}", h.merchant), "content-type: application/wasm".to_string()];
    let (status, answer) =
        polyscale_testkit::http::refused_before_body(h.addr, "PUT /plugins/tiers?kind=pricing", &headers, CAP + 1)
            .await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("\"TOO_LARGE\""), "{answer}");

    let response = h
        .client
        .put(format!("{}/plugins/tiers?kind=pricing", h.url))
        .bearer_auth(&h.merchant)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    assert_eq!(h.stand_in.calls(), 0);
}

#[tokio::test]
async fn uploads_are_rate_limited_per_address() {
    let limits = RateLimits { plugin: Rate { per_minute: 1, burst: 1 }, ..RateLimits::OFF };
    let h = Harness::start_with(limits).await;
    let (status, _, _) = h.put(Some(&h.merchant), "/plugins/tiers?kind=pricing", component(100)).await;
    assert_eq!(status, 201);
    let (status, headers, answer) = h.put(Some(&h.merchant), "/plugins/tiers?kind=pricing", component(100)).await;
    assert_eq!((status, &answer["error"]["code"]), (429, &json!("RATE_LIMITED")), "{answer}");
    assert!(headers.get("retry-after").is_some());
    // Multipart pays from the same budget, before its body is read.
    let body = form(&[("operations", None, &operations("tiers")), ("map", None, MAP), ("0", Some("t.wasm"), b"\0asm")]);
    let (status, headers, answer) = h.multipart(Some(&h.merchant), body).await;
    assert_eq!((status, code(&answer)), (429, "RATE_LIMITED"), "{answer}");
    assert!(headers.get("retry-after").is_some());
    assert_eq!(h.stand_in.calls(), 1);
}

#[tokio::test]
async fn the_plugin_api_over_graphql() {
    let h = Harness::start().await;
    let fields = "merchantId name kind enabled activeVersion position onFailure settings { name value } versions { sha256 sizeBytes uploadedBy uploadedAt active } stats { calls failures { kind count } durationP50Ms durationP99Ms fuelP99 } updatedAt";
    let answer = h.graphql(&h.merchant, &format!("{{ plugins {{ {fields} }} plugin(name: \"tiers\") {{ name }} missing: plugin(name: \"nope\") {{ name }} }}"), json!({})).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    let listed = &answer["data"]["plugins"][0];
    assert_eq!(listed["kind"], json!("PRICING"));
    assert_eq!(listed["onFailure"], json!("BLOCK"));
    assert_eq!(listed["activeVersion"], json!("v2"));
    assert_eq!(
        listed["versions"][0],
        json!({ "sha256": "v2", "sizeBytes": 8, "uploadedBy": "merchant-1", "uploadedAt": "2023-11-14T22:13:20+00:00", "active": true })
    );
    // Counts past 2^31 come through whole.
    assert_eq!(listed["stats"]["calls"], json!(3_000_000_000u64));
    assert_eq!(listed["stats"]["failures"], json!([{ "kind": "fuel", "count": 2 }]));
    assert_eq!(answer["data"]["plugin"]["name"], json!("tiers"));
    assert_eq!(answer["data"]["missing"], Value::Null);

    let answer = h
        .graphql(
            &h.merchant,
            "mutation { rollbackPlugin(name: \"tiers\") { plugin { name } userErrors { field code message } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        answer["data"]["rollbackPlugin"]["userErrors"],
        json!([{ "field": null, "code": "NO_PREVIOUS_VERSION", "message": "nothing to go back to" }])
    );

    let answer = h
        .graphql(
            &h.merchant,
            "mutation { disablePlugin(name: \"tiers\") { plugin { name } userErrors { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");

    let answer = h.graphql(&h.merchant, "mutation { activatePlugin(name: \"tiers\", version: \"v1\") { plugin { activeVersion } userErrors { code } } }", json!({})).await;
    assert_eq!(answer["data"]["activatePlugin"]["plugin"]["activeVersion"], json!("v1"), "{answer}");

    let answer = h.graphql(&h.merchant, "mutation { configurePlugin(name: \"tiers\", settings: [{ name: \"tiers\", value: \"3:5\" }], onFailure: SKIP, position: 2) { plugin { settings { name value } onFailure position } userErrors { code } } }", json!({})).await;
    assert_eq!(
        answer["data"]["configurePlugin"]["plugin"],
        json!({ "settings": [{ "name": "tiers", "value": "3:5" }], "onFailure": "SKIP", "position": 2 }),
        "{answer}"
    );

    let preview = "mutation($lines: [PreviewLineInput!]!) { previewPricing(name: \"tiers\", lines: $lines) { preview { failure error adjustments { line unitPrice { amount } discount { amount currency formatted } message } lines { productId quantity unitPrice { amount } discount { amount currency } lineTotal { amount } } fuelUsed peakMemoryBytes durationUs logs logsTruncated version } userErrors { field code message } } }";
    let lines = json!([{ "productId": "p-1", "quantity": 5, "unitPrice": { "amount": 200, "currency": "EUR" } }]);
    let answer = h.graphql(&h.merchant, preview, json!({ "lines": lines })).await;
    let result = &answer["data"]["previewPricing"]["preview"];
    assert_eq!(result["failure"], Value::Null, "{answer}");
    assert_eq!(
        result["adjustments"],
        json!([{ "line": 0, "unitPrice": null, "discount": { "amount": 100, "currency": "EUR", "formatted": "1.00 EUR" }, "message": "10% off from 5 units" }])
    );
    assert_eq!(result["lines"][0]["discount"], json!({ "amount": 100, "currency": "EUR" }));
    assert_eq!(result["lines"][0]["lineTotal"], json!({ "amount": 900 }));
    assert_eq!(result["fuelUsed"], json!(4_000_000_000u64));
    {
        let seen = h.stand_in.0.lock().unwrap();
        let sent = seen.previews.last().unwrap();
        assert_eq!(
            (sent.kind, sent.step, sent.override_settings),
            (pb::PluginKind::Pricing as i32, pb::Step::Cart as i32, false)
        );
        assert_eq!(sent.lines[0].discount, 0);
    }

    let validation = preview.replace("previewPricing", "previewValidation");
    let answer = h.graphql(&h.merchant, &validation, json!({ "lines": lines })).await;
    assert_eq!(
        answer["data"]["previewValidation"],
        json!({ "preview": null, "userErrors": [{ "field": ["name"], "code": "WRONG_KIND", "message": "`tiers` is a pricing plugin" }] })
    );
    let seen = h.stand_in.0.lock().unwrap();
    assert_eq!(seen.previews.last().unwrap().kind, pb::PluginKind::Validation as i32);
}

#[tokio::test]
async fn plugin_fields_need_a_token() {
    let h = Harness::start().await;
    let response = h
        .client
        .post(format!("{}/graphql", h.url))
        .json(&json!({ "query": "{ plugins { name } }" }))
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(code(&answer), "UNAUTHENTICATED", "{answer}");
    assert_eq!(h.stand_in.calls(), 0);
}
