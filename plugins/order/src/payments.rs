//! Payments of orders (`order-payments`): authorize, capture, refund,
//! void, manual payments, and provider events from verified webhooks.
//!
//! The component never holds a provider key: it asks the host's `payments`
//! capability by provider name, and the host verifies webhooks before
//! `apply-payment-event` is called.
//!
//! **Amounts add up.** Each payment has `authorized ≥ captured ≥ refunded
//! ≥ 0` (minor units, in the order's currency). Every change is claimed
//! first with one conditional `UPDATE` (`… WHERE captured_amount + $a <=
//! authorized_amount`), in a transaction that also settles the order, and
//! only then is the provider asked; if the provider refuses, the claim is
//! undone. So concurrent captures (or refunds) cannot together exceed the
//! authorization (or the capture): the database checks the sum, on
//! PostgreSQL (row lock, re-checked after the wait) and SQLite (one
//! writer) alike, and CHECK constraints back the rule up.
//!
//! Rules and codes (all `invalid` with a field, unless said otherwise):
//! - authorize (the order's customer or an admin): only an order that is
//!   `pending-payment`; a cancelled one is ORDER_CANCELLED, any other
//!   INVALID_TRANSITION. The amount is what is not yet authorized of the
//!   total (ALREADY_AUTHORIZED when nothing is left), in the order's
//!   currency. A declined payment is DECLINED on `source` and nothing is
//!   kept; an unknown provider UNKNOWN_PROVIDER on `provider`. The card
//!   number (`source`) is passed to the host and never stored.
//! - capture (admins): at most `authorized − captured` (OVER_CAPTURE on
//!   `amount.amount`), from `authorized` or `partially-captured`.
//! - refund (admins): at most `captured − refunded` (OVER_REFUND); a
//!   payment with nothing captured is INVALID_TRANSITION. A refund closes
//!   what is left of the authorization (no capture after a refund).
//! - void (admins): an `authorized` payment nothing was captured from.
//! - record a manual payment (admins): a captured `manual` payment on any
//!   order but a cancelled one (ORDER_CANCELLED); it may overpay (`over`).
//! - amounts: ≥ 1 (INVALID_AMOUNT), the payment's currency
//!   (CURRENCY_MISMATCH on `amount.currency`).
//!
//! **The order follows its payments** ([`settle`]): `paid` = Σ captured −
//! Σ refunded; `payment-status` none / partial / full / over by `paid`
//! against the total; `pending-payment` becomes `paid` once fully paid;
//! refunds that leave less than the total move a paid (or fulfilled)
//! order to `partially-refunded`, or `refunded` when nothing is left.
//!
//! **Events** are applied once per (provider, event id): the event is
//! recorded in `payment_events` in the transaction that applies it, and a
//! second delivery finds it there and changes nothing. `captured` and
//! `refunded` carry the provider's running total, so an event echoing a
//! capture PolyScale made itself changes nothing either.

use polyscale_guest::bindings::types::{DomainError, Money};
use polyscale_guest::sql::{self, Row, RowsExt, Transaction};
use polyscale_guest::{CallContext, CallerExt, Invalid, call_context, ids, log, params};

use crate::bindings::exports::polyscale::commerce::order_payments::{
    Payment, PaymentAnswer, PaymentEvent, PaymentEventKind, PaymentState,
};
use crate::bindings::exports::polyscale::commerce::orders::OrderStatus;
use crate::bindings::polyscale::commerce::payments::{self as provider, AuthorizeOutcome, PaymentError};
use crate::status::{order_status, order_status_text};
use crate::support::{money, signed_in};
use crate::views::{self, Sight, StoredOrder};

/// An `authorizing` payment older than this no longer counts as
/// authorized (its call crashed between the claim and the answer).
pub const AUTHORIZING_LEASE_MS: i64 = 60_000;
/// Longest provider name, source and manual reference.
const MAX_PROVIDER_LEN: usize = 32;
const MAX_SOURCE_LEN: usize = 256;
const MAX_REFERENCE_LEN: usize = 200;
/// The provider of payments an operator records.
pub const MANUAL: &str = "manual";

