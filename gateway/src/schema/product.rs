//! Products and categories.

use async_graphql::{
    ComplexObject, Context, Enum, ErrorExtensions, ID, InputObject, MaybeUndefined, Object, Result, SimpleObject,
};
use chrono::{DateTime, TimeZone, Utc};
use polyscale_proto::product::v1 as pb;

use super::money::{MinorUnits, Money, MoneyInput};
use super::{categories, clients, request_context};
use crate::errors::{self, Code, Failure, UserError, api_error};
use crate::limits::{GraphqlLimits, MAX_PAGE_SIZE};
use crate::rate_limit::{self, Class};

const DEFAULT_PAGE_SIZE: i32 = 20;

/// A product for sale.
#[derive(Clone)]
pub struct Product(pub(crate) pb::Product);

pub(super) fn timestamp(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[Object]
impl Product {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// The merchant that sells it.
    async fn merchant_id(&self) -> ID {
        ID(self.0.merchant_id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    async fn price(&self) -> Money {
        self.0.price.clone().unwrap_or_default().into()
    }
    /// Units on hand; never negative.
    async fn stock(&self) -> i32 {
        // The product service caps stock far below i32::MAX.
        i32::try_from(self.0.stock).unwrap_or(i32::MAX)
    }
    async fn in_stock(&self) -> bool {
        self.0.stock > 0
    }
    async fn category(&self, ctx: &Context<'_>) -> Result<Option<Category>> {
        let Some(id) = &self.0.category_id else { return Ok(None) };
        Ok(categories(ctx).await?.get(id).cloned().map(Category))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        timestamp(self.0.created_at_ms)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        timestamp(self.0.updated_at_ms)
    }
}

/// A node of the category tree.
#[derive(Clone)]
pub struct Category(pb::Category);

#[Object]
impl Category {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Lower-case, URL-safe, unique.
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn parent(&self, ctx: &Context<'_>) -> Result<Option<Category>> {
        let Some(id) = &self.0.parent_id else { return Ok(None) };
        Ok(categories(ctx).await?.get(id).cloned().map(Category))
    }
}

#[derive(SimpleObject)]
pub struct PageInfo {
    pub(super) has_next_page: bool,
    pub(super) has_previous_page: bool,
    pub(super) start_cursor: Option<String>,
    pub(super) end_cursor: Option<String>,
}

#[derive(SimpleObject)]
pub struct ProductEdge {
    cursor: String,
    node: Product,
}

/// A page of products (Relay connection).
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ProductConnection {
    edges: Vec<ProductEdge>,
    page_info: PageInfo,
    /// Products in the whole list (or matching the search), not just this page.
    total_count: u64,
    /// Counts by category and price range over everything the search
    /// matched. Asking for them makes the request a search.
    facets: Option<ProductFacets>,
}

impl ProductConnection {
    fn new(
        edges: Vec<pb::ProductEdge>,
        has_next_page: bool,
        has_previous_page: bool,
        total_count: u64,
        facets: Option<ProductFacets>,
    ) -> Self {
        let edges: Vec<ProductEdge> = edges
            .into_iter()
            .map(|e| ProductEdge { cursor: e.cursor, node: Product(e.node.unwrap_or_default()) })
            .collect();
        ProductConnection {
            page_info: PageInfo {
                has_next_page,
                has_previous_page,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            total_count,
            facets,
        }
    }
}

#[derive(SimpleObject)]
pub struct ProductFacets {
    /// Categories of the matching products, most products first.
    categories: Vec<CategoryFacet>,
    /// Matching products by price range (minor units, `min <= price < max`).
    prices: Vec<PriceFacet>,
}

#[derive(SimpleObject)]
pub struct CategoryFacet {
    category: Category,
    count: u64,
}

#[derive(SimpleObject)]
pub struct PriceFacet {
    min: Option<MinorUnits>,
    max: Option<MinorUnits>,
    count: u64,
}

/// Products matching every condition given.
#[derive(InputObject, Default)]
pub struct ProductFilter {
    /// In any of these categories.
    category_ids: Option<Vec<ID>>,
    merchant_id: Option<ID>,
    /// Minor units, inclusive.
    price_min: Option<MinorUnits>,
    price_max: Option<MinorUnits>,
    currency: Option<String>,
    in_stock: Option<bool>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ProductSort {
    /// Best match first (the default with a query).
    Relevance,
    PriceAsc,
    PriceDesc,
    /// Newest first (the default without a query).
    Newest,
}

impl ProductSort {
    fn to_pb(self) -> pb::ProductSort {
        match self {
            ProductSort::Relevance => pb::ProductSort::Relevance,
            ProductSort::PriceAsc => pb::ProductSort::PriceAscending,
            ProductSort::PriceDesc => pb::ProductSort::PriceDescending,
            ProductSort::Newest => pb::ProductSort::Newest,
        }
    }
}

#[ComplexObject]
impl ProductConnection {
    /// The edges' nodes, for clients that need no cursors.
    async fn nodes(&self) -> Vec<Product> {
        self.edges.iter().map(|e| e.node.clone()).collect()
    }
}

#[derive(Default)]
pub struct ProductQuery;

#[Object]
impl ProductQuery {
    /// A product by id. Unknown ids give `null` and a `NOT_FOUND` error.
    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Product>> {
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        match clients.product.clone().get_product(clients.request(pb::GetProductRequest { id: id.0 }, request)).await {
            Ok(r) => Ok(Some(Product(r.into_inner()))),
            Err(status) => Err(errors::top_level(&status)),
        }
    }

    /// The catalog, a page at a time (`first` at most 100).
    ///
    /// Without `query`, `filter`, `sort` or `facets` this lists products in
    /// creation order straight from the database. With any of them it is
    /// a search: typo-tolerant free text, filters, sorting and facets over
    /// the search index, which follows writes within moments.
    // An out-of-range `first` is refused by the resolver with a precise
    // error, so the estimate clamps it rather than failing as "too complex".
    #[graphql(complexity = "first.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE) as usize * child_complexity")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        filter: Option<ProductFilter>,
        sort: Option<ProductSort>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ProductConnection> {
        let limits = ctx.data_unchecked::<GraphqlLimits>();
        let first = first.unwrap_or(DEFAULT_PAGE_SIZE);
        if first < 1 || first > limits.max_page_size {
            return Err(api_error(
                Code::BadUserInput,
                format!("`first` must be between 1 and {}", limits.max_page_size),
            )
            .extend_with(|_, e| e.set("field", "first")));
        }
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        let has_previous_page = after.is_some();
        let wants_facets = ctx.look_ahead().field("facets").exists();
        if query.is_none() && filter.is_none() && sort.is_none() && !wants_facets {
            let response = clients
                .product
                .clone()
                .list_products(clients.request(pb::ListProductsRequest { first: first as u32, after }, request))
                .await
                .map_err(|s| errors::top_level(&s))?
                .into_inner();
            return Ok(ProductConnection::new(
                response.edges,
                response.has_next_page,
                has_previous_page,
                response.total_count,
                None,
            ));
        }
        // A search: the expensive path, limited per client address.
        rate_limit::check(ctx, Class::Search)?;
        let filter = filter.unwrap_or_default();
        let message = pb::SearchProductsRequest {
            query,
            filter: Some(pb::ProductFilter {
                category_ids: filter.category_ids.unwrap_or_default().into_iter().map(|id| id.0).collect(),
                merchant_id: filter.merchant_id.map(|id| id.0),
                price_min: filter.price_min.map(|m| m.0),
                price_max: filter.price_max.map(|m| m.0),
                currency: filter.currency,
                in_stock: filter.in_stock,
            }),
            sort: sort.map_or(pb::ProductSort::Unspecified, ProductSort::to_pb) as i32,
            first: first as u32,
            after,
        };
        let response = clients
            .product
            .clone()
            .search_products(clients.request(message, request))
            .await
            .map_err(|s| errors::top_level(&s))?
            .into_inner();
        let facets = ProductFacets {
            categories: response
                .categories
                .into_iter()
                .map(|c| CategoryFacet { category: Category(c.category.unwrap_or_default()), count: c.count })
                .collect(),
            prices: response
                .prices
                .into_iter()
                .map(|b| PriceFacet { min: b.min.map(MinorUnits), max: b.max.map(MinorUnits), count: b.count })
                .collect(),
        };
        Ok(ProductConnection::new(
            response.edges,
            response.has_next_page,
            has_previous_page,
            response.total_count,
            Some(facets),
        ))
    }

    /// Product names starting with what the user typed, for autocomplete.
    async fn search_suggestions(
        &self,
        ctx: &Context<'_>,
        prefix: String,
        #[graphql(default = 10)] first: i32,
    ) -> Result<Vec<String>> {
        if !(1..=20).contains(&first) {
            return Err(api_error(Code::BadUserInput, "`first` must be between 1 and 20")
                .extend_with(|_, e| e.set("field", "first")));
        }
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        let response = clients
            .product
            .clone()
            .suggest_products(clients.request(pb::SuggestProductsRequest { prefix, limit: first as u32 }, request))
            .await
            .map_err(|s| errors::top_level(&s))?;
        Ok(response.into_inner().suggestions)
    }

    /// Every category, by name.
    async fn categories(&self, ctx: &Context<'_>) -> Result<Vec<Category>> {
        let mut all: Vec<Category> = categories(ctx).await?.values().cloned().map(Category).collect();
        all.sort_by(|a, b| a.0.name.cmp(&b.0.name).then_with(|| a.0.id.cmp(&b.0.id)));
        Ok(all)
    }
}

#[derive(InputObject)]
pub struct CreateProductInput {
    /// Required for admins; merchants sell their own products.
    merchant_id: Option<ID>,
    name: String,
    #[graphql(default)]
    description: String,
    price: MoneyInput,
    category_id: Option<ID>,
    #[graphql(default)]
    stock: i32,
}

/// Fields left out are unchanged; `categoryId: null` removes the category.
#[derive(InputObject)]
pub struct UpdateProductInput {
    name: Option<String>,
    description: Option<String>,
    price: Option<MoneyInput>,
    category_id: MaybeUndefined<ID>,
}

#[derive(InputObject)]
pub struct CreateCategoryInput {
    name: String,
    parent_id: Option<ID>,
}

#[derive(SimpleObject)]
pub struct ProductPayload {
    product: Option<Product>,
    user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct DeleteProductPayload {
    deleted_product_id: Option<ID>,
    user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct CategoryPayload {
    category: Option<Category>,
    user_errors: Vec<UserError>,
}

/// GraphQL input path of a service field: `id` and `delta` are arguments,
/// everything else sits under `input`.
fn input_path(field: &str) -> Vec<String> {
    let mut path: Vec<String> = field.split('.').map(str::to_string).collect();
    if !matches!(field, "id" | "delta") {
        path.insert(0, "input".into());
    }
    path
}

/// Splits a failed mutation into payload user errors or a top-level error.
fn user_errors(status: tonic::Status) -> Result<Vec<UserError>> {
    match errors::from_status(&status, &input_path) {
        Failure::User(errors) => Ok(errors),
        Failure::Api(e) => Err(e),
    }
}

fn product_payload(result: std::result::Result<tonic::Response<pb::Product>, tonic::Status>) -> Result<ProductPayload> {
    match result {
        Ok(r) => Ok(ProductPayload { product: Some(Product(r.into_inner())), user_errors: vec![] }),
        Err(status) => Ok(ProductPayload { product: None, user_errors: user_errors(status)? }),
    }
}

#[derive(Default)]
pub struct ProductMutation;

#[Object]
impl ProductMutation {
    async fn create_product(&self, ctx: &Context<'_>, input: CreateProductInput) -> Result<ProductPayload> {
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        let message = pb::CreateProductRequest {
            merchant_id: input.merchant_id.map(|id| id.0),
            name: input.name,
            description: input.description,
            price: Some(input.price.into()),
            category_id: input.category_id.map(|id| id.0),
            stock: input.stock.into(),
        };
        product_payload(clients.product.clone().create_product(clients.request(message, request)).await)
    }

    async fn update_product(&self, ctx: &Context<'_>, id: ID, input: UpdateProductInput) -> Result<ProductPayload> {
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        let (category_id, clear_category) = match input.category_id {
            MaybeUndefined::Undefined => (None, false),
            MaybeUndefined::Null => (None, true),
            MaybeUndefined::Value(id) => (Some(id.0), false),
        };
        let message = pb::UpdateProductRequest {
            id: id.0,
            name: input.name,
            description: input.description,
            price: input.price.map(Into::into),
            category_id,
            clear_category,
        };
        product_payload(clients.product.clone().update_product(clients.request(message, request)).await)
    }

    async fn delete_product(&self, ctx: &Context<'_>, id: ID) -> Result<DeleteProductPayload> {
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        let message = pb::DeleteProductRequest { id: id.0.clone() };
        match clients.product.clone().delete_product(clients.request(message, request)).await {
            Ok(_) => Ok(DeleteProductPayload { deleted_product_id: Some(id), user_errors: vec![] }),
            Err(status) => Ok(DeleteProductPayload { deleted_product_id: None, user_errors: user_errors(status)? }),
        }
    }

    /// Adds `delta` units (negative to remove). Stock never goes below zero.
    async fn adjust_stock(&self, ctx: &Context<'_>, id: ID, delta: i32) -> Result<ProductPayload> {
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        let message = pb::AdjustStockRequest { id: id.0, delta: delta.into() };
        product_payload(clients.product.clone().adjust_stock(clients.request(message, request)).await)
    }

    async fn create_category(&self, ctx: &Context<'_>, input: CreateCategoryInput) -> Result<CategoryPayload> {
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        let message = pb::CreateCategoryRequest { name: input.name, parent_id: input.parent_id.map(|id| id.0) };
        match clients.product.clone().create_category(clients.request(message, request)).await {
            Ok(r) => Ok(CategoryPayload { category: Some(Category(r.into_inner())), user_errors: vec![] }),
            Err(status) => Ok(CategoryPayload { category: None, user_errors: user_errors(status)? }),
        }
    }
}
