//! Carts: the `get-cart`, `add-to-cart`, `update-cart-line`,
//! `remove-cart-line` and `clear-cart` exports.
//!
//! **Which cart** (`cart-ref`):
//! - a signed-in caller uses their customer cart (`carts.customer_id`),
//!   created on the first write (`INSERT … ON CONFLICT (customer_id) DO
//!   NOTHING`, so concurrent first writes share one cart); reading before
//!   any write answers an empty cart with id `""`. If a guest token comes
//!   too, that guest cart's lines are merged into the customer cart
//!   (quantities summed, capped at [`MAX_QUANTITY`]; guest lines beyond
//!   [`MAX_LINES`] are dropped and logged) and the guest cart is deleted,
//!   in one transaction. The guest lines are taken with one `DELETE …
//!   RETURNING`, so two concurrent merges cannot both add them. A token
//!   that matches no cart (already merged, say) is ignored.
//! - an anonymous caller with a guest token uses the cart whose
//!   `guest_token_hash` is the hex SHA-256 of the token; an unknown token
//!   is `not-found` ("unknown cart token").
//! - an anonymous caller without a token has no cart: reads and removals
//!   answer an empty cart (id `""`) without creating one; `add-to-cart`
//!   creates a guest cart with a fresh 256-bit random token, returned once
//!   in `cart-answer.guest-token`. Only its hash is stored.
//!
//! **Lines:** product ids are validated as ids; `add-to-cart` needs a
//! quantity ≥ 1 (`NEGATIVE_QUANTITY` below 0, `INVALID_QUANTITY` for 0) and
//! a product the catalog knows (`UNKNOWN_PRODUCT` on `productId`), whose
//! current price is recorded as the line's added price (kept when more
//! units are added later); `update-cart-line` takes ≥ 0 (0 removes the
//! line; a positive quantity for a product not in the cart is
//! `not-found`). A line holds at most [`MAX_QUANTITY`] units
//! (`QUANTITY_TOO_LARGE`), a cart at most [`MAX_LINES`] lines
//! (`CART_FULL`). Every write first touches the cart row, which serializes
//! writes to one cart on PostgreSQL, so the line limit holds under
//! concurrency.
//!
//! **Pricing:** every answer is priced live with one `catalog.get-items`
//! call for all lines: today's unit price and line total, the added price
//! as `previous-unit-price` when it differs, `available`, and
//! `purchasable = false` (price 0 in the added currency, no total) for
//! products that are gone. Totals are one per currency, in alphabetical
//! order; `item-count` sums every line's quantity.

use std::collections::{BTreeMap, HashMap};

use polyscale_guest::bindings::types::DomainError;
use polyscale_guest::sql::{self, RowsExt, Transaction};
use polyscale_guest::{CallContext, FieldErrors, Invalid, call_context, ids, log, params};

use crate::bindings::exports::polyscale::commerce::orders::{Cart, CartAnswer, CartIssue, CartLine, CartRef};
use crate::bindings::polyscale::commerce::catalog::{self, CatalogItem};
use crate::bindings::polyscale::commerce::extensions::{ExtensionLine, Step};
use crate::pricing;
use crate::support::{line_total, money, random_token, sha256_hex};

/// Most units of one product in a cart line.
pub const MAX_QUANTITY: i64 = 10_000;
/// Most lines in one cart (also what one `catalog.get-items` call prices).
pub const MAX_LINES: usize = 100;
/// Longest guest token looked up; real ones are 43 characters.
const MAX_TOKEN_LEN: usize = 256;

/// The hash under which a guest token's cart is stored, or None for a
/// value no token can have.
fn token_hash(token: &str) -> Option<String> {
    (!token.is_empty() && token.len() <= MAX_TOKEN_LEN).then(|| sha256_hex(token.as_bytes()))
}

/// A cart line as stored.
pub struct StoredLine {
    pub product_id: String,
    pub quantity: i64,
    pub added_amount: i64,
    pub added_currency: String,
}