const PAYMENT_COLUMNS: &str = "id, order_id, provider, reference, state, currency, authorized_amount, \
     captured_amount, refunded_amount, next_step, created_at_ms, updated_at_ms";

pub fn state_text(state: PaymentState) -> &'static str {
    match state {
        PaymentState::Authorizing => "authorizing",
        PaymentState::RequiresAction => "requires-action",
        PaymentState::Authorized => "authorized",
        PaymentState::PartiallyCaptured => "partially-captured",
        PaymentState::Captured => "captured",
        PaymentState::PartiallyRefunded => "partially-refunded",
        PaymentState::Refunded => "refunded",
        PaymentState::Voided => "voided",
        PaymentState::Failed => "failed",
    }
}

fn state_of(text: &str) -> Result<PaymentState, DomainError> {
    Ok(match text {
        "authorizing" => PaymentState::Authorizing,
        "requires-action" => PaymentState::RequiresAction,
        "authorized" => PaymentState::Authorized,
        "partially-captured" => PaymentState::PartiallyCaptured,
        "captured" => PaymentState::Captured,
        "partially-refunded" => PaymentState::PartiallyRefunded,
        "refunded" => PaymentState::Refunded,
        "voided" => PaymentState::Voided,
        "failed" => PaymentState::Failed,
        other => return Err(DomainError::Internal(format!("unknown payment state `{other}`"))),
    })
}

fn event_kind_text(kind: PaymentEventKind) -> &'static str {
    match kind {
        PaymentEventKind::Authorized => "authorized",
        PaymentEventKind::Captured => "captured",
        PaymentEventKind::Failed => "failed",
        PaymentEventKind::Refunded => "refunded",
    }
}

/// A payment row.
struct Stored {
    payment: Payment,
    currency: String,
}

impl Stored {
    fn authorized(&self) -> i64 {
        self.payment.authorized.amount
    }
    fn captured(&self) -> i64 {
        self.payment.captured.amount
    }
    fn refunded(&self) -> i64 {
        self.payment.refunded.amount
    }
    fn reference(&self) -> Result<&str, DomainError> {
        self.payment
            .reference
            .as_deref()
            .ok_or_else(|| DomainError::Conflict("the payment has no reference yet".into()))
    }
}

fn payment_row(row: Row<'_>) -> Result<Stored, DomainError> {
    let currency = row.text("currency")?;
    Ok(Stored {
        payment: Payment {
            id: row.text("id")?,
            order_id: row.text("order_id")?,
            provider: row.text("provider")?,
            reference: row.opt_text("reference")?,
            state: state_of(&row.text("state")?)?,
            authorized: money(row.int("authorized_amount")?, &currency),
            captured: money(row.int("captured_amount")?, &currency),
            refunded: money(row.int("refunded_amount")?, &currency),
            next_step: row.opt_text("next_step")?,
            created_at_ms: row.int("created_at_ms")?,
            updated_at_ms: row.int("updated_at_ms")?,
        },
        currency,
    })
}

fn load_payment(id: &str) -> Result<Option<Stored>, DomainError> {
    sql::query(&format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"), &params![id])?
        .first_row()
        .map(payment_row)
        .transpose()
}

fn payment_not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("no payment with id {id}"))
}

/// The order's answer after a change, with the payment as it is now.
fn answer(ctx: &CallContext, payment_id: &str) -> Result<PaymentAnswer, DomainError> {
    let payment = load_payment(payment_id)?.ok_or_else(|| payment_not_found(payment_id))?;
    let (order, sight) = views::visible(ctx, &payment.payment.order_id)?;
    Ok(PaymentAnswer { payment: payment.payment, order: views::present(order, &sight)? })
}

