//! The WIT `search` interface, per call.

use std::sync::Arc;

use tracing::Instrument;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use super::{IndexOp, Query, Results, SearchError, SearchService, limits, outbox};
use crate::bindings::search::{self, Document, Host};
use crate::database::Transaction;

/// What the `search` host functions see: the slot's search service and the
/// store's resource table (index changes join an open `sql` transaction).
pub struct SearchCtxView<'a> {
    pub service: &'a Arc<SearchService>,
    pub table: &'a mut ResourceTable,
}

/// Store data that carries the `search` capability.
pub trait SearchView: Send {
    fn search(&mut self) -> SearchCtxView<'_>;
}

struct HasSearch;

impl HasData for HasSearch {
    type Data<'a> = SearchCtxView<'a>;
}

/// Links `polyscale:commerce/search` for any store data with a
/// [`SearchView`].
pub fn add_to_linker<T: SearchView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    search::add_to_linker::<T, HasSearch>(linker, |t| t.search())
}

type Answer<T> = wasmtime::Result<Result<T, SearchError>>;

impl SearchCtxView<'_> {
    async fn enqueue(&mut self, tx: Resource<Transaction>, index: String, op: IndexOp) -> Answer<()> {
        let service = self.service.clone();
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

impl Host for SearchCtxView<'_> {
    async fn search(&mut self, q: Query) -> Answer<Results> {
        let service = self.service;
        if q.first == 0 || q.first > limits::MAX_PAGE {
            return Ok(Err(SearchError::InvalidQuery(format!("first must be between 1 and {}", limits::MAX_PAGE))));
        }
        let span = tracing::info_span!("search", otel.name = %format!("search {}", q.index), index = %q.index);
        Ok(service.backend.search(&q).instrument(span).await)
    }

    async fn suggest(&mut self, index: String, field: String, prefix: String, limit: u32) -> Answer<Vec<String>> {
        let service = self.service;
        Ok(service.backend.suggest(&index, &field, &prefix, limit.min(limits::MAX_SUGGESTIONS)).await)
    }

    async fn index(&mut self, tx: Resource<Transaction>, index: String, document: Document) -> Answer<()> {
        self.enqueue(tx, index, IndexOp::Upsert(document)).await
    }

    async fn remove(&mut self, tx: Resource<Transaction>, index: String, id: String, version: i64) -> Answer<()> {
        self.enqueue(tx, index, IndexOp::Remove { id, version }).await
    }
}
