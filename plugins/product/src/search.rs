//! Product search: turns a product search into a structured query for the
//! host's engine, and the hits back into products read from SQL.

use polyscale_guest::bindings::types::DomainError;
use polyscale_guest::{FieldErrors, Invalid, ids, money};

use crate::bindings::exports::polyscale::commerce::products::{
    CategoryCount, PriceBucket, ProductEdge, ProductFacets, ProductSearch, ProductSearchPage, ProductSort,
};
use crate::bindings::polyscale::commerce::search::{
    self, Direction, FacetRequest, Filter, Query, RangeBucket, RangeFilter, SearchError, Sort,
};
use crate::catalog::{self, MAX_PAGE_SIZE};
use crate::indexing::INDEX;

/// Longest free-text query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most categories one filter may name.
const MAX_CATEGORY_FILTER: usize = 50;
/// Category facet size.
const MAX_CATEGORY_FACETS: u32 = 50;
pub const MAX_SUGGESTIONS: u32 = 20;

/// Price facet buckets, in minor units: under 25, 25–50, 50–100, 100–250,
/// 250–500, 500–1000, 1000 and over (major units).
const PRICE_EDGES: [i64; 6] = [2_500, 5_000, 10_000, 25_000, 50_000, 100_000];

fn price_buckets() -> Vec<RangeBucket> {
    let mut buckets = Vec::new();
    let mut min = None;
    for edge in PRICE_EDGES {
        buckets.push(RangeBucket { key: bucket_key(min, Some(edge)), min, max: Some(edge) });
        min = Some(edge);
    }
    buckets.push(RangeBucket { key: bucket_key(min, None), min, max: None });
    buckets
}

fn bucket_key(min: Option<i64>, max: Option<i64>) -> String {
    let end = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
    format!("{}-{}", end(min), end(max))
}

fn unavailable_or_internal(e: SearchError) -> DomainError {
    match e {
        SearchError::InvalidCursor => {
            DomainError::invalid("after", "INVALID_CURSOR", "the cursor is not one this search returned")
        }
        SearchError::Unavailable(m) => DomainError::Unavailable(format!("search engine: {m}")),
        other => DomainError::Internal(format!("search failed: {other:?}")),
    }
}

pub fn search_products(q: ProductSearch) -> Result<ProductSearchPage, DomainError> {
    let mut errors = FieldErrors::new();
    let text = q.query.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    if text.as_ref().is_some_and(|t| t.chars().count() > MAX_QUERY_CHARS) {
        errors.add("query", "TOO_LONG", format!("search text may be at most {MAX_QUERY_CHARS} characters"));
    }
    if q.page.first == 0 || q.page.first > MAX_PAGE_SIZE {
        errors.add("first", "OUT_OF_RANGE", format!("first must be between 1 and {MAX_PAGE_SIZE}"));
    }
    let f = q.filter;
    if f.category_ids.len() > MAX_CATEGORY_FILTER {
        errors.add("filter.categoryIds", "TOO_MANY", format!("name at most {MAX_CATEGORY_FILTER} categories"));
    }
    let category_ids: Vec<String> =
        f.category_ids.iter().filter_map(|id| errors.take(ids::parse_id("filter.categoryIds", id))).collect();
    let merchant_id = f.merchant_id.as_deref().and_then(|m| errors.take(ids::parse_id("filter.merchantId", m)));
    let currency = f.currency.as_deref().and_then(|c| errors.take(money::parse_currency("filter.currency", c)));
    if let (Some(min), Some(max)) = (f.price_min, f.price_max)
        && min > max
    {
        errors.add("filter.priceMin", "INVALID_RANGE", "priceMin is above priceMax");
    }
    errors.finish()?;

    let mut filters = Vec::new();
    if !category_ids.is_empty() {
        filters.push(Filter::AnyOf(("category_id".into(), category_ids)));
    }
    if let Some(m) = merchant_id {
        filters.push(Filter::AnyOf(("merchant_id".into(), vec![m])));
    }
    if let Some(c) = currency {
        filters.push(Filter::AnyOf(("currency".into(), vec![c])));
    }
    if f.price_min.is_some() || f.price_max.is_some() {
        filters.push(Filter::Range(RangeFilter { field: "price".into(), min: f.price_min, max: f.price_max }));
    }
    if let Some(in_stock) = f.in_stock {
        filters.push(Filter::Is(("in_stock".into(), in_stock)));
    }
    let sort = match q.sort.unwrap_or(if text.is_some() { ProductSort::Relevance } else { ProductSort::Newest }) {
        ProductSort::Relevance => Sort::Relevance,
        ProductSort::PriceAscending => Sort::Field(("price".into(), Direction::Ascending)),
        ProductSort::PriceDescending => Sort::Field(("price".into(), Direction::Descending)),
        ProductSort::Newest => Sort::Field(("created_at".into(), Direction::Descending)),
    };
    let results = search::search(&Query {
        index: INDEX.into(),
        text,
        filters,
        sort,
        facets: vec![
            FacetRequest::Terms(("category_id".into(), MAX_CATEGORY_FACETS)),
            FacetRequest::Ranges(("price".into(), price_buckets())),
        ],
        first: q.page.first,
        after: q.page.after,
    })
    .map_err(unavailable_or_internal)?;

    // Products come from SQL, the source of truth; a hit whose product was
    // deleted a moment ago (the index not yet caught up) is left out.
    let hit_ids: Vec<String> = results.hits.iter().map(|h| h.id.clone()).collect();
    let products = catalog::products_by_ids(&hit_ids)?;
    let edges = results
        .hits
        .iter()
        .filter_map(|hit| {
            products
                .iter()
                .find(|p| p.id == hit.id)
                .map(|p| ProductEdge { cursor: hit.cursor.clone(), node: p.clone() })
        })
        .collect();

    let mut facets = ProductFacets { categories: Vec::new(), prices: Vec::new() };
    for facet in results.facets {
        match facet.field.as_str() {
            "category_id" => {
                let wanted: Vec<String> = facet.buckets.iter().map(|b| b.key.clone()).collect();
                let categories = catalog::categories_by_ids(&wanted)?;
                facets.categories = facet
                    .buckets
                    .iter()
                    .filter_map(|b| {
                        categories
                            .iter()
                            .find(|c| c.id == b.key)
                            .map(|c| CategoryCount { category: c.clone(), count: b.count })
                    })
                    .collect();
            }
            "price" => {
                facets.prices = price_buckets()
                    .into_iter()
                    .map(|r| PriceBucket {
                        min: r.min,
                        max: r.max,
                        count: facet.buckets.iter().find(|b| b.key == r.key).map_or(0, |b| b.count),
                    })
                    .collect();
            }
            _ => {}
        }
    }
    Ok(ProductSearchPage { edges, has_next_page: results.has_next_page, total_count: results.total, facets })
}

pub fn suggest_products(prefix: String, limit: u32) -> Result<Vec<String>, DomainError> {
    let prefix = prefix.trim();
    if prefix.chars().count() > MAX_QUERY_CHARS {
        return Err(DomainError::invalid("prefix", "TOO_LONG", format!("at most {MAX_QUERY_CHARS} characters")));
    }
    if prefix.is_empty() {
        return Ok(Vec::new());
    }
    search::suggest(INDEX, "name", prefix, limit.clamp(1, MAX_SUGGESTIONS)).map_err(unavailable_or_internal)
}
