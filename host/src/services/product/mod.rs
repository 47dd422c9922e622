//! `ProductService` over gRPC, served by the active product component.

mod documents;
mod inventory;

pub use documents::ProductDocuments;
pub use inventory::InventoryApi;

use std::sync::Arc;

use pb::product_service_server::ProductService;
use polyscale_proto::product::v1 as pb;
use tonic::{Request, Response, Status};

use pb::inventory_service_server::InventoryServiceServer;
use pb::product_service_server::ProductServiceServer;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;

use super::module::{Planes, ServiceModule};
use super::{Authenticator, call_domain, respond};
use crate::bindings::product::exports::polyscale::commerce::products as wit;
use crate::bindings::types::DomainError;
use crate::capabilities::search::{SearchService, outbox, rebuild};
use crate::contracts;
use crate::registry::{Served, ServiceSlot};
use crate::runtime::{BoxFuture, WorldStore};
use crate::server::{HostContext, ProductServiceConfig, StartError};
use crate::worlds::product::ProductShared;
pub use crate::worlds::product::ProductWorld;

/// The product service's component slot.
pub type ProductSlot = ServiceSlot<ProductWorld>;

pub struct ProductApi {
    slot: Arc<ProductSlot>,
    auth: Authenticator,
}

impl ProductApi {
    pub fn new(slot: Arc<ProductSlot>, auth: Authenticator) -> Self {
        Self { slot, auth }
    }

    /// Calls one `products` export and maps both kinds of failure.
    async fn invoke<Req, T, F>(&self, request: &Request<Req>, f: F) -> Result<Served<T>, Status>
    where
        F: for<'a> FnOnce(
            &'a wit::Guest,
            &'a mut WorldStore<ProductWorld>,
        ) -> BoxFuture<'a, wasmtime::Result<Result<T, DomainError>>>,
    {
        let (info, timeout) = self.auth.call_info(request).await?;
        call_domain(&self.slot, info, timeout, |exports, store| f(exports.polyscale_commerce_products(), store)).await
    }
}

fn product_response(served: Served<wit::Product>) -> Response<pb::Product> {
    respond(served.value.into(), &served.version)
}

#[tonic::async_trait]
impl ProductService for ProductApi {
    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let input = contracts::product::new_product(request.get_ref().clone());
        let served =
            self.invoke(&request, |p, s| Box::pin(async move { p.call_create_product(s, &input).await })).await?;
        Ok(product_response(served))
    }

    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let (id, patch) = contracts::product::product_patch(request.get_ref().clone());
        let served =
            self.invoke(&request, |p, s| Box::pin(async move { p.call_update_product(s, &id, &patch).await })).await?;
        Ok(product_response(served))
    }

    async fn delete_product(
        &self,
        request: Request<pb::DeleteProductRequest>,
    ) -> Result<Response<pb::DeleteProductResponse>, Status> {
        let id = request.get_ref().id.clone();
        let served = self.invoke(&request, |p, s| Box::pin(async move { p.call_delete_product(s, &id).await })).await?;
        Ok(respond(pb::DeleteProductResponse {}, &served.version))
    }

    async fn get_product(&self, request: Request<pb::GetProductRequest>) -> Result<Response<pb::Product>, Status> {
        let id = request.get_ref().id.clone();
        let served = self.invoke(&request, |p, s| Box::pin(async move { p.call_get_product(s, &id).await })).await?;
        Ok(product_response(served))
    }

    async fn get_products(
        &self,
        request: Request<pb::GetProductsRequest>,
    ) -> Result<Response<pb::GetProductsResponse>, Status> {
        let ids = request.get_ref().ids.clone();
        let served = self.invoke(&request, |p, s| Box::pin(async move { p.call_get_products(s, &ids).await })).await?;
        let products = served.value.into_iter().map(Into::into).collect();
        Ok(respond(pb::GetProductsResponse { products }, &served.version))
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let page = contracts::product::page_request(request.get_ref().first, request.get_ref().after.clone());
        let served =
            self.invoke(&request, |p, s| Box::pin(async move { p.call_list_products(s, &page).await })).await?;
        Ok(respond(served.value.into(), &served.version))
    }

    async fn adjust_stock(&self, request: Request<pb::AdjustStockRequest>) -> Result<Response<pb::Product>, Status> {
        let pb::AdjustStockRequest { id, delta } = request.get_ref().clone();
        let served =
            self.invoke(&request, |p, s| Box::pin(async move { p.call_adjust_stock(s, &id, delta).await })).await?;
        Ok(product_response(served))
    }

    async fn create_products(
        &self,
        request: Request<pb::CreateProductsRequest>,
    ) -> Result<Response<pb::CreateProductsResponse>, Status> {
        let inputs: Vec<wit::NewProduct> =
            request.get_ref().items.iter().cloned().map(contracts::product::new_product).collect();
        let served =
            self.invoke(&request, |p, s| Box::pin(async move { p.call_create_products(s, &inputs).await })).await?;
        let products = served.value.into_iter().map(Into::into).collect();
        Ok(respond(pb::CreateProductsResponse { products }, &served.version))
    }

    async fn search_products(
        &self,
        request: Request<pb::SearchProductsRequest>,
    ) -> Result<Response<pb::SearchProductsResponse>, Status> {
        let q = contracts::product::product_search(request.get_ref().clone());
        let served = self.invoke(&request, |p, s| Box::pin(async move { p.call_search_products(s, &q).await })).await?;
        Ok(respond(served.value.into(), &served.version))
    }

    async fn suggest_products(
        &self,
        request: Request<pb::SuggestProductsRequest>,
    ) -> Result<Response<pb::SuggestProductsResponse>, Status> {
        let pb::SuggestProductsRequest { prefix, limit } = request.get_ref().clone();
        let served = self
            .invoke(&request, |p, s| Box::pin(async move { p.call_suggest_products(s, &prefix, limit).await }))
            .await?;
        Ok(respond(pb::SuggestProductsResponse { suggestions: served.value }, &served.version))
    }

    async fn create_category(
        &self,
        request: Request<pb::CreateCategoryRequest>,
    ) -> Result<Response<pb::Category>, Status> {
        let input =
            wit::NewCategory { name: request.get_ref().name.clone(), parent_id: request.get_ref().parent_id.clone() };
        let served =
            self.invoke(&request, |p, s| Box::pin(async move { p.call_create_category(s, &input).await })).await?;
        Ok(respond(served.value.into(), &served.version))
    }

    async fn list_categories(
        &self,
        request: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        let served = self.invoke(&request, |p, s| Box::pin(async move { p.call_list_categories(s).await })).await?;
        let categories = served.value.into_iter().map(Into::into).collect();
        Ok(respond(pb::ListCategoriesResponse { categories }, &served.version))
    }
}

