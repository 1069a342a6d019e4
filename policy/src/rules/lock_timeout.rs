//! Every guarded DDL statement whose lock blocks reads or writes runs with a
//! lock_timeout in (0, cap], so a statement queued behind a long transaction fails
//! fast instead of queueing every later query behind itself.
//!
//! A statement that gives up waiting is tried again, `lock_retries` times, after growing
//! pauses: each failed attempt leaves the lock queue at once, so the traffic stalled
//! behind it resumes within the cap, and the migration still completes when the
//! long transaction in its way leaves gaps. Retrying is harmless only while the
//! transaction holds no other lock that blocks traffic: every pause would keep that
//! table locked. Then the statement fails at once, naming that lock.

use super::{concurrently_in_transaction, Category, Rule, Scope};
use crate::blockers::{describe_all, Blocker};
use crate::finding::{Finding, Lock};
use crate::locks::{strongest_lock, table_locks};
use crate::model::{Statement, Stmt};
use crate::settings::format_duration_ms;
use crate::transaction::HeldLock;

/// The longest pause between two attempts.
pub const MAX_PAUSE_MS: u64 = 30_000;

pub const RULE: Rule = Rule {
    id: "lock_timeout",
    category: Category::Timeout,
    summary: "guarded DDL runs with lock_timeout capped (never 0 = wait forever)",
    check,
};

/// The cap is applied by the adapter (`Decision::lock_timeout_ms`), not reported.
fn check(_: &Statement, _: &Scope) -> Vec<Finding> {
    vec![]
}

/// The lock_timeout (ms) to run `stmt` with: min(session value, cap), where a session
/// value of 0 means "forever". None when no cap applies: the cap is 0, the rule is
/// allowed for the role, or the statement's lock blocks neither reads nor writes.
pub fn effective_lock_timeout(stmt: &Stmt, scope: &Scope) -> Option<u64> {
    let cap = scope.settings.lock_timeout_cap_ms;
    if cap == 0 || scope.settings.allow.contains(RULE.id) {
        return None;
    }
    let lock = strongest_lock(stmt)?;
    if !(lock.blocks_reads() || lock.blocks_writes()) {
        return None;
    }
    let session = scope.context.session_lock_timeout_ms;
    Some(if session == 0 { cap } else { session.min(cap) })
}

/// What becomes of a guarded statement whose lock wait reaches its lock_timeout.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Retry {
    /// It fails (no cap applies, or the statement does not run alike in a subtransaction,
    /// which a retry in place needs: the CONCURRENTLY forms PostgreSQL refuses in a
    /// transaction block, REINDEX, CLUSTER, TRUNCATE, DROP; see
    /// `runs_alike_in_a_subtransaction`). REFRESH MATERIALIZED VIEW CONCURRENTLY runs in
    /// a block and is retried.
    #[default]
    No,
    /// Up to `retries` more attempts (0: none), the first after about `first_pause_ms`.
    Attempts { retries: u32, first_pause_ms: u64 },
    /// It fails at once: the transaction holds this lock, which a pause would keep.
    HoldsLock(HeldLock),
}

/// How `statement` is retried when its lock wait times out.
pub fn retry(stmt: &Stmt, scope: &Scope) -> Retry {
    if effective_lock_timeout(stmt, scope).is_none()
        || concurrently_in_transaction::concurrent_command(stmt).is_some()
        || !runs_alike_in_a_subtransaction(stmt, scope)
    {
        return Retry::No;
    }
    // Any of them, on the statement's own tables too: a statement that waits holds what
    // the transaction took before (an attempt's rollback keeps it), so every pause would
    // keep that table locked; and one that waits for nothing is never retried anyway.
    if let Some(held) = scope.context.held_locks.iter().min_by_key(|held| held.since) {
        return Retry::HoldsLock(held.clone());
    }
    // With no retries too: the attempt runs in a subtransaction, so that the sessions in
    // its way can be named once it has given up.
    Retry::Attempts {
        retries: scope.settings.lock_retries,
        first_pause_ms: scope.settings.lock_retry_delay_ms,
    }
}

