//! `AccountService` over gRPC, served by the active account component.

use std::sync::Arc;

use pb::account_service_server::AccountService;
use polyscale_proto::account::v1 as pb;
use tonic::{Request, Response, Status};

use pb::account_service_server::AccountServiceServer;
use polyscale_proto::admin::v1::operator_server::OperatorServer;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;

use super::module::{Planes, ServiceModule};
use super::operator::OperatorApi;
use super::{Authenticator, call_domain, respond};
use crate::bindings::account::exports::polyscale::commerce::accounts as wit;
use crate::bindings::types::DomainError;
use crate::call::CallInfo;
use crate::capabilities::credentials::Credentials;
use crate::contracts;
use crate::registry::{Served, ServiceSlot};
use crate::runtime::{BoxFuture, WorldStore};
use crate::server::{AccountServiceConfig, HostContext, StartError};
use crate::worlds::account::AccountShared;
pub use crate::worlds::account::AccountWorld;

/// The account service's component slot.
pub type AccountSlot = ServiceSlot<AccountWorld>;

/// Calls one `accounts` export with prepared call facts.
pub(crate) async fn invoke<T, F>(
    slot: &AccountSlot,
    info: CallInfo,
    timeout: Option<std::time::Duration>,
    f: F,
) -> Result<Served<T>, Status>
where
    F: for<'a> FnOnce(
        &'a wit::Guest,
        &'a mut WorldStore<AccountWorld>,
    ) -> BoxFuture<'a, wasmtime::Result<Result<T, DomainError>>>,
{
    call_domain(slot, info, timeout, |exports, store| f(exports.polyscale_commerce_accounts(), store)).await
}

pub struct AccountApi {
    slot: Arc<AccountSlot>,
    auth: Authenticator,
}

impl AccountApi {
    pub fn new(slot: Arc<AccountSlot>, auth: Authenticator) -> Self {
        Self { slot, auth }
    }

    async fn call<Req, T, F>(&self, request: &Request<Req>, f: F) -> Result<Served<T>, Status>
    where
        F: for<'a> FnOnce(
            &'a wit::Guest,
            &'a mut WorldStore<AccountWorld>,
        ) -> BoxFuture<'a, wasmtime::Result<Result<T, DomainError>>>,
    {
        let (info, timeout) = self.auth.call_info(request).await?;
        invoke(&self.slot, info, timeout, f).await
    }
}

fn account_response(served: Served<wit::Account>) -> Response<pb::Account> {
    respond(served.value.into(), &served.version)
}

fn session_response(served: Served<wit::Session>) -> Response<pb::Session> {
    respond(served.value.into(), &served.version)
}

