//! `InventoryService` messages ↔ the `inventory` WIT types: the product
//! world's exports (serving) and the order world's imports (calling).

use polyscale_proto::product::v1 as pb;

use crate::bindings::order::polyscale::commerce::inventory as imported;
use crate::bindings::product::exports::polyscale::commerce::inventory as exported;

pub fn lines_in(lines: Vec<pb::StockLine>) -> Vec<exported::StockLine> {
    lines.into_iter().map(|l| exported::StockLine { product_id: l.product_id, quantity: l.quantity }).collect()
}

pub fn state_out(state: exported::ReservationState) -> pb::ReservationState {
    match state {
        exported::ReservationState::Held => pb::ReservationState::Held,
        exported::ReservationState::Committed => pb::ReservationState::Committed,
        exported::ReservationState::Released => pb::ReservationState::Released,
    }
}

pub fn shortages_out(shortages: Vec<exported::Shortage>) -> Vec<pb::Shortage> {
    shortages
        .into_iter()
        .map(|s| pb::Shortage { product_id: s.product_id, requested: s.requested, available: s.available })
        .collect()
}

/// The state a `ReserveResponse` carries; none if unset or unknown.
pub fn state_in(state: i32) -> Option<imported::ReservationState> {
    match pb::ReservationState::try_from(state).ok()? {
        pb::ReservationState::Held => Some(imported::ReservationState::Held),
        pb::ReservationState::Committed => Some(imported::ReservationState::Committed),
        pb::ReservationState::Released => Some(imported::ReservationState::Released),
        pb::ReservationState::Unspecified => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for (out, back) in [
            (exported::ReservationState::Held, imported::ReservationState::Held),
            (exported::ReservationState::Committed, imported::ReservationState::Committed),
            (exported::ReservationState::Released, imported::ReservationState::Released),
        ] {
            assert_eq!(state_in(state_out(out) as i32), Some(back));
        }
        assert_eq!(state_in(0), None);
        assert_eq!(state_in(99), None);
    }
}
