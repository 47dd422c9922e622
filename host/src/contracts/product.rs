//! Protobuf ↔ WIT conversions for the product service, in one place.

use polyscale_proto::product::v1 as pb;
use polyscale_proto::types::v1 as types_pb;

use super::MissingField;
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

/// The page a gRPC request gets when it leaves its size unset (0), as in
/// Google's AIP-158; the GraphQL default is the same.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// A gRPC page request as the components take it: an unset size is the
/// default page, never an error.
pub fn page_request(first: u32, after: Option<String>) -> PageRequest {
    PageRequest { first: if first == 0 { DEFAULT_PAGE_SIZE } else { first }, after }
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
        page: page_request(r.first, r.after),
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

// --- the other direction: what a caller of the product service sends and
// --- reads back.

impl TryFrom<pb::Product> for wit::Product {
    type Error = MissingField;

    fn try_from(p: pb::Product) -> Result<Self, MissingField> {
        let price = p.price.ok_or(MissingField { message: "Product", field: "price" })?;
        Ok(wit::Product {
            id: p.id,
            merchant_id: p.merchant_id,
            name: p.name,
            description: p.description,
            price: Money { amount: price.amount, currency: price.currency },
            category_id: p.category_id,
            stock: p.stock,
            created_at_ms: p.created_at_ms,
            updated_at_ms: p.updated_at_ms,
        })
    }
}

impl From<pb::Category> for wit::Category {
    fn from(c: pb::Category) -> Self {
        wit::Category { id: c.id, name: c.name, slug: c.slug, parent_id: c.parent_id }
    }
}

impl From<wit::NewProduct> for pb::CreateProductRequest {
    fn from(p: wit::NewProduct) -> Self {
        pb::CreateProductRequest {
            merchant_id: p.merchant_id,
            name: p.name,
            description: p.description,
            price: Some(money_out(p.price)),
            category_id: p.category_id,
            stock: p.stock,
        }
    }
}

/// The request that [`product_patch`] reads back as `(id, patch)`.
pub fn update_request(id: String, patch: wit::ProductPatch) -> pb::UpdateProductRequest {
    pb::UpdateProductRequest {
        id,
        name: patch.name,
        description: patch.description,
        price: patch.price.map(money_out),
        clear_category: matches!(patch.category_id, Some(None)),
        category_id: patch.category_id.flatten(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product() -> wit::Product {
        wit::Product {
            id: "0190a1b2-0000-7000-8000-000000000001".into(),
            merchant_id: "m-1".into(),
            name: "Corvid 15 Air Laptop".into(),
            description: "light".into(),
            price: Money { amount: 129_999, currency: "EUR".into() },
            category_id: Some("c-1".into()),
            stock: 7,
            created_at_ms: 1_700_000_000_000,
            updated_at_ms: 1_700_000_000_500,
        }
    }

    #[test]
    fn products_and_categories_round_trip() {
        let p = product();
        assert_eq!(wit::Product::try_from(pb::Product::from(p.clone())), Ok(p));
        let no_category = wit::Product { category_id: None, ..product() };
        assert_eq!(wit::Product::try_from(pb::Product::from(no_category.clone())), Ok(no_category));
        let c = wit::Category { id: "c-1".into(), name: "Laptops".into(), slug: "laptops".into(), parent_id: None };
        assert_eq!(wit::Category::from(pb::Category::from(c.clone())), c);
    }

    #[test]
    fn a_product_without_a_price_is_refused() {
        let mut message = pb::Product::from(product());
        message.price = None;
        assert_eq!(wit::Product::try_from(message), Err(MissingField { message: "Product", field: "price" }));
    }

    #[test]
    fn requests_round_trip() {
        let new = wit::NewProduct {
            merchant_id: Some("m-1".into()),
            name: "Kettle".into(),
            description: "boils".into(),
            price: Money { amount: 2_500, currency: "USD".into() },
            category_id: None,
            stock: 3,
        };
        assert_eq!(new_product(pb::CreateProductRequest::from(new.clone())), new);

        for category_id in [None, Some(None), Some(Some("c-2".to_string()))] {
            let patch = wit::ProductPatch {
                name: Some("Kettle 2".into()),
                description: None,
                price: Some(Money { amount: 2_400, currency: "USD".into() }),
                category_id,
            };
            assert_eq!(product_patch(update_request("p-1".into(), patch.clone())), ("p-1".to_string(), patch));
        }
    }
}
