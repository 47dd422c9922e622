//! One behavioural suite for every search backend: Tantivy always,
//! Elasticsearch when `ELASTICSEARCH_URL` is set.

use std::collections::HashSet;
use std::sync::Arc;

use polyscale_host::bindings::search::{Field, RangeFilter};
use polyscale_host::capabilities::search::elasticsearch::ElasticsearchBackend;
use polyscale_host::capabilities::search::tantivy::TantivyBackend;
use polyscale_host::capabilities::search::{
    Direction, Document, FacetRequest, FieldKind, FieldSchema, FieldValue, Filter, IndexOp, IndexSchema, Query,
    RangeBucket, SearchBackend, SearchError, Sort,
};

fn schema() -> IndexSchema {
    let f = |name: &str, kind, boost, suggest| FieldSchema { name: name.into(), kind, boost, suggest };
    IndexSchema {
        name: "items".into(),
        fields: vec![
            f("name", FieldKind::Text, 3.0, true),
            f("description", FieldKind::Text, 1.0, false),
            f("category", FieldKind::Keyword, 1.0, false),
            f("price", FieldKind::Integer, 1.0, false),
            f("in_stock", FieldKind::Boolean, 1.0, false),
        ],
    }
}

/// A small catalog: (id, name, category, price, in stock).
fn catalog() -> Vec<(String, String, &'static str, i64, bool)> {
    let names = [
        ("Aero 13 Laptop", "laptops"),
        ("Nimbus Pro Laptop", "laptops"),
        ("Vector Ultrabook", "laptops"),
        ("Hush Wireless Headphones", "audio"),
        ("Bassline Studio Headphones", "audio"),
        ("Echo Sport Earbuds", "audio"),
        ("Cast Iron Skillet", "kitchen"),
        ("Copper Kettle", "kitchen"),
    ];
    (0..57)
        .map(|i| {
            let (name, category) = names[i % names.len()];
            (
                format!("item-{i:03}"),
                format!("{name} {}", i / names.len()),
                category,
                1_000 + (i as i64 * 737) % 9_000,
                i % 5 != 0,
            )
        })
        .collect()
}

fn document(id: &str, name: &str, category: &str, price: i64, in_stock: bool, version: i64) -> Document {
    let field = |name: &str, value| Field { name: name.into(), value };
    Document {
        id: id.into(),
        version,
        fields: vec![
            field("name", FieldValue::Text(name.into())),
            field("description", FieldValue::Text(format!("{name}, great value"))),
            field("category", FieldValue::Keyword(category.into())),
            field("price", FieldValue::Integer(price)),
            field("in_stock", FieldValue::Boolean(in_stock)),
        ],
    }
}

