//! `inventory`: stock reservations, from the product service's
//! `InventoryService` (which admits only the order service's token).

use polyscale_proto::product::v1 as pb;

use super::{SiblingsCtxView, domain_error};
use crate::bindings::order::polyscale::commerce::inventory::{
    Host, ReservationState, ReserveError, Shortage, StockLine,
};
use crate::bindings::types::DomainError;

impl Host for SiblingsCtxView<'_> {
    async fn reserve(
        &mut self,
        order_id: String,
        lines: Vec<StockLine>,
        expires_at_ms: i64,
    ) -> wasmtime::Result<Result<ReservationState, ReserveError>> {
        let lines =
            lines.into_iter().map(|l| pb::StockLine { product_id: l.product_id, quantity: l.quantity }).collect();
        let longest = self.call.now_ms.saturating_add(self.siblings.max_hold.as_millis() as i64);
        let expires_at_ms = expires_at_ms.min(longest);
        let request = match self.siblings.request(pb::ReserveRequest { order_id, lines, expires_at_ms }, self.call) {
            Ok(r) => r,
            Err(e) => return Ok(Err(ReserveError::Failed(e))),
        };
        let mut client = self.siblings.inventory.clone();
        let response = match client.reserve(request).await {
            Ok(r) => r.into_inner(),
            Err(status) => return Ok(Err(ReserveError::Failed(domain_error("product", &status)))),
        };
        if !response.shortages.is_empty() {
            let shortages = response
                .shortages
                .into_iter()
                .map(|s| Shortage { product_id: s.product_id, requested: s.requested, available: s.available })
                .collect();
            return Ok(Err(ReserveError::Insufficient(shortages)));
        }
        Ok(match crate::contracts::inventory::state_in(response.state) {
            Some(state) => Ok(state),
            None => {
                Err(ReserveError::Failed(DomainError::Internal("the product service sent no reservation state".into())))
            }
        })
    }

    async fn commit(&mut self, order_id: String) -> wasmtime::Result<Result<(), DomainError>> {
        let request = match self.siblings.request(pb::CommitReservationRequest { order_id }, self.call) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let mut client = self.siblings.inventory.clone();
        Ok(client.commit(request).await.map(|_| ()).map_err(|s| domain_error("product", &s)))
    }

    async fn release(&mut self, order_id: String) -> wasmtime::Result<Result<(), DomainError>> {
        let request = match self.siblings.request(pb::ReleaseReservationRequest { order_id }, self.call) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let mut client = self.siblings.inventory.clone();
        Ok(client.release(request).await.map(|_| ()).map_err(|s| domain_error("product", &s)))
    }
}
