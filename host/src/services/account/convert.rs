//! Protobuf ↔ WIT conversions for the account service, in one place.

use polyscale_proto::account::v1 as pb;

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
