//! The `account-service` world: domain base + `credentials`.

use std::sync::Arc;

use wasmtime::component::{InstancePre, Linker};

use super::{link_domain_base, migrate};
use crate::bindings::account::{AccountService, AccountServicePre};
use crate::capabilities::credentials::{self, Credentials, CredentialsCtxView, CredentialsView};
use crate::capabilities::sql::{SqlCtx, SqlCtxView, SqlView};
use crate::database::migrations::Migration;
use crate::database::{Database, SqlLimits};
use crate::registry::{DeployError, Deployable, SlotKey, Slots};
use crate::runtime::{BoxFuture, CallState, World, WorldStore};

pub struct AccountWorld;

/// Shared by every account call: the account database and the
/// credentials store.
pub struct AccountShared {
    pub db: Database,
    pub sql_limits: SqlLimits,
    pub credentials: Arc<Credentials>,
}

/// One account call's capabilities.
pub struct AccountCaps {
    sql: SqlCtx,
    credentials: Arc<Credentials>,
}

impl SqlView for CallState<AccountCaps> {
    fn sql(&mut self) -> SqlCtxView<'_> {
        SqlCtxView { ctx: &mut self.caps.sql, table: &mut self.table }
    }
}

impl CredentialsView for CallState<AccountCaps> {
    fn credentials(&mut self) -> CredentialsCtxView<'_> {
        CredentialsCtxView { credentials: &self.caps.credentials, client: &self.call.client_address }
    }
}

impl World for AccountWorld {
    type Caps = AccountCaps;
    type Shared = AccountShared;
    type Pre = AccountServicePre<CallState<AccountCaps>>;
    type Exports = AccountService;

    fn link(linker: &mut Linker<CallState<AccountCaps>>) -> wasmtime::Result<()> {
        link_domain_base(linker)?;
        credentials::add_to_linker(linker)
    }

    fn pre(instance_pre: InstancePre<CallState<AccountCaps>>) -> wasmtime::Result<Self::Pre> {
        AccountServicePre::new(instance_pre)
    }

    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut WorldStore<Self>,
    ) -> BoxFuture<'a, wasmtime::Result<AccountService>> {
        Box::pin(pre.instantiate_async(store))
    }

    fn caps(shared: &AccountShared) -> AccountCaps {
        AccountCaps { sql: SqlCtx::new(shared.db.clone(), shared.sql_limits), credentials: shared.credentials.clone() }
    }
}

impl Deployable for AccountWorld {
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