/// The payment `id` for an admin action. Non-admins get `forbidden` when
/// they see the payment's order, else `not-found`.
fn for_admin(ctx: &CallContext, id: &str, verb: &str) -> Result<Stored, DomainError> {
    let caller = signed_in(ctx, "manage payments")?;
    let id = ids::parse_id("paymentId", id).map_err(|_| payment_not_found(id))?;
    let payment = load_payment(&id)?.ok_or_else(|| payment_not_found(&id))?;
    if ctx.caller.is_admin() {
        return Ok(payment);
    }
    let order = views::load(&payment.payment.order_id)?;
    match order.as_ref().and_then(|o| views::sight(caller, o)) {
        Some(_) => Err(DomainError::Forbidden(format!("only admins may {verb} payments"))),
        None => Err(payment_not_found(&id)),
    }
}

/// The amount asked for, checked against the payment's currency; `None`
/// takes `default`.
fn amount(requested: Option<Money>, currency: &str, default: i64) -> Result<i64, DomainError> {
    let Some(m) = requested else { return Ok(default) };
    if m.currency != currency {
        return Err(DomainError::invalid(
            "amount.currency",
            "CURRENCY_MISMATCH",
            format!("the payment is in {currency}, not {}", m.currency),
        ));
    }
    if m.amount < 1 {
        return Err(DomainError::invalid("amount.amount", "INVALID_AMOUNT", "the amount must be at least 1"));
    }
    Ok(m.amount)
}

fn transition_refused(verb: &str, state: PaymentState) -> DomainError {
    DomainError::invalid(
        "paymentId",
        "INVALID_TRANSITION",
        format!("cannot {verb} a payment that is {}", state_text(state)),
    )
}

/// A provider's refusal as the caller sees it.
fn provider_error(e: PaymentError, field: &str) -> DomainError {
    match e {
        PaymentError::Declined(reason) => DomainError::invalid(field, "DECLINED", format!("declined: {reason}")),
        PaymentError::UnknownProvider(name) => {
            DomainError::invalid("provider", "UNKNOWN_PROVIDER", format!("no payment provider `{name}`"))
        }
        PaymentError::Invalid(reason) => DomainError::invalid(field, "PAYMENT_REJECTED", reason),
        PaymentError::Unavailable(reason) => {
            DomainError::Unavailable(format!("payment provider unavailable: {reason}"))
        }
    }
}

/// Recomputes the order's `paid_amount`, `payment_status` and status from
/// its payments, inside `tx` (see the module docs).
fn settle(tx: &Transaction, order_id: &str, now_ms: i64) -> Result<(), DomainError> {
    let rows = tx.query("SELECT status, total_amount FROM orders WHERE id = $1", &params![order_id])?;
    let row = rows.first_row().ok_or_else(|| views::not_found(order_id))?;
    let status = order_status(&row.text("status")?)?;
    let total = row.int("total_amount")?;
    let sums = tx.query(
        "SELECT CAST(COALESCE(SUM(captured_amount), 0) AS BIGINT) AS captured, \
         CAST(COALESCE(SUM(refunded_amount), 0) AS BIGINT) AS refunded FROM payments WHERE order_id = $1",
        &params![order_id],
    )?;
    let sums = sums.first_row().ok_or_else(|| DomainError::Internal("no sums".into()))?;
    let (captured, refunded) = (sums.int("captured")?, sums.int("refunded")?);
    let net = captured - refunded;
    let (payment_status, to) = follow(status, total, net, refunded);
    tx.execute(
        "UPDATE orders SET status = $2, payment_status = $3, paid_amount = $4, updated_at_ms = $5 WHERE id = $1",
        &params![order_id, order_status_text(to), payment_status, net, now_ms],
    )?;
    Ok(())
}