/// Does `stmt` run in a subtransaction as it runs without one? A retry in place runs each
/// attempt in one, where PostgreSQL counts the statement as inside a transaction block:
/// what it refuses in one (CREATE DATABASE, REINDEX DATABASE, VACUUM, ...) would fail,
/// and what it allows only in one (LOCK TABLE outside a block) would no longer fail. So
/// only the statements known to check neither are retried; others (and every statement
/// the model does not describe) fail at the cap as before.
///
/// Not retried for that reason: REINDEX and CLUSTER (refused in a block for a partitioned
/// table), TRUNCATE and DROP (their effect on the table's statistics counters is a
/// subtransaction's: PostgreSQL's own regression suite shows it), and LOCK TABLE outside
/// a block (which fails there).
fn runs_alike_in_a_subtransaction(stmt: &Stmt, scope: &Scope) -> bool {
    match stmt {
        Stmt::AlterTable(_)
        | Stmt::CreateTable(_)
        | Stmt::Rename(_)
        | Stmt::SetSchema(_)
        | Stmt::RefreshMaterializedView { .. } => true,
        Stmt::CreateIndex(index) => !index.concurrently,
        Stmt::DropIndex(drop) => !drop.concurrently,
        Stmt::Lock { .. } => scope.context.in_transaction_block || scope.context.nested,
        _ => false,
    }
}

/// Is everything `stmt` does undone by rolling its transaction back, so that running it
/// again afterwards does what running it once did? Schema changes and settings are
/// (PostgreSQL's DDL is transactional; what is not refuses a transaction block, which a
/// string of several statements is). Queries and writes may call functions that act
/// outside the transaction (a sequence, an advisory lock, dblink), routines run any
/// code, and transaction control ends or splits the transaction: not these.
pub fn undone_by_rollback(stmt: &Stmt) -> bool {
    match stmt {
        Stmt::CreateIndex(index) => !index.concurrently,
        Stmt::DropIndex(drop) => !drop.concurrently,
        Stmt::AlterTable(_)
        | Stmt::CreateTable(_)
        | Stmt::Rename(_)
        | Stmt::SetSchema(_)
        | Stmt::Drop(_)
        | Stmt::Truncate { .. }
        | Stmt::Lock { .. }
        | Stmt::Set(_)
        | Stmt::Routine(crate::model::RoutineKind::CreateFunction) => true,
        Stmt::CreateView(_) => true,
        Stmt::Other { ddl, .. } => *ddl,
        _ => false,
    }
}

/// The pause before retry `number` (1 for the first): `first_pause_ms` doubled for each
/// retry before it, at most `MAX_PAUSE_MS`, less up to half of it by `jitter` (0 to 1), so
/// that migrators retrying together spread out.
pub fn pause_ms(first_pause_ms: u64, number: u32, jitter: f64) -> u64 {
    let doublings = number.saturating_sub(1).min(20);
    let full = first_pause_ms.saturating_mul(1 << doublings).min(MAX_PAUSE_MS);
    let jitter = jitter.clamp(0.0, 1.0);
    full - ((full / 2) as f64 * jitter) as u64
}

/// 0 to 1 from the clock and `salt` (a process id, say): different for sessions retrying
/// together.
pub fn jitter(salt: u32) -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |time| time.subsec_nanos());
    f64::from(
        nanos
            .wrapping_mul(2_654_435_761)
            .wrapping_add(salt.wrapping_mul(40_503))
            % 1_000_000,
    ) / 1_000_000.0
}

/// The lock `stmt` waits for, as messages name it: its strongest, on its first table.
pub fn awaited_lock(stmt: &Stmt) -> Option<Lock> {
    let level = strongest_lock(stmt)?;
    let locks = table_locks(stmt);
    let (table, _) = locks.iter().find(|(_, taken)| *taken == level).or(locks.first())?;
    Some(Lock {
        level,
        relation: table.clone(),
    })
}

fn waited_for(lock: Option<&Lock>) -> String {
    match lock {
        Some(lock) => format!("{} on {}", lock.level, lock.relation),
        None => "its lock".to_string(),
    }
}

/// The server log line of a failed attempt that is retried.
pub fn retry_log(lock: Option<&Lock>, attempt: u32, attempts: u32, pause_ms: u64, blockers: &[Blocker]) -> String {
    format!(
        "lock_timeout: attempt {attempt} of {attempts} to take {} gave up; retrying in {}. {}",
        waited_for(lock),
        format_duration_ms(pause_ms),
        describe_all(blockers)
    )
}

