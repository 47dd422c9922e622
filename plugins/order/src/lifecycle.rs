//! The order lifecycle: `cancel-order`, `fulfill-order`, `mark-delivered`.
//!
//! ```text
//! pending-payment ──(payments)──▶ paid ──fulfil──▶ partially-fulfilled ──▶ fulfilled ──▶ delivered
//!       │                                │
//!       └──cancel (customer, admin)──▶ cancelled ◀──cancel (admin)
//! ```
//!
//! [`TRANSITIONS`] is the whole table. Every refusal by it is `invalid` on
//! field `id` with code `INVALID_TRANSITION` ("cannot <action> an order
//! that is <status>"), except fulfilling an order that is not paid yet:
//! `ORDER_NOT_PAID`. Payments ([`crate::payments`]) move an order to `paid`
//! and to `partially-refunded` / `refunded`; the status column is plain
//! text and takes any status of the WIT enum.
//!
//! Who may act (checked before the table; callers who may not even see
//! the order get `not-found`, callers who see it but may not act
//! `forbidden`):
//! - cancel: the customer while `pending-payment`, an admin while
//!   `pending-payment` or `paid`. The status changes by a conditional
//!   update on the status read (compare-and-set); a lost race re-reads and
//!   reports against the new status. Then the stock goes back with
//!   `inventory.release`, and `stock_state` becomes `released`; if the
//!   product service cannot be reached the failure is logged and the order
//!   upkeep releases it later.
//! - fulfil: a merchant for their own lines (another merchant's line is
//!   `forbidden`) or an admin, once `paid` or `partially-fulfilled`; each
//!   line's quantity is ≥ 1 and at most what is left to fulfil
//!   (`OVER_FULFILLMENT` on `lines.N.quantity`). In one transaction that
//!   first locks the order row: the lines' conditional increments, then
//!   `fulfilled` when every line is complete, else `partially-fulfilled`.
//! - deliver: an admin or a merchant with a line in the order, from
//!   `fulfilled` to `delivered`.

use polyscale_guest::bindings::types::{DomainError, FieldError};
use polyscale_guest::sql::{self, RowsExt, Transaction};
use polyscale_guest::{CallContext, FieldErrors, Invalid, Role, call_context, log, params};

use crate::bindings::exports::polyscale::commerce::orders::{FulfillmentLine, Order, OrderStatus};
use crate::bindings::polyscale::commerce::inventory;
use crate::status::{order_status_text, stock};
use crate::support::signed_in;
use crate::views::{self, StoredOrder};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    Cancel,
    Fulfill,
    Deliver,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            Action::Fulfill => "fulfill",
            Action::Deliver => "deliver",
        }
    }
}

/// Who acts on an order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Actor {
    Admin,
    Customer,
    Merchant,
}

/// Every allowed transition: action, from, who may, to. Fulfilling goes to
/// `partially-fulfilled` or `fulfilled` by the lines; the table names the
/// first.
pub const TRANSITIONS: &[(Action, OrderStatus, &[Actor], OrderStatus)] = &[
    (Action::Cancel, OrderStatus::PendingPayment, &[Actor::Customer, Actor::Admin], OrderStatus::Cancelled),
    (Action::Cancel, OrderStatus::Paid, &[Actor::Admin], OrderStatus::Cancelled),
    (Action::Fulfill, OrderStatus::Paid, &[Actor::Merchant, Actor::Admin], OrderStatus::PartiallyFulfilled),
    (
        Action::Fulfill,
        OrderStatus::PartiallyFulfilled,
        &[Actor::Merchant, Actor::Admin],
        OrderStatus::PartiallyFulfilled,
    ),
    (Action::Deliver, OrderStatus::Fulfilled, &[Actor::Merchant, Actor::Admin], OrderStatus::Delivered),
];

/// The status `action` by `actor` leads to from `from`, or the refusal.
pub fn transition(action: Action, from: OrderStatus, actor: Actor) -> Result<OrderStatus, FieldError> {
    if let Some((.., to)) = TRANSITIONS.iter().find(|(a, f, who, _)| *a == action && *f == from && who.contains(&actor))
    {
        return Ok(*to);
    }
    if action == Action::Fulfill && from == OrderStatus::PendingPayment {
        return Err(FieldError::invalid("id", "ORDER_NOT_PAID", "cannot fulfill an order that is not paid yet"));
    }
    Err(FieldError::invalid(
        "id",
        "INVALID_TRANSITION",
        format!("cannot {} an order that is {}", action.verb(), order_status_text(from)),
    ))
}

