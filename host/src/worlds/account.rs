//! The `account-service` world: the domain base + `credentials`.

use std::sync::Arc;

use super::domain_world;
use crate::bindings::account::{AccountService, AccountServicePre};
use crate::capabilities::credentials::{self, CallBinding, Credentials, CredentialsCtxView, CredentialsView};
use crate::capabilities::sql::SqlCtx;
use crate::database::{Database, SqlLimits};
use crate::runtime::CallState;

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
    /// What this call has proven (filled in from the caller on first use).
    binding: Option<CallBinding>,
}

impl AccountCaps {
    fn new(shared: &AccountShared) -> Self {
        Self {
            sql: SqlCtx::new(shared.db.clone(), shared.sql_limits),
            credentials: shared.credentials.clone(),
            binding: None,
        }
    }
}

impl CredentialsView for CallState<AccountCaps> {
    fn credentials(&mut self) -> CredentialsCtxView<'_> {
        let caller = self.call.caller.as_ref();
        CredentialsCtxView {
            credentials: &self.caps.credentials,
            client: &self.call.client_address,
            caller,
            binding: self.caps.binding.get_or_insert_with(|| CallBinding::for_caller(caller)),
        }
    }
}

domain_world!(AccountWorld, AccountCaps, AccountShared, AccountServicePre, AccountService, credentials::add_to_linker);
