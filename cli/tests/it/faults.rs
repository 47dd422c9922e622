//! A misbehaving component fails only its own request.

use polyscale_host::components;
use serde_json::{Value, json};

use crate::app::{Backend, TestApp, create_product, product_input};

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_default()
}

async fn get(app: &TestApp, id: &str) -> Value {
    app.post(json!({ "query": "query($id: ID!) { product(id: $id) { id name } }", "variables": { "id": id } })).await.1
}

#[tokio::test]
async fn traps_loops_and_memory_hogs_fail_alone() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let real = app.active_version().await;
    let kept = create_product(&app, product_input("Survivor", 500, 1)).await;
    let faulty = app.deploy(polyscale_test_components::FAULTY_PRODUCT.to_vec()).await;
    assert!(faulty.active);

    // Each failure is a clean error for that request...
    let body = get(&app, "trap").await;
    assert_eq!(code(&body), "INTERNAL_SERVER_ERROR", "{body}");
    assert!(!body.to_string().contains("panicked"), "internal detail leaked: {body}");

    let started = std::time::Instant::now();
    let body = get(&app, "loop").await;
    assert_eq!(code(&body), "TIMEOUT", "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    let body = get(&app, "oom").await;
    assert_eq!(code(&body), "RESOURCE_EXHAUSTED", "{body}");

    // ...while other requests, even concurrent ones, are served.
    let (looping, fine) = tokio::join!(get(&app, "loop"), async {
        let mut answers = Vec::new();
        for i in 0..10 {
            answers.push(get(&app, &format!("ok{i}")).await);
        }
        answers
    });
    assert_eq!(code(&looping), "TIMEOUT");
    for (i, body) in fine.iter().enumerate() {
        assert_eq!(body["data"]["product"]["name"], format!("faulty ok{i}"), "{body}");
    }

    // Rolling back restores the real catalog, data intact.
    app.activate(&real).await;
    let body = get(&app, kept["id"].as_str().unwrap()).await;
    assert_eq!(body["data"]["product"]["name"], "Survivor", "{body}");
}

#[tokio::test]
async fn garbage_and_hostile_components_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let before = app.active_version().await;
    let mut admin = app.admin().await;
    let deploy = |wasm: Vec<u8>| polyscale_proto::admin::v1::DeployComponentRequest {
        component: "product".into(),
        wasm,
        activate: true,
    };

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not wasm", b"hello, world".to_vec(), "not a valid WebAssembly component"),
        ("empty", Vec::new(), "not a valid WebAssembly component"),
        ("a core module", wat::parse_str("(module)").unwrap(), "not a valid WebAssembly component"),
        (
            "truncated",
            components::PRODUCT[..components::PRODUCT.len() / 2].to_vec(),
            "not a valid WebAssembly component",
        ),
        ("exports nothing", wat::parse_str("(component)").unwrap(), "does not fit this service"),
        (
            "imports what the host does not lend",
            wat::parse_str(r#"(component (import "evil:net/socket" (instance)))"#).unwrap(),
            "does not fit this service",
        ),
    ];
    for (what, wasm, expected) in cases {
        let status = admin.deploy_component(deploy(wasm)).await.expect_err(what);
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{what}: {status:?}");
        assert!(status.message().contains(expected), "{what}: {}", status.message());
    }

    // Nothing was stored or activated.
    let versions = admin
        .list_versions(polyscale_proto::admin::v1::ListVersionsRequest { component: "product".into() })
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert_eq!(versions.len(), 1);
    assert_eq!(app.active_version().await, before);
    let data = app.graphql("{ products { totalCount } }", json!({})).await;
    assert_eq!(data["products"]["totalCount"], 0);

    // Unknown slot and unknown version are clear errors too.
    let status = admin
        .deploy_component(polyscale_proto::admin::v1::DeployComponentRequest {
            component: "nope".into(),
            wasm: vec![],
            activate: true,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    let status = admin
        .activate_version(polyscale_proto::admin::v1::ActivateVersionRequest {
            component: "product".into(),
            version: "0000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
}
