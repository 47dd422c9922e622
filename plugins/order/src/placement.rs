//! `place-order`: the signed-in customer's cart becomes an order, with
//! Idempotency-Key semantics (the IETF draft) per customer.
//!
//! **Decision: stock is committed at placement, before the order is
//! written.** An order that exists holds its units (`stock_state =
//! committed`); cancelling it releases them (restock). The reservation's
//! hold (15 minutes, capped by the host) only matters for placements that
//! fail or crash before the order is written: their held stock goes back
//! when the product service's sweeper finds the hold expired.
//!
//! Steps:
//! 1. Validate the key (1 to 255 printable ASCII, else
//!    `INVALID_IDEMPOTENCY_KEY`) and the shipping-address input (pure
//!    checks of the input, so answering them again needs nothing stored).
//!    Read the cart; the fingerprint is the hex SHA-256 of its (product
//!    id, quantity) lines sorted by product id plus the address input.
//! 2. Claim the key: insert it `in-flight` with a new UUIDv7 order id and
//!    a 30 s lease (`ON CONFLICT DO NOTHING`). If the key exists:
//!    - `done` and older than 24 h: taken over as a new key (a conditional
//!      update on the old `created_at_ms`, new fingerprint and order id);
//!    - another fingerprint: if the key is `done` and the cart is empty now
//!      (the order consumed it), the same request, replayed; otherwise
//!      `IDEMPOTENCY_KEY_REUSED`;
//!    - `in-flight`, lease running: `IDEMPOTENCY_KEY_IN_USE` (the host
//!      waits and asks again, so duplicates get the first call's answer);
//!    - `in-flight`, lease over: taken over with a conditional update on
//!      the old lease (losing that race is `IN_USE`), keeping the order id,
//!      so reserving again is idempotent and never takes stock twice;
//!    - `done`: replayed, the stored order (read now) or the stored failure
//!      rebuilt as the same `invalid` field error.
//! 3. As owner: an empty cart is `EMPTY_CART` (field `cart`); one
//!    `catalog.get-items` call snapshots names, merchants and prices; a
//!    product gone is `PRODUCT_UNAVAILABLE` (`lines.N.productId`), lines in
//!    more than one currency `MIXED_CURRENCIES` (`cart`). Without an address
//!    input, the customer's default address is used (none is allowed); a
//!    default address that fails the checks is stored as the first field
//!    error.
//! 4. `inventory.reserve(order id, lines, now + 15 min)`. Not enough stock
//!    is `OUT_OF_STOCK` on `lines.N.quantity` of the first short line. A
//!    reservation found already `released` (an earlier attempt's hold
//!    expired) gets the key a fresh order id and is reserved again.
//! 5. `inventory.commit`.
//! 6. One transaction: the order (`pending-payment`, payment `none`, stock
//!    `committed`, the total of the snapshot), its lines, the placed lines
//!    deleted from the cart, the key marked `done`. If the placed lines are
//!    no longer all in the cart (a concurrent placement under another key
//!    took them: a double submit), nothing is written and the stock goes
//!    back (`conflict`), so one cart never becomes two orders.
//!
//! Deterministic failures (empty cart, product gone, mixed currencies,
//! bad default address, out of stock) are stored with the key and replayed
//! identically. Transient ones (a sibling `unavailable`, a database error)
//! free the key so a retry runs again with a new order id: the key row is
//! deleted and, if stock may be reserved, the order id recorded in
//! `owed_releases` in the same fenced transaction; then the reservation is
//! released and the record dropped. If the release fails, the held stock
//! expires anyway and the order upkeep retries the release (which also
//! covers a commit that succeeded but whose answer was lost). If even the
//! key cannot be freed, it stays in flight until its lease ends.
//!
//! **Fencing:** every write of an owner to its key row is conditional on
//! the lease value it set (`locked_until_ms`), and marking the key `done`
//! is in the order's transaction. An owner too slow to finish within its
//! lease, whose key was taken over meanwhile, writes nothing and answers
//! `IDEMPOTENCY_KEY_IN_USE`; the owner that took over finishes the order.

use polyscale_guest::bindings::types::{DomainError, FieldError, Money};
use polyscale_guest::sql::{self, RowsExt, Transaction, Value};
use polyscale_guest::{FieldErrors, Invalid, call_context, ids, log, params};

