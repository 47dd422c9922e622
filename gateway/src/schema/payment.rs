//! Payments of orders (`OrderService` payment methods): `Order.payments`
//! and the payment mutations. Refusals are `userErrors` with codes
//! (DECLINED, OVER_CAPTURE, OVER_REFUND, ORDER_CANCELLED, ...; see
//! docs/orders.md, Payments); a caller who may not act gets a top-level
//! FORBIDDEN.

use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use polyscale_proto::order::v1 as pb;

use super::money::{Money, MoneyInput};
use super::order::{Order, user_errors};
use super::product::timestamp;
use super::{clients, request_context};
use crate::errors::{self, Code, api_error};

/// Where a payment is.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum PaymentState {
    /// The provider is being asked.
    Authorizing,
    /// The payer must act first (see `nextStep`).
    RequiresAction,
    Authorized,
    PartiallyCaptured,
    Captured,
    PartiallyRefunded,
    Refunded,
    /// Cancelled before anything was captured.
    Voided,
    /// The required action failed.
    Failed,
}

impl PaymentState {
    fn from_pb(state: pb::PaymentState) -> Option<Self> {
        use pb::PaymentState as P;
        Some(match state {
            P::Unspecified => return None,
            P::Authorizing => Self::Authorizing,
            P::RequiresAction => Self::RequiresAction,
            P::Authorized => Self::Authorized,
            P::PartiallyCaptured => Self::PartiallyCaptured,
            P::Captured => Self::Captured,
            P::PartiallyRefunded => Self::PartiallyRefunded,
            P::Refunded => Self::Refunded,
            P::Voided => Self::Voided,
            P::Failed => Self::Failed,
        })
    }
}

/// One authorization of an order (or a payment an operator recorded),
/// with what was captured and refunded of it.
#[derive(Clone)]
pub struct Payment(pb::Payment);

fn money(m: &Option<polyscale_proto::types::v1::Money>) -> Money {
    m.clone().unwrap_or_default().into()
}

#[Object]
impl Payment {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn order_id(&self) -> ID {
        ID(self.0.order_id.clone())
    }
    /// `manual`, `test`, ...
    async fn provider(&self) -> &str {
        &self.0.provider
    }
    /// The provider's reference of the payment.
    async fn reference(&self) -> Option<&str> {
        self.0.reference.as_deref()
    }
    async fn status(&self) -> Result<PaymentState> {
        pb::PaymentState::try_from(self.0.state).ok().and_then(PaymentState::from_pb).ok_or_else(|| {
            tracing::error!(value = self.0.state, "the order service sent an unknown payment state");
            api_error(Code::InternalServerError, "internal error")
        })
    }
    async fn authorized(&self) -> Money {
        money(&self.0.authorized)
    }
    async fn captured(&self) -> Money {
        money(&self.0.captured)
    }
    async fn refunded(&self) -> Money {
        money(&self.0.refunded)
    }
    /// What the payer must do while `REQUIRES_ACTION` (a URL or an
    /// instruction).
    async fn next_step(&self) -> Option<&str> {
        self.0.next_step.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        timestamp(self.0.created_at_ms)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        timestamp(self.0.updated_at_ms)
    }
}

/// The payments of an order, for `Order.payments`.
pub async fn payments_of(ctx: &Context<'_>, order_id: &str) -> Result<Vec<Payment>> {
    let request = request_context(ctx)?;
    let clients = clients(ctx)?;
    let message = pb::ListPaymentsRequest { order_id: order_id.to_string() };
    let response = clients
        .order
        .clone()
        .list_payments(clients.request(message, request))
        .await
        .map_err(|s| errors::top_level(&s))?
        .into_inner();
    Ok(response.payments.into_iter().map(Payment).collect())
}

#[derive(SimpleObject, Default)]
pub struct PaymentPayload {
    payment: Option<Payment>,
    /// The order after the change.
    order: Option<Order>,
    user_errors: Vec<errors::UserError>,
}

fn path(field: &str) -> Vec<String> {
    field.split('.').map(str::to_string).collect()
}

fn payload(result: std::result::Result<tonic::Response<pb::PaymentAnswer>, tonic::Status>) -> Result<PaymentPayload> {
    match result {
        Ok(r) => {
            let answer = r.into_inner();
            Ok(PaymentPayload {
                payment: answer.payment.map(Payment),
                order: answer.order.map(Order::from_pb),
                user_errors: vec![],
            })
        }
        Err(status) => Ok(PaymentPayload { user_errors: user_errors(status, &path)?, ..Default::default() }),
    }
}

#[derive(Default)]
pub struct PaymentMutation;

#[Object]
impl PaymentMutation {
    /// Authorizes what is not yet authorized of an order's total: its
    /// customer or an admin, while the order is pending payment. `source`
    /// is a card number for the `test` provider (never stored). A declined
    /// payment is a `DECLINED` user error and changes nothing; a payment
    /// that needs the payer's action comes back `REQUIRES_ACTION` with a
    /// `nextStep`, and the provider's webhook completes it.
    async fn authorize_payment(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        provider: String,
        source: String,
    ) -> Result<PaymentPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = pb::AuthorizePaymentRequest { order_id: order_id.0, provider, source };
        payload(clients.order.clone().authorize_payment(clients.request(message, request)).await)
    }

    /// Admins: captures `amount` (default: all that is left) of an
    /// authorization. More than is left is `OVER_CAPTURE`.
    async fn capture_payment(
        &self,
        ctx: &Context<'_>,
        payment_id: ID,
        amount: Option<MoneyInput>,
    ) -> Result<PaymentPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = pb::CapturePaymentRequest { payment_id: payment_id.0, amount: amount.map(Into::into) };
        payload(clients.order.clone().capture_payment(clients.request(message, request)).await)
    }

    /// Admins: refunds `amount` (default: all captured and not refunded).
    /// More is `OVER_REFUND`.
    async fn refund_payment(
        &self,
        ctx: &Context<'_>,
        payment_id: ID,
        amount: Option<MoneyInput>,
    ) -> Result<PaymentPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = pb::RefundPaymentRequest { payment_id: payment_id.0, amount: amount.map(Into::into) };
        payload(clients.order.clone().refund_payment(clients.request(message, request)).await)
    }

    /// Admins: cancels an authorization nothing was captured from.
    async fn void_payment(&self, ctx: &Context<'_>, payment_id: ID) -> Result<PaymentPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = pb::VoidPaymentRequest { payment_id: payment_id.0 };
        payload(clients.order.clone().void_payment(clients.request(message, request)).await)
    }

    /// Admins: records money received outside any provider (a bank
    /// transfer, cash on delivery) as a captured `manual` payment.
    async fn record_manual_payment(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        amount: MoneyInput,
        reference: String,
    ) -> Result<PaymentPayload> {
        let request = request_context(ctx)?;
        request.caller()?;
        let clients = clients(ctx)?;
        let message = pb::RecordManualPaymentRequest { order_id: order_id.0, amount: Some(amount.into()), reference };
        payload(clients.order.clone().record_manual_payment(clients.request(message, request)).await)
    }
}
