//! The WIT `search` interface, per call.

use std::sync::Arc;

use wasmtime::component::{HasData, Resource, ResourceTable};

use super::{IndexOp, Query, Results, SearchError, SearchService, limits, outbox};
use crate::bindings::search::{Document, Host};
use crate::capabilities::sql::Transaction;

pub struct SearchView<'a> {
    pub service: Option<&'a Arc<SearchService>>,
    pub table: &'a mut ResourceTable,
}

/// Marker for `add_to_linker`.
pub struct SearchCap;

impl HasData for SearchCap {
    type Data<'a> = SearchView<'a>;
}

type Answer<T> = wasmtime::Result<Result<T, SearchError>>;

impl SearchView<'_> {
    fn service(&self) -> wasmtime::Result<&Arc<SearchService>> {
        self.service.ok_or_else(|| wasmtime::format_err!("search capability used without a search engine"))
    }

    async fn enqueue(&mut self, tx: Resource<Transaction>, index: String, op: IndexOp) -> Answer<()> {
        let service = self.service()?.clone();
        let transaction = self.table.get_mut(&tx)?;
        match outbox::enqueue(transaction, &index, &op).await {
            Ok(()) => {
                service.queued.notify_one();
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(SearchError::Unavailable(format!("recording the index change failed: {e:?}")))),
        }
    }
}

impl Host for SearchView<'_> {
    async fn search(&mut self, q: Query) -> Answer<Results> {
        let service = self.service()?;
        if q.first == 0 || q.first > limits::MAX_PAGE {
            return Ok(Err(SearchError::InvalidQuery(format!("first must be between 1 and {}", limits::MAX_PAGE))));
        }
        Ok(service.backend.search(&q).await)
    }

    async fn suggest(&mut self, index: String, field: String, prefix: String, limit: u32) -> Answer<Vec<String>> {
        let service = self.service()?;
        Ok(service.backend.suggest(&index, &field, &prefix, limit.min(limits::MAX_SUGGESTIONS)).await)
    }

    async fn index(&mut self, tx: Resource<Transaction>, index: String, document: Document) -> Answer<()> {
        self.enqueue(tx, index, IndexOp::Upsert(document)).await
    }

    async fn remove(&mut self, tx: Resource<Transaction>, index: String, id: String, version: i64) -> Answer<()> {
        self.enqueue(tx, index, IndexOp::Remove { id, version }).await
    }
}