use crate::bindings::exports::polyscale::commerce::orders::{Order, PlaceOrderInput};
use crate::bindings::polyscale::commerce::catalog::{self, CatalogItem};
use crate::bindings::polyscale::commerce::customers::{self, PostalAddress};
use crate::bindings::polyscale::commerce::extensions::{ExtensionLine, Step};
use crate::bindings::polyscale::commerce::inventory::{self, ReservationState, ReserveError, Shortage, StockLine};
use crate::cart;
use crate::pricing;
use crate::status::{self, stock};
use crate::support::{line_total, sha256_hex, signed_in};
use crate::views::{self, Sight};

/// How long a placement owns its key before a retry may take it over.
pub const LEASE_MS: i64 = 30_000;
/// How long a finished key answers for its request.
pub const KEY_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;
/// How long a placement's reservation holds before it expires.
pub const HOLD_MS: i64 = 15 * 60 * 1000;
/// Longest idempotency key.
pub const MAX_KEY_LEN: usize = 255;
/// Longest address field, in characters.
const MAX_ADDRESS_CHARS: usize = 200;

const KEY_FIELD: &str = "idempotencyKey";
const IN_FLIGHT: &str = "in-flight";
const DONE: &str = "done";

pub fn key_in_use() -> DomainError {
    DomainError::invalid(
        KEY_FIELD,
        "IDEMPOTENCY_KEY_IN_USE",
        "a placement with this key is still running; retry with the same key",
    )
}

fn key_reused() -> DomainError {
    DomainError::invalid(KEY_FIELD, "IDEMPOTENCY_KEY_REUSED", "this key was used with another cart; use a new key")
}

fn check_key(errors: &mut FieldErrors, key: &str) {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        errors.add(
            KEY_FIELD,
            "INVALID_IDEMPOTENCY_KEY",
            format!("the key must be 1 to {MAX_KEY_LEN} printable ASCII characters"),
        );
    }
}

/// Light checks of a postal address; field paths under `prefix`.
pub fn check_address(errors: &mut FieldErrors, prefix: &str, a: &PostalAddress) {
    let field = |name: &str| format!("{prefix}.{name}");
    for (name, value) in [("line1", &a.line1), ("city", &a.city), ("postalCode", &a.postal_code)] {
        if value.trim().is_empty() {
            errors.add(&field(name), "REQUIRED", "this part of the address must not be empty");
        }
    }
    let optional = [("line2", a.line2.as_ref()), ("region", a.region.as_ref())];
    for (name, value) in [("line1", Some(&a.line1)), ("city", Some(&a.city)), ("postalCode", Some(&a.postal_code))]
        .into_iter()
        .chain(optional)
    {
        if value.is_some_and(|v| v.chars().count() > MAX_ADDRESS_CHARS) {
            errors.add(&field(name), "TOO_LONG", format!("at most {MAX_ADDRESS_CHARS} characters"));
        }
    }
    if a.country.len() != 2 || !a.country.bytes().all(|b| b.is_ascii_uppercase()) {
        errors.add(&field("country"), "INVALID_COUNTRY", "an ISO 3166-1 alpha-2 code in upper case, e.g. \"DE\"");
    }
}

/// The address as stored: surrounding blanks trimmed, blank optionals none.
fn tidy(a: PostalAddress) -> PostalAddress {
    let opt = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    PostalAddress {
        line1: a.line1.trim().to_string(),
        line2: opt(a.line2),
        city: a.city.trim().to_string(),
        region: opt(a.region),
        postal_code: a.postal_code.trim().to_string(),
        country: a.country,
    }
}

/// The request's fingerprint: the cart's lines by product id and the
/// address input, each part length-prefixed so no two requests collide by
/// concatenation.
pub fn fingerprint(lines: &[(String, i64)], address: Option<&PostalAddress>) -> String {
    let mut sorted: Vec<&(String, i64)> = lines.iter().collect();
    sorted.sort();
    let mut bytes = Vec::new();
    let mut put = |s: &str| {
        bytes.extend_from_slice(&(s.len() as u64).to_be_bytes());
        bytes.extend_from_slice(s.as_bytes());
    };
    put("lines");
    for (product_id, quantity) in sorted {
        put(product_id);
        put(&quantity.to_string());
    }
    match address {
        None => put("no address"),
        Some(a) => {
            put("address");
            for part in [Some(&a.line1), a.line2.as_ref(), Some(&a.city), a.region.as_ref(), Some(&a.postal_code)] {
                match part {
                    Some(v) => {
                        put("+");
                        put(v);
                    }
                    None => put("-"),
                }
            }
            put(&a.country);
        }
    }
    sha256_hex(&bytes)
}

