//! The WIT `credentials` interface over [`Credentials`].

use std::collections::HashSet;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use super::sessions::{self, Rotation};
use super::throttle::{self, Keys};
use super::{Credentials, CredentialsError, unavailable};
use crate::bindings::context::Role;
use crate::bindings::credentials::{self, AccessToken, Host, RefreshToken};
use crate::call::Caller;
use crate::database::Value;

/// What the credentials host functions see: the shared credentials store,
/// the address of the client the call is for (for throttling), the call's
/// verified caller and what the call has proven so far.
pub struct CredentialsCtxView<'a> {
    pub credentials: &'a Arc<Credentials>,
    pub client: &'a str,
    pub caller: Option<&'a Caller>,
    pub binding: &'a mut CallBinding,
}

/// The accounts one call has proven it acts for: the verified caller, an
/// account whose password it verified, one it registered (set the first
/// password of), one whose refresh token it presented. Sessions, tokens
/// and passwords are only ever made for these, so a component cannot act
/// for an account it was merely told the id of.
#[derive(Debug, Default)]
pub struct CallBinding {
    accounts: HashSet<String>,
}

impl CallBinding {
    /// A call on behalf of `caller` (none: anonymous).
    pub fn for_caller(caller: Option<&Caller>) -> Self {
        let mut binding = Self::default();
        if let Some(caller) = caller
            && caller.session_id.is_some()
        {
            binding.accounts.insert(caller.account_id.clone());
        }
        binding
    }

    /// A call that has proven these accounts by means outside the
    /// capability (host-side code and tests; a guest cannot make one).
    pub fn proven(account_ids: &[&str]) -> Self {
        Self { accounts: account_ids.iter().map(|id| id.to_string()).collect() }
    }

    fn bind(&mut self, account_id: &str) {
        self.accounts.insert(account_id.to_string());
    }

    fn require(&self, account_id: &str, what: &str) -> Result<(), CredentialsError> {
        if self.accounts.contains(account_id) {
            Ok(())
        } else {
            tracing::warn!(account = account_id, what, "credentials refused: the call has not proven this account");
            Err(CredentialsError::NotPermitted(format!("{what}: this call has not proven it acts for that account")))
        }
    }
}

/// Store data that carries the `credentials` capability.
pub trait CredentialsView: Send {
    fn credentials(&mut self) -> CredentialsCtxView<'_>;
}

struct HasCredentials;

impl HasData for HasCredentials {
    type Data<'a> = CredentialsCtxView<'a>;
}

/// Links `polyscale:commerce/credentials` for any store data with a
/// [`CredentialsView`].
pub fn add_to_linker<T: CredentialsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    credentials::add_to_linker::<T, HasCredentials>(linker, |t| t.credentials())
}

type Answer<T> = wasmtime::Result<Result<T, CredentialsError>>;

fn refresh_token(t: sessions::NewRefreshToken) -> RefreshToken {
    RefreshToken { token: t.token, expires_at_ms: t.expires_at_ms, session_id: t.session_id }
}

/// Passwords longer than this are refused before hashing (the account
/// component's policy stops at 128 characters; this bounds the work a
/// misbehaving component can ask for).
const MAX_PASSWORD_BYTES: usize = 1024;

