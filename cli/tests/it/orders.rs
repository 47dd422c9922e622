//! Orders through the real interfaces: GraphQL over HTTP at the gateway,
//! the order component calling the product and account services over gRPC,
//! on SQLite and PostgreSQL.
//!
//! What the commerce backends people use today get wrong, tested here:
//! concurrent checkouts overselling the last units, retried placements
//! creating duplicate orders, stock lost to placements that failed halfway.

use std::time::Duration;

use futures::StreamExt;
use polyscale_host::capabilities::credentials::Argon2Params;
use serde_json::{Value, json};

use crate::app::{Backend, Options, PASSWORD, TestApp, create_product, product_input, test_limits};

pub const CART_FIELDS: &str = "id itemCount totals { amount currency } lines { productId name quantity unitPrice { amount currency } lineTotal { amount currency } previousUnitPrice { amount } priceChanged available purchasable }";
pub const ORDER_FIELDS: &str = "id customerId status paymentStatus total { amount currency formatted } paid { amount currency } lines { id productId merchantId name quantity unitPrice { amount currency } lineTotal { amount } fulfilledQuantity }";

/// A system for order tests: cheap password hashing (the tests sign up
/// hundreds of customers) and a generous call deadline (hundreds of
/// concurrent checkouts on two cores).
pub(crate) async fn spawn(backend: Backend, tune: impl FnOnce(&mut Options)) -> TestApp {
    let mut options = Options::new(backend);
    options.credentials = Some(Box::new(|c| c.argon2 = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 }));
    options.limits = Some(polyscale_host::runtime::CallLimits { timeout: Duration::from_secs(60), ..test_limits() });
    options.service_timeout = Some(Duration::from_secs(120));
    tune(&mut options);
    TestApp::spawn_with(options).await
}

/// Registers a customer; returns their access token.
pub(crate) async fn customer(app: &TestApp, email: &str) -> String {
    let payload = app.register(email, PASSWORD).await;
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    payload["accessToken"].as_str().unwrap().to_string()
}

/// `n` customers, registered a few at a time.
async fn customers(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    futures::stream::iter(0..n)
        .map(|i| async move { customer(app, &format!("{prefix}-{i}@test.example")).await })
        .buffered(8)
        .collect()
        .await
}

pub(crate) async fn add_to_cart(app: &TestApp, token: &str, product_id: &str, quantity: i64) -> Value {
    let data = app
        .graphql_as(
            Some(token),
            &format!("mutation($p: ID!, $q: Int!) {{ addToCart(productId: $p, quantity: $q) {{ cart {{ {CART_FIELDS} }} guestToken userErrors {{ field code message }} }} }}"),
            json!({ "p": product_id, "q": quantity }),
        )
        .await;
    data["addToCart"].clone()
}

/// Places the caller's cart; returns the `placeOrder` payload.
pub(crate) async fn place(app: &TestApp, token: &str, key: &str) -> Value {
    let data = app
        .graphql_as(
            Some(token),
            &format!("mutation($key: String!) {{ placeOrder(input: {{ idempotencyKey: $key }}) {{ order {{ {ORDER_FIELDS} }} userErrors {{ field code message }} }} }}"),
            json!({ "key": key }),
        )
        .await;
    data["placeOrder"].clone()
}

pub(crate) async fn stock(app: &TestApp, product_id: &str) -> i64 {
    let data = app.graphql("query($id: ID!) { product(id: $id) { stock } }", json!({ "id": product_id })).await;
    data["product"]["stock"].as_i64().unwrap()
}

pub(crate) fn codes(payload: &Value) -> Vec<String> {
    payload["userErrors"].as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap().to_string()).collect()
}

pub(crate) async fn product_id(app: &TestApp, name: &str, amount: i64, stock: i64) -> String {
    create_product(app, product_input(name, amount, stock)).await["id"].as_str().unwrap().to_string()
}

// --- cart ---------------------------------------------------------------

