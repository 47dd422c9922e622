//! The `products` export: catalog reads and writes over the component's SQL
//! database. Every write runs in one transaction that also queues the
//! product's search document, so the index follows exactly what commits.

use polyscale_guest::bindings::sql::{ConstraintKind, Error as SqlError};
use polyscale_guest::bindings::types::{DomainError, Money, PageRequest};
use polyscale_guest::sql::{self, Row, RowsExt, Transaction, Value};
use polyscale_guest::{CallContext, FieldErrors, Invalid, call_context, cursor, ids, params};

use crate::access::{self, Scope};
use crate::bindings::exports::polyscale::commerce::products::{
    Category, Guest, NewCategory, NewProduct, Product, ProductEdge, ProductPage, ProductPatch, ProductSearch,
    ProductSearchPage,
};
use crate::{indexing, search, validate};

/// Largest page a list call returns.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Most ids one `get-products` call may ask for.
pub const MAX_IDS: usize = 100;
/// Most products one `create-products` call may create.
pub const MAX_BATCH: usize = 500;

const PRODUCT_COLUMNS: &str = "id, merchant_id, name, description, price_amount, price_currency, category_id, stock, created_at_ms, updated_at_ms";
const CURSOR_KIND: &str = "products/by-id";

fn product(row: Row<'_>) -> Result<Product, DomainError> {
    Ok(Product {
        id: row.text("id")?,
        merchant_id: row.text("merchant_id")?,
        name: row.text("name")?,
        description: row.text("description")?,
        price: Money { amount: row.int("price_amount")?, currency: row.text("price_currency")? },
        category_id: row.opt_text("category_id")?,
        stock: row.int("stock")?,
        created_at_ms: row.int("created_at_ms")?,
        updated_at_ms: row.int("updated_at_ms")?,
    })
}

fn category(row: Row<'_>) -> Result<Category, DomainError> {
    Ok(Category {
        id: row.text("id")?,
        name: row.text("name")?,
        slug: row.text("slug")?,
        parent_id: row.opt_text("parent_id")?,
    })
}

fn single_product(rows: sql::Rows) -> Result<Option<Product>, DomainError> {
    rows.first_row().map(product).transpose()
}

fn placeholders(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Products with these ids, in the order asked; unknown ids left out.
pub fn products_by_ids(wanted: &[String]) -> Result<Vec<Product>, DomainError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let params: Vec<Value> = wanted.iter().map(Value::from).collect();
    let rows = sql::query(
        &format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id IN ({})", placeholders(wanted.len())),
        &params,
    )?;
    let found = rows.map_rows(product)?;
    Ok(wanted.iter().filter_map(|id| found.iter().find(|p| &p.id == id).cloned()).collect())
}

pub fn categories_by_ids(wanted: &[String]) -> Result<Vec<Category>, DomainError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let params: Vec<Value> = wanted.iter().map(Value::from).collect();
    let rows = sql::query(
        &format!("SELECT id, name, slug, parent_id FROM categories WHERE id IN ({})", placeholders(wanted.len())),
        &params,
    )?;
    rows.map_rows(category)
}

/// A write touching no row: tell "no such product" from "not yours".
fn missing_or_forbidden(tx: &Transaction, id: &str) -> DomainError {
    match tx.query("SELECT merchant_id FROM products WHERE id = $1", &params![id]) {
        Ok(rows) if rows.rows.is_empty() => DomainError::NotFound(format!("no product with id {id}")),
        Ok(_) => DomainError::Forbidden("this product belongs to another merchant".into()),
        Err(e) => e.into(),
    }
}

fn unknown_category_is_invalid(e: SqlError, field: &str) -> DomainError {
    match e {
        SqlError::Constraint(c) if c.kind == ConstraintKind::ForeignKey => {
            DomainError::invalid(field, "UNKNOWN_CATEGORY", "no category with this id")
        }
        other => other.into(),
    }
}

fn parse_category_id(errors: &mut FieldErrors, field: &str, value: Option<String>) -> Option<Option<String>> {
    match value {
        None => Some(None),
        Some(id) => errors.take(ids::parse_id(field, &id)).map(Some),
    }
}

