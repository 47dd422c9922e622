//! Stock reservations: the `inventory` and `inventory-upkeep` exports.
//!
//! The product component owns stock, so it owns reservations too. A
//! reservation is keyed by the order id the order service chose and takes
//! its units out of `products.stock` at once:
//!
//! - **reserve** runs in one transaction. It first inserts the reservation
//!   row with `ON CONFLICT (order_id) DO NOTHING`: if a reservation for the
//!   order exists already, nothing more is taken (the same lines answer its
//!   current state, other lines are a `conflict`), so a retried placement
//!   never takes stock twice. Otherwise each line is one conditional
//!   statement, `stock = stock - q WHERE id = $id AND stock >= q`, so the
//!   check and the take cannot be split by a concurrent buyer (a row lock
//!   re-checked after the wait on PostgreSQL under READ COMMITTED, the one
//!   writer on SQLite). Lines go in product-id order, the same order every
//!   reservation and release locks rows in, so two reservations never
//!   deadlock. A line that finds too little stock (or no product) rolls the
//!   whole transaction back and the answer lists every short line with what
//!   is available now: all lines or none.
//! - **commit** makes a held reservation permanent with a conditional
//!   update (`WHERE state = 'held'`); an expired but not yet swept hold can
//!   still be committed, its units were never given back.
//! - **release** gives the units back. One conditional update
//!   (`WHERE state IN ('held', 'committed')`) decides which of two racing
//!   releases (a cancellation, the sweeper, a failed placement) returns the
//!   stock; only the winner adds it back, in the same transaction. Products
//!   deleted since are skipped: their units have nowhere to go.
//! - **release-expired** (the host's sweeper) releases held reservations
//!   whose `expires_at_ms` has passed, each in its own transaction with the
//!   same conditional update on `state = 'held'`, so a commit that gets
//!   there first wins and keeps its stock.
//!
//! Every stock change bumps the product's version and queues its search
//! document in the same transaction, exactly as `adjust-stock` does, so
//! the index's `stock`/`in_stock` follow reservations.
//!
//! **Authorization:** these exports do not look at the caller. The host
//! lets only the order service reach them (the product service's
//! `InventoryService` refuses any call without the order service's service
//! token), and `inventory-upkeep` is called by the host alone.

use std::collections::BTreeMap;

use polyscale_guest::bindings::types::DomainError;
use polyscale_guest::sql::{self, RowsExt, Transaction, Value};
use polyscale_guest::{FieldErrors, call_context, ids, params};

use crate::bindings::exports::polyscale::commerce::inventory::{
    Guest, ReservationState, ReserveError, Shortage, StockLine,
};
use crate::bindings::exports::polyscale::commerce::inventory_upkeep::Guest as UpkeepGuest;
use crate::indexing;

/// Most lines one reservation may have.
pub const MAX_LINES: usize = 100;
/// Most units of one product one reservation may take.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// Longest order id accepted.
pub const MAX_ORDER_ID_LEN: usize = 64;
/// How often a reservation is tried again when a line was short but a
/// re-read finds enough stock (a concurrent release in between).
const RESERVE_ATTEMPTS: usize = 3;

const HELD: &str = "held";
const COMMITTED: &str = "committed";
const RELEASED: &str = "released";

fn state_from(text: &str) -> Result<ReservationState, DomainError> {
    match text {
        HELD => Ok(ReservationState::Held),
        COMMITTED => Ok(ReservationState::Committed),
        RELEASED => Ok(ReservationState::Released),
        other => Err(DomainError::Internal(format!("unknown reservation state `{other}`"))),
    }
}

/// An order id as a reservation key: 1 to 64 printable ASCII characters.
fn parse_order_id(field: &str, id: &str, errors: &mut FieldErrors) -> String {
    if id.is_empty() || id.len() > MAX_ORDER_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        errors.add(
            field,
            "INVALID_ID",
            format!("the order id must be 1 to {MAX_ORDER_ID_LEN} printable ASCII characters"),
        );
    }
    id.to_string()
}

fn order_id_only(id: &str) -> Result<String, DomainError> {
    let mut errors = FieldErrors::new();
    let id = parse_order_id("orderId", id, &mut errors);
    errors.finish()?;
    Ok(id)
}

