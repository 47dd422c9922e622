//! The product component as the source of its search index.

use std::sync::Arc;

use super::ProductSlot;
use crate::call::CallInfo;
use crate::capabilities::search::rebuild::DocumentSource;
use crate::capabilities::search::{IndexOp, IndexSchema};

pub struct ProductDocuments(pub Arc<ProductSlot>);

fn info() -> CallInfo {
    CallInfo::new(format!("search-rebuild-{}", uuid::Uuid::now_v7()), None)
}

#[async_trait::async_trait]
impl DocumentSource for ProductDocuments {
    async fn schemas(&self) -> Result<Vec<IndexSchema>, String> {
        self.0
            .call(info(), None, |e, s| Box::pin(async move { e.polyscale_commerce_searchable().call_indexes(s).await }))
            .await
            .map(|served| served.value)
            .map_err(|e| e.to_string())
    }

    async fn page(
        &self,
        index: &str,
        after: Option<String>,
        limit: u32,
    ) -> Result<(Vec<IndexOp>, Option<String>, u64), String> {
        let index = index.to_string();
        let served = self
            .0
            .call(info(), None, move |e, s| {
                Box::pin(async move {
                    e.polyscale_commerce_searchable().call_documents(s, &index, after.as_deref(), limit).await
                })
            })
            .await
            .map_err(|e| e.to_string())?;
        let page = served.value.map_err(|e| format!("{e:?}"))?;
        Ok((page.documents.into_iter().map(IndexOp::Upsert).collect(), page.next, page.total))
    }
}