/// A new product, parsed. Field paths are prefixed with `prefix`.
struct ValidProduct {
    merchant_id: String,
    name: String,
    description: String,
    price: Money,
    category_id: Option<String>,
    stock: i64,
}

fn parse_new_product(
    ctx: &CallContext,
    input: NewProduct,
    prefix: &str,
    errors: &mut FieldErrors,
) -> Result<Option<ValidProduct>, DomainError> {
    let at = |f: &str| format!("{prefix}{f}");
    let merchant_id = access::owner_for_new(ctx, input.merchant_id.as_deref(), &at("merchantId"), errors)?;
    let name = errors.take(validate::name(&at("name"), &input.name));
    let description = errors.take(validate::description(&at("description"), &input.description));
    let price = validate::price(errors, &at("price"), input.price);
    let stock = errors.take(validate::stock(&at("stock"), input.stock));
    let category_id = parse_category_id(errors, &at("categoryId"), input.category_id);
    Ok(match (merchant_id, name, description, price, stock, category_id) {
        (Some(merchant_id), Some(name), Some(description), Some(price), Some(stock), Some(category_id)) => {
            Some(ValidProduct { merchant_id, name, description, price, category_id, stock })
        }
        _ => None,
    })
}

/// Inserts a product and queues its document, within `tx`.
fn insert(tx: &Transaction, p: ValidProduct, now_ms: i64, category_field: &str) -> Result<Product, DomainError> {
    let id = ids::new_id();
    let rows = tx
        .query(
            &format!(
                "INSERT INTO products ({PRODUCT_COLUMNS}, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1) \
                 RETURNING {PRODUCT_COLUMNS}"
            ),
            &params![
                &id,
                p.merchant_id,
                p.name,
                p.description,
                p.price.amount,
                p.price.currency,
                p.category_id,
                p.stock,
                now_ms
            ],
        )
        .map_err(|e| unknown_category_is_invalid(e, category_field))?;
    let created = single_product(rows)?.ok_or_else(|| DomainError::Internal("insert returned no row".into()))?;
    indexing::queue(tx, &id)?;
    Ok(created)
}

/// Runs an `UPDATE … RETURNING` of one product in a transaction, queues
/// its new document and commits; not-found/forbidden when nothing matched.
fn update_one(
    id: &str,
    statement: &str,
    params: &[Value],
    category_field: &str,
) -> Result<Option<Product>, DomainError> {
    let tx = sql::begin()?;
    let rows = tx
        .query(&format!("{statement} RETURNING {PRODUCT_COLUMNS}"), params)
        .map_err(|e| unknown_category_is_invalid(e, category_field))?;
    match single_product(rows)? {
        Some(p) => {
            indexing::queue(&tx, id)?;
            Transaction::commit(tx)?;
            Ok(Some(p))
        }
        None => Ok(None),
    }
}

impl Guest for crate::Component {
    fn create_product(input: NewProduct) -> Result<Product, DomainError> {
        let ctx = call_context();
        let mut errors = FieldErrors::new();
        let valid = parse_new_product(&ctx, input, "", &mut errors)?;
        errors.finish()?;
        let valid = valid.ok_or_else(|| DomainError::Internal("validation passed with a missing value".into()))?;
        let tx = sql::begin()?;
        let created = insert(&tx, valid, ctx.now_ms, "categoryId")?;
        Transaction::commit(tx)?;
        Ok(created)
    }

    fn create_products(inputs: Vec<NewProduct>) -> Result<Vec<Product>, DomainError> {
        let ctx = call_context();
        if inputs.len() > MAX_BATCH {
            return Err(DomainError::invalid(
                "items",
                "TOO_MANY",
                format!("create at most {MAX_BATCH} products at once"),
            ));
        }
        let mut errors = FieldErrors::new();
        let mut valid = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.into_iter().enumerate() {
            valid.push(parse_new_product(&ctx, input, &format!("items.{i}."), &mut errors)?);
        }
        errors.finish()?;
        let tx = sql::begin()?;
        let mut created = Vec::with_capacity(valid.len());
        for (i, p) in valid.into_iter().enumerate() {
            let p = p.ok_or_else(|| DomainError::Internal("validation passed with a missing value".into()))?;
            created.push(insert(&tx, p, ctx.now_ms, &format!("items.{i}.categoryId"))?);
        }
        Transaction::commit(tx)?;
        Ok(created)
    }

