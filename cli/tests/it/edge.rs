//! Abuse at the edge, performed through the public listener: floods of
//! sign-ins and searches, spoofed `X-Forwarded-For`, slowloris clients,
//! connection floods, cross-site "simple" POSTs, and what the public
//! listener must not serve (metrics, introspection when off).

use std::time::{Duration, Instant};

use polyscale_gateway::{Rate, RateLimits, ServerLimits};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::app::{Backend, Options, PASSWORD, TestApp};

const REGISTER: &str =
    "mutation($input: RegisterInput!) { register(input: $input) { account { id } userErrors { code } } }";

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_default()
}

/// POSTs `body` as JSON, as a client whose proxy sent `forwarded_for`.
async fn post_from(app: &TestApp, forwarded_for: &str, body: &Value) -> (u16, Option<u64>, Value) {
    let response = app.client.post(app.url()).header("x-forwarded-for", forwarded_for).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    (status, retry_after, response.json().await.unwrap())
}

fn register(email: &str) -> Value {
    json!({ "query": REGISTER, "variables": { "input": { "email": email, "password": PASSWORD, "displayName": "Flood" } } })
}

fn limited(auth: Rate, search: Rate) -> Options {
    Options { rate_limits: RateLimits { auth, search, ..RateLimits::OFF }, ..Options::new(Backend::Sqlite) }
}

/// A register flood from one address gets 429 with `Retry-After` and
/// `RATE_LIMITED`, and writes nothing; another address goes on as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_register_flood_from_one_address_is_limited_and_another_address_is_not() {
    // 1 a minute, 3 at once.
    let app = TestApp::spawn_with(limited(Rate { per_minute: 1, burst: 3 }, Rate::OFF)).await;
    let flooder = "203.0.113.5";
    for i in 0..3 {
        let (status, _, body) = post_from(&app, flooder, &register(&format!("flood{i}@example.com"))).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["data"]["register"]["account"]["id"].is_string(), "{body}");
    }
    let (status, retry_after, body) = post_from(&app, flooder, &register("flood3@example.com")).await;
    assert_eq!(status, 429, "{body}");
    let retry_after = retry_after.expect("a Retry-After header");
    assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], json!(retry_after), "{body}");
    assert_eq!(body["data"], Value::Null, "{body}");

    // A batch of limited operations is limited as a whole; aliases pay
    // per copy.
    let batch = json!([register("flood4@example.com"), register("flood5@example.com")]);
    let (status, retry_after, body) = post_from(&app, flooder, &batch).await;
    assert_eq!((status, retry_after.is_some()), (429, true), "{body}");
    // With something else to answer, the request is not a 429: the limited
    // operation's error is in its place.
    let mixed = json!([register("flood6@example.com"), { "query": "{ categories { id } }" }]);
    let (status, _, body) = post_from(&app, flooder, &mixed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(code(&body[0]), "RATE_LIMITED", "{body}");
    assert_eq!(body[1]["data"]["categories"], json!([]), "{body}");

    // Another address is unaffected, and the refused registrations wrote
    // nothing (the email is still free).
    let (status, retry_after, body) = post_from(&app, "198.51.100.7", &register("flood3@example.com")).await;
    assert_eq!((status, retry_after), (200, None), "{body}");
    assert_eq!(body["data"]["register"]["userErrors"], json!([]), "{body}");
    assert!(body["data"]["register"]["account"]["id"].is_string(), "{body}");

    // Aliases do not multiply the budget: a fresh address sending four
    // logins in one document gets three sessions and a RATE_LIMITED error
    // for the fourth.
    let logins = (0..4)
        .map(|i| {
            format!(
                "l{i}: login(input: {{ email: \"flood0@example.com\", password: \"{PASSWORD}\" }}) {{ accessToken }}"
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    let (status, _, body) =
        post_from(&app, "198.51.100.8", &json!({ "query": format!("mutation {{ {logins} }}") })).await;
    assert_eq!(status, 200, "{body}");
    for i in 0..3 {
        assert!(body["data"][format!("l{i}")]["accessToken"].is_string(), "{body}");
    }
    assert_eq!((code(&body), &body["errors"][0]["path"]), ("RATE_LIMITED", &json!(["l3"])), "{body}");
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(1), "{body}");
}

/// Searches (free text, facets) are limited per address; plain listing
/// and other addresses are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_flood_is_limited_but_listing_is_not() {
    let app = TestApp::spawn_with(limited(Rate::OFF, Rate { per_minute: 1, burst: 2 })).await;
    let search = json!({ "query": "{ products(query: \"lamp\", first: 5) { totalCount facets { categories { count } prices { count } } } }" });
    for _ in 0..2 {
        let (status, _, body) = post_from(&app, "203.0.113.6", &search).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["products"]["totalCount"], 0, "{body}");
    }
    let (status, retry_after, body) = post_from(&app, "203.0.113.6", &search).await;
    assert_eq!((status, code(&body)), (429, "RATE_LIMITED"), "{body}");
    assert!(retry_after.is_some_and(|s| (1..=60).contains(&s)), "{retry_after:?}");

    let listing = json!({ "query": "{ products(first: 5) { totalCount } }" });
    let (status, _, body) = post_from(&app, "203.0.113.6", &listing).await;
    assert_eq!(status, 200, "listing is cheap and not limited: {body}");
    let (status, _, body) = post_from(&app, "198.51.100.6", &search).await;
    assert_eq!(status, 200, "{body}");
}