/// A statement run with retries, as both adapters run it: what it waits for, which
/// sessions to name when an attempt gives up, and what comes after each failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retrying {
    pub retry: Retry,
    /// The lock the messages name (`awaited_lock`).
    pub lock: Option<Lock>,
    /// The relations and levels whose conflicting holders a failed attempt names
    /// (`crate::blockers::blockers_sql`).
    pub locks: Vec<(crate::model::QualifiedName, crate::model::LockLevel)>,
    /// The lock_timeout each attempt runs with (ms).
    pub cap_ms: u64,
    /// The statement's first line: the transaction model's locks taken by it carry it.
    pub statement: String,
}

/// What follows an attempt that gave up waiting for its lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterAttempt {
    /// Pause this long, log this line, and try again.
    Pause { pause_ms: u64, log: String },
    /// Fail with this message, detail and hint (SQLSTATE 55P03, as the server's).
    Fail {
        message: String,
        detail: String,
        hint: String,
    },
}

impl Retrying {
    /// How `statement`, decided as `decision`, runs: None when it runs as it is (no cap,
    /// or not run in a subtransaction: `Retry::No`).
    pub fn new(statement: &Statement, decision: &crate::Decision) -> Option<Retrying> {
        let cap_ms = decision.lock_timeout_ms?;
        if decision.retry == Retry::No {
            return None;
        }
        Some(Retrying {
            retry: decision.retry.clone(),
            lock: awaited_lock(&statement.stmt),
            locks: table_locks(&statement.stmt),
            cap_ms,
            statement: crate::sql::first_line(&statement.source),
        })
    }

    /// The same statement run where the transaction holds `held` (the locks that block
    /// traffic), not the locks it was decided under: an adapter that runs it later (a
    /// prepared statement) or after a rollback that released some of them (a string of
    /// statements run again whole) decides again whether a pause would keep one.
    pub fn holding(self, held: &[HeldLock], settings: &crate::settings::Settings) -> Retrying {
        let retry = match held.iter().min_by_key(|held| held.since) {
            Some(held) => Retry::HoldsLock(held.clone()),
            None => Retry::Attempts {
                retries: settings.lock_retries,
                first_pause_ms: settings.lock_retry_delay_ms,
            },
        };
        Retrying { retry, ..self }
    }

    /// Attempts in all, the first included.
    pub fn attempts(&self) -> u32 {
        match self.retry {
            Retry::Attempts { retries, .. } => retries.saturating_add(1),
            _ => 1,
        }
    }

    /// After attempt `attempt` (1 for the first) gave up, `elapsed_ms` after the first
    /// began, with `blockers` in the way; `jitter` (0 to 1) spreads the pauses.
    pub fn after_attempt(&self, attempt: u32, elapsed_ms: u64, blockers: &[Blocker], jitter: f64) -> AfterAttempt {
        let (message, detail, hint) = match &self.retry {
            Retry::Attempts {
                retries,
                first_pause_ms,
            } if attempt <= *retries => {
                let pause_ms = pause_ms(*first_pause_ms, attempt, jitter);
                let log = retry_log(self.lock.as_ref(), attempt, retries + 1, pause_ms, blockers);
                return AfterAttempt::Pause { pause_ms, log };
            }
            Retry::HoldsLock(held) => holds_lock(self.lock.as_ref(), self.cap_ms, held, blockers),
            _ => gave_up(self.lock.as_ref(), attempt, elapsed_ms, self.cap_ms, blockers),
        };
        AfterAttempt::Fail { message, detail, hint }
    }
}

/// Message, detail and hint of the error when every attempt gave up.
pub fn gave_up(
    lock: Option<&Lock>,
    attempts: u32,
    elapsed_ms: u64,
    cap_ms: u64,
    blockers: &[Blocker],
) -> (String, String, String) {
    let tries = if attempts == 1 {
        "1 attempt".to_string()
    } else {
        format!("{attempts} attempts over {}", format_duration_ms(elapsed_ms))
    };
    (
        format!(
            "lock_timeout: gave up waiting for {} after {tries}, each capped at {} (safe_migrations.lock_timeout)",
            waited_for(lock),
            format_duration_ms(cap_ms)
        ),
        describe_all(blockers),
        crate::report::with_rule_reference(
            RULE.id,
            "Each attempt left the lock queue when it gave up, so the queries it stalled went on. Run the \
             migration again once the sessions above are done, end them (pg_terminate_backend) if they should not \
             run that long, or allow more attempts (safe_migrations.lock_retries, safe_migrations.lock_retry_delay).",
        ),
    )
}

