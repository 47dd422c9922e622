//! Protobuf ↔ WIT conversions for the account service, in one place.

use polyscale_proto::account::v1 as pb;

use super::roles;
use crate::bindings::account::exports::polyscale::commerce::accounts as wit;
use crate::bindings::context::Role;

fn role(r: Role) -> i32 {
    pb::Role::from(r) as i32
}

fn address_out(a: wit::Address) -> pb::Address {
    pb::Address {
        line1: a.line1,
        line2: a.line2,
        city: a.city,
        region: a.region,
        postal_code: a.postal_code,
        country: a.country,
    }
}

fn address_in(a: pb::Address) -> wit::Address {
    wit::Address {
        line1: a.line1,
        line2: a.line2,
        city: a.city,
        region: a.region,
        postal_code: a.postal_code,
        country: a.country,
    }
}

impl From<wit::Account> for pb::Account {
    fn from(a: wit::Account) -> Self {
        pb::Account {
            id: a.id,
            email: a.email,
            display_name: a.display_name,
            roles: a.roles.into_iter().map(role).collect(),
            store_name: a.store_name,
            default_address: a.default_address.map(address_out),
            created_at_ms: a.created_at_ms,
            updated_at_ms: a.updated_at_ms,
        }
    }
}

impl From<wit::Session> for pb::Session {
    fn from(s: wit::Session) -> Self {
        pb::Session {
            account: Some(s.account.into()),
            access_token: s.access.token,
            access_token_expires_at_ms: s.access.expires_at_ms,
            refresh_token: s.refresh.token,
            refresh_token_expires_at_ms: s.refresh.expires_at_ms,
        }
    }
}

pub fn profile_patch(r: pb::UpdateProfileRequest) -> wit::ProfilePatch {
    let default_address =
        if r.clear_default_address { Some(None) } else { r.default_address.map(|a| Some(address_in(a))) };
    wit::ProfilePatch { display_name: r.display_name, default_address }
}

// --- the other direction: what a caller of the account service reads back
// --- (the order service reads the customer's profile and address).

impl From<pb::Account> for wit::Account {
    /// Roles this build does not know are dropped, never widened.
    fn from(a: pb::Account) -> Self {
        wit::Account {
            id: a.id,
            email: a.email,
            display_name: a.display_name,
            roles: a.roles.into_iter().filter_map(roles::from_pb).collect(),
            store_name: a.store_name,
            default_address: a.default_address.map(address_in),
            created_at_ms: a.created_at_ms,
            updated_at_ms: a.updated_at_ms,
        }
    }
}

/// The request that [`profile_patch`] reads back.
pub fn update_profile_request(patch: wit::ProfilePatch) -> pb::UpdateProfileRequest {
    pb::UpdateProfileRequest {
        display_name: patch.display_name,
        clear_default_address: matches!(patch.default_address, Some(None)),
        default_address: patch.default_address.flatten().map(address_out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> wit::Address {
        wit::Address {
            line1: "1 Quay St".into(),
            line2: None,
            city: "Lyon".into(),
            region: None,
            postal_code: "69002".into(),
            country: "FR".into(),
        }
    }

    #[test]
    fn accounts_round_trip() {
        let account = wit::Account {
            id: "a-1".into(),
            email: "ann@example.com".into(),
            display_name: "Ann".into(),
            roles: vec![Role::Customer, Role::Merchant, Role::Admin],
            store_name: Some("Ann's".into()),
            default_address: Some(address()),
            created_at_ms: 1,
            updated_at_ms: 2,
        };
        assert_eq!(wit::Account::from(pb::Account::from(account.clone())), account);
    }

    #[test]
    fn unknown_roles_are_dropped_not_widened() {
        let mut message = pb::Account { id: "a-1".into(), ..Default::default() };
        message.roles = vec![pb::Role::Customer as i32, 0, 42];
        assert_eq!(wit::Account::from(message).roles, vec![Role::Customer]);
    }

    #[test]
    fn profile_patches_round_trip() {
        for default_address in [None, Some(None), Some(Some(address()))] {
            let patch = wit::ProfilePatch { display_name: Some("Ann B".into()), default_address };
            assert_eq!(profile_patch(update_profile_request(patch.clone())), patch);
        }
    }
}
