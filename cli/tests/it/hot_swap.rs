//! Swapping the product component while requests run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use polyscale_host::components;
use polyscale_proto::metadata::COMPONENT_VERSION;
use polyscale_proto::product::v1 as pb;
use serde_json::json;
use tempfile::TempDir;

use crate::app::{Backend, Options, TestApp, create_product, product_input, variant};

fn served_by<T>(response: &tonic::Response<T>) -> String {
    response.metadata().get(COMPONENT_VERSION).unwrap().to_str().unwrap().to_string()
}

#[tokio::test]
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

#[tokio::test]
async fn calls_in_flight_finish_on_their_version() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let a = app.deploy(variant(polyscale_test_components::FAULTY_PRODUCT, "a")).await;

    // A call that takes ~300 ms starts on version A...
    let mut slow_client = app.products().await;
    let slow = tokio::spawn(async move { slow_client.get_product(pb::GetProductRequest { id: "slow".into() }).await });
    tokio::time::sleep(Duration::from_millis(100)).await;

    // ...B becomes active while it runs...
    let b = app.deploy(variant(polyscale_test_components::FAULTY_PRODUCT, "b")).await;
    let mut client = app.products().await;
    let after = client.get_product(pb::GetProductRequest { id: "quick".into() }).await.unwrap();
    assert_eq!(served_by(&after), b.version);

    // ...and the slow call still completes, on A.
    let slow = slow.await.unwrap().expect("the in-flight call succeeds");
    assert_eq!(served_by(&slow), a.version);
    assert_eq!(slow.get_ref().name, "faulty slow");
}

#[tokio::test]
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
