//! Schema of the order database. Released migrations never change; add a
//! new one instead.
//!
//! - `carts`: one per signed-in customer (`customer_id`) or per guest
//!   (`guest_token_hash`, the hex SHA-256 of the guest token; the token
//!   itself is never stored).
//! - `cart_lines`: quantities and the price each line was added at.
//! - `orders` / `order_lines`: placed orders with a snapshot of each line
//!   (name, merchant, unit price). `stock_state` says where the order's
//!   stock reservation is: `committed` once placed, `released` after
//!   cancellation (`reserved` is a commit still owed, which the upkeep
//!   finishes). Shipping columns are all NULL when there is no address.
//! - `idempotency_keys`: placement keys per customer, with the order id
//!   the key fixed, the request fingerprint, a lease while in flight and
//!   the stored outcome once done.
//! - `owed_releases`: order ids of failed or abandoned placements whose
//!   stock reservation must still be released (no order exists for them).
//!
//! Migration 2 (payments):
//! - `payments`: one row per authorization (or recorded manual payment) of
//!   an order, with its provider's reference and the authorized, captured
//!   and refunded amounts in the order's currency. CHECK constraints keep
//!   `0 ≤ refunded ≤ captured ≤ authorized` even if the component's own
//!   checks had a bug.
//! - `payment_events`: provider events applied, by provider and event id,
//!   so a replayed webhook is applied once.
//!
//! Migration 3 (merchant plugins): `order_lines.discount_amount`, what the
//! merchant's pricing plugins took off the line (its `unit_price_amount`
//! is already the plugins' price), and `notes`, their messages, one per
//! line of text.

use crate::bindings::exports::polyscale::commerce::migrations::{Guest, Migration};

impl Guest for crate::Component {
    fn all() -> Vec<Migration> {
        vec![
            Migration {
                version: 1,
                name: "carts, orders and idempotency keys".into(),
                statements: vec![
                    "CREATE TABLE carts (
                    id TEXT PRIMARY KEY,
                    customer_id TEXT UNIQUE,
                    guest_token_hash TEXT UNIQUE,
                    created_at_ms BIGINT NOT NULL,
                    updated_at_ms BIGINT NOT NULL,
                    CHECK (customer_id IS NOT NULL OR guest_token_hash IS NOT NULL)
                )"
                    .into(),
                    "CREATE TABLE cart_lines (
                    cart_id TEXT NOT NULL REFERENCES carts (id),
                    product_id TEXT NOT NULL,
                    quantity BIGINT NOT NULL CHECK (quantity > 0),
                    added_price_amount BIGINT NOT NULL,
                    added_price_currency TEXT NOT NULL,
                    added_at_ms BIGINT NOT NULL,
                    PRIMARY KEY (cart_id, product_id)
                )"
                    .into(),
                    "CREATE TABLE orders (
                    id TEXT PRIMARY KEY,
                    customer_id TEXT NOT NULL,
                    status TEXT NOT NULL,
                    payment_status TEXT NOT NULL,
                    currency TEXT NOT NULL,
                    total_amount BIGINT NOT NULL,
                    paid_amount BIGINT NOT NULL DEFAULT 0,
                    stock_state TEXT NOT NULL CHECK (stock_state IN ('reserved', 'committed', 'released')),
                    ship_line1 TEXT,
                    ship_line2 TEXT,
                    ship_city TEXT,
                    ship_region TEXT,
                    ship_postal_code TEXT,
                    ship_country TEXT,
                    placed_at_ms BIGINT NOT NULL,
                    updated_at_ms BIGINT NOT NULL
                )"
                    .into(),
                    "CREATE INDEX orders_customer_idx ON orders (customer_id, id)".into(),
                    "CREATE INDEX orders_stock_idx ON orders (stock_state, status)".into(),
                    "CREATE TABLE order_lines (
                    id TEXT PRIMARY KEY,
                    order_id TEXT NOT NULL REFERENCES orders (id),
                    position BIGINT NOT NULL,
                    product_id TEXT NOT NULL,
                    merchant_id TEXT NOT NULL,
                    name TEXT NOT NULL,
                    quantity BIGINT NOT NULL CHECK (quantity > 0),
                    unit_price_amount BIGINT NOT NULL,
                    currency TEXT NOT NULL,
                    fulfilled_quantity BIGINT NOT NULL DEFAULT 0,
                    CHECK (fulfilled_quantity >= 0 AND fulfilled_quantity <= quantity)
                )"
                    .into(),
                    "CREATE INDEX order_lines_order_idx ON order_lines (order_id)".into(),
                    "CREATE INDEX order_lines_merchant_idx ON order_lines (merchant_id, order_id)".into(),
                    "CREATE TABLE idempotency_keys (
                    customer_id TEXT NOT NULL,
                    idem_key TEXT NOT NULL,
                    fingerprint TEXT NOT NULL,
                    order_id TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('in-flight', 'done')),
                    outcome_code TEXT,
                    outcome_field TEXT,
                    outcome_message TEXT,
                    created_at_ms BIGINT NOT NULL,
                    locked_until_ms BIGINT NOT NULL,
                    PRIMARY KEY (customer_id, idem_key)
                )"
                    .into(),
                    "CREATE TABLE owed_releases (
                    order_id TEXT PRIMARY KEY,
                    created_at_ms BIGINT NOT NULL
                )"
                    .into(),
                    "CREATE INDEX idempotency_keys_lease_idx ON idempotency_keys (state, locked_until_ms)".into(),
                    "CREATE INDEX idempotency_keys_age_idx ON idempotency_keys (state, created_at_ms)".into(),
                ],
            },
            Migration {
                version: 2,
                name: "payments and applied payment events".into(),
                statements: vec![
                    "CREATE TABLE payments (
                    id TEXT PRIMARY KEY,
                    order_id TEXT NOT NULL REFERENCES orders (id),
                    provider TEXT NOT NULL,
                    reference TEXT,
                    state TEXT NOT NULL,
                    currency TEXT NOT NULL,
                    authorized_amount BIGINT NOT NULL CHECK (authorized_amount >= 0),
                    captured_amount BIGINT NOT NULL DEFAULT 0,
                    refunded_amount BIGINT NOT NULL DEFAULT 0,
                    next_step TEXT,
                    created_at_ms BIGINT NOT NULL,
                    updated_at_ms BIGINT NOT NULL,
                    CHECK (captured_amount >= 0 AND captured_amount <= authorized_amount),
                    CHECK (refunded_amount >= 0 AND refunded_amount <= captured_amount)
                )"
                    .into(),
                    "CREATE INDEX payments_order_idx ON payments (order_id, id)".into(),
                    "CREATE INDEX payments_reference_idx ON payments (provider, reference)".into(),
                    "CREATE TABLE payment_events (
                    provider TEXT NOT NULL,
                    event_id TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    payment_id TEXT NOT NULL,
                    applied_at_ms BIGINT NOT NULL,
                    PRIMARY KEY (provider, event_id)
                )"
                    .into(),
                ],
            },
            Migration {
                version: 3,
                name: "plugin prices on order lines".into(),
                statements: vec![
                    "ALTER TABLE order_lines ADD COLUMN discount_amount BIGINT NOT NULL DEFAULT 0".into(),
                    "ALTER TABLE order_lines ADD COLUMN notes TEXT NOT NULL DEFAULT ''".into(),
                ],
            },
        ]
    }
}
