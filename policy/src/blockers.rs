//! The sessions a guarded statement waited behind when it gave up on its lock: those that
//! hold, or queue for, a lock that conflicts with the one it needs, as `pg_locks` joined
//! to `pg_stat_activity` shows them (what the guides tell people to query by hand during
//! an incident). One query text for both live adapters: the extension runs it through
//! SPI once the failed attempt is rolled back, the proxy on the client's session.

use crate::catalog_queries::{regclass, Rows};
use crate::model::{LockLevel, QualifiedName};
use crate::sql::literal;

/// At most this many sessions are named.
const MOST: usize = 10;

/// A session in the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub pid: String,
    pub role: Option<String>,
    pub application: Option<String>,
    /// pg_stat_activity.state: active, idle in transaction, ...
    pub state: Option<String>,
    /// Seconds its transaction, and its current (or last) statement, have run.
    pub transaction_seconds: Option<String>,
    pub statement_seconds: Option<String>,
    /// The first line of its statement, truncated (or what a role without
    /// pg_read_all_stats may see of it).
    pub statement: Option<String>,
    /// The modes it holds or waits for, e.g. `RowExclusiveLock, AccessExclusiveLock (waiting)`.
    pub modes: String,
}

/// pg_locks' mode names of the levels that conflict with `level`, weakest first.
pub fn conflicting_modes(level: LockLevel) -> Vec<&'static str> {
    LockLevel::ALL
        .into_iter()
        .filter(|other| level.conflicts_with(*other))
        .map(mode_name)
        .collect()
}

/// pg_locks' name of a level (`AccessExclusiveLock`).
pub fn mode_name(level: LockLevel) -> &'static str {
    match level {
        LockLevel::AccessShare => "AccessShareLock",
        LockLevel::RowShare => "RowShareLock",
        LockLevel::RowExclusive => "RowExclusiveLock",
        LockLevel::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
        LockLevel::Share => "ShareLock",
        LockLevel::ShareRowExclusive => "ShareRowExclusiveLock",
        LockLevel::Exclusive => "ExclusiveLock",
        LockLevel::AccessExclusive => "AccessExclusiveLock",
    }
}

/// The sessions, other than this one, that hold or wait for a lock conflicting with one
/// of `locks` (the relation and the level a statement needs), those holding first, the
/// oldest transaction first. Columns as `from_rows` reads them.
pub fn blockers_sql(locks: &[(QualifiedName, LockLevel)]) -> String {
    let conditions: Vec<String> = locks
        .iter()
        .map(|(table, level)| {
            let modes: Vec<String> = conflicting_modes(*level).into_iter().map(literal).collect();
            format!(
                "(l.relation = {}::pg_catalog.oid AND l.mode = ANY (ARRAY[{}]))",
                regclass(table),
                modes.join(", ")
            )
        })
        .collect();
    let conditions = if conditions.is_empty() {
        "false".to_string()
    } else {
        conditions.join(" OR ")
    };
    format!(
        "SELECT a.pid::pg_catalog.text, a.usename::pg_catalog.text, a.application_name, a.state, \
         pg_catalog.round(EXTRACT(epoch FROM pg_catalog.now() - a.xact_start)::pg_catalog.numeric, 1)::pg_catalog.text, \
         pg_catalog.round(EXTRACT(epoch FROM pg_catalog.now() - a.query_start)::pg_catalog.numeric, 1)::pg_catalog.text, \
         pg_catalog.left(pg_catalog.split_part(a.query, E'\\n', 1), 100), \
         pg_catalog.string_agg(DISTINCT l.mode || CASE WHEN l.granted THEN '' ELSE ' (waiting)' END, ', ') \
         FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'relation' AND l.pid <> pg_catalog.pg_backend_pid() \
         AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()) \
         AND ({conditions}) \
         GROUP BY a.pid, a.usename, a.application_name, a.state, a.xact_start, a.query_start, a.query \
         ORDER BY pg_catalog.bool_or(l.granted) DESC, a.xact_start NULLS LAST LIMIT {MOST}"
    )
}

/// The sessions of `blockers_sql`'s rows.
pub fn from_rows(rows: &Rows) -> Vec<Blocker> {
    rows.iter()
        .filter_map(|row| {
            let column = |index: usize| row.get(index).cloned().flatten().filter(|value| !value.is_empty());
            Some(Blocker {
                pid: column(0)?,
                role: column(1),
                application: column(2),
                state: column(3),
                transaction_seconds: column(4),
                statement_seconds: column(5),
                statement: column(6),
                modes: column(7).unwrap_or_default(),
            })
        })
        .collect()
}

