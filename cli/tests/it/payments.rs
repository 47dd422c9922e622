//! Payments through the real interfaces: GraphQL over HTTP, the webhook
//! endpoint, and the services' gRPC port, on SQLite and PostgreSQL.
//!
//! Every defence is attacked here the way an attacker would: over-capture
//! and over-refund, concurrent captures racing past the authorization,
//! paying a cancelled order, forged, stale and replayed webhooks, and
//! webhooks sent to the order service around the gateway.

use futures::StreamExt;
use polyscale_proto::order::v1 as pb;
use serde_json::{Value, json};

use crate::app::{Backend, TestApp};
use crate::orders::{ORDER_FIELDS, add_to_cart, codes, customer, place, product_id, spawn};

const SUCCEEDS: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";
const REQUIRES_ACTION: &str = "4000002500003155";

const PAYMENT_FIELDS: &str = "id provider reference status nextStep authorized { amount currency formatted } captured { amount currency } refunded { amount currency }";

fn payload_fields() -> String {
    format!(
        "payment {{ {PAYMENT_FIELDS} }} order {{ id status paymentStatus paid {{ amount currency }} }} userErrors {{ field code message }}"
    )
}

async fn payment_app(backend: Backend) -> TestApp {
    spawn(backend, |o| o.test_payments = true).await
}

/// A customer's placed order of 2 × 25.00 USD: (customer token, order id,
/// first line id).
async fn placed_order(app: &TestApp, email: &str) -> (String, String, String) {
    let lamp = product_id(app, &format!("Lamp for {email}"), 2_500, 100).await;
    let token = customer(app, email).await;
    add_to_cart(app, &token, &lamp, 2).await;
    let placed = place(app, &token, &format!("key-{email}")).await;
    assert_eq!(placed["userErrors"], json!([]), "{placed}");
    let order = &placed["order"];
    assert_eq!(order["total"]["amount"], 5_000);
    (token, order["id"].as_str().unwrap().to_string(), order["lines"][0]["id"].as_str().unwrap().to_string())
}

async fn authorize(app: &TestApp, token: &str, order: &str, provider: &str, source: &str) -> Value {
    let data = app
        .graphql_as(
            Some(token),
            &format!("mutation($o: ID!, $p: String!, $s: String!) {{ authorizePayment(orderId: $o, provider: $p, source: $s) {{ {} }} }}", payload_fields()),
            json!({ "o": order, "p": provider, "s": source }),
        )
        .await;
    data["authorizePayment"].clone()
}

/// `capturePayment` or `refundPayment`, of `amount` USD cents or all.
async fn money_op(app: &TestApp, token: &str, op: &str, payment: &str, amount: Option<i64>) -> Value {
    let amount = amount.map(|a| json!({ "amount": a, "currency": "USD" }));
    let data = app
        .graphql_as(
            Some(token),
            &format!(
                "mutation($p: ID!, $a: MoneyInput) {{ {op}(paymentId: $p, amount: $a) {{ {} }} }}",
                payload_fields()
            ),
            json!({ "p": payment, "a": amount }),
        )
        .await;
    data[op].clone()
}

async fn order(app: &TestApp, token: &str, id: &str) -> Value {
    let data = app
        .graphql_as(
            Some(token),
            &format!("query($id: ID!) {{ order(id: $id) {{ {ORDER_FIELDS} payments {{ {PAYMENT_FIELDS} }} }} }}"),
            json!({ "id": id }),
        )
        .await;
    data["order"].clone()
}

fn summary(order: &Value) -> (String, String, i64) {
    (
        order["status"].as_str().unwrap().to_string(),
        order["paymentStatus"].as_str().unwrap().to_string(),
        order["paid"]["amount"].as_i64().unwrap(),
    )
}

fn expect(order: &Value, status: &str, payment_status: &str, paid: i64) {
    assert_eq!(summary(order), (status.to_string(), payment_status.to_string(), paid), "{order}");
}