async fn cart_is_priced_live_and_guest_carts_merge_on_sign_in(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let lamp = product_id(&app, "Lamp", 2_500, 10).await;
    let mug = product_id(&app, "Mug", 800, 10).await;

    // A guest cart: created by the first add, held by its token.
    let first = app
        .graphql(
            &format!("mutation($p: ID!) {{ addToCart(productId: $p, quantity: 2) {{ cart {{ {CART_FIELDS} }} guestToken userErrors {{ code }} }} }}"),
            json!({ "p": lamp }),
        )
        .await;
    let guest = first["addToCart"]["guestToken"].as_str().expect("a guest token for a new guest cart").to_string();
    assert!(guest.len() >= 32, "the guest token is a long random secret: {guest}");
    let cart = app
        .graphql(&format!("query($t: String) {{ cart(guestToken: $t) {{ {CART_FIELDS} }} }}"), json!({ "t": guest }))
        .await;
    assert_eq!(cart["cart"]["itemCount"], 2);
    assert_eq!(cart["cart"]["totals"], json!([{ "amount": 5_000, "currency": "USD" }]));

    // A customer's cart; signing in with the guest token merges it.
    let token = customer(&app, "shopper@test.example").await;
    add_to_cart(&app, &token, &mug, 1).await;
    let merged = app
        .graphql_as(
            Some(&token),
            &format!("query($t: String) {{ cart(guestToken: $t) {{ {CART_FIELDS} }} }}"),
            json!({ "t": guest }),
        )
        .await;
    assert_eq!(merged["cart"]["itemCount"], 3, "{merged}");
    assert_eq!(merged["cart"]["totals"], json!([{ "amount": 5_800, "currency": "USD" }]));
    // The guest cart is gone.
    let gone = app
        .post(json!({ "query": format!("query($t: String) {{ cart(guestToken: $t) {{ {CART_FIELDS} }} }}"), "variables": { "t": guest } }))
        .await
        .1;
    assert!(gone.get("errors").is_some() || gone["data"]["cart"]["itemCount"] == 0, "{gone}");

    // A price change shows on the next read, flagged.
    let (_, merchant) = app.merchant().await;
    app.graphql_as(
        Some(&merchant),
        "mutation($id: ID!) { updateProduct(id: $id, input: { price: { amount: 3000, currency: \"USD\" } }) { userErrors { code } } }",
        json!({ "id": lamp }),
    )
    .await;
    let repriced = app.graphql_as(Some(&token), &format!("{{ cart {{ {CART_FIELDS} }} }}"), json!({})).await;
    let lamp_line =
        repriced["cart"]["lines"].as_array().unwrap().iter().find(|l| l["productId"] == lamp).unwrap().clone();
    assert_eq!(lamp_line["unitPrice"]["amount"], 3_000);
    assert_eq!(lamp_line["previousUnitPrice"]["amount"], 2_500);
    assert_eq!(lamp_line["priceChanged"], true);
    assert_eq!(repriced["cart"]["totals"], json!([{ "amount": 6_800, "currency": "USD" }]));

    // Bad input is refused with codes, and changes nothing.
    for (quantity, code) in [(-1, "NEGATIVE_QUANTITY"), (0, "INVALID_QUANTITY")] {
        assert_eq!(codes(&add_to_cart(&app, &token, &mug, quantity).await), vec![code]);
    }
    let unknown = add_to_cart(&app, &token, "0190a5e2-0000-7000-8000-000000000000", 1).await;
    assert_eq!(codes(&unknown), vec!["UNKNOWN_PRODUCT"]);
    let after = app.graphql_as(Some(&token), &format!("{{ cart {{ {CART_FIELDS} }} }}"), json!({})).await;
    assert_eq!(after["cart"]["itemCount"], 3);

    // update, remove, clear.
    let updated = app
        .graphql_as(
            Some(&token),
            &format!("mutation($p: ID!) {{ updateCartLine(productId: $p, quantity: 5) {{ cart {{ {CART_FIELDS} }} userErrors {{ code }} }} }}"),
            json!({ "p": mug }),
        )
        .await;
    assert_eq!(updated["updateCartLine"]["cart"]["itemCount"], 7);
    let removed = app
        .graphql_as(
            Some(&token),
            &format!("mutation($p: ID!) {{ removeCartLine(productId: $p) {{ cart {{ {CART_FIELDS} }} userErrors {{ code }} }} }}"),
            json!({ "p": mug }),
        )
        .await;
    assert_eq!(removed["removeCartLine"]["cart"]["itemCount"], 2);
    let cleared = app
        .graphql_as(
            Some(&token),
            &format!("mutation {{ clearCart {{ cart {{ {CART_FIELDS} }} userErrors {{ code }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(cleared["clearCart"]["cart"]["itemCount"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cart_is_priced_live_and_guest_carts_merge_on_sign_in_sqlite() {
    cart_is_priced_live_and_guest_carts_merge_on_sign_in(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cart_is_priced_live_and_guest_carts_merge_on_sign_in_postgres() {
    cart_is_priced_live_and_guest_carts_merge_on_sign_in(Backend::Postgres).await;
}

// --- contention ---------------------------------------------------------

/// 500 buyers, one unit each, for a product with 50: exactly 50 orders,
/// stock 0, every other buyer told OUT_OF_STOCK.
async fn no_oversell_for_one_contended_product(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let product = product_id(&app, "Last units", 1_999, 50).await;
    let buyers = customers(&app, "buyer", 500).await;
    futures::stream::iter(&buyers)
        .map(|token| add_to_cart(&app, token, &product, 1))
        .buffer_unordered(16)
        .for_each(|payload| async move { assert_eq!(payload["userErrors"], json!([]), "{payload}") })
        .await;

    // Every checkout at once.
    let outcomes: Vec<Value> = futures::future::join_all(buyers.iter().enumerate().map(|(i, token)| {
        let app = &app;
        async move { place(app, token, &format!("checkout-{i}")).await }
    }))
    .await;
    let placed = outcomes.iter().filter(|o| !o["order"].is_null()).count();
    let refused: Vec<Vec<String>> = outcomes.iter().filter(|o| o["order"].is_null()).map(codes).collect();
    assert_eq!(placed, 50, "exactly the stock is sold; refusals: {:?}", &refused[..refused.len().min(5)]);
    assert!(refused.iter().all(|c| c == &vec!["OUT_OF_STOCK".to_string()]), "{refused:?}");
    assert_eq!(stock(&app, &product).await, 0);

    // The admin's view agrees: 50 orders, one unit each.
    let admin = app.admin_token().await;
    let listed = app
        .graphql_as(
            Some(&admin),
            "query { orders(first: 100, filter: { view: ALL }) { edges { node { lines { quantity } } } pageInfo { hasNextPage } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["orders"]["edges"].as_array().unwrap().len(), 50);
    assert_eq!(listed["orders"]["pageInfo"]["hasNextPage"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_oversell_for_one_contended_product_sqlite() {
    no_oversell_for_one_contended_product(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_oversell_for_one_contended_product_postgres() {
    no_oversell_for_one_contended_product(Backend::Postgres).await;
}

/// 300 buyers with mixed carts over 3 contended products: no product sells
/// more than its stock, every order is whole (all its lines or none), and
/// what is left is exactly the stock minus what the orders hold.
async fn no_oversell_for_mixed_carts(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let stocks = [40_i64, 25, 60];
    let mut products = Vec::new();
    for (i, s) in stocks.iter().enumerate() {
        products.push(product_id(&app, &format!("Contended {i}"), 1_000 + i as i64, *s).await);
    }
    let buyers = customers(&app, "mixed", 300).await;
    // Buyer i wants products (i % 3) and ((i + 1) % 3), 1 or 2 units each.
    let wants = |i: usize| [(i % 3, 1 + (i % 2) as i64), ((i + 1) % 3, 1)];
    futures::stream::iter(buyers.iter().enumerate())
        .map(|(i, token)| {
            let (app, products) = (&app, &products);
            async move {
                for (p, q) in wants(i) {
                    add_to_cart(app, token, &products[p], q).await;
                }
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;

    let outcomes: Vec<Value> = futures::future::join_all(buyers.iter().enumerate().map(|(i, token)| {
        let app = &app;
        async move { place(app, token, &format!("mixed-{i}")).await }
    }))
    .await;
    let mut sold = [0_i64; 3];
    for (i, outcome) in outcomes.iter().enumerate() {
        if outcome["order"].is_null() {
            assert_eq!(codes(outcome), vec!["OUT_OF_STOCK"], "{outcome}");
            continue;
        }
        let lines = outcome["order"]["lines"].as_array().unwrap();
        assert_eq!(lines.len(), 2, "an order is whole: {outcome}");
        for (p, q) in wants(i) {
            let line = lines.iter().find(|l| l["productId"] == products[p]).expect("the line is there");
            assert_eq!(line["quantity"], q);
            sold[p] += q;
        }
    }
    for p in 0..3 {
        let left = stock(&app, &products[p]).await;
        assert!(sold[p] <= stocks[p], "product {p} oversold: {} of {}", sold[p], stocks[p]);
        assert_eq!(left, stocks[p] - sold[p], "product {p}: stock left is stock minus what orders hold");
        assert!(left >= 0);
    }
    assert!(sold.iter().sum::<i64>() > 0, "some orders were placed");
    assert!(outcomes.iter().any(|o| o["order"].is_null()), "the products were contended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_oversell_for_mixed_carts_sqlite() {
    no_oversell_for_mixed_carts(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_oversell_for_mixed_carts_postgres() {
    no_oversell_for_mixed_carts(Backend::Postgres).await;
}

// --- idempotency ----------------------------------------------------------

/// 20 concurrent placements with one key: one order, 20 identical answers;
/// the key with another cart is refused; a failure replays as a failure.
async fn one_key_places_one_order(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let product = product_id(&app, "Kettle", 4_500, 10).await;
    let other = product_id(&app, "Toaster", 3_000, 10).await;
    let token = customer(&app, "retry@test.example").await;
    add_to_cart(&app, &token, &product, 2).await;

    let answers: Vec<Value> = futures::future::join_all((0..20).map(|_| place(&app, &token, "retried-checkout"))).await;
    let first = &answers[0];
    assert!(!first["order"].is_null(), "{first}");
    for answer in &answers {
        assert_eq!(answer, first, "every duplicate gets the first answer");
    }
    assert_eq!(stock(&app, &product).await, 8, "the stock was taken once");
    let mine = app.graphql_as(Some(&token), "query { orders(first: 10) { edges { node { id } } } }", json!({})).await;
    assert_eq!(mine["orders"]["edges"].as_array().unwrap().len(), 1);

    // Later, the same key again: the same answer.
    assert_eq!(&place(&app, &token, "retried-checkout").await, first);

    // The same key with another cart.
    add_to_cart(&app, &token, &other, 1).await;
    let reused = place(&app, &token, "retried-checkout").await;
    assert!(reused["order"].is_null());
    assert_eq!(codes(&reused), vec!["IDEMPOTENCY_KEY_REUSED"]);

    // A failure is an answer too: OUT_OF_STOCK replays even after restock.
    app.graphql_as(Some(&token), &format!("mutation {{ clearCart {{ cart {{ {CART_FIELDS} }} }} }}"), json!({})).await;
    add_to_cart(&app, &token, &other, 11).await;
    let short = place(&app, &token, "too-many").await;
    assert_eq!(codes(&short), vec!["OUT_OF_STOCK"]);
    let (_, merchant) = app.merchant().await;
    app.graphql_as(
        Some(&merchant),
        "mutation($id: ID!) { adjustStock(id: $id, delta: 5) { userErrors { code } } }",
        json!({ "id": other }),
    )
    .await;
    assert_eq!(place(&app, &token, "too-many").await, short, "the stored failure replays");
    // A new key sees the restock.
    assert!(!place(&app, &token, "after-restock").await["order"].is_null());

    // Keys are per customer: another customer's same key is theirs.
    let someone = customer(&app, "someone@test.example").await;
    add_to_cart(&app, &someone, &product, 1).await;
    let theirs = place(&app, &someone, "retried-checkout").await;
    assert!(!theirs["order"].is_null(), "{theirs}");
    assert_ne!(theirs["order"]["id"], first["order"]["id"]);

    // Bad keys and empty carts are refused with codes.
    assert_eq!(codes(&place(&app, &someone, "").await), vec!["INVALID_IDEMPOTENCY_KEY"]);
    assert_eq!(codes(&place(&app, &someone, "empty-cart").await), vec!["EMPTY_CART"]);
    // Anonymous callers cannot place orders.
    let anonymous = app
        .graphql_err(
            &format!("mutation {{ placeOrder(input: {{ idempotencyKey: \"k\" }}) {{ order {{ {ORDER_FIELDS} }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(anonymous["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{anonymous}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_places_one_order_sqlite() {
    one_key_places_one_order(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_places_one_order_postgres() {
    one_key_places_one_order(Backend::Postgres).await;
}

// --- failures -------------------------------------------------------------

/// The product service fails after the reservation (the link drops the
/// commit): no order, and the stock comes back; a retry with the same key,
/// once the link is back, places the order with the stock taken once.
async fn a_failure_after_the_reservation_leaves_no_order_and_returns_the_stock(backend: Backend) {
    let app = spawn(backend, |o| {
        o.faulty_link = true;
        o.reservation_hold = Some(Duration::from_secs(2));
    })
    .await;
    let link = app.link.as_ref().unwrap();
    let product = product_id(&app, "Fragile", 1_200, 5).await;
    let token = customer(&app, "unlucky@test.example").await;
    add_to_cart(&app, &token, &product, 2).await;

    link.fail("/polyscale.product.v1.InventoryService/Commit");
    let (status, body) = app
        .post_as(
            Some(&token),
            json!({ "query": format!("mutation {{ placeOrder(input: {{ idempotencyKey: \"fragile\" }}) {{ order {{ {ORDER_FIELDS} }} userErrors {{ code }} }} }}") }),
        )
        .await;
    assert_eq!(status, 200);
    assert!(body["data"]["placeOrder"]["order"].is_null(), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "SERVICE_UNAVAILABLE", "{body}");
    assert!(link.calls("/polyscale.product.v1.InventoryService/Reserve") >= 1, "the stock was reserved first");
    let mine = app.graphql_as(Some(&token), "query { orders(first: 10) { edges { node { id } } } }", json!({})).await;
    assert_eq!(mine["orders"]["edges"], json!([]), "no order");
    // The stock comes back: released at once, or by the sweeper when the
    // hold expires.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stock(&app, &product).await != 5 {
        assert!(tokio::time::Instant::now() < deadline, "the reserved stock did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    link.heal();
    let retried = place(&app, &token, "fragile").await;
    assert!(!retried["order"].is_null(), "the retry places the order: {retried}");
    assert_eq!(stock(&app, &product).await, 3, "the stock is taken once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failure_after_the_reservation_leaves_no_order_and_returns_the_stock_sqlite() {
    a_failure_after_the_reservation_leaves_no_order_and_returns_the_stock(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failure_after_the_reservation_leaves_no_order_and_returns_the_stock_postgres() {
    a_failure_after_the_reservation_leaves_no_order_and_returns_the_stock(Backend::Postgres).await;
}

/// A reservation past its expiry returns its stock: a placement whose
/// commit and release are both lost (the product service unreachable after
/// reserving) holds the units only until the hold ends.
async fn an_expired_reservation_returns_its_stock(backend: Backend) {
    let app = spawn(backend, |o| {
        o.faulty_link = true;
        o.reservation_hold = Some(Duration::from_millis(1_500));
    })
    .await;
    let link = app.link.as_ref().unwrap();
    let product = product_id(&app, "Held", 900, 3).await;
    let token = customer(&app, "crashed@test.example").await;
    add_to_cart(&app, &token, &product, 3).await;
    link.fail("/polyscale.product.v1.InventoryService/Commit");
    link.fail("/polyscale.product.v1.InventoryService/Release");
    let (_, body) = app
        .post_as(
            Some(&token),
            json!({ "query": "mutation { placeOrder(input: { idempotencyKey: \"crash\" }) { order { id } } }" }),
        )
        .await;
    assert!(body["data"]["placeOrder"]["order"].is_null(), "{body}");
    assert_eq!(stock(&app, &product).await, 0, "held by the reservation");
    let started = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while stock(&app, &product).await != 3 {
        assert!(tokio::time::Instant::now() < deadline, "the expired reservation kept its stock");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(1_000), "not before the hold ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_reservation_returns_its_stock_sqlite() {
    an_expired_reservation_returns_its_stock(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_reservation_returns_its_stock_postgres() {
    an_expired_reservation_returns_its_stock(Backend::Postgres).await;
}

/// Only the order service may reserve stock: a customer (or anyone else on
/// the services' port) calling `InventoryService` directly is refused, and
/// the stock is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_order_service_may_reserve_stock() {
    use polyscale_proto::product::v1 as pb;
    let app = spawn(Backend::Sqlite, |_| {}).await;
    let product = product_id(&app, "Guarded", 500, 4).await;
    let token = customer(&app, "sneaky@test.example").await;
    let mut inventory = pb::inventory_service_client::InventoryServiceClient::new(app.channel().await);
    let mut request = tonic::Request::new(pb::ReserveRequest {
        order_id: "not-an-order".into(),
        lines: vec![pb::StockLine { product_id: product.clone(), quantity: 4 }],
        expires_at_ms: i64::MAX,
    });
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let refused = inventory.reserve(request).await.expect_err("a customer may not reserve stock");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    // A forged service token is refused too.
    let mut forged = tonic::Request::new(pb::ReleaseReservationRequest { order_id: "x".into() });
    forged.metadata_mut().insert(
        polyscale_proto::metadata::SERVICE_TOKEN,
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvcmRlciJ9.c2ln".parse().unwrap(),
    );
    assert_eq!(inventory.release(forged).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    assert_eq!(stock(&app, &product).await, 4);
}

// --- lifecycle and access -------------------------------------------------

async fn orders_are_seen_by_whom_they_concern(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let (merchant_a, token_a) = app.merchant().await;
    let (merchant_b, token_b) = app.new_merchant("other-merchant@test.example").await;
    let a = product_id(&app, "From A", 1_000, 10).await;
    let created = app
        .graphql_as(
            Some(&token_b),
            "mutation($input: CreateProductInput!) { createProduct(input: $input) { product { id merchantId } userErrors { code } } }",
            json!({ "input": product_input("From B", 2_000, 10) }),
        )
        .await;
    assert_eq!(created["createProduct"]["product"]["merchantId"], merchant_b.as_str());
    assert_ne!(merchant_a, merchant_b);
    let b = created["createProduct"]["product"]["id"].as_str().unwrap().to_string();

    let alice = customer(&app, "alice@test.example").await;
    let bob = customer(&app, "bob@test.example").await;
    add_to_cart(&app, &alice, &a, 1).await;
    add_to_cart(&app, &alice, &b, 2).await;
    let order = place(&app, &alice, "alice-1").await["order"].clone();
    let id = order["id"].as_str().unwrap().to_string();
    assert_eq!(order["status"], "PENDING_PAYMENT");
    assert_eq!(order["paymentStatus"], "NONE");
    assert_eq!(order["total"]["amount"], 5_000);
    assert_eq!(order["lines"].as_array().unwrap().len(), 2);

    let read = |token: String| {
        let (app, id) = (&app, id.clone());
        async move {
            app.graphql_as(
                Some(&token),
                &format!("query($id: ID!) {{ order(id: $id) {{ {ORDER_FIELDS} }} }}"),
                json!({ "id": id }),
            )
            .await["order"]
                .clone()
        }
    };
    // The customer sees their order; another customer does not know it.
    assert_eq!(read(alice.clone()).await["id"], id.as_str());
    assert!(read(bob.clone()).await.is_null(), "bob cannot read alice's order");
    // Bob's cart is his own.
    let bobs = app.graphql_as(Some(&bob), &format!("{{ cart {{ {CART_FIELDS} }} }}"), json!({})).await;
    assert_eq!(bobs["cart"]["itemCount"], 0);
    // A merchant sees only their own lines, and the total of those.
    let seen_by_a = read(token_a.clone()).await;
    assert_eq!(seen_by_a["lines"].as_array().unwrap().len(), 1);
    assert_eq!(seen_by_a["lines"][0]["productId"], a.as_str());
    assert_eq!(seen_by_a["total"]["amount"], 1_000);
    let seen_by_b = read(token_b.clone()).await;
    assert_eq!(seen_by_b["lines"].as_array().unwrap().len(), 1);
    assert_eq!(seen_by_b["total"]["amount"], 4_000);
    let sales = app
        .graphql_as(
            Some(&token_b),
            "query { orders(first: 10, filter: { view: SALES }) { edges { node { id lines { productId } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(sales["orders"]["edges"].as_array().unwrap().len(), 1);
    assert_eq!(sales["orders"]["edges"][0]["node"]["lines"], json!([{ "productId": b }]));
    // A customer cannot ask for everyone's orders.
    let all = app
        .post_as(
            Some(&bob),
            json!({ "query": "query { orders(first: 10, filter: { view: ALL }) { edges { node { id } } } }" }),
        )
        .await
        .1;
    assert_eq!(all["errors"][0]["extensions"]["code"], "FORBIDDEN", "{all}");
    // An admin sees everything.
    let admin = app.admin_token().await;
    assert_eq!(read(admin.clone()).await["lines"].as_array().unwrap().len(), 2);

    // Lifecycle rules: no fulfilment before payment.
    let fulfil = app
        .graphql_as(
            Some(&token_a),
            "mutation($id: ID!, $line: ID!) { fulfillOrder(id: $id, lines: [{ lineId: $line, quantity: 1 }]) { order { status } userErrors { code } } }",
            json!({ "id": id, "line": seen_by_a["lines"][0]["id"] }),
        )
        .await;
    assert_eq!(codes(&fulfil["fulfillOrder"]), vec!["ORDER_NOT_PAID"]);
    // Bob cannot cancel alice's order; alice can, and the stock returns.
    let bob_cancels = app
        .graphql_as(
            Some(&bob),
            "mutation($id: ID!) { cancelOrder(id: $id) { order { status } userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert!(bob_cancels["cancelOrder"]["order"].is_null());
    assert_eq!(stock(&app, &b).await, 8);
    let cancelled = app
        .graphql_as(
            Some(&alice),
            "mutation($id: ID!) { cancelOrder(id: $id) { order { status } userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(cancelled["cancelOrder"]["order"]["status"], "CANCELLED", "{cancelled}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stock(&app, &b).await != 10 || stock(&app, &a).await != 10 {
        assert!(tokio::time::Instant::now() < deadline, "cancelling did not restock");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Cancelled is final.
    let again = app
        .graphql_as(
            Some(&alice),
            "mutation($id: ID!) { cancelOrder(id: $id) { order { status } userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(codes(&again["cancelOrder"]), vec!["INVALID_TRANSITION"]);
    // Garbage ids are not found, not errors.
    assert!(read(alice.clone()).await["id"] == id.as_str());
    let garbage = app
        .graphql_as(
            Some(&alice),
            &format!("query {{ order(id: \"'; DROP TABLE orders; --\") {{ {ORDER_FIELDS} }} }}"),
            json!({}),
        )
        .await;
    assert!(garbage["order"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_are_seen_by_whom_they_concern_sqlite() {
    orders_are_seen_by_whom_they_concern(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_are_seen_by_whom_they_concern_postgres() {
    orders_are_seen_by_whom_they_concern(Backend::Postgres).await;
}

// --- batching ---------------------------------------------------------------

/// Listing 50 orders of 10 lines each, with each line's live product, makes
/// a constant number of `GetProducts` calls from the gateway (a DataLoader
/// batches them), however many orders are listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listing_orders_batches_product_lookups() {
    let app = spawn(Backend::Sqlite, |o| o.faulty_link = true).await;
    let link = app.link.as_ref().unwrap();
    let mut products = Vec::new();
    for i in 0..10 {
        products.push(product_id(&app, &format!("Batch {i}"), 100 + i, 1_000).await);
    }
    // 50 buyers (an order each, of the same 10 products), as an admin
    // lists them.
    let buyers = customers(&app, "bulk", 50).await;
    futures::stream::iter(buyers.iter().enumerate())
        .map(|(n, token)| {
            let (app, products) = (&app, &products);
            async move {
                for p in products {
                    add_to_cart(app, token, p, 1).await;
                }
                let placed = place(app, token, &format!("bulk-{n}")).await;
                assert!(!placed["order"].is_null(), "{placed}");
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    let token = app.admin_token().await;
    let list = |first: usize| {
        let (app, token) = (&app, token.clone());
        async move {
            let before = link.calls("/polyscale.product.v1.ProductService/GetProducts");
            let data = app
                .graphql_as(
                    Some(&token),
                    "query($first: Int!) { orders(first: $first, filter: { view: ALL }) { edges { node { lines { quantity product { id name price { amount } } } } } } }",
                    json!({ "first": first }),
                )
                .await;
            let orders = data["orders"]["edges"].as_array().unwrap().clone();
            assert_eq!(orders.len(), first);
            for order in &orders {
                let lines = order["node"]["lines"].as_array().unwrap();
                assert_eq!(lines.len(), 10);
                assert!(lines.iter().all(|l| l["product"]["name"].as_str().unwrap().starts_with("Batch")));
            }
            link.calls("/polyscale.product.v1.ProductService/GetProducts") - before
        }
    };
    let for_50 = list(50).await;
    let for_5 = list(5).await;
    assert_eq!(for_50, 1, "500 lines over 10 products: one GetProducts call");
    assert_eq!(for_5, for_50, "the number of calls does not grow with the orders listed");
}
