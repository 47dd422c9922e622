//! A `dns:///` service URL follows its name: replicas that appear in the
//! answer get calls, replicas that leave it stop getting them. Two real
//! gRPC servers on loopback; only the name's answers are the test's.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A gRPC server whose health service knows only `service` (another
/// replica answers NOT_FOUND for it): which replica answered is visible.
async fn replica(service: &'static str) -> SocketAddr {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status(service, tonic_health::ServingStatus::Serving).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _reporter = reporter;
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap()
    });
    addr
}

/// Of `n` calls, how many reached replica `a`.
async fn reached_a(client: &mut HealthClient<tonic::transport::Channel>, n: usize) -> usize {
    let mut a = 0;
    for _ in 0..n {
        let request = HealthCheckRequest { service: "a".into() };
        match client.check(request).await {
            Ok(_) => a += 1,
            Err(status) => assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}"),
        }
    }
    a
}

/// Calls until every answer for 40 calls in a row satisfies `done`, or 5 s.
async fn until(client: &mut HealthClient<tonic::transport::Channel>, done: impl Fn(usize) -> bool) -> usize {
    let started = tokio::time::Instant::now();
    loop {
        let a = reached_a(client, 40).await;
        if done(a) || started.elapsed() > Duration::from_secs(5) {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_name_adds_and_drops_replicas() {
    let (a, b) = (replica("a").await, replica("b").await);
    let answer = Arc::new(Mutex::new(vec![a]));
    let asked = Arc::new(Mutex::new(Vec::<(String, u16)>::new()));
    let (answer_, asked_) = (answer.clone(), asked.clone());
    let channel = polyscale_proto::channel::following(
        &["dns:///product.test:50051".to_string()],
        Some(Duration::from_secs(2)),
        Duration::from_millis(50),
        move |host, port| {
            asked_.lock().unwrap().push((host, port));
            let addrs = answer_.lock().unwrap().clone();
            async move { Ok(addrs) }
        },
    )
    .unwrap();
    let mut client = HealthClient::new(channel);

    // One address: every call reaches it.
    assert_eq!(until(&mut client, |a| a == 40).await, 40);
    assert_eq!(asked.lock().unwrap()[0], ("product.test".to_string(), 50051));

    // A second replica appears: calls spread over both.
    *answer.lock().unwrap() = vec![a, b];
    let spread = until(&mut client, |a| a > 0 && a < 40).await;
    assert!(spread > 0 && spread < 40, "40 calls over two replicas reached `a` {spread} times");

    // The first leaves the answer: no call reaches it any more.
    *answer.lock().unwrap() = vec![b];
    assert_eq!(until(&mut client, |a| a == 0).await, 0);

    // A resolver failure, or an empty answer, keeps the replicas held.
    *answer.lock().unwrap() = vec![];
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(reached_a(&mut client, 20).await, 0, "calls still go to `b`");
}

#[tokio::test]
async fn fixed_and_followed_urls_are_checked() {
    let lookup = |_: String, _: u16| async { Ok(vec![]) };
    for bad in ["dns:///no-port", "dns:///host:port", "dns:///:1"] {
        let error =
            polyscale_proto::channel::following(&[bad.to_string()], None, Duration::from_secs(1), lookup).unwrap_err();
        assert_eq!(error.endpoint, bad);
    }
    assert!(polyscale_proto::channel::lazy(&[], None).is_err());
}