#[tonic::async_trait]
impl AccountService for AccountApi {
    async fn register(&self, request: Request<pb::RegisterRequest>) -> Result<Response<pb::Session>, Status> {
        let r = request.get_ref();
        let input = wit::Registration {
            email: r.email.clone(),
            password: r.password.clone(),
            display_name: r.display_name.clone(),
        };
        Ok(session_response(
            self.call(&request, |a, s| Box::pin(async move { a.call_register(s, &input).await })).await?,
        ))
    }

    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::Session>, Status> {
        let pb::LoginRequest { email, password } = request.get_ref().clone();
        Ok(session_response(
            self.call(&request, |a, s| Box::pin(async move { a.call_login(s, &email, &password).await })).await?,
        ))
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Result<Response<pb::Session>, Status> {
        let token = request.get_ref().refresh_token.clone();
        Ok(session_response(
            self.call(&request, |a, s| Box::pin(async move { a.call_refresh(s, &token).await })).await?,
        ))
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Result<Response<pb::LogoutResponse>, Status> {
        let token = request.get_ref().refresh_token.clone();
        let served = self.call(&request, |a, s| Box::pin(async move { a.call_logout(s, &token).await })).await?;
        Ok(respond(pb::LogoutResponse {}, &served.version))
    }

    async fn me(&self, request: Request<pb::MeRequest>) -> Result<Response<pb::Account>, Status> {
        Ok(account_response(self.call(&request, |a, s| Box::pin(async move { a.call_me(s).await })).await?))
    }

    async fn get_account(&self, request: Request<pb::GetAccountRequest>) -> Result<Response<pb::Account>, Status> {
        let id = request.get_ref().id.clone();
        Ok(account_response(
            self.call(&request, |a, s| Box::pin(async move { a.call_get_account(s, &id).await })).await?,
        ))
    }

    async fn get_accounts(
        &self,
        request: Request<pb::GetAccountsRequest>,
    ) -> Result<Response<pb::GetAccountsResponse>, Status> {
        let ids = request.get_ref().ids.clone();
        let served = self.call(&request, |a, s| Box::pin(async move { a.call_get_accounts(s, &ids).await })).await?;
        let accounts = served.value.into_iter().map(Into::into).collect();
        Ok(respond(pb::GetAccountsResponse { accounts }, &served.version))
    }

    async fn update_profile(
        &self,
        request: Request<pb::UpdateProfileRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let patch = contracts::account::profile_patch(request.get_ref().clone());
        Ok(account_response(
            self.call(&request, |a, s| Box::pin(async move { a.call_update_profile(s, &patch).await })).await?,
        ))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let pb::ChangePasswordRequest { current_password, new_password } = request.get_ref().clone();
        let served = self
            .call(&request, |a, s| {
                Box::pin(async move { a.call_change_password(s, &current_password, &new_password).await })
            })
            .await?;
        Ok(session_response(served))
    }

    async fn grant_merchant(
        &self,
        request: Request<pb::GrantMerchantRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let pb::GrantMerchantRequest { account_id, store_name } = request.get_ref().clone();
        let served = self
            .call(&request, |a, s| Box::pin(async move { a.call_grant_merchant(s, &account_id, &store_name).await }))
            .await?;
        Ok(account_response(served))
    }
}

/// The account service as a host module: its slot, the credentials store
/// (and its sweeper) and the `Operator` admin service.
pub struct AccountModule {
    slot: Arc<AccountSlot>,
}

impl AccountModule {
    pub async fn build(config: &AccountServiceConfig, host: &mut HostContext) -> Result<Self, StartError> {
        let store = host.connect_private("credentials", &config.credentials_database_url).await?;
        let credentials = Credentials::open(store, config.credentials.clone()).await?;
        let db = host.connect("account", &config.service.database_url).await?;
        let shared = AccountShared { db, sql_limits: host.config().sql_limits, credentials };
        let slot = host.start_slot::<AccountWorld>("account", shared, &config.service.component).await?;
        Ok(Self { slot })
    }

    pub fn slot(&self) -> &Arc<AccountSlot> {
        &self.slot
    }

    fn credentials(&self) -> &Arc<Credentials> {
        &self.slot.shared().credentials
    }
}

impl ServiceModule for AccountModule {
    fn name(&self) -> &'static str {
        "account"
    }

    fn register(&self, auth: &Authenticator, planes: &mut Planes) {
        // Logout and password changes take effect here at once.
        let auth = auth.clone().checking_sessions(self.credentials().clone());
        planes.grpc.add_service(AccountServiceServer::new(AccountApi::new(self.slot.clone(), auth)));
        planes.health.push(<AccountServiceServer<AccountApi> as NamedService>::NAME);
        planes.admin.add_service(OperatorServer::new(OperatorApi::new(self.slot.clone())));
        planes.add_slot(self.name(), self.slot.clone());
    }

    fn spawn_background(&self, stop: &CancellationToken) {
        self.credentials().spawn_sweeper(stop.clone());
    }

    fn token_public_key(&self) -> Option<String> {
        Some(self.credentials().public_key_pem().to_string())
    }
}
