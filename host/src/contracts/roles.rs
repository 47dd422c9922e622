//! `Role`: the WIT enum (components, the call context), the access-token
//! claim (`polyscale_auth::Role`) and the protobuf enum, mapped in one
//! place.

use polyscale_proto::account::v1 as pb;

use crate::bindings::context::Role;

impl From<polyscale_auth::Role> for Role {
    fn from(r: polyscale_auth::Role) -> Self {
        match r {
            polyscale_auth::Role::Customer => Role::Customer,
            polyscale_auth::Role::Merchant => Role::Merchant,
            polyscale_auth::Role::Admin => Role::Admin,
        }
    }
}

impl From<Role> for polyscale_auth::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Customer => polyscale_auth::Role::Customer,
            Role::Merchant => polyscale_auth::Role::Merchant,
            Role::Admin => polyscale_auth::Role::Admin,
        }
    }
}

impl From<Role> for pb::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Customer => pb::Role::Customer,
            Role::Merchant => pb::Role::Merchant,
            Role::Admin => pb::Role::Admin,
        }
    }
}

/// A protobuf role; `None` for `ROLE_UNSPECIFIED` or a number this build
/// does not know.
pub fn from_pb(role: i32) -> Option<Role> {
    match pb::Role::try_from(role).ok()? {
        pb::Role::Customer => Some(Role::Customer),
        pb::Role::Merchant => Some(Role::Merchant),
        pb::Role::Admin => Some(Role::Admin),
        pb::Role::Unspecified => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Role; 3] = [Role::Customer, Role::Merchant, Role::Admin];

    #[test]
    fn roles_round_trip_through_tokens_and_protobuf() {
        for role in ALL {
            assert_eq!(Role::from(polyscale_auth::Role::from(role)), role);
            assert_eq!(from_pb(pb::Role::from(role) as i32), Some(role));
        }
        assert_eq!(from_pb(pb::Role::Unspecified as i32), None);
        assert_eq!(from_pb(99), None);
    }
}
