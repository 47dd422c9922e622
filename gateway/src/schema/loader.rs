//! Batched product lookups: every `product` field of a cart or order line
//! in one request goes through one [`DataLoader`], which asks
//! `ProductService.GetProducts` for all the ids at once, in chunks of
//! [`GET_PRODUCTS_MAX_IDS`] fetched concurrently. A page of 50 orders of 10
//! lines makes at most 5 calls, not 500.

use std::collections::HashMap;
use std::future::Future;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::{Context, Result};
use polyscale_proto::product::v1 as pb;

use super::product::Product;
use super::{RequestContext, clients, request_context};
use crate::clients::Clients;
use crate::errors;

/// Most ids one `GetProducts` call may ask for (the product service's
/// limit; more is `TOO_MANY`).
pub const GET_PRODUCTS_MAX_IDS: usize = 100;

/// Products by id, for one request: carries the caller's metadata to the
/// product service.
pub struct ProductLoader {
    clients: Clients,
    request: RequestContext,
}

/// The per-request loader. Products are cached for the request, so a
/// product on many lines (50 orders of the same 10 products) is fetched
/// once whatever the order in which the lines resolve.
pub type ProductDataLoader = DataLoader<ProductLoader, HashMapCache>;

impl ProductLoader {
    pub fn data_loader(clients: Clients, request: RequestContext) -> ProductDataLoader {
        DataLoader::with_cache(ProductLoader { clients, request }, tokio::spawn, HashMapCache::default())
    }
}

impl Loader<String> for ProductLoader {
    type Value = pb::Product;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[String]) -> Result<HashMap<String, pb::Product>> {
        load_in_chunks(ids, |chunk| {
            let mut client = self.clients.product.clone();
            let request = self.clients.request(pb::GetProductsRequest { ids: chunk }, &self.request);
            async move {
                match client.get_products(request).await {
                    Ok(response) => Ok(response.into_inner().products),
                    Err(status) => Err(errors::top_level(&status)),
                }
            }
        })
        .await
    }
}

/// Fetches `ids` in chunks of at most [`GET_PRODUCTS_MAX_IDS`], all chunks
/// at once, and indexes the answers by id (ids the service did not return,
/// deleted products, are absent). Any failed chunk fails the whole load.
pub(crate) async fn load_in_chunks<F, Fut>(ids: &[String], fetch: F) -> Result<HashMap<String, pb::Product>>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<Vec<pb::Product>>>,
{
    let calls = ids.chunks(GET_PRODUCTS_MAX_IDS).map(|chunk| fetch(chunk.to_vec()));
    let answers = futures::future::try_join_all(calls).await?;
    Ok(answers.into_iter().flatten().map(|p| (p.id.clone(), p)).collect())
}

/// The live product of a line, `None` when it is gone. Batched with every
/// other product lookup of the request.
pub(crate) async fn product(ctx: &Context<'_>, id: &str) -> Result<Option<Product>> {
    if id.is_empty() {
        return Ok(None);
    }
    let request = request_context(ctx)?;
    let clients = clients(ctx)?;
    let loader = request.products.get_or_init(|| ProductLoader::data_loader(clients.clone(), request.clone()));
    Ok(loader.load_one(id.to_string()).await?.map(Product))
}

/// Loads these products into the request's cache in as few calls as their
/// number allows (a page of orders knows every product id of its lines
/// before any line resolves), so each line's `product` is a cache hit.
pub(crate) async fn prefetch(ctx: &Context<'_>, ids: impl Iterator<Item = String>) -> Result<()> {
    let request = request_context(ctx)?;
    let clients = clients(ctx)?;
    let loader = request.products.get_or_init(|| ProductLoader::data_loader(clients.clone(), request.clone()));
    let mut ids: Vec<String> = ids.filter(|id| !id.is_empty()).collect();
    ids.sort_unstable();
    ids.dedup();
    loader.load_many(ids).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn product(id: &str) -> pb::Product {
        pb::Product { id: id.to_string(), ..Default::default() }
    }

    /// A stand-in for `GetProducts`: answers every id but `gone-*`, and
    /// records the size of each call.
    fn fake(
        calls: Arc<std::sync::Mutex<Vec<usize>>>,
    ) -> impl Fn(Vec<String>) -> std::future::Ready<Result<Vec<pb::Product>>> {
        move |ids| {
            calls.lock().unwrap().push(ids.len());
            assert!(ids.len() <= GET_PRODUCTS_MAX_IDS, "a call over the service's limit");
            std::future::ready(Ok(ids.iter().filter(|id| !id.starts_with("gone-")).map(|id| product(id)).collect()))
        }
    }

    #[tokio::test]
    async fn chunks_of_at_most_the_service_limit() {
        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut ids: Vec<String> = (0..248).map(|i| format!("p{i}")).collect();
        ids.extend(["gone-1".to_string(), "gone-2".to_string()]);
        let found = load_in_chunks(&ids, fake(calls.clone())).await.unwrap();
        let mut sizes = calls.lock().unwrap().clone();
        sizes.sort_unstable();
        assert_eq!(sizes, vec![50, 100, 100]);
        assert_eq!(found.len(), 248, "deleted products are absent");
        assert_eq!(found["p17"].id, "p17");
        assert!(!found.contains_key("gone-1"));

        calls.lock().unwrap().clear();
        assert!(load_in_chunks(&[], fake(calls.clone())).await.unwrap().is_empty());
        assert!(calls.lock().unwrap().is_empty(), "no ids, no call");
    }

    #[tokio::test]
    async fn one_failed_chunk_fails_the_load() {
        let ids: Vec<String> = (0..150).map(|i| format!("p{i}")).collect();
        let result = load_in_chunks(&ids, |chunk| {
            std::future::ready(if chunk.len() == 50 { Err("down".into()) } else { Ok(vec![]) })
        })
        .await;
        assert_eq!(result.unwrap_err().message, "down");
    }

    /// The loader a request uses, with the fake service behind it.
    struct Counting {
        calls: Arc<AtomicUsize>,
        sizes: Arc<std::sync::Mutex<Vec<usize>>>,
    }

    impl Loader<String> for Counting {
        type Value = pb::Product;
        type Error = async_graphql::Error;

        async fn load(&self, ids: &[String]) -> Result<HashMap<String, pb::Product>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            load_in_chunks(ids, fake(self.sizes.clone())).await
        }
    }

    #[tokio::test]
    async fn lines_resolved_together_share_a_constant_number_of_calls() {
        let calls = Arc::new(AtomicUsize::new(0));
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let loader = DataLoader::new(Counting { calls: calls.clone(), sizes: sizes.clone() }, tokio::spawn);
        // 50 orders × 10 lines over 250 distinct products, as a page's
        // `product` fields ask for them.
        let lookups = (0..500).map(|i| loader.load_one(format!("p{}", i % 250)));
        let products = futures::future::join_all(lookups).await;
        assert!(products.iter().all(|p| p.as_ref().unwrap().is_some()));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one batch");
        let mut sizes = sizes.lock().unwrap().clone();
        sizes.sort_unstable();
        assert_eq!(sizes, vec![50, 100, 100], "three GetProducts calls");
    }
}