/// A stored key.
struct KeyRow {
    fingerprint: String,
    order_id: String,
    state: String,
    outcome: Option<FieldError>,
    created_at_ms: i64,
    locked_until_ms: i64,
}

fn read_key(customer_id: &str, key: &str) -> Result<Option<KeyRow>, DomainError> {
    sql::query(
        "SELECT fingerprint, order_id, state, outcome_code, outcome_field, outcome_message, created_at_ms, \
         locked_until_ms FROM idempotency_keys WHERE customer_id = $1 AND idem_key = $2",
        &params![customer_id, key],
    )?
    .first_row()
    .map(|r| {
        let outcome = match r.opt_text("outcome_code")? {
            None => None,
            Some(code) => Some(FieldError {
                field: r.opt_text("outcome_field")?.unwrap_or_default(),
                code,
                message: r.opt_text("outcome_message")?.unwrap_or_default(),
            }),
        };
        Ok(KeyRow {
            fingerprint: r.text("fingerprint")?,
            order_id: r.text("order_id")?,
            state: r.text("state")?,
            outcome,
            created_at_ms: r.int("created_at_ms")?,
            locked_until_ms: r.int("locked_until_ms")?,
        })
    })
    .transpose()
}

/// A key this call owns, and the lease value that proves it.
struct Owned {
    customer_id: String,
    key: String,
    order_id: String,
    lease: i64,
    /// Claimed from an earlier owner whose lease ran out: its reservation
    /// (for the same order id) may exist.
    taken_over: bool,
}

/// The condition of every owner write to its key row (`$1`–`$4`).
const FENCE: &str =
    "customer_id = $1 AND idem_key = $2 AND order_id = $3 AND state = 'in-flight' AND locked_until_ms = $4";

impl Owned {
    /// The fence's parameters followed by `extra` (`$5`…).
    fn fenced(&self, extra: impl IntoIterator<Item = Value>) -> Vec<Value> {
        let mut values = params![&self.customer_id, &self.key, &self.order_id, self.lease].to_vec();
        values.extend(extra);
        values
    }
}

enum Claim {
    Owned(Owned),
    Replay { order_id: String, outcome: Option<FieldError> },
}

/// How often a claim is tried again when the key row changed under it.
const CLAIM_ATTEMPTS: usize = 3;

