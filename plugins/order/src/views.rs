//! Reading orders: `get-order` and `list-orders`, and who sees what.
//!
//! - The customer who placed an order and admins see all of it.
//! - A merchant (role `merchant`) with at least one line in an order sees
//!   the order with only their own lines, and `total` is the total of those
//!   lines.
//! - Anyone else gets `not-found`, exactly as for an order that does not
//!   exist (its existence is not revealed); so does an id that cannot be
//!   an id. Unauthenticated callers get `unauthenticated`.
//!
//! `list-orders` pages newest first by id (UUIDv7 ids sort by creation
//! time), with keyset cursors (kind `orders/by-id`) and an optional status
//! filter. The view defaults to `all` for admins, `sales` for merchants and
//! `purchases` otherwise; `all` needs the admin role and `sales` the
//! merchant role (`forbidden` otherwise). The lines of a page are loaded
//! with one query. `paid` is `paid_amount` in the order's currency.

use std::collections::HashMap;

use polyscale_guest::bindings::types::{DomainError, PageRequest};
use polyscale_guest::sql::{self, Row, RowsExt, Value};
use polyscale_guest::{CallContext, CallerExt, FieldErrors, Principal, Role, call_context, cursor, ids, params};

use crate::bindings::exports::polyscale::commerce::orders::{
    Order, OrderEdge, OrderFilter, OrderLine, OrderPage, OrderStatus, OrderView,
};
use crate::bindings::polyscale::commerce::customers::PostalAddress;
use crate::status;
use crate::support::{money, signed_in};

/// Largest page `list-orders` returns.
pub const MAX_PAGE_SIZE: u32 = 100;
const CURSOR_KIND: &str = "orders/by-id";

pub const ORDER_COLUMNS: &str = "id, customer_id, status, payment_status, currency, total_amount, paid_amount, \
     ship_line1, ship_line2, ship_city, ship_region, ship_postal_code, ship_country, placed_at_ms, updated_at_ms";
const LINE_COLUMNS: &str = "id, order_id, position, product_id, merchant_id, name, quantity, unit_price_amount, currency, fulfilled_quantity, \
     discount_amount, notes";

/// An order row with its lines (all of them, in position order).
pub struct StoredOrder {
    pub id: String,
    pub customer_id: String,
    pub status: OrderStatus,
    payment_status: String,
    pub currency: String,
    pub total_amount: i64,
    paid_amount: i64,
    shipping_address: Option<PostalAddress>,
    placed_at_ms: i64,
    updated_at_ms: i64,
    pub lines: Vec<StoredLine>,
}

pub struct StoredLine {
    pub merchant_id: String,
    pub line: OrderLine,
}

fn order_row(row: Row<'_>) -> Result<StoredOrder, DomainError> {
    let shipping_address = match row.opt_text("ship_line1")? {
        None => None,
        Some(line1) => Some(PostalAddress {
            line1,
            line2: row.opt_text("ship_line2")?,
            city: row.opt_text("ship_city")?.unwrap_or_default(),
            region: row.opt_text("ship_region")?,
            postal_code: row.opt_text("ship_postal_code")?.unwrap_or_default(),
            country: row.opt_text("ship_country")?.unwrap_or_default(),
        }),
    };
    Ok(StoredOrder {
        id: row.text("id")?,
        customer_id: row.text("customer_id")?,
        status: status::order_status(&row.text("status")?)?,
        payment_status: row.text("payment_status")?,
        currency: row.text("currency")?,
        total_amount: row.int("total_amount")?,
        paid_amount: row.int("paid_amount")?,
        shipping_address,
        placed_at_ms: row.int("placed_at_ms")?,
        updated_at_ms: row.int("updated_at_ms")?,
        lines: Vec::new(),
    })
}

fn line_row(row: Row<'_>) -> Result<(String, StoredLine), DomainError> {
    let quantity = row.int("quantity")?;
    let unit = row.int("unit_price_amount")?;
    let currency = row.text("currency")?;
    let merchant_id = row.text("merchant_id")?;
    let discount = row.int("discount_amount")?;
    let notes = row.text("notes")?;
    Ok((
        row.text("order_id")?,
        StoredLine {
            merchant_id: merchant_id.clone(),
            line: OrderLine {
                id: row.text("id")?,
                product_id: row.text("product_id")?,
                merchant_id,
                name: row.text("name")?,
                quantity,
                unit_price: money(unit, &currency),
                discount: money(discount, &currency),
                line_total: money(unit.saturating_mul(quantity).saturating_sub(discount), &currency),
                notes: if notes.is_empty() { Vec::new() } else { notes.split('\n').map(str::to_string).collect() },
                fulfilled_quantity: row.int("fulfilled_quantity")?,
            },
        },
    ))
}

/// The order with this id and all its lines.
pub fn load(id: &str) -> Result<Option<StoredOrder>, DomainError> {
    let rows = sql::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"), &params![id])?;
    let Some(mut order) = rows.first_row().map(order_row).transpose()? else {
        return Ok(None);
    };
    order.lines = sql::query(
        &format!("SELECT {LINE_COLUMNS} FROM order_lines WHERE order_id = $1 ORDER BY position"),
        &params![id],
    )?
    .map_rows(line_row)?
    .into_iter()
    .map(|(_, l)| l)
    .collect();
    Ok(Some(order))
}

/// How much of an order a caller sees.
pub enum Sight {
    Whole,
    /// Only this merchant's lines.
    Merchant(String),
}

/// What `caller` may see of `order`, if anything.
pub fn sight(caller: &Principal, order: &StoredOrder) -> Option<Sight> {
    let me = caller.account_id.as_str();
    if order.customer_id == me || caller.roles.contains(&Role::Admin) {
        Some(Sight::Whole)
    } else if caller.roles.contains(&Role::Merchant) && order.lines.iter().any(|l| l.merchant_id == me) {
        Some(Sight::Merchant(me.to_string()))
    } else {
        None
    }
}

