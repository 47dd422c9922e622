//! Accounts, sessions, tokens and authorization, over GraphQL and gRPC.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use polyscale::embedded::TuneCredentials;
use polyscale_host::capabilities::credentials::{Argon2Params, Clock, CredentialsConfig};
use polyscale_proto::account::v1 as account_pb;
use polyscale_proto::account::v1::account_service_client::AccountServiceClient;
use polyscale_proto::product::v1 as pb;
use serde_json::{Value, json};

use crate::app::{Backend, Options, PASSWORD, TestApp, create_product, product_input};

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_default()
}

fn user_codes(payload: &Value) -> Vec<String> {
    payload["userErrors"].as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap().to_string()).collect()
}

const ME: &str = "{ me { id email displayName roles defaultAddress { city country } } }";
const REFRESH: &str = "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken userErrors { field code message } } }";

async fn me_status(app: &TestApp, token: &str) -> Result<Value, String> {
    let (status, body) = app.post_as(Some(token), json!({ "query": ME })).await;
    if status == 200 && body.get("errors").is_none() {
        Ok(body["data"]["me"].clone())
    } else {
        Err(format!("{status} {}", code(&body)))
    }
}

async fn account_lifecycle(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    // Register (signs in too).
    let registered = app.register("Ann.Lee@Example.com", PASSWORD).await;
    assert_eq!(registered["userErrors"], json!([]));
    assert_eq!(registered["account"]["email"], "ann.lee@example.com");
    assert_eq!(registered["account"]["roles"], json!(["CUSTOMER"]));

    // Log in (email case and spaces do not matter) and read `me`.
    let session = app.login("  ANN.LEE@example.com ", PASSWORD).await;
    assert_eq!(session["userErrors"], json!([]));
    let access = session["accessToken"].as_str().unwrap().to_string();
    let refresh = session["refreshToken"].as_str().unwrap().to_string();
    let me = me_status(&app, &access).await.unwrap();
    assert_eq!(me["email"], "ann.lee@example.com");

    // Update the profile.
    let data = app
        .graphql_as(
            Some(&access),
            "mutation { updateProfile(input: { displayName: \"Ann\", defaultAddress: { line1: \"1 Main St\", city: \"Berlin\", postalCode: \"10115\", country: \"de\" } }) { account { displayName defaultAddress { city country } } userErrors { field code } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["updateProfile"]["account"],
        json!({ "displayName": "Ann", "defaultAddress": { "city": "Berlin", "country": "DE" } })
    );
    let data = app
        .graphql_as(Some(&access), "mutation { updateProfile(input: { defaultAddress: { line1: \"\", city: \"X\", postalCode: \"1\", country: \"Germany\" } }) { userErrors { field code } } }", json!({}))
        .await;
    assert_eq!(
        data["updateProfile"]["userErrors"],
        json!([{ "field": ["input", "defaultAddress", "line1"], "code": "REQUIRED" }, { "field": ["input", "defaultAddress", "country"], "code": "INVALID_COUNTRY" }])
    );

    // Refresh: new tokens; the old refresh token is spent.
    let data = app.graphql(REFRESH, json!({ "t": refresh })).await;
    let rotated = data["refreshToken"].clone();
    assert_eq!(rotated["userErrors"], json!([]));
    let refresh2 = rotated["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(refresh2, refresh);
    assert!(me_status(&app, rotated["accessToken"].as_str().unwrap()).await.is_ok());

    // Reusing the spent token is detected and ends the whole session: the
    // rotated token dies with it, and so do the session's access tokens at
    // the account service.
    let data = app.graphql(REFRESH, json!({ "t": refresh })).await;
    assert_eq!(user_codes(&data["refreshToken"]), ["REFRESH_TOKEN_REUSED"]);
    let data = app.graphql(REFRESH, json!({ "t": refresh2 })).await;
    assert_eq!(user_codes(&data["refreshToken"]), ["INVALID_REFRESH_TOKEN"]);
    assert_eq!(me_status(&app, &access).await, Err("200 UNAUTHENTICATED".into()));

    // Two live sessions; changing the password in one ends the other.
    let one = app.login("ann.lee@example.com", PASSWORD).await;
    let two = app.login("ann.lee@example.com", PASSWORD).await;
    let new_password = "a much better passphrase";
    let data = app
        .graphql_as(
            one["accessToken"].as_str(),
            "mutation($c: String!, $n: String!) { changePassword(input: { currentPassword: $c, newPassword: $n }) { accessToken refreshToken userErrors { field code } } }",
            json!({ "c": PASSWORD, "n": new_password }),
        )
        .await;
    let changed = data["changePassword"].clone();
    assert_eq!(changed["userErrors"], json!([]));
    assert_eq!(me_status(&app, two["accessToken"].as_str().unwrap()).await, Err("200 UNAUTHENTICATED".into()));
    let data = app.graphql(REFRESH, json!({ "t": two["refreshToken"] })).await;
    assert_eq!(user_codes(&data["refreshToken"]), ["INVALID_REFRESH_TOKEN"]);
    assert!(me_status(&app, changed["accessToken"].as_str().unwrap()).await.is_ok());
    assert_eq!(user_codes(&app.login("ann.lee@example.com", PASSWORD).await), ["INVALID_CREDENTIALS"]);
    let fresh = app.login("ann.lee@example.com", new_password).await;
    assert_eq!(fresh["userErrors"], json!([]));

    // A wrong current password changes nothing.
    let data = app
        .graphql_as(
            fresh["accessToken"].as_str(),
            "mutation { changePassword(input: { currentPassword: \"nope nope nope\", newPassword: \"another long passphrase\" }) { userErrors { field code } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["changePassword"]["userErrors"],
        json!([{ "field": ["input", "currentPassword"], "code": "INCORRECT_PASSWORD" }])
    );

    // Logout ends the session.
    let data = app
        .graphql(
            "mutation($t: String!) { logout(refreshToken: $t) { userErrors { code } } }",
            json!({ "t": fresh["refreshToken"] }),
        )
        .await;
    assert_eq!(data["logout"]["userErrors"], json!([]));
    let data = app.graphql(REFRESH, json!({ "t": fresh["refreshToken"] })).await;
    assert_eq!(user_codes(&data["refreshToken"]), ["INVALID_REFRESH_TOKEN"]);
    assert_eq!(me_status(&app, fresh["accessToken"].as_str().unwrap()).await, Err("200 UNAUTHENTICATED".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn account_lifecycle_on_sqlite() {
    account_lifecycle(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn account_lifecycle_on_postgres() {
    account_lifecycle(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_registrations_store_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert_eq!(app.register("ann@example.com", PASSWORD).await["userErrors"], json!([]));
    let register = "mutation($input: RegisterInput!) { register(input: $input) { account { id } accessToken userErrors { field code } } }";
    let cases = [
        (json!({ "email": "ANN@example.com ", "password": PASSWORD, "displayName": "Ann 2" }), "EMAIL_TAKEN"),
        (json!({ "email": "bob@example.com", "password": "short", "displayName": "Bob" }), "PASSWORD_TOO_SHORT"),
        (json!({ "email": "bob@example.com", "password": "password123", "displayName": "Bob" }), "PASSWORD_TOO_COMMON"),
        (
            json!({ "email": "bob@example.com", "password": "bob@example.com", "displayName": "Bob" }),
            "PASSWORD_CONTAINS_EMAIL",
        ),
        (json!({ "email": "not an email", "password": PASSWORD, "displayName": "Bob" }), "INVALID_EMAIL"),
        (json!({ "email": "bob@example.com", "password": PASSWORD, "displayName": "  " }), "REQUIRED"),
    ];
    for (input, expected) in cases {
        let data = app.graphql(register, json!({ "input": input })).await;
        let payload = &data["register"];
        assert_eq!(payload["account"], Value::Null, "{input}");
        assert_eq!(payload["accessToken"], Value::Null);
        assert!(user_codes(payload).contains(&expected.to_string()), "{input}: {payload}");
    }
    // None of the refused registrations left an account behind.
    assert_eq!(user_codes(&app.login("bob@example.com", PASSWORD).await), ["INVALID_CREDENTIALS"]);
    assert_eq!(app.register("bob@example.com", PASSWORD).await["userErrors"], json!([]));
}

/// Tokens signed with the system's own key but wrong in some other way,
/// and forgeries.
fn bad_tokens(app: &TestApp, good: &str) -> Vec<(&'static str, String)> {
    let pem = std::fs::read_to_string(app.data_dir.path().join("keys/token-signing-key.pem")).unwrap();
    let key = EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
    let public = polyscale_auth::KeyPair::from_private_pem(&pem).unwrap().public_pem().to_string();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = |aud: &str, exp: u64| json!({ "iss": "polyscale", "aud": aud, "sub": "someone", "sid": "s", "roles": ["admin"], "iat": now - 600, "nbf": now - 600, "exp": exp, "jti": "j" });
    let b64 = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let parts: Vec<&str> = good.split('.').collect();
    vec![
        (
            "expired",
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims("polyscale-api", now - 120), &key).unwrap(),
        ),
        (
            "another audience",
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims("another-api", now + 600), &key).unwrap(),
        ),
        (
            "alg none",
            format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "JWT" })), b64(&claims("polyscale-api", now + 600))),
        ),
        (
            "HS256 keyed with the public key",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims("polyscale-api", now + 600),
                &EncodingKey::from_secret(public.as_bytes()),
            )
            .unwrap(),
        ),
        ("payload swapped", format!("{}.{}.{}", parts[0], b64(&claims("polyscale-api", now + 600)), parts[2])),
        ("garbage", "not-a-token".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_tokens_are_refused_at_the_gateway_and_the_services() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.register("ann@example.com", PASSWORD).await;
    let good = app.login("ann@example.com", PASSWORD).await["accessToken"].as_str().unwrap().to_string();
    assert!(me_status(&app, &good).await.is_ok());

    let mut products = app.products().await;
    for (what, token) in bad_tokens(&app, &good) {
        // The gateway: 401 and UNAUTHENTICATED, even for a public query.
        let response = app
            .client
            .post(app.url())
            .bearer_auth(&token)
            .json(&json!({ "query": "{ categories { id } }" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{what}");
        assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), "UNAUTHENTICATED", "{what}");

        // A service called directly, bypassing the gateway, refuses it too.
        let mut request = tonic::Request::new(pb::CreateCategoryRequest { name: "Forged".into(), parent_id: None });
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        let status = products.create_category(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{what}: {status:?}");
    }
    let data = app.graphql("{ categories { id } }", json!({})).await;
    assert_eq!(data["categories"], json!([]));

    // The account service, called directly over gRPC, refuses every one
    // of them too, and accepts the good token.
    let mut accounts = AccountServiceClient::new(app.channel().await);
    let me = |token: &str| {
        let mut request = tonic::Request::new(account_pb::MeRequest {});
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    };
    for (what, token) in bad_tokens(&app, &good) {
        let status = accounts.me(me(&token)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{what}: {status:?}");
    }
    let status = accounts.me(account_pb::MeRequest {}).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "no token: {status:?}");
    assert_eq!(accounts.me(me(&good)).await.unwrap().into_inner().email, "ann@example.com");

    // No token at all: `me` is UNAUTHENTICATED.
    let body = app.graphql_err(ME, json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_owners_and_admins_manage_products() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let product = create_product(&app, product_input("Owned", 1000, 5)).await;
    let id = product["id"].as_str().unwrap().to_string();
    let (_, other_merchant) = app.new_merchant("other@example.com").await;
    app.register("customer@example.com", PASSWORD).await;
    let customer = app.login("customer@example.com", PASSWORD).await["accessToken"].as_str().unwrap().to_string();
    let admin = app.admin_token().await;

    let create = "mutation($input: CreateProductInput!) { createProduct(input: $input) { product { id merchantId } userErrors { code } } }";
    let writes = [
        (
            "mutation($id: ID!) { updateProduct(id: $id, input: { name: \"Mine now\" }) { product { id } userErrors { code } } }",
            json!({ "id": id }),
        ),
        (
            "mutation($id: ID!) { adjustStock(id: $id, delta: -5) { product { id } userErrors { code } } }",
            json!({ "id": id }),
        ),
        ("mutation($id: ID!) { deleteProduct(id: $id) { deletedProductId userErrors { code } } }", json!({ "id": id })),
    ];
    // Anonymous: UNAUTHENTICATED. Customer: FORBIDDEN. Another merchant:
    // FORBIDDEN for someone else's product.
    for (token, expected) in [
        (None, "UNAUTHENTICATED"),
        (Some(customer.as_str()), "FORBIDDEN"),
        (Some(other_merchant.as_str()), "FORBIDDEN"),
    ] {
        for (query, vars) in &writes {
            let body = app.graphql_err_as(token, query, vars.clone()).await;
            assert_eq!(code(&body), expected, "{query} as {token:?}");
        }
    }
    for (token, expected) in [(None, "UNAUTHENTICATED"), (Some(customer.as_str()), "FORBIDDEN")] {
        let body = app.graphql_err_as(token, create, json!({ "input": product_input("Nope", 1, 1) })).await;
        assert_eq!(code(&body), expected);
        let body = app
            .graphql_err_as(
                token,
                "mutation { createCategory(input: { name: \"Nope\" }) { category { id } } }",
                json!({}),
            )
            .await;
        assert_eq!(code(&body), expected);
    }
    // A merchant may not create products in another merchant's name, nor
    // categories.
    let (merchant_id, merchant) = app.merchant().await;
    let mut input = product_input("Impostor", 1, 1);
    input["merchantId"] = json!(merchant_id);
    let body = app.graphql_err_as(Some(&other_merchant), create, json!({ "input": input })).await;
    assert_eq!(code(&body), "FORBIDDEN");
    let body = app
        .graphql_err_as(
            Some(&merchant),
            "mutation { createCategory(input: { name: \"Nope\" }) { category { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");

    // Nothing changed.
    let data = app.graphql("query($id: ID!) { product(id: $id) { name stock } } ", json!({ "id": id })).await;
    assert_eq!(data["product"], json!({ "name": "Owned", "stock": 5 }));
    let data = app.graphql("{ products { totalCount } categories { id } }", json!({})).await;
    assert_eq!(data["products"]["totalCount"], 1);
    assert_eq!(data["categories"], json!([]));

    // Admins may manage any product, and must say whose product they create.
    let data = app.graphql_as(Some(&admin), writes[1].0, writes[1].1.clone()).await;
    assert_eq!(data["adjustStock"]["userErrors"], json!([]));
    let data = app.graphql_as(Some(&admin), create, json!({ "input": product_input("Unowned", 1, 1) })).await;
    assert_eq!(user_codes(&data["createProduct"]), ["REQUIRED"]);
    let mut input = product_input("For a merchant", 1, 1);
    input["merchantId"] = json!(merchant_id);
    let data = app.graphql_as(Some(&admin), create, json!({ "input": input })).await;
    assert_eq!(data["createProduct"]["product"]["merchantId"], json!(merchant_id));

    // Only admins grant roles.
    let body = app
        .graphql_err_as(
            Some(&merchant),
            "mutation($id: ID!) { grantMerchant(accountId: $id, storeName: \"X\") { account { id } } }",
            json!({ "id": merchant_id }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
}

/// The component checks ownership itself: a valid customer token sent
/// straight to the product service (no gateway) is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn components_check_ownership_without_the_gateway() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let product = create_product(&app, product_input("Guarded", 1000, 5)).await;
    app.register("customer@example.com", PASSWORD).await;
    let customer = app.login("customer@example.com", PASSWORD).await["accessToken"].as_str().unwrap().to_string();
    let mut products = app.products().await;
    let mut request =
        tonic::Request::new(pb::AdjustStockRequest { id: product["id"].as_str().unwrap().into(), delta: -5 });
    request.metadata_mut().insert("authorization", format!("Bearer {customer}").parse().unwrap());
    let status = products.adjust_stock(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    let status = products
        .adjust_stock(pb::AdjustStockRequest { id: product["id"].as_str().unwrap().into(), delta: -5 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
}

/// A clock the test moves by hand (the credentials capability reads it for
/// throttling and sessions), so waits are checked exactly, without sleeping.
#[derive(Clone)]
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn new() -> Self {
        Self(Arc::new(AtomicI64::new(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64,
        )))
    }
    fn advance_s(&self, seconds: u64) {
        self.0.fetch_add(seconds as i64 * 1000, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn with_clock(backend: Backend, clock: &TestClock) -> Options {
    let clock = clock.clone();
    let tune: TuneCredentials = Box::new(move |c: &mut CredentialsConfig| {
        c.clock = Arc::new(clock.clone());
        // Cheap hashing: this test makes over a hundred password checks.
        c.argon2 = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    });
    Options { credentials: Some(tune), ..Options::new(backend) }
}

/// The wait a TOO_MANY_ATTEMPTS answer asks for, in seconds; None if the
/// login was not throttled.
fn wait_s(login: &Value) -> Option<u64> {
    if user_codes(login) != ["TOO_MANY_ATTEMPTS"] {
        return None;
    }
    let message = login["userErrors"][0]["message"].as_str().unwrap();
    Some(message.split("try again in ").nth(1).unwrap().trim_end_matches(" s").parse().unwrap())
}

/// Fails `failures` logins as `email` from `address(i)`; whenever told to
/// wait, moves the clock by exactly that wait and tries again. Returns the
/// waits asked for, in seconds.
async fn hammer(
    app: &TestApp,
    clock: &TestClock,
    email: impl Fn(usize) -> String,
    address: impl Fn(usize) -> String,
    failures: usize,
) -> Vec<u64> {
    let mut waits = Vec::new();
    let mut i = 0;
    while i < failures {
        let login = app.login_from(Some(&address(i)), &email(i), "wrong guess 123").await;
        match wait_s(&login) {
            Some(s) => {
                waits.push(s);
                clock.advance_s(s);
            }
            None => {
                assert_eq!(user_codes(&login), ["INVALID_CREDENTIALS"]);
                i += 1;
            }
        }
    }
    waits
}

/// The waits, in seconds, a doubling rule imposes after failures
/// `free+1..=failures`.
fn doubling(free: usize, base_s: u64, cap_s: u64, failures: usize) -> Vec<u64> {
    (free + 1..=failures).map(|n| (base_s << (n - free - 1)).min(cap_s)).collect()
}

async fn brute_force_is_slowed_without_locking_out_the_owner(backend: Backend) {
    let clock = TestClock::new();
    let app = TestApp::spawn_with(with_clock(backend, &clock)).await;
    app.register("victim@example.com", PASSWORD).await;
    let victim = |_| "victim@example.com".to_string();

    // One attacker address: 5 misses are free, the 6th makes it wait, even
    // with the right password.
    for _ in 0..6 {
        let login = app.login_from(Some("203.0.113.7"), "victim@example.com", "wrong guess 123").await;
        assert_eq!(user_codes(&login), ["INVALID_CREDENTIALS"]);
    }
    let throttled = app.login_from(Some("203.0.113.7"), "victim@example.com", PASSWORD).await;
    assert_eq!(wait_s(&throttled), Some(2));

    // The owner, elsewhere, signs in at once.
    let owner = app.login_from(Some("198.51.100.20"), "victim@example.com", PASSWORD).await;
    assert_eq!(owner["userErrors"], json!([]));

    // Guesses spread over many addresses slow the account, each wait
    // doubling from 1 s, but never past a minute.
    let waits = hammer(&app, &clock, victim, |i| format!("192.0.2.{i}"), 30).await;
    assert_eq!(waits, doubling(10, 1, 60, 29));
    assert_eq!(waits.iter().max(), Some(&60));
    // The owner waits out that minute at most, then gets in.
    let slowed = app.login_from(Some("198.51.100.20"), "victim@example.com", PASSWORD).await;
    assert_eq!(wait_s(&slowed), Some(60));
    clock.advance_s(60);
    let owner = app.login_from(Some("198.51.100.20"), "victim@example.com", PASSWORD).await;
    assert_eq!(owner["userErrors"], json!([]), "{owner}");

    // One address hammering the account waits up to 15 minutes.
    let waits = hammer(&app, &clock, victim, |_| "203.0.113.8".into(), 25).await;
    assert_eq!(waits.iter().max(), Some(&900));
    assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
    let attacker = app.login_from(Some("203.0.113.8"), "victim@example.com", PASSWORD).await;
    assert_eq!(wait_s(&attacker), Some(900));

    // Unknown emails count against the address too, up to 15 minutes.
    let waits = hammer(&app, &clock, |i| format!("nobody{i}@example.com"), |_| "203.0.113.99".into(), 32).await;
    assert_eq!(waits, doubling(20, 2, 900, 31));
    let known = app.login_from(Some("203.0.113.99"), "victim@example.com", PASSWORD).await;
    assert_eq!(wait_s(&known), Some(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn brute_force_is_slowed_without_locking_out_the_owner_on_sqlite() {
    brute_force_is_slowed_without_locking_out_the_owner(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn brute_force_is_slowed_without_locking_out_the_owner_on_postgres() {
    brute_force_is_slowed_without_locking_out_the_owner(Backend::Postgres).await;
}

/// By default (`trusted_proxy_hops = 0`) the gateway ignores a
/// client's `X-Forwarded-For`: throttling is keyed on the real peer, so an
/// attacker cannot dodge the per-address rules by making addresses up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_sent_x_forwarded_for_is_ignored_by_default() {
    let app = TestApp::spawn_with(Options { trusted_proxy_hops: 0, ..Options::new(Backend::Sqlite) }).await;
    app.register("victim@example.com", PASSWORD).await;
    for i in 0..6 {
        let login = app.login_from(Some(&format!("192.0.2.{i}")), "victim@example.com", "wrong guess 123").await;
        assert_eq!(user_codes(&login), ["INVALID_CREDENTIALS"]);
    }
    // Six different claimed addresses, one real peer: the pair rule (five
    // free failures per account and address) applies, whatever is claimed.
    let login = app.login_from(Some("198.51.100.20"), "victim@example.com", PASSWORD).await;
    assert_eq!(wait_s(&login), Some(2), "{login}");
    let login = app.login_from(None, "victim@example.com", PASSWORD).await;
    assert_eq!(wait_s(&login), Some(2), "{login}");
}

/// Pinned behaviour (docs/architecture.md, "Identity and secrets"): after
/// logout the account service refuses the session's access token at once,
/// but the product service, which only verifies the signature and expiry,
/// accepts it until it expires (at most 15 minutes). If the product service
/// starts checking sessions, change this test on purpose.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logged_out_access_token_is_refused_by_accounts_but_accepted_by_products_until_expiry() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, token) = app.new_merchant("leaving@example.com").await;
    let session = app.login("leaving@example.com", PASSWORD).await;
    let (access, refresh) =
        (session["accessToken"].as_str().unwrap().to_string(), session["refreshToken"].as_str().unwrap().to_string());
    assert!(me_status(&app, &access).await.is_ok());
    let data = app
        .graphql_as(
            Some(&access),
            "mutation($t: String!) { logout(refreshToken: $t) { userErrors { code } } }",
            json!({ "t": refresh }),
        )
        .await;
    assert_eq!(data["logout"]["userErrors"], json!([]));

    // The account service: refused at once.
    assert_eq!(me_status(&app, &access).await, Err("200 UNAUTHENTICATED".to_string()));
    // The product service: still accepted (the token has not expired).
    let data = app
        .graphql_as(
            Some(&access),
            "mutation($input: CreateProductInput!) { createProduct(input: $input) { product { id } userErrors { code } } }",
            json!({ "input": product_input("After logout", 100, 1) }),
        )
        .await;
    assert_eq!(data["createProduct"]["userErrors"], json!([]), "{data}");
    assert!(data["createProduct"]["product"]["id"].is_string());
    // The merchant's other session is unaffected everywhere.
    assert!(me_status(&app, &token).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_hashes_stay_in_the_credentials_store() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.register("ann@example.com", PASSWORD).await;
    let session = app.login("ann@example.com", PASSWORD).await;
    let dir = app.stop().await;
    let read = |name: &str| {
        let mut bytes = std::fs::read(dir.path().join(name)).unwrap_or_default();
        bytes.extend(std::fs::read(dir.path().join(format!("{name}-wal"))).unwrap_or_default());
        String::from_utf8_lossy(&bytes).to_string()
    };
    let accounts = read("account.db");
    let credentials = read("credentials.db");
    assert!(accounts.contains("ann@example.com"));
    assert!(!accounts.contains("$argon2"), "a password hash is in the account database");
    assert!(credentials.contains("$argon2id$v=19$m=19456,t=2,p=1$"), "hashes use argon2id at OWASP parameters");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("credentials.db")).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the credentials store is readable by others: {mode:o}");
    for secret in [PASSWORD, session["refreshToken"].as_str().unwrap()] {
        assert!(!accounts.contains(secret) && !credentials.contains(secret), "a secret is stored in clear");
    }
}

/// Whether a gRPC login was refused as throttled (TOO_MANY_ATTEMPTS).
fn throttled(status: &tonic::Status) -> bool {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .is_some_and(|b| b.field_violations.iter().any(|v| v.reason == "TOO_MANY_ATTEMPTS"))
}

/// The client address header is believed only from the gateway (which
/// proves itself with its service token). A client calling the account
/// service directly with a new spoofed `x-polyscale-client-address` on each
/// guess still has every guess counted against its real address: after
/// the five free misses, even the right password is throttled. Before,
/// each guess looked like it came from a fresh address and the right
/// password got in. A forged gateway token is refused outright.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_address_header_is_believed_only_from_the_gateway() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.register("victim@example.com", PASSWORD).await;
    let mut accounts = AccountServiceClient::new(app.channel().await);
    let login = |password: &str, address: String| {
        let mut request = tonic::Request::new(account_pb::LoginRequest {
            email: "victim@example.com".into(),
            password: password.into(),
        });
        request.metadata_mut().insert(polyscale_proto::metadata::CLIENT_ADDRESS, address.parse().unwrap());
        request
    };
    for i in 0..6 {
        let refused = accounts.login(login("wrong guess 123", format!("198.51.100.{i}"))).await.unwrap_err();
        assert!(!throttled(&refused), "guess {i}: {refused:?}");
    }
    let refused = accounts.login(login(PASSWORD, "198.51.100.99".into())).await.expect_err("throttled");
    assert!(throttled(&refused), "the spoofed address escaped the throttle: {refused:?}");

    // A made-up gateway token is no way to be believed either.
    let mut forged = login(PASSWORD, "198.51.100.100".into());
    forged
        .metadata_mut()
        .insert(polyscale_proto::metadata::GATEWAY_TOKEN, "eyJhbGciOiJIUzI1NiJ9.e30.c2ln".parse().unwrap());
    let refused = accounts.login(forged).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");

    // Through the gateway (which the test trusts with X-Forwarded-For),
    // the owner at another address signs in at once.
    let signed_in = app.login_from(Some("192.0.2.1"), "victim@example.com", PASSWORD).await;
    assert!(signed_in["accessToken"].is_string(), "{signed_in}");
}

/// The `sid` claim of an access token (read, not verified).
fn session_of(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["sid"].as_str().unwrap().to_string()
}

/// A hostile account component (deployed into the account slot through
/// the admin plane) cannot mint an admin token, nor a session or token for
/// another account, nor set its password, nor grant itself a role: the
/// credentials capability acts only for accounts the call proved. The
/// victim's password and sessions are untouched afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_account_component_cannot_act_for_accounts_it_did_not_prove() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let victim = app.register("victim@example.com", PASSWORD).await;
    let victim_id = victim["account"]["id"].as_str().unwrap().to_string();
    let victim_session = session_of(victim["accessToken"].as_str().unwrap());
    let mut admin = app.admin().await;
    let versions = |admin: &mut polyscale_proto::admin::v1::component_admin_client::ComponentAdminClient<_>| {
        let mut admin = admin.clone();
        async move {
            admin
                .list_versions(polyscale_proto::admin::v1::ListVersionsRequest { component: "account".into() })
                .await
                .unwrap()
                .into_inner()
                .versions
        }
    };
    let real = versions(&mut admin).await.into_iter().find(|v| v.active).unwrap().version;
    admin
        .deploy_component(polyscale_proto::admin::v1::DeployComponentRequest {
            component: "account".into(),
            wasm: polyscale_test_components::HOSTILE_ACCOUNT.to_vec(),
            activate: true,
        })
        .await
        .expect("the hostile component deploys");

    let attack = |email: String| {
        let app = &app;
        async move {
            app.post(json!({
                "query": "mutation($input: LoginInput!) { login(input: $input) { accessToken userErrors { code message } } }",
                "variables": { "input": { "email": email, "password": "attacker's choice 123" } },
            }))
            .await
            .1
        }
    };
    for email in [
        format!("mint-admin:{victim_id}:{victim_session}"),
        format!("session-for:{victim_id}"),
        format!("set-password:{victim_id}"),
        "self-admin:01JHOSTILE0000000000000000".to_string(),
        "grant-self:01JHOSTILE0000000000000000".to_string(),
    ] {
        let body = attack(email.clone()).await;
        assert!(body["data"]["login"]["accessToken"].is_null() || body["data"]["login"].is_null(), "{email}: {body}");
        assert_eq!(code(&body), "FORBIDDEN", "{email}: {body}");
        assert!(body.to_string().contains("refused: CredentialsError::NotPermitted"), "{email}: {body}");
    }

    // Back on the real component: the victim's password is unchanged and
    // the session the attacker named is still the victim's own.
    admin
        .activate_version(polyscale_proto::admin::v1::ActivateVersionRequest {
            component: "account".into(),
            version: real,
        })
        .await
        .unwrap();
    let wrong = app.login("victim@example.com", "attacker's choice 123").await;
    assert_eq!(user_codes(&wrong), ["INVALID_CREDENTIALS"]);
    let again = app.login("victim@example.com", PASSWORD).await;
    assert_eq!(again["account"]["roles"], json!(["CUSTOMER"]));
    let me = app.graphql_as(victim["accessToken"].as_str(), "{ me { id } }", json!({})).await;
    assert_eq!(me["me"]["id"], victim_id.as_str());
}