fn query(text: Option<&str>, filters: Vec<Filter>, sort: Sort, first: u32, after: Option<String>) -> Query {
    Query {
        index: "items".into(),
        text: text.map(str::to_string),
        filters,
        sort,
        facets: vec![
            FacetRequest::Terms(("category".into(), 10)),
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

async fn load(backend: &dyn SearchBackend) {
    assert!(backend.ensure_index(&schema()).await.unwrap(), "a new index needs a build");
    assert!(!backend.ensure_index(&schema()).await.unwrap(), "an existing index with the same schema does not");
    let ops: Vec<IndexOp> =
        catalog().into_iter().map(|(id, name, c, p, s)| IndexOp::Upsert(document(&id, &name, c, p, s, 1))).collect();
    backend.apply("items", &ops).await.unwrap();
}

/// Every hit of a query, page by page; fails on a repeated id.
async fn all_pages(
    backend: &dyn SearchBackend,
    text: Option<&str>,
    filters: Vec<Filter>,
    sort: Sort,
    page: u32,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let results = backend.search(&query(text, filters.clone(), sort.clone(), page, after.take())).await.unwrap();
        assert!(results.hits.len() <= page as usize);
        for hit in &results.hits {
            assert!(!ids.contains(&hit.id), "{} seen twice ({sort:?}, after {} ids)", hit.id, ids.len());
            ids.push(hit.id.clone());
        }
        if !results.has_next_page {
            assert_eq!(ids.len() as u64, results.total);
            return ids;
        }
        after = results.hits.last().map(|h| h.cursor.clone());
    }
}

async fn suite(backend: Arc<dyn SearchBackend>) {
    let backend = backend.as_ref();
    load(backend).await;
    let items = catalog();

    // Typos: one or two edits away still finds the word.
    for (typo, word) in [("lapotp", "Laptop"), ("hedphones", "Headphones"), ("skilet", "Skillet")] {
        let results = backend.search(&query(Some(typo), vec![], Sort::Relevance, 5, None)).await.unwrap();
        assert!(!results.hits.is_empty(), "{typo} found nothing");
        let first = items.iter().find(|i| i.0 == results.hits[0].id).unwrap();
        assert!(first.1.contains(word), "{typo} -> {}", first.1);
    }

    // Filters and facets agree with the data.
    let filters = vec![
        Filter::AnyOf(("category".into(), vec!["laptops".into(), "audio".into()])),
        Filter::Range(RangeFilter { field: "price".into(), min: Some(2_000), max: Some(8_000) }),
        Filter::Is(("in_stock".into(), true)),
    ];
    let expected: Vec<_> = items
        .iter()
        .filter(|i| (i.2 == "laptops" || i.2 == "audio") && (2_000..=8_000).contains(&i.3) && i.4)
        .collect();
    let results = backend.search(&query(None, filters.clone(), Sort::Relevance, 100, None)).await.unwrap();
    assert_eq!(results.total, expected.len() as u64);
    let got: HashSet<String> = results.hits.iter().map(|h| h.id.clone()).collect();
    assert_eq!(got, expected.iter().map(|i| i.0.clone()).collect());
    let categories = &results.facets[0].buckets;
    for c in ["laptops", "audio"] {
        let count = expected.iter().filter(|i| i.2 == c).count() as u64;
        assert_eq!(categories.iter().find(|b| b.key == c).map(|b| b.count).unwrap_or(0), count, "{c}");
    }
    assert!(categories.iter().all(|b| b.key != "kitchen"));
    let prices = &results.facets[1].buckets;
    let in_range = |lo: i64, hi: i64| expected.iter().filter(|i| i.3 >= lo && i.3 < hi).count() as u64;
    assert_eq!(
        prices.iter().map(|b| (b.key.as_str(), b.count)).collect::<Vec<_>>(),
        vec![("low", in_range(i64::MIN, 3_000)), ("mid", in_range(3_000, 7_000)), ("high", in_range(7_000, i64::MAX))]
    );

    // Paging never repeats or skips, whatever the sort.
    let every: HashSet<String> = items.iter().map(|i| i.0.clone()).collect();
    for sort in [
        Sort::Relevance,
        Sort::Field(("price".into(), Direction::Ascending)),
        Sort::Field(("price".into(), Direction::Descending)),
    ] {
        let ids = all_pages(backend, None, vec![], sort.clone(), 7).await;
        assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), every, "{sort:?}");
        if let Sort::Field((_, direction)) = &sort {
            let prices: Vec<i64> = ids.iter().map(|id| items.iter().find(|i| &i.0 == id).unwrap().3).collect();
            let sorted =
                prices.windows(2).all(|w| if *direction == Direction::Ascending { w[0] <= w[1] } else { w[0] >= w[1] });
            assert!(sorted, "{sort:?}: {prices:?}");
        }
    }
    let text_ids = all_pages(backend, Some("laptop"), vec![], Sort::Relevance, 4).await;
    assert_eq!(text_ids.len(), items.iter().filter(|i| i.1.contains("Laptop")).count());

    // Versions: older changes never win; replays change nothing.
    let (id, name, c, price, stock) = items[0].clone();
    let renamed = IndexOp::Upsert(document(&id, "Renamed Gadget", c, price, stock, 3));
    backend.apply("items", std::slice::from_ref(&renamed)).await.unwrap();
    backend.apply("items", &[IndexOp::Upsert(document(&id, &name, c, price, stock, 2)), renamed]).await.unwrap();
    let hits = backend.search(&query(Some("gadget"), vec![], Sort::Relevance, 5, None)).await.unwrap().hits;
    assert_eq!(hits.first().map(|h| h.id.as_str()), Some(id.as_str()));
    backend.apply("items", &[IndexOp::Remove { id: id.clone(), version: 4 }]).await.unwrap();
    backend.apply("items", &[IndexOp::Upsert(document(&id, "Renamed Gadget", c, price, stock, 3))]).await.unwrap();
    let hits = backend.search(&query(Some("gadget"), vec![], Sort::Relevance, 5, None)).await.unwrap().hits;
    assert!(hits.iter().all(|h| h.id != id), "a removed document came back");
    assert_eq!(backend.search(&query(None, vec![], Sort::Relevance, 1, None)).await.unwrap().total, 56);

    // Suggestions complete what is typed.
    let suggestions = backend.suggest("items", "name", "headph", 5).await.unwrap();
    assert!(!suggestions.is_empty() && suggestions.iter().all(|s| s.contains("Headphones")), "{suggestions:?}");
    assert!(suggestions.len() <= 5);

    // Hostile input: text is data, never syntax; cursors are checked.
    let hostile =
        ["name:laptop AND (price:[0 TO *] OR \"", "*", "\\\\ / ~ ^ ? { } [ ] < > ! &&", &"laptop ".repeat(1500), "   "];
    for text in hostile {
        backend
            .search(&query(Some(text), vec![], Sort::Relevance, 5, None))
            .await
            .unwrap_or_else(|e| panic!("{:.40}: {e:?}", text));
    }
    let garbage = backend.search(&query(None, vec![], Sort::Relevance, 5, Some("not-a-cursor".into()))).await;
    assert_eq!(garbage.unwrap_err(), SearchError::InvalidCursor);
    let page = backend.search(&query(None, vec![], Sort::Relevance, 5, None)).await.unwrap();
    let other_sort =
        query(None, vec![], Sort::Field(("price".into(), Direction::Ascending)), 5, Some(page.hits[0].cursor.clone()));
    assert_eq!(backend.search(&other_sort).await.unwrap_err(), SearchError::InvalidCursor);
    let unknown = query(None, vec![Filter::AnyOf(("nope".into(), vec!["x".into()]))], Sort::Relevance, 5, None);
    assert!(matches!(backend.search(&unknown).await, Err(SearchError::InvalidQuery(_))));
    let wrong_kind = query(None, vec![Filter::Is(("price".into(), true))], Sort::Relevance, 5, None);
    assert!(matches!(backend.search(&wrong_kind).await, Err(SearchError::InvalidQuery(_))));
    let no_index = Query { index: "missing".into(), ..query(None, vec![], Sort::Relevance, 5, None) };
    assert!(matches!(backend.search(&no_index).await, Err(SearchError::UnknownIndex(_))));

    // A rebuild serves the old generation until done and keeps changes
    // made meanwhile.
    backend.begin_rebuild(&schema()).await.unwrap();
    let during = IndexOp::Upsert(document("item-new", "Brand New Blender", "kitchen", 4_200, true, 1));
    backend.apply("items", &[during]).await.unwrap();
    let source: Vec<IndexOp> = catalog()
        .into_iter()
        .skip(1)
        .map(|(id, name, c, p, s)| IndexOp::Upsert(document(&id, &name, c, p, s, 1)))
        .collect();
    backend.load_rebuild("items", &source).await.unwrap();
    backend.finish_rebuild("items").await.unwrap();
    let after = all_pages(backend, None, vec![], Sort::Relevance, 20).await;
    assert_eq!(after.len(), 57);
    assert!(after.contains(&"item-new".to_string()) && !after.contains(&id));
}