pub fn not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("no order with id {id}"))
}

/// The order as `sight` shows it.
pub fn present(order: StoredOrder, sight: &Sight) -> Result<Order, DomainError> {
    let lines: Vec<OrderLine> = order
        .lines
        .into_iter()
        .filter(|l| match sight {
            Sight::Whole => true,
            Sight::Merchant(me) => &l.merchant_id == me,
        })
        .map(|l| l.line)
        .collect();
    let total = match sight {
        Sight::Whole => order.total_amount,
        Sight::Merchant(_) => lines.iter().fold(0_i64, |sum, l| sum.saturating_add(l.line_total.amount)),
    };
    Ok(Order {
        id: order.id,
        customer_id: order.customer_id,
        status: order.status,
        payment_status: status::payment_status(&order.payment_status)?,
        lines,
        total: money(total, &order.currency),
        paid: money(order.paid_amount, &order.currency),
        shipping_address: order.shipping_address,
        placed_at_ms: order.placed_at_ms,
        updated_at_ms: order.updated_at_ms,
    })
}

/// The order as the calling principal may see it, or `not-found`.
pub fn visible(ctx: &CallContext, id: &str) -> Result<(StoredOrder, Sight), DomainError> {
    let caller = signed_in(ctx, "see orders")?;
    // A value no id can have is an order nobody has, not bad input.
    let id = ids::parse_id("id", id).map_err(|_| DomainError::NotFound("no such order".into()))?;
    let order = load(&id)?.ok_or_else(|| not_found(&id))?;
    let sight = sight(caller, &order).ok_or_else(|| not_found(&id))?;
    Ok((order, sight))
}

pub fn get_order(id: String) -> Result<Order, DomainError> {
    let ctx = call_context();
    let (order, sight) = visible(&ctx, &id)?;
    present(order, &sight)
}

pub fn list_orders(page: PageRequest, filter: OrderFilter) -> Result<OrderPage, DomainError> {
    let ctx = call_context();
    let caller = signed_in(&ctx, "see orders")?;
    let who = &ctx.caller;
    let view = filter.view.unwrap_or(if who.is_admin() {
        OrderView::All
    } else if who.has_role(Role::Merchant) {
        OrderView::Sales
    } else {
        OrderView::Purchases
    });
    match view {
        OrderView::All if !who.is_admin() => {
            return Err(DomainError::Forbidden("only admins may list every order".into()));
        }
        OrderView::Sales if !who.has_role(Role::Merchant) => {
            return Err(DomainError::Forbidden("only merchants have sales".into()));
        }
        _ => {}
    }
    let mut errors = FieldErrors::new();
    if page.first == 0 || page.first > MAX_PAGE_SIZE {
        errors.add("first", "OUT_OF_RANGE", format!("first must be between 1 and {MAX_PAGE_SIZE}"));
    }
    let after = page.after.as_deref().and_then(|c| errors.take(cursor::decode("after", CURSOR_KIND, c)));
    errors.finish()?;
    let after = after.and_then(|keys| keys.into_iter().next());

    let me = caller.account_id.clone();
    let mut params: Vec<Value> = Vec::new();
    let mut conditions: Vec<String> = Vec::new();
    match view {
        OrderView::Purchases => {
            params.push(Value::from(&me));
            conditions.push(format!("customer_id = ${}", params.len()));
        }
        OrderView::Sales => {
            params.push(Value::from(&me));
            conditions.push(format!("id IN (SELECT order_id FROM order_lines WHERE merchant_id = ${})", params.len()));
        }
        OrderView::All => {}
    }
    if let Some(status) = filter.status {
        params.push(Value::from(status::order_status_text(status)));
        conditions.push(format!("status = ${}", params.len()));
    }
    if let Some(after) = after {
        params.push(Value::from(after));
        conditions.push(format!("id < ${}", params.len()));
    }
    params.push(Value::from(i64::from(page.first) + 1));
    let limit = params.len();
    let filter_sql = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    let mut orders = sql::query(
        &format!("SELECT {ORDER_COLUMNS} FROM orders {filter_sql} ORDER BY id DESC LIMIT ${limit}"),
        &params,
    )?
    .map_rows(order_row)?;
    let has_next_page = orders.len() > page.first as usize;
    orders.truncate(page.first as usize);

    // Every line of the page in one query.
    if !orders.is_empty() {
        let ids: Vec<Value> = orders.iter().map(|o| Value::from(&o.id)).collect();
        let lines = sql::query(
            &format!(
                "SELECT {LINE_COLUMNS} FROM order_lines WHERE order_id IN ({}) ORDER BY order_id, position",
                sql::placeholders(1, ids.len())
            ),
            &ids,
        )?
        .map_rows(line_row)?;
        let mut by_order: HashMap<String, Vec<StoredLine>> = HashMap::new();
        for (order_id, line) in lines {
            by_order.entry(order_id).or_default().push(line);
        }
        for order in &mut orders {
            order.lines = by_order.remove(&order.id).unwrap_or_default();
        }
    }
    let sight = match view {
        OrderView::Sales => Sight::Merchant(me),
        OrderView::Purchases | OrderView::All => Sight::Whole,
    };
    let edges = orders
        .into_iter()
        .map(|order| {
            let cursor = cursor::encode(CURSOR_KIND, &[&order.id]);
            Ok(OrderEdge { cursor, node: present(order, &sight)? })
        })
        .collect::<Result<Vec<_>, DomainError>>()?;
    Ok(OrderPage { edges, has_next_page })
}