/// The lines of a cart, in the order they were added.
pub fn stored_lines(cart_id: &str) -> Result<Vec<StoredLine>, DomainError> {
    sql::query(
        "SELECT product_id, quantity, added_price_amount, added_price_currency FROM cart_lines \
         WHERE cart_id = $1 ORDER BY added_at_ms, product_id",
        &params![cart_id],
    )?
    .map_rows(|r| {
        Ok(StoredLine {
            product_id: r.text("product_id")?,
            quantity: r.int("quantity")?,
            added_amount: r.int("added_price_amount")?,
            added_currency: r.text("added_price_currency")?,
        })
    })
}

/// The customer's cart id, if they have one.
pub fn customer_cart_id(customer_id: &str) -> Result<Option<String>, DomainError> {
    sql::query("SELECT id FROM carts WHERE customer_id = $1", &params![customer_id])?
        .first_row()
        .map(|r| r.text("id"))
        .transpose()
}

/// The customer's cart id, created if missing, within `tx`.
fn ensure_customer_cart(tx: &Transaction, customer_id: &str, now_ms: i64) -> Result<String, DomainError> {
    tx.execute(
        "INSERT INTO carts (id, customer_id, guest_token_hash, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, NULL, $3, $3) ON CONFLICT (customer_id) DO NOTHING",
        &params![ids::new_id(), customer_id, now_ms],
    )?;
    tx.query("SELECT id FROM carts WHERE customer_id = $1", &params![customer_id])?
        .first_row()
        .map(|r| r.text("id"))
        .transpose()?
        .ok_or_else(|| DomainError::Internal("the customer cart vanished".into()))
}

/// Moves the guest cart of `token` (if any) into the customer's cart and
/// deletes it; returns the customer cart's id when a guest cart was found.
fn merge_guest_cart(
    tx: &Transaction,
    customer_id: &str,
    token: &str,
    now_ms: i64,
) -> Result<Option<String>, DomainError> {
    let Some(hash) = token_hash(token) else {
        return Ok(None);
    };
    let guest = tx.query("SELECT id FROM carts WHERE guest_token_hash = $1", &params![hash])?;
    let Some(guest_id) = guest.first_row().map(|r| r.text("id")).transpose()? else {
        return Ok(None);
    };
    let cart_id = ensure_customer_cart(tx, customer_id, now_ms)?;
    touch(tx, &cart_id, now_ms)?;
    // Taking the lines and deleting them is one statement: a concurrent
    // merge of the same guest cart finds nothing left to add.
    let taken = tx
        .query(
            "DELETE FROM cart_lines WHERE cart_id = $1 \
             RETURNING product_id, quantity, added_price_amount, added_price_currency, added_at_ms",
            &params![&guest_id],
        )?
        .map_rows(|r| {
            Ok((
                r.int("added_at_ms")?,
                r.text("product_id")?,
                r.int("quantity")?,
                r.int("added_price_amount")?,
                r.text("added_price_currency")?,
            ))
        })?;
    tx.execute("DELETE FROM carts WHERE id = $1", &params![&guest_id])?;
    let existing: Vec<String> = tx
        .query("SELECT product_id FROM cart_lines WHERE cart_id = $1", &params![&cart_id])?
        .map_rows(|r| r.text("product_id"))?;
    let mut count = existing.len();
    let mut taken = taken;
    taken.sort();
    let mut dropped = 0;
    for (added_at_ms, product_id, quantity, amount, currency) in taken {
        if existing.contains(&product_id) {
            tx.execute(
                "UPDATE cart_lines SET quantity = CASE WHEN quantity + $1 > $2 THEN $2 ELSE quantity + $1 END \
                 WHERE cart_id = $3 AND product_id = $4",
                &params![quantity, MAX_QUANTITY, &cart_id, &product_id],
            )?;
        } else if count < MAX_LINES {
            tx.execute(
                "INSERT INTO cart_lines \
                 (cart_id, product_id, quantity, added_price_amount, added_price_currency, added_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &params![&cart_id, &product_id, quantity.min(MAX_QUANTITY), amount, currency, added_at_ms],
            )?;
            count += 1;
        } else {
            dropped += 1;
        }
    }
    if dropped > 0 {
        log::warn(&format!("merging a guest cart dropped {dropped} lines past the {MAX_LINES}-line limit"));
    }
    Ok(Some(cart_id))
}

