//! A misbehaving component fails only its own request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use polyscale_host::components;
use polyscale_host::runtime::CallLimits;
use polyscale_proto::product::v1 as pb;
use serde_json::{Value, json};

use crate::app::{Backend, Options, TestApp, create_product, product_input, test_limits};

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_default()
}

async fn get(app: &TestApp, id: &str) -> Value {
    app.post(json!({ "query": "query($id: ID!) { product(id: $id) { id name } }", "variables": { "id": id } })).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
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

/// How many guests loop at once in [`normal_requests_are_served_while_guests_loop`]:
/// as many as the test runtime has worker threads.
const LOOPERS: usize = 4;

/// While guests loop, other requests are served within a stated bound,
/// not merely "eventually" (after the loops hit their deadline).
///
/// `LOOPERS` calls spin in the guest (each first records that it started,
/// so the test knows they are running) under a 10 s deadline. Meanwhile
/// five ordinary requests must each answer within 2 s (they take tens of
/// milliseconds; 2 s is generous for a loaded 2-core machine and still far
/// below the 10 s the loops last), and all of them must be done before any
/// loop has ended.
///
/// Today a looping guest holds its tokio worker thread until the epoch
/// deadline traps it, so as many loops as workers stall the whole server
/// (the probes that wait for the loops to start are not even answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "expected to fail until issue 9 (guests yield to the scheduler)"]
async fn normal_requests_are_served_while_guests_loop() {
    let limits = CallLimits { timeout: Duration::from_secs(10), ..test_limits() };
    let app = Arc::new(TestApp::spawn_with(Options { limits: Some(limits), ..Options::new(Backend::Sqlite) }).await);
    app.deploy(polyscale_test_components::FAULTY_PRODUCT.to_vec()).await;

    let started = Instant::now();
    let loops: Vec<_> = (0..LOOPERS)
        .map(|k| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut client = app.products().await;
                let outcome = client.get_product(pb::GetProductRequest { id: format!("spin:{k}") }).await;
                (outcome.map(|_| ()).map_err(|s| s.code()), started.elapsed())
            })
        })
        .collect();

    // Every loop is running...
    let mut client = app.products().await;
    for k in 0..LOOPERS {
        loop {
            let probe = client.get_product(pb::GetProductRequest { id: format!("probe:started:{k}") }).await.unwrap();
            if probe.get_ref().name == "present" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "loop {k} never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let all_running = started.elapsed();
    assert!(
        loops.iter().all(|l| !l.is_finished()),
        "the loops ended ({all_running:?}) before the server even answered that they had started"
    );

    // ...and ordinary requests are answered promptly meanwhile.
    for i in 0..5 {
        let asked = Instant::now();
        let body = get(&app, &format!("ok{i}")).await;
        let took = asked.elapsed();
        assert_eq!(body["data"]["product"]["name"], format!("faulty ok{i}"), "{body}");
        assert!(took < Duration::from_secs(2), "request {i} took {took:?} while {LOOPERS} guests looped");
    }
    let served_by = started.elapsed();

    for l in loops {
        let (outcome, ended) = l.await.unwrap();
        assert_eq!(outcome, Err(tonic::Code::DeadlineExceeded));
        assert!(ended > served_by, "a loop ended ({ended:?}) before the ordinary requests were served ({served_by:?})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
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

async fn faulty(app: &TestApp, id: &str) -> Result<tonic::Response<pb::Product>, tonic::Status> {
    app.products().await.get_product(pb::GetProductRequest { id: id.into() }).await
}

async fn probe(app: &TestApp, mark: &str) -> String {
    faulty(app, &format!("probe:{mark}")).await.unwrap().into_inner().name
}

/// A component that writes in a transaction and then traps, or loops until
/// its deadline, commits nothing and leaves no lock behind: the next write
/// (by the same component, and by the real one) succeeds at once. On
/// SQLite a leaked transaction holds the database's only write lock, so a
/// leak makes the next write wait out its deadline and fail.
async fn a_failed_call_commits_nothing_and_leaks_no_lock(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let real = app.active_version().await;
    app.deploy(polyscale_test_components::FAULTY_PRODUCT.to_vec()).await;

    let trapped = faulty(&app, "write-then-trap:1").await.unwrap_err();
    assert_eq!(trapped.code(), tonic::Code::Internal, "{trapped:?}");
    let looped = faulty(&app, "write-then-loop:2").await.unwrap_err();
    assert_eq!(looped.code(), tonic::Code::DeadlineExceeded, "{looped:?}");
    assert_eq!(probe(&app, "written:1").await, "absent");
    assert_eq!(probe(&app, "written:2").await, "absent");

    // The next write goes through well within its own 2 s deadline.
    let started = Instant::now();
    faulty(&app, "write:3").await.expect("a write after the failed ones");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(probe(&app, "written:3").await, "present");

    // So does the real component's, and the failed calls left no trace.
    app.activate(&real).await;
    let kept = create_product(&app, product_input("After the crash", 500, 1)).await;
    assert!(kept["id"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_call_commits_nothing_and_leaks_no_lock_on_sqlite() {
    a_failed_call_commits_nothing_and_leaks_no_lock(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_call_commits_nothing_and_leaks_no_lock_on_postgres() {
    a_failed_call_commits_nothing_and_leaks_no_lock(Backend::Postgres).await;
}

/// A version whose migration fails, or whose migration listing traps, is
/// not activated: the old version keeps serving, and the failed migration
/// left nothing half-applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_migration_keeps_the_old_version_active() {
    use polyscale_host::database::{ConnectOptions, Database};
    use polyscale_proto::admin::v1 as admin;

    let app = TestApp::spawn(Backend::Sqlite).await;
    let a = app.deploy(crate::app::variant(polyscale_test_components::FAULTY_PRODUCT, "a")).await;
    let deploy = |tag: &str| admin::DeployComponentRequest {
        component: "product".into(),
        wasm: crate::app::variant(polyscale_test_components::FAULTY_PRODUCT, tag),
        activate: true,
    };

    faulty(&app, "mark:migration:fail").await.unwrap();
    let status = app.admin().await.deploy_component(deploy("b")).await.expect_err("a failing migration");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("migration"), "{status:?}");
    assert_eq!(app.active_version().await, a.version);
    let served = faulty(&app, "still-a").await.unwrap();
    let version = served.metadata().get(polyscale_proto::metadata::COMPONENT_VERSION).unwrap().to_str().unwrap();
    assert_eq!(version, a.version);

    // The migration's first statement was rolled back with the failing one.
    let db = Database::connect(
        &format!("sqlite://{}", app.data_dir.path().join("product.db").display()),
        &ConnectOptions::default(),
    )
    .await
    .unwrap();
    let tables = db
        .query("SELECT name FROM sqlite_master WHERE name = 'faulty_broken'", &[], &Default::default())
        .await
        .unwrap();
    assert!(tables.rows.is_empty(), "a failed migration left a table behind");

    faulty(&app, "mark:migration:trap").await.unwrap();
    let status = app.admin().await.deploy_component(deploy("c")).await.expect_err("a trapping migration listing");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert_eq!(app.active_version().await, a.version);
    assert_eq!(faulty(&app, "still-a-again").await.unwrap().into_inner().name, "faulty still-a-again");
}