    fn update_product(id: String, patch: ProductPatch) -> Result<Product, DomainError> {
        let ctx = call_context();
        let scope = access::manage_scope(&ctx)?;
        let mut errors = FieldErrors::new();
        let id = errors.take(ids::parse_id("id", &id));
        let name = patch.name.map(|n| errors.take(validate::name("name", &n)));
        let description = patch.description.map(|d| errors.take(validate::description("description", &d)));
        let price = patch.price.map(|p| validate::price(&mut errors, "price", p));
        let category_id = patch.category_id.map(|c| parse_category_id(&mut errors, "categoryId", c));
        errors.finish()?;
        let id = id.unwrap_or_default();
        let (name, description, price, category_id) =
            (name.flatten(), description.flatten(), price.flatten(), category_id.flatten());

        // One conditional UPDATE: unchanged fields keep their value, and a
        // merchant's write only matches its own product.
        let updated = update_one(
            &id,
            "UPDATE products SET \
               name = COALESCE($2, name), \
               description = COALESCE($3, description), \
               price_amount = COALESCE($4, price_amount), \
               price_currency = COALESCE($5, price_currency), \
               category_id = CASE WHEN $6 THEN $7 ELSE category_id END, \
               updated_at_ms = $8, version = version + 1 \
             WHERE id = $1 AND ($9 OR merchant_id = $10)",
            &params![
                &id,
                name,
                description,
                price.as_ref().map(|p| p.amount),
                price.map(|p| p.currency),
                category_id.is_some(),
                category_id.flatten(),
                ctx.now_ms,
                scope.all(),
                scope.merchant(),
            ],
            "categoryId",
        )?;
        match updated {
            Some(p) => Ok(p),
            None => Err(missing_or_forbidden(&sql::begin()?, &id)),
        }
    }

    fn delete_product(id: String) -> Result<(), DomainError> {
        let ctx = call_context();
        let scope = access::manage_scope(&ctx)?;
        let id = ids::parse_id("id", &id)?;
        let tx = sql::begin()?;
        let rows = tx.query(
            "DELETE FROM products WHERE id = $1 AND ($2 OR merchant_id = $3) RETURNING version",
            &params![&id, scope.all(), scope.merchant()],
        )?;
        let Some(version) = rows.first_row().map(|r| r.int("version")).transpose()? else {
            return Err(missing_or_forbidden(&tx, &id));
        };
        indexing::queue_removal(&tx, &id, version)?;
        Transaction::commit(tx)?;
        Ok(())
    }

