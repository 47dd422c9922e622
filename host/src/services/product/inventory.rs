//! `InventoryService` over gRPC, served by the product component's
//! `inventory` export, and the sweeper that returns the stock of expired
//! reservations.
//!
//! Only the order service may reserve, commit or release stock: every call
//! must carry its service token ([`polyscale_auth::ORDER_SERVICE_SUBJECT`]),
//! checked here, before the component runs. A customer's token is not
//! enough, nor is the gateway's.

use std::sync::Arc;
use std::time::Duration;

use polyscale_auth::ORDER_SERVICE_SUBJECT;
use polyscale_proto::product::v1 as pb;
use polyscale_proto::product::v1::inventory_service_server::InventoryService;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::ProductSlot;
use crate::bindings::product::exports::polyscale::commerce::inventory::ReserveError;
use crate::call::CallInfo;
use crate::contracts::inventory as contract;
use crate::services::{Authenticator, call_domain, respond, status};

pub struct InventoryApi {
    slot: Arc<ProductSlot>,
    auth: Authenticator,
}

impl InventoryApi {
    pub fn new(slot: Arc<ProductSlot>, auth: Authenticator) -> Self {
        Self { slot, auth }
    }

    /// The call's facts, if it comes from the order service.
    async fn order_service_call<T>(&self, request: &Request<T>) -> Result<(CallInfo, Option<Duration>), Status> {
        let (info, timeout) = self.auth.call_info(request).await?;
        if info.service.as_deref() != Some(ORDER_SERVICE_SUBJECT) {
            tracing::warn!(request_id = %info.request_id, service = ?info.service, "inventory call refused: not the order service");
            return Err(status::forbidden("only the order service may change stock reservations"));
        }
        Ok((info, timeout))
    }
}

#[tonic::async_trait]
impl InventoryService for InventoryApi {
    async fn reserve(&self, request: Request<pb::ReserveRequest>) -> Result<Response<pb::ReserveResponse>, Status> {
        let (info, timeout) = self.order_service_call(&request).await?;
        let pb::ReserveRequest { order_id, lines, expires_at_ms } = request.into_inner();
        let lines = contract::lines_in(lines);
        let request_id = info.request_id.clone();
        let served = self
            .slot
            .call(info, timeout, move |e, s| {
                Box::pin(async move {
                    e.polyscale_commerce_inventory().call_reserve(s, &order_id, &lines, expires_at_ms).await
                })
            })
            .await
            .map_err(|e| status::call_error(e, &request_id))?;
        let response = match served.value {
            Ok(state) => pb::ReserveResponse { state: contract::state_out(state) as i32, shortages: vec![] },
            Err(ReserveError::Insufficient(shortages)) => {
                pb::ReserveResponse { state: 0, shortages: contract::shortages_out(shortages) }
            }
            Err(ReserveError::Failed(e)) => return Err(status::domain_error(e, &request_id)),
        };
        Ok(respond(response, &served.version))
    }

    async fn commit(
        &self,
        request: Request<pb::CommitReservationRequest>,
    ) -> Result<Response<pb::CommitReservationResponse>, Status> {
        let (info, timeout) = self.order_service_call(&request).await?;
        let order_id = request.into_inner().order_id;
        let served = call_domain(&self.slot, info, timeout, move |e, s| {
            Box::pin(async move { e.polyscale_commerce_inventory().call_commit(s, &order_id).await })
        })
        .await?;
        Ok(respond(pb::CommitReservationResponse {}, &served.version))
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseReservationRequest>,
    ) -> Result<Response<pb::ReleaseReservationResponse>, Status> {
        let (info, timeout) = self.order_service_call(&request).await?;
        let order_id = request.into_inner().order_id;
        let served = call_domain(&self.slot, info, timeout, move |e, s| {
            Box::pin(async move { e.polyscale_commerce_inventory().call_release(s, &order_id).await })
        })
        .await?;
        Ok(respond(pb::ReleaseReservationResponse {}, &served.version))
    }
}

/// Reservations one sweep call releases at most.
const SWEEP_BATCH: u32 = 200;

/// Every `interval`, releases the held reservations whose expiry has
/// passed (placements that crashed before writing their order), until
/// `stop`.
pub fn spawn_reservation_sweeper(slot: Arc<ProductSlot>, interval: Duration, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            loop {
                let info = CallInfo::new(format!("reservation-sweep-{}", uuid::Uuid::now_v7()), None);
                let result = slot
                    .call(info, None, |e, s| {
                        Box::pin(async move {
                            e.polyscale_commerce_inventory_upkeep().call_release_expired(s, SWEEP_BATCH).await
                        })
                    })
                    .await;
                match result.map(|served| served.value) {
                    Ok(Ok(released)) => {
                        if released > 0 {
                            tracing::info!(released, "expired stock reservations released");
                        }
                        if released < SWEEP_BATCH {
                            break;
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = ?e, "releasing expired reservations failed");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "releasing expired reservations failed");
                        break;
                    }
                }
            }
        }
    });
}
