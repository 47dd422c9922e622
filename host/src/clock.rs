//! Wall-clock time for the host's own records (version tables, migration
//! records). Business time a component sees comes from its call's context.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}
