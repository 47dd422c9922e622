//! The `accounts` export.

use polyscale_guest::bindings::sql::{ConstraintKind, Error as SqlError};
use polyscale_guest::bindings::types::{DomainError, FieldError};
use polyscale_guest::sql::{self, Transaction};
use polyscale_guest::{CallContext, CallerExt, FieldErrors, Invalid, Role, call_context, ids, log, params};

use crate::bindings::exports::polyscale::commerce::accounts::{Account, Guest, ProfilePatch, Registration, Session};
use crate::bindings::polyscale::commerce::credentials::{self, CredentialsError};
use crate::{policy, store};

/// Most ids one `get-accounts` call may ask for.
const MAX_IDS: usize = 100;

fn credentials_error(e: CredentialsError) -> DomainError {
    match e {
        CredentialsError::InvalidCredentials => {
            DomainError::Invalid(vec![FieldError::invalid("", "INVALID_CREDENTIALS", "the email or password is wrong")])
        }
        CredentialsError::Throttled(ms) => DomainError::Invalid(vec![FieldError::invalid(
            "",
            "TOO_MANY_ATTEMPTS",
            format!("too many failed attempts; try again in {} s", ms.div_ceil(1000)),
        )]),
        CredentialsError::InvalidRefreshToken => DomainError::Invalid(vec![FieldError::invalid(
            "refreshToken",
            "INVALID_REFRESH_TOKEN",
            "the refresh token is unknown, expired or revoked",
        )]),
        CredentialsError::RefreshTokenReused => DomainError::Invalid(vec![FieldError::invalid(
            "refreshToken",
            "REFRESH_TOKEN_REUSED",
            "this refresh token was already used; the session has been ended",
        )]),
        CredentialsError::Unavailable(m) => DomainError::Unavailable(format!("credentials store: {m}")),
        CredentialsError::NotPermitted(m) => DomainError::Forbidden(m),
    }
}

/// Opens a session for an account and signs its first access token.
fn sign_in(account: Account) -> Result<Session, DomainError> {
    let refresh = credentials::start_session(&account.id).map_err(credentials_error)?;
    let access =
        credentials::issue_access_token(&account.id, &account.roles, &refresh.session_id).map_err(credentials_error)?;
    Ok(Session { account, access, refresh })
}

/// The calling account's id, or `unauthenticated`.
fn caller_id(ctx: &CallContext) -> Result<String, DomainError> {
    ctx.caller.account_id().map(str::to_string).ok_or_else(|| DomainError::Unauthenticated("sign in first".into()))
}

fn require_admin(ctx: &CallContext) -> Result<(), DomainError> {
    caller_id(ctx)?;
    if ctx.caller.is_admin() { Ok(()) } else { Err(DomainError::Forbidden("only admins may do this".into())) }
}

fn with_role(id: &str, role: Role, store_name: Option<String>, now_ms: i64) -> Result<Account, DomainError> {
    let account = store::by_id(id)?.ok_or_else(|| DomainError::NotFound(format!("no account with id {id}")))?;
    // The host records the grant first (it checks the caller is an admin):
    // tokens carry only roles it has recorded.
    credentials::record_role(id, role).map_err(credentials_error)?;
    let mut roles = account.roles.clone();
    roles.push(role);
    let store_name = store_name.or(account.store_name);
    store::update(
        "UPDATE accounts SET roles = $2, store_name = $3, updated_at_ms = $4 WHERE id = $1",
        &params![id, store::roles_to_text(&roles), store_name, now_ms],
        id,
    )
}

