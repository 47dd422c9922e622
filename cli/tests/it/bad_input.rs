//! Bad input gets a clear error with a stable code, and nothing is written.

use serde_json::{Value, json};

use crate::app::{Backend, TestApp, create_product, product_input};

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_default()
}

async fn total(app: &TestApp) -> i64 {
    app.graphql("{ products { totalCount } }", json!({})).await["products"]["totalCount"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_requests_are_refused_before_execution() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    // Unparsable GraphQL: 400 with GRAPHQL_PARSE_FAILED.
    let (status, body) = app.post(json!({ "query": "{ products( " })).await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "GRAPHQL_PARSE_FAILED");
    assert!(body["errors"][0]["extensions"]["requestId"].is_string());
    assert!(body.get("data").is_none(), "a request that never executed has no data entry: {body}");

    // Valid syntax, unknown field: GRAPHQL_VALIDATION_FAILED.
    let (status, body) = app.post(json!({ "query": "{ nope }" })).await;
    assert_eq!((status, code(&body)), (400, "GRAPHQL_VALIDATION_FAILED"));

    // A wrongly typed variable.
    let (status, body) = app
        .post(json!({ "query": "query($n: Int) { products(first: $n) { totalCount } }", "variables": { "n": "ten" } }))
        .await;
    assert_eq!(status, 400, "{body}");

    // Not JSON at all, and JSON that is not a GraphQL request.
    for raw in ["not json", "{\"qurey\": 1}", "[]"] {
        let response =
            app.client.post(app.url()).header("content-type", "application/json").body(raw).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "{raw}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), "BAD_REQUEST", "{raw}: {body}");
    }

    // With Accept: application/json, `*/*` or none (clients that predate
    // application/graphql-response+json), request errors come back as
    // 200s in application/json, as the GraphQL-over-HTTP spec recommends.
    for accept in [Some("application/json"), Some("*/*"), None] {
        let mut request = app.client.post(app.url()).json(&json!({ "query": "{ nope }" }));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "Accept: {accept:?}");
        assert_eq!(response.headers()["content-type"], "application/json", "Accept: {accept:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "Accept: {accept:?}: {body}");
    }
    // Naming the new type among others still gets it.
    let response = app
        .client
        .post(app.url())
        .header("accept", "application/graphql-response+json, application/json;q=0.9")
        .json(&json!({ "query": "{ nope }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(response.headers()["content-type"], "application/graphql-response+json");

    // A body over the limit: 413. The server stops reading and drops that
    // connection, so it goes on a client of its own: reusing it for the
    // next request raced with the close (IncompleteMessage, seen once in
    // ten runs on the multi-threaded runtime).
    let huge = "x".repeat(2 << 20);
    let response = reqwest::Client::new().post(app.url()).json(&json!({ "query": huge })).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 413);

    // Mutations over GET: 405.
    let response = app
        .client
        .get(app.url())
        .query(&[("query", "mutation { deleteProduct(id: \"x\") { deletedProductId } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "POST");

    // Queries over GET work.
    let response = app.client.get(app.url()).query(&[("query", "{ products { totalCount } }")]).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["products"]["totalCount"], 0);

    // A browser gets GraphiQL.
    let response = app.client.get(app.url()).header("accept", "text/html").send().await.unwrap();
    assert!(response.text().await.unwrap().contains("graphiql"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expensive_queries_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    // Nested 50 deep (through the category tree).
    let mut query = String::from("id");
    for _ in 0..50 {
        query = format!("parent {{ {query} }}");
    }
    let (status, body) = app.post(json!({ "query": format!("{{ categories {{ {query} }} }}") })).await;
    assert_eq!((status, code(&body)), (400, "QUERY_TOO_COMPLEX"), "{body}");

    // Alias amplification.
    let aliases: String = (0..100).map(|i| format!("a{i}: categories {{ id }} ")).collect();
    let (status, body) = app.post(json!({ "query": format!("{{ {aliases} }}") })).await;
    assert_eq!((status, code(&body)), (400, "QUERY_TOO_COMPLEX"), "{body}");

    // A page too large, or empty: refused while executing, so a 200 whose
    // `data` is null (the field is non-null).
    for first in [100_000, 0, -1] {
        let (status, body) =
            app.post(json!({ "query": "query($f: Int) { products(first: $f) { totalCount } }", "variables": { "f": first } })).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"], Value::Null);
        assert_eq!(code(&body), "BAD_USER_INPUT", "first = {first}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "first");
    }

    // Too many operations in one batch.
    let batch: Vec<Value> = (0..11).map(|_| json!({ "query": "{ categories { id } }" })).collect();
    let (status, body) = app.post(Value::Array(batch)).await;
    assert_eq!((status, code(&body)), (400, "BAD_REQUEST"), "{body}");

    // A batch within the limit runs.
    let batch: Vec<Value> = (0..3).map(|_| json!({ "query": "{ categories { id } }" })).collect();
    let (status, body) = app.post(Value::Array(batch)).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_input_writes_nothing_on_sqlite() {
    invalid_input_writes_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_input_writes_nothing_on_postgres() {
    invalid_input_writes_nothing(Backend::Postgres).await;
}

async fn invalid_input_writes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let product = create_product(&app, product_input("Kettle", 2999, 3)).await;
    let (_, m) = app.merchant().await;
    let m = Some(m.as_str());
    let id = product["id"].as_str().unwrap().to_string();
    let create = "mutation($input: CreateProductInput!) { createProduct(input: $input) { product { id } userErrors { field code message } } }";

    // Negative price, unknown currency, empty name, negative stock: all
    // reported at once, nothing stored.
    let data = app
        .graphql_as(
            m,
            create,
            json!({ "input": { "name": "  ", "price": { "amount": -1, "currency": "usd" }, "stock": -5 } }),
        )
        .await;
    let errors = &data["createProduct"]["userErrors"];
    let codes: Vec<&str> = errors.as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["REQUIRED", "NEGATIVE_AMOUNT", "UNKNOWN_CURRENCY", "NEGATIVE_STOCK"]);
    assert_eq!(errors[1]["field"], json!(["input", "price", "amount"]));
    assert_eq!(data["createProduct"]["product"], Value::Null);

    // An unknown category.
    let mut input = product_input("Pan", 1999, 1);
    input["categoryId"] = json!("01a20000-0000-7000-8000-000000000000");
    let data = app.graphql_as(m, create, json!({ "input": input })).await;
    assert_eq!(data["createProduct"]["userErrors"][0]["code"], "UNKNOWN_CATEGORY");
    assert_eq!(total(&app).await, 1);

    // An amount beyond what JSON carries exactly is refused by the scalar.
    let (_, body) = app
        .post_as(m, json!({ "query": create, "variables": { "input": { "name": "x", "price": { "amount": 1e17, "currency": "USD" } } } }))
        .await;
    assert!(body["errors"].is_array(), "{body}");

    // Stock below zero is refused and the stock stays.
    let data = app
        .graphql_as(m, "mutation($id: ID!) { adjustStock(id: $id, delta: -4) { product { stock } userErrors { field code message } } }", json!({ "id": id }))
        .await;
    let errors = &data["adjustStock"]["userErrors"];
    assert_eq!(errors[0]["code"], "INSUFFICIENT_STOCK");
    assert_eq!(errors[0]["field"], json!(["delta"]));
    let data =
        app.graphql("query($id: ID!) { product(id: $id) { stock price { amount } } }", json!({ "id": id })).await;
    assert_eq!(data["product"]["stock"], 3);

    // An invalid update changes nothing.
    let data = app
        .graphql_as(
            m,
            "mutation($id: ID!) { updateProduct(id: $id, input: { name: \"New\", price: { amount: -5, currency: \"USD\" } }) { product { id } userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data["updateProduct"]["userErrors"][0]["code"], "NEGATIVE_AMOUNT");
    let data = app.graphql("query($id: ID!) { product(id: $id) { name price { amount } } }", json!({ "id": id })).await;
    assert_eq!(data["product"], json!({ "name": "Kettle", "price": { "amount": 2999 } }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_and_invalid_ids_on_sqlite() {
    unknown_and_invalid_ids(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_and_invalid_ids_on_postgres() {
    unknown_and_invalid_ids(Backend::Postgres).await;
}

async fn unknown_and_invalid_ids(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, m) = app.merchant().await;
    let unknown = "01a20000-0000-7000-8000-000000000000";

    let body = app.graphql_err("query($id: ID!) { product(id: $id) { id } }", json!({ "id": unknown })).await;
    assert_eq!(code(&body), "NOT_FOUND");
    assert_eq!(body["errors"][0]["path"], json!(["product"]));

    for bad in ["", "'; DROP TABLE products; --", &"x".repeat(100)] {
        let body = app.graphql_err("query($id: ID!) { product(id: $id) { id } }", json!({ "id": bad })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{bad}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["reason"], "INVALID_ID");
    }

    for mutation in [
        "mutation($id: ID!) { updateProduct(id: $id, input: { name: \"x\" }) { userErrors { field code } } }",
        "mutation($id: ID!) { adjustStock(id: $id, delta: 1) { userErrors { field code } } }",
        "mutation($id: ID!) { deleteProduct(id: $id) { userErrors { field code } } }",
    ] {
        let data = app.graphql_as(Some(&m), mutation, json!({ "id": unknown })).await;
        let payload = data.as_object().unwrap().values().next().unwrap();
        assert_eq!(payload["userErrors"], json!([{ "field": ["id"], "code": "NOT_FOUND" }]), "{mutation}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampered_cursors_are_refused_on_sqlite() {
    tampered_cursors_are_refused(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampered_cursors_are_refused_on_postgres() {
    tampered_cursors_are_refused(Backend::Postgres).await;
}

async fn tampered_cursors_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..3 {
        create_product(&app, product_input(&format!("P{i}"), 100, 1)).await;
    }
    let data = app.graphql("{ products(first: 1) { pageInfo { endCursor } } }", json!({})).await;
    let cursor = data["products"]["pageInfo"]["endCursor"].as_str().unwrap().to_string();

    // Flip one character of a real cursor, and try outright garbage.
    let mut flipped: Vec<char> = cursor.chars().collect();
    let i = flipped.len() / 2;
    flipped[i] = if flipped[i] == 'A' { 'B' } else { 'A' };
    let flipped: String = flipped.into_iter().collect();
    for bad in [flipped.as_str(), "garbage", "", "%%%", &"A".repeat(5000)] {
        let body = app
            .graphql_err(
                "query($after: String) { products(first: 1, after: $after) { totalCount } }",
                json!({ "after": bad }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{bad}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["reason"], "INVALID_CURSOR");
    }

    // The real cursor still works.
    let data = app
        .graphql(
            "query($after: String) { products(first: 5, after: $after) { edges { node { name } } } }",
            json!({ "after": cursor }),
        )
        .await;
    assert_eq!(data["products"]["edges"].as_array().unwrap().len(), 2);
}
