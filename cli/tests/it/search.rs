//! Product search through GraphQL: typos, filters and facets against the
//! database's truth, paging, index freshness, an engine outage, hostile
//! input and rebuilds.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use polyscale_host::capabilities::search::tantivy::TantivyBackend;
use polyscale_host::capabilities::search::{IndexOp, IndexSchema, Query, Results, SearchBackend, SearchError};
use polyscale_host::server::SearchEngineConfig;
use serde_json::{Value, json};

use crate::app::{Backend, Options, TestApp, create_product, product_input};

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_default()
}

const SEARCH: &str = "query($q: String, $f: ProductFilter, $s: ProductSort, $first: Int, $after: String) {
  products(query: $q, filter: $f, sort: $s, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id name stock price { amount } category { id } } }
    facets { categories { category { id name } count } prices { min max count } }
  }
}";

async fn search(app: &TestApp, vars: Value) -> Value {
    app.graphql(SEARCH, vars).await["products"].clone()
}

/// Polls until the search for `vars` matches `total` (the index follows
/// writes within moments).
async fn wait_for_total(app: &TestApp, vars: Value, total: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = app.post(json!({ "query": SEARCH, "variables": vars })).await;
        let result = body["data"]["products"].clone();
        if result["totalCount"] == total {
            return result;
        }
        assert!(Instant::now() < deadline, "search never reached {total}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A realistic little catalog across three categories; returns the
/// category ids by name.
async fn catalog(app: &TestApp) -> std::collections::HashMap<String, String> {
    let admin = app.admin_token().await;
    let mut categories = std::collections::HashMap::new();
    for name in ["Laptops", "Headphones", "Kitchen"] {
        let data = app
            .graphql_as(
                Some(&admin),
                "mutation($n: String!) { createCategory(input: { name: $n }) { category { id } } }",
                json!({ "n": name }),
            )
            .await;
        categories.insert(name.to_string(), data["createCategory"]["category"]["id"].as_str().unwrap().to_string());
    }
    let items = [
        ("Aero 13 Laptop", "Laptops"),
        ("Nimbus Pro Laptop", "Laptops"),
        ("Vector Gaming Laptop", "Laptops"),
        ("Hush Wireless Headphones", "Headphones"),
        ("Bassline Studio Headphones", "Headphones"),
        ("Cast Iron Skillet", "Kitchen"),
        ("Copper Kettle", "Kitchen"),
    ];
    for i in 0..35 {
        let (name, category) = items[i % items.len()];
        let mut input = product_input(&format!("{name} {i}"), 1_500 + (i as i64 * 1_337) % 120_000, (i % 4) as i64 * 3);
        input["categoryId"] = json!(categories[category]);
        create_product(app, input).await;
    }
    categories
}

/// Every product as the database has it (the listing reads SQL).
async fn all_from_sql(app: &TestApp) -> Vec<Value> {
    let data = app
        .graphql(
            "{ products(first: 100) { edges { node { id name stock price { amount } category { id } } } } }",
            json!({}),
        )
        .await;
    data["products"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect()
}

async fn search_agrees_with_the_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let categories = catalog(&app).await;
    wait_for_total(&app, json!({ "q": null, "s": "NEWEST" }), 35).await;
    let products = all_from_sql(&app).await;

    // A misspelling finds laptops, best first.
    let found = search(&app, json!({ "q": "lapotp", "first": 5 })).await;
    assert_eq!(found["totalCount"], 15);
    assert!(found["edges"].as_array().unwrap().iter().all(|e| e["node"]["name"].as_str().unwrap().contains("Laptop")));

    // Filters: exactly the products SQL says match; facets count them.
    let (laptops, headphones) = (&categories["Laptops"], &categories["Headphones"]);
    let filter =
        json!({ "categoryIds": [laptops, headphones], "priceMin": 10_000, "priceMax": 80_000, "inStock": true });
    let expected: Vec<&Value> = products
        .iter()
        .filter(|p| {
            let category = p["category"]["id"].as_str().unwrap();
            let price = p["price"]["amount"].as_i64().unwrap();
            (category == laptops || category == headphones)
                && (10_000..=80_000).contains(&price)
                && p["stock"].as_i64().unwrap() > 0
        })
        .collect();
    assert!(expected.len() > 3, "the fixture should make the filter meaningful");
    let found = search(&app, json!({ "f": filter, "first": 100 })).await;
    assert_eq!(found["totalCount"], expected.len());
    let mut got: Vec<&str> =
        found["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap()).collect();
    let mut want: Vec<&str> = expected.iter().map(|p| p["id"].as_str().unwrap()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // The category facet is exactly the non-empty buckets SQL predicts
    // (both categories of the filter have matches, so it cannot pass empty).
    let mut want_facets = std::collections::BTreeMap::new();
    for p in &expected {
        *want_facets.entry(p["category"]["id"].as_str().unwrap().to_string()).or_insert(0u64) += 1;
    }
    let got_facets: std::collections::BTreeMap<String, u64> = found["facets"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["category"]["id"].as_str().unwrap().to_string(), f["count"].as_u64().unwrap()))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(want_facets.len(), 2, "the fixture should give both filtered categories matches");
    assert_eq!(got_facets, want_facets);
    let prices = found["facets"]["prices"].as_array().unwrap();
    assert!(!prices.is_empty(), "no price facet");
    for bucket in prices {
        let (lo, hi) = (bucket["min"].as_i64().unwrap_or(i64::MIN), bucket["max"].as_i64().unwrap_or(i64::MAX));
        let n = expected.iter().filter(|p| (lo..hi).contains(&p["price"]["amount"].as_i64().unwrap())).count();
        assert_eq!(bucket["count"], n, "{bucket}");
    }
    let counted: u64 = prices.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert!(counted > 0, "every price bucket is empty: {prices:?}");

    // Paging by price: every product once, in price order.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = search(&app, json!({ "s": "PRICE_ASC", "first": 6, "after": after })).await;
        for edge in page["edges"].as_array().unwrap() {
            let id = edge["node"]["id"].as_str().unwrap().to_string();
            assert!(!seen.iter().any(|(s, _)| s == &id), "{id} twice");
            seen.push((id, edge["node"]["price"]["amount"].as_i64().unwrap()));
        }
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen.len(), 35);
    assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1));

    // Suggestions.
    let data = app.graphql("{ searchSuggestions(prefix: \"headph\", first: 3) }", json!({})).await;
    let suggestions = data["searchSuggestions"].as_array().unwrap();
    assert!(!suggestions.is_empty() && suggestions.len() <= 3);
    assert!(suggestions.iter().all(|s| s.as_str().unwrap().contains("Headphones")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_agrees_with_the_database_on_sqlite() {
    search_agrees_with_the_database(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_agrees_with_the_database_on_postgres() {
    search_agrees_with_the_database(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn updates_and_deletes_reach_the_index() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, merchant) = app.merchant().await;
    let kettle = create_product(&app, product_input("Copper Kettle", 4_500, 2)).await;
    let pan = create_product(&app, product_input("Iron Pan", 3_000, 1)).await;
    wait_for_total(&app, json!({ "q": "kettle" }), 1).await;

    app.graphql_as(
        Some(&merchant),
        "mutation($id: ID!) { updateProduct(id: $id, input: { name: \"Enamel Teapot\", description: \"For tea\" }) { userErrors { code } } }",
        json!({ "id": kettle["id"] }),
    )
    .await;
    wait_for_total(&app, json!({ "q": "teapot" }), 1).await;
    wait_for_total(&app, json!({ "q": "kettle" }), 0).await;

    app.graphql_as(
        Some(&merchant),
        "mutation($id: ID!) { adjustStock(id: $id, delta: -1) { userErrors { code } } }",
        json!({ "id": pan["id"] }),
    )
    .await;
    wait_for_total(&app, json!({ "f": { "inStock": true } }), 1).await;

    app.graphql_as(
        Some(&merchant),
        "mutation($id: ID!) { deleteProduct(id: $id) { userErrors { code } } }",
        json!({ "id": pan["id"] }),
    )
    .await;
    wait_for_total(&app, json!({ "q": "pan" }), 0).await;
    wait_for_total(&app, json!({ "s": "NEWEST" }), 1).await;
}

/// Paging by price where many products share a price, and with writes
/// between pages: every product that exists throughout is seen exactly
/// once, in price order; one created behind the cursor is not seen, one
/// created ahead of it is, one deleted ahead of it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_by_price_with_ties_and_writes_between_pages() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, merchant) = app.merchant().await;
    let mut originals = Vec::new();
    for i in 0..15 {
        // Three prices, five products each.
        let price = [2_000, 3_000, 4_000][i % 3];
        originals.push(create_product(&app, product_input(&format!("Tied Vase {i}"), price, 1)).await);
    }
    wait_for_total(&app, json!({ "s": "NEWEST" }), 15).await;
    let id = |p: &Value| p["id"].as_str().unwrap().to_string();

    // Without writes: all 15, once each, in price order.
    let mut seen: Vec<(String, i64)> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = search(&app, json!({ "s": "PRICE_ASC", "first": 4, "after": after })).await;
        assert_eq!(page["totalCount"], 15);
        for edge in page["edges"].as_array().unwrap() {
            seen.push((
                edge["node"]["id"].as_str().unwrap().to_string(),
                edge["node"]["price"]["amount"].as_i64().unwrap(),
            ));
        }
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
    let mut ids: Vec<&String> = seen.iter().map(|(i, _)| i).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 15, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1), "{seen:?}");

    // With writes between pages: first page (ends inside the 2 000 tie).
    let first = search(&app, json!({ "s": "PRICE_ASC", "first": 4 })).await;
    let mut seen: Vec<(String, i64)> = first["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["node"]["id"].as_str().unwrap().to_string(), e["node"]["price"]["amount"].as_i64().unwrap()))
        .collect();
    assert!(seen.iter().all(|(_, p)| *p == 2_000));
    let behind = create_product(&app, product_input("Cheap Vase", 1_000, 1)).await;
    let ahead = create_product(&app, product_input("Dear Vase", 5_000, 1)).await;
    let doomed = originals.iter().find(|p| p["price"]["amount"] == 4_000).unwrap();
    app.graphql_as(
        Some(&merchant),
        "mutation($id: ID!) { deleteProduct(id: $id) { userErrors { code } } }",
        json!({ "id": doomed["id"] }),
    )
    .await;
    wait_for_total(&app, json!({ "s": "NEWEST" }), 16).await;
    wait_for_total(&app, json!({ "q": "dear" }), 1).await;
    let mut after = first["pageInfo"]["endCursor"].as_str().map(str::to_string);
    while after.is_some() {
        let page = search(&app, json!({ "s": "PRICE_ASC", "first": 4, "after": after })).await;
        for edge in page["edges"].as_array().unwrap() {
            seen.push((
                edge["node"]["id"].as_str().unwrap().to_string(),
                edge["node"]["price"]["amount"].as_i64().unwrap(),
            ));
        }
        after = if page["pageInfo"]["hasNextPage"] == true {
            page["pageInfo"]["endCursor"].as_str().map(str::to_string)
        } else {
            None
        };
    }
    assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1), "{seen:?}");
    let mut got: Vec<String> = seen.iter().map(|(i, _)| i.clone()).collect();
    got.sort();
    let mut want: Vec<String> = originals.iter().map(id).filter(|i| *i != id(doomed)).collect();
    want.push(id(&ahead));
    want.sort();
    assert_eq!(got, want, "behind: {}, doomed: {}", id(&behind), id(doomed));
}

/// The real Tantivy engine behind a switch: while off, every call fails
/// the way an unreachable engine does.
struct Switchable {
    inner: TantivyBackend,
    up: AtomicBool,
    /// Rebuilds begun (a rebuild from SQL would mask lost outbox rows).
    rebuilds: AtomicUsize,
    /// Every change the engine accepted: ("upsert" | "remove", id).
    applied: Mutex<Vec<(&'static str, String)>>,
}

impl Switchable {
    fn new(dir: &std::path::Path, up: bool) -> Arc<Self> {
        Arc::new(Self {
            inner: TantivyBackend::new(dir),
            up: AtomicBool::new(up),
            rebuilds: AtomicUsize::new(0),
            applied: Mutex::new(Vec::new()),
        })
    }

    fn check(&self) -> Result<(), SearchError> {
        if self.up.load(Ordering::SeqCst) { Ok(()) } else { Err(SearchError::Unavailable("connection refused".into())) }
    }
}

#[async_trait::async_trait]
impl SearchBackend for Switchable {
    fn engine(&self) -> &'static str {
        "switchable tantivy"
    }
    async fn ensure_index(&self, schema: &IndexSchema) -> Result<bool, SearchError> {
        self.check()?;
        self.inner.ensure_index(schema).await
    }
    async fn apply(&self, index: &str, ops: &[IndexOp]) -> Result<(), SearchError> {
        self.check()?;
        self.inner.apply(index, ops).await?;
        let mut applied = self.applied.lock().unwrap();
        for op in ops {
            let kind = if matches!(op, IndexOp::Upsert(_)) { "upsert" } else { "remove" };
            applied.push((kind, op.id().to_string()));
        }
        Ok(())
    }
    async fn search(&self, query: &Query) -> Result<Results, SearchError> {
        self.check()?;
        self.inner.search(query).await
    }
    async fn suggest(&self, index: &str, field: &str, prefix: &str, limit: u32) -> Result<Vec<String>, SearchError> {
        self.check()?;
        self.inner.suggest(index, field, prefix, limit).await
    }
    async fn begin_rebuild(&self, schema: &IndexSchema) -> Result<(), SearchError> {
        self.check()?;
        self.rebuilds.fetch_add(1, Ordering::SeqCst);
        self.inner.begin_rebuild(schema).await
    }
    async fn load_rebuild(&self, index: &str, ops: &[IndexOp]) -> Result<(), SearchError> {
        self.check()?;
        self.inner.load_rebuild(index, ops).await
    }
    async fn finish_rebuild(&self, index: &str) -> Result<(), SearchError> {
        self.check()?;
        self.inner.finish_rebuild(index).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_continue_while_the_engine_is_down_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    // Down from the start: the service must start and take writes anyway.
    let engine = Switchable::new(dir.path(), false);
    let options =
        Options { search: Some(SearchEngineConfig::Backend(engine.clone())), ..Options::new(Backend::Sqlite) };
    let app = TestApp::spawn_with(options).await;

    for i in 0..5 {
        let created = create_product(&app, product_input(&format!("Outage Lamp {i}"), 2_000, 3)).await;
        assert!(created["id"].is_string());
    }
    let body = app.graphql_err("{ products(query: \"lamp\") { totalCount } }", json!({})).await;
    assert_eq!(code(&body), "SERVICE_UNAVAILABLE", "{body}");
    let listed = app.graphql("{ products { totalCount } }", json!({})).await;
    assert_eq!(listed["products"]["totalCount"], 5, "the database has every write");

    // Back up: the outbox catches up, nothing lost.
    engine.up.store(true, Ordering::SeqCst);
    wait_for_total(&app, json!({ "q": "lamp" }), 5).await;

    // Down again mid-stream, then up: the same.
    engine.up.store(false, Ordering::SeqCst);
    create_product(&app, product_input("Outage Lamp 5", 2_000, 3)).await;
    let (_, merchant) = app.merchant().await;
    let data = app.graphql("{ products(first: 1) { edges { node { id } } } }", json!({})).await;
    let first = data["products"]["edges"][0]["node"]["id"].clone();
    app.graphql_as(
        Some(&merchant),
        "mutation($id: ID!) { deleteProduct(id: $id) { userErrors { code } } }",
        json!({ "id": first }),
    )
    .await;
    engine.up.store(true, Ordering::SeqCst);
    wait_for_total(&app, json!({ "q": "lamp" }), 5).await;
}

/// Ids of a search's hits (one page of up to 100).
fn hit_ids(result: &Value) -> Vec<String> {
    let mut ids: Vec<String> =
        result["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

/// Changes made while the engine is down reach it from the outbox when it
/// is back, checked by id: a created product is found, an updated one is
/// found by its new values only, a deleted one is gone. The index exists
/// before the outage, so nothing rebuilds it from SQL (the wrapper counts
/// rebuilds: none may happen), and the changes applied after the outage
/// are exactly the three made during it.
async fn outage_changes_are_delivered_from_the_outbox(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Switchable::new(dir.path(), true);
    let options = Options { search: Some(SearchEngineConfig::Backend(engine.clone())), ..Options::new(backend) };
    let app = TestApp::spawn_with(options).await;
    let (_, merchant) = app.merchant().await;

    let kept = create_product(&app, product_input("Linen Throw", 2_500, 3)).await;
    let updated = create_product(&app, product_input("Brass Lantern", 3_100, 3)).await;
    let deleted = create_product(&app, product_input("Walnut Stool", 4_200, 3)).await;
    let before = wait_for_total(&app, json!({ "s": "NEWEST" }), 3).await;
    let id = |p: &Value| p["id"].as_str().unwrap().to_string();
    let mut expected = vec![id(&kept), id(&updated), id(&deleted)];
    expected.sort();
    assert_eq!(hit_ids(&before), expected);
    // The index was built (empty) at start; from here on only the outbox
    // may change it.
    let rebuilds = engine.rebuilds.load(Ordering::SeqCst);

    engine.up.store(false, Ordering::SeqCst);
    engine.applied.lock().unwrap().clear();
    let created = create_product(&app, product_input("Cobalt Teapot", 5_300, 3)).await;
    let data = app
        .graphql_as(
            Some(&merchant),
            "mutation($id: ID!) { updateProduct(id: $id, input: { name: \"Marble Clock\", description: \"Keeps the time\", price: { amount: 7700, currency: \"USD\" } }) { userErrors { code } } }",
            json!({ "id": updated["id"] }),
        )
        .await;
    assert_eq!(data["updateProduct"]["userErrors"], json!([]));
    let data = app
        .graphql_as(
            Some(&merchant),
            "mutation($id: ID!) { deleteProduct(id: $id) { userErrors { code } } }",
            json!({ "id": deleted["id"] }),
        )
        .await;
    assert_eq!(data["deleteProduct"]["userErrors"], json!([]));
    let body = app.graphql_err("{ products(query: \"teapot\") { totalCount } }", json!({})).await;
    assert_eq!(code(&body), "SERVICE_UNAVAILABLE", "{body}");
    // Let the drainer fail at least once against the dead engine.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(engine.applied.lock().unwrap().is_empty());

    engine.up.store(true, Ordering::SeqCst);
    // The drainer backs off up to 30 s; wait_for_total allows 15 s, so give
    // it a longer window of its own.
    let deadline = Instant::now() + Duration::from_secs(45);
    while engine.applied.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "the outbox never caught up: {:?}", engine.applied.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // X is found, by its own words.
    let found = wait_for_total(&app, json!({ "q": "teapot" }), 1).await;
    assert_eq!(hit_ids(&found), [id(&created)]);
    // Y is found by its new name and its new price (the price filter runs
    // in the engine, so it sees the engine's copy), and not by its old ones.
    let found = search(&app, json!({ "q": "clock" })).await;
    assert_eq!(hit_ids(&found), [id(&updated)]);
    let found = search(&app, json!({ "f": { "priceMin": 7_000, "priceMax": 8_000 } })).await;
    assert_eq!(hit_ids(&found), [id(&updated)]);
    assert_eq!(search(&app, json!({ "q": "lantern" })).await["totalCount"], 0);
    assert_eq!(search(&app, json!({ "f": { "priceMin": 3_000, "priceMax": 3_200 } })).await["totalCount"], 0);
    // Z is gone from the engine, not just filtered out when hydrating.
    assert_eq!(search(&app, json!({ "q": "stool" })).await["totalCount"], 0);
    let all = search(&app, json!({ "s": "NEWEST" })).await;
    let mut expected = vec![id(&kept), id(&updated), id(&created)];
    expected.sort();
    assert_eq!(all["totalCount"], 3);
    assert_eq!(hit_ids(&all), expected);

    // Nothing but the outbox changed the index: no rebuild, and exactly the
    // three changes made during the outage were applied.
    assert_eq!(engine.rebuilds.load(Ordering::SeqCst), rebuilds, "a rebuild from SQL would mask lost outbox rows");
    let mut applied = engine.applied.lock().unwrap().clone();
    applied.sort();
    applied.dedup(); // delivery is at least once
    let mut want = vec![("remove", id(&deleted)), ("upsert", id(&created)), ("upsert", id(&updated))];
    want.sort();
    assert_eq!(applied, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_changes_are_delivered_from_the_outbox_on_sqlite() {
    outage_changes_are_delivered_from_the_outbox(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_changes_are_delivered_from_the_outbox_on_postgres() {
    outage_changes_are_delivered_from_the_outbox(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_search_input_gets_clear_errors() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    create_product(&app, product_input("Plain Mug", 900, 4)).await;
    wait_for_total(&app, json!({ "q": "mug" }), 1).await;

    let body = app.graphql_err(SEARCH, json!({ "q": "x".repeat(10_000) })).await;
    assert_eq!((code(&body), body["errors"][0]["extensions"]["reason"].as_str()), ("BAD_USER_INPUT", Some("TOO_LONG")));

    for syntax in
        ["name:mug AND (price:[0 TO *] OR \"", "*?~^\\\\", "mug)))", "'; DROP TABLE products; --", "\u{0}\u{7f}"]
    {
        let (status, body) = app.post(json!({ "query": SEARCH, "variables": { "q": syntax } })).await;
        assert_eq!(status, 200, "{syntax}: {body}");
        assert!(body.get("errors").is_none(), "{syntax}: {body}");
    }

    for (vars, reason) in [
        (json!({ "q": "mug", "after": "garbage" }), "INVALID_CURSOR"),
        (json!({ "f": { "categoryIds": ["not an id"] } }), "INVALID_ID"),
        (json!({ "f": { "priceMin": 500, "priceMax": 100 } }), "INVALID_RANGE"),
        (json!({ "f": { "currency": "XYZ1" } }), "UNKNOWN_CURRENCY"),
    ] {
        let body = app.graphql_err(SEARCH, vars.clone()).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{vars}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["reason"], reason, "{vars}");
    }
    // A cursor from another ordering is refused too.
    let page = search(&app, json!({ "s": "PRICE_ASC", "first": 1 })).await;
    let body = app.graphql_err(SEARCH, json!({ "s": "NEWEST", "after": page["pageInfo"]["endCursor"] })).await;
    assert_eq!(body["errors"][0]["extensions"]["reason"], "INVALID_CURSOR");

    let body = app.graphql_err(SEARCH, json!({ "q": "mug", "first": 100_000 })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let body = app
        .graphql_err("query($p: String!) { searchSuggestions(prefix: $p) }", json!({ "p": "m".repeat(5_000) }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reindex_rebuilds_from_the_database() {
    use polyscale_proto::admin::v1::ReindexRequest;
    let app = TestApp::spawn(Backend::Sqlite).await;
    for i in 0..12 {
        create_product(&app, product_input(&format!("Rebuild Chair {i}"), 5_000, 1)).await;
    }
    wait_for_total(&app, json!({ "q": "chair" }), 12).await;

    let mut admin = app.admin_plane().await.search();
    let mut stream = admin.reindex(ReindexRequest { index: "products".into() }).await.unwrap().into_inner();
    let mut last = None;
    while let Some(progress) = stream.message().await.unwrap() {
        last = Some(progress);
    }
    let last = last.unwrap();
    assert!(last.done);
    assert_eq!((last.indexed, last.total), (12, 12));
    wait_for_total(&app, json!({ "q": "chair" }), 12).await;
    let status = admin.reindex(ReindexRequest { index: "nope".into() }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    // A lost index is rebuilt from the database on the next start.
    let dir = app.stop().await;
    std::fs::remove_dir_all(dir.path().join("search")).unwrap();
    let app = TestApp::spawn_with(Options { data_dir: Some(dir), ..Options::new(Backend::Sqlite) }).await;
    wait_for_total(&app, json!({ "q": "chair" }), 12).await;
}
