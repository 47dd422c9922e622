//! The exact requests the Elasticsearch backend makes: the bodies (against
//! the documented APIs: index creation, `_bulk`, `_search` with
//! `multi_match`/`bool`/`search_after`/aggregations, `_aliases`) and, with a
//! recording HTTP server in place of a cluster, the method, path and query
//! string the `elasticsearch` crate sends them with.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use polyscale_host::bindings::search::{Field, RangeFilter};
use polyscale_host::capabilities::search::elasticsearch::{
    ElasticsearchBackend, alias_swap, bulk_lines, mapping, search_body,
};
use polyscale_host::capabilities::search::{
    Direction, Document, FacetRequest, FieldKind, FieldSchema, FieldValue, Filter, IndexOp, IndexSchema, Query,
    SearchBackend, Sort, cursor,
};
use serde_json::{Value, json};

fn schema() -> IndexSchema {
    IndexSchema {
        name: "products".into(),
        fields: vec![
            FieldSchema { name: "name".into(), kind: FieldKind::Text, boost: 3.0, suggest: true },
            FieldSchema { name: "description".into(), kind: FieldKind::Text, boost: 1.0, suggest: false },
            FieldSchema { name: "category_id".into(), kind: FieldKind::Keyword, boost: 1.0, suggest: false },
            FieldSchema { name: "price".into(), kind: FieldKind::Integer, boost: 1.0, suggest: false },
            FieldSchema { name: "in_stock".into(), kind: FieldKind::Boolean, boost: 1.0, suggest: false },
        ],
    }
}

#[test]
fn the_mapping_is_explicit_and_strict() {
    let m = mapping(&schema());
    assert_eq!(
        m["settings"]["analysis"]["analyzer"]["polyscale_text"],
        json!({ "type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding", "porter_stem"] })
    );
    assert_eq!(m["mappings"]["dynamic"], "strict");
    assert_eq!(
        m["mappings"]["properties"],
        json!({
            "doc_id": { "type": "keyword" },
            "doc_version": { "type": "long" },
            "doc_deleted": { "type": "boolean" },
            "name": { "type": "text", "analyzer": "polyscale_text", "fields": { "suggest": { "type": "search_as_you_type" } } },
            "description": { "type": "text", "analyzer": "polyscale_text" },
            "category_id": { "type": "keyword" },
            "price": { "type": "long" },
            "in_stock": { "type": "boolean" }
        })
    );
    assert_eq!(m["mappings"]["_meta"]["polyscale_schema"]["name"], "products");
}

#[test]
fn searches_use_multi_match_bool_filters_search_after_and_aggregations() {
    let after = cursor::encode("price:asc", &json!([1999, "p-7"]));
    let q = Query {
        index: "products".into(),
        text: Some("gaming lapotp AND \"".into()),
        filters: vec![
            Filter::AnyOf(("category_id".into(), vec!["c1".into(), "c2".into()])),
            Filter::Range(RangeFilter { field: "price".into(), min: Some(1000), max: None }),
            Filter::Is(("in_stock".into(), true)),
        ],
        sort: Sort::Field(("price".into(), Direction::Ascending)),
        facets: vec![FacetRequest::Terms(("category_id".into(), 10))],
        first: 20,
        after: Some(after),
    };
    assert_eq!(
        search_body(&schema(), &q).unwrap(),
        json!({
            "size": 21,
            "track_total_hits": true,
            "_source": ["doc_id"],
            "query": { "bool": {
                "must": [{ "multi_match": {
                    "query": "gaming lapotp AND \"",
                    "fields": ["name^3", "description^1"],
                    "fuzziness": "AUTO",
                    "operator": "or"
                } }],
                "filter": [
                    { "terms": { "category_id": ["c1", "c2"] } },
                    { "range": { "price": { "gte": 1000 } } },
                    { "term": { "in_stock": true } }
                ],
                "must_not": [{ "term": { "doc_deleted": true } }]
            } },
            "sort": [{ "price": "asc" }, { "doc_id": "asc" }],
            "aggs": { "f0": { "terms": { "field": "category_id", "size": 10 } } },
            "search_after": [1999, "p-7"]
        })
    );
    // Without text: match_all, relevance then id.
    let plain = Query { text: None, sort: Sort::Relevance, after: None, filters: vec![], facets: vec![], ..q };
    let body = search_body(&schema(), &plain).unwrap();
    assert_eq!(body["query"]["bool"]["must"], json!([{ "match_all": {} }]));
    assert_eq!(body["sort"], json!([{ "_score": "desc" }, { "doc_id": "asc" }]));
}