fn claim(customer_id: &str, key: &str, fingerprint: &str, cart_empty: bool, now_ms: i64) -> Result<Claim, DomainError> {
    let lease = now_ms + LEASE_MS;
    let owned = |order_id: String, taken_over: bool| {
        Claim::Owned(Owned { customer_id: customer_id.into(), key: key.into(), order_id, lease, taken_over })
    };
    for _ in 0..CLAIM_ATTEMPTS {
        let order_id = ids::new_id();
        let inserted = sql::execute(
            "INSERT INTO idempotency_keys (customer_id, idem_key, fingerprint, order_id, state, outcome_code, \
             outcome_field, outcome_message, created_at_ms, locked_until_ms) \
             VALUES ($1, $2, $3, $4, 'in-flight', NULL, NULL, NULL, $5, $6) \
             ON CONFLICT (customer_id, idem_key) DO NOTHING",
            &params![customer_id, key, fingerprint, &order_id, now_ms, lease],
        )?;
        if inserted == 1 {
            return Ok(owned(order_id, false));
        }
        let Some(row) = read_key(customer_id, key)? else {
            continue; // deleted in between (a failed placement freed it)
        };
        if row.state == DONE && row.created_at_ms < now_ms - KEY_LIFETIME_MS {
            // Forgotten: a new request under an old key.
            let taken = sql::execute(
                "UPDATE idempotency_keys SET fingerprint = $3, order_id = $4, state = 'in-flight', \
                 outcome_code = NULL, outcome_field = NULL, outcome_message = NULL, created_at_ms = $5, \
                 locked_until_ms = $6 \
                 WHERE customer_id = $1 AND idem_key = $2 AND state = 'done' AND created_at_ms = $7",
                &params![customer_id, key, fingerprint, &order_id, now_ms, lease, row.created_at_ms],
            )?;
            if taken == 1 {
                return Ok(owned(order_id, false));
            }
            continue;
        }
        if row.fingerprint != fingerprint {
            // A retry after success finds the cart consumed: the same request.
            if row.state == DONE && cart_empty {
                return Ok(Claim::Replay { order_id: row.order_id, outcome: row.outcome });
            }
            return Err(key_reused());
        }
        if row.state == DONE {
            return Ok(Claim::Replay { order_id: row.order_id, outcome: row.outcome });
        }
        if row.state != IN_FLIGHT {
            return Err(DomainError::Internal(format!("idempotency key in unknown state `{}`", row.state)));
        }
        if row.locked_until_ms > now_ms {
            return Err(key_in_use());
        }
        let taken = sql::execute(
            "UPDATE idempotency_keys SET locked_until_ms = $4 \
             WHERE customer_id = $1 AND idem_key = $2 AND order_id = $3 AND state = 'in-flight' \
             AND locked_until_ms = $5",
            &params![customer_id, key, &row.order_id, lease, row.locked_until_ms],
        )?;
        return if taken == 1 { Ok(owned(row.order_id, true)) } else { Err(key_in_use()) };
    }
    Err(key_in_use())
}

/// The answer of a finished key.
fn replay(order_id: &str, outcome: Option<FieldError>) -> Result<Order, DomainError> {
    match outcome {
        Some(error) => Err(DomainError::Invalid(vec![error])),
        None => {
            let order = views::load(order_id)?
                .ok_or_else(|| DomainError::Internal(format!("the order {order_id} of a finished key is missing")))?;
            views::present(order, &Sight::Whole)
        }
    }
}

/// Records, inside `tx`, that the reservation of `order_id` must be given
/// back (see [`release_owed`]).
pub fn owe_release(tx: &Transaction, order_id: &str, now_ms: i64) -> Result<(), DomainError> {
    tx.execute(
        "INSERT INTO owed_releases (order_id, created_at_ms) VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING",
        &params![order_id, now_ms],
    )?;
    Ok(())
}

/// Releases a reservation recorded as owed and forgets it; false (logged)
/// when the product service could not do it, for the upkeep to retry.
pub fn release_owed(order_id: &str) -> bool {
    match inventory::release(order_id) {
        Ok(()) => {
            if let Err(e) = sql::execute("DELETE FROM owed_releases WHERE order_id = $1", &params![order_id]) {
                log::warn(&format!("forgetting the released reservation {order_id} failed: {e:?}"));
            }
            true
        }
        Err(e) => {
            log::warn(&format!("releasing the reservation of {order_id} failed ({e:?}); the upkeep retries"));
            false
        }
    }
}

/// Deletes the key row if this call still owns it, recording its order id
/// as owing a release when it may hold stock; whether it was ours.
fn free_key(owned: &Owned, may_hold_stock: bool, now_ms: i64) -> Result<bool, DomainError> {
    let tx = sql::begin()?;
    if tx.execute(&format!("DELETE FROM idempotency_keys WHERE {FENCE}"), &owned.fenced([]))? == 0 {
        return Ok(false);
    }
    if may_hold_stock {
        owe_release(&tx, &owned.order_id, now_ms)?;
    }
    Transaction::commit(tx)?;
    Ok(true)
}

/// Gives up after a transient failure `e`, freeing the key for a retry.
///
/// Stock is released only after the key row is gone under our fence: from
/// then on nobody can write an order for this order id (a slow earlier
/// owner's writes are fenced out, a retry claims a new id), so releasing
/// cannot take stock from an order. If the key is no longer ours, nothing
/// is touched: its new owner finishes the placement.
fn give_up(owned: &Owned, e: DomainError, reserved: bool, now_ms: i64) -> DomainError {
    let may_hold_stock = reserved || owned.taken_over;
    match free_key(owned, may_hold_stock, now_ms) {
        Ok(true) if may_hold_stock => {
            release_owed(&owned.order_id);
        }
        Ok(_) => {}
        // The key stays in flight: after its lease a retry takes it over
        // (same order id, so no stock is taken twice) or the upkeep
        // releases it.
        Err(db) => log::warn(&format!("freeing the key of failed placement {} failed: {db:?}", owned.order_id)),
    }
    e
}

