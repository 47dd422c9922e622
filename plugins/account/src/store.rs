//! Reading and writing account rows.

use polyscale_guest::bindings::types::DomainError;
use polyscale_guest::sql::{self, Row, RowsExt, Value};
use polyscale_guest::{Role, params};

use crate::bindings::exports::polyscale::commerce::accounts::{Account, Address};

pub const COLUMNS: &str = "id, email, display_name, roles, store_name, address_line1, address_line2, address_city, \
     address_region, address_postal_code, address_country, created_at_ms, updated_at_ms";

pub fn roles_to_text(roles: &[Role]) -> String {
    let mut names: Vec<&str> = roles
        .iter()
        .map(|r| match r {
            Role::Customer => "customer",
            Role::Merchant => "merchant",
            Role::Admin => "admin",
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

fn roles_from_text(text: &str) -> Vec<Role> {
    text.split(',')
        .filter_map(|r| match r {
            "customer" => Some(Role::Customer),
            "merchant" => Some(Role::Merchant),
            "admin" => Some(Role::Admin),
            _ => None,
        })
        .collect()
}

pub fn account(row: Row<'_>) -> Result<Account, DomainError> {
    let default_address = match row.opt_text("address_line1")? {
        None => None,
        Some(line1) => Some(Address {
            line1,
            line2: row.opt_text("address_line2")?,
            city: row.text("address_city")?,
            region: row.opt_text("address_region")?,
            postal_code: row.text("address_postal_code")?,
            country: row.text("address_country")?,
        }),
    };
    Ok(Account {
        id: row.text("id")?,
        email: row.text("email")?,
        display_name: row.text("display_name")?,
        roles: roles_from_text(&row.text("roles")?),
        store_name: row.opt_text("store_name")?,
        default_address,
        created_at_ms: row.int("created_at_ms")?,
        updated_at_ms: row.int("updated_at_ms")?,
    })
}

pub fn by_id(id: &str) -> Result<Option<Account>, DomainError> {
    let rows = sql::query(&format!("SELECT {COLUMNS} FROM accounts WHERE id = $1"), &params![id])?;
    rows.first_row().map(account).transpose()
}

pub fn by_email(email: &str) -> Result<Option<Account>, DomainError> {
    let rows = sql::query(&format!("SELECT {COLUMNS} FROM accounts WHERE email = $1"), &params![email])?;
    rows.first_row().map(account).transpose()
}

pub fn by_ids(ids: &[String]) -> Result<Vec<Account>, DomainError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let params: Vec<Value> = ids.iter().map(Value::from).collect();
    let rows =
        sql::query(&format!("SELECT {COLUMNS} FROM accounts WHERE id IN ({})", placeholders.join(", ")), &params)?;
    let found = rows.map_rows(account)?;
    Ok(ids.iter().filter_map(|id| found.iter().find(|a| &a.id == id).cloned()).collect())
}

/// `UPDATE … RETURNING` the account, or not-found.
pub fn update(statement: &str, params: &[Value], id: &str) -> Result<Account, DomainError> {
    let rows = sql::query(&format!("{statement} RETURNING {COLUMNS}"), params)?;
    rows.first_row().map(account).transpose()?.ok_or_else(|| DomainError::NotFound(format!("no account with id {id}")))
}
