//! The `product-service` world: the domain base + `search`.

use std::sync::Arc;

use super::domain_world;
use crate::bindings::product::{ProductService, ProductServicePre};
use crate::capabilities::search::{self, SearchCtxView, SearchService, SearchView};
use crate::capabilities::sql::SqlCtx;
use crate::database::{Database, SqlLimits};
use crate::runtime::CallState;

pub struct ProductWorld;

/// Shared by every product call: the product database and search engine.
pub struct ProductShared {
    pub db: Database,
    pub sql_limits: SqlLimits,
    pub search: Arc<SearchService>,
}

/// One product call's capabilities.
pub struct ProductCaps {
    sql: SqlCtx,
    search: Arc<SearchService>,
}

impl ProductCaps {
    fn new(shared: &ProductShared) -> Self {
        Self { sql: SqlCtx::new(shared.db.clone(), shared.sql_limits), search: shared.search.clone() }
    }
}

impl SearchView for CallState<ProductCaps> {
    fn search(&mut self) -> SearchCtxView<'_> {
        SearchCtxView { service: &self.caps.search, table: &mut self.table }
    }
}

domain_world!(ProductWorld, ProductCaps, ProductShared, ProductServicePre, ProductService, search::add_to_linker);
