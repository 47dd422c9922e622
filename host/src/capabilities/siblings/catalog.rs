//! `catalog`: products and prices by id, from `ProductService.GetProducts`.

use polyscale_proto::product::v1 as pb;

use super::{SiblingsCtxView, domain_error};
use crate::bindings::order::polyscale::commerce::catalog::{CatalogItem, Host};
use crate::bindings::types::{DomainError, Money};

/// Most ids one call may ask for (`GetProducts`' own limit).
const MAX_IDS: usize = 100;

impl Host for SiblingsCtxView<'_> {
    async fn get_items(&mut self, ids: Vec<String>) -> wasmtime::Result<Result<Vec<CatalogItem>, DomainError>> {
        if ids.len() > MAX_IDS {
            return Ok(Err(DomainError::Invalid(vec![crate::bindings::types::FieldError {
                field: "ids".into(),
                code: "TOO_MANY_IDS".into(),
                message: format!("at most {MAX_IDS} ids per call"),
            }])));
        }
        if ids.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let request = match self.siblings.request(pb::GetProductsRequest { ids }, self.call) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let mut client = self.siblings.product.clone();
        Ok(match client.get_products(request).await {
            Ok(response) => Ok(response.into_inner().products.into_iter().map(item).collect()),
            Err(status) => Err(domain_error("product", &status)),
        })
    }
}

fn item(p: pb::Product) -> CatalogItem {
    let price = p.price.unwrap_or_default();
    CatalogItem {
        id: p.id,
        merchant_id: p.merchant_id,
        name: p.name,
        price: Money { amount: price.amount, currency: price.currency },
        available: p.stock,
    }
}