/// Finishes the key with a deterministic failure, stored for replays. A
/// key taken over may have a reservation from its earlier owner: it is
/// recorded as owed in the same transaction and released.
fn fail(owned: &Owned, error: FieldError, now_ms: i64) -> Result<Order, DomainError> {
    let tx = sql::begin()?;
    let finished = tx.execute(
        &format!(
            "UPDATE idempotency_keys SET state = 'done', outcome_code = $5, outcome_field = $6, outcome_message = $7 \
             WHERE {FENCE}"
        ),
        &owned.fenced(params![&error.code, &error.field, &error.message]),
    )?;
    if finished == 0 {
        return Err(key_in_use());
    }
    if owned.taken_over {
        owe_release(&tx, &owned.order_id, now_ms)?;
    }
    Transaction::commit(tx)?;
    if owned.taken_over {
        release_owed(&owned.order_id);
    }
    Err(DomainError::Invalid(vec![error]))
}

/// One line of the order, as placed.
struct Snapshot {
    product_id: String,
    merchant_id: String,
    name: String,
    quantity: i64,
    /// After the merchant's pricing plugins.
    unit_amount: i64,
    /// What the merchant's pricing plugins took off the line.
    discount: i64,
    /// Their messages, one per line of text.
    notes: Vec<String>,
}

/// The order's lines from the cart, the catalog and the merchants' plugins
/// (which may refuse the cart), or the failure.
fn snapshot(lines: &[(String, i64)], items: &[CatalogItem]) -> Result<(Vec<Snapshot>, String, i64), FieldError> {
    let (mut snapshots, currency, _) = catalog_snapshot(lines, items)?;
    let positions: Vec<usize> = (0..snapshots.len()).collect();
    let sent = snapshots
        .iter()
        .map(|s| ExtensionLine {
            product_id: s.product_id.clone(),
            merchant_id: s.merchant_id.clone(),
            quantity: s.quantity,
            unit_price: Money { amount: s.unit_amount, currency: currency.clone() },
        })
        .collect();
    let priced = pricing::apply(Step::Checkout, sent, &positions);
    if let Some(refused) = pricing::refusal(&priced.issues) {
        return Err(refused);
    }
    let mut total: i64 = 0;
    for (snapshot, p) in snapshots.iter_mut().zip(priced.lines) {
        if p.unit_price.currency != currency {
            return Err(FieldError::invalid("cart", "MIXED_CURRENCIES", "a plugin changed a line's currency"));
        }
        snapshot.unit_amount = p.unit_price.amount;
        snapshot.discount = p.discount;
        snapshot.notes = p.notes;
        total = line_total(snapshot.unit_amount, snapshot.quantity)
            .map(|gross| gross - snapshot.discount)
            .and_then(|net| total.checked_add(net))
            .ok_or_else(|| FieldError::invalid("cart", "AMOUNT_TOO_LARGE", "the order total is too large"))?;
    }
    Ok((snapshots, currency, total))
}

/// The order's lines at catalog prices.
fn catalog_snapshot(
    lines: &[(String, i64)],
    items: &[CatalogItem],
) -> Result<(Vec<Snapshot>, String, i64), FieldError> {
    let mut snapshots = Vec::with_capacity(lines.len());
    let mut currency: Option<&str> = None;
    let mut total: i64 = 0;
    for (i, (product_id, quantity)) in lines.iter().enumerate() {
        let Some(item) = items.iter().find(|item| &item.id == product_id) else {
            return Err(FieldError::invalid(
                &format!("lines.{i}.productId"),
                "PRODUCT_UNAVAILABLE",
                format!("product {product_id} is no longer available"),
            ));
        };
        match currency {
            None => currency = Some(&item.price.currency),
            Some(c) if c == item.price.currency => {}
            Some(_) => {
                return Err(FieldError::invalid(
                    "cart",
                    "MIXED_CURRENCIES",
                    "an order is in one currency; the cart has lines in several",
                ));
            }
        }
        total = line_total(item.price.amount, *quantity)
            .and_then(|t| total.checked_add(t))
            .ok_or_else(|| FieldError::invalid("cart", "AMOUNT_TOO_LARGE", "the order total is too large"))?;
        snapshots.push(Snapshot {
            product_id: product_id.clone(),
            merchant_id: item.merchant_id.clone(),
            name: item.name.clone(),
            quantity: *quantity,
            unit_amount: item.price.amount,
            discount: 0,
            notes: Vec::new(),
        });
    }
    Ok((snapshots, currency.unwrap_or_default().to_string(), total))
}

