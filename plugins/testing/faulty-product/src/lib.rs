//! A product-service component that misbehaves on request, for testing that
//! a runaway component costs only its own call.
//!
//! `get-product(id)` with id:
//! - `trap`: panics (a Wasm trap);
//! - `loop`: spins forever (the host's epoch deadline must stop it);
//! - `oom`: allocates until memory runs out (the host's limiter must stop it);
//! - `slow`: works for ~300 ms, then answers (a long in-flight call);
//! - `mark:K`: records the mark `K` (in a `faulty_marks` table of its own
//!   database) and answers;
//! - `exec:STATEMENT`: runs the statement and answers with `ok N rows` or
//!   `error: …` as the product's name;
//! - `probe:K`: answers with the name `present` or `absent` for mark `K`;
//! - `hold:K`: records `started:K`, then waits (polling SQL) until the mark
//!   `release:K` exists, up to 60 s, then answers: a call that is provably
//!   in progress for as long as a test wants;
//! - `spin:K`: records `started:K`, then spins forever;
//! - `write-then-trap:K` / `write-then-loop:K`: inserts `written:K` in a
//!   transaction, then traps / spins forever without committing;
//! - `write:K`: inserts `written:K` in a transaction and commits;
//! - anything else: answers with a placeholder product.
//!
//! `migrations.all()` returns nothing, unless the mark `migration:fail`
//! exists (then a migration whose statement is not SQL) or
//! `migration:trap` does (then it traps).
//!
//! Every other export (`inventory` and its upkeep included) answers
//! `internal`.

use polyscale_guest::bindings::types::{DomainError, Money, PageRequest};
use polyscale_guest::sql::{self, Value};

mod bindings {
    wit_bindgen::generate!({
        world: "product-service",
        path: "../../../wit",
        with: {
            "polyscale:commerce/types@0.1.0": polyscale_guest::bindings::types,
            "polyscale:commerce/context@0.1.0": polyscale_guest::bindings::context,
            "polyscale:commerce/logging@0.1.0": polyscale_guest::bindings::logging,
            "polyscale:commerce/sql@0.1.0": polyscale_guest::bindings::sql,
            "polyscale:commerce/search@0.1.0": generate,
        },
    });
}

use bindings::exports::polyscale::commerce::migrations::{self, Migration};
use bindings::exports::polyscale::commerce::products::{
    Category, Guest, NewCategory, NewProduct, Product, ProductPage, ProductPatch, ProductSearch, ProductSearchPage,
};
use bindings::exports::polyscale::commerce::searchable::{self, DocumentPage, IndexSchema};
use bindings::exports::polyscale::commerce::{inventory, inventory_upkeep};

struct Component;

fn unsupported<T>() -> Result<T, DomainError> {
    Err(DomainError::Internal("not supported by the faulty test component".into()))
}

impl migrations::Guest for Component {
    fn all() -> Vec<Migration> {
        if has_mark("migration:trap") {
            panic!("the faulty component was asked to trap while listing its migrations");
        }
        if has_mark("migration:fail") {
            return vec![Migration {
                version: 1000,
                name: "broken on purpose".into(),
                statements: vec!["CREATE TABLE faulty_broken (id TEXT PRIMARY KEY)".into(), "THIS IS NOT SQL".into()],
            }];
        }
        Vec::new()
    }
}

fn sql_error(e: sql::Error) -> DomainError {
    DomainError::Internal(polyscale_guest::errors::describe(&e))
}

fn ensure_marks() -> Result<(), DomainError> {
    sql::execute("CREATE TABLE IF NOT EXISTS faulty_marks (mark TEXT PRIMARY KEY)", &[]).map_err(sql_error)?;
    Ok(())
}

fn add_mark(mark: &str) -> Result<(), DomainError> {
    ensure_marks()?;
    sql::execute(
        "INSERT INTO faulty_marks (mark) VALUES ($1) ON CONFLICT (mark) DO NOTHING",
        &[Value::Text(mark.into())],
    )
    .map_err(sql_error)?;
    Ok(())
}

/// Whether `mark` exists (false if the table does not).
fn has_mark(mark: &str) -> bool {
    sql::query("SELECT mark FROM faulty_marks WHERE mark = $1", &[Value::Text(mark.into())])
        .is_ok_and(|rows| !rows.rows.is_empty())
}

fn write_in_transaction(mark: &str) -> Result<sql::Transaction, DomainError> {
    ensure_marks()?;
    let tx = sql::begin().map_err(sql_error)?;
    tx.execute("INSERT INTO faulty_marks (mark) VALUES ($1)", &[Value::Text(mark.into())]).map_err(sql_error)?;
    Ok(tx)
}