/// The payment status and the order status an order in `status` with
/// `total` takes when `net` is paid and `refunded` was refunded.
pub fn follow(status: OrderStatus, total: i64, net: i64, refunded: i64) -> (&'static str, OrderStatus) {
    let payment_status = if net <= 0 {
        "none"
    } else if net < total {
        "partial"
    } else if net == total {
        "full"
    } else {
        "over"
    };
    let fully = net >= total && net > 0;
    let to = match status {
        OrderStatus::Cancelled => OrderStatus::Cancelled,
        OrderStatus::PendingPayment if fully => OrderStatus::Paid,
        OrderStatus::PendingPayment => OrderStatus::PendingPayment,
        _ if refunded > 0 && !fully => {
            if net <= 0 {
                OrderStatus::Refunded
            } else {
                OrderStatus::PartiallyRefunded
            }
        }
        // A capture undone after the provider refused it.
        OrderStatus::Paid if !fully => OrderStatus::PendingPayment,
        // A refund undone after the provider refused it.
        OrderStatus::PartiallyRefunded | OrderStatus::Refunded => OrderStatus::Paid,
        other => other,
    };
    (payment_status, to)
}

fn check_provider_name(name: &str) -> Result<(), DomainError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_PROVIDER_LEN
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(DomainError::invalid("provider", "UNKNOWN_PROVIDER", "not a payment provider name")) }
}

fn printable(text: &str, max: usize) -> bool {
    !text.is_empty() && text.chars().count() <= max && !text.chars().any(char::is_control)
}

/// Refuses payment of an order in a status that cannot be paid.
fn payable(order: &StoredOrder, verb: &str) -> Result<(), DomainError> {
    match order.status {
        OrderStatus::PendingPayment => Ok(()),
        OrderStatus::Cancelled => {
            Err(DomainError::invalid("orderId", "ORDER_CANCELLED", format!("cannot {verb} a cancelled order")))
        }
        other => Err(DomainError::invalid(
            "orderId",
            "INVALID_TRANSITION",
            format!("cannot {verb} an order that is {}", order_status_text(other)),
        )),
    }
}

pub fn authorize_payment(
    order_id: String,
    provider_name: String,
    source: String,
) -> Result<PaymentAnswer, DomainError> {
    let ctx = call_context();
    let caller = signed_in(&ctx, "pay for orders")?;
    let (order, _) = views::visible(&ctx, &order_id)?;
    if order.customer_id != caller.account_id && !ctx.caller.is_admin() {
        return Err(DomainError::Forbidden("only the customer or an admin may pay for an order".into()));
    }
    check_provider_name(&provider_name)?;
    if !printable(&source, MAX_SOURCE_LEN) {
        return Err(DomainError::invalid(
            "source",
            "INVALID_SOURCE",
            format!("the payment source must be 1 to {MAX_SOURCE_LEN} printable characters"),
        ));
    }
    payable(&order, "pay for")?;

    // Claim what is left to authorize: the order row is locked first, so
    // two authorizations of one order take turns and never both claim it.
    // Open authorizations count whole; closed ones (captured, refunded)
    // count what they kept.
    let payment_id = ids::new_id();
    let now = ctx.now_ms;
    let tx = sql::begin()?;
    let locked = tx.execute(
        "UPDATE orders SET updated_at_ms = $2 WHERE id = $1 AND status = 'pending-payment'",
        &params![&order.id, now],
    )?;
    if locked == 0 {
        drop(tx);
        let (order, _) = views::visible(&ctx, &order.id)?;
        payable(&order, "pay for")?;
        return Err(DomainError::Conflict("the order changed concurrently; retry".into()));
    }
    let live = tx.query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN state IN ('captured', 'partially-refunded', 'refunded') \
         THEN captured_amount - refunded_amount ELSE authorized_amount END), 0) AS BIGINT) AS n FROM payments \
         WHERE order_id = $1 AND (state IN ('requires-action', 'authorized', 'partially-captured', 'captured', \
         'partially-refunded', 'refunded') OR (state = 'authorizing' AND updated_at_ms > $2))",
        &params![&order.id, now - AUTHORIZING_LEASE_MS],
    )?;
    let live = live.first_row().map(|r| r.int("n")).transpose()?.unwrap_or(0);
    let open = order.total_amount - live;
    if open <= 0 {
        return Err(DomainError::invalid("orderId", "ALREADY_AUTHORIZED", "the order's total is already authorized"));
    }
    tx.execute(
        "INSERT INTO payments (id, order_id, provider, reference, state, currency, authorized_amount, \
         created_at_ms, updated_at_ms) VALUES ($1, $2, $3, NULL, 'authorizing', $4, $5, $6, $6)",
        &params![&payment_id, &order.id, &provider_name, &order.currency, open, now],
    )?;
    Transaction::commit(tx)?;

    let outcome = provider::authorize(&provider_name, &order.id, &money(open, &order.currency), &source, &payment_id);
    let forget = || sql::execute("DELETE FROM payments WHERE id = $1 AND state = 'authorizing'", &params![&payment_id]);
    match outcome {
        Ok(AuthorizeOutcome::Succeeded(reference)) => {
            sql::execute(
                "UPDATE payments SET state = 'authorized', reference = $2, updated_at_ms = $3 \
                 WHERE id = $1 AND state = 'authorizing'",
                &params![&payment_id, &reference, now],
            )?;
        }
        Ok(AuthorizeOutcome::RequiresAction(action)) => {
            sql::execute(
                "UPDATE payments SET state = 'requires-action', reference = $2, next_step = $3, updated_at_ms = $4 \
                 WHERE id = $1 AND state = 'authorizing'",
                &params![&payment_id, &action.reference, &action.next_step, now],
            )?;
        }
        Ok(AuthorizeOutcome::Declined(reason)) => {
            forget()?;
            return Err(DomainError::invalid("source", "DECLINED", format!("the payment was declined: {reason}")));
        }
        Err(e) => {
            forget()?;
            return Err(provider_error(e, "source"));
        }
    }
    answer(&ctx, &payment_id)
}

