//! Sessions are refresh-token families. A refresh token is spent when
//! used and replaced by the next in its family; presenting a spent token
//! again means it leaked, so the whole family is revoked.
//!
//! Tokens are 256 random bits; only their SHA-256 is stored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::database::{Database, SqlError, SqlLimits, Transaction, Value, in_transaction};

/// Prefix that lets secret scanners recognise a leaked token.
const PREFIX: &str = "psr_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    pub token: String,
    pub expires_at_ms: i64,
    pub session_id: String,
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> Result<String, SqlError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| SqlError::Other(format!("no randomness: {e}")))?;
    Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

async fn insert_token(
    tx: &mut Transaction,
    session_id: &str,
    expires_at_ms: i64,
    now: i64,
) -> Result<NewRefreshToken, SqlError> {
    let token = new_token()?;
    tx.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4)",
        &[
            Value::Text(token_hash(&token)),
            Value::Text(session_id.into()),
            Value::Integer(now),
            Value::Integer(expires_at_ms),
        ],
    )
    .await?;
    Ok(NewRefreshToken { token, expires_at_ms, session_id: session_id.into() })
}

/// Starts a session at `now` (ms since the epoch, as every `now` below).
pub async fn start(db: &Database, account_id: &str, ttl_ms: i64, now: i64) -> Result<NewRefreshToken, SqlError> {
    let session_id = uuid::Uuid::now_v7().to_string();
    let account_id = account_id.to_string();
    in_transaction(db, move |tx| {
        Box::pin(async move {
            tx.execute(
                "INSERT INTO sessions (id, account_id, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4)",
                &[
                    Value::Text(session_id.clone()),
                    Value::Text(account_id),
                    Value::Integer(now),
                    Value::Integer(now + ttl_ms),
                ],
            )
            .await?;
            insert_token(tx, &session_id, now + ttl_ms, now).await
        })
    })
    .await
}

/// What presenting a refresh token leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    Rotated {
        account_id: String,
        token: NewRefreshToken,
    },
    /// Unknown, expired, or its session already ended.
    Invalid,
    /// Already spent: the session has now been revoked.
    Reused,
}

pub async fn rotate(db: &Database, token: &str, ttl_ms: i64, now: i64) -> Result<Rotation, SqlError> {
    let hash = token_hash(token);
    in_transaction(db, move |tx| {
        Box::pin(async move {
            let rows = tx
                .query(
                    "SELECT s.id, s.account_id, s.expires_at_ms, s.revoked_at_ms, t.expires_at_ms, t.used_at_ms \
                     FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
                    &[Value::Text(hash.clone())],
                    &SqlLimits::default(),
                )
                .await?;
            let Some(row) = rows.rows.into_iter().next() else { return Ok(Rotation::Invalid) };
            let [
                Value::Text(session_id),
                Value::Text(account_id),
                Value::Integer(session_expires),
                revoked,
                Value::Integer(token_expires),
                used,
            ] = row.as_slice()
            else {
                return Err(SqlError::Other("unexpected session row".into()));
            };
            if *revoked != Value::Null || *session_expires <= now {
                return Ok(Rotation::Invalid);
            }
            if *used != Value::Null {
                revoke(tx, session_id, "refresh token reused", now).await?;
                return Ok(Rotation::Reused);
            }
            if *token_expires <= now {
                return Ok(Rotation::Invalid);
            }
            // Spend it; if a concurrent request spent it first, that is a
            // reuse too.
            let spent = tx
                .execute(
                    "UPDATE refresh_tokens SET used_at_ms = $2 WHERE token_hash = $1 AND used_at_ms IS NULL",
                    &[Value::Text(hash.clone()), Value::Integer(now)],
                )
                .await?;
            if spent == 0 {
                revoke(tx, session_id, "refresh token reused", now).await?;
                return Ok(Rotation::Reused);
            }
            let token = insert_token(tx, session_id, (now + ttl_ms).min(*session_expires), now).await?;
            Ok(Rotation::Rotated { account_id: account_id.clone(), token })
        })
    })
    .await
}

async fn revoke(tx: &mut Transaction, session_id: &str, reason: &str, now: i64) -> Result<(), SqlError> {
    tx.execute(
        "UPDATE sessions SET revoked_at_ms = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at_ms IS NULL",
        &[Value::Text(session_id.into()), Value::Integer(now), Value::Text(reason.into())],
    )
    .await?;
    Ok(())
}

/// Ends the session a refresh token belongs to (spent or not).
pub async fn end(db: &Database, token: &str, now: i64) -> Result<(), SqlError> {
    db.execute(
        "UPDATE sessions SET revoked_at_ms = $2, revoked_reason = 'logout' \
         WHERE revoked_at_ms IS NULL AND id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)",
        &[Value::Text(token_hash(token)), Value::Integer(now)],
    )
    .await?;
    Ok(())
}

pub async fn end_others(db: &Database, account_id: &str, keep: Option<&str>, now: i64) -> Result<u64, SqlError> {
    db.execute(
        "UPDATE sessions SET revoked_at_ms = $3, revoked_reason = 'password changed' \
         WHERE account_id = $1 AND revoked_at_ms IS NULL AND id <> $2",
        &[Value::Text(account_id.into()), Value::Text(keep.unwrap_or("").into()), Value::Integer(now)],
    )
    .await
}

/// The account a session belongs to, whatever its state.
pub async fn owner(db: &Database, session_id: &str) -> Result<Option<String>, SqlError> {
    let rows = db
        .query(
            "SELECT account_id FROM sessions WHERE id = $1",
            &[Value::Text(session_id.into())],
            &SqlLimits::default(),
        )
        .await?;
    Ok(first_text(rows))
}

/// The account a session belongs to, if the session is live at `now`.
pub async fn owner_if_live(db: &Database, session_id: &str, now: i64) -> Result<Option<String>, SqlError> {
    let rows = db
        .query(
            "SELECT account_id FROM sessions WHERE id = $1 AND revoked_at_ms IS NULL AND expires_at_ms > $2",
            &[Value::Text(session_id.into()), Value::Integer(now)],
            &SqlLimits::default(),
        )
        .await?;
    Ok(first_text(rows))
}

fn first_text(rows: crate::database::Rows) -> Option<String> {
    rows.rows.into_iter().next().and_then(|mut r| r.pop()).and_then(|v| match v {
        Value::Text(t) => Some(t),
        _ => None,
    })
}

/// Deletes sessions that ended (expired or revoked) at or before `ended_before`,
/// with their refresh tokens; returns (sessions, tokens) deleted. A token of
/// a deleted session is unknown, which `rotate` refuses exactly as it
/// refuses a token of an ended one. Live sessions keep every token, spent
/// ones included: those are what reveal a reuse.
pub async fn sweep(db: &Database, ended_before: i64) -> Result<(u64, u64), SqlError> {
    in_transaction(db, move |tx| {
        Box::pin(async move {
            let ended = [Value::Integer(ended_before)];
            let tokens = tx
                .execute(
                    "DELETE FROM refresh_tokens WHERE session_id IN \
                     (SELECT id FROM sessions WHERE expires_at_ms <= $1 OR revoked_at_ms <= $1)",
                    &ended,
                )
                .await?;
            let sessions =
                tx.execute("DELETE FROM sessions WHERE expires_at_ms <= $1 OR revoked_at_ms <= $1", &ended).await?;
            Ok((sessions, tokens))
        })
    })
    .await
}

/// Whether a session is live at `now`.
pub async fn live(db: &Database, session_id: &str, now: i64) -> Result<bool, SqlError> {
    Ok(owner_if_live(db, session_id, now).await?.is_some())
}
