//! The `order-service` world: the domain base + the sibling views
//! (`catalog`, `inventory`, `customers`), answered over gRPC.

use std::sync::Arc;

use super::domain_world;
use crate::bindings::order::{OrderService, OrderServicePre};
use crate::capabilities::siblings::{self, Siblings, SiblingsCtxView, SiblingsView};
use crate::capabilities::sql::SqlCtx;
use crate::database::{Database, SqlLimits};
use crate::runtime::CallState;

pub struct OrderWorld;

/// Shared by every order call: the order database and the sibling clients.
pub struct OrderShared {
    pub db: Database,
    pub sql_limits: SqlLimits,
    pub siblings: Arc<Siblings>,
}

/// One order call's capabilities.
pub struct OrderCaps {
    sql: SqlCtx,
    siblings: Arc<Siblings>,
}

impl OrderCaps {
    fn new(shared: &OrderShared) -> Self {
        Self { sql: SqlCtx::new(shared.db.clone(), shared.sql_limits), siblings: shared.siblings.clone() }
    }
}

impl SiblingsView for CallState<OrderCaps> {
    fn siblings(&mut self) -> SiblingsCtxView<'_> {
        SiblingsCtxView { siblings: &self.caps.siblings, call: &self.call }
    }
}

domain_world!(OrderWorld, OrderCaps, OrderShared, OrderServicePre, OrderService, siblings::add_to_linker);