/// Behind one trusted proxy the client is the right-most
/// `X-Forwarded-For` entry: what a client writes to the left of it (a
/// different made-up address each time) does not get it a fresh budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spoofed_left_most_forwarded_for_entry_changes_nothing() {
    let app =
        TestApp::spawn_with(Options { trusted_proxy_hops: 1, ..limited(Rate { per_minute: 1, burst: 3 }, Rate::OFF) })
            .await;
    for i in 0..3 {
        let forwarded = format!("192.0.2.{i}, 203.0.113.9");
        let (status, _, body) = post_from(&app, &forwarded, &register(&format!("spoof{i}@example.com"))).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, body) = post_from(&app, "192.0.2.77, 203.0.113.9", &register("spoof3@example.com")).await;
    assert_eq!((status, code(&body)), (429, "RATE_LIMITED"), "a new left-most entry is no new client: {body}");
    // The same made-up entry before another proxy-seen address: that
    // client's own budget.
    let (status, _, body) = post_from(&app, "192.0.2.77, 198.51.100.9", &register("spoof3@example.com")).await;
    assert_eq!(status, 200, "{body}");
}

/// Writes `bytes` one a second until the server hangs up; returns how long
/// that took and how many bytes were sent.
async fn trickle(stream: &mut TcpStream, bytes: &[u8], give_up: Duration) -> (Duration, usize) {
    let start = Instant::now();
    let mut sent = 0;
    let mut buf = [0u8; 1024];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => {
                match read {
                    Ok(0) | Err(_) => return (start.elapsed(), sent),
                    Ok(n) => panic!("the server answered a request it never fully got: {:?}", String::from_utf8_lossy(&buf[..n])),
                }
            }
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                assert!(start.elapsed() < give_up, "still connected after {give_up:?} ({sent} bytes sent)");
                if sent < bytes.len() && stream.write_all(&bytes[sent..=sent]).await.is_err() {
                    return (start.elapsed(), sent);
                }
                sent += 1;
            }
        }
    }
}

/// Reads one HTTP response whose body ends with `end`.
async fn response(stream: &mut TcpStream, end: &str) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&all).ends_with(end) {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "connection closed after {:?}", String::from_utf8_lossy(&all));
        all.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&all).into_owned()
}

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: polyscale\r\n\r\n";

async fn health(stream: &mut TcpStream) -> String {
    stream.write_all(HEALTH).await.unwrap();
    response(stream, "\r\n\r\nok").await
}

/// A slowloris client, sending its headers a byte a second, is cut off
/// at the header timeout; one that sends its headers and then trickles
/// the body is answered 408 at the request timeout. Neither holds its
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_clients_are_disconnected_at_the_header_and_request_timeouts() {
    let http = ServerLimits {
        header_read_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(3),
        max_connections: 64,
        ..ServerLimits::default()
    };
    let app = TestApp::spawn_with(Options { http: Some(http), ..Options::new(Backend::Sqlite) }).await;
    let request = b"POST /graphql HTTP/1.1\r\nHost: polyscale\r\nContent-Type: application/json\r\nContent-Length: 36\r\n\r\n{\"query\": \"{ categories { id } }\"}";

    let mut slowloris = TcpStream::connect(app.http).await.unwrap();
    let (elapsed, sent) = trickle(&mut slowloris, request, Duration::from_secs(15)).await;
    assert!(elapsed < Duration::from_secs(5), "cut off after {elapsed:?}, not at the 2 s header timeout");
    assert!(sent < 6, "{sent} bytes of headers were accepted");

    // Headers at once, then the body a byte a second: 408 at 3 s.
    let mut slow_body = TcpStream::connect(app.http).await.unwrap();
    let head_len = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    slow_body.write_all(&request[..head_len]).await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let mut answer = String::new();
    for byte in &request[head_len..] {
        tokio::select! {
            n = slow_body.read(&mut buf) => {
                answer = String::from_utf8_lossy(&buf[..n.unwrap_or(0)]).into_owned();
                break;
            }
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                let _ = slow_body.write_all(std::slice::from_ref(byte)).await;
            }
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "after {:?}: {answer:?}", start.elapsed());
    assert!(start.elapsed() < Duration::from_secs(6), "{:?}", start.elapsed());

    // The server is fine for everyone else.
    let mut client = TcpStream::connect(app.http).await.unwrap();
    assert!(health(&mut client).await.starts_with("HTTP/1.1 200"));
}

