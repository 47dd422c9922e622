//! A product-service component that misbehaves on request, for testing that
//! a runaway component costs only its own call.
//!
//! `get-product(id)` with id:
//! - `trap`: panics (a Wasm trap);
//! - `loop`: spins forever (the host's epoch deadline must stop it);
//! - `oom`: allocates until memory runs out (the host's limiter must stop it);
//! - `slow`: works for ~300 ms, then answers (a long in-flight call);
//! - anything else: answers with a placeholder product.
//!
//! Every other export answers `internal`.

use polyscale_guest::bindings::types::{DomainError, Money, PageRequest};

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

struct Component;

fn unsupported<T>() -> Result<T, DomainError> {
    Err(DomainError::Internal("not supported by the faulty test component".into()))
}

impl migrations::Guest for Component {
    fn all() -> Vec<Migration> {
        Vec::new()
    }
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
        Ok(Product {
            id: id.clone(),
            merchant_id: "faulty".into(),
            name: format!("faulty {id}"),
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

bindings::export!(Component with_types_in bindings);
