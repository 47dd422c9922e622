//! The WIT `credentials` interface over [`Credentials`].

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use super::sessions::{self, Rotation};
use super::throttle::{self, Keys};
use super::{Credentials, CredentialsError, unavailable};
use crate::bindings::context::Role;
use crate::bindings::credentials::{self, AccessToken, Host, RefreshToken};

/// What the credentials host functions see: the shared credentials store
/// and the address of the client the call is for (for throttling).
pub struct CredentialsCtxView<'a> {
    pub credentials: &'a Arc<Credentials>,
    pub client: &'a str,
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
        let hash = c.hasher.hash(&password).await.map_err(|e| wasmtime::format_err!("{e}"))?;
        let stored = c
            .store
            .execute(
                "INSERT INTO passwords (account_id, hash, updated_at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (account_id) DO UPDATE SET hash = excluded.hash, updated_at_ms = excluded.updated_at_ms",
                &[account_id.into(), hash.into(), c.now_ms().into()],
            )
            .await;
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
                    crate::database::Value::Text(h) => Some(h),
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
        let c = self.credentials;
        let ttl = c.config.refresh_ttl.as_millis() as i64;
        Ok(sessions::start(&c.store, &account_id, ttl, c.now_ms()).await.map(refresh_token).map_err(unavailable))
    }

    async fn rotate_session(&mut self, token: String) -> Answer<(String, RefreshToken)> {
        let c = self.credentials;
        let ttl = c.config.refresh_ttl.as_millis() as i64;
        Ok(match sessions::rotate(&c.store, &token, ttl, c.now_ms()).await {
            Ok(Rotation::Rotated { account_id, token }) => Ok((account_id, refresh_token(token))),
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
        let c = self.credentials;
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
        let c = self.credentials;
        let roles: Vec<polyscale_auth::Role> = roles.into_iter().map(polyscale_auth::Role::from).collect();
        let (token, exp) =
            c.signer.issue(&account_id, &session_id, &roles).map_err(|e| wasmtime::format_err!("{e}"))?;
        Ok(Ok(AccessToken { token, expires_at_ms: exp as i64 * 1000 }))
    }
}