    fn get_product(id: String) -> Result<Product, DomainError> {
        let id = ids::parse_id("id", &id)?;
        let rows = sql::query(&format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1"), &params![&id])?;
        single_product(rows)?.ok_or_else(|| DomainError::NotFound(format!("no product with id {id}")))
    }

    fn get_products(ids_in: Vec<String>) -> Result<Vec<Product>, DomainError> {
        if ids_in.len() > MAX_IDS {
            return Err(DomainError::invalid("ids", "TOO_MANY", format!("ask for at most {MAX_IDS} ids at once")));
        }
        let mut errors = FieldErrors::new();
        let wanted: Vec<String> = ids_in.iter().filter_map(|id| errors.take(ids::parse_id("ids", id))).collect();
        errors.finish()?;
        products_by_ids(&wanted)
    }

    fn list_products(page: PageRequest) -> Result<ProductPage, DomainError> {
        let mut errors = FieldErrors::new();
        if page.first == 0 || page.first > MAX_PAGE_SIZE {
            errors.add("first", "OUT_OF_RANGE", format!("first must be between 1 and {MAX_PAGE_SIZE}"));
        }
        let after = page.after.as_deref().map(|c| errors.take(cursor::decode("after", CURSOR_KIND, c)));
        errors.finish()?;
        let limit = i64::from(page.first) + 1;
        let rows = match after.flatten().and_then(|keys| keys.into_iter().next()) {
            Some(after_id) => sql::query(
                &format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id > $1 ORDER BY id LIMIT $2"),
                &params![after_id, limit],
            )?,
            None => {
                sql::query(&format!("SELECT {PRODUCT_COLUMNS} FROM products ORDER BY id LIMIT $1"), &params![limit])?
            }
        };
        let mut items = rows.map_rows(product)?;
        let has_next_page = items.len() > page.first as usize;
        items.truncate(page.first as usize);
        let edges = items
            .into_iter()
            .map(|node| ProductEdge { cursor: cursor::encode(CURSOR_KIND, &[&node.id]), node })
            .collect();
        let total = sql::query("SELECT COUNT(*) AS n FROM products", &[])?;
        let total_count = total.first_row().map(|r| r.int("n")).transpose()?.unwrap_or(0);
        Ok(ProductPage { edges, has_next_page, total_count: u64::try_from(total_count).unwrap_or(0) })
    }

    fn adjust_stock(id: String, delta: i64) -> Result<Product, DomainError> {
        let ctx = call_context();
        let scope = access::manage_scope(&ctx)?;
        let mut errors = FieldErrors::new();
        let id = errors.take(ids::parse_id("id", &id)).unwrap_or_default();
        errors.take(validate::stock_delta("delta", delta));
        errors.finish()?;
        // The WHERE clause makes the decrement conditional, so concurrent
        // adjustments can never take stock below zero; the CHECK
        // constraint is the backstop.
        let updated = update_one(
            &id,
            "UPDATE products SET stock = stock + $2, updated_at_ms = $3, version = version + 1 \
             WHERE id = $1 AND stock + $2 >= 0 AND stock + $2 <= $5 AND ($4 OR merchant_id = $6)",
            &params![&id, delta, ctx.now_ms, scope.all(), validate::MAX_STOCK, scope.merchant()],
            "categoryId",
        )?;
        if let Some(p) = updated {
            return Ok(p);
        }
        let current = sql::query("SELECT merchant_id, stock FROM products WHERE id = $1", &params![&id])?;
        let Some(row) = current.first_row() else {
            return Err(DomainError::NotFound(format!("no product with id {id}")));
        };
        if let Scope::Merchant(me) = &scope
            && row.text("merchant_id")? != *me
        {
            return Err(DomainError::Forbidden("this product belongs to another merchant".into()));
        }
        let stock = row.int("stock")?;
        if delta < 0 {
            Err(DomainError::invalid(
                "delta",
                "INSUFFICIENT_STOCK",
                format!("cannot remove {} units: only {stock} in stock", delta.unsigned_abs()),
            ))
        } else {
            Err(DomainError::invalid("delta", "TOO_LARGE", format!("stock may not exceed {}", validate::MAX_STOCK)))
        }
    }

    fn search_products(q: ProductSearch) -> Result<ProductSearchPage, DomainError> {
        search::search_products(q)
    }

    fn suggest_products(prefix: String, limit: u32) -> Result<Vec<String>, DomainError> {
        search::suggest_products(prefix, limit)
    }

    fn create_category(input: NewCategory) -> Result<Category, DomainError> {
        let ctx = call_context();
        access::require_catalog_admin(&ctx)?;
        let mut errors = FieldErrors::new();
        let name = errors.take(validate::name("name", &input.name));
        let parent_id = parse_category_id(&mut errors, "parentId", input.parent_id);
        errors.finish()?;
        let (Some(name), Some(parent_id)) = (name, parent_id) else {
            return Err(DomainError::Internal("validation passed with a missing value".into()));
        };
        let slug = validate::slug(&name)?;
        let rows = sql::query(
            "INSERT INTO categories (id, name, slug, parent_id, created_at_ms) VALUES ($1, $2, $3, $4, $5) \
             RETURNING id, name, slug, parent_id",
            &params![ids::new_id(), name, slug, parent_id, ctx.now_ms],
        )
        .map_err(|e| match e {
            SqlError::Constraint(c) if c.kind == ConstraintKind::Unique => {
                DomainError::invalid("name", "DUPLICATE", "a category with this name already exists")
            }
            other => unknown_category_is_invalid(other, "parentId"),
        })?;
        rows.first_row()
            .map(category)
            .transpose()?
            .ok_or_else(|| DomainError::Internal("insert returned no row".into()))
    }

    fn list_categories() -> Result<Vec<Category>, DomainError> {
        sql::query("SELECT id, name, slug, parent_id FROM categories ORDER BY name, id", &[])?.map_rows(category)
    }
}