#[tokio::test]
async fn tantivy_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    suite(Arc::new(TantivyBackend::new(dir.path()))).await;

    // Reopened from disk, the index and its current generation are kept.
    let reopened = TantivyBackend::new(dir.path());
    assert!(!reopened.ensure_index(&schema()).await.unwrap());
    assert_eq!(reopened.search(&query(None, vec![], Sort::Relevance, 1, None)).await.unwrap().total, 57);

    // A changed schema asks for a rebuild.
    let mut changed = schema();
    changed.fields.pop();
    assert!(TantivyBackend::new(dir.path()).ensure_index(&changed).await.unwrap());
}

/// Ignored (and so reported as skipped) unless run against a cluster:
/// `cargo xtask test` includes it when `ELASTICSEARCH_URL` is set.
#[tokio::test]
#[ignore = "needs an Elasticsearch cluster at ELASTICSEARCH_URL"]
async fn elasticsearch_passes_the_suite() {
    let url = std::env::var("ELASTICSEARCH_URL").expect("ELASTICSEARCH_URL points at an Elasticsearch cluster");
    let prefix = format!("polyscale-test-{}-", uuid::Uuid::now_v7().simple());
    suite(Arc::new(ElasticsearchBackend::new(&url, &prefix).unwrap())).await;
}

