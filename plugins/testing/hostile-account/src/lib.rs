//! An account-service component written by an attacker, for testing that
//! the `credentials` capability acts only for accounts the call proved.
//!
//! `login(email, password)` runs the attack named by `email` and answers
//! with the session it got, or with the capability's refusal as a
//! `forbidden` error whose message starts with `refused:`:
//! - `mint-admin:ID:SESSION`: an access token for account ID in SESSION
//!   with the admin role, without any proof;
//! - `session-for:ID`: a session and token for account ID, without proof;
//! - `set-password:ID`: sets ID's password to `password`, without proof;
//! - `self-admin:ID`: registers ID (its first password binds the call), then
//!   asks for an admin token for it;
//! - `grant-self:ID`: records the admin role for ID (the caller is anonymous).
//!
//! Every other export answers `internal`; it has no migrations.

use polyscale_guest::bindings::context::Role;
use polyscale_guest::bindings::types::DomainError;

mod bindings {
    wit_bindgen::generate!({
        world: "account-service",
        path: "../../../wit",
        with: {
            "polyscale:commerce/types@0.1.0": polyscale_guest::bindings::types,
            "polyscale:commerce/context@0.1.0": polyscale_guest::bindings::context,
            "polyscale:commerce/logging@0.1.0": polyscale_guest::bindings::logging,
            "polyscale:commerce/sql@0.1.0": polyscale_guest::bindings::sql,
            "polyscale:commerce/credentials@0.1.0": generate,
        },
    });
}

use bindings::exports::polyscale::commerce::accounts::{Account, Guest, ProfilePatch, Registration, Session};
use bindings::exports::polyscale::commerce::migrations::{self, Migration};
use bindings::polyscale::commerce::credentials::{self, CredentialsError};

struct Component;

fn unsupported<T>() -> Result<T, DomainError> {
    Err(DomainError::Internal("not supported by the hostile test component".into()))
}

fn refused(e: CredentialsError) -> DomainError {
    DomainError::Forbidden(format!("refused: {e:?}"))
}

fn account(id: &str, roles: Vec<Role>) -> Account {
    Account {
        id: id.into(),
        email: format!("{id}@hostile.example"),
        display_name: "hostile".into(),
        roles,
        store_name: None,
        default_address: None,
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}

fn session_for(id: &str, roles: Vec<Role>, session_id: Option<&str>) -> Result<Session, DomainError> {
    let refresh = match session_id {
        Some(_) => None,
        None => Some(credentials::start_session(id).map_err(refused)?),
    };
    let session_id = session_id.map(str::to_string).or_else(|| refresh.as_ref().map(|r| r.session_id.clone()));
    let access =
        credentials::issue_access_token(id, &roles, session_id.as_deref().unwrap_or_default()).map_err(refused)?;
    let refresh = refresh.unwrap_or(credentials::RefreshToken {
        token: String::new(),
        expires_at_ms: 0,
        session_id: session_id.unwrap_or_default(),
    });
    Ok(Session { account: account(id, roles), access, refresh })
}

impl migrations::Guest for Component {
    fn all() -> Vec<Migration> {
        Vec::new()
    }
}

impl Guest for Component {
    fn login(email: String, password: String) -> Result<Session, DomainError> {
        let (attack, rest) = email.split_once(':').unwrap_or((&email, ""));
        match attack {
            "mint-admin" => {
                let (id, session) = rest.split_once(':').unwrap_or((rest, ""));
                session_for(id, vec![Role::Customer, Role::Admin], Some(session))
            }
            "session-for" => session_for(rest, vec![Role::Customer], None),
            "set-password" => {
                credentials::set_password(rest, &password).map_err(refused)?;
                Err(DomainError::Conflict("the password was set".into()))
            }
            "self-admin" => {
                credentials::set_password(rest, &password).map_err(refused)?;
                session_for(rest, vec![Role::Customer, Role::Admin], None)
            }
            "grant-self" => {
                credentials::record_role(rest, Role::Admin).map_err(refused)?;
                Err(DomainError::Conflict("the role was recorded".into()))
            }
            _ => unsupported(),
        }
    }

    fn register(_: Registration) -> Result<Session, DomainError> {
        unsupported()
    }
    fn refresh(_: String) -> Result<Session, DomainError> {
        unsupported()
    }
    fn logout(_: String) -> Result<(), DomainError> {
        unsupported()
    }
    fn me() -> Result<Account, DomainError> {
        unsupported()
    }
    fn get_account(_: String) -> Result<Account, DomainError> {
        unsupported()
    }
    fn get_accounts(_: Vec<String>) -> Result<Vec<Account>, DomainError> {
        unsupported()
    }
    fn find_account_by_email(_: String) -> Result<Account, DomainError> {
        unsupported()
    }
    fn update_profile(_: ProfilePatch) -> Result<Account, DomainError> {
        unsupported()
    }
    fn change_password(_: String, _: String) -> Result<Session, DomainError> {
        unsupported()
    }
    fn grant_merchant(_: String, _: String) -> Result<Account, DomainError> {
        unsupported()
    }
    fn grant_admin(_: String) -> Result<Account, DomainError> {
        unsupported()
    }
}

bindings::export!(Component with_types_in bindings);
