//! `order-upkeep.run`: the host calls it periodically (no caller) to
//! finish what a crash or an unreachable product service left half done.
//!
//! Each step handles at most `limit` items; the answer counts what steps
//! 1, 2 and 4 finished:
//! 1. Orders whose stock is still `reserved` (not cancelled): commit the
//!    reservation. Placement commits before writing the order, so this
//!    only finds orders written by another path or version; it is kept so
//!    that no order can stay uncommitted. If the reservation was released
//!    meanwhile (`conflict`) or is missing, the order holds no stock: it
//!    is cancelled (`stock_state = released`) and a warning logged.
//! 2. Cancelled orders whose stock was not given back (the release at
//!    cancellation failed): release it, then `stock_state = released`.
//! 3. Abandoned placements: keys still `in-flight` after their lease ended
//!    (the placement crashed, or could not even free its key). Each is
//!    deleted by a conditional delete on the lease read (a retry taking
//!    it over at the same moment keeps it), and its order id recorded in
//!    `owed_releases`, in one transaction. No order exists for such a key:
//!    marking a key `done` and writing its order are one transaction, and
//!    every owner write is fenced by the lease.
//! 4. Owed releases (failed placements whose release failed, abandoned
//!    ones): `inventory.release`, then the record is dropped.
//! 5. Finished keys older than `keep-keys-ms` are deleted. (In-flight ones
//!    are never deleted by age: step 3 frees them and their stock.)

use polyscale_guest::bindings::types::DomainError;
use polyscale_guest::sql::{self, RowsExt, Transaction};
use polyscale_guest::{Invalid, call_context, log, params};

use crate::bindings::polyscale::commerce::inventory;
use crate::lifecycle;
use crate::placement;
use crate::status::stock;

/// Most items one step handles per call.
const MAX_BATCH: u32 = 1000;

fn ids_of(statement: &str, params: &[sql::Value]) -> Result<Vec<String>, DomainError> {
    sql::query(statement, params)?.map_rows(|r| r.text("id"))
}

/// Step 1: commit reservations of orders left `reserved`.
fn commit_reserved(limit: i64) -> Result<u32, DomainError> {
    let now_ms = call_context().now_ms;
    let mut finished = 0;
    for id in ids_of(
        "SELECT id FROM orders WHERE stock_state = $2 AND status <> 'cancelled' ORDER BY id LIMIT $1",
        &params![limit, stock::RESERVED],
    )? {
        match inventory::commit(&id) {
            Ok(()) => {
                sql::execute(
                    "UPDATE orders SET stock_state = $2 WHERE id = $1 AND stock_state = $3",
                    &params![&id, stock::COMMITTED, stock::RESERVED],
                )?;
                finished += 1;
            }
            Err(DomainError::Conflict(_) | DomainError::NotFound(_)) => {
                log::warn(&format!("order {id} lost its stock reservation before it was committed; cancelling it"));
                sql::execute(
                    "UPDATE orders SET status = 'cancelled', stock_state = $2, updated_at_ms = $3 \
                     WHERE id = $1 AND stock_state = $4",
                    &params![&id, stock::RELEASED, now_ms, stock::RESERVED],
                )?;
                finished += 1;
            }
            Err(e) => log::warn(&format!("committing the stock of order {id} failed: {e:?}")),
        }
    }
    Ok(finished)
}

/// Step 2: give back the stock of cancelled orders.
fn release_cancelled(limit: i64) -> Result<u32, DomainError> {
    let mut finished = 0;
    for id in ids_of(
        "SELECT id FROM orders WHERE status = 'cancelled' AND stock_state IN ('reserved', 'committed') \
         ORDER BY id LIMIT $1",
        &params![limit],
    )? {
        if lifecycle::release_stock(&id)? {
            finished += 1;
        }
    }
    Ok(finished)
}

/// Step 3: placements abandoned in flight give up their keys.
fn free_abandoned(limit: i64) -> Result<(), DomainError> {
    let now_ms = call_context().now_ms;
    let abandoned = sql::query(
        "SELECT customer_id, idem_key, order_id, locked_until_ms FROM idempotency_keys \
         WHERE state = 'in-flight' AND locked_until_ms < $1 ORDER BY locked_until_ms LIMIT $2",
        &params![now_ms, limit],
    )?
    .map_rows(|r| Ok((r.text("customer_id")?, r.text("idem_key")?, r.text("order_id")?, r.int("locked_until_ms")?)))?;
    for (customer_id, key, order_id, lease) in abandoned {
        // Conditional on the lease read: a retry that took the key over
        // meanwhile keeps it.
        let tx = sql::begin()?;
        let freed = tx.execute(
            "DELETE FROM idempotency_keys WHERE customer_id = $1 AND idem_key = $2 AND order_id = $3 \
             AND state = 'in-flight' AND locked_until_ms = $4",
            &params![&customer_id, &key, &order_id, lease],
        )?;
        if freed == 1 {
            placement::owe_release(&tx, &order_id, now_ms)?;
            Transaction::commit(tx)?;
        }
    }
    Ok(())
}

/// Step 4: release the reservations owed by failed or abandoned placements.
fn release_owed(limit: i64) -> Result<u32, DomainError> {
    let owed =
        sql::query("SELECT order_id FROM owed_releases ORDER BY created_at_ms, order_id LIMIT $1", &params![limit])?
            .map_rows(|r| r.text("order_id"))?;
    Ok(owed.iter().filter(|order_id| placement::release_owed(order_id)).count() as u32)
}

pub fn run(keep_keys_ms: i64, limit: u32) -> Result<u32, DomainError> {
    if keep_keys_ms < 0 {
        return Err(DomainError::invalid("keepKeysMs", "OUT_OF_RANGE", "keep-keys-ms must not be negative"));
    }
    let now_ms = call_context().now_ms;
    let limit = i64::from(limit.min(MAX_BATCH));
    let mut finished = 0;
    if limit > 0 {
        finished += commit_reserved(limit)?;
        finished += release_cancelled(limit)?;
        free_abandoned(limit)?;
        finished += release_owed(limit)?;
    }
    sql::execute(
        "DELETE FROM idempotency_keys WHERE state = 'done' AND created_at_ms < $1",
        &params![now_ms.saturating_sub(keep_keys_ms)],
    )?;
    Ok(finished)
}