/// Validated lines, duplicates merged, in product-id order.
fn parse_lines(lines: Vec<StockLine>, errors: &mut FieldErrors) -> BTreeMap<String, i64> {
    if lines.is_empty() {
        errors.add("lines", "REQUIRED", "reserve at least one line");
    } else if lines.len() > MAX_LINES {
        errors.add("lines", "TOO_MANY", format!("reserve at most {MAX_LINES} lines at once"));
    }
    let mut merged: BTreeMap<String, i64> = BTreeMap::new();
    for (i, line) in lines.into_iter().enumerate() {
        let product_id = errors.take(ids::parse_id(&format!("lines.{i}.productId"), &line.product_id));
        let quantity_field = format!("lines.{i}.quantity");
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            errors.add(
                &quantity_field,
                "INVALID_QUANTITY",
                format!("the quantity must be between 1 and {MAX_QUANTITY}"),
            );
            continue;
        }
        if let Some(product_id) = product_id {
            let total = merged.entry(product_id).or_insert(0);
            *total += line.quantity;
            if *total > MAX_QUANTITY {
                errors.add(
                    &quantity_field,
                    "INVALID_QUANTITY",
                    format!("at most {MAX_QUANTITY} units of one product, summed over its lines"),
                );
            }
        }
    }
    merged
}

/// The lines of an existing reservation, in product-id order.
fn reserved_lines(tx: &Transaction, order_id: &str) -> Result<BTreeMap<String, i64>, DomainError> {
    tx.query(
        "SELECT product_id, quantity FROM reservation_lines WHERE order_id = $1 ORDER BY product_id",
        &params![order_id],
    )?
    .map_rows(|r| Ok((r.text("product_id")?, r.int("quantity")?)))
    .map(|pairs| pairs.into_iter().collect())
}

/// What a reservation attempt came to.
enum Attempt {
    Done(ReservationState),
    /// A line was short; the transaction was rolled back.
    Short,
}

fn try_reserve(
    order_id: &str,
    lines: &BTreeMap<String, i64>,
    expires_at_ms: i64,
    now_ms: i64,
) -> Result<Attempt, DomainError> {
    let tx = sql::begin()?;
    let inserted = tx.execute(
        "INSERT INTO reservations (order_id, state, expires_at_ms, created_at_ms, updated_at_ms) \
         VALUES ($1, 'held', $2, $3, $3) ON CONFLICT (order_id) DO NOTHING",
        &params![order_id, expires_at_ms, now_ms],
    )?;
    if inserted == 0 {
        // The order has a reservation: answer it, take nothing.
        let state = tx.query("SELECT state FROM reservations WHERE order_id = $1", &params![order_id])?;
        let state = state
            .first_row()
            .map(|r| r.text("state"))
            .transpose()?
            .ok_or_else(|| DomainError::Internal("a conflicting reservation vanished".into()))?;
        let existing = reserved_lines(&tx, order_id)?;
        drop(tx);
        return if existing == *lines {
            Ok(Attempt::Done(state_from(&state)?))
        } else {
            Err(DomainError::Conflict(format!("order {order_id} already has a reservation with other lines")))
        };
    }
    for (product_id, quantity) in lines {
        let taken = tx.execute(
            "UPDATE products SET stock = stock - $1, version = version + 1, updated_at_ms = $2 \
             WHERE id = $3 AND stock >= $1",
            &params![*quantity, now_ms, product_id],
        )?;
        if taken == 0 {
            // Dropping the transaction rolls back the lines taken so far.
            drop(tx);
            return Ok(Attempt::Short);
        }
        indexing::queue(&tx, product_id)?;
    }
    for (product_id, quantity) in lines {
        tx.execute(
            "INSERT INTO reservation_lines (order_id, product_id, quantity) VALUES ($1, $2, $3)",
            &params![order_id, product_id, *quantity],
        )?;
    }
    Transaction::commit(tx)?;
    Ok(Attempt::Done(ReservationState::Held))
}

/// The lines that cannot be reserved now (read after the rollback, so
/// nothing of the failed attempt is counted).
fn shortages(lines: &BTreeMap<String, i64>) -> Result<Vec<Shortage>, DomainError> {
    let ids: Vec<Value> = lines.keys().map(Value::from).collect();
    let rows =
        sql::query(&format!("SELECT id, stock FROM products WHERE id IN ({})", sql::placeholders(1, ids.len())), &ids)?;
    let stock: BTreeMap<String, i64> = rows.map_rows(|r| Ok((r.text("id")?, r.int("stock")?)))?.into_iter().collect();
    Ok(lines
        .iter()
        .filter_map(|(product_id, requested)| {
            let available = stock.get(product_id).copied().unwrap_or(0);
            (available < *requested).then(|| Shortage {
                product_id: product_id.clone(),
                requested: *requested,
                available,
            })
        })
        .collect())
}

