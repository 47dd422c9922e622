//! Limits on what one HTTP request may ask of the gateway.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, FragmentDefinition, Selection, SelectionSet};
use async_graphql::{Name, Positioned, ServerError, ServerResult, Variables};

use crate::errors::{Code, coded};

/// Default (and largest sensible) page size of a connection.
pub const MAX_PAGE_SIZE: i32 = 100;

#[derive(Debug, Clone, Copy)]
pub struct GraphqlLimits {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most operations in one batched request.
    pub max_batch: usize,
    /// Deepest selection nesting ([`DepthLimit`]: a type's `ofType` in
    /// introspection does not count).
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

/// Refuses documents nested deeper than the limit, counting fields as
/// async-graphql's `limit_depth` does, except a type's `ofType` inside
/// introspection (`__schema`, `__type`): it unwraps one list or non-null
/// wrapper and never fans out, and the standard introspection query that
/// GraphiQL sends nests it nine deep (15 in all; 6 without `ofType`). Up to
/// [`UNCOUNTED_OF_TYPE`] of them on a path go uncounted.
pub struct DepthLimit(pub usize);

/// `ofType` fields on one path that do not count toward the depth.
pub const UNCOUNTED_OF_TYPE: usize = 12;

/// Selections the check visits at most (fragments spread many times are
/// visited each time) before it refuses the document as too complex.
const MAX_VISITS: usize = 100_000;

impl ExtensionFactory for DepthLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DepthLimitExtension(self.0))
    }
}

struct DepthLimitExtension(usize);

#[async_graphql::async_trait::async_trait]
impl Extension for DepthLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        check_depth(&document, self.0)?;
        Ok(document)
    }
}

/// Whether every operation of `document` is within `limit`.
pub fn check_depth(document: &ExecutableDocument, limit: usize) -> ServerResult<()> {
    let mut walk = DepthWalk { fragments: &document.fragments, limit, path: Vec::new(), visits: 0 };
    for (_, operation) in document.operations.iter() {
        walk.within(&operation.node.selection_set, 0, false, UNCOUNTED_OF_TYPE)?;
    }
    Ok(())
}

struct DepthWalk<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    limit: usize,
    /// The fragments being spread on the current path.
    path: Vec<&'a str>,
    visits: usize,
}

impl<'a> DepthWalk<'a> {
    /// Checks `set`, entered below `depth` counted fields.
    fn within(
        &mut self,
        set: &'a Positioned<SelectionSet>,
        depth: usize,
        introspection: bool,
        uncounted: usize,
    ) -> ServerResult<()> {
        let too_complex = |message: &str| Err(coded(ServerError::new(message, None), Code::QueryTooComplex));
        for item in &set.node.items {
            self.visits += 1;
            if self.visits > MAX_VISITS {
                return too_complex("Query is too complex.");
            }
            match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    let introspection = introspection || name == "__schema" || name == "__type";
                    let (depth, uncounted) = if introspection && name == "ofType" && uncounted > 0 {
                        (depth, uncounted - 1)
                    } else {
                        (depth + 1, uncounted)
                    };
                    if depth > self.limit {
                        return too_complex("Query is nested too deep.");
                    }
                    self.within(&field.node.selection_set, depth, introspection, uncounted)?;
                }
                Selection::InlineFragment(fragment) => {
                    self.within(&fragment.node.selection_set, depth, introspection, uncounted)?
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    // Unknown and cyclic spreads are left to validation,
                    // which refuses them.
                    let Some(fragment) = self.fragments.get(name) else { continue };
                    if self.path.contains(&name) {
                        continue;
                    }
                    self.path.push(name);
                    self.within(&fragment.node.selection_set, depth, introspection, uncounted)?;
                    self.path.pop();
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(query: &str, limit: usize) -> Result<(), String> {
        let document = async_graphql::parser::parse_query(query).unwrap();
        check_depth(&document, limit).map_err(|e| e.message)
    }

    fn nested(field: &str, levels: usize, leaf: &str) -> String {
        (0..levels).fold(leaf.to_string(), |inner, _| format!("{field} {{ {inner} }}"))
    }

    #[test]
    fn fields_count_as_async_graphql_counts_them() {
        // `{ a { b } }` is 2 deep.
        let query = format!("{{ {} }}", nested("a", 11, "b"));
        assert_eq!(depth_ok(&query, 12), Ok(()));
        assert_eq!(depth_ok(&query, 11), Err("Query is nested too deep.".into()));
        // Through fragments and inline fragments alike.
        let query = "query { ...A } fragment A on Query { a { ... on T { b { ...B } } } } fragment B on T { c { d } }";
        assert_eq!(depth_ok(query, 4), Ok(()));
        assert!(depth_ok(query, 3).is_err());
        // Cyclic and unknown spreads are validation's to refuse.
        assert_eq!(depth_ok("{ ...A } fragment A on Query { a { ...A ...Missing } }", 2), Ok(()));
    }

    #[test]
    fn of_type_in_introspection_does_not_count() {
        let type_ref = nested("ofType", 9, "kind name");
        let query = format!("{{ __schema {{ types {{ fields {{ type {{ {type_ref} }} }} }} }} }}");
        // `__schema types fields type kind`.
        assert_eq!(depth_ok(&query, 5), Ok(()));
        assert!(depth_ok(&query, 4).is_err());
        let query = format!("{{ __type(name: \"T\") {{ {type_ref} }} }}");
        assert_eq!(depth_ok(&query, 2), Ok(()));
        // Past the allowance, or outside introspection, it counts.
        let query = format!("{{ __type(name: \"T\") {{ {} }} }}", nested("ofType", UNCOUNTED_OF_TYPE + 3, "kind"));
        assert_eq!(depth_ok(&query, 5), Ok(()));
        assert!(depth_ok(&query, 4).is_err());
        assert!(depth_ok(&format!("{{ {} }}", nested("ofType", 5, "kind")), 4).is_err());
        // Other introspection fields count.
        let query = format!("{{ __schema {{ {} }} }}", nested("fields", 12, "name"));
        assert!(depth_ok(&query, 12).is_err());
    }

    #[test]
    fn fragment_explosion_is_refused() {
        // Each fragment spreads the next one twice: 2^30 visits.
        let mut query = String::from("{ ...F0 }");
        for i in 0..30 {
            query.push_str(&format!(" fragment F{i} on Query {{ ...F{} ...F{} }}", i + 1, i + 1));
        }
        query.push_str(" fragment F30 on Query { a }");
        assert_eq!(depth_ok(&query, 12), Err("Query is too complex.".into()));
    }
}
