//! Merchant plugins through the real interfaces: uploads, lifecycle and dry
//! runs over gRPC (`PluginService`, as the gateway calls it), carts and
//! orders over GraphQL, with real components built from
//! `plugins/testing/hostile-plugin` and hostile binaries written here.

use std::time::Duration;

use polyscale_host::plugins::{PluginConfig, PluginLimits};
use polyscale_proto::plugin::v1 as pb;
use polyscale_proto::plugin::v1::plugin_service_client::PluginServiceClient;
use polyscale_proto::types::v1::Money;
use serde_json::{Value, json};
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::app::{Backend, TestApp};
use crate::orders::{add_to_cart, customer, place, product_id, spawn};

const PLUGIN: &[u8] = polyscale_test_components::HOSTILE_PLUGIN;

async fn client(app: &TestApp) -> PluginServiceClient<Channel> {
    PluginServiceClient::new(app.channel().await).max_encoding_message_size(64 << 20)
}

fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn plugin_ref(name: &str) -> Option<pb::PluginRef> {
    Some(pb::PluginRef { merchant_id: String::new(), name: name.into() })
}

async fn upload(
    app: &TestApp,
    token: &str,
    name: &str,
    wasm: &[u8],
    activate: bool,
) -> Result<pb::Plugin, tonic::Status> {
    let request = pb::UploadPluginRequest {
        plugin: plugin_ref(name),
        kind: pb::PluginKind::Pricing as i32,
        wasm: wasm.to_vec(),
        activate,
    };
    client(app).await.upload_plugin(authed(token, request)).await.map(|r| r.into_inner())
}

async fn configure(app: &TestApp, token: &str, name: &str, settings: &[(&str, &str)], skip: bool) -> pb::Plugin {
    let request = pb::ConfigurePluginRequest {
        plugin: plugin_ref(name),
        replace_settings: true,
        settings: settings.iter().map(|(n, v)| pb::Setting { name: (*n).into(), value: (*v).into() }).collect(),
        on_failure: if skip { pb::FailureMode::Skip } else { pb::FailureMode::Block } as i32,
        position: None,
    };
    client(app).await.configure_plugin(authed(token, request)).await.expect("configure").into_inner()
}

async fn preview(
    app: &TestApp,
    token: &str,
    name: &str,
    version: &str,
    settings: &[(&str, &str)],
) -> pb::PreviewResult {
    let request = pb::PreviewPluginRequest {
        plugin: plugin_ref(name),
        version: version.into(),
        step: pb::Step::Cart as i32,
        lines: vec![
            pb::PreviewLine {
                product_id: "p1".into(),
                quantity: 2,
                unit_price: Some(Money { amount: 1000, currency: "USD".into() }),
                discount: 0,
            },
            pb::PreviewLine {
                product_id: "p2".into(),
                quantity: 1,
                unit_price: Some(Money { amount: 500, currency: "USD".into() }),
                discount: 0,
            },
        ],
        settings: settings.iter().map(|(n, v)| pb::Setting { name: (*n).into(), value: (*v).into() }).collect(),
        override_settings: !settings.is_empty(),
        kind: pb::PluginKind::Pricing as i32,
    };
    client(app).await.preview_plugin(authed(token, request)).await.expect("preview").into_inner()
}

/// The reason of a refused call: the field violation's, else ErrorInfo's.
fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let details = status.get_error_details();
    if let Some(bad) = details.bad_request()
        && let Some(v) = bad.field_violations.first()
    {
        return v.reason.clone();
    }
    details.error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