/// Keeps no search index.
impl searchable::Guest for Component {
    fn indexes() -> Vec<IndexSchema> {
        Vec::new()
    }
    fn documents(_: String, _: Option<String>, _: u32) -> Result<DocumentPage, DomainError> {
        unsupported()
    }
}

impl Guest for Component {
    fn get_product(id: String) -> Result<Product, DomainError> {
        match id.as_str() {
            "trap" => panic!("the faulty component was asked to trap"),
            "loop" => loop {
                std::hint::black_box(&id);
            },
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            "slow" => {
                let start = std::time::Instant::now();
                while start.elapsed() < std::time::Duration::from_millis(300) {
                    std::hint::black_box(&id);
                }
            }
            _ => {}
        }
        let mut name = format!("faulty {id}");
        if let Some((verb, key)) = id.split_once(':') {
            match verb {
                "mark" => add_mark(key)?,
                // Runs `key` as a statement and answers with the outcome
                // (`ok N rows` or `error: …`), for tests of what component
                // SQL may do.
                "exec" => {
                    name = match sql::query(key, &[]) {
                        Ok(rows) => format!("ok {} rows", rows.rows.len()),
                        Err(e) => format!("error: {}", polyscale_guest::errors::describe(&e)),
                    }
                }
                "probe" => name = if has_mark(key) { "present" } else { "absent" }.into(),
                "hold" => {
                    add_mark(&format!("started:{key}"))?;
                    let release = format!("release:{key}");
                    let start = std::time::Instant::now();
                    while !has_mark(&release) {
                        if start.elapsed() > std::time::Duration::from_secs(60) {
                            return Err(DomainError::Internal(format!("{release} never came")));
                        }
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    name = format!("held {key}");
                }
                "spin" => {
                    add_mark(&format!("started:{key}"))?;
                    loop {
                        std::hint::black_box(&id);
                    }
                }
                "write-then-trap" => {
                    let _tx = write_in_transaction(&format!("written:{key}"))?;
                    panic!("the faulty component was asked to trap mid-transaction");
                }
                "write-then-loop" => {
                    let _tx = write_in_transaction(&format!("written:{key}"))?;
                    loop {
                        std::hint::black_box(&id);
                    }
                }
                "write" => {
                    let tx = write_in_transaction(&format!("written:{key}"))?;
                    sql::Transaction::commit(tx).map_err(sql_error)?;
                }
                _ => {}
            }
        }
        Ok(Product {
            id: id.clone(),
            merchant_id: "faulty".into(),
            name,
            description: String::new(),
            price: Money { amount: 0, currency: "USD".into() },
            category_id: None,
            stock: 0,
            created_at_ms: 0,
            updated_at_ms: 0,
        })
    }

    fn create_product(_: NewProduct) -> Result<Product, DomainError> {
        unsupported()
    }
    fn update_product(_: String, _: ProductPatch) -> Result<Product, DomainError> {
        unsupported()
    }
    fn delete_product(_: String) -> Result<(), DomainError> {
        unsupported()
    }
    fn get_products(_: Vec<String>) -> Result<Vec<Product>, DomainError> {
        unsupported()
    }
    fn list_products(_: PageRequest) -> Result<ProductPage, DomainError> {
        unsupported()
    }
    fn adjust_stock(_: String, _: i64) -> Result<Product, DomainError> {
        unsupported()
    }
    fn create_products(_: Vec<NewProduct>) -> Result<Vec<Product>, DomainError> {
        unsupported()
    }
    fn search_products(_: ProductSearch) -> Result<ProductSearchPage, DomainError> {
        unsupported()
    }
    fn suggest_products(_: String, _: u32) -> Result<Vec<String>, DomainError> {
        unsupported()
    }
    fn create_category(_: NewCategory) -> Result<Category, DomainError> {
        unsupported()
    }
    fn list_categories() -> Result<Vec<Category>, DomainError> {
        unsupported()
    }
}

impl inventory::Guest for Component {
    fn reserve(
        _: String,
        _: Vec<inventory::StockLine>,
        _: i64,
    ) -> Result<inventory::ReservationState, inventory::ReserveError> {
        Err(inventory::ReserveError::Failed(not_here()))
    }
    fn commit(_: String) -> Result<(), DomainError> {
        Err(not_here())
    }
    fn release(_: String) -> Result<(), DomainError> {
        Err(not_here())
    }
}

impl inventory_upkeep::Guest for Component {
    fn release_expired(_: u32) -> Result<u32, DomainError> {
        Ok(0)
    }
}

fn not_here() -> DomainError {
    DomainError::Internal("the faulty product component keeps no stock".into())
}

bindings::export!(Component with_types_in bindings);
