//! Swapping the product component while requests run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use polyscale_host::components;
use polyscale_host::runtime::CallLimits;
use polyscale_proto::admin::v1 as admin;
use polyscale_proto::metadata::COMPONENT_VERSION;
use polyscale_proto::product::v1 as pb;
use serde_json::json;
use tempfile::TempDir;

use crate::app::{Backend, Options, TestApp, create_product, product_input, test_limits, variant};

fn served_by<T>(response: &tonic::Response<T>) -> String {
    response.metadata().get(COMPONENT_VERSION).unwrap().to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swap_under_load_loses_no_request() {
    let app = Arc::new(TestApp::spawn(Backend::Sqlite).await);
    let old = app.active_version().await;
    for i in 0..5 {
        create_product(&app, product_input(&format!("Seed {i}"), 100, 1_000)).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let (_, merchant) = app.merchant().await;
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (app, stop, ok, merchant) = (app.clone(), stop.clone(), ok.clone(), merchant.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (status, body) = if worker % 2 == 0 {
                    app.post(json!({ "query": "{ products(first: 10) { totalCount edges { node { id stock } } } }" })).await
                } else {
                    app.post_as(Some(&merchant), json!({
                        "query": "mutation($input: CreateProductInput!) { createProduct(input: $input) { product { id } userErrors { code } } }",
                        "variables": { "input": product_input(&format!("w{worker}-{n}"), 100, 1) }
                    }))
                    .await
                };
                if status == 200 && body.get("errors").is_none() && body.to_string().contains("\"id\"") {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.push(body);
                }
            }
            failures
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let new = app.deploy(variant(components::PRODUCT, "v2")).await;
    assert_ne!(new.version, old);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let back = app.activate(&old).await;
    assert_eq!(back.version, old);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.unwrap());
    }
    assert!(failures.is_empty(), "{} requests failed during the swaps, e.g. {}", failures.len(), failures[0]);
    assert!(ok.load(Ordering::Relaxed) > 20, "too few requests ran: {}", ok.load(Ordering::Relaxed));

    // Every request after an activation returns is served by that version.
    app.activate(&new.version).await;
    let mut client = app.products().await;
    for _ in 0..5 {
        let response = client.list_products(pb::ListProductsRequest { first: 1, after: None }).await.unwrap();
        assert_eq!(served_by(&response), new.version);
    }
}

/// A call to the faulty component by id (see plugins/testing/faulty-product).
async fn faulty_call(app: &TestApp, id: &str) -> tonic::Response<pb::Product> {
    let mut client = app.products().await;
    client.get_product(pb::GetProductRequest { id: id.into() }).await.unwrap_or_else(|e| panic!("{id}: {e:?}"))
}

/// Polls (through the service) until the faulty component's mark exists.
async fn wait_for_mark(app: &TestApp, mark: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while faulty_call(app, &format!("probe:{mark}")).await.get_ref().name != "present" {
        assert!(std::time::Instant::now() < deadline, "{mark} never appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A call provably in progress on A when B is activated still answers, on
/// A, after the activation has returned; calls made after it get B.
///
/// The in-flight call (`hold:1`) records that it started, then waits until
/// the test releases it, so the order is enforced, not hoped for: it starts
/// on A, the activation of B returns while it is still running, and it
/// answers only once released.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_in_flight_finish_on_their_version() {
    // A long deadline: the held call runs as long as the test needs
    // (compiling B happens before it starts, so seconds at most).
    let limits = CallLimits { timeout: Duration::from_secs(60), ..test_limits() };
    let app = Arc::new(TestApp::spawn_with(Options { limits: Some(limits), ..Options::new(Backend::Sqlite) }).await);
    let a = app.deploy(variant(polyscale_test_components::FAULTY_PRODUCT, "a")).await;
    // B is compiled and stored now, activated later, so the activation
    // itself is only a pointer swap (plus B's empty migrations).
    let b = app
        .admin()
        .await
        .deploy_component(admin::DeployComponentRequest {
            component: "product".into(),
            wasm: variant(polyscale_test_components::FAULTY_PRODUCT, "b"),
            activate: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(app.active_version().await, a.version);

    // The slow call starts on A and is provably in progress.
    let held = {
        let app = app.clone();
        tokio::spawn(async move { faulty_call(&app, "hold:1").await })
    };
    wait_for_mark(&app, "started:1").await;
    assert!(!held.is_finished());

    // B becomes active while it runs; the activation returns at once.
    let activated = app.activate(&b.version).await;
    assert_eq!(activated.version, b.version);
    assert!(!held.is_finished(), "the held call returned before it was released");

    // New calls get B.
    for i in 0..3 {
        assert_eq!(served_by(&faulty_call(&app, &format!("quick{i}")).await), b.version);
    }

    // Released (by a call served by B), the held call answers, on A.
    assert!(!held.is_finished());
    let released = faulty_call(&app, "mark:release:1").await;
    assert_eq!(served_by(&released), b.version);
    let held = tokio::time::timeout(Duration::from_secs(60), held).await.expect("the held call answers").unwrap();
    assert_eq!(held.get_ref().name, "held 1");
    assert_eq!(served_by(&held), a.version, "the in-flight call finished on the version it started on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_active_version_survives_a_restart() {
    let dir = TempDir::new().unwrap();
    let app = TestApp::spawn_with(Options { data_dir: Some(dir), ..Options::new(Backend::Sqlite) }).await;
    let embedded = app.active_version().await;
    create_product(&app, product_input("Persisted", 100, 1)).await;
    let v2 = app.deploy(variant(components::PRODUCT, "persisted")).await;
    let dir = app.stop().await;

    // Same binary, same data: the hot-swapped version comes back.
    let app = TestApp::spawn_with(Options { data_dir: Some(dir), ..Options::new(Backend::Sqlite) }).await;
    assert_eq!(app.active_version().await, v2.version);
    let data = app.graphql("{ products { totalCount } }", json!({})).await;
    assert_eq!(data["products"]["totalCount"], 1);

    // A new built-in version (a new binary) takes over on start.
    let dir = app.stop().await;
    let v3: Arc<[u8]> = variant(components::PRODUCT, "new-binary").into();
    let app = TestApp::spawn_with(Options {
        data_dir: Some(dir),
        product_component: Some(v3),
        ..Options::new(Backend::Sqlite)
    })
    .await;
    let active = app.active_version().await;
    assert_ne!(active, v2.version);
    assert_ne!(active, embedded);
}
