//! `customers`: the verified caller's account, from `AccountService.Me`
//! (with the caller's own token, so the account service applies its own
//! rules, session liveness included).

use polyscale_proto::account::v1 as pb;

use super::{SiblingsCtxView, domain_error};
use crate::bindings::order::polyscale::commerce::customers::{Customer, Host, PostalAddress};
use crate::bindings::types::DomainError;

impl Host for SiblingsCtxView<'_> {
    async fn current_customer(&mut self) -> wasmtime::Result<Result<Customer, DomainError>> {
        if self.call.bearer.is_none() {
            return Ok(Err(DomainError::Unauthenticated("the call has no signed-in caller".into())));
        }
        let request = match self.siblings.request(pb::MeRequest {}, self.call) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let mut client = self.siblings.account.clone();
        Ok(match client.me(request).await {
            Ok(response) => {
                let a = response.into_inner();
                Ok(Customer {
                    id: a.id,
                    email: a.email,
                    display_name: a.display_name,
                    default_address: a.default_address.map(address),
                })
            }
            Err(status) => Err(domain_error("account", &status)),
        })
    }
}

fn address(a: pb::Address) -> PostalAddress {
    PostalAddress {
        line1: a.line1,
        line2: a.line2,
        city: a.city,
        region: a.region,
        postal_code: a.postal_code,
        country: a.country,
    }
}
