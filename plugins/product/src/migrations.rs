//! Schema of the product database. Released migrations never change; add a
//! new one instead.

use crate::bindings::exports::polyscale::commerce::migrations::{Guest, Migration};

impl Guest for crate::Component {
    fn all() -> Vec<Migration> {
        vec![
            Migration {
                version: 1,
                name: "catalog".into(),
                statements: vec![
                    "CREATE TABLE categories (
                    id TEXT PRIMARY KEY,
                    name TEXT NOT NULL,
                    slug TEXT NOT NULL UNIQUE,
                    parent_id TEXT REFERENCES categories (id),
                    created_at_ms BIGINT NOT NULL
                )"
                    .into(),
                    "CREATE TABLE products (
                    id TEXT PRIMARY KEY,
                    merchant_id TEXT NOT NULL,
                    name TEXT NOT NULL,
                    description TEXT NOT NULL,
                    price_amount BIGINT NOT NULL CHECK (price_amount >= 0),
                    price_currency TEXT NOT NULL,
                    category_id TEXT REFERENCES categories (id),
                    stock BIGINT NOT NULL CHECK (stock >= 0),
                    created_at_ms BIGINT NOT NULL,
                    updated_at_ms BIGINT NOT NULL
                )"
                    .into(),
                    "CREATE INDEX products_merchant_idx ON products (merchant_id, id)".into(),
                    "CREATE INDEX products_category_idx ON products (category_id, id)".into(),
                ],
            },
            Migration {
                version: 2,
                name: "product versions for search indexing".into(),
                statements: vec!["ALTER TABLE products ADD COLUMN version BIGINT NOT NULL DEFAULT 1".into()],
            },
            Migration {
                version: 3,
                name: "stock reservations".into(),
                statements: vec![
                    "CREATE TABLE reservations (
                    order_id TEXT PRIMARY KEY,
                    state TEXT NOT NULL CHECK (state IN ('held', 'committed', 'released')),
                    expires_at_ms BIGINT NOT NULL,
                    created_at_ms BIGINT NOT NULL,
                    updated_at_ms BIGINT NOT NULL
                )"
                    .into(),
                    "CREATE TABLE reservation_lines (
                    order_id TEXT NOT NULL REFERENCES reservations (order_id),
                    product_id TEXT NOT NULL,
                    quantity BIGINT NOT NULL CHECK (quantity > 0),
                    PRIMARY KEY (order_id, product_id)
                )"
                    .into(),
                    "CREATE INDEX reservations_expiry_idx ON reservations (state, expires_at_ms)".into(),
                ],
            },
        ]
    }
}