/// The first short line, as a field error.
fn out_of_stock(lines: &[(String, i64)], shortages: &[Shortage]) -> FieldError {
    let first = lines
        .iter()
        .enumerate()
        .find_map(|(i, (product_id, _))| shortages.iter().find(|s| &s.product_id == product_id).map(|s| (i, s)));
    match first {
        Some((i, s)) => FieldError::invalid(
            &format!("lines.{i}.quantity"),
            "OUT_OF_STOCK",
            format!("{} requested, only {} available", s.requested, s.available.max(0)),
        ),
        None => FieldError::invalid("cart", "OUT_OF_STOCK", "not enough stock for this cart"),
    }
}

/// What writing the order came to.
enum Written {
    Done,
    /// The key was taken over meanwhile; nothing was written.
    LostKey,
    /// The placed lines were no longer in the cart; nothing was written.
    CartChanged,
}

fn write_order(
    owned: &Owned,
    cart_id: &str,
    lines: &[Snapshot],
    currency: &str,
    total: i64,
    address: Option<&PostalAddress>,
    now_ms: i64,
) -> Result<Written, DomainError> {
    let tx = sql::begin()?;
    let a = address;
    tx.execute(
        "INSERT INTO orders (id, customer_id, status, payment_status, currency, total_amount, paid_amount, \
         stock_state, ship_line1, ship_line2, ship_city, ship_region, ship_postal_code, ship_country, \
         placed_at_ms, updated_at_ms) \
         VALUES ($1, $2, 'pending-payment', $3, $4, $5, 0, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
        &params![
            &owned.order_id,
            &owned.customer_id,
            status::PAYMENT_NONE,
            currency,
            total,
            stock::COMMITTED,
            a.map(|a| a.line1.clone()),
            a.and_then(|a| a.line2.clone()),
            a.map(|a| a.city.clone()),
            a.and_then(|a| a.region.clone()),
            a.map(|a| a.postal_code.clone()),
            a.map(|a| a.country.clone()),
            now_ms
        ],
    )?;
    for (position, line) in lines.iter().enumerate() {
        tx.execute(
            "INSERT INTO order_lines (id, order_id, position, product_id, merchant_id, name, quantity, \
             unit_price_amount, currency, fulfilled_quantity, discount_amount, notes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11)",
            &params![
                ids::new_id(),
                &owned.order_id,
                position as i64,
                &line.product_id,
                &line.merchant_id,
                &line.name,
                line.quantity,
                line.unit_amount,
                currency,
                line.discount,
                line.notes.join("\n")
            ],
        )?;
    }
    let mut placed: Vec<Value> = vec![Value::from(cart_id)];
    placed.extend(lines.iter().map(|l| Value::from(&l.product_id)));
    let removed = tx.execute(
        &format!("DELETE FROM cart_lines WHERE cart_id = $1 AND product_id IN ({})", sql::placeholders(2, lines.len())),
        &placed,
    )?;
    if removed != lines.len() as u64 {
        // Another placement (under another key) consumed these lines, or
        // they were removed meanwhile: this order no longer is the cart.
        return Ok(Written::CartChanged);
    }
    tx.execute("UPDATE carts SET updated_at_ms = $2 WHERE id = $1", &params![cart_id, now_ms])?;
    let finished = tx.execute(
        &format!(
            "UPDATE idempotency_keys SET state = 'done', outcome_code = NULL, outcome_field = NULL, \
             outcome_message = NULL WHERE {FENCE}"
        ),
        &owned.fenced([]),
    )?;
    if finished == 0 {
        return Ok(Written::LostKey);
    }
    Transaction::commit(tx)?;
    Ok(Written::Done)
}