/// The role in which the caller acts on `order` for `action`, or the
/// refusal: `not-found` when they may not see it, `forbidden` when they
/// see it but may not act.
fn actor_for(ctx: &CallContext, action: Action, order: &StoredOrder) -> Result<Actor, DomainError> {
    let caller = signed_in(ctx, "change orders")?;
    let me = caller.account_id.as_str();
    if caller.roles.contains(&Role::Admin) {
        return Ok(Actor::Admin);
    }
    let customer = order.customer_id == me;
    let merchant = caller.roles.contains(&Role::Merchant) && order.lines.iter().any(|l| l.merchant_id == me);
    match action {
        Action::Cancel if customer => Ok(Actor::Customer),
        Action::Fulfill | Action::Deliver if merchant => Ok(Actor::Merchant),
        _ if customer || merchant => Err(DomainError::Forbidden(format!("you may not {} this order", action.verb()))),
        _ => Err(views::not_found(&order.id)),
    }
}

/// How often a lost compare-and-set is retried against a fresh read.
const ATTEMPTS: usize = 3;

fn keeps_changing() -> DomainError {
    DomainError::Conflict("the order changed concurrently; retry".into())
}

/// The order again, as the caller sees it.
fn reread(ctx: &CallContext, id: &str) -> Result<Order, DomainError> {
    let (order, sight) = views::visible(ctx, id)?;
    views::present(order, &sight)
}

/// Moves an order by a simple status transition (cancel, deliver) with a
/// compare-and-set on the status read.
fn simple_transition(ctx: &CallContext, id: &str, action: Action) -> Result<String, DomainError> {
    for _ in 0..ATTEMPTS {
        let (order, _) = views::visible(ctx, id)?;
        let actor = actor_for(ctx, action, &order)?;
        let to = transition(action, order.status, actor)?;
        let moved = sql::execute(
            "UPDATE orders SET status = $2, updated_at_ms = $3 WHERE id = $1 AND status = $4",
            &params![&order.id, order_status_text(to), ctx.now_ms, order_status_text(order.status)],
        )?;
        if moved == 1 {
            return Ok(order.id);
        }
    }
    Err(keeps_changing())
}

/// Gives a cancelled order's stock back; on failure the upkeep retries.
pub fn release_stock(order_id: &str) -> Result<bool, DomainError> {
    match inventory::release(order_id) {
        Ok(()) => {
            sql::execute(
                "UPDATE orders SET stock_state = $2 WHERE id = $1 AND status = 'cancelled'",
                &params![order_id, stock::RELEASED],
            )?;
            Ok(true)
        }
        Err(e) => {
            log::warn(&format!("releasing the stock of cancelled order {order_id} failed ({e:?}); upkeep retries"));
            Ok(false)
        }
    }
}

pub fn cancel_order(id: String) -> Result<Order, DomainError> {
    let ctx = call_context();
    let order_id = simple_transition(&ctx, &id, Action::Cancel)?;
    release_stock(&order_id)?;
    reread(&ctx, &order_id)
}

pub fn mark_delivered(id: String) -> Result<Order, DomainError> {
    let ctx = call_context();
    let order_id = simple_transition(&ctx, &id, Action::Deliver)?;
    reread(&ctx, &order_id)
}

/// A fulfilment request line, checked against the order.
struct Fulfilment {
    line_id: String,
    quantity: i64,
}

/// Checks the requested lines against `order` as `actor` may act on it.
fn check_lines(
    order: &StoredOrder,
    actor: Actor,
    me: &str,
    lines: &[FulfillmentLine],
) -> Result<Vec<Fulfilment>, DomainError> {
    let mut errors = FieldErrors::new();
    if lines.is_empty() {
        errors.add("lines", "REQUIRED", "fulfil at least one line");
    }
    let mut checked = Vec::with_capacity(lines.len());
    for (i, request) in lines.iter().enumerate() {
        let Some(line) = order.lines.iter().find(|l| l.line.id == request.line_id) else {
            errors.add(&format!("lines.{i}.lineId"), "UNKNOWN_LINE", "the order has no line with this id");
            continue;
        };
        if actor == Actor::Merchant && line.merchant_id != me {
            return Err(DomainError::Forbidden("this line belongs to another merchant".into()));
        }
        if lines[..i].iter().any(|earlier| earlier.line_id == request.line_id) {
            errors.add(&format!("lines.{i}.lineId"), "DUPLICATE_LINE", "each line may be named once");
            continue;
        }
        let left = line.line.quantity - line.line.fulfilled_quantity;
        if request.quantity < 1 {
            errors.add(&format!("lines.{i}.quantity"), "INVALID_QUANTITY", "fulfil at least one unit");
        } else if request.quantity > left {
            errors.add(
                &format!("lines.{i}.quantity"),
                "OVER_FULFILLMENT",
                format!("only {left} of {} units are left to fulfil", line.line.quantity),
            );
        } else {
            checked.push(Fulfilment { line_id: request.line_id.clone(), quantity: request.quantity });
        }
    }
    errors.finish()?;
    Ok(checked)
}