impl Blocker {
    /// `pid 4242 (role app, application psql, idle in transaction for 12.3s, statement
    /// 12.1s: "UPDATE t SET ...") holds RowExclusiveLock`.
    pub fn describe(&self) -> String {
        let mut about = Vec::new();
        if let Some(role) = &self.role {
            about.push(format!("role {role}"));
        }
        if let Some(application) = &self.application {
            about.push(format!("application {application}"));
        }
        match (&self.state, &self.transaction_seconds) {
            (Some(state), Some(seconds)) => about.push(format!("{state}, transaction {seconds}s")),
            (Some(state), None) => about.push(state.clone()),
            (None, Some(seconds)) => about.push(format!("transaction {seconds}s")),
            (None, None) => {}
        }
        match (&self.statement, &self.statement_seconds) {
            (Some(statement), Some(seconds)) => about.push(format!("statement {seconds}s: \"{statement}\"")),
            (Some(statement), None) => about.push(format!("statement \"{statement}\"")),
            _ => {}
        }
        let about = if about.is_empty() {
            String::new()
        } else {
            format!(" ({})", about.join(", "))
        };
        let holds = if self.modes.is_empty() {
            String::new()
        } else {
            format!(": {}", self.modes)
        };
        format!("pid {}{about}{holds}", self.pid)
    }
}

/// The DETAIL line naming the sessions in the way.
pub fn describe_all(blockers: &[Blocker]) -> String {
    if blockers.is_empty() {
        return "No session holds or waits for a conflicting lock any more.".to_string();
    }
    let sessions: Vec<String> = blockers.iter().map(Blocker::describe).collect();
    format!("Waiting behind: {}.", sessions.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_exclusive_conflicts_with_every_mode_and_share_with_writes() {
        assert_eq!(conflicting_modes(LockLevel::AccessExclusive).len(), 8);
        assert_eq!(
            conflicting_modes(LockLevel::Share),
            [
                "RowExclusiveLock",
                "ShareUpdateExclusiveLock",
                "ShareRowExclusiveLock",
                "ExclusiveLock",
                "AccessExclusiveLock"
            ]
        );
        assert_eq!(conflicting_modes(LockLevel::AccessShare), ["AccessExclusiveLock"]);
    }

    #[test]
    fn the_conflict_table_is_symmetric_as_lock_c_has_it() {
        for a in LockLevel::ALL {
            for b in LockLevel::ALL {
                assert_eq!(a.conflicts_with(b), b.conflicts_with(a), "{a:?} {b:?}");
            }
        }
        assert!(!LockLevel::RowExclusive.conflicts_with(LockLevel::RowExclusive));
        assert!(LockLevel::ShareUpdateExclusive.conflicts_with(LockLevel::ShareUpdateExclusive));
        assert!(LockLevel::RowShare.conflicts_with(LockLevel::Exclusive));
        assert!(!LockLevel::RowShare.conflicts_with(LockLevel::Share));
    }

    #[test]
    fn a_blocker_is_described_with_what_may_be_seen() {
        let rows: Rows = vec![
            vec![
                Some("4242".into()),
                Some("app".into()),
                Some("psql".into()),
                Some("idle in transaction".into()),
                Some("12.3".into()),
                Some("12.1".into()),
                Some("UPDATE t SET c = 1".into()),
                Some("RowExclusiveLock".into()),
            ],
            vec![
                Some("77".into()),
                None,
                None,
                None,
                None,
                None,
                Some("<insufficient privilege>".into()),
                Some("AccessShareLock (waiting)".into()),
            ],
        ];
        let blockers = from_rows(&rows);
        assert_eq!(
            describe_all(&blockers),
            "Waiting behind: pid 4242 (role app, application psql, idle in transaction, transaction 12.3s, \
             statement 12.1s: \"UPDATE t SET c = 1\"): RowExclusiveLock; pid 77 (statement \"<insufficient \
             privilege>\"): AccessShareLock (waiting)."
        );
        let sql = blockers_sql(&[(QualifiedName::bare("t"), LockLevel::Share)]);
        assert!(sql.contains(
            "l.relation = pg_catalog.to_regclass('t')::pg_catalog.oid AND l.mode = ANY (ARRAY['RowExclusiveLock'"
        ));
    }
}
