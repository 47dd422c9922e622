//! The public plugin API end to end: GraphQL (with the multipart upload)
//! and `PUT /plugins/{name}` at the gateway, `PluginService` in the order
//! service's host, on the real embedded system.
//!
//! The first tests need only the gateway (what it refuses by itself, and
//! that the service then never hears of it: the calls through a
//! [`FaultyLink`](crate::app::FaultyLink) are counted); the rest need the
//! host's plugin service and a real component.

use serde_json::{Value, json};

use crate::app::{Backend, Options, TestApp, create_product, product_input, variant};
use crate::orders::{add_to_cart, customer};

/// The tiered-discount example pricing plugin (Rust).
fn tiered_discount() -> Vec<u8> {
    polyscale_test_components::TIERED_DISCOUNT_PLUGIN.to_vec()
}

const PLUGIN_SERVICE: &str = "/polyscale.plugin.v1.PluginService/";
const CAP: usize = polyscale_gateway::MIN_PLUGIN_UPLOAD_BYTES;
const BOUNDARY: &str = "polyscale-plugin-api-test";
const PLUGIN_FIELDS: &str = "merchantId name kind enabled activeVersion position onFailure settings { name value } versions { sha256 sizeBytes uploadedBy uploadedAt active } stats { calls failures { kind count } durationP50Ms durationP99Ms fuelP99 } updatedAt";

/// A system whose gateway reaches the services through a counting link.
async fn spawn() -> TestApp {
    TestApp::spawn_with(Options { faulty_link: true, ..Options::new(Backend::Sqlite) }).await
}

fn plugin_calls(app: &TestApp) -> usize {
    app.link.as_ref().expect("a counting link").calls(PLUGIN_SERVICE)
}

/// A multipart body of `(name, filename, content)` parts, in order.
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

const UPLOAD: &str = "mutation($file: Upload!, $name: String!, $kind: PluginKind!, $activate: Boolean, $merchantId: ID) { uploadPlugin(file: $file, kind: $kind, name: $name, activate: $activate, merchantId: $merchantId) { plugin { name kind enabled activeVersion versions { sha256 sizeBytes active } } userErrors { field code message } } }";
const MAP: &[u8] = br#"{"0":["variables.file"]}"#;

fn upload_form(name: &str, wasm: &[u8], activate: bool) -> Vec<u8> {
    let operations = json!({ "query": UPLOAD, "variables": { "file": null, "name": name, "kind": "PRICING", "activate": activate } });
    form(&[
        ("operations", None, operations.to_string().as_bytes()),
        ("map", None, MAP),
        ("0", Some("plugin.wasm"), wasm),
    ])
}

async fn post_multipart(app: &TestApp, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url())
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// POSTs a multipart body the gateway refuses before taking all of it
/// (see [`polyscale_testkit::http::send_refused`]). Returns the status
/// (`0`: closed without an answer) and the raw answer.
async fn post_refused(app: &TestApp, token: &str, body: Vec<u8>) -> (u16, String) {
    let headers =
        [format!("authorization: Bearer {token}"), format!("content-type: multipart/form-data; boundary={BOUNDARY}")];
    polyscale_testkit::http::send_refused(app.http, "POST /graphql", &headers, body).await
}

async fn put(app: &TestApp, token: Option<&str>, path_and_query: &str, wasm: Vec<u8>) -> (u16, Value) {
    let mut request = app
        .client
        .put(format!("http://{}{path_and_query}", app.http))
        .header("content-type", "application/wasm")
        .body(wasm);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_default()
}

fn error_message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