/// What one fulfilment attempt came to.
enum Fulfilled {
    Done,
    /// The order or a line changed since it was read: read again.
    Raced,
}

fn try_fulfil(order_id: &str, lines: &[Fulfilment], now_ms: i64) -> Result<Fulfilled, DomainError> {
    let tx = sql::begin()?;
    // Lock the order first: concurrent fulfilments of one order take turns,
    // so the last one sees every line when it picks the status.
    let locked = tx.execute(
        "UPDATE orders SET updated_at_ms = $2 WHERE id = $1 AND status IN ('paid', 'partially-fulfilled')",
        &params![order_id, now_ms],
    )?;
    if locked == 0 {
        return Ok(Fulfilled::Raced);
    }
    for line in lines {
        let done = tx.execute(
            "UPDATE order_lines SET fulfilled_quantity = fulfilled_quantity + $1 \
             WHERE id = $2 AND order_id = $3 AND fulfilled_quantity + $1 <= quantity",
            &params![line.quantity, &line.line_id, order_id],
        )?;
        if done == 0 {
            return Ok(Fulfilled::Raced);
        }
    }
    let open = tx
        .query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM order_lines WHERE order_id = $1 AND fulfilled_quantity < quantity",
            &params![order_id],
        )?
        .first_row()
        .map(|r| r.int("n"))
        .transpose()?
        .unwrap_or(0);
    let to = if open == 0 { OrderStatus::Fulfilled } else { OrderStatus::PartiallyFulfilled };
    tx.execute("UPDATE orders SET status = $2 WHERE id = $1", &params![order_id, order_status_text(to)])?;
    Transaction::commit(tx)?;
    Ok(Fulfilled::Done)
}

pub fn fulfill_order(id: String, lines: Vec<FulfillmentLine>) -> Result<Order, DomainError> {
    let ctx = call_context();
    for _ in 0..ATTEMPTS {
        let (order, _) = views::visible(&ctx, &id)?;
        let actor = actor_for(&ctx, Action::Fulfill, &order)?;
        transition(Action::Fulfill, order.status, actor)?;
        let me = ctx.caller.as_ref().map(|p| p.account_id.clone()).unwrap_or_default();
        let checked = check_lines(&order, actor, &me, &lines)?;
        if let Fulfilled::Done = try_fulfil(&order.id, &checked, ctx.now_ms)? {
            return reread(&ctx, &order.id);
        }
    }
    Err(keeps_changing())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customers_cancel_only_unpaid_orders_admins_also_paid_ones() {
        assert!(
            transition(Action::Cancel, OrderStatus::PendingPayment, Actor::Customer).unwrap() == OrderStatus::Cancelled
        );
        let refused = transition(Action::Cancel, OrderStatus::Paid, Actor::Customer).unwrap_err();
        assert_eq!(refused.code, "INVALID_TRANSITION");
        assert_eq!(refused.message, "cannot cancel an order that is paid");
        assert!(transition(Action::Cancel, OrderStatus::Paid, Actor::Admin).is_ok());
        assert_eq!(
            transition(Action::Cancel, OrderStatus::Cancelled, Actor::Admin).unwrap_err().code,
            "INVALID_TRANSITION"
        );
        assert_eq!(
            transition(Action::Cancel, OrderStatus::Fulfilled, Actor::Admin).unwrap_err().code,
            "INVALID_TRANSITION"
        );
    }

    #[test]
    fn fulfilment_needs_payment_and_delivery_needs_fulfilment() {
        assert_eq!(
            transition(Action::Fulfill, OrderStatus::PendingPayment, Actor::Merchant).unwrap_err().code,
            "ORDER_NOT_PAID"
        );
        assert!(transition(Action::Fulfill, OrderStatus::Paid, Actor::Merchant).is_ok());
        assert!(transition(Action::Fulfill, OrderStatus::PartiallyFulfilled, Actor::Admin).is_ok());
        assert_eq!(
            transition(Action::Fulfill, OrderStatus::Delivered, Actor::Admin).unwrap_err().code,
            "INVALID_TRANSITION"
        );
        assert_eq!(
            transition(Action::Deliver, OrderStatus::PartiallyFulfilled, Actor::Admin).unwrap_err().code,
            "INVALID_TRANSITION"
        );
        assert!(
            transition(Action::Deliver, OrderStatus::Fulfilled, Actor::Merchant).unwrap() == OrderStatus::Delivered
        );
        assert!(transition(Action::Deliver, OrderStatus::Fulfilled, Actor::Customer).is_err());
    }
}
