//! Schema of the account database. Released migrations never change.

use crate::bindings::exports::polyscale::commerce::migrations::{Guest, Migration};

impl Guest for crate::Component {
    fn all() -> Vec<Migration> {
        vec![Migration {
            version: 1,
            name: "accounts".into(),
            statements: vec![
                // `roles` is a comma-separated set of customer, merchant, admin.
                "CREATE TABLE accounts (
                    id TEXT PRIMARY KEY,
                    email TEXT NOT NULL UNIQUE,
                    display_name TEXT NOT NULL,
                    roles TEXT NOT NULL,
                    store_name TEXT,
                    address_line1 TEXT,
                    address_line2 TEXT,
                    address_city TEXT,
                    address_region TEXT,
                    address_postal_code TEXT,
                    address_country TEXT,
                    created_at_ms BIGINT NOT NULL,
                    updated_at_ms BIGINT NOT NULL
                )"
                .into(),
            ],
        }]
    }
}