/// The product service as a host module: its slot, search index and
/// outbox drainer.
pub struct ProductModule {
    slot: Arc<ProductSlot>,
    documents: Arc<ProductDocuments>,
    /// Whether the indexes were ready at start (if not, a task retries).
    indexes_ready: bool,
    /// How often expired stock reservations are released.
    sweep_interval: std::time::Duration,
}

impl ProductModule {
    pub async fn build(config: &ProductServiceConfig, host: &mut HostContext) -> Result<Self, StartError> {
        let db = host.connect("product", &config.service.database_url).await?;
        let search = SearchService::new(config.search.backend()?);
        let shared = ProductShared { db: db.clone(), sql_limits: host.config().sql_limits, search: search.clone() };
        let slot = host.start_slot::<ProductWorld>("product", shared, &config.service.component).await?;
        outbox::ensure_table(&db).await.map_err(|e| StartError::Search(format!("outbox: {e:?}")))?;
        let documents = Arc::new(ProductDocuments(slot.clone()));
        // An unreachable engine must not keep the service from taking
        // writes: they wait in the outbox, and index setup is retried.
        let indexes_ready = match rebuild::ensure_indexes(search, documents.clone()).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "search engine not ready; product writes are kept in the outbox until it is");
                false
            }
        };
        Ok(Self { slot, documents, indexes_ready, sweep_interval: config.reservation_sweep_interval })
    }

    pub fn slot(&self) -> &Arc<ProductSlot> {
        &self.slot
    }

    pub fn search(&self) -> &Arc<SearchService> {
        &self.slot.shared().search
    }
}

impl ServiceModule for ProductModule {
    fn name(&self) -> &'static str {
        "product"
    }

    fn register(&self, auth: &Authenticator, planes: &mut Planes) {
        planes.grpc.add_service(ProductServiceServer::new(ProductApi::new(self.slot.clone(), auth.clone())));
        planes.grpc.add_service(InventoryServiceServer::new(InventoryApi::new(self.slot.clone(), auth.clone())));
        planes.health.push(<ProductServiceServer<ProductApi> as NamedService>::NAME);
        planes.health.push(<InventoryServiceServer<InventoryApi> as NamedService>::NAME);
        planes.add_slot(self.name(), self.slot.clone());
        planes.add_index("products", self.search().clone(), self.documents.clone());
    }

    fn spawn_background(&self, stop: &CancellationToken) {
        let search = self.search().clone();
        if !self.indexes_ready {
            tokio::spawn(rebuild::ensure_indexes_until_ready(search.clone(), self.documents.clone(), stop.clone()));
        }
        outbox::spawn_drainer(self.slot.shared().db.clone(), search, stop.clone());
        inventory::spawn_reservation_sweeper(self.slot.clone(), self.sweep_interval, stop.clone());
    }
}