impl Guest for crate::Component {
    fn register(input: Registration) -> Result<Session, DomainError> {
        let ctx = call_context();
        let mut errors = FieldErrors::new();
        let email = errors.take(policy::email("email", &input.email));
        let display_name = errors.take(policy::name("displayName", &input.display_name));
        errors.take(policy::password("password", &input.password, email.as_deref().unwrap_or_default()));
        errors.finish()?;
        let (Some(email), Some(display_name)) = (email, display_name) else {
            return Err(DomainError::Internal("validation passed with a missing value".into()));
        };

        // The account row and the password are written together: if the
        // password cannot be stored, the transaction rolls back and no
        // account without a password is left behind.
        let id = ids::new_id();
        let tx = sql::begin()?;
        let inserted = tx.query(
            &format!(
                "INSERT INTO accounts (id, email, display_name, roles, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, 'customer', $4, $4) RETURNING {}",
                store::COLUMNS
            ),
            &params![&id, email, display_name, ctx.now_ms],
        );
        let account = match inserted {
            Ok(rows) => polyscale_guest::sql::RowsExt::first_row(&rows)
                .map(store::account)
                .transpose()?
                .ok_or_else(|| DomainError::Internal("insert returned no row".into()))?,
            Err(SqlError::Constraint(c)) if c.kind == ConstraintKind::Unique => {
                return Err(DomainError::invalid("email", "EMAIL_TAKEN", "an account with this email already exists"));
            }
            Err(e) => return Err(e.into()),
        };
        credentials::set_password(&id, &input.password).map_err(credentials_error)?;
        Transaction::commit(tx)?;
        log::info(&format!("account {id} registered"));
        sign_in(account)
    }

    fn login(email: String, password: String) -> Result<Session, DomainError> {
        // An unknown or malformed email still goes through the password
        // check (with no account), so timing and throttling do not tell
        // attackers which emails exist.
        let account = match policy::email("email", &email) {
            Ok(normalized) => store::by_email(&normalized)?,
            Err(_) => None,
        };
        credentials::verify_password(account.as_ref().map(|a| a.id.as_str()), &password).map_err(credentials_error)?;
        let account = account.ok_or_else(|| credentials_error(CredentialsError::InvalidCredentials))?;
        sign_in(account)
    }

    fn refresh(token: String) -> Result<Session, DomainError> {
        let (account_id, refresh) = credentials::rotate_session(&token).map_err(credentials_error)?;
        let account =
            store::by_id(&account_id)?.ok_or_else(|| credentials_error(CredentialsError::InvalidRefreshToken))?;
        // Roles are read again, so a new role shows up at the next refresh.
        let access = credentials::issue_access_token(&account.id, &account.roles, &refresh.session_id)
            .map_err(credentials_error)?;
        Ok(Session { account, access, refresh })
    }

    fn logout(token: String) -> Result<(), DomainError> {
        credentials::end_session(&token).map_err(credentials_error)
    }

    fn me() -> Result<Account, DomainError> {
        let id = caller_id(&call_context())?;
        store::by_id(&id)?.ok_or_else(|| DomainError::Unauthenticated("the account no longer exists".into()))
    }

    fn get_account(id: String) -> Result<Account, DomainError> {
        let ctx = call_context();
        let me = caller_id(&ctx)?;
        let id = ids::parse_id("id", &id)?;
        if id != me && !ctx.caller.is_admin() {
            return Err(DomainError::Forbidden("you may only read your own account".into()));
        }
        store::by_id(&id)?.ok_or_else(|| DomainError::NotFound(format!("no account with id {id}")))
    }

    fn get_accounts(ids_in: Vec<String>) -> Result<Vec<Account>, DomainError> {
        require_admin(&call_context())?;
        if ids_in.len() > MAX_IDS {
            return Err(DomainError::invalid("ids", "TOO_MANY", format!("ask for at most {MAX_IDS} ids at once")));
        }
        let mut errors = FieldErrors::new();
        let wanted: Vec<String> = ids_in.iter().filter_map(|id| errors.take(ids::parse_id("ids", id))).collect();
        errors.finish()?;
        store::by_ids(&wanted)
    }

    fn find_account_by_email(email: String) -> Result<Account, DomainError> {
        require_admin(&call_context())?;
        let email = policy::email("email", &email)?;
        store::by_email(&email)?.ok_or_else(|| DomainError::NotFound(format!("no account with email {email}")))
    }