/// Marks the cart changed; on PostgreSQL this also locks its row, so
/// writes to one cart take turns.
fn touch(tx: &Transaction, cart_id: &str, now_ms: i64) -> Result<(), DomainError> {
    tx.execute("UPDATE carts SET updated_at_ms = $2 WHERE id = $1", &params![cart_id, now_ms])?;
    Ok(())
}

/// The cart a call works on.
struct Opened {
    /// None: the caller has no cart (and none was needed).
    cart_id: Option<String>,
    /// A guest token minted for a cart created by this call.
    new_token: Option<String>,
}

/// Resolves `which` within `tx`; `create` makes the cart when missing.
fn open(ctx: &CallContext, which: &CartRef, tx: &Transaction, create: bool) -> Result<Opened, DomainError> {
    let now_ms = ctx.now_ms;
    let token = which.guest_token.as_deref();
    match (&ctx.caller, token) {
        (Some(caller), token) => {
            let customer_id = caller.account_id.as_str();
            let merged = match token {
                Some(token) => merge_guest_cart(tx, customer_id, token, now_ms)?,
                None => None,
            };
            let cart_id = match merged {
                Some(id) => Some(id),
                None if create => Some(ensure_customer_cart(tx, customer_id, now_ms)?),
                None => tx
                    .query("SELECT id FROM carts WHERE customer_id = $1", &params![customer_id])?
                    .first_row()
                    .map(|r| r.text("id"))
                    .transpose()?,
            };
            Ok(Opened { cart_id, new_token: None })
        }
        (None, Some(token)) => {
            let unknown = || DomainError::NotFound("unknown cart token".into());
            let hash = token_hash(token).ok_or_else(unknown)?;
            let cart_id = tx
                .query("SELECT id FROM carts WHERE guest_token_hash = $1", &params![hash])?
                .first_row()
                .map(|r| r.text("id"))
                .transpose()?
                .ok_or_else(unknown)?;
            Ok(Opened { cart_id: Some(cart_id), new_token: None })
        }
        (None, None) if create => {
            let token = random_token()?;
            let cart_id = ids::new_id();
            tx.execute(
                "INSERT INTO carts (id, customer_id, guest_token_hash, created_at_ms, updated_at_ms) \
                 VALUES ($1, NULL, $2, $3, $3)",
                &params![&cart_id, sha256_hex(token.as_bytes()), now_ms],
            )?;
            Ok(Opened { cart_id: Some(cart_id), new_token: Some(token) })
        }
        (None, None) => Ok(Opened { cart_id: None, new_token: None }),
    }
}

fn empty_cart() -> Cart {
    Cart {
        id: String::new(),
        lines: Vec::new(),
        totals: Vec::new(),
        item_count: 0,
        issues: Vec::new(),
        updated_at_ms: 0,
    }
}

/// A cart's lines priced with the catalog's items (before plugins), the
/// totals per currency and the item count.
struct PricedCart {
    lines: Vec<CartLine>,
    totals: Vec<polyscale_guest::Money>,
    item_count: i64,
}