/// Moves a claimed amount back after the provider refused the operation
/// (best effort: if even this fails, the error is logged).
fn undo(statement: &str, payment_id: &str, amount: i64, order_id: &str, now: i64) {
    let result = (|| -> Result<(), DomainError> {
        let tx = sql::begin()?;
        tx.execute(statement, &params![payment_id, amount, now])?;
        settle(&tx, order_id, now)?;
        Transaction::commit(tx)?;
        Ok(())
    })();
    if let Err(e) = result {
        log::error(&format!("undoing a refused payment operation on payment {payment_id} failed: {e:?}"));
    }
}

pub fn capture_payment(payment_id: String, requested: Option<Money>) -> Result<PaymentAnswer, DomainError> {
    let ctx = call_context();
    let payment = for_admin(&ctx, &payment_id, "capture")?;
    let id = payment.payment.id.clone();
    if !matches!(
        payment.payment.state,
        PaymentState::Authorized | PaymentState::PartiallyCaptured | PaymentState::Captured
    ) {
        return Err(transition_refused("capture", payment.payment.state));
    }
    let left = payment.authorized() - payment.captured();
    let a = amount(requested, &payment.currency, left)?;
    let over = |left: i64| {
        DomainError::invalid("amount.amount", "OVER_CAPTURE", format!("only {left} is left to capture of this payment"))
    };
    if a > left || a < 1 {
        return Err(over(left));
    }
    let now = ctx.now_ms;
    let tx = sql::begin()?;
    let claimed = tx.execute(
        "UPDATE payments SET captured_amount = captured_amount + $2, \
         state = CASE WHEN captured_amount + $2 = authorized_amount THEN 'captured' ELSE 'partially-captured' END, \
         updated_at_ms = $3 \
         WHERE id = $1 AND state IN ('authorized', 'partially-captured') AND captured_amount + $2 <= authorized_amount",
        &params![&id, a, now],
    )?;
    if claimed == 0 {
        // Another capture got there first: report against what is left now.
        drop(tx);
        let now_left = load_payment(&id)?.map(|p| p.authorized() - p.captured()).unwrap_or(0);
        return Err(over(now_left));
    }
    settle(&tx, &payment.payment.order_id, now)?;
    Transaction::commit(tx)?;
    if let Err(e) = payment.reference().and_then(|r| {
        provider::capture(&payment.payment.provider, r, &money(a, &payment.currency))
            .map_err(|e| provider_error(e, "paymentId"))
    }) {
        undo(
            "UPDATE payments SET captured_amount = captured_amount - $2, \
             state = CASE WHEN captured_amount - $2 = 0 THEN 'authorized' ELSE 'partially-captured' END, \
             updated_at_ms = $3 WHERE id = $1",
            &id,
            a,
            &payment.payment.order_id,
            now,
        );
        return Err(e);
    }
    answer(&ctx, &id)
}

