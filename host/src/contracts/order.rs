//! Protobuf ↔ WIT conversions for the order service, in one place.

use polyscale_proto::account::v1 as account_pb;
use polyscale_proto::order::v1 as pb;
use polyscale_proto::types::v1 as types_pb;

use crate::bindings::order::exports::polyscale::commerce::order_payments as wit_pay;
use crate::bindings::order::exports::polyscale::commerce::orders as wit;
use crate::bindings::order::polyscale::commerce::customers::PostalAddress;
use crate::bindings::types::Money;

fn money(m: Money) -> Option<types_pb::Money> {
    Some(types_pb::Money { amount: m.amount, currency: m.currency })
}

pub fn address_out(a: PostalAddress) -> account_pb::Address {
    account_pb::Address {
        line1: a.line1,
        line2: a.line2,
        city: a.city,
        region: a.region,
        postal_code: a.postal_code,
        country: a.country,
    }
}

pub fn address_in(a: account_pb::Address) -> PostalAddress {
    PostalAddress {
        line1: a.line1,
        line2: a.line2,
        city: a.city,
        region: a.region,
        postal_code: a.postal_code,
        country: a.country,
    }
}

pub fn cart_ref(guest_token: Option<String>) -> wit::CartRef {
    wit::CartRef { guest_token }
}

impl From<wit::CartAnswer> for pb::CartAnswer {
    fn from(a: wit::CartAnswer) -> Self {
        let c = a.cart;
        pb::CartAnswer {
            cart: Some(pb::Cart {
                id: c.id,
                lines: c
                    .lines
                    .into_iter()
                    .map(|l| pb::CartLine {
                        product_id: l.product_id,
                        merchant_id: l.merchant_id,
                        name: l.name,
                        quantity: l.quantity,
                        unit_price: money(l.unit_price),
                        line_total: money(l.line_total),
                        previous_unit_price: l.previous_unit_price.and_then(money),
                        available: l.available,
                        purchasable: l.purchasable,
                        discount: money(l.discount),
                        notes: l.notes,
                    })
                    .collect(),
                totals: c.totals.into_iter().filter_map(money).collect(),
                item_count: c.item_count,
                updated_at_ms: c.updated_at_ms,
                issues: c
                    .issues
                    .into_iter()
                    .map(|i| pb::CartIssue {
                        merchant_id: i.merchant_id,
                        code: i.code,
                        message: i.message,
                        field: i.field,
                        blocking: i.blocking,
                    })
                    .collect(),
            }),
            guest_token: a.guest_token,
        }
    }
}

pub fn status_out(s: wit::OrderStatus) -> pb::OrderStatus {
    use wit::OrderStatus as S;
    match s {
        S::PendingPayment => pb::OrderStatus::PendingPayment,
        S::Paid => pb::OrderStatus::Paid,
        S::PartiallyFulfilled => pb::OrderStatus::PartiallyFulfilled,
        S::Fulfilled => pb::OrderStatus::Fulfilled,
        S::Delivered => pb::OrderStatus::Delivered,
        S::Cancelled => pb::OrderStatus::Cancelled,
        S::Refunded => pb::OrderStatus::Refunded,
        S::PartiallyRefunded => pb::OrderStatus::PartiallyRefunded,
    }
}

/// None for UNSPECIFIED or unknown numbers.
pub fn status_in(s: i32) -> Option<wit::OrderStatus> {
    use wit::OrderStatus as S;
    Some(match pb::OrderStatus::try_from(s).ok()? {
        pb::OrderStatus::Unspecified => return None,
        pb::OrderStatus::PendingPayment => S::PendingPayment,
        pb::OrderStatus::Paid => S::Paid,
        pb::OrderStatus::PartiallyFulfilled => S::PartiallyFulfilled,
        pb::OrderStatus::Fulfilled => S::Fulfilled,
        pb::OrderStatus::Delivered => S::Delivered,
        pb::OrderStatus::Cancelled => S::Cancelled,
        pb::OrderStatus::Refunded => S::Refunded,
        pb::OrderStatus::PartiallyRefunded => S::PartiallyRefunded,
    })
}

fn payment_status_out(s: wit::PaymentStatus) -> pb::PaymentStatus {
    match s {
        wit::PaymentStatus::None => pb::PaymentStatus::None,
        wit::PaymentStatus::Partial => pb::PaymentStatus::Partial,
        wit::PaymentStatus::Full => pb::PaymentStatus::Full,
        wit::PaymentStatus::Over => pb::PaymentStatus::Over,
    }
}

pub fn view_in(v: i32) -> Option<wit::OrderView> {
    match pb::OrderView::try_from(v).ok()? {
        pb::OrderView::Unspecified => None,
        pb::OrderView::Purchases => Some(wit::OrderView::Purchases),
        pb::OrderView::Sales => Some(wit::OrderView::Sales),
        pb::OrderView::All => Some(wit::OrderView::All),
    }
}