#[test]
fn bulk_writes_are_externally_versioned_and_deletions_are_tombstones() {
    let doc = Document {
        id: "p1".into(),
        version: 4,
        fields: vec![
            Field { name: "name".into(), value: FieldValue::Text("Aero Laptop".into()) },
            Field { name: "price".into(), value: FieldValue::Integer(99_900) },
        ],
    };
    let lines =
        bulk_lines("polyscale-products", &[IndexOp::Upsert(doc), IndexOp::Remove { id: "p2".into(), version: 9 }]);
    assert_eq!(
        lines,
        vec![
            json!({ "index": { "_index": "polyscale-products", "_id": "p1", "version": 4, "version_type": "external_gte" } }),
            json!({ "doc_id": "p1", "doc_version": 4, "doc_deleted": false, "name": "Aero Laptop", "price": 99900 }),
            json!({ "index": { "_index": "polyscale-products", "_id": "p2", "version": 9, "version_type": "external_gte" } }),
            json!({ "doc_id": "p2", "doc_version": 9, "doc_deleted": true }),
        ]
    );
}

#[test]
fn a_rebuild_swaps_the_alias_in_one_call() {
    assert_eq!(
        alias_swap("polyscale-products", "polyscale-products-1", "polyscale-products-2"),
        json!({ "actions": [
            { "remove": { "index": "polyscale-products-1", "alias": "polyscale-products" } },
            { "add": { "index": "polyscale-products-2", "alias": "polyscale-products" } }
        ] })
    );
}

/// What the recorder saw: method, path with query, body.
type Seen = Arc<Mutex<Vec<(Method, String, String)>>>;

async fn record(State(seen): State<Seen>, request: Request) -> impl IntoResponse {
    let method = request.method().clone();
    let uri = request.uri().to_string();
    let body: Bytes = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap_or_default();
    seen.lock().unwrap().push((method.clone(), uri.clone(), String::from_utf8_lossy(&body).to_string()));
    // The smallest valid answers of each API.
    let (status, answer) = match (method, uri.as_str()) {
        (Method::GET, u) if u.starts_with("/_alias/") => {
            (StatusCode::NOT_FOUND, json!({ "error": { "reason": "alias missing" }, "status": 404 }))
        }
        (Method::POST, u) if u.starts_with("/_bulk") => (StatusCode::OK, json!({ "errors": false, "items": [] })),
        (Method::POST, u) if u.ends_with("/_search") => {
            (StatusCode::OK, json!({ "hits": { "total": { "value": 0 }, "hits": [] }, "aggregations": {} }))
        }
        _ => (StatusCode::OK, json!({ "acknowledged": true })),
    };
    (status, axum::Json(answer))
}

#[tokio::test]
async fn the_client_sends_these_requests() {
    let seen: Seen = Arc::default();
    let app = Router::new().fallback(record).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let backend = ElasticsearchBackend::new(&format!("http://{addr}"), "polyscale-").unwrap();
    assert!(backend.ensure_index(&schema()).await.unwrap(), "a new index needs a build");
    backend.apply("products", &[IndexOp::Remove { id: "p1".into(), version: 2 }]).await.unwrap();
    let q = Query {
        index: "products".into(),
        text: Some("laptop".into()),
        filters: vec![],
        sort: Sort::Relevance,
        facets: vec![],
        first: 10,
        after: None,
    };
    backend.search(&q).await.unwrap();
    backend.begin_rebuild(&schema()).await.unwrap();
    backend.finish_rebuild("products").await.unwrap();

    let seen = seen.lock().unwrap().clone();
    let requests: Vec<(Method, String)> = seen.iter().map(|(m, u, _)| (m.clone(), u.clone())).collect();
    assert_eq!(requests[0], (Method::GET, "/_alias/polyscale-products".to_string()));
    // Created with mapping and alias.
    assert_eq!(requests[1].0, Method::PUT);
    let first_index = requests[1].1.trim_start_matches('/').to_string();
    assert!(first_index.starts_with("polyscale-products-"), "{first_index}");
    let create: Value = serde_json::from_str(&seen[1].2).unwrap();
    assert_eq!(create["aliases"], json!({ "polyscale-products": {} }));
    assert_eq!(create["mappings"]["dynamic"], "strict");
    // Bulk through the alias, waiting for refresh, as NDJSON.
    assert_eq!(requests[2], (Method::POST, "/_bulk?refresh=wait_for".to_string()));
    let lines: Vec<Value> = seen[2].2.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["index"]["_index"], "polyscale-products");
    assert_eq!(lines[1]["doc_deleted"], true);
    // Search through the alias.
    assert_eq!(requests[3], (Method::POST, "/polyscale-products/_search".to_string()));
    let search: Value = serde_json::from_str(&seen[3].2).unwrap();
    assert_eq!(search["query"]["bool"]["must"][0]["multi_match"]["query"], "laptop");
    // Rebuild: a new index without the alias, the swap, the old one deleted.
    assert_eq!(requests[4].0, Method::PUT);
    let second_index = requests[4].1.trim_start_matches('/').to_string();
    assert_ne!(second_index, first_index);
    assert!(serde_json::from_str::<Value>(&seen[4].2).unwrap().get("aliases").is_none());
    assert_eq!(requests[5], (Method::POST, "/_aliases".to_string()));
    assert_eq!(
        serde_json::from_str::<Value>(&seen[5].2).unwrap(),
        alias_swap("polyscale-products", &first_index, &second_index)
    );
    assert_eq!(requests[6], (Method::DELETE, format!("/{first_index}")));
    assert_eq!(requests.len(), 7);
}
