//! Brute-force protection for password checks.
//!
//! Failures are counted under three keys, each with its own rule:
//! - the (account, client address) pair: an attacker hammering one account
//!   from one place is slowed hard (up to 15 minutes);
//! - the client address: one place guessing across many accounts is
//!   slowed hard too;
//! - the account alone: slowed gently and never for long (at most a
//!   minute), so an attacker spread over many addresses cannot lock the
//!   real user out — the user, from their own address, is never in the
//!   attacker's pair.
//!
//! Past a rule's free failures, each failure doubles the wait, from
//! `base_delay` up to `max_delay`. A success clears the account and pair
//! counts. Counts live in the credentials store, so replicas share them.

use std::time::Duration;

use crate::database::{Database, SqlError, SqlLimits, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    /// Failures allowed before any wait.
    pub free_failures: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A count is forgotten after this long without a failure.
    pub window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub pair: ThrottleRule,
    pub client: ThrottleRule,
    pub account: ThrottleRule,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        let hour = Duration::from_secs(3600);
        Self {
            pair: ThrottleRule {
                free_failures: 5,
                base_delay: Duration::from_secs(2),
                max_delay: Duration::from_secs(900),
                window: hour,
            },
            client: ThrottleRule {
                free_failures: 20,
                base_delay: Duration::from_secs(2),
                max_delay: Duration::from_secs(900),
                window: hour,
            },
            account: ThrottleRule {
                free_failures: 10,
                base_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(60),
                window: hour,
            },
        }
    }
}

/// The keys one password check counts under.
pub struct Keys {
    keys: Vec<(String, ThrottleRule)>,
}

impl Keys {
    pub fn new(policy: &ThrottlePolicy, account_id: Option<&str>, client: &str) -> Self {
        let mut keys = vec![(format!("c:{client}"), policy.client)];
        if let Some(account) = account_id {
            keys.push((format!("a:{account}"), policy.account));
            keys.push((format!("p:{account}:{client}"), policy.pair));
        }
        Self { keys }
    }
}

/// Milliseconds until the caller may try again, if it must wait, as of
/// `now` (ms since the epoch).
pub async fn wait(db: &Database, keys: &Keys, now: i64) -> Result<Option<u64>, SqlError> {
    let mut longest = 0i64;
    for (key, _) in &keys.keys {
        let rows = db
            .query(
                "SELECT locked_until_ms FROM login_throttle WHERE key = $1",
                &[Value::Text(key.clone())],
                &SqlLimits::default(),
            )
            .await?;
        if let Some(Value::Integer(until)) = rows.rows.first().and_then(|r| r.first()) {
            longest = longest.max(until - now);
        }
    }
    Ok((longest > 0).then_some(longest as u64))
}

pub async fn failed(db: &Database, keys: &Keys, now: i64) -> Result<(), SqlError> {
    for (key, rule) in &keys.keys {
        let rows = db
            .query(
                "SELECT failures, first_failure_at_ms FROM login_throttle WHERE key = $1",
                &[Value::Text(key.clone())],
                &SqlLimits::default(),
            )
            .await?;
        // A count is forgotten once `window` passes without a failure under
        // its key. (Measuring from the first failure instead reset a
        // persistent attacker to free guesses every `window`.) The column
        // keeps its historical name; it holds the latest failure's time.
        let failures = match rows.rows.first().map(Vec::as_slice) {
            Some([Value::Integer(f), Value::Integer(last)]) if now - last < rule.window.as_millis() as i64 => f + 1,
            _ => 1,
        };
        let over = failures - i64::from(rule.free_failures);
        let locked_until = if over > 0 {
            let delay = rule.base_delay.saturating_mul(1u32 << (over - 1).min(20) as u32).min(rule.max_delay);
            now + delay.as_millis() as i64
        } else {
            0
        };
        db.execute(
            "INSERT INTO login_throttle (key, failures, first_failure_at_ms, locked_until_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, \
               first_failure_at_ms = excluded.first_failure_at_ms, locked_until_ms = excluded.locked_until_ms",
            &[Value::Text(key.clone()), Value::Integer(failures), Value::Integer(now), Value::Integer(locked_until)],
        )
        .await?;
    }
    Ok(())
}

/// Deletes counts that can no longer slow anyone down: their lock (if any)
/// is over and their window has passed, so the next failure under that key
/// would start from one anyway. Returns how many were deleted.
pub async fn sweep(db: &Database, policy: &ThrottlePolicy, now: i64) -> Result<u64, SqlError> {
    let window =
        [policy.pair.window, policy.client.window, policy.account.window].into_iter().max().unwrap_or_default();
    db.execute(
        "DELETE FROM login_throttle WHERE locked_until_ms <= $1 AND first_failure_at_ms <= $2",
        &[Value::Integer(now), Value::Integer(now - window.as_millis() as i64)],
    )
    .await
}

/// A correct password clears the account's and the pair's counts (not the
/// client's: a guesser who also knows one password keeps its count).
pub async fn succeeded(db: &Database, keys: &Keys) -> Result<(), SqlError> {
    for (key, _) in keys.keys.iter().filter(|(k, _)| !k.starts_with("c:")) {
        db.execute("DELETE FROM login_throttle WHERE key = $1", &[Value::Text(key.clone())]).await?;
    }
    Ok(())
}