impl From<wit::Order> for pb::Order {
    fn from(o: wit::Order) -> Self {
        pb::Order {
            id: o.id,
            customer_id: o.customer_id,
            status: status_out(o.status) as i32,
            payment_status: payment_status_out(o.payment_status) as i32,
            lines: o
                .lines
                .into_iter()
                .map(|l| pb::OrderLine {
                    id: l.id,
                    product_id: l.product_id,
                    merchant_id: l.merchant_id,
                    name: l.name,
                    quantity: l.quantity,
                    unit_price: money(l.unit_price),
                    line_total: money(l.line_total),
                    fulfilled_quantity: l.fulfilled_quantity,
                    discount: money(l.discount),
                    notes: l.notes,
                })
                .collect(),
            total: money(o.total),
            paid: money(o.paid),
            shipping_address: o.shipping_address.map(address_out),
            placed_at_ms: o.placed_at_ms,
            updated_at_ms: o.updated_at_ms,
        }
    }
}

impl From<wit::OrderPage> for pb::ListOrdersResponse {
    fn from(p: wit::OrderPage) -> Self {
        pb::ListOrdersResponse {
            edges: p.edges.into_iter().map(|e| pb::OrderEdge { cursor: e.cursor, node: Some(e.node.into()) }).collect(),
            has_next_page: p.has_next_page,
        }
    }
}

pub fn place_order(r: pb::PlaceOrderRequest) -> wit::PlaceOrderInput {
    wit::PlaceOrderInput { idempotency_key: r.idempotency_key, shipping_address: r.shipping_address.map(address_in) }
}

pub fn order_filter(status: Option<i32>, view: i32) -> wit::OrderFilter {
    wit::OrderFilter { status: status.and_then(status_in), view: view_in(view) }
}

pub fn fulfillment(lines: Vec<pb::FulfillmentLine>) -> Vec<wit::FulfillmentLine> {
    lines.into_iter().map(|l| wit::FulfillmentLine { line_id: l.line_id, quantity: l.quantity }).collect()
}

pub fn money_in(m: types_pb::Money) -> Money {
    Money { amount: m.amount, currency: m.currency }
}

pub fn payment_state_out(s: wit_pay::PaymentState) -> pb::PaymentState {
    use wit_pay::PaymentState as S;
    match s {
        S::Authorizing => pb::PaymentState::Authorizing,
        S::RequiresAction => pb::PaymentState::RequiresAction,
        S::Authorized => pb::PaymentState::Authorized,
        S::PartiallyCaptured => pb::PaymentState::PartiallyCaptured,
        S::Captured => pb::PaymentState::Captured,
        S::PartiallyRefunded => pb::PaymentState::PartiallyRefunded,
        S::Refunded => pb::PaymentState::Refunded,
        S::Voided => pb::PaymentState::Voided,
        S::Failed => pb::PaymentState::Failed,
    }
}

impl From<wit_pay::Payment> for pb::Payment {
    fn from(p: wit_pay::Payment) -> Self {
        pb::Payment {
            id: p.id,
            order_id: p.order_id,
            provider: p.provider,
            reference: p.reference,
            state: payment_state_out(p.state) as i32,
            authorized: money(p.authorized),
            captured: money(p.captured),
            refunded: money(p.refunded),
            next_step: p.next_step,
            created_at_ms: p.created_at_ms,
            updated_at_ms: p.updated_at_ms,
        }
    }
}

impl From<wit_pay::PaymentAnswer> for pb::PaymentAnswer {
    fn from(a: wit_pay::PaymentAnswer) -> Self {
        pb::PaymentAnswer { payment: Some(a.payment.into()), order: Some(a.order.into()) }
    }
}

/// A verified provider event, as the component takes it.
pub fn payment_event(provider: &str, e: crate::capabilities::payments::PaymentEvent) -> wit_pay::PaymentEvent {
    use crate::capabilities::payments::EventKind;
    wit_pay::PaymentEvent {
        provider: provider.to_string(),
        event_id: e.event_id,
        kind: match e.kind {
            EventKind::Authorized => wit_pay::PaymentEventKind::Authorized,
            EventKind::Captured => wit_pay::PaymentEventKind::Captured,
            EventKind::Failed => wit_pay::PaymentEventKind::Failed,
            EventKind::Refunded => wit_pay::PaymentEventKind::Refunded,
        },
        reference: e.reference,
        amount: e.amount.map(|a| Money { amount: a.minor, currency: a.currency }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        use wit::OrderStatus as S;
        for s in [
            S::PendingPayment,
            S::Paid,
            S::PartiallyFulfilled,
            S::Fulfilled,
            S::Delivered,
            S::Cancelled,
            S::Refunded,
            S::PartiallyRefunded,
        ] {
            assert_eq!(status_in(status_out(s) as i32), Some(s));
        }
        assert_eq!(status_in(0), None);
        assert_eq!(view_in(pb::OrderView::Sales as i32), Some(wit::OrderView::Sales));
        assert_eq!(view_in(0), None);
    }
}