    fn update_profile(patch: ProfilePatch) -> Result<Account, DomainError> {
        let ctx = call_context();
        let id = caller_id(&ctx)?;
        let mut errors = FieldErrors::new();
        let display_name = patch.display_name.map(|n| errors.take(policy::name("displayName", &n)));
        let mut address_errors = Vec::new();
        let address =
            patch.default_address.map(|a| a.map(|a| policy::address("defaultAddress", a, &mut address_errors)));
        for e in address_errors {
            errors.add(&e.field, &e.code, e.message);
        }
        errors.finish()?;
        let display_name = display_name.flatten();
        // some(none) clears the address; none leaves it; some(some) sets it.
        let set_address = address.is_some();
        let a = address.flatten().flatten();
        store::update(
            "UPDATE accounts SET display_name = COALESCE($2, display_name), \
               address_line1 = CASE WHEN $3 THEN $4 ELSE address_line1 END, \
               address_line2 = CASE WHEN $3 THEN $5 ELSE address_line2 END, \
               address_city = CASE WHEN $3 THEN $6 ELSE address_city END, \
               address_region = CASE WHEN $3 THEN $7 ELSE address_region END, \
               address_postal_code = CASE WHEN $3 THEN $8 ELSE address_postal_code END, \
               address_country = CASE WHEN $3 THEN $9 ELSE address_country END, \
               updated_at_ms = $10 \
             WHERE id = $1",
            &params![
                &id,
                display_name,
                set_address,
                a.as_ref().map(|a| a.line1.clone()),
                a.as_ref().and_then(|a| a.line2.clone()),
                a.as_ref().map(|a| a.city.clone()),
                a.as_ref().and_then(|a| a.region.clone()),
                a.as_ref().map(|a| a.postal_code.clone()),
                a.as_ref().map(|a| a.country.clone()),
                ctx.now_ms,
            ],
            &id,
        )
    }

    fn change_password(current_password: String, new_password: String) -> Result<Session, DomainError> {
        let ctx = call_context();
        let id = caller_id(&ctx)?;
        let account =
            store::by_id(&id)?.ok_or_else(|| DomainError::Unauthenticated("the account no longer exists".into()))?;
        credentials::verify_password(Some(&id), &current_password).map_err(|e| match e {
            CredentialsError::InvalidCredentials => {
                DomainError::invalid("currentPassword", "INCORRECT_PASSWORD", "the current password is wrong")
            }
            other => credentials_error(other),
        })?;
        policy::password("newPassword", &new_password, &account.email)?;
        if new_password == current_password {
            return Err(DomainError::invalid(
                "newPassword",
                "PASSWORD_UNCHANGED",
                "choose a password you have not just used",
            ));
        }
        credentials::set_password(&id, &new_password).map_err(credentials_error)?;
        // Every session that knew the old password ends, this one included;
        // the caller continues on the fresh session returned.
        credentials::end_other_sessions(&id, None).map_err(credentials_error)?;
        log::info(&format!("account {id} changed its password; sessions ended"));
        sign_in(account)
    }

    fn grant_merchant(account_id: String, store_name: String) -> Result<Account, DomainError> {
        let ctx = call_context();
        require_admin(&ctx)?;
        let mut errors = FieldErrors::new();
        let id = errors.take(ids::parse_id("accountId", &account_id));
        let store_name = errors.take(policy::name("storeName", &store_name));
        errors.finish()?;
        let (Some(id), Some(store_name)) = (id, store_name) else {
            return Err(DomainError::Internal("validation passed with a missing value".into()));
        };
        with_role(&id, Role::Merchant, Some(store_name), ctx.now_ms)
    }

    fn grant_admin(account_id: String) -> Result<Account, DomainError> {
        let ctx = call_context();
        require_admin(&ctx)?;
        let id = ids::parse_id("accountId", &account_id)?;
        with_role(&id, Role::Admin, None, ctx.now_ms)
    }
}
