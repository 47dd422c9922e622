//! Accounts, sign-in and sessions.

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, Result, SimpleObject};
use chrono::{DateTime, TimeZone, Utc};
use polyscale_proto::account::v1 as pb;

use super::{clients, request_context};
use crate::errors::{self, Failure, UserError};
use crate::rate_limit::{self, Class};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Role {
    Customer,
    Merchant,
    Admin,
}

fn timestamp(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[derive(SimpleObject, Clone)]
pub struct Address {
    line1: String,
    line2: Option<String>,
    city: String,
    region: Option<String>,
    postal_code: String,
    /// ISO 3166-1 alpha-2.
    country: String,
}

impl From<pb::Address> for Address {
    fn from(a: pb::Address) -> Self {
        Address {
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            region: a.region,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

#[derive(InputObject)]
pub struct AddressInput {
    line1: String,
    line2: Option<String>,
    city: String,
    region: Option<String>,
    postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    country: String,
}

/// A person or business with a login.
pub struct Account(pb::Account);

#[Object]
impl Account {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn roles(&self) -> Vec<Role> {
        self.0
            .roles()
            .filter_map(|r| match r {
                pb::Role::Customer => Some(Role::Customer),
                pb::Role::Merchant => Some(Role::Merchant),
                pb::Role::Admin => Some(Role::Admin),
                pb::Role::Unspecified => None,
            })
            .collect()
    }
    /// Set for merchants.
    async fn store_name(&self) -> Option<&str> {
        self.0.store_name.as_deref()
    }
    async fn default_address(&self) -> Option<Address> {
        self.0.default_address.clone().map(Address::from)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        timestamp(self.0.created_at_ms)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        timestamp(self.0.updated_at_ms)
    }
}

/// The result of signing in, registering, refreshing or changing a
/// password: the account and a fresh pair of tokens.
#[derive(SimpleObject, Default)]
pub struct AuthPayload {
    account: Option<Account>,
    /// Send as `Authorization: Bearer <accessToken>`; short-lived.
    access_token: Option<String>,
    access_token_expires_at: Option<DateTime<Utc>>,
    /// Trade for new tokens with `refreshToken`; each can be used once.
    refresh_token: Option<String>,
    refresh_token_expires_at: Option<DateTime<Utc>>,
    user_errors: Vec<UserError>,
}

#[derive(SimpleObject, Default)]
pub struct AccountPayload {
    account: Option<Account>,
    user_errors: Vec<UserError>,
}

#[derive(SimpleObject, Default)]
pub struct LogoutPayload {
    user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct RegisterInput {
    email: String,
    /// At least 8 characters, not a common password.
    password: String,
    display_name: String,
}

#[derive(InputObject)]
pub struct LoginInput {
    email: String,
    password: String,
}

/// Fields left out are unchanged; `defaultAddress: null` removes it.
#[derive(InputObject)]
pub struct UpdateProfileInput {
    display_name: Option<String>,
    default_address: MaybeUndefined<AddressInput>,
}

#[derive(InputObject)]
pub struct ChangePasswordInput {
    current_password: String,
    new_password: String,
}

/// Input path of a service field: under `input`, except for the named
/// top-level arguments.
fn path_under_input(top_level: &'static [&'static str]) -> impl Fn(&str) -> Vec<String> {
    move |field| {
        let mut path: Vec<String> = field.split('.').map(str::to_string).collect();
        if !top_level.contains(&field) {
            path.insert(0, "input".into());
        }
        path
    }
}

fn user_errors(status: tonic::Status, path: &dyn Fn(&str) -> Vec<String>) -> Result<Vec<UserError>> {
    match errors::from_status(&status, path) {
        Failure::User(errors) => Ok(errors),
        Failure::Api(e) => Err(e),
    }
}

fn auth_payload(
    result: std::result::Result<tonic::Response<pb::Session>, tonic::Status>,
    path: &dyn Fn(&str) -> Vec<String>,
) -> Result<AuthPayload> {
    match result {
        Ok(r) => {
            let s = r.into_inner();
            Ok(AuthPayload {
                account: s.account.map(Account),
                access_token: Some(s.access_token),
                access_token_expires_at: Some(timestamp(s.access_token_expires_at_ms)),
                refresh_token: Some(s.refresh_token),
                refresh_token_expires_at: Some(timestamp(s.refresh_token_expires_at_ms)),
                user_errors: vec![],
            })
        }
        Err(status) => Ok(AuthPayload { user_errors: user_errors(status, path)?, ..Default::default() }),
    }
}

fn account_payload(
    result: std::result::Result<tonic::Response<pb::Account>, tonic::Status>,
    path: &dyn Fn(&str) -> Vec<String>,
) -> Result<AccountPayload> {
    match result {
        Ok(r) => Ok(AccountPayload { account: Some(Account(r.into_inner())), user_errors: vec![] }),
        Err(status) => Ok(AccountPayload { account: None, user_errors: user_errors(status, path)? }),
    }
}

pub(super) fn address_pb(a: AddressInput) -> pb::Address {
    pb::Address {
        line1: a.line1,
        line2: a.line2,
        city: a.city,
        region: a.region,
        postal_code: a.postal_code,
        country: a.country,
    }
}

#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The signed-in account. `UNAUTHENTICATED` without a token.
    async fn me(&self, ctx: &Context<'_>) -> Result<Account> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let response = clients
            .account
            .clone()
            .me(clients.request(pb::MeRequest {}, request))
            .await
            .map_err(|s| errors::top_level(&s))?;
        Ok(Account(response.into_inner()))
    }
}

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Creates a customer account and signs it in.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        rate_limit::check(ctx, Class::Auth)?;
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        let message =
            pb::RegisterRequest { email: input.email, password: input.password, display_name: input.display_name };
        auth_payload(clients.account.clone().register(clients.request(message, request)).await, &path_under_input(&[]))
    }

    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        rate_limit::check(ctx, Class::Auth)?;
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        let message = pb::LoginRequest { email: input.email, password: input.password };
        auth_payload(clients.account.clone().login(clients.request(message, request)).await, &path_under_input(&[]))
    }

    /// Trades a refresh token for new tokens. The old refresh token is
    /// spent; using it again ends the whole session.
    async fn refresh_token(&self, ctx: &Context<'_>, refresh_token: String) -> Result<AuthPayload> {
        rate_limit::check(ctx, Class::Auth)?;
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        let message = pb::RefreshRequest { refresh_token };
        auth_payload(
            clients.account.clone().refresh(clients.request(message, request)).await,
            &path_under_input(&["refreshToken"]),
        )
    }

    /// Ends the session of a refresh token.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: String) -> Result<LogoutPayload> {
        let request = request_context(ctx)?;
        let clients = clients(ctx)?;
        match clients.account.clone().logout(clients.request(pb::LogoutRequest { refresh_token }, request)).await {
            Ok(_) => Ok(LogoutPayload::default()),
            Err(status) => {
                Ok(LogoutPayload { user_errors: user_errors(status, &path_under_input(&["refreshToken"]))? })
            }
        }
    }

    async fn update_profile(&self, ctx: &Context<'_>, input: UpdateProfileInput) -> Result<AccountPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let (default_address, clear_default_address) = match input.default_address {
            MaybeUndefined::Undefined => (None, false),
            MaybeUndefined::Null => (None, true),
            MaybeUndefined::Value(a) => (Some(address_pb(a)), false),
        };
        let message =
            pb::UpdateProfileRequest { display_name: input.display_name, default_address, clear_default_address };
        account_payload(
            clients.account.clone().update_profile(clients.request(message, request)).await,
            &path_under_input(&[]),
        )
    }

    /// Sets a new password, ends every session (this one included) and
    /// returns tokens for a fresh one.
    async fn change_password(&self, ctx: &Context<'_>, input: ChangePasswordInput) -> Result<AuthPayload> {
        rate_limit::check(ctx, Class::Auth)?;
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message =
            pb::ChangePasswordRequest { current_password: input.current_password, new_password: input.new_password };
        auth_payload(
            clients.account.clone().change_password(clients.request(message, request)).await,
            &path_under_input(&[]),
        )
    }

    /// Admins only: makes an account a merchant with a store.
    async fn grant_merchant(&self, ctx: &Context<'_>, account_id: ID, store_name: String) -> Result<AccountPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = pb::GrantMerchantRequest { account_id: account_id.0, store_name };
        let top_level = path_under_input(&["accountId", "storeName"]);
        // A missing account is reported against `accountId`.
        let path = move |field: &str| if field == "id" { vec!["accountId".to_string()] } else { top_level(field) };
        account_payload(clients.account.clone().grant_merchant(clients.request(message, request)).await, &path)
    }
}