#[tokio::test]
async fn an_unreachable_elasticsearch_is_unavailable_not_a_crash() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let backend = ElasticsearchBackend::new(&format!("http://{closed}"), "polyscale-").unwrap();
    assert!(matches!(backend.ensure_index(&schema()).await, Err(SearchError::Unavailable(_))));
}

/// On PostgreSQL, outbox sequence numbers are taken at insert, not at
/// commit: a transaction holding a lower number can commit after one with a
/// higher number has been drained. The drainer must still deliver it
/// (it deletes exactly the rows it applied, never "everything up to N"),
/// and a stale change arriving late must not undo a newer one.
#[tokio::test]
async fn outbox_rows_committed_out_of_sequence_order_are_not_lost_on_postgres() {
    use polyscale_host::capabilities::search::SearchService;
    use polyscale_host::capabilities::search::outbox;

    let (db, _guard) = crate::postgres().await;
    outbox::ensure_table(&db).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(TantivyBackend::new(dir.path()));
    backend.ensure_index(&schema()).await.unwrap();
    let service = SearchService::new(backend.clone());
    let found = |text: &'static str| {
        let backend = backend.clone();
        async move {
            let results = backend.search(&query(Some(text), vec![], Sort::Relevance, 10, None)).await.unwrap();
            results.hits.into_iter().map(|h| h.id).collect::<Vec<_>>()
        }
    };

    // T1 takes the lower sequence number and stays open...
    let mut t1 = db.begin().await.unwrap();
    outbox::enqueue(&mut t1, "items", &IndexOp::Upsert(document("late", "Tardy Teapot", "kitchen", 1_000, true, 1)))
        .await
        .unwrap();
    // ...T2 takes a higher one and commits first; it also carries a newer
    // version of a document T1 is about to write an older version of.
    let mut t2 = db.begin().await.unwrap();
    outbox::enqueue(&mut t2, "items", &IndexOp::Upsert(document("early", "Prompt Kettle", "kitchen", 2_000, true, 1)))
        .await
        .unwrap();
    outbox::enqueue(&mut t2, "items", &IndexOp::Upsert(document("shared", "Newer Skillet", "kitchen", 3_000, true, 2)))
        .await
        .unwrap();
    t2.commit().await.unwrap();

    let rows =
        db.query("SELECT seq FROM _polyscale_search_outbox ORDER BY seq", &[], &Default::default()).await.unwrap();
    assert_eq!(rows.rows.len(), 2, "only T2's rows are visible");
    assert_eq!(outbox::drain_once(&db, &service).await.unwrap(), 2);
    assert_eq!(found("kettle").await, ["early"]);

    // T1 commits now, behind the drained higher numbers, with a stale copy
    // of the shared document.
    outbox::enqueue(&mut t1, "items", &IndexOp::Upsert(document("shared", "Older Skillet", "kitchen", 3_000, true, 1)))
        .await
        .unwrap();
    t1.commit().await.unwrap();
    assert_eq!(outbox::pending(&db).await.unwrap(), 2, "T1's rows wait in the outbox");
    assert_eq!(outbox::drain_once(&db, &service).await.unwrap(), 2);
    assert_eq!(outbox::pending(&db).await.unwrap(), 0);
    assert_eq!(outbox::drain_once(&db, &service).await.unwrap(), 0);

    assert_eq!(found("teapot").await, ["late"], "the late commit was delivered");
    assert_eq!(found("kettle").await, ["early"]);
    assert_eq!(found("newer").await, ["shared"], "the newer version stays");
    assert!(found("older").await.is_empty(), "the stale version arriving late changed nothing");
}