pub fn refund_payment(payment_id: String, requested: Option<Money>) -> Result<PaymentAnswer, DomainError> {
    let ctx = call_context();
    let payment = for_admin(&ctx, &payment_id, "refund")?;
    let id = payment.payment.id.clone();
    if payment.captured() == 0 {
        return Err(transition_refused("refund", payment.payment.state));
    }
    let left = payment.captured() - payment.refunded();
    let a = amount(requested, &payment.currency, left)?;
    let over = |left: i64| {
        DomainError::invalid("amount.amount", "OVER_REFUND", format!("only {left} is left to refund of this payment"))
    };
    if a > left || a < 1 {
        return Err(over(left));
    }
    let now = ctx.now_ms;
    let tx = sql::begin()?;
    let claimed = tx.execute(
        "UPDATE payments SET refunded_amount = refunded_amount + $2, \
         state = CASE WHEN refunded_amount + $2 = captured_amount THEN 'refunded' ELSE 'partially-refunded' END, \
         updated_at_ms = $3 \
         WHERE id = $1 AND captured_amount > 0 AND refunded_amount + $2 <= captured_amount",
        &params![&id, a, now],
    )?;
    if claimed == 0 {
        drop(tx);
        let now_left = load_payment(&id)?.map(|p| p.captured() - p.refunded()).unwrap_or(0);
        return Err(over(now_left));
    }
    settle(&tx, &payment.payment.order_id, now)?;
    Transaction::commit(tx)?;
    if let Err(e) = payment.reference().and_then(|r| {
        provider::refund(&payment.payment.provider, r, &money(a, &payment.currency))
            .map_err(|e| provider_error(e, "paymentId"))
    }) {
        undo(
            "UPDATE payments SET refunded_amount = refunded_amount - $2, \
             state = CASE WHEN refunded_amount - $2 > 0 THEN 'partially-refunded' \
             WHEN captured_amount = authorized_amount THEN 'captured' ELSE 'partially-captured' END, \
             updated_at_ms = $3 WHERE id = $1",
            &id,
            a,
            &payment.payment.order_id,
            now,
        );
        return Err(e);
    }
    answer(&ctx, &id)
}

pub fn void_payment(payment_id: String) -> Result<PaymentAnswer, DomainError> {
    let ctx = call_context();
    let payment = for_admin(&ctx, &payment_id, "void")?;
    let id = payment.payment.id.clone();
    let now = ctx.now_ms;
    let voided = sql::execute(
        "UPDATE payments SET state = 'voided', updated_at_ms = $2 \
         WHERE id = $1 AND state = 'authorized' AND captured_amount = 0",
        &params![&id, now],
    )?;
    if voided == 0 {
        let state = load_payment(&id)?.map_or(payment.payment.state, |p| p.payment.state);
        return Err(transition_refused("void", state));
    }
    if let Err(e) = payment
        .reference()
        .and_then(|r| provider::void(&payment.payment.provider, r).map_err(|e| provider_error(e, "paymentId")))
    {
        if let Err(undo) = sql::execute(
            "UPDATE payments SET state = 'authorized', updated_at_ms = $2 WHERE id = $1 AND state = 'voided'",
            &params![&id, now],
        ) {
            log::error(&format!("undoing a refused void of payment {id} failed: {undo:?}"));
        }
        return Err(e);
    }
    answer(&ctx, &id)
}