/// Prices stored lines with the catalog's items.
fn price_lines(lines: Vec<StoredLine>, items: &[CatalogItem]) -> PricedCart {
    let by_id: HashMap<&str, &CatalogItem> = items.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut item_count: i64 = 0;
    let priced = lines
        .into_iter()
        .map(|line| {
            item_count = item_count.saturating_add(line.quantity);
            match by_id.get(line.product_id.as_str()) {
                Some(item) => {
                    let total = line_total(item.price.amount, line.quantity).unwrap_or(i64::MAX);
                    let changed = line.added_amount != item.price.amount || line.added_currency != item.price.currency;
                    CartLine {
                        product_id: line.product_id,
                        merchant_id: item.merchant_id.clone(),
                        name: item.name.clone(),
                        quantity: line.quantity,
                        unit_price: item.price.clone(),
                        discount: money(0, &item.price.currency),
                        line_total: money(total, &item.price.currency),
                        notes: Vec::new(),
                        previous_unit_price: changed.then(|| money(line.added_amount, &line.added_currency)),
                        available: item.available,
                        purchasable: true,
                    }
                }
                None => CartLine {
                    product_id: line.product_id,
                    merchant_id: String::new(),
                    name: String::new(),
                    quantity: line.quantity,
                    unit_price: money(0, &line.added_currency),
                    discount: money(0, &line.added_currency),
                    line_total: money(0, &line.added_currency),
                    notes: Vec::new(),
                    previous_unit_price: None,
                    available: 0,
                    purchasable: false,
                },
            }
        })
        .collect();
    let mut cart = PricedCart { lines: priced, totals: Vec::new(), item_count };
    cart.totals = totals(&cart.lines);
    cart
}

/// One total per currency (alphabetical) over the purchasable lines.
fn totals(lines: &[CartLine]) -> Vec<polyscale_guest::Money> {
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.purchasable) {
        let sum = totals.entry(line.line_total.currency.clone()).or_insert(0);
        *sum = sum.saturating_add(line.line_total.amount);
    }
    totals.into_iter().map(|(currency, amount)| money(amount, &currency)).collect()
}

/// Applies the merchants' plugins to the purchasable lines: their prices,
/// discounts and notes, the totals again, and what the plugins say.
fn apply_plugins(cart: &mut PricedCart) -> Vec<CartIssue> {
    let positions: Vec<usize> = (0..cart.lines.len()).filter(|&i| cart.lines[i].purchasable).collect();
    let sent: Vec<ExtensionLine> = positions
        .iter()
        .map(|&i| {
            let l = &cart.lines[i];
            ExtensionLine {
                product_id: l.product_id.clone(),
                merchant_id: l.merchant_id.clone(),
                quantity: l.quantity,
                unit_price: l.unit_price.clone(),
            }
        })
        .collect();
    let priced = pricing::apply(Step::Cart, sent, &positions);
    for (&i, p) in positions.iter().zip(priced.lines) {
        let line = &mut cart.lines[i];
        let gross = line_total(p.unit_price.amount, line.quantity).unwrap_or(i64::MAX);
        line.line_total = money(gross.saturating_sub(p.discount), &p.unit_price.currency);
        line.discount = money(p.discount, &p.unit_price.currency);
        line.unit_price = p.unit_price;
        line.notes = p.notes;
    }
    cart.totals = totals(&cart.lines);
    priced
        .issues
        .into_iter()
        .map(|i| CartIssue {
            merchant_id: i.merchant_id,
            code: i.code,
            message: i.message,
            field: i.target,
            blocking: i.blocking,
        })
        .collect()
}

/// The answer for a cart, priced now.
fn answer(cart_id: Option<String>, new_token: Option<String>) -> Result<CartAnswer, DomainError> {
    let Some(cart_id) = cart_id else {
        return Ok(CartAnswer { cart: empty_cart(), guest_token: new_token });
    };
    let updated_at_ms = sql::query("SELECT updated_at_ms FROM carts WHERE id = $1", &params![&cart_id])?
        .first_row()
        .map(|r| r.int("updated_at_ms"))
        .transpose()?
        .unwrap_or(0);
    let lines = stored_lines(&cart_id)?;
    let items = if lines.is_empty() {
        Vec::new()
    } else {
        let ids: Vec<String> = lines.iter().map(|l| l.product_id.clone()).collect();
        catalog::get_items(&ids)?
    };
    let mut priced = price_lines(lines, &items);
    let issues = apply_plugins(&mut priced);
    let PricedCart { lines, totals, item_count } = priced;
    Ok(CartAnswer {
        cart: Cart { id: cart_id, lines, totals, item_count, issues, updated_at_ms },
        guest_token: new_token,
    })
}