pub fn place_order(input: PlaceOrderInput) -> Result<Order, DomainError> {
    let ctx = call_context();
    let now_ms = ctx.now_ms;
    let customer_id = signed_in(&ctx, "place an order")?.account_id.clone();
    let mut errors = FieldErrors::new();
    check_key(&mut errors, &input.idempotency_key);
    if let Some(address) = &input.shipping_address {
        check_address(&mut errors, "shippingAddress", address);
    }
    errors.finish()?;

    // 1. The request: the cart's lines and the address input.
    let cart_id = cart::customer_cart_id(&customer_id)?;
    let lines: Vec<(String, i64)> = match &cart_id {
        Some(id) => cart::stored_lines(id)?.into_iter().map(|l| (l.product_id, l.quantity)).collect(),
        None => Vec::new(),
    };
    let print = fingerprint(&lines, input.shipping_address.as_ref());

    // 2. The key.
    let mut owned = match claim(&customer_id, &input.idempotency_key, &print, lines.is_empty(), now_ms)? {
        Claim::Replay { order_id, outcome } => return replay(&order_id, outcome),
        Claim::Owned(owned) => owned,
    };

    // 3. What the order would be.
    let Some(cart_id) = cart_id.filter(|_| !lines.is_empty()) else {
        return fail(&owned, FieldError::invalid("cart", "EMPTY_CART", "the cart is empty"), now_ms);
    };
    let ids: Vec<String> = lines.iter().map(|(p, _)| p.clone()).collect();
    let items = match catalog::get_items(&ids) {
        Ok(items) => items,
        Err(e) => return Err(give_up(&owned, e, false, now_ms)),
    };
    let (snapshots, currency, total) = match snapshot(&lines, &items) {
        Ok(s) => s,
        Err(error) => return fail(&owned, error, now_ms),
    };
    let address = match input.shipping_address {
        Some(address) => Some(address),
        None => match customers::current_customer() {
            Ok(customer) => customer.default_address,
            Err(e) => return Err(give_up(&owned, e, false, now_ms)),
        },
    };
    if let Some(address) = &address {
        let mut errors = FieldErrors::new();
        check_address(&mut errors, "shippingAddress", address);
        if let Err(DomainError::Invalid(mut found)) = errors.finish() {
            return fail(&owned, found.swap_remove(0), now_ms);
        }
    }
    let address = address.map(tidy);

    // 4. Reserve the stock for the order id the key fixed.
    let stock_lines: Vec<StockLine> = lines
        .iter()
        .map(|(product_id, quantity)| StockLine { product_id: product_id.clone(), quantity: *quantity })
        .collect();
    let mut reserved = false;
    for _ in 0..2 {
        match inventory::reserve(&owned.order_id, &stock_lines, now_ms + HOLD_MS) {
            Ok(ReservationState::Held | ReservationState::Committed) => {
                reserved = true;
                break;
            }
            Ok(ReservationState::Released) => {
                // An earlier attempt's hold for this order id expired and
                // went back: reserve anew under a new order id.
                let new_id = ids::new_id();
                let moved = sql::execute(
                    &format!("UPDATE idempotency_keys SET order_id = $5 WHERE {FENCE}"),
                    &owned.fenced([Value::from(&new_id)]),
                )?;
                if moved == 0 {
                    return Err(key_in_use());
                }
                owned.order_id = new_id;
                owned.taken_over = false;
            }
            Err(ReserveError::Insufficient(shortages)) => {
                return fail(&owned, out_of_stock(&lines, &shortages), now_ms);
            }
            Err(ReserveError::Failed(e)) => return Err(give_up(&owned, e, true, now_ms)),
        }
    }
    if !reserved {
        let e = DomainError::Unavailable("the stock reservation keeps being released; retry".into());
        return Err(give_up(&owned, e, true, now_ms));
    }

    // 5. Commit it: the order will hold its units from the moment it exists.
    if let Err(e) = inventory::commit(&owned.order_id) {
        return Err(give_up(&owned, e, true, now_ms));
    }

    // 6. The order, the cart and the key, together.
    match write_order(&owned, &cart_id, &snapshots, &currency, total, address.as_ref(), now_ms) {
        Ok(Written::Done) => replay(&owned.order_id, None),
        Ok(Written::LostKey) => Err(key_in_use()),
        Ok(Written::CartChanged) => {
            let e = DomainError::Conflict("the cart changed while the order was being placed; retry".into());
            Err(give_up(&owned, e, true, now_ms))
        }
        Err(e) => Err(give_up(&owned, e, true, now_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(country: &str) -> PostalAddress {
        PostalAddress {
            line1: "1 Main St".into(),
            line2: None,
            city: "Springfield".into(),
            region: None,
            postal_code: "12345".into(),
            country: country.into(),
        }
    }

    #[test]
    fn fingerprints_ignore_line_order_but_not_quantities_or_address() {
        let a = vec![("p1".to_string(), 1), ("p2".to_string(), 2)];
        let b = vec![("p2".to_string(), 2), ("p1".to_string(), 1)];
        let c = vec![("p2".to_string(), 3), ("p1".to_string(), 1)];
        assert_eq!(fingerprint(&a, None), fingerprint(&b, None));
        assert_ne!(fingerprint(&a, None), fingerprint(&c, None));
        assert_ne!(fingerprint(&a, None), fingerprint(&a, Some(&address("US"))));
        assert_ne!(fingerprint(&a, Some(&address("US"))), fingerprint(&a, Some(&address("DE"))));
        assert_ne!(fingerprint(&[], None), fingerprint(&a, None));
    }

    #[test]
    fn keys_are_printable_ascii_up_to_255() {
        let check = |k: &str| {
            let mut e = FieldErrors::new();
            check_key(&mut e, k);
            e.is_empty()
        };
        assert!(check("checkout-1"));
        assert!(check(&"k".repeat(255)));
        assert!(!check(""));
        assert!(!check(&"k".repeat(256)));
        assert!(!check("tab\there"));
        assert!(!check("ünï"));
    }

    #[test]
    fn addresses_need_the_basics_and_a_country_code() {
        let mut e = FieldErrors::new();
        check_address(&mut e, "shippingAddress", &address("US"));
        assert!(e.is_empty());
        let mut bad = address("us");
        bad.city = "  ".into();
        let mut e = FieldErrors::new();
        check_address(&mut e, "shippingAddress", &bad);
        let Err(DomainError::Invalid(found)) = e.finish() else { panic!("expected errors") };
        let fields: Vec<_> = found.iter().map(|f| (f.field.as_str(), f.code.as_str())).collect();
        assert_eq!(fields, vec![("shippingAddress.city", "REQUIRED"), ("shippingAddress.country", "INVALID_COUNTRY")]);
    }

    #[test]
    fn snapshots_refuse_gone_products_and_mixed_currencies() {
        let item = |id: &str, currency: &str| CatalogItem {
            id: id.into(),
            merchant_id: "m".into(),
            name: id.into(),
            price: polyscale_guest::Money { amount: 250, currency: currency.into() },
            available: 5,
        };
        let lines = vec![("a".to_string(), 2), ("b".to_string(), 1)];
        let (snap, currency, total) = catalog_snapshot(&lines, &[item("b", "USD"), item("a", "USD")]).unwrap();
        assert_eq!((snap.len(), currency.as_str(), total), (2, "USD", 750));
        let gone = catalog_snapshot(&lines, &[item("a", "USD")]).err().unwrap();
        assert_eq!((gone.field.as_str(), gone.code.as_str()), ("lines.1.productId", "PRODUCT_UNAVAILABLE"));
        let mixed = catalog_snapshot(&lines, &[item("a", "USD"), item("b", "EUR")]).err().unwrap();
        assert_eq!(mixed.code, "MIXED_CURRENCIES");
    }

    #[test]
    fn out_of_stock_names_the_first_short_line_in_cart_order() {
        let lines = vec![("a".to_string(), 2), ("b".to_string(), 3)];
        let short = vec![Shortage { product_id: "b".into(), requested: 3, available: 1 }];
        let e = out_of_stock(&lines, &short);
        assert_eq!((e.field.as_str(), e.code.as_str()), ("lines.1.quantity", "OUT_OF_STOCK"));
        assert_eq!(e.message, "3 requested, only 1 available");
    }
}
