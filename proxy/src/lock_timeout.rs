//! The lock_timeout cap for a guarded role's DDL, whatever the client did before.
//!
//! The client can change lock_timeout in many ways (SET, SET LOCAL, RESET ALL, DISCARD
//! ALL, set_config, startup options, earlier in the same query string), so the proxy
//! never trusts what it last saw: right before each capped statement it sets
//! min(current, cap) (0 = forever counts as above the cap), computed by the server or
//! read from it at that moment, so a lower value the client chose is kept; right after,
//! it puts the client's value back. The client's statements reach the server as it sent
//! them wherever that is possible, so their transaction structure, text and positions
//! are the client's own (see `session`):
//!
//! - A Query of one capped statement: hidden round trips first (outside a transaction
//!   block `set_session_cap_sql`, restored by `session_restore_sql` from what it
//!   answered; inside one `SHOW` and `SET LOCAL`, which take no snapshot), the Query
//!   unchanged, a hidden restore.
//! - A Query of several statements is one implicit transaction already: the hidden
//!   statements are put into the string around each capped statement (`L` = true, local
//!   to that transaction), so a client SET between two statements cannot undo the cap.
//!   Positions in errors and notices are moved back by the inserted length.
//! - Extended protocol: when a capped statement's Parse or Bind starts a batch outside a
//!   transaction block, the cap is set session-wide just before the batch and serves its
//!   first Execute; any other capped Execute gets hidden Parse/Bind/Execute right before
//!   and after it (`L` = true: the batch up to Sync is one implicit transaction).
//!
//! If a statement fails, its transaction (implicit or explicit) rolls back and takes a
//! local setting with it; the restore then fails unseen, or is not run at all.

/// Name of the placeholder setting that holds the client's lock_timeout while a capped
/// statement runs.
const SAVED: &str = "safe_migrations_proxy.saved_lock_timeout";

/// The hidden statement that sets the cap (in ms); `local` as set_config's is_local.
pub fn set_cap_sql(cap_ms: u64, local: bool) -> String {
    format!(
        "SELECT pg_catalog.set_config('{SAVED}', pg_catalog.current_setting('lock_timeout'), {local}), \
         pg_catalog.set_config('lock_timeout', (SELECT CASE WHEN s.setting::bigint = 0 OR s.setting::bigint > {cap_ms} \
         THEN '{cap_ms}' ELSE s.setting END FROM pg_catalog.pg_settings s WHERE s.name = 'lock_timeout'), {local})"
    )
}

/// The hidden statement that sets the cap session-wide outside a transaction block; its
/// one row holds where the client's value came from (pg_settings.source) and the value
/// (in ms), which the proxy keeps to put back: nothing of it is left in the session.
pub fn set_session_cap_sql(cap_ms: u64) -> String {
    format!(
        "SELECT s.source, s.setting, \
         pg_catalog.set_config('lock_timeout', CASE WHEN s.setting::bigint = 0 OR s.setting::bigint > {cap_ms} \
         THEN '{cap_ms}' ELSE s.setting END, false) FROM pg_catalog.pg_settings s WHERE s.name = 'lock_timeout'"
    )
}

/// The hidden statement that puts the client's lock_timeout back after
/// `set_session_cap_sql` answered `rows`: a value the client SET goes back with its
/// source `session`; any other (default, configuration file, role, database, startup
/// options) is the session's reset value, and RESET brings back its source too.
pub fn session_restore_sql(rows: &[Vec<Option<String>>]) -> String {
    let row = rows.first();
    let source = row.and_then(|row| row.first()).cloned().flatten();
    let setting = row.and_then(|row| row.get(1)).cloned().flatten();
    match (source.as_deref(), setting) {
        (Some("session"), Some(ms)) if ms.chars().all(|c| c.is_ascii_digit()) => {
            format!("SET lock_timeout = {ms}")
        }
        _ => "RESET lock_timeout".to_string(),
    }
}

/// The hidden statement that puts the client's lock_timeout back.
pub fn restore_sql(local: bool) -> String {
    format!("SELECT pg_catalog.set_config('lock_timeout', pg_catalog.current_setting('{SAVED}'), {local})")
}

/// A client query string with the cap put around the statements that need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub sql: String,
    /// One per statement the server will report on, inserted ones included.
    pub segments: Vec<super::tracker::Segment>,
}

/// Put the hidden statements around each statement `i` with `caps[i]` set.
/// `starts[i]` is where statement `i`'s text starts (after the previous `;`).
pub fn rewrite(sql: &str, starts: &[usize], caps: &[Option<u64>]) -> Rewritten {
    use super::tracker::Segment;
    let mut out = String::with_capacity(sql.len() + 256 * caps.len());
    let mut segments = Vec::new();
    let mut shift = 0;
    for (i, cap) in caps.iter().enumerate() {
        let start = if i == 0 { 0 } else { starts[i].min(sql.len()) };
        let end = starts
            .get(i + 1)
            .copied()
            .unwrap_or(sql.len())
            .min(sql.len())
            .max(start);
        let text = sql.get(start..end).unwrap_or("");
        match cap {
            Some(cap_ms) => {
                let before = format!("{};", set_cap_sql(*cap_ms, true));
                let after = format!("\n;{};", restore_sql(true));
                segments.push(Segment { swallow: true, shift });
                shift += before.chars().count();
                segments.push(Segment { swallow: false, shift });
                segments.push(Segment { swallow: true, shift });
                shift += after.chars().count();
                out.push_str(&before);
                out.push_str(text);
                out.push_str(&after);
            }
            None => {
                segments.push(Segment { swallow: false, shift });
                out.push_str(text);
            }
        }
    }
    Rewritten { sql: out, segments }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_capped_statements_are_wrapped_and_positions_follow() {
        let sql = "SET lock_timeout = 0; ALTER TABLE t ADD COLUMN c int";
        let rewritten = rewrite(sql, &[0, 21], &[None, Some(3000)]);
        let before = format!("{};", set_cap_sql(3000, true));
        assert_eq!(
            rewritten.sql,
            format!(
                "SET lock_timeout = 0;{before} ALTER TABLE t ADD COLUMN c int\n;{};",
                restore_sql(true)
            )
        );
        assert_eq!(rewritten.segments.len(), 4);
        assert!(!rewritten.segments[0].swallow && rewritten.segments[0].shift == 0);
        assert!(rewritten.segments[1].swallow);
        assert_eq!(rewritten.segments[2].shift, before.len());
        assert!(rewritten.segments[3].swallow);
    }

    #[test]
    fn the_cap_is_computed_by_the_server() {
        let sql = set_cap_sql(1500, false);
        assert!(
            sql.contains("s.setting::bigint = 0 OR s.setting::bigint > 1500 THEN '1500'"),
            "{sql}"
        );
        assert!(sql.ends_with("false)"));
    }
}