fn parse_product_id(errors: &mut FieldErrors, product_id: &str) -> String {
    errors.take(ids::parse_id("productId", product_id)).unwrap_or_default()
}

fn check_quantity(errors: &mut FieldErrors, quantity: i64, zero_allowed: bool) {
    if quantity < 0 {
        errors.add("quantity", "NEGATIVE_QUANTITY", "the quantity must not be negative");
    } else if quantity == 0 && !zero_allowed {
        errors.add("quantity", "INVALID_QUANTITY", "add at least one unit");
    } else if quantity > MAX_QUANTITY {
        errors.add("quantity", "QUANTITY_TOO_LARGE", format!("a cart line holds at most {MAX_QUANTITY} units"));
    }
}

fn not_in_cart() -> DomainError {
    DomainError::NotFound("this product is not in the cart".into())
}

/// Sets (or removes, for 0) one line of the caller's cart.
fn set_line(which: CartRef, product_id: &str, quantity: i64) -> Result<CartAnswer, DomainError> {
    let ctx = call_context();
    let tx = sql::begin()?;
    let opened = open(&ctx, &which, &tx, false)?;
    let Some(cart_id) = opened.cart_id else {
        return if quantity == 0 { answer(None, None) } else { Err(not_in_cart()) };
    };
    touch(&tx, &cart_id, ctx.now_ms)?;
    if quantity == 0 {
        tx.execute("DELETE FROM cart_lines WHERE cart_id = $1 AND product_id = $2", &params![&cart_id, product_id])?;
    } else {
        let updated = tx.execute(
            "UPDATE cart_lines SET quantity = $3 WHERE cart_id = $1 AND product_id = $2",
            &params![&cart_id, product_id, quantity],
        )?;
        if updated == 0 {
            return Err(not_in_cart());
        }
    }
    Transaction::commit(tx)?;
    answer(Some(cart_id), None)
}

pub fn get_cart(which: CartRef) -> Result<CartAnswer, DomainError> {
    let ctx = call_context();
    let tx = sql::begin()?;
    let opened = open(&ctx, &which, &tx, false)?;
    Transaction::commit(tx)?;
    answer(opened.cart_id, None)
}

pub fn add_to_cart(which: CartRef, product_id: String, quantity: i64) -> Result<CartAnswer, DomainError> {
    let ctx = call_context();
    let mut errors = FieldErrors::new();
    let product_id = parse_product_id(&mut errors, &product_id);
    check_quantity(&mut errors, quantity, false);
    errors.finish()?;
    // Ask the catalog before opening a transaction: no database work
    // waits on another service.
    let items = catalog::get_items(std::slice::from_ref(&product_id))?;
    let Some(item) = items.into_iter().find(|i| i.id == product_id) else {
        return Err(DomainError::invalid("productId", "UNKNOWN_PRODUCT", "no product with this id"));
    };
    let tx = sql::begin()?;
    let opened = open(&ctx, &which, &tx, true)?;
    let cart_id = opened.cart_id.ok_or_else(|| DomainError::Internal("no cart after creating one".into()))?;
    touch(&tx, &cart_id, ctx.now_ms)?;
    let present = !tx
        .query(
            "SELECT quantity FROM cart_lines WHERE cart_id = $1 AND product_id = $2",
            &params![&cart_id, &product_id],
        )?
        .rows
        .is_empty();
    if !present {
        let count = tx
            .query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM cart_lines WHERE cart_id = $1", &params![&cart_id])?
            .first_row()
            .map(|r| r.int("n"))
            .transpose()?
            .unwrap_or(0);
        if count >= MAX_LINES as i64 {
            return Err(DomainError::invalid(
                "productId",
                "CART_FULL",
                format!("a cart holds at most {MAX_LINES} different products"),
            ));
        }
    }
    let written = tx.execute(
        "INSERT INTO cart_lines \
         (cart_id, product_id, quantity, added_price_amount, added_price_currency, added_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (cart_id, product_id) DO UPDATE SET quantity = cart_lines.quantity + excluded.quantity \
         WHERE cart_lines.quantity + excluded.quantity <= $7",
        &params![&cart_id, &product_id, quantity, item.price.amount, item.price.currency, ctx.now_ms, MAX_QUANTITY],
    )?;
    if written == 0 {
        return Err(DomainError::invalid(
            "quantity",
            "QUANTITY_TOO_LARGE",
            format!("a cart line holds at most {MAX_QUANTITY} units"),
        ));
    }
    Transaction::commit(tx)?;
    answer(Some(cart_id), opened.new_token)
}

