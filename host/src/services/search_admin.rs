//! `SearchAdmin`: rebuilding search indexes on demand, with progress.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use pb::search_admin_server::SearchAdmin;
use polyscale_proto::admin::v1 as pb;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::capabilities::search::SearchService;
use crate::capabilities::search::rebuild::{self, DocumentSource, RebuildError};

#[derive(Clone, Default)]
pub struct SearchAdminApi {
    /// Index name → the service keeping it and its document source.
    indexes: BTreeMap<String, (Arc<SearchService>, Arc<dyn DocumentSource>)>,
}

impl SearchAdminApi {
    pub fn with_index(mut self, index: &str, service: Arc<SearchService>, source: Arc<dyn DocumentSource>) -> Self {
        self.indexes.insert(index.to_string(), (service, source));
        self
    }
}

type ProgressStream = Pin<Box<dyn Stream<Item = Result<pb::ReindexProgress, Status>> + Send>>;

#[tonic::async_trait]
impl SearchAdmin for SearchAdminApi {
    type ReindexStream = ProgressStream;

    async fn reindex(&self, request: Request<pb::ReindexRequest>) -> Result<Response<ProgressStream>, Status> {
        let index = request.into_inner().index;
        let (service, source) = self.indexes.get(&index).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.indexes.keys().map(String::as_str).collect();
            Status::not_found(format!("no search index `{index}` here; this host keeps: {}", known.join(", ")))
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let progress_tx = tx.clone();
            let progress = move |indexed, total| {
                let _ = progress_tx.try_send(Ok(pb::ReindexProgress { indexed, total, done: false }));
            };
            let outcome = rebuild::rebuild(&service, source.as_ref(), &index, &progress).await;
            let last = match outcome {
                Ok(n) => Ok(pb::ReindexProgress { indexed: n, total: n, done: true }),
                Err(RebuildError::UnknownIndex(i)) => Err(Status::not_found(format!("no index {i}"))),
                Err(e) => Err(Status::unavailable(e.to_string())),
            };
            let _ = tx.send(last).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