// --- capture and refund ----------------------------------------------------

async fn captures_and_refunds_add_up(backend: Backend) {
    let app = payment_app(backend).await;
    let admin = app.admin_token().await;
    let (token, id, line) = placed_order(&app, "payer@test.example").await;

    // Fulfilling before payment is refused.
    let (_, merchant) = app.merchant().await;
    let early = app
        .graphql_as(
            Some(&merchant),
            "mutation($id: ID!, $l: ID!) { fulfillOrder(id: $id, lines: [{ lineId: $l, quantity: 1 }]) { order { status } userErrors { code } } }",
            json!({ "id": id, "l": line }),
        )
        .await;
    assert_eq!(codes(&early["fulfillOrder"]), vec!["ORDER_NOT_PAID"]);

    let authorized = authorize(&app, &token, &id, "test", SUCCEEDS).await;
    assert_eq!(authorized["userErrors"], json!([]), "{authorized}");
    let payment = authorized["payment"].clone();
    assert_eq!(payment["status"], "AUTHORIZED");
    assert_eq!(payment["authorized"], json!({ "amount": 5_000, "currency": "USD", "formatted": "50.00 USD" }));
    assert!(payment["reference"].as_str().unwrap().starts_with("test_"));
    expect(&authorized["order"], "PENDING_PAYMENT", "NONE", 0);
    let pid = payment["id"].as_str().unwrap().to_string();

    // Nothing more to authorize.
    let again = authorize(&app, &token, &id, "test", SUCCEEDS).await;
    assert_eq!(codes(&again), vec!["ALREADY_AUTHORIZED"]);

    // The customer may not capture.
    let body = app
        .graphql_err_as(
            Some(&token),
            "mutation($p: ID!) { capturePayment(paymentId: $p) { userErrors { code } } }",
            json!({ "p": pid }),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");

    // Partial capture.
    let partial = money_op(&app, &admin, "capturePayment", &pid, Some(2_000)).await;
    assert_eq!(partial["userErrors"], json!([]), "{partial}");
    assert_eq!(partial["payment"]["status"], "PARTIALLY_CAPTURED");
    expect(&partial["order"], "PENDING_PAYMENT", "PARTIAL", 2_000);

    // Over-capture: refused, nothing changes.
    let over = money_op(&app, &admin, "capturePayment", &pid, Some(3_001)).await;
    assert_eq!(codes(&over), vec!["OVER_CAPTURE"], "{over}");
    assert_eq!(over["userErrors"][0]["field"], json!(["amount", "amount"]));
    let wrong_currency = app
        .graphql_as(
            Some(&admin),
            "mutation($p: ID!) { capturePayment(paymentId: $p, amount: { amount: 1, currency: \"EUR\" }) { userErrors { code } } }",
            json!({ "p": pid }),
        )
        .await;
    assert_eq!(codes(&wrong_currency["capturePayment"]), vec!["CURRENCY_MISMATCH"]);
    let zero = money_op(&app, &admin, "capturePayment", &pid, Some(0)).await;
    assert_eq!(codes(&zero), vec!["INVALID_AMOUNT"]);
    expect(&order(&app, &token, &id).await, "PENDING_PAYMENT", "PARTIAL", 2_000);

    // The rest: paid in full.
    let rest = money_op(&app, &admin, "capturePayment", &pid, None).await;
    assert_eq!(rest["payment"]["status"], "CAPTURED", "{rest}");
    assert_eq!(rest["payment"]["captured"]["amount"], 5_000);
    expect(&rest["order"], "PAID", "FULL", 5_000);
    let once_more = money_op(&app, &admin, "capturePayment", &pid, Some(1)).await;
    assert_eq!(codes(&once_more), vec!["OVER_CAPTURE"]);
    let void = app
        .graphql_as(
            Some(&admin),
            "mutation($p: ID!) { voidPayment(paymentId: $p) { userErrors { code } } }",
            json!({ "p": pid }),
        )
        .await;
    assert_eq!(codes(&void["voidPayment"]), vec!["INVALID_TRANSITION"], "a captured payment cannot be voided");

    // Refunds.
    let refund = money_op(&app, &admin, "refundPayment", &pid, Some(1_000)).await;
    assert_eq!(refund["payment"]["status"], "PARTIALLY_REFUNDED", "{refund}");
    expect(&refund["order"], "PARTIALLY_REFUNDED", "PARTIAL", 4_000);
    let over_refund = money_op(&app, &admin, "refundPayment", &pid, Some(4_001)).await;
    assert_eq!(codes(&over_refund), vec!["OVER_REFUND"], "{over_refund}");
    expect(&order(&app, &token, &id).await, "PARTIALLY_REFUNDED", "PARTIAL", 4_000);
    let all = money_op(&app, &admin, "refundPayment", &pid, None).await;
    assert_eq!(all["payment"]["status"], "REFUNDED", "{all}");
    assert_eq!(all["payment"]["refunded"]["amount"], 5_000);
    expect(&all["order"], "REFUNDED", "NONE", 0);
    let beyond = money_op(&app, &admin, "refundPayment", &pid, Some(1)).await;
    assert_eq!(codes(&beyond), vec!["OVER_REFUND"]);

    // The order lists its payment; a refunded order cannot be paid again.
    let seen = order(&app, &token, &id).await;
    let payments = seen["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1, "{seen}");
    assert_eq!(
        (&payments[0]["authorized"]["amount"], &payments[0]["captured"]["amount"], &payments[0]["refunded"]["amount"]),
        (&json!(5_000), &json!(5_000), &json!(5_000))
    );
    assert_eq!(codes(&authorize(&app, &token, &id, "test", SUCCEEDS).await), vec!["INVALID_TRANSITION"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn captures_and_refunds_add_up_sqlite() {
    captures_and_refunds_add_up(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn captures_and_refunds_add_up_postgres() {
    captures_and_refunds_add_up(Backend::Postgres).await;
}

// --- refusals ----------------------------------------------------------------

async fn declined_and_cancelled_orders_stay_unpaid(backend: Backend) {
    let app = payment_app(backend).await;
    let admin = app.admin_token().await;
    let (token, id, _) = placed_order(&app, "decline@test.example").await;

    for card in [DECLINED, "4111111111111111"] {
        let declined = authorize(&app, &token, &id, "test", card).await;
        assert_eq!(codes(&declined), vec!["DECLINED"], "{declined}");
        assert_eq!(declined["userErrors"][0]["field"], json!(["source"]));
        assert!(declined["payment"].is_null());
    }
    let unknown = authorize(&app, &token, &id, "stripe", SUCCEEDS).await;
    assert_eq!(codes(&unknown), vec!["UNKNOWN_PROVIDER"]);
    let seen = order(&app, &token, &id).await;
    expect(&seen, "PENDING_PAYMENT", "NONE", 0);
    assert_eq!(seen["payments"], json!([]), "declined payments leave nothing behind");

    // Someone else's order is not found; a merchant sees no payments.
    let stranger = customer(&app, "stranger@test.example").await;
    assert_eq!(codes(&authorize(&app, &stranger, &id, "test", SUCCEEDS).await), vec!["NOT_FOUND"]);

    // An authorization can be voided; the order can then be paid again.
    let first = authorize(&app, &token, &id, "test", SUCCEEDS).await;
    let pid = first["payment"]["id"].as_str().unwrap().to_string();
    let voided = app
        .graphql_as(
            Some(&admin),
            &format!("mutation($p: ID!) {{ voidPayment(paymentId: $p) {{ {} }} }}", payload_fields()),
            json!({ "p": pid }),
        )
        .await;
    assert_eq!(voided["voidPayment"]["payment"]["status"], "VOIDED", "{voided}");
    assert_eq!(codes(&money_op(&app, &admin, "capturePayment", &pid, None).await), vec!["INVALID_TRANSITION"]);
    let second = authorize(&app, &token, &id, "test", SUCCEEDS).await;
    assert_eq!(second["payment"]["status"], "AUTHORIZED", "{second}");
    assert_ne!(second["payment"]["reference"], first["payment"]["reference"]);
    let (_, merchant) = app.merchant().await;
    assert_eq!(order(&app, &merchant, &id).await["payments"], json!([]));

    // A cancelled order cannot be paid.
    let cancelled = app
        .graphql_as(
            Some(&token),
            "mutation($id: ID!) { cancelOrder(id: $id) { order { status } userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(cancelled["cancelOrder"]["order"]["status"], "CANCELLED", "{cancelled}");
    let refused = authorize(&app, &token, &id, "test", SUCCEEDS).await;
    assert_eq!(codes(&refused), vec!["ORDER_CANCELLED"], "{refused}");
    let manual = app
        .graphql_as(
            Some(&admin),
            "mutation($o: ID!) { recordManualPayment(orderId: $o, amount: { amount: 5000, currency: \"USD\" }, reference: \"bank transfer 17\") { userErrors { code } } }",
            json!({ "o": id }),
        )
        .await;
    assert_eq!(codes(&manual["recordManualPayment"]), vec!["ORDER_CANCELLED"]);
    expect(&order(&app, &token, &id).await, "CANCELLED", "NONE", 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn declined_and_cancelled_orders_stay_unpaid_sqlite() {
    declined_and_cancelled_orders_stay_unpaid(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn declined_and_cancelled_orders_stay_unpaid_postgres() {
    declined_and_cancelled_orders_stay_unpaid(Backend::Postgres).await;
}

// --- fulfilment after payment, manual payments --------------------------------

async fn paid_orders_are_fulfilled_and_delivered(backend: Backend) {
    let app = payment_app(backend).await;
    let admin = app.admin_token().await;
    let (_, merchant) = app.merchant().await;
    let (token, id, line) = placed_order(&app, "fulfil@test.example").await;
    let pid = authorize(&app, &token, &id, "test", SUCCEEDS).await["payment"]["id"].as_str().unwrap().to_string();
    expect(&money_op(&app, &admin, "capturePayment", &pid, None).await["order"], "PAID", "FULL", 5_000);

    let fulfil = |quantity: i64| {
        let (app, merchant, id, line) = (&app, merchant.clone(), id.clone(), line.clone());
        async move {
            app.graphql_as(
                Some(&merchant),
                "mutation($id: ID!, $l: ID!, $q: Int!) { fulfillOrder(id: $id, lines: [{ lineId: $l, quantity: $q }]) { order { status } userErrors { code } } }",
                json!({ "id": id, "l": line, "q": quantity }),
            )
            .await["fulfillOrder"]
                .clone()
        }
    };
    assert_eq!(fulfil(1).await["order"]["status"], "PARTIALLY_FULFILLED");
    assert_eq!(fulfil(1).await["order"]["status"], "FULFILLED");
    let delivered = app
        .graphql_as(
            Some(&merchant),
            "mutation($id: ID!) { markDelivered(id: $id) { order { status } userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(delivered["markDelivered"]["order"]["status"], "DELIVERED", "{delivered}");

    // A manual payment (bank transfer) recorded by an admin, not by the
    // customer.
    let (token2, id2, _) = placed_order(&app, "transfer@test.example").await;
    let record = |who: String, amount: i64| {
        let (app, id2) = (&app, id2.clone());
        async move {
            app.post_as(
                Some(&who),
                json!({ "query": format!("mutation($o: ID!, $a: MinorUnits!) {{ recordManualPayment(orderId: $o, amount: {{ amount: $a, currency: \"USD\" }}, reference: \"transfer 42\") {{ {} }} }}", payload_fields()), "variables": { "o": id2, "a": amount } }),
            )
            .await
            .1
        }
    };
    let by_customer = record(token2.clone(), 5_000).await;
    assert_eq!(by_customer["errors"][0]["extensions"]["code"], "FORBIDDEN", "{by_customer}");
    let partial = record(admin.clone(), 3_000).await;
    let partial = &partial["data"]["recordManualPayment"];
    assert_eq!(partial["payment"]["provider"], "manual", "{partial}");
    expect(&partial["order"], "PENDING_PAYMENT", "PARTIAL", 3_000);
    let over = record(admin.clone(), 2_500).await;
    expect(&over["data"]["recordManualPayment"]["order"], "PAID", "OVER", 5_500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paid_orders_are_fulfilled_and_delivered_sqlite() {
    paid_orders_are_fulfilled_and_delivered(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paid_orders_are_fulfilled_and_delivered_postgres() {
    paid_orders_are_fulfilled_and_delivered(Backend::Postgres).await;
}

// --- concurrency ----------------------------------------------------------------

/// 20 admins' captures of 10.00 race for a 50.00 authorization: exactly 5
/// succeed, the rest are OVER_CAPTURE, and 50.00 is captured. The same for
/// refunds of what was captured, and for authorizations of one order.
async fn concurrent_captures_cannot_exceed_the_authorization(backend: Backend) {
    let app = payment_app(backend).await;
    let admin = app.admin_token().await;
    let (token, id, _) = placed_order(&app, "race@test.example").await;
    let pid = authorize(&app, &token, &id, "test", SUCCEEDS).await["payment"]["id"].as_str().unwrap().to_string();

    for op in ["capturePayment", "refundPayment"] {
        let answers: Vec<Value> = futures::stream::iter(0..20)
            .map(|_| money_op(&app, &admin, op, &pid, Some(1_000)))
            .buffer_unordered(20)
            .collect()
            .await;
        let ok = answers.iter().filter(|a| a["userErrors"] == json!([])).count();
        let over = answers.iter().filter(|a| !codes(a).is_empty()).map(codes).collect::<Vec<_>>();
        assert_eq!(ok, 5, "{op}: {answers:?}");
        let code = if op == "capturePayment" { "OVER_CAPTURE" } else { "OVER_REFUND" };
        assert!(over.iter().all(|c| c == &vec![code.to_string()]), "{op}: {over:?}");
    }
    let seen = order(&app, &token, &id).await;
    let payment = &seen["payments"][0];
    assert_eq!((&payment["captured"]["amount"], &payment["refunded"]["amount"]), (&json!(5_000), &json!(5_000)));
    expect(&seen, "REFUNDED", "NONE", 0);

    // 10 concurrent authorizations of one order (a double-clicked "pay",
    // here with the `manual` provider): one authorizes the total, the
    // others find it authorized.
    let (token, id, _) = placed_order(&app, "double-click@test.example").await;
    let answers: Vec<Value> = futures::stream::iter(0..10)
        .map(|_| authorize(&app, &token, &id, "manual", "bank transfer"))
        .buffer_unordered(10)
        .collect()
        .await;
    let authorized: Vec<&Value> = answers.iter().filter(|a| a["userErrors"] == json!([])).collect();
    assert_eq!(authorized.len(), 1, "{answers:?}");
    assert_eq!(authorized[0]["payment"]["provider"], "manual");
    assert!(answers.iter().filter(|a| a["userErrors"] != json!([])).all(|a| codes(a) == vec!["ALREADY_AUTHORIZED"]));
    let seen = order(&app, &token, &id).await;
    assert_eq!(seen["payments"].as_array().unwrap().len(), 1, "{seen}");
    assert_eq!(seen["payments"][0]["authorized"]["amount"], 5_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_captures_cannot_exceed_the_authorization_sqlite() {
    concurrent_captures_cannot_exceed_the_authorization(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_captures_cannot_exceed_the_authorization_postgres() {
    concurrent_captures_cannot_exceed_the_authorization(Backend::Postgres).await;
}

// --- webhooks --------------------------------------------------------------------

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// POSTs a webhook body with a signature header; returns (status, JSON).
async fn deliver(app: &TestApp, provider: &str, body: &[u8], signature: Option<&str>) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!("http://{}/webhooks/payments/{provider}", app.http))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("webhook-signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn event(id: &str, kind: &str, reference: &str, amount: Option<i64>) -> Vec<u8> {
    let mut data = json!({ "reference": reference });
    if let Some(amount) = amount {
        data["amount"] = json!(amount);
        data["currency"] = json!("USD");
    }
    serde_json::to_vec(&json!({ "id": id, "type": kind, "data": data })).unwrap()
}

async fn webhooks_complete_payments_once_and_forgeries_fail(backend: Backend) {
    let app = payment_app(backend).await;
    let secret = app.test_webhook_secret();
    let (token, id, _) = placed_order(&app, "action@test.example").await;

    let pending = authorize(&app, &token, &id, "test", REQUIRES_ACTION).await;
    let payment = pending["payment"].clone();
    assert_eq!(payment["status"], "REQUIRES_ACTION", "{pending}");
    assert!(payment["nextStep"].as_str().unwrap().starts_with("https://"), "{payment}");
    expect(&pending["order"], "PENDING_PAYMENT", "NONE", 0);
    let reference = payment["reference"].as_str().unwrap().to_string();
    let body = event("evt_capture_1", "payment.captured", &reference, Some(5_000));
    let unchanged = || {
        let (app, token, id) = (&app, token.clone(), id.clone());
        async move {
            let seen = order(app, &token, &id).await;
            expect(&seen, "PENDING_PAYMENT", "NONE", 0);
            assert_eq!(seen["payments"][0]["status"], "REQUIRES_ACTION");
        }
    };

    // Forgeries: signed with another secret, a tampered body, no
    // signature, a stale or future timestamp, garbage.
    let forged = polyscale_host::capabilities::payments::WebhookSecret::new(b"not-the-secret-at-all");
    let other_body = event("evt_capture_1", "payment.captured", &reference, Some(4_000));
    // Well past the 5-minute window (its edge is pinned by the host's unit
    // test; a second ticking between signing and checking must not matter).
    let stale = now_s() - 310;
    for (signature, why) in [
        (Some(forged.sign(now_s(), &body)), "another secret"),
        (Some(secret.sign(now_s(), &other_body)), "another body"),
        (None, "no signature"),
        (Some(secret.sign(stale, &body)), "stale"),
        (Some(secret.sign(now_s() + 310, &body)), "from the future"),
        (Some("t=1,v1=zz".to_string()), "garbage"),
    ] {
        let (status, answer) = deliver(&app, "test", &body, signature.as_deref()).await;
        assert_eq!(status, 401, "{why}: {answer}");
        unchanged().await;
    }
    // A body too large, a provider without webhooks, an unknown provider.
    let huge = vec![b' '; 64 * 1024 + 1];
    assert_eq!(deliver(&app, "test", &huge, Some(&secret.sign(now_s(), &huge))).await.0, 413);
    assert_eq!(deliver(&app, "manual", &body, Some(&secret.sign(now_s(), &body))).await.0, 404);
    assert_eq!(deliver(&app, "nope", &body, Some(&secret.sign(now_s(), &body))).await.0, 404);
    // Signed but not an event.
    let junk = br#"{"hello":"world"}"#;
    assert_eq!(deliver(&app, "test", junk, Some(&secret.sign(now_s(), junk))).await.0, 400);
    unchanged().await;

    // Around the gateway: the order service's gRPC port refuses a webhook
    // without the gateway's service token, however well signed.
    let mut grpc = pb::order_service_client::OrderServiceClient::new(app.channel().await);
    let direct = grpc
        .apply_payment_webhook(pb::ApplyPaymentWebhookRequest {
            provider: "test".into(),
            body: body.clone(),
            signature: secret.sign(now_s(), &body),
        })
        .await
        .unwrap_err();
    assert_eq!(direct.code(), tonic::Code::PermissionDenied, "{direct:?}");
    unchanged().await;

    // The real thing: applied once.
    let (status, answer) = deliver(&app, "test", &body, Some(&secret.sign(now_s(), &body))).await;
    assert_eq!((status, &answer["applied"]), (200, &json!(true)), "{answer}");
    let paid = order(&app, &token, &id).await;
    expect(&paid, "PAID", "FULL", 5_000);
    assert_eq!(paid["payments"][0]["status"], "CAPTURED");
    // Replayed (a provider retry), re-signed now: 200, applied before.
    for _ in 0..3 {
        let (status, answer) = deliver(&app, "test", &body, Some(&secret.sign(now_s(), &body))).await;
        assert_eq!((status, &answer["applied"]), (200, &json!(false)), "{answer}");
    }
    // Another event id with the same running total changes nothing either.
    let echo = event("evt_capture_2", "payment.captured", &reference, Some(5_000));
    assert_eq!(deliver(&app, "test", &echo, Some(&secret.sign(now_s(), &echo))).await.0, 200);
    let after = order(&app, &token, &id).await;
    expect(&after, "PAID", "FULL", 5_000);
    assert_eq!(after["payments"][0]["captured"]["amount"], 5_000);

    // A refund made at the provider's dashboard arrives as an event.
    let refunded = event("evt_refund_1", "payment.refunded", &reference, Some(1_500));
    assert_eq!(deliver(&app, "test", &refunded, Some(&secret.sign(now_s(), &refunded))).await.0, 200);
    expect(&order(&app, &token, &id).await, "PARTIALLY_REFUNDED", "PARTIAL", 3_500);
    // An event claiming more than was captured is refused, and changes nothing.
    let too_much = event("evt_refund_2", "payment.refunded", &reference, Some(9_000));
    assert_eq!(deliver(&app, "test", &too_much, Some(&secret.sign(now_s(), &too_much))).await.0, 400);
    expect(&order(&app, &token, &id).await, "PARTIALLY_REFUNDED", "PARTIAL", 3_500);

    // A failed action: the payment fails, the order stays unpaid.
    let (token2, id2, _) = placed_order(&app, "failed@test.example").await;
    let reference2 = authorize(&app, &token2, &id2, "test", REQUIRES_ACTION).await["payment"]["reference"]
        .as_str()
        .unwrap()
        .to_string();
    let failed = event("evt_fail_1", "payment.failed", &reference2, None);
    assert_eq!(deliver(&app, "test", &failed, Some(&secret.sign(now_s(), &failed))).await.0, 200);
    let seen = order(&app, &token2, &id2).await;
    expect(&seen, "PENDING_PAYMENT", "NONE", 0);
    assert_eq!(seen["payments"][0]["status"], "FAILED");
    // ... and may be paid with another card.
    assert_eq!(authorize(&app, &token2, &id2, "test", SUCCEEDS).await["payment"]["status"], "AUTHORIZED");

    // The provider's secret never reached the order database.
    if let Backend::Sqlite = backend {
        let secret_text = std::fs::read_to_string(
            app.data_dir.path().join("keys").join(polyscale::embedded::TEST_WEBHOOK_SECRET_FILE),
        )
        .unwrap();
        for file in ["order.db", "order.db-wal"] {
            if let Ok(bytes) = std::fs::read(app.data_dir.path().join(file)) {
                assert!(
                    !bytes.windows(secret_text.len()).any(|w| w == secret_text.as_bytes()),
                    "the webhook secret is in {file}"
                );
            }
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(app.data_dir.path().join("keys").join(polyscale::embedded::TEST_WEBHOOK_SECRET_FILE))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_complete_payments_once_and_forgeries_fail_sqlite() {
    webhooks_complete_payments_once_and_forgeries_fail(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_complete_payments_once_and_forgeries_fail_postgres() {
    webhooks_complete_payments_once_and_forgeries_fail(Backend::Postgres).await;
}