/// Releases one reservation if it is in a state `condition` admits, adding
/// its units back; returns whether this call released it.
fn release_one(order_id: &str, condition: &str, now_ms: i64) -> Result<bool, DomainError> {
    let tx = sql::begin()?;
    let released = tx.execute(
        &format!("UPDATE reservations SET state = 'released', updated_at_ms = $2 WHERE order_id = $1 AND {condition}"),
        &params![order_id, now_ms],
    )?;
    if released == 0 {
        return Ok(false);
    }
    for (product_id, quantity) in reserved_lines(&tx, order_id)? {
        let restocked = tx.execute(
            "UPDATE products SET stock = stock + $1, version = version + 1, updated_at_ms = $2 WHERE id = $3",
            &params![quantity, now_ms, &product_id],
        )?;
        if restocked == 1 {
            indexing::queue(&tx, &product_id)?;
        }
    }
    Transaction::commit(tx)?;
    Ok(true)
}

/// Largest batch one `release-expired` call handles.
const MAX_SWEEP: u32 = 1000;

impl Guest for crate::Component {
    fn reserve(order_id: String, lines: Vec<StockLine>, expires_at_ms: i64) -> Result<ReservationState, ReserveError> {
        let now_ms = call_context().now_ms;
        let mut errors = FieldErrors::new();
        let order_id = parse_order_id("orderId", &order_id, &mut errors);
        let lines = parse_lines(lines, &mut errors);
        errors.finish().map_err(ReserveError::Failed)?;
        for _ in 0..RESERVE_ATTEMPTS {
            match try_reserve(&order_id, &lines, expires_at_ms, now_ms).map_err(ReserveError::Failed)? {
                Attempt::Done(state) => return Ok(state),
                Attempt::Short => {
                    let short = shortages(&lines).map_err(ReserveError::Failed)?;
                    if !short.is_empty() {
                        return Err(ReserveError::Insufficient(short));
                    }
                    // Stock came back between the attempt and the re-read.
                }
            }
        }
        Err(ReserveError::Failed(DomainError::Unavailable("the stock is changing fast; retry".into())))
    }

    fn commit(order_id: String) -> Result<(), DomainError> {
        let order_id = order_id_only(&order_id)?;
        let now_ms = call_context().now_ms;
        let committed = sql::execute(
            "UPDATE reservations SET state = 'committed', updated_at_ms = $2 WHERE order_id = $1 AND state = 'held'",
            &params![&order_id, now_ms],
        )?;
        if committed == 1 {
            return Ok(());
        }
        let rows = sql::query("SELECT state FROM reservations WHERE order_id = $1", &params![&order_id])?;
        match rows.first_row().map(|r| r.text("state")).transpose()?.as_deref() {
            Some(COMMITTED) => Ok(()),
            Some(RELEASED) => Err(DomainError::Conflict(format!(
                "the reservation of order {order_id} was released; its stock may be sold"
            ))),
            Some(other) => Err(DomainError::Internal(format!("reservation in unexpected state `{other}`"))),
            None => Err(DomainError::NotFound(format!("no reservation for order {order_id}"))),
        }
    }

    fn release(order_id: String) -> Result<(), DomainError> {
        let order_id = order_id_only(&order_id)?;
        release_one(&order_id, "state IN ('held', 'committed')", call_context().now_ms)?;
        Ok(())
    }
}

impl UpkeepGuest for crate::Component {
    fn release_expired(limit: u32) -> Result<u32, DomainError> {
        let now_ms = call_context().now_ms;
        let limit = limit.min(MAX_SWEEP);
        if limit == 0 {
            return Ok(0);
        }
        let expired = sql::query(
            "SELECT order_id FROM reservations WHERE state = 'held' AND expires_at_ms <= $1 \
             ORDER BY expires_at_ms, order_id LIMIT $2",
            &params![now_ms, i64::from(limit)],
        )?
        .map_rows(|r| r.text("order_id"))?;
        let mut released = 0;
        for order_id in expired {
            // `state = 'held'`: a commit that got there first keeps its stock.
            if release_one(&order_id, "state = 'held'", now_ms)? {
                released += 1;
            }
        }
        Ok(released)
    }
}