pub fn record_manual_payment(order_id: String, paid: Money, reference: String) -> Result<PaymentAnswer, DomainError> {
    let ctx = call_context();
    signed_in(&ctx, "record payments")?;
    let (order, _) = views::visible(&ctx, &order_id)?;
    if !ctx.caller.is_admin() {
        return Err(DomainError::Forbidden("only admins may record payments".into()));
    }
    if order.status == OrderStatus::Cancelled {
        return Err(DomainError::invalid(
            "orderId",
            "ORDER_CANCELLED",
            "cannot record a payment for a cancelled order",
        ));
    }
    let a = amount(Some(paid), &order.currency, 0)?;
    if !printable(&reference, MAX_REFERENCE_LEN) {
        return Err(DomainError::invalid(
            "reference",
            "INVALID_REFERENCE",
            format!("the reference must be 1 to {MAX_REFERENCE_LEN} printable characters"),
        ));
    }
    let id = ids::new_id();
    let now = ctx.now_ms;
    let tx = sql::begin()?;
    tx.execute(
        "INSERT INTO payments (id, order_id, provider, reference, state, currency, authorized_amount, \
         captured_amount, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, 'captured', $5, $6, $6, $7, $7)",
        &params![&id, &order.id, MANUAL, &reference, &order.currency, a, now],
    )?;
    settle(&tx, &order.id, now)?;
    Transaction::commit(tx)?;
    answer(&ctx, &id)
}

pub fn list_payments(order_id: String) -> Result<Vec<Payment>, DomainError> {
    let ctx = call_context();
    let (order, sight) = views::visible(&ctx, &order_id)?;
    if let Sight::Merchant(_) = sight {
        return Ok(Vec::new());
    }
    Ok(sql::query(
        &format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1 AND state <> 'authorizing' ORDER BY id"),
        &params![&order.id],
    )?
    .map_rows(payment_row)?
    .into_iter()
    .map(|p| p.payment)
    .collect())
}