// ---- What the gateway decides alone ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_and_anonymous_multipart_never_reach_the_service() {
    let app = spawn().await;
    let (_, merchant) = app.merchant().await;

    // The file one byte over the cap: refused while it is read.
    let mut big = b"\0asm".to_vec();
    big.resize(CAP + 1, 0);
    // (The gateway answers 413 and closes without reading the rest; the
    // kernel may then reset the connection before the client has read the
    // answer: status 0. Either way nothing was accepted, and the service
    // count below proves it never saw the file.)
    let (status, body) = post_refused(&app, &merchant, upload_form("tiers", &big, false)).await;
    assert!(status == 413 || status == 0, "{status} {body}");
    if status == 413 {
        assert!(body.contains("the file exceeds"), "{body}");
    }
    // A declared length far over: refused on the headers, before the body
    // is asked for.
    let headers = [
        format!("authorization: Bearer {merchant}"),
        format!("content-type: multipart/form-data; boundary={BOUNDARY}"),
    ];
    let (status, body) =
        polyscale_testkit::http::refused_before_body(app.http, "POST /graphql", &headers, CAP + (4 << 20)).await;
    assert_eq!(status, 413, "{body}");

    // Anonymous: 401 before the body is read.
    let (status, body) = post_multipart(&app, None, upload_form("tiers", b"\0asm", false)).await;
    assert_eq!((status, error_code(&body)), (401, "UNAUTHENTICATED"), "{body}");

    // A customer cannot make the gateway hold a file either.
    let shopper = customer(&app, "shopper@test.example").await;
    let (status, body) = post_multipart(&app, Some(&shopper), upload_form("tiers", b"\0asm", false)).await;
    assert_eq!((status, error_code(&body)), (403, "FORBIDDEN"), "{body}");

    assert_eq!(plugin_calls(&app), 0, "the plugin service was never called");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_multipart_is_a_clear_error() {
    let app = spawn().await;
    let (_, merchant) = app.merchant().await;
    let operations =
        json!({ "query": UPLOAD, "variables": { "file": null, "name": "tiers", "kind": "PRICING" } }).to_string();
    let ops = operations.as_bytes();
    let file = ("0", Some("plugin.wasm"), &b"\0asm"[..]);
    for (parts, says) in [
        (
            vec![("operations", None, ops), ("map", None, &b"[\"variables.file\"]"[..]), file],
            "`map` must be a JSON object",
        ),
        (
            vec![("operations", None, ops), ("map", None, &br#"{"0":["variables.nope"]}"#[..]), file],
            "names no variable",
        ),
        (vec![("operations", None, ops), ("map", None, MAP)], "no part `0` was sent"),
        (
            vec![
                ("operations", None, ops),
                ("map", None, &br#"{"0":["variables.file"],"1":["variables.name"]}"#[..]),
                file,
                ("1", Some("other.wasm"), &b"\0asm"[..]),
            ],
            "at most 1 may be sent",
        ),
        (
            vec![("operations", None, ops), ("map", None, MAP), file, ("1", Some("other.wasm"), &b"\0asm"[..])],
            "not named in `map`",
        ),
    ] {
        let (status, body) = post_multipart(&app, Some(&merchant), form(&parts)).await;
        assert_eq!((status, error_code(&body)), (400, "BAD_REQUEST"), "{says}: {body}");
        assert!(error_message(&body).contains(says), "{says}: {body}");
    }
    assert_eq!(plugin_calls(&app), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_refusals_before_the_service() {
    let app = spawn().await;
    let (_, merchant) = app.merchant().await;
    let (status, body) = put(&app, None, "/plugins/tiers?kind=pricing", b"\0asm".to_vec()).await;
    assert_eq!((status, &body["error"]["code"]), (401, &json!("UNAUTHENTICATED")), "{body}");

    // One byte over the cap, declared: refused on the headers, before the
    // body is asked for.
    let headers = [format!("authorization: Bearer {merchant}"), "content-type: application/wasm".to_string()];
    let (status, body) =
        polyscale_testkit::http::refused_before_body(app.http, "PUT /plugins/tiers?kind=pricing", &headers, CAP + 1)
            .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("TOO_LARGE"), "{body}");

    for query in ["?kind=discount", "", "?kind=pricing&activate=maybe", "?kind=pricing&colour=red"] {
        let (status, body) = put(&app, Some(&merchant), &format!("/plugins/tiers{query}"), b"\0asm".to_vec()).await;
        assert_eq!((status, &body["error"]["code"]), (400, &json!("BAD_REQUEST")), "{query}: {body}");
    }
    assert_eq!(plugin_calls(&app), 0);
}

// ---- With the host's plugin service (these need the host side) ----

/// Uploads over multipart as `token`; returns the `uploadPlugin` payload.
async fn upload(app: &TestApp, token: &str, name: &str, wasm: &[u8], activate: bool) -> Value {
    let (status, body) = post_multipart(app, Some(token), upload_form(name, wasm, activate)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["uploadPlugin"].clone()
}

const PREVIEW: &str = "mutation($name: String!, $version: String, $lines: [PreviewLineInput!]!, $step: CheckoutStep, $settings: [PluginSettingInput!]) { previewPricing(name: $name, version: $version, lines: $lines, step: $step, settings: $settings) { preview { failure error adjustments { line unitPrice { amount currency } discount { amount currency } message } violations { code message target } lines { productId quantity unitPrice { amount currency } discount { amount currency } lineTotal { amount currency } } fuelUsed peakMemoryBytes durationUs logs logsTruncated version } userErrors { field code message } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merchant_manages_a_plugin_through_multipart_and_put() {
    let app = spawn().await;
    let (merchant_id, merchant) = app.merchant().await;
    let first = tiered_discount();
    let second = variant(&first, "second");

    // Upload over multipart, not activated.
    let payload = upload(&app, &merchant, "tiers", &first, false).await;
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    let plugin = &payload["plugin"];
    assert_eq!(plugin["name"], json!("tiers"));
    assert_eq!(plugin["kind"], json!("PRICING"));
    assert_eq!(plugin["activeVersion"], Value::Null);
    assert_eq!(plugin["versions"][0]["sha256"], json!(sha256(&first)));
    assert_eq!(plugin["versions"][0]["sizeBytes"], json!(first.len()));

    // Listed, with every field.
    let data = app.graphql_as(Some(&merchant), &format!("{{ plugins {{ {PLUGIN_FIELDS} }} }}"), json!({})).await;
    let listed = &data["plugins"][0];
    assert_eq!(listed["merchantId"], json!(merchant_id));
    assert_eq!(listed["onFailure"], json!("BLOCK"));
    assert_eq!(listed["versions"][0]["uploadedBy"], json!(merchant_id));

    // Activated by a prefix of its version.
    let data = app
        .graphql_as(
            Some(&merchant),
            "mutation($v: String!) { activatePlugin(name: \"tiers\", version: $v) { plugin { enabled activeVersion } userErrors { code } } }",
            json!({ "v": &sha256(&first)[..12] }),
        )
        .await;
    assert_eq!(data["activatePlugin"]["plugin"], json!({ "enabled": true, "activeVersion": sha256(&first) }));

    // A dry run of the live version.
    let lines = json!([{ "productId": "p-1", "quantity": 10, "unitPrice": { "amount": 1000, "currency": "EUR" } }]);
    let data = app.graphql_as(Some(&merchant), PREVIEW, json!({ "name": "tiers", "lines": lines })).await;
    let preview = &data["previewPricing"]["preview"];
    assert_eq!(data["previewPricing"]["userErrors"], json!([]), "{data}");
    assert_eq!(preview["failure"], Value::Null, "{data}");
    assert_eq!(preview["version"], json!(sha256(&first)));
    assert_eq!(preview["lines"][0]["lineTotal"]["currency"], json!("EUR"));
    let discount = preview["lines"][0]["discount"]["amount"].as_i64().unwrap();
    assert_eq!(preview["lines"][0]["lineTotal"]["amount"].as_i64().unwrap(), 10 * 1000 - discount, "{data}");
    assert!(preview["fuelUsed"].as_u64().unwrap() > 0, "{data}");
    // The wrong kind is refused.
    let data = app
        .graphql_as(
            Some(&merchant),
            &PREVIEW.replace("previewPricing", "previewValidation"),
            json!({ "name": "tiers", "lines": lines }),
        )
        .await;
    assert_eq!(data["previewValidation"]["userErrors"][0]["code"], json!("WRONG_KIND"), "{data}");

    // A second version over PUT, activated: 200 (the plugin existed).
    let (status, body) = put(&app, Some(&merchant), "/plugins/tiers?kind=pricing&activate=true", second.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "merchantId": merchant_id, "name": "tiers", "kind": "pricing", "version": sha256(&second), "sizeBytes": second.len(), "active": true })
    );
    // A new plugin over PUT: 201.
    let (status, body) = put(&app, Some(&merchant), "/plugins/tiers-b?kind=pricing", first.clone()).await;
    assert_eq!((status, &body["active"]), (201, &json!(false)), "{body}");

    // Rollback: back to the first version; nothing before it.
    let rollback =
        "mutation { rollbackPlugin(name: \"tiers\") { plugin { activeVersion } userErrors { field code message } } }";
    let data = app.graphql_as(Some(&merchant), rollback, json!({})).await;
    assert_eq!(data["rollbackPlugin"]["plugin"]["activeVersion"], json!(sha256(&first)), "{data}");
    let data = app.graphql_as(Some(&merchant), rollback, json!({})).await;
    assert_eq!(data["rollbackPlugin"]["userErrors"][0]["code"], json!("NO_PREVIOUS_VERSION"), "{data}");

    // Configure: settings replaced, the failure mode and position set.
    let data = app
        .graphql_as(
            Some(&merchant),
            "mutation { configurePlugin(name: \"tiers\", settings: [{ name: \"tiers\", value: \"5:10\" }], onFailure: SKIP, position: 3) { plugin { settings { name value } onFailure position } userErrors { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["configurePlugin"]["plugin"],
        json!({ "settings": [{ "name": "tiers", "value": "5:10" }], "onFailure": "SKIP", "position": 3 }),
        "{data}"
    );

    // Disable: it stays, not enabled.
    let data = app
        .graphql_as(Some(&merchant), "mutation { disablePlugin(name: \"tiers\") { plugin { enabled versions { sha256 } } userErrors { code } } }", json!({}))
        .await;
    assert_eq!(data["disablePlugin"]["plugin"]["enabled"], json!(false), "{data}");
    assert_eq!(data["disablePlugin"]["plugin"]["versions"].as_array().unwrap().len(), 2);

    // Invalid bytes: a userError on `file`.
    let payload = upload(&app, &merchant, "tiers", b"not a component", false).await;
    assert_eq!(payload["userErrors"][0]["field"], json!(["file"]), "{payload}");
    assert_eq!(payload["userErrors"][0]["code"], json!("INVALID_COMPONENT"), "{payload}");
    let (status, body) = put(&app, Some(&merchant), "/plugins/tiers?kind=pricing", b"not a component".to_vec()).await;
    assert_eq!((status, &body["error"]["code"]), (400, &json!("INVALID_COMPONENT")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn merchants_see_and_act_on_their_own_plugins_only() {
    let app = spawn().await;
    let (a_id, a) = app.new_merchant("a@test.example").await;
    let (_, b) = app.new_merchant("b@test.example").await;
    let wasm = tiered_discount();
    assert_eq!(upload(&app, &a, "tiers", &wasm, true).await["userErrors"], json!([]));

    // B sees nothing of A's, by name or by naming A.
    let data = app.graphql_as(Some(&b), "{ plugins { name } plugin(name: \"tiers\") { name } }", json!({})).await;
    assert_eq!(data, json!({ "plugins": [], "plugin": null }));
    let (_, body) = app
        .post_as(
            Some(&b),
            json!({ "query": "query($m: ID) { plugins(merchantId: $m) { name } }", "variables": { "m": a_id } }),
        )
        .await;
    assert!(body["data"]["plugins"] == json!([]) || body.get("errors").is_some(), "{body}");
    for mutation in [
        "mutation($m: ID) { disablePlugin(name: \"tiers\", merchantId: $m) { plugin { name } userErrors { code } } }",
        "mutation($m: ID) { rollbackPlugin(name: \"tiers\", merchantId: $m) { plugin { name } userErrors { code } } }",
    ] {
        for m in [Value::Null, json!(a_id)] {
            let (_, body) = app.post_as(Some(&b), json!({ "query": mutation, "variables": { "m": m } })).await;
            let payload = body["data"].as_object().and_then(|d| d.values().next()).cloned().unwrap_or(Value::Null);
            let refused = payload["userErrors"][0]["code"] == json!("NOT_FOUND")
                || ["FORBIDDEN", "NOT_FOUND"].contains(&error_code(&body));
            assert!(refused && payload["plugin"].is_null(), "{mutation} as B: {body}");
        }
    }
    let (status, body) =
        put(&app, Some(&b), &format!("/plugins/tiers?kind=pricing&merchantId={a_id}"), wasm.clone()).await;
    assert!(matches!(status, 403 | 404), "{status}: {body}");

    // A's plugin is untouched; an admin sees it by naming A.
    let data = app.graphql_as(Some(&a), "{ plugin(name: \"tiers\") { enabled versions { sha256 } } }", json!({})).await;
    assert_eq!(data["plugin"]["enabled"], json!(true));
    assert_eq!(data["plugin"]["versions"].as_array().unwrap().len(), 1);
    let admin = app.admin_token().await;
    let data = app
        .graphql_as(Some(&admin), "query($m: ID) { plugins(merchantId: $m) { name merchantId } }", json!({ "m": a_id }))
        .await;
    assert_eq!(data["plugins"], json!([{ "name": "tiers", "merchantId": a_id }]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn customers_are_refused() {
    let app = spawn().await;
    let shopper = customer(&app, "shopper@test.example").await;
    let body = app.graphql_err_as(Some(&shopper), "{ plugins { name } }", json!({})).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let body = app
        .graphql_err_as(
            Some(&shopper),
            "mutation { disablePlugin(name: \"tiers\") { plugin { name } userErrors { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let (status, body) = put(&app, Some(&shopper), "/plugins/tiers?kind=pricing", b"\0asm".to_vec()).await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("FORBIDDEN")), "{body}");
    // Without a token at all.
    let body = app.graphql_err("{ plugins { name } }", json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn carts_and_orders_show_what_pricing_plugins_did() {
    let app = spawn().await;
    let (_, merchant) = app.merchant().await;
    let product = create_product(&app, product_input("Widget", 1000, 50)).await;
    let product_id = product["id"].as_str().unwrap();
    let shopper = customer(&app, "shopper@test.example").await;
    let fields = "lines { quantity unitPrice { amount currency } discount { amount currency } notes lineTotal { amount } } issues { merchantId code message field blocking }";

    // No plugin: nothing taken off, no notes, no issues.
    add_to_cart(&app, &shopper, product_id, 10).await;
    let data = app.graphql_as(Some(&shopper), &format!("{{ cart {{ {fields} }} }}"), json!({})).await;
    assert_eq!(data["cart"]["lines"][0]["discount"], json!({ "amount": 0, "currency": "USD" }), "{data}");
    assert_eq!(data["cart"]["lines"][0]["notes"], json!([]));
    assert_eq!(data["cart"]["issues"], json!([]));

    // With the tiered discount live, the line's total is its price less
    // the discount, and the plugin's messages come with it.
    assert_eq!(upload(&app, &merchant, "tiers", &tiered_discount(), true).await["userErrors"], json!([]));
    let data = app.graphql_as(Some(&shopper), &format!("{{ cart {{ {fields} }} }}"), json!({})).await;
    let line = &data["cart"]["lines"][0];
    let discount = line["discount"]["amount"].as_i64().unwrap();
    let unit = line["unitPrice"]["amount"].as_i64().unwrap();
    assert_eq!(line["lineTotal"]["amount"].as_i64().unwrap(), unit * 10 - discount, "{data}");
    assert!(line["notes"].is_array());

    // The order keeps them.
    let placed = crate::orders::place(&app, &shopper, "plugin-order-1").await;
    assert_eq!(placed["userErrors"], json!([]), "{placed}");
    let id = placed["order"]["id"].as_str().unwrap();
    let data = app
        .graphql_as(
            Some(&shopper),
            "query($id: ID!) { order(id: $id) { lines { discount { amount currency } notes lineTotal { amount } } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data["order"]["lines"][0]["discount"]["amount"].as_i64().unwrap(), discount, "{data}");
}
