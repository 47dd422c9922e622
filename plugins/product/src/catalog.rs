//! The `products` export: catalog reads and writes over the component's SQL
//! database.

use polyscale_guest::bindings::sql::{ConstraintKind, Error as SqlError};
use polyscale_guest::bindings::types::{DomainError, Money, PageRequest};
use polyscale_guest::sql::{self, Row, RowsExt};
use polyscale_guest::{FieldErrors, Invalid, call_context, cursor, ids, params};

use crate::access::{self, Scope};
use crate::bindings::exports::polyscale::commerce::products::{
    Category, Guest, NewCategory, NewProduct, Product, ProductEdge, ProductPage, ProductPatch,
};
use crate::validate;

/// Largest page a list call returns.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Most ids one `get-products` call may ask for.
pub const MAX_IDS: usize = 100;

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

/// A write touching no row: tell "no such product" from "not yours".
fn missing_or_forbidden(id: &str) -> DomainError {
    match sql::query("SELECT merchant_id FROM products WHERE id = $1", &params![id]) {
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

impl Guest for crate::Component {
    fn create_product(input: NewProduct) -> Result<Product, DomainError> {
        let ctx = call_context();
        let mut errors = FieldErrors::new();
        let merchant_id = access::owner_for_new(&ctx, input.merchant_id.as_deref(), &mut errors)?;
        let name = errors.take(validate::name("name", &input.name));
        let description = errors.take(validate::description("description", &input.description));
        let price = validate::price(&mut errors, "price", input.price);
        let stock = errors.take(validate::stock("stock", input.stock));
        let category_id = parse_category_id(&mut errors, "categoryId", input.category_id);
        errors.finish()?;
        let (Some(merchant_id), Some(name), Some(description), Some(price), Some(stock), Some(category_id)) =
            (merchant_id, name, description, price, stock, category_id)
        else {
            return Err(DomainError::Internal("validation passed with a missing value".into()));
        };

        let rows = sql::query(
            &format!(
                "INSERT INTO products ({PRODUCT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                 RETURNING {PRODUCT_COLUMNS}"
            ),
            &params![
                ids::new_id(),
                merchant_id,
                name,
                description,
                price.amount,
                price.currency,
                category_id,
                stock,
                ctx.now_ms
            ],
        )
        .map_err(|e| unknown_category_is_invalid(e, "categoryId"))?;
        single_product(rows)?.ok_or_else(|| DomainError::Internal("insert returned no row".into()))
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
        let name = name.flatten();
        let description = description.flatten();
        let price = price.flatten();
        let category_id = category_id.flatten();

        // One conditional UPDATE: unchanged fields keep their value, and a
        // merchant's write only matches its own product.
        let rows = sql::query(
            &format!(
                "UPDATE products SET \
                   name = COALESCE($2, name), \
                   description = COALESCE($3, description), \
                   price_amount = COALESCE($4, price_amount), \
                   price_currency = COALESCE($5, price_currency), \
                   category_id = CASE WHEN $6 THEN $7 ELSE category_id END, \
                   updated_at_ms = $8 \
                 WHERE id = $1 AND ($9 = '' OR merchant_id = $9) \
                 RETURNING {PRODUCT_COLUMNS}"
            ),
            &params![
                &id,
                name,
                description,
                price.as_ref().map(|p| p.amount),
                price.map(|p| p.currency),
                category_id.is_some(),
                category_id.flatten(),
                ctx.now_ms,
                scope.merchant().unwrap_or(""),
            ],
        )
        .map_err(|e| unknown_category_is_invalid(e, "categoryId"))?;
        single_product(rows)?.ok_or_else(|| missing_or_forbidden(&id))
    }

    fn delete_product(id: String) -> Result<(), DomainError> {
        let ctx = call_context();
        let scope = access::manage_scope(&ctx)?;
        let id = ids::parse_id("id", &id)?;
        let deleted = sql::execute(
            "DELETE FROM products WHERE id = $1 AND ($2 = '' OR merchant_id = $2)",
            &params![&id, scope.merchant().unwrap_or("")],
        )?;
        if deleted == 0 { Err(missing_or_forbidden(&id)) } else { Ok(()) }
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
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=wanted.len()).map(|i| format!("${i}")).collect();
        let params: Vec<sql::Value> = wanted.iter().map(sql::Value::from).collect();
        let rows = sql::query(
            &format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id IN ({})", placeholders.join(", ")),
            &params,
        )?;
        let found = rows.map_rows(product)?;
        Ok(wanted.iter().filter_map(|id| found.iter().find(|p| &p.id == id).cloned()).collect())
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
        let rows = sql::query(
            &format!(
                "UPDATE products SET stock = stock + $2, updated_at_ms = $3 \
                 WHERE id = $1 AND stock + $2 >= 0 AND stock + $2 <= $5 AND ($4 = '' OR merchant_id = $4) \
                 RETURNING {PRODUCT_COLUMNS}"
            ),
            &params![&id, delta, ctx.now_ms, scope.merchant().unwrap_or(""), validate::MAX_STOCK],
        )?;
        if let Some(p) = single_product(rows)? {
            return Ok(p);
        }
        let current = sql::query("SELECT merchant_id, stock FROM products WHERE id = $1", &params![&id])?;
        let Some(row) = current.first_row() else {
            return Err(DomainError::NotFound(format!("no product with id {id}")));
        };
        if let Scope::Merchant(me) = &scope {
            if row.text("merchant_id")? != *me {
                return Err(DomainError::Forbidden("this product belongs to another merchant".into()));
            }
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
