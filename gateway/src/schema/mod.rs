//! The GraphQL schema: one module per domain, merged into the roots.

mod account;
mod loader;
mod money;
mod order;
mod payment;
pub(crate) mod plugins;
mod product;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_graphql::{Context, EmptySubscription, MergedObject, Schema};
use polyscale_proto::product::v1 as product_pb;
use tokio::sync::OnceCell;

use crate::clients::Clients;
use crate::errors::{self, Code, ErrorShape, api_error};
use crate::limits::{AliasLimit, DepthLimit, GraphqlLimits, NoIntrospection};
use crate::rate_limit::RateLimiters;

pub use money::{MinorUnits, Money, MoneyInput};

#[derive(MergedObject, Default)]
pub struct Query(product::ProductQuery, account::AccountQuery, order::OrderQuery, plugins::PluginQuery);

#[derive(MergedObject, Default)]
pub struct Mutation(
    product::ProductMutation,
    account::AccountMutation,
    order::OrderMutation,
    payment::PaymentMutation,
    plugins::PluginMutation,
);

pub type PolyScaleSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema. Without `introspection`, `__schema` and `__type` are
/// refused (validation error) and the schema cannot be downloaded.
pub fn build(
    clients: Clients,
    limits: &GraphqlLimits,
    rate_limiters: Arc<RateLimiters>,
    introspection: bool,
) -> PolyScaleSchema {
    let builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .data(clients)
        .data(*limits)
        .data(rate_limiters)
        .limit_complexity(limits.max_complexity)
        .extension(ErrorShape)
        .extension(crate::metrics::RootFieldMetrics)
        .extension(DepthLimit(limits.max_depth))
        .extension(AliasLimit(limits.max_aliases));
    if introspection { builder.finish() } else { builder.disable_introspection().extension(NoIntrospection).finish() }
}

/// Per-request facts and caches.
pub struct RequestContext {
    pub request_id: String,
    /// The bearer token, already verified; forwarded to the services
    /// (which verify it again).
    pub token: Option<String>,
    pub caller: Option<polyscale_auth::Claims>,
    pub client_address: String,
    categories: OnceCell<HashMap<String, product_pb::Category>>,
    /// Batches the request's product lookups ([`loader`]); made on first use.
    products: OnceLock<loader::ProductDataLoader>,
}

impl RequestContext {
    pub fn new(request_id: String, client_address: String) -> Self {
        Self {
            request_id,
            token: None,
            caller: None,
            client_address,
            categories: OnceCell::new(),
            products: OnceLock::new(),
        }
    }

    pub fn authenticated(mut self, token: String, claims: polyscale_auth::Claims) -> Self {
        self.token = Some(token);
        self.caller = Some(claims);
        self
    }

    /// The caller, or an `UNAUTHENTICATED` error.
    pub fn caller(&self) -> async_graphql::Result<&polyscale_auth::Claims> {
        self.caller
            .as_ref()
            .ok_or_else(|| api_error(Code::Unauthenticated, "sign in first: send Authorization: Bearer <access token>"))
    }
}

impl Clone for RequestContext {
    fn clone(&self) -> Self {
        Self {
            request_id: self.request_id.clone(),
            token: self.token.clone(),
            caller: self.caller.clone(),
            client_address: self.client_address.clone(),
            categories: OnceCell::new(),
            products: OnceLock::new(),
        }
    }
}

pub(crate) fn request_context<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a RequestContext> {
    ctx.data::<RequestContext>().map_err(|_| api_error(Code::InternalServerError, "request context missing"))
}

pub(crate) fn clients<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a Clients> {
    ctx.data::<Clients>().map_err(|_| api_error(Code::InternalServerError, "service clients missing"))
}

/// Categories by id, fetched at most once per request (products of one page
/// share them).
pub(crate) async fn categories<'a>(
    ctx: &'a Context<'_>,
) -> async_graphql::Result<&'a HashMap<String, product_pb::Category>> {
    let request = request_context(ctx)?;
    let clients = clients(ctx)?;
    request
        .categories
        .get_or_try_init(|| async {
            let mut client = clients.product.clone();
            let response = client
                .list_categories(clients.request(product_pb::ListCategoriesRequest {}, request))
                .await
                .map_err(|s| errors::top_level(&s))?;
            Ok(response.into_inner().categories.into_iter().map(|c| (c.id.clone(), c)).collect())
        })
        .await
}
