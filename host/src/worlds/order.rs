//! The `order-service` world: the domain base + the sibling views
//! (`catalog`, `inventory`, `customers`), answered over gRPC, and
//! `payments`, answered by the providers this host holds, and
//! `extensions`, answered by the merchant plugin runner.

use std::sync::Arc;

use super::domain_world;
use crate::bindings::order::{OrderService, OrderServicePre};
use crate::capabilities::extensions::{self, Extensions, ExtensionsCtxView, ExtensionsView};
use crate::capabilities::payments::{self, PaymentProviders, PaymentsCtxView, PaymentsView};
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
    /// The payment providers (their keys stay here).
    pub payments: Arc<PaymentProviders>,
    /// The merchants' plugins.
    pub extensions: Arc<dyn Extensions>,
}

/// One order call's capabilities.
pub struct OrderCaps {
    sql: SqlCtx,
    siblings: Arc<Siblings>,
    payments: Arc<PaymentProviders>,
    extensions: Arc<dyn Extensions>,
}

impl OrderCaps {
    fn new(shared: &OrderShared) -> Self {
        Self {
            sql: SqlCtx::new(shared.db.clone(), shared.sql_limits),
            siblings: shared.siblings.clone(),
            payments: shared.payments.clone(),
            extensions: shared.extensions.clone(),
        }
    }
}

impl PaymentsView for CallState<OrderCaps> {
    fn payments(&mut self) -> PaymentsCtxView<'_> {
        PaymentsCtxView { providers: &self.caps.payments, call: &self.call }
    }
}

impl ExtensionsView for CallState<OrderCaps> {
    fn extensions(&mut self) -> ExtensionsCtxView<'_> {
        ExtensionsCtxView { extensions: &self.caps.extensions, call: &self.call }
    }
}

/// The order world's own capabilities: the sibling views, payments and
/// the merchants' plugins.
fn link_order_caps(linker: &mut wasmtime::component::Linker<CallState<OrderCaps>>) -> wasmtime::Result<()> {
    siblings::add_to_linker(linker)?;
    payments::add_to_linker(linker)?;
    extensions::add_to_linker(linker)
}

impl SiblingsView for CallState<OrderCaps> {
    fn siblings(&mut self) -> SiblingsCtxView<'_> {
        SiblingsCtxView { siblings: &self.caps.siblings, call: &self.call }
    }
}

domain_world!(OrderWorld, OrderCaps, OrderShared, OrderServicePre, OrderService, link_order_caps);
