//! Building an index from its source of truth: the component's own
//! documents, page by page, into a new generation that replaces the old
//! one when complete. Changes made meanwhile reach both generations
//! (the drainer applies to both), and versions keep the newest.

use super::{IndexOp, IndexSchema, SearchError, SearchService};

/// Where a rebuild reads documents: the component that owns the index.
#[async_trait::async_trait]
pub trait DocumentSource: Send + Sync {
    async fn schemas(&self) -> Result<Vec<IndexSchema>, String>;
    /// A page after `after` (none: from the start): documents, the next
    /// `after`, and the total.
    async fn page(
        &self,
        index: &str,
        after: Option<String>,
        limit: u32,
    ) -> Result<(Vec<IndexOp>, Option<String>, u64), String>;
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("no index `{0}`")]
    UnknownIndex(String),
    #[error("reading documents: {0}")]
    Source(String),
    #[error("search engine: {0:?}")]
    Engine(SearchError),
}

const PAGE: u32 = 500;

/// Rebuilds `index`; reports `(done, total)` after each page.
pub async fn rebuild(
    service: &SearchService,
    source: &dyn DocumentSource,
    index: &str,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<u64, RebuildError> {
    let _one_at_a_time = service.rebuilding.lock().await;
    let schema = source
        .schemas()
        .await
        .map_err(RebuildError::Source)?
        .into_iter()
        .find(|s| s.name == index)
        .ok_or_else(|| RebuildError::UnknownIndex(index.to_string()))?;
    service.backend.ensure_index(&schema).await.map_err(RebuildError::Engine)?;
    service.backend.begin_rebuild(&schema).await.map_err(RebuildError::Engine)?;
    let mut after = None;
    let mut done = 0u64;
    loop {
        let (ops, next, total) = source.page(index, after.take(), PAGE).await.map_err(RebuildError::Source)?;
        done += ops.len() as u64;
        service.backend.load_rebuild(index, &ops).await.map_err(RebuildError::Engine)?;
        progress(done, total.max(done));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    service.backend.finish_rebuild(index).await.map_err(RebuildError::Engine)?;
    tracing::info!(index, documents = done, engine = service.backend.engine(), "search index rebuilt");
    Ok(done)
}

/// Creates the component's indexes if missing; rebuilds (in the
/// background) any that are new or whose schema changed.
pub async fn ensure_indexes(
    service: std::sync::Arc<SearchService>,
    source: std::sync::Arc<dyn DocumentSource>,
) -> Result<(), RebuildError> {
    for schema in source.schemas().await.map_err(RebuildError::Source)? {
        if service.backend.ensure_index(&schema).await.map_err(RebuildError::Engine)? {
            let (service, source, name) = (service.clone(), source.clone(), schema.name.clone());
            tokio::spawn(async move {
                if let Err(e) = rebuild(&service, source.as_ref(), &name, &|_, _| {}).await {
                    tracing::error!(index = %name, error = %e, "building the search index failed; run `polyscale reindex`");
                }
            });
        }
    }
    Ok(())
}

/// Retries [`ensure_indexes`] with backoff until it succeeds or `stop`.
pub async fn ensure_indexes_until_ready(
    service: std::sync::Arc<SearchService>,
    source: std::sync::Arc<dyn DocumentSource>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut wait = std::time::Duration::from_millis(200);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match ensure_indexes(service.clone(), source.clone()).await {
            Ok(()) => {
                tracing::info!("search indexes ready");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "search engine still not ready");
                wait = (wait * 2).min(std::time::Duration::from_secs(30));
            }
        }
    }
}