pub fn update_cart_line(which: CartRef, product_id: String, quantity: i64) -> Result<CartAnswer, DomainError> {
    let mut errors = FieldErrors::new();
    let product_id = parse_product_id(&mut errors, &product_id);
    check_quantity(&mut errors, quantity, true);
    errors.finish()?;
    set_line(which, &product_id, quantity)
}

pub fn remove_cart_line(which: CartRef, product_id: String) -> Result<CartAnswer, DomainError> {
    let mut errors = FieldErrors::new();
    let product_id = parse_product_id(&mut errors, &product_id);
    errors.finish()?;
    set_line(which, &product_id, 0)
}

pub fn clear_cart(which: CartRef) -> Result<CartAnswer, DomainError> {
    let ctx = call_context();
    let tx = sql::begin()?;
    let opened = open(&ctx, &which, &tx, false)?;
    let Some(cart_id) = opened.cart_id else {
        return answer(None, None);
    };
    touch(&tx, &cart_id, ctx.now_ms)?;
    tx.execute("DELETE FROM cart_lines WHERE cart_id = $1", &params![&cart_id])?;
    Transaction::commit(tx)?;
    answer(Some(cart_id), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, amount: i64, currency: &str) -> CatalogItem {
        CatalogItem {
            id: id.into(),
            merchant_id: "m".into(),
            name: id.to_uppercase(),
            price: money(amount, currency),
            available: 7,
        }
    }

    fn stored(id: &str, quantity: i64, amount: i64, currency: &str) -> StoredLine {
        StoredLine { product_id: id.into(), quantity, added_amount: amount, added_currency: currency.into() }
    }

    #[test]
    fn prices_live_flags_changes_and_totals_per_currency() {
        let lines = vec![
            stored("b", 2, 100, "USD"),
            stored("a", 1, 900, "USD"),
            stored("c", 3, 50, "EUR"),
            stored("gone", 4, 10, "USD"),
        ];
        let items = vec![item("a", 1_000, "USD"), item("b", 100, "USD"), item("c", 50, "EUR")];
        let PricedCart { lines: priced, totals, item_count: count } = price_lines(lines, &items);
        assert_eq!(count, 10);
        assert_eq!(priced[0].line_total.amount, 200);
        assert!(priced[0].previous_unit_price.is_none());
        assert_eq!(priced[1].previous_unit_price.as_ref().map(|m| m.amount), Some(900));
        assert!(!priced[3].purchasable);
        assert_eq!(priced[3].unit_price.amount, 0);
        let totals: Vec<(String, i64)> = totals.into_iter().map(|m| (m.currency, m.amount)).collect();
        assert_eq!(totals, vec![("EUR".to_string(), 150), ("USD".to_string(), 1_200)]);
    }

    #[test]
    fn token_hashes_refuse_impossible_tokens() {
        assert!(token_hash("").is_none());
        assert!(token_hash(&"x".repeat(MAX_TOKEN_LEN + 1)).is_none());
        assert_eq!(token_hash("abc").unwrap().len(), 64);
    }
}