impl Host for CredentialsCtxView<'_> {
    async fn set_password(&mut self, account_id: String, password: String) -> Answer<()> {
        let c = self.credentials;
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(wasmtime::format_err!("password over {MAX_PASSWORD_BYTES} bytes"));
        }
        // A proven account, or a new one (registration: no password yet).
        if self.binding.require(&account_id, "set a password").is_err() {
            match has_password(c, &account_id).await {
                Ok(false) => {}
                Ok(true) => return Ok(self.binding.require(&account_id, "set a password")),
                Err(e) => return Ok(Err(e)),
            }
        }
        let hash = c.hasher.hash(&password).await.map_err(|e| wasmtime::format_err!("{e}"))?;
        let stored = c
            .store
            .execute(
                "INSERT INTO passwords (account_id, hash, updated_at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (account_id) DO UPDATE SET hash = excluded.hash, updated_at_ms = excluded.updated_at_ms",
                &[account_id.clone().into(), hash.into(), c.now_ms().into()],
            )
            .await;
        if stored.is_ok() {
            self.binding.bind(&account_id);
        }
        Ok(stored.map(|_| ()).map_err(unavailable))
    }

    async fn verify_password(&mut self, account_id: Option<String>, password: String) -> Answer<()> {
        let c = self.credentials.clone();
        let keys = Keys::new(&c.config.throttle, account_id.as_deref(), self.client);
        match throttle::wait(&c.store, &keys, c.now_ms()).await {
            Ok(Some(ms)) => return Ok(Err(CredentialsError::Throttled(ms))),
            Ok(None) => {}
            Err(e) => return Ok(Err(unavailable(e))),
        }
        let stored = match &account_id {
            Some(id) => match c
                .store
                .query("SELECT hash FROM passwords WHERE account_id = $1", &[id.clone().into()], &Default::default())
                .await
            {
                Ok(rows) => rows.rows.into_iter().next().and_then(|mut r| r.pop()).and_then(|v| match v {
                    Value::Text(h) => Some(h),
                    _ => None,
                }),
                Err(e) => return Ok(Err(unavailable(e))),
            },
            None => None,
        };
        let ok = password.len() <= MAX_PASSWORD_BYTES
            && c.hasher.verify(&password, stored.as_deref()).await.map_err(|e| wasmtime::format_err!("{e}"))?;
        let counted = if ok {
            throttle::succeeded(&c.store, &keys).await
        } else {
            throttle::failed(&c.store, &keys, c.now_ms()).await
        };
        if let Err(e) = counted {
            return Ok(Err(unavailable(e)));
        }
        if ok {
            if let Some(id) = &account_id {
                self.binding.bind(id);
            }
            Ok(Ok(()))
        } else {
            tracing::info!(
                client = self.client,
                account = account_id.as_deref().unwrap_or("-"),
                "password check failed"
            );
            Ok(Err(CredentialsError::InvalidCredentials))
        }
    }

    async fn start_session(&mut self, account_id: String) -> Answer<RefreshToken> {
        if let Err(e) = self.binding.require(&account_id, "start a session") {
            return Ok(Err(e));
        }
        let c = self.credentials;
        let ttl = c.config.refresh_ttl.as_millis() as i64;
        Ok(sessions::start(&c.store, &account_id, ttl, c.now_ms()).await.map(refresh_token).map_err(unavailable))
    }

    async fn rotate_session(&mut self, token: String) -> Answer<(String, RefreshToken)> {
        let c = self.credentials;
        let ttl = c.config.refresh_ttl.as_millis() as i64;
        Ok(match sessions::rotate(&c.store, &token, ttl, c.now_ms()).await {
            Ok(Rotation::Rotated { account_id, token }) => {
                self.binding.bind(&account_id);
                Ok((account_id, refresh_token(token)))
            }
            Ok(Rotation::Invalid) => Err(CredentialsError::InvalidRefreshToken),
            Ok(Rotation::Reused) => {
                tracing::warn!("a spent refresh token was presented again; its session is revoked");
                Err(CredentialsError::RefreshTokenReused)
            }
            Err(e) => Err(unavailable(e)),
        })
    }

    async fn end_session(&mut self, token: String) -> Answer<()> {
        let c = self.credentials;
        Ok(sessions::end(&c.store, &token, c.now_ms()).await.map_err(unavailable))
    }

    async fn end_other_sessions(&mut self, account_id: String, keep: Option<String>) -> Answer<()> {
        if let Err(e) = self.binding.require(&account_id, "end sessions") {
            return Ok(Err(e));
        }
        let c = self.credentials;
        if let Some(keep) = &keep {
            match sessions::owner(&c.store, keep).await {
                Ok(Some(owner)) if owner == account_id => {}
                Ok(_) => return Ok(Err(CredentialsError::NotPermitted("that session is not this account's".into()))),
                Err(e) => return Ok(Err(unavailable(e))),
            }
        }
        Ok(sessions::end_others(&c.store, &account_id, keep.as_deref(), c.now_ms())
            .await
            .map(|_| ())
            .map_err(unavailable))
    }

    async fn issue_access_token(
        &mut self,
        account_id: String,
        roles: Vec<Role>,
        session_id: String,
    ) -> Answer<AccessToken> {
        if let Err(e) = self.binding.require(&account_id, "issue an access token") {
            return Ok(Err(e));
        }
        let c = self.credentials;
        match sessions::owner_if_live(&c.store, &session_id, c.now_ms()).await {
            Ok(Some(owner)) if owner == account_id => {}
            Ok(_) => {
                return Ok(Err(CredentialsError::NotPermitted(
                    "the session is not a live session of this account".into(),
                )));
            }
            Err(e) => return Ok(Err(unavailable(e))),
        }
        let granted = match granted_roles(c, &account_id).await {
            Ok(granted) => granted,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(role) = roles.iter().find(|r| **r != Role::Customer && !granted.iter().any(|g| g == role_name(**r)))
        {
            tracing::warn!(account = %account_id, role = role_name(*role), "token refused: role never granted");
            return Ok(Err(CredentialsError::NotPermitted(format!("the account holds no {} role", role_name(*role)))));
        }
        let roles: Vec<polyscale_auth::Role> = roles.into_iter().map(polyscale_auth::Role::from).collect();
        let (token, exp) =
            c.signer.issue(&account_id, &session_id, &roles).map_err(|e| wasmtime::format_err!("{e}"))?;
        Ok(Ok(AccessToken { token, expires_at_ms: exp as i64 * 1000 }))
    }

    async fn record_role(&mut self, account_id: String, role: Role) -> Answer<()> {
        if !self.caller.is_some_and(|c| c.roles.contains(&Role::Admin)) {
            tracing::warn!(account = %account_id, role = role_name(role), "role grant refused: the caller is no admin");
            return Ok(Err(CredentialsError::NotPermitted("only an admin may grant a role".into())));
        }
        if role == Role::Customer {
            return Ok(Ok(()));
        }
        let c = self.credentials;
        let recorded = c
            .store
            .execute(
                "INSERT INTO account_roles (account_id, role, granted_at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (account_id, role) DO NOTHING",
                &[account_id.clone().into(), Value::Text(role_name(role).into()), c.now_ms().into()],
            )
            .await;
        if recorded.is_ok() {
            tracing::info!(account = %account_id, role = role_name(role), "role granted");
        }
        Ok(recorded.map(|_| ()).map_err(unavailable))
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Customer => "customer",
        Role::Merchant => "merchant",
        Role::Admin => "admin",
    }
}

async fn has_password(c: &Credentials, account_id: &str) -> Result<bool, CredentialsError> {
    c.store
        .query("SELECT 1 FROM passwords WHERE account_id = $1", &[Value::Text(account_id.into())], &Default::default())
        .await
        .map(|rows| !rows.rows.is_empty())
        .map_err(unavailable)
}

async fn granted_roles(c: &Credentials, account_id: &str) -> Result<Vec<String>, CredentialsError> {
    let rows = c
        .store
        .query(
            "SELECT role FROM account_roles WHERE account_id = $1",
            &[Value::Text(account_id.into())],
            &Default::default(),
        )
        .await
        .map_err(unavailable)?;
    Ok(rows
        .rows
        .into_iter()
        .filter_map(|mut r| match r.pop() {
            Some(Value::Text(role)) => Some(role),
            _ => None,
        })
        .collect())
}
