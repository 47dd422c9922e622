//! Prometheus metrics of the GraphQL layer: the latency of each root field
//! (`Query.products`, `Mutation.placeOrder`…), the part of an operation a
//! client chose. Labelled by the schema's names, never by the client's
//! operation names, so that a client cannot grow the label set.

use std::sync::Arc;
use std::time::Instant;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo};
use async_graphql::{ServerResult, Value};

/// `polyscale_graphql_field_seconds{type, field, outcome}`.
pub struct RootFieldMetrics;

impl ExtensionFactory for RootFieldMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RootFieldMetrics)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for RootFieldMetrics {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.path_node.parent.is_some() || info.is_for_introspection {
            return next.run(ctx, info).await;
        }
        let (ty, field) = (info.parent_type.to_string(), info.name.to_string());
        let started = Instant::now();
        let result = next.run(ctx, info).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::histogram!("polyscale_graphql_field_seconds", "type" => ty, "field" => field, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        result
    }
}