/// Message, detail and hint of the error of a statement not retried because its
/// transaction holds `held`.
pub fn holds_lock(lock: Option<&Lock>, cap_ms: u64, held: &HeldLock, blockers: &[Blocker]) -> (String, String, String) {
    (
        format!(
            "lock_timeout: gave up waiting for {} after {} (safe_migrations.lock_timeout), and is not retried: this \
             transaction holds {} on {}, taken by `{}`, which every pause would keep",
            waited_for(lock),
            format_duration_ms(cap_ms),
            held.level,
            held.table,
            held.statement
        ),
        describe_all(blockers),
        crate::report::with_rule_reference(
            RULE.id,
            "Retry the migration as a whole, or split it so that this statement runs in a transaction of its own \
             (where it is retried).",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Context, CreateIndex, LockLevel};
    use crate::rules::testing::*;

    fn effective(stmt: Stmt, session_ms: u64, cap_ms: u64) -> Option<u64> {
        let settings = crate::settings::Settings {
            lock_timeout_cap_ms: cap_ms,
            ..enforce()
        };
        let context = Context {
            session_lock_timeout_ms: session_ms,
            ..Context::default()
        };
        let catalog = TestCatalog::default();
        effective_lock_timeout(&stmt, &Scope::new(&context, &catalog, &settings))
    }

    fn lock(mode: LockLevel) -> Stmt {
        Stmt::Lock {
            tables: vec![q("t")],
            mode,
        }
    }

    fn retry_of(stmt: Stmt, held: Vec<HeldLock>, retries: u32) -> Retry {
        let settings = crate::settings::Settings {
            lock_retries: retries,
            ..enforce()
        };
        let context = Context {
            held_locks: held,
            in_transaction_block: true,
            ..Context::default()
        };
        let catalog = TestCatalog::default();
        retry(&stmt, &Scope::new(&context, &catalog, &settings))
    }

    fn held(table: &str) -> HeldLock {
        HeldLock {
            table: q(table),
            level: LockLevel::AccessExclusive,
            statement: format!("ALTER TABLE {table} ADD COLUMN x int"),
            since: std::time::Instant::now(),
            subtransaction: 1,
        }
    }

    #[test]
    fn a_capped_statement_is_retried_unless_its_transaction_holds_another_lock() {
        let alter = lock(LockLevel::AccessExclusive);
        assert_eq!(
            retry_of(alter.clone(), vec![], 3),
            Retry::Attempts {
                retries: 3,
                first_pause_ms: 1_000
            }
        );
        assert_eq!(
            retry_of(alter.clone(), vec![], 0),
            Retry::Attempts {
                retries: 0,
                first_pause_ms: 1_000
            }
        );
        // A lock on its own table counts too: a wait for another table's lock (or a
        // stronger one on its own) keeps it through every pause.
        assert!(matches!(
            retry_of(alter.clone(), vec![held("t")], 3),
            Retry::HoldsLock(lock) if lock.table == q("t")
        ));
        assert!(matches!(
            retry_of(alter, vec![held("users")], 3),
            Retry::HoldsLock(lock) if lock.table == q("users")
        ));
        assert_eq!(retry_of(Stmt::Query, vec![], 3), Retry::No);
        // Statements that check whether they run in a transaction block are not retried
        // in a subtransaction: LOCK TABLE outside a block, what the model does not know.
        let outside = Context::default();
        let settings = enforce();
        let catalog = TestCatalog::default();
        let scope = Scope::new(&outside, &catalog, &settings);
        assert_eq!(retry(&lock(LockLevel::AccessExclusive), &scope), Retry::No);
        let other = Stmt::Other {
            tag: "CREATE DATABASE".into(),
            ddl: true,
        };
        assert_eq!(retry(&other, &scope), Retry::No);
    }

    fn retrying(retry: Retry) -> Retrying {
        let statement = Statement::new(
            lock(LockLevel::AccessExclusive),
            "LOCK TABLE t\nIN ACCESS EXCLUSIVE MODE",
        );
        let decision = crate::Decision {
            lock_timeout_ms: Some(1_000),
            retry,
            ..crate::Decision::default()
        };
        Retrying::new(&statement, &decision).expect("retried")
    }

    #[test]
    fn retrying_pauses_until_the_last_attempt_then_fails_naming_the_lock() {
        let plan = retrying(Retry::Attempts {
            retries: 2,
            first_pause_ms: 100,
        });
        assert_eq!(plan.attempts(), 3);
        assert_eq!(plan.statement, "LOCK TABLE t");
        assert_eq!(plan.locks, vec![(q("t"), LockLevel::AccessExclusive)]);
        match plan.after_attempt(2, 1_500, &[], 0.0) {
            AfterAttempt::Pause { pause_ms, log } => {
                assert_eq!(pause_ms, 200);
                assert!(log.contains("attempt 2 of 3"), "{log}");
            }
            other => panic!("{other:?}"),
        }
        match plan.after_attempt(3, 4_000, &[], 0.0) {
            AfterAttempt::Fail { message, .. } => {
                assert!(
                    message.contains("after 3 attempts over 4s, each capped at 1s"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
        let holds = retrying(Retry::HoldsLock(held("users")));
        assert_eq!(holds.attempts(), 1);
        assert!(matches!(
            holds.after_attempt(1, 1_000, &[], 0.0),
            AfterAttempt::Fail { message, .. } if message.contains("holds ACCESS EXCLUSIVE on users")
        ));
        let none = crate::Decision {
            lock_timeout_ms: Some(1_000),
            ..crate::Decision::default()
        };
        assert_eq!(Retrying::new(&Statement::new(Stmt::Query, "SELECT 1"), &none), None);
    }

    #[test]
    fn retrying_is_decided_again_for_the_locks_held_when_it_runs() {
        let settings = enforce();
        let holds = retrying(Retry::HoldsLock(held("users")));
        assert!(matches!(
            holds.clone().holding(&[], &settings).retry,
            Retry::Attempts { retries, .. } if retries == settings.lock_retries
        ));
        assert!(matches!(
            holds.holding(&[held("t")], &settings).retry,
            Retry::HoldsLock(lock) if lock.table == q("t")
        ));
    }

    #[test]
    fn jitter_is_between_zero_and_one() {
        for salt in [0, 1, u32::MAX] {
            assert!((0.0..=1.0).contains(&jitter(salt)));
        }
    }

    #[test]
    fn pauses_double_up_to_the_maximum_less_up_to_half_by_jitter() {
        assert_eq!(pause_ms(1_000, 1, 0.0), 1_000);
        assert_eq!(pause_ms(1_000, 2, 0.0), 2_000);
        assert_eq!(pause_ms(1_000, 3, 1.0), 2_000);
        assert_eq!(pause_ms(1_000, 10, 0.0), MAX_PAUSE_MS);
        assert_eq!(pause_ms(1_000, 64, 0.5), MAX_PAUSE_MS - MAX_PAUSE_MS / 4);
    }

    #[test]
    fn session_zero_means_forever_so_the_cap_wins() {
        assert_eq!(effective(lock(LockLevel::AccessExclusive), 0, 3000), Some(3000));
    }

    #[test]
    fn a_lower_session_value_is_kept() {
        assert_eq!(effective(lock(LockLevel::AccessExclusive), 500, 3000), Some(500));
        assert_eq!(effective(lock(LockLevel::AccessExclusive), 60_000, 3000), Some(3000));
    }

    #[test]
    fn cap_zero_disables() {
        assert_eq!(effective(lock(LockLevel::AccessExclusive), 0, 0), None);
    }

    #[test]
    fn concurrently_builds_are_not_capped() {
        let cic = Stmt::CreateIndex(CreateIndex {
            concurrently: true,
            table: q("t"),
            ..CreateIndex::default()
        });
        assert_eq!(effective(cic, 0, 3000), None);
        assert_eq!(effective(lock(LockLevel::ShareUpdateExclusive), 0, 3000), None);
    }

    #[test]
    fn queries_and_session_commands_are_not_capped() {
        assert_eq!(effective(Stmt::Query, 0, 3000), None);
    }

    #[test]
    fn unknown_ddl_is_capped() {
        assert_eq!(
            effective(
                Stmt::Other {
                    tag: "CREATE POLICY".into(),
                    ddl: true
                },
                0,
                3000
            ),
            Some(3000)
        );
    }
}
