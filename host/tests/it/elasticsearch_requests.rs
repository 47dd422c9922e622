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
    RangeBucket, SearchBackend, SearchError, Sort, cursor,
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

/// A recorder that answers like a cluster would, from a script: an
/// existing index (alias + mapping), then queued `_search` and `_bulk`
/// answers shaped as the documented APIs return them (hits with `sort`
/// values, aggregations, per-item bulk results).
#[derive(Default)]
struct Cluster {
    seen: Vec<(Method, String, String)>,
    searches: std::collections::VecDeque<Value>,
    bulks: std::collections::VecDeque<Value>,
}

type Scripted = Arc<Mutex<Cluster>>;

const PHYSICAL: &str = "polyscale-products-1700000000000000";

async fn answer(State(cluster): State<Scripted>, request: Request) -> impl IntoResponse {
    let method = request.method().clone();
    let uri = request.uri().to_string();
    let body: Bytes = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap_or_default();
    let mut cluster = cluster.lock().unwrap();
    cluster.seen.push((method.clone(), uri.clone(), String::from_utf8_lossy(&body).to_string()));
    let (status, answer) = match (method, uri.as_str()) {
        (Method::GET, "/_alias/polyscale-products") => {
            (StatusCode::OK, json!({ PHYSICAL: { "aliases": { "polyscale-products": {} } } }))
        }
        (Method::GET, u) if u == format!("/{PHYSICAL}/_mapping") => {
            (StatusCode::OK, json!({ PHYSICAL: { "mappings": mapping(&schema())["mappings"] } }))
        }
        (Method::POST, u) if u.ends_with("/_search") => match cluster.searches.pop_front() {
            Some(a) => (StatusCode::OK, a),
            None => (StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": { "reason": "unscripted search" } })),
        },
        (Method::POST, u) if u.starts_with("/_bulk") => match cluster.bulks.pop_front() {
            Some(a) => (StatusCode::OK, a),
            None => (StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": { "reason": "unscripted bulk" } })),
        },
        _ => (StatusCode::BAD_REQUEST, json!({ "error": { "reason": format!("unexpected {uri}") }, "status": 400 })),
    };
    (status, axum::Json(answer))
}

fn hit(id: &str, sort: Value) -> Value {
    json!({ "_index": PHYSICAL, "_id": id, "_score": null, "_source": { "doc_id": id }, "sort": sort })
}

fn search_answer(total: u64, hits: Vec<Value>, aggregations: Value) -> Value {
    json!({
        "took": 3,
        "timed_out": false,
        "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 },
        "hits": { "total": { "value": total, "relation": "eq" }, "max_score": null, "hits": hits },
        "aggregations": aggregations
    })
}

fn bulk_item(id: &str, status: u16, error: Option<Value>) -> Value {
    let mut item = json!({ "_index": PHYSICAL, "_id": id, "status": status });
    if let Some(error) = error {
        item["error"] = error;
    } else {
        item["_version"] = json!(3);
        item["result"] = json!("created");
    }
    json!({ "index": item })
}

async fn scripted_cluster() -> (ElasticsearchBackend, Scripted) {
    let cluster: Scripted = Arc::default();
    let app = Router::new().fallback(answer).with_state(cluster.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let backend = ElasticsearchBackend::new(&format!("http://{addr}"), "polyscale-").unwrap();
    assert!(!backend.ensure_index(&schema()).await.unwrap(), "an existing index with this schema needs no build");
    (backend, cluster)
}

fn priced_query(sort: Sort, first: u32, after: Option<String>) -> Query {
    Query {
        index: "products".into(),
        text: None,
        filters: vec![],
        sort,
        facets: vec![
            FacetRequest::Terms(("category_id".into(), 10)),
            FacetRequest::Ranges((
                "price".into(),
                vec![
                    RangeBucket { key: "low".into(), min: None, max: Some(3_000) },
                    RangeBucket { key: "mid".into(), min: Some(3_000), max: Some(7_000) },
                    RangeBucket { key: "high".into(), min: Some(7_000), max: None },
                ],
            )),
        ],
        first,
        after,
    }
}

/// Hits, totals, `search_after` cursors (made from each hit's `sort` and
/// sent back verbatim, floats included) and facets are read from answers
/// shaped like a cluster's.
#[tokio::test]
async fn search_answers_become_hits_cursors_and_facets() {
    let (backend, cluster) = scripted_cluster().await;
    let by_price = Sort::Field(("price".into(), Direction::Ascending));
    let aggregations = json!({
        "f0": { "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0,
                "buckets": [{ "key": "c1", "doc_count": 3 }, { "key": "c2", "doc_count": 2 }] },
        // Range buckets come back with float bounds, in request order, and
        // empty ones included.
        "f1": { "buckets": [
            { "key": "low", "to": 3000.0, "doc_count": 3 },
            { "key": "mid", "from": 3000.0, "to": 7000.0, "doc_count": 2 },
            { "key": "high", "from": 7000.0, "doc_count": 0 }
        ] }
    });
    {
        let mut c = cluster.lock().unwrap();
        // Page 1 asks for 2 + 1 hits; the cluster has 3 more: a next page.
        c.searches.push_back(search_answer(
            5,
            vec![hit("p1", json!([1999, "p1"])), hit("p2", json!([1999, "p2"])), hit("p3", json!([2999, "p3"]))],
            aggregations.clone(),
        ));
        c.searches.push_back(search_answer(
            5,
            vec![hit("p3", json!([2999, "p3"])), hit("p4", json!([4999, "p4"]))],
            aggregations.clone(),
        ));
        c.searches.push_back(search_answer(1, vec![hit("p9", json!([1.234_567_8, "p9"]))], json!({})));
        c.searches.push_back(search_answer(1, vec![], json!({})));
    }

    let page = backend.search(&priced_query(by_price.clone(), 2, None)).await.unwrap();
    assert_eq!(page.hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["p1", "p2"]);
    assert!(page.has_next_page);
    assert_eq!(page.total, 5);
    assert_eq!(cursor::decode("price:asc", &page.hits[1].cursor).unwrap(), json!([1999, "p2"]));
    let terms: Vec<(&str, u64)> = page.facets[0].buckets.iter().map(|b| (b.key.as_str(), b.count)).collect();
    assert_eq!(page.facets[0].field, "category_id");
    assert_eq!(terms, [("c1", 3), ("c2", 2)]);
    let ranges: Vec<(&str, u64)> = page.facets[1].buckets.iter().map(|b| (b.key.as_str(), b.count)).collect();
    assert_eq!(ranges, [("low", 3), ("mid", 2), ("high", 0)]);

    // Following the cursor sends the last hit's sort values as search_after.
    let next = backend.search(&priced_query(by_price, 2, Some(page.hits[1].cursor.clone()))).await.unwrap();
    assert_eq!(next.hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["p3", "p4"]);
    assert!(!next.has_next_page);

    // Relevance: the score is a float and survives the round trip exactly.
    let scored = backend.search(&priced_query(Sort::Relevance, 5, None)).await.unwrap();
    backend.search(&priced_query(Sort::Relevance, 5, Some(scored.hits[0].cursor.clone()))).await.unwrap();

    let seen = cluster.lock().unwrap().seen.clone();
    let bodies: Vec<Value> = seen
        .iter()
        .filter(|(_, u, _)| u.ends_with("/_search"))
        .map(|(_, _, b)| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(bodies.len(), 4);
    assert!(bodies[0].get("search_after").is_none());
    assert_eq!(bodies[0]["size"], 3);
    assert_eq!(bodies[1]["search_after"], json!([1999, "p2"]));
    assert_eq!(bodies[3]["search_after"], json!([1.234_567_8, "p9"]));
}

/// Per-item bulk results: a version conflict (409) means a newer version
/// is already indexed, so the batch succeeded; a mapping error (400) means
/// the change was not applied, so the batch fails and the outbox keeps the
/// row for a retry instead of dropping it.
#[tokio::test]
async fn bulk_item_results_conflicts_are_success_mapping_errors_are_kept_for_retry() {
    use polyscale_host::capabilities::search::SearchService;
    use polyscale_host::capabilities::search::outbox;

    let (backend, cluster) = scripted_cluster().await;
    let backend = Arc::new(backend);
    let conflict = json!({
        "type": "version_conflict_engine_exception",
        "reason": "[p2]: version conflict, current version [7] is higher than the one provided [3]"
    });
    let mapping_error = json!({
        "type": "document_parsing_exception",
        "reason": "[1:52] failed to parse field [price] of type [long] in document with id 'p3'",
        "caused_by": { "type": "illegal_argument_exception", "reason": "For input string: \"cheap\"" }
    });
    {
        let mut c = cluster.lock().unwrap();
        c.bulks.push_back(
            json!({ "took": 4, "errors": true, "items": [bulk_item("p1", 201, None), bulk_item("p2", 409, Some(conflict))] }),
        );
        c.bulks.push_back(
            json!({ "took": 4, "errors": true, "items": [bulk_item("p3", 400, Some(mapping_error.clone()))] }),
        );
        c.bulks.push_back(json!({ "took": 4, "errors": true, "items": [bulk_item("p3", 400, Some(mapping_error))] }));
        c.bulks.push_back(json!({ "took": 4, "errors": false, "items": [bulk_item("p3", 201, None)] }));
    }
    let doc = |id: &str, version: i64| {
        IndexOp::Upsert(Document {
            id: id.into(),
            version,
            fields: vec![Field { name: "name".into(), value: FieldValue::Text(format!("Item {id}")) }],
        })
    };

    backend.apply("products", &[doc("p1", 3), doc("p2", 3)]).await.expect("a version conflict is not a failure");
    let refused = backend.apply("products", &[doc("p3", 1)]).await;
    assert!(
        matches!(&refused, Err(SearchError::Unavailable(m)) if m.contains("document_parsing_exception")),
        "{refused:?}"
    );

    // Through the outbox: the refused row stays until the engine takes it.
    let (db, _guard) = crate::sqlite().await;
    outbox::ensure_table(&db).await.unwrap();
    let service = SearchService::new(backend.clone());
    let mut tx = db.begin().await.unwrap();
    outbox::enqueue(&mut tx, "products", &doc("p3", 1)).await.unwrap();
    tx.commit().await.unwrap();
    assert!(outbox::drain_once(&db, &service).await.is_err());
    assert_eq!(outbox::pending(&db).await.unwrap(), 1, "a refused change was dropped");
    assert_eq!(outbox::drain_once(&db, &service).await.unwrap(), 1);
    assert_eq!(outbox::pending(&db).await.unwrap(), 0);
}