/// Past `max_connections` a new connection waits, unanswered, until one
/// closes; the established connections are served all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_past_the_cap_wait_without_disturbing_established_ones() {
    let http = ServerLimits {
        header_read_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(30),
        max_connections: 2,
        ..ServerLimits::default()
    };
    let app = TestApp::spawn_with(Options { http: Some(http), ..Options::new(Backend::Sqlite) }).await;
    let mut first = TcpStream::connect(app.http).await.unwrap();
    let mut second = TcpStream::connect(app.http).await.unwrap();
    assert!(health(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(health(&mut second).await.starts_with("HTTP/1.1 200"));

    // The third connects (the kernel's backlog) but is not served.
    let mut third = TcpStream::connect(app.http).await.unwrap();
    third.write_all(HEALTH).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(1500), third.read(&mut buf)).await;
    assert!(early.is_err(), "a connection past the cap was served: {early:?}");

    // The established ones are.
    assert!(health(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(health(&mut second).await.starts_with("HTTP/1.1 200"));

    // One closes: the waiting one is served.
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(10), response(&mut third, "\r\n\r\nok"))
        .await
        .expect("served once a slot is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(health(&mut second).await.starts_with("HTTP/1.1 200"));
}

/// The bodies a cross-site page can POST without a CORS preflight (and
/// bodies with no type) are refused with 415 and never executed, except
/// multipart, which is refused with 401 without a bearer token (which no
/// cross-site page can send unasked); JSON goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn posts_that_are_not_json_are_refused_with_415() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let body = register("csrf@example.com").to_string();
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("application/graphql"),
        None,
    ] {
        let mut request = app.client.post(app.url()).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 415, "{content_type:?}");
        let refused: Value = response.json().await.unwrap();
        assert_eq!(code(&refused), "BAD_REQUEST", "{content_type:?}: {refused}");
    }
    let response = app
        .client
        .post(app.url())
        .header("content-type", "multipart/form-data; boundary=----x")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let refused: Value = response.json().await.unwrap();
    assert_eq!(code(&refused), "UNAUTHENTICATED", "{refused}");

    // JSON, with either response media type: executed, and the email was
    // still free (nothing above ran).
    for (content_type, accept, email) in [
        ("application/json; charset=utf-8", "application/graphql-response+json", "csrf@example.com"),
        ("Application/JSON", "application/json", "csrf2@example.com"),
    ] {
        let response = app
            .client
            .post(app.url())
            .header("content-type", content_type)
            .header("accept", accept)
            .body(register(email).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{content_type}");
        let data: Value = response.json().await.unwrap();
        assert_eq!(data["data"]["register"]["userErrors"], json!([]), "{data}");
    }
}

/// `/metrics` is served on its own listener, not on the public one; the
/// public one answers introspection by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_are_not_on_the_public_listener() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.graphql("{ products(first: 1) { totalCount } }", json!({})).await;

    let public = app.client.get(format!("http://{}/metrics", app.http)).send().await.unwrap();
    assert_eq!(public.status().as_u16(), 404);

    let metrics = app.metrics.expect("a metrics listener");
    let response = app.client.get(format!("http://{metrics}/metrics")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("polyscale_component_call_seconds"), "{text}");

    let data = app.graphql("{ __schema { types { name } } }", json!({})).await;
    assert!(data["__schema"]["types"].as_array().is_some_and(|t| !t.is_empty()));
}

/// With `gateway.introspection = false` the schema cannot be read:
/// `__schema` and `__type` are refused; queries still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn introspection_can_be_turned_off() {
    let app = TestApp::spawn_with(Options { introspection: false, ..Options::new(Backend::Sqlite) }).await;
    for query in [
        "{ __schema { types { name } } }",
        "{ __type(name: \"Product\") { fields { name } } }",
        "query { ...Q } fragment Q on Query { s: __schema { queryType { name } } }",
    ] {
        let (status, body) = app.post(json!({ "query": query })).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.get("data").is_none(), "{query}: {body}");
        assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{query}: {body}");
    }
    let data = app.graphql("{ __typename products(first: 1) { totalCount } }", json!({})).await;
    assert_eq!(data["__typename"], "Query");
}