/// The same component with a custom section appended: another binary
/// (another version), the same behaviour.
fn variant(wasm: &[u8], tag: &str) -> Vec<u8> {
    let name = b"polyscale-test";
    let payload_len = 1 + name.len() + tag.len();
    let mut out = wasm.to_vec();
    out.push(0); // custom section
    out.push(payload_len as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(tag.as_bytes());
    out
}

async fn cart_total(app: &TestApp, token: &str) -> Value {
    let data = app
        .graphql_as(
            Some(token),
            "{ cart { totals { amount currency } lines { unitPrice { amount } lineTotal { amount } } } }",
            json!({}),
        )
        .await;
    data["cart"].clone()
}

// --- a plugin's life ----------------------------------------------------------

async fn a_pricing_plugin_prices_carts_and_orders_until_rolled_back(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let (_, merchant) = app.merchant().await;
    let product = product_id(&app, "Lamp", 1_000, 50).await;
    let buyer = customer(&app, "buyer@test.example").await;
    add_to_cart(&app, &buyer, &product, 2).await;
    assert_eq!(cart_total(&app, &buyer).await["totals"], json!([{ "amount": 2000, "currency": "USD" }]));

    // Uploaded, not live: the cart is unchanged; a dry run shows the effect.
    let plugin = upload(&app, &merchant, "ten-off", PLUGIN, false).await.expect("upload");
    assert!(!plugin.enabled);
    assert_eq!(plugin.active_version, "");
    let v1 = plugin.versions[0].sha256.clone();
    assert_eq!(v1.len(), 64);
    assert_eq!(plugin.versions[0].size_bytes, PLUGIN.len() as u64);
    assert_eq!(cart_total(&app, &buyer).await["totals"][0]["amount"], 2000);
    let dry = preview(&app, &merchant, "ten-off", &v1, &[]).await;
    assert_eq!(dry.failure, "", "{dry:?}");
    assert_eq!(dry.lines.iter().map(|l| l.line_total.as_ref().unwrap().amount).collect::<Vec<_>>(), vec![1800, 450]);
    assert!(dry.fuel_used > 0 && dry.duration_us > 0 && dry.peak_memory_bytes > 0, "{dry:?}");
    assert_eq!(dry.logs, "2 lines, 10% off\n");
    assert_eq!(cart_total(&app, &buyer).await["totals"][0]["amount"], 2000, "a dry run activates nothing");

    // Live: carts and orders carry the plugin's prices.
    let plugin = client(&app)
        .await
        .activate_plugin(authed(
            &merchant,
            pb::ActivatePluginRequest { plugin: plugin_ref("ten-off"), version: v1[..12].into() },
        ))
        .await
        .expect("activate")
        .into_inner();
    assert!(plugin.enabled);
    assert_eq!(plugin.active_version, v1);
    assert_eq!(cart_total(&app, &buyer).await["lines"][0]["lineTotal"]["amount"], 1800);

    // A second version (settings: 25 % off) goes live; rollback restores
    // the first one's prices.
    configure(&app, &merchant, "ten-off", &[("percent", "25")], false).await;
    assert_eq!(cart_total(&app, &buyer).await["totals"][0]["amount"], 1500);
    let v2 = upload(&app, &merchant, "ten-off", &variant(PLUGIN, "v2"), true).await.expect("upload v2");
    assert_ne!(v2.active_version, v1);
    assert_eq!(v2.versions.len(), 2);
    let back = client(&app)
        .await
        .rollback_plugin(authed(&merchant, plugin_ref("ten-off").unwrap()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.active_version, v1);

    let placed = place(&app, &buyer, "order-1").await;
    assert_eq!(placed["userErrors"], json!([]), "{placed}");
    assert_eq!(placed["order"]["total"]["amount"], 1500, "{placed}");
    assert_eq!(placed["order"]["lines"][0]["lineTotal"]["amount"], 1500);

    // Disabled: catalog prices again.
    add_to_cart(&app, &buyer, &product, 1).await;
    assert_eq!(cart_total(&app, &buyer).await["totals"][0]["amount"], 750);
    client(&app).await.disable_plugin(authed(&merchant, plugin_ref("ten-off").unwrap())).await.unwrap();
    assert_eq!(cart_total(&app, &buyer).await["totals"][0]["amount"], 1000);

    // The merchant's statistics count the calls.
    let stats =
        client(&app).await.get_plugin(authed(&merchant, plugin_ref("ten-off").unwrap())).await.unwrap().into_inner();
    let stats = stats.stats.unwrap();
    assert!(stats.calls >= 4, "{stats:?}");
    assert!(stats.fuel_p99 > 0 && stats.duration_p99_ms > 0.0, "{stats:?}");
    assert!(stats.failures.is_empty(), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pricing_plugin_prices_carts_and_orders_until_rolled_back_sqlite() {
    a_pricing_plugin_prices_carts_and_orders_until_rolled_back(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pricing_plugin_prices_carts_and_orders_until_rolled_back_postgres() {
    a_pricing_plugin_prices_carts_and_orders_until_rolled_back(Backend::Postgres).await;
}

// --- hostile uploads ------------------------------------------------------------

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid WAT")
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_uploads_are_refused_with_a_clear_reason() {
    let app = spawn(Backend::Sqlite, |_| {}).await;
    let (_, merchant) = app.merchant().await;
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("garbage", b"\0asm this is not a component at all".to_vec(), "INVALID_COMPONENT", "valid"),
        ("empty", Vec::new(), "INVALID_COMPONENT", "valid"),
        ("core-module", wat("(module)"), "INVALID_COMPONENT", ""),
        ("oversized", vec![0u8; (32 << 20) + 1], "TOO_LARGE", "limit"),
        (
            "wrong-world",
            polyscale_test_components::FAULTY_PRODUCT.to_vec(),
            "INCOMPATIBLE_COMPONENT",
            "polyscale:commerce",
        ),
        (
            "sockets",
            wat(
                r#"(component (import "wasi:sockets/tcp@0.2.0" (instance)) (instance $i) (export "polyscale:plugin/pricer@1.0.0" (instance $i)))"#,
            ),
            "INCOMPATIBLE_COMPONENT",
            "wasi:sockets/tcp@0.2.0",
        ),
        (
            "http",
            wat(r#"(component (import "wasi:http/outgoing-handler@0.2.0" (instance)))"#),
            "INCOMPATIBLE_COMPONENT",
            "wasi:http",
        ),
        (
            "future-version",
            wat(r#"(component (instance $i) (export "polyscale:plugin/pricer@2.0.0" (instance $i)))"#),
            "INCOMPATIBLE_COMPONENT",
            "another version",
        ),
        ("no-export", wat("(component)"), "INCOMPATIBLE_COMPONENT", "does not export `polyscale:plugin/pricer@1.0.0`"),
    ];
    for (name, wasm, code, says) in cases {
        let status = upload(&app, &merchant, name, &wasm, true).await.expect_err(name);
        assert_eq!(status.code(), Code::InvalidArgument, "{name}: {status:?}");
        assert_eq!(reason(&status), code, "{name}: {status:?}");
        assert!(status.message().contains(says), "{name}: {}", status.message());
    }
    // Nothing of it was stored.
    let listed = client(&app).await.list_plugins(authed(&merchant, pb::ListPluginsRequest::default())).await.unwrap();
    assert!(listed.into_inner().plugins.is_empty());
    // A validation plugin name cannot take a pricing binary, and names are
    // checked.
    let status = upload(&app, &merchant, "Bad Name", PLUGIN, false).await.unwrap_err();
    assert_eq!(reason(&status), "INVALID_NAME");
}

// --- hostile plugins at call time ---------------------------------------------

async fn contained(app: &TestApp, merchant: &str, mode: &str) -> pb::PreviewResult {
    preview(app, merchant, "hostile", "", &[("mode", mode)]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_plugins_cost_only_their_own_call() {
    let app = spawn(Backend::Sqlite, |_| {}).await;
    let (_, merchant) = app.merchant().await;
    upload(&app, &merchant, "hostile", PLUGIN, true).await.expect("upload");
    for (mode, failure, says) in [
        ("loop", "fuel", "fuel"),
        ("memory", "memory", "memory"),
        ("recursion", "trap", "stack"),
        ("flood", "invalid_output", "the limit is"),
        ("trap", "trap", "trapped"),
        ("negative", "invalid_output", "negative unit price"),
        ("over-discount", "invalid_output", "exceed its total"),
        ("bad-line", "invalid_output", "targets line 999"),
    ] {
        let result = contained(&app, &merchant, mode).await;
        assert_eq!(result.failure, failure, "{mode}: {result:?}");
        assert!(result.error.contains(says), "{mode}: {}", result.error);
        assert!(result.adjustments.is_empty() && result.lines.is_empty(), "{mode}");
    }

    // Logs are kept to the budget; clocks and randomness are fixed.
    let flood = contained(&app, &merchant, "log-flood").await;
    assert_eq!(flood.failure, "");
    assert!(flood.logs_truncated && flood.logs.len() <= 1024, "{}", flood.logs.len());
    let a = contained(&app, &merchant, "clock").await;
    let b = contained(&app, &merchant, "clock").await;
    assert!(a.logs.starts_with("clock 0 hash "), "{}", a.logs);
    assert_eq!(a.logs, b.logs, "deterministic");
    assert!(a.logs.contains("stdout works"), "{}", a.logs);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_plugin_refuses_checkout_unless_told_to_skip() {
    let app = spawn(Backend::Sqlite, |_| {}).await;
    let (_, merchant) = app.merchant().await;
    let product = product_id(&app, "Lamp", 1_000, 50).await;
    let buyer = customer(&app, "buyer@test.example").await;
    add_to_cart(&app, &buyer, &product, 1).await;
    upload(&app, &merchant, "hostile", PLUGIN, true).await.expect("upload");

    configure(&app, &merchant, "hostile", &[("mode", "trap")], false).await;
    let refused = place(&app, &buyer, "k1").await;
    assert_eq!(crate::orders::codes(&refused), vec!["PRICING_FAILED"], "{refused}");
    assert_eq!(crate::orders::stock(&app, &product).await, 50, "nothing reserved");

    configure(&app, &merchant, "hostile", &[("mode", "loop")], true).await;
    let placed = place(&app, &buyer, "k2").await;
    assert_eq!(placed["userErrors"], json!([]), "{placed}");
    assert_eq!(placed["order"]["total"]["amount"], 1000, "skipped: the catalog price");

    let stats =
        client(&app).await.get_plugin(authed(&merchant, plugin_ref("hostile").unwrap())).await.unwrap().into_inner();
    let failures: Vec<(String, u64)> = stats.stats.unwrap().failures.into_iter().map(|f| (f.kind, f.count)).collect();
    assert!(failures.iter().any(|(k, n)| k == "trap" && *n >= 1), "{failures:?}");
    assert!(failures.iter().any(|(k, n)| k == "fuel" && *n >= 1), "{failures:?}");
}

// --- who may do what -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn merchants_reach_only_their_own_plugins() {
    let app = spawn(Backend::Sqlite, |_| {}).await;
    let (a_id, a) = app.merchant().await;
    let (_, b) = app.new_merchant("other-merchant@test.example").await;
    let shopper = customer(&app, "shopper@test.example").await;
    let plugin = upload(&app, &a, "mine", PLUGIN, true).await.expect("upload");
    let theirs = |name: &str| Some(pb::PluginRef { merchant_id: a_id.clone(), name: name.into() });

    let mut c = client(&app).await;
    let not_found = |s: tonic::Status| assert_eq!(s.code(), Code::NotFound, "{s:?}");
    not_found(c.get_plugin(authed(&b, theirs("mine").unwrap())).await.unwrap_err());
    not_found(c.rollback_plugin(authed(&b, theirs("mine").unwrap())).await.unwrap_err());
    not_found(c.disable_plugin(authed(&b, theirs("mine").unwrap())).await.unwrap_err());
    not_found(
        c.activate_plugin(authed(
            &b,
            pb::ActivatePluginRequest { plugin: theirs("mine"), version: plugin.active_version.clone() },
        ))
        .await
        .unwrap_err(),
    );
    not_found(
        c.upload_plugin(authed(
            &b,
            pb::UploadPluginRequest { plugin: theirs("mine"), kind: 1, wasm: PLUGIN.to_vec(), activate: true },
        ))
        .await
        .unwrap_err(),
    );
    not_found(
        c.preview_plugin(authed(&b, pb::PreviewPluginRequest { plugin: theirs("mine"), ..Default::default() }))
            .await
            .unwrap_err(),
    );
    not_found(c.list_plugins(authed(&b, pb::ListPluginsRequest { merchant_id: a_id.clone() })).await.unwrap_err());
    // B's own namespace does not see A's plugin either.
    not_found(c.get_plugin(authed(&b, plugin_ref("mine").unwrap())).await.unwrap_err());

    let denied = c.list_plugins(authed(&shopper, pb::ListPluginsRequest::default())).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let anonymous = c.list_plugins(pb::ListPluginsRequest::default()).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    // An admin acts on anyone's.
    let admin = app.admin_token().await;
    let seen = c.get_plugin(authed(&admin, theirs("mine").unwrap())).await.expect("admin reads").into_inner();
    assert_eq!(seen.merchant_id, a_id);
    c.disable_plugin(authed(&admin, theirs("mine").unwrap())).await.expect("admin disables");
}

// --- live changes under load ----------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn activations_during_cart_pricing_fail_no_request() {
    let app = spawn(Backend::Sqlite, |o| {
        o.plugins = Some(PluginConfig { directory_ttl: Duration::ZERO, ..PluginConfig::default() });
    })
    .await;
    let (_, merchant) = app.merchant().await;
    let product = product_id(&app, "Lamp", 1_000, 50).await;
    let buyer = customer(&app, "buyer@test.example").await;
    add_to_cart(&app, &buyer, &product, 1).await;
    let versions: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..3 {
            let plugin = upload(&app, &merchant, "live", &variant(PLUGIN, &format!("v{i}")), true).await.unwrap();
            v.push(plugin.active_version);
        }
        v
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (url, buyer, stop) = (app.url(), buyer.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let (mut ok, mut failed) = (0u32, Vec::new());
                while !stop.is_cancelled() {
                    let body: Value = client
                        .post(&url)
                        .bearer_auth(&buyer)
                        .json(&json!({ "query": "{ cart { totals { amount } } }" }))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    match body["data"]["cart"]["totals"][0]["amount"].as_i64() {
                        Some(900) => ok += 1,
                        _ => failed.push(body),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    for i in 0..10 {
        let version = versions[i % versions.len()].clone();
        client(&app)
            .await
            .activate_plugin(authed(&merchant, pb::ActivatePluginRequest { plugin: plugin_ref("live"), version }))
            .await
            .expect("activate");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let mut total = 0;
    for reader in readers {
        let (ok, failed) = reader.await.unwrap();
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        total += ok;
    }
    assert!(total > 10, "{total} cart reads during the activations");
    println!("{total} cart reads, 0 failed, during 10 activations");
}

// --- limits are configuration ---------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn limits_follow_the_configuration() {
    let app = spawn(Backend::Sqlite, |o| {
        o.plugins = Some(PluginConfig {
            limits: PluginLimits { max_input_bytes: 200, ..PluginLimits::default() },
            ..PluginConfig::default()
        });
    })
    .await;
    let (_, merchant) = app.merchant().await;
    upload(&app, &merchant, "small", PLUGIN, true).await.unwrap();
    let result = preview(&app, &merchant, "small", "", &[]).await;
    assert_eq!(result.failure, "", "two lines fit: {result:?}");
    let big = preview(&app, &merchant, "small", "", &[("padding", &"x".repeat(300))]).await;
    assert_eq!(big.failure, "input_too_large", "{big:?}");
}

// --- the example plugins, every language --------------------------------------

/// The examples `cargo xtask plugin-examples` built (it runs before the
/// tests and says where in `PLUGIN_EXAMPLES_DIR`).
fn examples() -> Vec<(String, String, Vec<u8>)> {
    let dir = std::env::var("PLUGIN_EXAMPLES_DIR").expect(
        "PLUGIN_EXAMPLES_DIR is unset: run the tests with `cargo xtask test`, which builds the example plugins",
    );
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(std::path::Path::new(&dir).join("manifest.json")).expect("manifest.json"),
    )
    .expect("a JSON manifest");
    manifest["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap().to_string();
            let wasm = std::fs::read(p["path"].as_str().unwrap()).expect("the built example");
            (name, p["kind"].as_str().unwrap().to_string(), wasm)
        })
        .collect()
}

/// What each pricing example makes of 5 units at 10.00, by its defaults.
fn expected_line_total(example: &str) -> i64 {
    match example {
        "rust-tiered-discount" => 4_500, // 10 % off from 5 units
        "python-bogo" => 3_000,          // 2 of 5 free
        "c-price-ending" => 4_995,       // 9.99 each
        other => panic!("no expectation for example {other}"),
    }
}

async fn graphql_upload(app: &TestApp, token: &str, name: &str, kind: &str, wasm: &[u8]) -> Value {
    let operations = json!({
        "query": "mutation($file: Upload!, $kind: PluginKind!, $name: String!) { uploadPlugin(file: $file, kind: $kind, name: $name) { plugin { name versions { sha256 active } } userErrors { field code message } } }",
        "variables": { "file": null, "kind": kind, "name": name },
    });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.file"] }).to_string())
        .part("0", reqwest::multipart::Part::bytes(wasm.to_vec()).file_name(format!("{name}.wasm")));
    let response = reqwest::Client::new().post(app.url()).bearer_auth(token).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    let payload = body["data"]["uploadPlugin"].clone();
    assert_eq!(payload["userErrors"], json!([]), "{name}: {payload}");
    payload
}

async fn gql(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    app.graphql_as(Some(token), query, variables).await
}

async fn every_example_language_runs_end_to_end(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let (_, merchant) = app.merchant().await;
    let examples = examples();
    let languages: Vec<&str> = examples.iter().map(|(n, _, _)| n.split('-').next().unwrap()).collect();
    for language in ["rust", "python", "js", "c"] {
        assert!(languages.contains(&language), "no {language} example in {languages:?}");
    }
    for (i, (example, kind, wasm)) in examples.iter().enumerate() {
        let product = product_id(&app, &format!("Item {i}"), 1_000, 100).await;
        let buyer = customer(&app, &format!("buyer-{i}@test.example")).await;
        let quantity = if kind == "validation" { 11 } else { 5 };
        add_to_cart(&app, &buyer, &product, quantity).await;
        let name = format!("ex-{example}");
        match kind.as_str() {
            "pricing" => {
                // v1: a plain 10 % discount, live; v2: the example.
                upload(&app, &merchant, &name, PLUGIN, true).await.expect("v1");
                assert_eq!(cart_total(&app, &buyer).await["totals"][0]["amount"], 4_500, "{example} v1");
                let uploaded = graphql_upload(&app, &merchant, &name, "PRICING", wasm).await;
                let v2 = uploaded["plugin"]["versions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["active"] == false)
                    .unwrap()["sha256"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let dry = gql(
                    &app,
                    &merchant,
                    "mutation($name: String!, $v: String) { previewPricing(name: $name, version: $v, lines: [{ productId: \"p\", quantity: 5, unitPrice: { amount: 1000, currency: \"USD\" } }]) { preview { failure error lines { lineTotal { amount } } fuelUsed peakMemoryBytes durationUs logs } userErrors { code message } } }",
                    json!({ "name": name, "v": v2 }),
                )
                .await;
                let preview = &dry["previewPricing"]["preview"];
                assert_eq!(preview["failure"], Value::Null, "{example}: {dry}");
                assert_eq!(
                    preview["lines"][0]["lineTotal"]["amount"],
                    expected_line_total(example),
                    "{example}: {dry}"
                );
                println!(
                    "{example}: {} bytes, dry run fuel {} memory {} time {} µs",
                    wasm.len(),
                    preview["fuelUsed"],
                    preview["peakMemoryBytes"],
                    preview["durationUs"]
                );
                let live = gql(&app, &merchant, "mutation($name: String!, $v: String!) { activatePlugin(name: $name, version: $v) { plugin { activeVersion } userErrors { code message } } }", json!({ "name": name, "v": v2 })).await;
                assert_eq!(live["activatePlugin"]["plugin"]["activeVersion"], v2.as_str(), "{live}");
                let cart = gql(
                    &app,
                    &buyer,
                    "{ cart { lines { lineTotal { amount } discount { amount } notes } totals { amount } } }",
                    json!({}),
                )
                .await;
                assert_eq!(
                    cart["cart"]["lines"][0]["lineTotal"]["amount"],
                    expected_line_total(example),
                    "{example}: {cart}"
                );
                let placed = place(&app, &buyer, &format!("key-{i}")).await;
                assert_eq!(placed["userErrors"], json!([]), "{example}: {placed}");
                assert_eq!(placed["order"]["total"]["amount"], expected_line_total(example), "{example}: {placed}");
                // The order keeps its price; rollback restores v1's for the next cart.
                add_to_cart(&app, &buyer, &product, quantity).await;
                let back = gql(&app, &merchant, "mutation($name: String!) { rollbackPlugin(name: $name) { plugin { activeVersion } userErrors { code } } }", json!({ "name": name })).await;
                assert_eq!(back["rollbackPlugin"]["userErrors"], json!([]), "{back}");
                assert_eq!(cart_total(&app, &buyer).await["totals"][0]["amount"], 4_500, "{example}: rolled back");
                gql(
                    &app,
                    &merchant,
                    "mutation($name: String!) { disablePlugin(name: $name) { userErrors { code } } }",
                    json!({ "name": name }),
                )
                .await;
            }
            "validation" => {
                let uploaded = graphql_upload(&app, &merchant, &name, "VALIDATION", wasm).await;
                let v1 = uploaded["plugin"]["versions"][0]["sha256"].as_str().unwrap().to_string();
                // 11 units at 10.00: over max-quantity's 10; for min-order,
                // a minimum above the cart's value.
                let settings = if example.contains("min-order") {
                    json!([{ "name": "minimum", "value": "20000" }])
                } else {
                    json!([])
                };
                gql(&app, &merchant, "mutation($name: String!, $s: [PluginSettingInput!]) { configurePlugin(name: $name, settings: $s) { userErrors { code } } }", json!({ "name": name, "s": settings })).await;
                let dry = gql(
                    &app,
                    &merchant,
                    "mutation($name: String!, $v: String) { previewValidation(name: $name, version: $v, lines: [{ productId: \"p\", quantity: 11, unitPrice: { amount: 1000, currency: \"USD\" } }]) { preview { failure error violations { code target } fuelUsed peakMemoryBytes durationUs } userErrors { code message } } }",
                    json!({ "name": name, "v": v1 }),
                )
                .await;
                let preview = &dry["previewValidation"]["preview"];
                assert_eq!(preview["failure"], Value::Null, "{example}: {dry}");
                let code = preview["violations"][0]["code"].as_str().unwrap_or_default().to_string();
                assert!(!code.is_empty(), "{example}: {dry}");
                println!(
                    "{example}: {} bytes, dry run fuel {} memory {} time {} µs",
                    wasm.len(),
                    preview["fuelUsed"],
                    preview["peakMemoryBytes"],
                    preview["durationUs"]
                );
                gql(&app, &merchant, "mutation($name: String!, $v: String!) { activatePlugin(name: $name, version: $v) { userErrors { code } } }", json!({ "name": name, "v": v1 })).await;
                let cart = gql(&app, &buyer, "{ cart { issues { code field blocking } } }", json!({})).await;
                assert_eq!(cart["cart"]["issues"][0]["code"], code.as_str(), "{example}: {cart}");
                assert_eq!(cart["cart"]["issues"][0]["blocking"], true);
                let refused = place(&app, &buyer, &format!("key-{i}")).await;
                assert_eq!(crate::orders::codes(&refused), vec![code.clone()], "{example}: {refused}");
                gql(
                    &app,
                    &merchant,
                    "mutation($name: String!) { disablePlugin(name: $name) { userErrors { code } } }",
                    json!({ "name": name }),
                )
                .await;
                let placed = place(&app, &buyer, &format!("key-{i}-after")).await;
                assert_eq!(placed["userErrors"], json!([]), "{example}: {placed}");
            }
            other => panic!("unknown kind {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_language_runs_end_to_end_sqlite() {
    every_example_language_runs_end_to_end(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_language_runs_end_to_end_postgres() {
    every_example_language_runs_end_to_end(Backend::Postgres).await;
}
