//! The `products` search index: its schema, how a product becomes a
//! document, and the `searchable` export the host rebuilds it from.
//!
//! Every write queues the product's new document (or its removal) in the
//! same SQL transaction as the write, through the host's `search` import.

use polyscale_guest::bindings::types::DomainError;
use polyscale_guest::sql::{self, Row, RowsExt, Transaction};
use polyscale_guest::{ids, params};

use crate::bindings::exports::polyscale::commerce::searchable::{DocumentPage, Guest};
use crate::bindings::polyscale::commerce::search::{
    self, Document, Field, FieldKind, FieldSchema, FieldValue, IndexSchema, SearchError,
};

pub const INDEX: &str = "products";

pub fn schema() -> IndexSchema {
    let field = |name: &str, kind: FieldKind, boost: f32, suggest: bool| FieldSchema {
        name: name.into(),
        kind,
        boost,
        suggest,
    };
    IndexSchema {
        name: INDEX.into(),
        fields: vec![
            field("name", FieldKind::Text, 3.0, true),
            field("category", FieldKind::Text, 2.0, false),
            field("description", FieldKind::Text, 1.0, false),
            field("merchant_id", FieldKind::Keyword, 1.0, false),
            field("category_id", FieldKind::Keyword, 1.0, false),
            field("currency", FieldKind::Keyword, 1.0, false),
            field("price", FieldKind::Integer, 1.0, false),
            field("stock", FieldKind::Integer, 1.0, false),
            field("created_at", FieldKind::Integer, 1.0, false),
            field("in_stock", FieldKind::Boolean, 1.0, false),
        ],
    }
}

/// Columns a document is built from (`p` is products, `c` categories).
pub const DOCUMENT_COLUMNS: &str = "p.id, p.merchant_id, p.name, p.description, p.price_amount, p.price_currency, \
     p.category_id, p.stock, p.created_at_ms, p.version, c.name AS category_name";

pub fn document(row: Row<'_>) -> Result<Document, DomainError> {
    let text = |name: &str, v: String| Field { name: name.into(), value: FieldValue::Text(v) };
    let keyword = |name: &str, v: String| Field { name: name.into(), value: FieldValue::Keyword(v) };
    let integer = |name: &str, v: i64| Field { name: name.into(), value: FieldValue::Integer(v) };
    let stock = row.int("stock")?;
    let mut fields = vec![
        text("name", row.text("name")?),
        text("description", row.text("description")?),
        keyword("merchant_id", row.text("merchant_id")?),
        keyword("currency", row.text("price_currency")?),
        integer("price", row.int("price_amount")?),
        integer("stock", stock),
        integer("created_at", row.int("created_at_ms")?),
        Field { name: "in_stock".into(), value: FieldValue::Boolean(stock > 0) },
    ];
    if let Some(category_id) = row.opt_text("category_id")? {
        fields.push(keyword("category_id", category_id));
    }
    if let Some(category) = row.opt_text("category_name")? {
        fields.push(text("category", category));
    }
    Ok(Document { id: row.text("id")?, version: row.int("version")?, fields })
}

/// Queueing writes the outbox row in the caller's transaction: when that
/// fails because the database is unavailable (a restart, a cut
/// connection), so is the write, and the client may retry; anything else
/// is a bug.
fn search_error(e: SearchError) -> DomainError {
    match e {
        SearchError::Unavailable(m) => DomainError::Unavailable(format!("queueing a search update: {m}")),
        other => DomainError::Internal(format!("queueing a search update failed: {other:?}")),
    }
}

/// Queues the current state of product `id` (read inside `tx`).
pub fn queue(tx: &Transaction, id: &str) -> Result<(), DomainError> {
    let rows = tx.query(
        &format!(
            "SELECT {DOCUMENT_COLUMNS} FROM products p LEFT JOIN categories c ON c.id = p.category_id WHERE p.id = $1"
        ),
        &params![id],
    )?;
    match rows.first_row() {
        Some(row) => search::index(tx, INDEX, &document(row)?).map_err(search_error),
        None => Ok(()),
    }
}

/// Queues the removal of a product deleted at `last_version`.
pub fn queue_removal(tx: &Transaction, id: &str, last_version: i64) -> Result<(), DomainError> {
    search::remove(tx, INDEX, id, last_version + 1).map_err(search_error)
}

/// Largest page of documents for a rebuild.
const MAX_DOCUMENT_PAGE: u32 = 1000;

impl Guest for crate::Component {
    fn indexes() -> Vec<IndexSchema> {
        vec![schema()]
    }

    fn documents(index: String, after: Option<String>, limit: u32) -> Result<DocumentPage, DomainError> {
        if index != INDEX {
            return Err(DomainError::NotFound(format!("no search index {index}")));
        }
        let limit = i64::from(limit.clamp(1, MAX_DOCUMENT_PAGE));
        let base = format!("SELECT {DOCUMENT_COLUMNS} FROM products p LEFT JOIN categories c ON c.id = p.category_id");
        let rows = match after {
            Some(after) => {
                let after = ids::parse_id("after", &after)?;
                sql::query(&format!("{base} WHERE p.id > $1 ORDER BY p.id LIMIT $2"), &params![after, limit])?
            }
            None => sql::query(&format!("{base} ORDER BY p.id LIMIT $1"), &params![limit])?,
        };
        let documents = rows.map_rows(document)?;
        let next = (documents.len() as i64 == limit).then(|| documents.last().map(|d| d.id.clone())).flatten();
        let total = sql::query("SELECT COUNT(*) AS n FROM products", &[])?
            .first_row()
            .map(|r| r.int("n"))
            .transpose()?
            .unwrap_or(0);
        Ok(DocumentPage { documents, next, total: u64::try_from(total).unwrap_or(0) })
    }
}
