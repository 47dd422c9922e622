//! gRPC services: each decodes a request, calls the active component
//! version, and encodes the answer. Errors map to `Status` in one place
//! ([`status`]).

pub mod account;
pub mod admin;
pub mod module;
pub mod operator;
pub mod order;
pub mod plugin;
pub mod product;
pub mod search_admin;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use polyscale_auth::{GATEWAY_SUBJECT, ServiceTokenVerifier, Verifier};
use polyscale_proto::metadata::{AUTHORIZATION, CLIENT_ADDRESS, COMPONENT_VERSION, REQUEST_ID, SERVICE_TOKEN};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::bindings::types::DomainError;
use crate::call::{CallInfo, Caller, Role};
use crate::capabilities::credentials::Credentials;
use crate::registry::{Deployable, Served, ServiceSlot};
use crate::runtime::{BoxFuture, WorldStore};

/// Longest request id accepted from a client; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// Turns a request's metadata into the facts of a component call,
/// verifying the caller's access token (signature, issuer, audience,
/// expiry) with the public key. The gateway verified it too; the services
/// do not trust the gateway to have done so.
#[derive(Clone, Default)]
pub struct Authenticator {
    verifier: Option<Verifier>,
    /// Checks the gateway's service token; only a call that carries a
    /// valid one has its client address header believed. Without it, no
    /// caller is believed and the peer's address is used.
    gateway: Option<ServiceTokenVerifier>,
    /// When set, the token's session must also still be live (logout and
    /// password changes then take effect at once). The account service
    /// sets it; others accept a token until it expires.
    sessions: Option<Arc<Credentials>>,
}

impl Authenticator {
    pub fn new(verifier: Option<Verifier>, gateway: Option<ServiceTokenVerifier>) -> Self {
        Self { verifier, gateway, sessions: None }
    }

    pub fn checking_sessions(mut self, credentials: Arc<Credentials>) -> Self {
        self.sessions = Some(credentials);
        self
    }

    pub async fn call_info<T>(&self, request: &Request<T>) -> Result<(CallInfo, Option<Duration>), Status> {
        let (mut info, timeout) = call_info(request);
        self.client_address(request, &mut info)?;
        let Some(header) = request.metadata().get(AUTHORIZATION) else { return Ok((info, timeout)) };
        let unauthenticated = |why: &str| status::unauthenticated(why);
        let token = header
            .to_str()
            .ok()
            .and_then(polyscale_auth::bearer)
            .ok_or_else(|| unauthenticated("malformed authorization header"))?;
        let verifier = self.verifier.as_ref().ok_or_else(|| unauthenticated("this service does not accept tokens"))?;
        let claims = verifier.verify(token).map_err(|e| unauthenticated(&e.to_string()))?;
        if let Some(sessions) = &self.sessions {
            match sessions.session_live(&claims.sid).await {
                Ok(true) => {}
                Ok(false) => return Err(unauthenticated("the session has ended; sign in again")),
                Err(e) => {
                    tracing::error!(error = ?e, "session check failed");
                    return Err(Status::unavailable("the credentials store is unavailable"));
                }
            }
        }
        let roles = claims.roles.iter().copied().map(Role::from).collect();
        info.caller = Some(Caller { account_id: claims.sub, roles, session_id: Some(claims.sid) });
        info.bearer = Some(token.to_string());
        Ok((info, timeout))
    }
}

impl Authenticator {
    /// The calling service, if the call carries a service token (one that
    /// does not verify is refused outright), and the client's address: the
    /// one the gateway vouches for, if it is the gateway; otherwise the
    /// peer's.
    fn client_address<T>(&self, request: &Request<T>, info: &mut CallInfo) -> Result<(), Status> {
        let metadata = request.metadata();
        if let Some(token) = metadata.get(SERVICE_TOKEN) {
            let verifier =
                self.gateway.as_ref().ok_or_else(|| status::unauthenticated("this service trusts no service key"))?;
            let token = token.to_str().map_err(|_| status::unauthenticated("malformed service token"))?;
            let service =
                verifier.verify(token).map_err(|e| status::unauthenticated(&format!("service token: {e}")))?;
            info.service = Some(service);
            if info.service.as_deref() == Some(GATEWAY_SUBJECT)
                && let Some(address) = metadata
                    .get(CLIENT_ADDRESS)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
            {
                info.client_address = address.to_string();
                return Ok(());
            }
        }
        if let Some(peer) = request.remote_addr() {
            info.client_address = peer.ip().to_string();
        }
        Ok(())
    }
}

/// The call facts carried by a gRPC request's metadata, before
/// authentication.
fn call_info<T>(request: &Request<T>) -> (CallInfo, Option<Duration>) {
    let metadata = request.metadata();
    let request_id = metadata
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    // The call ends a little before the client's deadline, so that the
    // client hears DEADLINE_EXCEEDED from the host rather than tonic's own
    // CANCELLED when its timer fires first.
    let timeout = metadata
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map(|t| t.saturating_sub(REPLY_MARGIN.min(t / 5)));
    (CallInfo::new(request_id, None), timeout)
}

/// Time kept from a client's deadline to send the answer.
const REPLY_MARGIN: Duration = Duration::from_millis(50);

/// Parses a `grpc-timeout` header value: up to 8 digits and a unit.
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Calls the active version of a domain component and maps both kinds of
/// failure, the call's (trap, timeout, no version) and the domain's typed
/// error, to a `Status`.
pub(crate) async fn call_domain<W: Deployable, T, F>(
    slot: &ServiceSlot<W>,
    info: CallInfo,
    timeout: Option<Duration>,
    f: F,
) -> Result<Served<T>, Status>
where
    F: for<'a> FnOnce(&'a W::Exports, &'a mut WorldStore<W>) -> BoxFuture<'a, wasmtime::Result<Result<T, DomainError>>>,
{
    let request_id = info.request_id.clone();
    let served = slot.call(info, timeout, f).await.map_err(|e| status::call_error(e, &request_id))?;
    match served.value {
        Ok(value) => Ok(Served { value, version: served.version }),
        Err(e) => Err(status::domain_error(e, &request_id)),
    }
}

/// A response tagged with the component version that produced it.
pub fn respond<T>(message: T, version: &str) -> Response<T> {
    let mut response = Response::new(message);
    if let Ok(v) = MetadataValue::try_from(version) {
        response.metadata_mut().insert(COMPONENT_VERSION, v);
    }
    response
}

/// Maps the value of a served call, keeping its version.
pub fn served_map<T, U>(served: Served<T>, f: impl FnOnce(T) -> U) -> Served<U> {
    Served { value: f(served.value), version: served.version }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
    }
}