/// Applies a provider event the host verified. Called by the host only
/// (the call has no caller: it comes from a signed webhook).
pub fn apply_payment_event(event: PaymentEvent) -> Result<bool, DomainError> {
    let ctx = call_context();
    if ctx.caller.is_some() {
        return Err(DomainError::Forbidden("payment events come from verified webhooks only".into()));
    }
    let now = ctx.now_ms;
    let tx = sql::begin()?;
    let rows = tx.query(
        &format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE provider = $1 AND reference = $2"),
        &params![&event.provider, &event.reference],
    )?;
    let payment = rows
        .first_row()
        .map(payment_row)
        .transpose()?
        .ok_or_else(|| DomainError::NotFound(format!("no payment with reference {}", event.reference)))?;
    let id = payment.payment.id.clone();
    let recorded = tx.execute(
        "INSERT INTO payment_events (provider, event_id, kind, payment_id, applied_at_ms) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (provider, event_id) DO NOTHING",
        &params![&event.provider, &event.event_id, event_kind_text(event.kind), &id, now],
    )?;
    if recorded == 0 {
        // Applied before: nothing changes.
        return Ok(false);
    }
    let total = |m: &Option<Money>| -> Result<i64, DomainError> {
        let m = m.as_ref().ok_or_else(|| DomainError::invalid("amount", "REQUIRED", "the event has no amount"))?;
        if m.currency != payment.currency {
            return Err(DomainError::invalid("amount.currency", "CURRENCY_MISMATCH", "the event's currency differs"));
        }
        Ok(m.amount)
    };
    match event.kind {
        PaymentEventKind::Authorized => {
            tx.execute(
                "UPDATE payments SET state = 'authorized', next_step = NULL, updated_at_ms = $2 \
                 WHERE id = $1 AND state = 'requires-action'",
                &params![&id, now],
            )?;
        }
        PaymentEventKind::Failed => {
            tx.execute(
                "UPDATE payments SET state = 'failed', next_step = NULL, updated_at_ms = $2 \
                 WHERE id = $1 AND state = 'requires-action'",
                &params![&id, now],
            )?;
        }
        PaymentEventKind::Captured => {
            let to = total(&event.amount)?;
            if to > payment.authorized() {
                log::error(&format!("provider event {} captures more than payment {id} authorized", event.event_id));
                return Err(DomainError::invalid(
                    "amount.amount",
                    "OVER_CAPTURE",
                    "the event captures more than authorized",
                ));
            }
            tx.execute(
                "UPDATE payments SET captured_amount = $2, next_step = NULL, updated_at_ms = $3, \
                 state = CASE WHEN $2 = authorized_amount THEN 'captured' ELSE 'partially-captured' END \
                 WHERE id = $1 AND state IN ('requires-action', 'authorized', 'partially-captured') \
                 AND captured_amount < $2 AND $2 <= authorized_amount",
                &params![&id, to, now],
            )?;
        }
        PaymentEventKind::Refunded => {
            let to = total(&event.amount)?;
            if to > payment.captured() {
                log::error(&format!("provider event {} refunds more than payment {id} captured", event.event_id));
                return Err(DomainError::invalid(
                    "amount.amount",
                    "OVER_REFUND",
                    "the event refunds more than captured",
                ));
            }
            tx.execute(
                "UPDATE payments SET refunded_amount = $2, updated_at_ms = $3, \
                 state = CASE WHEN $2 = captured_amount THEN 'refunded' ELSE 'partially-refunded' END \
                 WHERE id = $1 AND refunded_amount < $2 AND $2 <= captured_amount",
                &params![&id, to, now],
            )?;
        }
    }
    settle(&tx, &payment.payment.order_id, now)?;
    Transaction::commit(tx)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_follows_its_payments() {
        use OrderStatus as S;
        assert!(follow(S::PendingPayment, 1_000, 0, 0) == ("none", S::PendingPayment));
        assert!(follow(S::PendingPayment, 1_000, 400, 0) == ("partial", S::PendingPayment));
        assert!(follow(S::PendingPayment, 1_000, 1_000, 0) == ("full", S::Paid));
        assert!(follow(S::PendingPayment, 1_000, 1_200, 0) == ("over", S::Paid));
        assert!(follow(S::Paid, 1_000, 700, 300) == ("partial", S::PartiallyRefunded));
        assert!(follow(S::Fulfilled, 1_000, 0, 1_000) == ("none", S::Refunded));
        assert!(follow(S::PartiallyRefunded, 1_000, 0, 1_000) == ("none", S::Refunded));
        // Refunding an overpayment leaves the order paid.
        assert!(follow(S::Paid, 1_000, 1_000, 200) == ("full", S::Paid));
        // Undone capture, undone refund.
        assert!(follow(S::Paid, 1_000, 0, 0) == ("none", S::PendingPayment));
        assert!(follow(S::PartiallyRefunded, 1_000, 1_000, 0) == ("full", S::Paid));
        assert!(follow(S::Cancelled, 1_000, 1_000, 0) == ("full", S::Cancelled));
        assert!(follow(S::PartiallyFulfilled, 1_000, 1_000, 0) == ("full", S::PartiallyFulfilled));
    }

    #[test]
    fn payment_states_round_trip() {
        for s in [
            PaymentState::Authorizing,
            PaymentState::RequiresAction,
            PaymentState::Authorized,
            PaymentState::PartiallyCaptured,
            PaymentState::Captured,
            PaymentState::PartiallyRefunded,
            PaymentState::Refunded,
            PaymentState::Voided,
            PaymentState::Failed,
        ] {
            assert!(state_of(state_text(s)).unwrap() == s);
        }
        assert!(state_of("pending").is_err());
    }

    #[test]
    fn provider_names_and_sources_are_checked() {
        assert!(check_provider_name("test").is_ok());
        assert!(check_provider_name("Test").is_err());
        assert!(check_provider_name("").is_err());
        assert!(check_provider_name(&"a".repeat(33)).is_err());
        assert!(printable("4242424242424242", MAX_SOURCE_LEN));
        assert!(!printable("42\n42", MAX_SOURCE_LEN));
        assert!(!printable("", MAX_SOURCE_LEN));
    }
}
