//! Limits on what one HTTP request may ask of the gateway.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Positioned, ServerError, ServerResult, Variables};

use crate::errors::{Code, coded};

/// Default (and largest sensible) page size of a connection.
pub const MAX_PAGE_SIZE: i32 = 100;

#[derive(Debug, Clone, Copy)]
pub struct GraphqlLimits {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most operations in one batched request.
    pub max_batch: usize,
    /// Deepest selection nesting.
    pub max_depth: usize,
    /// Highest complexity (one per field, times `first` for lists).
    pub max_complexity: usize,
    /// Most aliased fields in one document.
    pub max_aliases: usize,
    /// Largest page (`first`) of any connection.
    pub max_page_size: i32,
}

impl Default for GraphqlLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_batch: 10,
            max_depth: 12,
            max_complexity: 5_000,
            max_aliases: 30,
            max_page_size: MAX_PAGE_SIZE,
        }
    }
}

/// Refuses documents with too many aliases (the alias-amplification attack
/// that depth and complexity limits miss when every alias is shallow).
pub struct AliasLimit(pub usize);

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension(self.0))
    }
}

struct AliasLimitExtension(usize);

#[async_graphql::async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let mut count = 0;
        for (_, operation) in document.operations.iter() {
            count += aliases(&operation.node.selection_set);
        }
        for fragment in document.fragments.values() {
            count += aliases(&fragment.node.selection_set);
        }
        if count > self.0 {
            return Err(coded(
                ServerError::new(format!("the query uses {count} aliases; the limit is {}", self.0), None),
                Code::QueryTooComplex,
            ));
        }
        Ok(document)
    }
}

fn aliases(set: &Positioned<SelectionSet>) -> usize {
    set.node
        .items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => usize::from(f.node.alias.is_some()) + aliases(&f.node.selection_set),
            Selection::InlineFragment(f) => aliases(&f.node.selection_set),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Refuses introspection (`__schema`, `__type`) when it is turned off, as
/// a validation error: async-graphql's own switch answers `null` instead,
/// which a client cannot tell from an empty schema.
pub struct NoIntrospection;

impl ExtensionFactory for NoIntrospection {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(NoIntrospection)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for NoIntrospection {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let sets = document
            .operations
            .iter()
            .map(|(_, op)| &op.node.selection_set)
            .chain(document.fragments.values().map(|f| &f.node.selection_set));
        for set in sets {
            if let Some(pos) = introspection(set) {
                return Err(coded(
                    ServerError::new("introspection is disabled on this server", Some(pos)),
                    Code::GraphqlValidationFailed,
                ));
            }
        }
        Ok(document)
    }
}

/// Where a selection set asks for `__schema` or `__type`, at any depth.
fn introspection(set: &Positioned<SelectionSet>) -> Option<async_graphql::Pos> {
    set.node.items.iter().find_map(|item| match &item.node {
        Selection::Field(f) if matches!(f.node.name.node.as_str(), "__schema" | "__type") => Some(f.pos),
        Selection::Field(f) => introspection(&f.node.selection_set),
        Selection::InlineFragment(f) => introspection(&f.node.selection_set),
        Selection::FragmentSpread(_) => None,
    })
}
