//! Protobuf ↔ WIT conversions for the product service, in one place.

use polyscale_proto::product::v1 as pb;
use polyscale_proto::types::v1 as types_pb;

use crate::bindings::product::exports::polyscale::commerce::products as wit;
use crate::bindings::types::{Money, PageRequest};

fn money_in(m: Option<types_pb::Money>) -> Money {
    // An absent price reaches the component as an empty currency, which it
    // rejects as UNKNOWN_CURRENCY: one validation path for every client.
    let m = m.unwrap_or_default();
    Money { amount: m.amount, currency: m.currency }
}

fn money_out(m: Money) -> types_pb::Money {
    types_pb::Money { amount: m.amount, currency: m.currency }
}

pub fn new_product(r: pb::CreateProductRequest) -> wit::NewProduct {
    wit::NewProduct {
        merchant_id: r.merchant_id,
        name: r.name,
        description: r.description,
        price: money_in(r.price),
        category_id: r.category_id,
        stock: r.stock,
    }
}

pub fn product_patch(r: pb::UpdateProductRequest) -> (String, wit::ProductPatch) {
    let category_id = if r.clear_category { Some(None) } else { r.category_id.map(Some) };
    let patch = wit::ProductPatch {
        name: r.name,
        description: r.description,
        price: r.price.map(|m| money_in(Some(m))),
        category_id,
    };
    (r.id, patch)
}

pub fn page_request(first: u32, after: Option<String>) -> PageRequest {
    PageRequest { first, after }
}

impl From<wit::Product> for pb::Product {
    fn from(p: wit::Product) -> Self {
        pb::Product {
            id: p.id,
            merchant_id: p.merchant_id,
            name: p.name,
            description: p.description,
            price: Some(money_out(p.price)),
            category_id: p.category_id,
            stock: p.stock,
            created_at_ms: p.created_at_ms,
            updated_at_ms: p.updated_at_ms,
        }
    }
}

impl From<wit::Category> for pb::Category {
    fn from(c: wit::Category) -> Self {
        pb::Category { id: c.id, name: c.name, slug: c.slug, parent_id: c.parent_id }
    }
}

fn edges(edges: Vec<wit::ProductEdge>) -> Vec<pb::ProductEdge> {
    edges.into_iter().map(|e| pb::ProductEdge { cursor: e.cursor, node: Some(e.node.into()) }).collect()
}

impl From<wit::ProductPage> for pb::ListProductsResponse {
    fn from(page: wit::ProductPage) -> Self {
        pb::ListProductsResponse {
            edges: edges(page.edges),
            has_next_page: page.has_next_page,
            total_count: page.total_count,
        }
    }
}

pub fn product_search(r: pb::SearchProductsRequest) -> wit::ProductSearch {
    let f = r.filter.unwrap_or_default();
    let sort = match pb::ProductSort::try_from(r.sort).unwrap_or(pb::ProductSort::Unspecified) {
        pb::ProductSort::Unspecified => None,
        pb::ProductSort::Relevance => Some(wit::ProductSort::Relevance),
        pb::ProductSort::PriceAscending => Some(wit::ProductSort::PriceAscending),
        pb::ProductSort::PriceDescending => Some(wit::ProductSort::PriceDescending),
        pb::ProductSort::Newest => Some(wit::ProductSort::Newest),
    };
    wit::ProductSearch {
        query: r.query,
        filter: wit::ProductFilter {
            category_ids: f.category_ids,
            merchant_id: f.merchant_id,
            price_min: f.price_min,
            price_max: f.price_max,
            currency: f.currency,
            in_stock: f.in_stock,
        },
        sort,
        page: PageRequest { first: r.first, after: r.after },
    }
}

impl From<wit::ProductSearchPage> for pb::SearchProductsResponse {
    fn from(page: wit::ProductSearchPage) -> Self {
        pb::SearchProductsResponse {
            edges: edges(page.edges),
            has_next_page: page.has_next_page,
            total_count: page.total_count,
            categories: page
                .facets
                .categories
                .into_iter()
                .map(|c| pb::CategoryCount { category: Some(c.category.into()), count: c.count })
                .collect(),
            prices: page
                .facets
                .prices
                .into_iter()
                .map(|b| pb::PriceBucket { min: b.min, max: b.max, count: b.count })
                .collect(),
        }
    }
}
