//! The catalog through GraphQL, on SQLite and on PostgreSQL.

use serde_json::{Value, json};

use crate::app::{Backend, PRODUCT_FIELDS, TestApp, create_product, product_input};

async fn all_pages(app: &TestApp, first: i64) -> (Vec<String>, Vec<Value>) {
    let mut ids = Vec::new();
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let data = app
            .graphql(
                "query($first: Int, $after: String) { products(first: $first, after: $after) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id } } nodes { id } } }",
                json!({ "first": first, "after": after }),
            )
            .await;
        let connection = data["products"].clone();
        let edges = connection["edges"].as_array().unwrap().clone();
        assert!(edges.len() as i64 <= first);
        assert_eq!(connection["nodes"].as_array().unwrap().len(), edges.len());
        ids.extend(edges.iter().map(|e| e["node"]["id"].as_str().unwrap().to_string()));
        pages.push(connection.clone());
        if !connection["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = Some(connection["pageInfo"]["endCursor"].as_str().unwrap().to_string());
    }
    (ids, pages)
}

async fn catalog_round_trip(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let (merchant_id, merchant) = app.merchant().await;

    // Categories.
    let data = app
        .graphql_as(
            Some(&admin),
            "mutation { createCategory(input: { name: \"Laptops & Tablets\" }) { category { id name slug parent { id } } userErrors { code } } }",
            json!({}),
        )
        .await;
    let category = data["createCategory"]["category"].clone();
    assert_eq!(category["slug"], "laptops-tablets");
    assert_eq!(category["parent"], Value::Null);
    let laptops = category["id"].as_str().unwrap().to_string();
    let data = app
        .graphql_as(
            Some(&admin),
            "mutation($parent: ID) { createCategory(input: { name: \"Gaming Laptops\", parentId: $parent }) { category { parent { name } } } }",
            json!({ "parent": laptops }),
        )
        .await;
    assert_eq!(data["createCategory"]["category"]["parent"]["name"], "Laptops & Tablets");

    // Create.
    let mut created = Vec::new();
    for i in 0..5 {
        let mut input = product_input(&format!("Laptop {i}"), 99_900 + i, 10);
        input["categoryId"] = json!(laptops);
        created.push(create_product(&app, input).await);
    }
    let first = &created[0];
    assert_eq!(first["name"], "Laptop 0");
    assert_eq!(first["price"], json!({ "amount": 99900, "currency": "USD", "formatted": "999.00 USD" }));
    assert_eq!(first["stock"], 10);
    assert_eq!(first["inStock"], true);
    assert_eq!(first["category"]["name"], "Laptops & Tablets");
    assert_eq!(first["merchantId"], json!(merchant_id));
    let id = first["id"].as_str().unwrap().to_string();

    // Read.
    let data = app
        .graphql(&format!("query($id: ID!) {{ product(id: $id) {{ {PRODUCT_FIELDS} }} }}"), json!({ "id": id }))
        .await;
    assert_eq!(&data["product"], first);

    // List across pages of 2: every product once, in creation order.
    let (ids, pages) = all_pages(&app, 2).await;
    let created_ids: Vec<String> = created.iter().map(|p| p["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, created_ids);
    assert_eq!(pages.len(), 3);
    assert!(pages.iter().all(|p| p["totalCount"] == 5));
    assert_eq!(pages[0]["pageInfo"]["hasPreviousPage"], false);
    assert_eq!(pages[1]["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(pages[2]["pageInfo"]["hasNextPage"], false);
    assert_eq!(pages[0]["pageInfo"]["endCursor"], pages[0]["edges"][1]["cursor"]);

    // Update: name and price change, category is removed, the rest stays.
    let data = app
        .graphql_as(
            Some(&merchant),
            &format!("mutation($id: ID!) {{ updateProduct(id: $id, input: {{ name: \"Laptop Zero\", price: {{ amount: 120000, currency: \"EUR\" }}, categoryId: null }}) {{ product {{ {PRODUCT_FIELDS} }} userErrors {{ code }} }} }}"),
            json!({ "id": id }),
        )
        .await;
    let updated = &data["updateProduct"]["product"];
    assert_eq!(updated["name"], "Laptop Zero");
    assert_eq!(updated["price"]["formatted"], "1200.00 EUR");
    assert_eq!(updated["category"], Value::Null);
    assert_eq!(updated["description"], first["description"]);
    assert_eq!(updated["stock"], 10);

    // Adjust stock up and down.
    let adjust = "mutation($id: ID!, $delta: Int!) { adjustStock(id: $id, delta: $delta) { product { stock inStock } userErrors { field code message } } }";
    let data = app.graphql_as(Some(&merchant), adjust, json!({ "id": id, "delta": 5 })).await;
    assert_eq!(data["adjustStock"]["product"]["stock"], 15);
    let data = app.graphql_as(Some(&merchant), adjust, json!({ "id": id, "delta": -15 })).await;
    assert_eq!(data["adjustStock"]["product"], json!({ "stock": 0, "inStock": false }));

    // Delete.
    let data = app
        .graphql_as(
            Some(&merchant),
            "mutation($id: ID!) { deleteProduct(id: $id) { deletedProductId userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data["deleteProduct"]["deletedProductId"], json!(id));
    let body = app.graphql_err("query($id: ID!) { product(id: $id) { id } }", json!({ "id": id })).await;
    assert_eq!(body["data"]["product"], Value::Null);
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND");
    let (ids, _) = all_pages(&app, 100).await;
    assert_eq!(ids, created_ids[1..].to_vec());

    // Categories list.
    let data = app.graphql("{ categories { name slug } }", json!({})).await;
    assert_eq!(
        data["categories"],
        json!([{ "name": "Gaming Laptops", "slug": "gaming-laptops" }, { "name": "Laptops & Tablets", "slug": "laptops-tablets" }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_round_trip_on_sqlite() {
    catalog_round_trip(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_round_trip_on_postgres() {
    catalog_round_trip(Backend::Postgres).await;
}

/// Concurrent decrements never take stock below zero: exactly the stock
/// on hand is sold, the rest are refused.
async fn stock_never_negative(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let product = create_product(&app, product_input("Limited", 1000, 7)).await;
    let id = product["id"].as_str().unwrap().to_string();
    let (_, merchant) = app.merchant().await;
    let attempts = (0..20).map(|_| {
        let app = &app;
        let id = id.clone();
        let merchant = merchant.clone();
        async move {
            app.graphql_as(
                Some(&merchant),
                "mutation($id: ID!) { adjustStock(id: $id, delta: -1) { product { stock } userErrors { code } } }",
                json!({ "id": id }),
            )
            .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let sold = results.iter().filter(|r| r["adjustStock"]["product"] != Value::Null).count();
    let refused = results.iter().filter(|r| r["adjustStock"]["userErrors"][0]["code"] == "INSUFFICIENT_STOCK").count();
    assert_eq!((sold, refused), (7, 13));
    let data = app.graphql("query($id: ID!) { product(id: $id) { stock } }", json!({ "id": id })).await;
    assert_eq!(data["product"]["stock"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stock_never_negative_on_sqlite() {
    stock_never_negative(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stock_never_negative_on_postgres() {
    stock_never_negative(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_report_health_and_reflect() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut health = HealthClient::new(app.channel().await);
    let status = health
        .check(HealthCheckRequest { service: "polyscale.product.v1.ProductService".into() })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    let mut reflection = ServerReflectionClient::new(app.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection.server_reflection_info(futures::stream::iter([request])).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else { panic!("{response:?}") };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in
        ["polyscale.product.v1.ProductService", "polyscale.admin.v1.ComponentAdmin", "grpc.health.v1.Health"]
    {
        assert!(names.iter().any(|n| n == expected), "{expected} not in {names:?}");
    }

    // The same through v1alpha, which many stock tools still speak only.
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut reflection = ServerReflectionClient::new(app.channel().await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses =
            reflection.server_reflection_info(futures::stream::iter([request])).await.unwrap().into_inner();
        let response = responses.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("{response:?}")
        };
        let alpha: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(alpha.iter().any(|n| n == "polyscale.product.v1.ProductService"), "{alpha:?}");
    }
}

/// A gRPC request that leaves the page size unset gets the default page
/// (AIP-158), not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unset_grpc_page_size_is_the_default_page() {
    use polyscale_proto::product::v1 as pb;
    let app = TestApp::spawn(Backend::Sqlite).await;
    for i in 0..21 {
        create_product(&app, product_input(&format!("Page item {i}"), 100 + i, 1)).await;
    }
    let mut products = app.products().await;
    let page =
        products.list_products(pb::ListProductsRequest::default()).await.expect("unset first is valid").into_inner();
    assert_eq!(page.edges.len(), 20, "the default page is 20");
    assert!(page.has_next_page);
    let search = products
        .search_products(pb::SearchProductsRequest::default())
        .await
        .expect("an unset first is valid in search too")
        .into_inner();
    assert!(search.edges.len() <= 20, "{}", search.edges.len());
}
