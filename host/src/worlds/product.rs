//! The `product-service` world: domain base + `search`.

use std::sync::Arc;

use wasmtime::component::{InstancePre, Linker};

use super::{link_domain_base, migrate};
use crate::bindings::product::{ProductService, ProductServicePre};
use crate::capabilities::search::{self, SearchCtxView, SearchService, SearchView};
use crate::capabilities::sql::{SqlCtx, SqlCtxView, SqlView};
use crate::database::migrations::Migration;
use crate::database::{Database, SqlLimits};
use crate::registry::{DeployError, Deployable, SlotKey, Slots};
use crate::runtime::{BoxFuture, CallState, World, WorldStore};

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

impl SqlView for CallState<ProductCaps> {
    fn sql(&mut self) -> SqlCtxView<'_> {
        SqlCtxView { ctx: &mut self.caps.sql, table: &mut self.table }
    }
}

impl SearchView for CallState<ProductCaps> {
    fn search(&mut self) -> SearchCtxView<'_> {
        SearchCtxView { service: &self.caps.search, table: &mut self.table }
    }
}

impl World for ProductWorld {
    type Caps = ProductCaps;
    type Shared = ProductShared;
    type Pre = ProductServicePre<CallState<ProductCaps>>;
    type Exports = ProductService;

    fn link(linker: &mut Linker<CallState<ProductCaps>>) -> wasmtime::Result<()> {
        link_domain_base(linker)?;
        search::add_to_linker(linker)
    }

    fn pre(instance_pre: InstancePre<CallState<ProductCaps>>) -> wasmtime::Result<Self::Pre> {
        ProductServicePre::new(instance_pre)
    }

    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut WorldStore<Self>,
    ) -> BoxFuture<'a, wasmtime::Result<ProductService>> {
        Box::pin(pre.instantiate_async(store))
    }

    fn caps(shared: &ProductShared) -> ProductCaps {
        ProductCaps { sql: SqlCtx::new(shared.db.clone(), shared.sql_limits), search: shared.search.clone() }
    }
}

impl Deployable for ProductWorld {
    fn before_activation<'a>(
        slots: &'a Slots<Self>,
        slot: &'a SlotKey,
        version: &'a str,
        pre: &'a Self::Pre,
    ) -> BoxFuture<'a, Result<(), DeployError>> {
        let shared = slots.shared();
        Box::pin(migrate(slots, slot, version, pre, &shared.db, &shared.sql_limits, |e, s| {
            Box::pin(async move {
                let all = e.polyscale_commerce_migrations().call_all(s).await?;
                Ok(all
                    .into_iter()
                    .map(|m| Migration { version: m.version, name: m.name, statements: m.statements })
                    .collect())
            })
        }))
    }
}
