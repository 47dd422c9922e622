//! Order and payment statuses as stored (`orders.status`,
//! `orders.payment_status`), in one place. The columns are plain text so
//! statuses added later (payments, refunds) need no migration.

use polyscale_guest::bindings::types::DomainError;

use crate::bindings::exports::polyscale::commerce::orders::{OrderStatus, PaymentStatus};

pub fn order_status_text(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::PendingPayment => "pending-payment",
        OrderStatus::Paid => "paid",
        OrderStatus::PartiallyFulfilled => "partially-fulfilled",
        OrderStatus::Fulfilled => "fulfilled",
        OrderStatus::Delivered => "delivered",
        OrderStatus::Cancelled => "cancelled",
        OrderStatus::Refunded => "refunded",
        OrderStatus::PartiallyRefunded => "partially-refunded",
    }
}

pub fn order_status(text: &str) -> Result<OrderStatus, DomainError> {
    Ok(match text {
        "pending-payment" => OrderStatus::PendingPayment,
        "paid" => OrderStatus::Paid,
        "partially-fulfilled" => OrderStatus::PartiallyFulfilled,
        "fulfilled" => OrderStatus::Fulfilled,
        "delivered" => OrderStatus::Delivered,
        "cancelled" => OrderStatus::Cancelled,
        "refunded" => OrderStatus::Refunded,
        "partially-refunded" => OrderStatus::PartiallyRefunded,
        other => return Err(DomainError::Internal(format!("unknown order status `{other}`"))),
    })
}

pub fn payment_status(text: &str) -> Result<PaymentStatus, DomainError> {
    Ok(match text {
        "none" => PaymentStatus::None,
        "partial" => PaymentStatus::Partial,
        "full" => PaymentStatus::Full,
        "over" => PaymentStatus::Over,
        other => return Err(DomainError::Internal(format!("unknown payment status `{other}`"))),
    })
}

pub const PAYMENT_NONE: &str = "none";

/// `orders.stock_state`: where the order's stock reservation is.
pub mod stock {
    /// Reserved but not yet committed: the upkeep commits it.
    pub const RESERVED: &str = "reserved";
    /// Committed: the order holds its units.
    pub const COMMITTED: &str = "committed";
    /// Given back (cancelled order).
    pub const RELEASED: &str = "released";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_statuses_round_trip() {
        for s in [
            OrderStatus::PendingPayment,
            OrderStatus::Paid,
            OrderStatus::PartiallyFulfilled,
            OrderStatus::Fulfilled,
            OrderStatus::Delivered,
            OrderStatus::Cancelled,
            OrderStatus::Refunded,
            OrderStatus::PartiallyRefunded,
        ] {
            assert!(order_status(order_status_text(s)).unwrap() == s);
        }
        assert!(order_status("shipped").is_err());
    }
}
