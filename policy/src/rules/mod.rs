//! The rule catalogue and the one decision every adapter calls.
//!
//! Adding a rule: one file in this folder named after the rule id, and one line in
//! `RULES`.

use std::cell::RefCell;

use crate::ack::acknowledgements;
use crate::catalog::Catalog;
use crate::finding::{Finding, Severity, SQLSTATE_LOCK};
use crate::model::{
    AlterAction, AlterTable, ColumnDef, Constraint, Context, QualifiedName, Statement, Stmt, TransactionKind,
};
use crate::settings::{Mode, Settings};
use crate::transaction::Transaction;

mod add_check_constraint_validated;
mod add_column_required;
mod add_column_rewrites_table;
mod add_column_volatile_default;
mod add_exclusion_constraint;
mod add_foreign_key_validated;
mod add_unique_constraint;
mod backfill_in_ddl_transaction;
mod change_column_type;
mod concurrently_in_transaction;
mod create_index_non_concurrently;
mod detach_partition_non_concurrently;
mod drop_column;
mod drop_index_non_concurrently;
mod drop_table;
mod json_column;
pub mod lock_held_too_long;
mod lock_table;
pub mod lock_timeout;
pub mod policy_change;
mod refresh_materialized_view_non_concurrently;
mod reindex_non_concurrently;
mod rename_column;
mod rename_table;
mod rewrite_table;
mod set_not_null;
mod truncate;
mod unbatched_backfill;

#[cfg(test)]
pub(crate) mod testing;

/// What kind of harm a rule prevents; lock rules honour `min_table_rows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Lock,
    Compatibility,
    Destructive,
    Timeout,
    /// The guard's own settings: never acknowledged by a comment, refused in warn mode too.
    Policy,
}

pub struct Rule {
    pub id: &'static str,
    pub category: Category,
    /// One line for `--help` and the docs.
    pub summary: &'static str,
    pub check: fn(&Statement, &Scope) -> Vec<Finding>,
}

pub const RULES: &[Rule] = &[
    create_index_non_concurrently::RULE,
    drop_index_non_concurrently::RULE,
    reindex_non_concurrently::RULE,
    detach_partition_non_concurrently::RULE,
    refresh_materialized_view_non_concurrently::RULE,
    concurrently_in_transaction::RULE,
    add_foreign_key_validated::RULE,
    add_check_constraint_validated::RULE,
    set_not_null::RULE,
    add_unique_constraint::RULE,
    add_exclusion_constraint::RULE,
    add_column_volatile_default::RULE,
    add_column_rewrites_table::RULE,
    change_column_type::RULE,
    rewrite_table::RULE,
    lock_table::RULE,
    truncate::RULE,
    backfill_in_ddl_transaction::RULE,
    unbatched_backfill::RULE,
    json_column::RULE,
    rename_column::RULE,
    rename_table::RULE,
    drop_column::RULE,
    drop_table::RULE,
    add_column_required::RULE,
    lock_timeout::RULE,
    lock_held_too_long::RULE,
    policy_change::RULE,
];

/// What a rule may look at besides the statement.
pub struct Scope<'a> {
    pub context: &'a Context,
    pub catalog: &'a dyn Catalog,
    pub settings: &'a Settings,
    /// Answers of `is_new_table` and `is_small_table` so far: several rules ask about the
    /// same table, and each answer costs a catalog lookup in the backend.
    new_tables: RefCell<Vec<(QualifiedName, bool)>>,
    small_tables: RefCell<Vec<(QualifiedName, bool)>>,
    empty_tables: RefCell<Vec<(QualifiedName, bool)>>,
}

impl<'a> Scope<'a> {
    pub fn new(context: &'a Context, catalog: &'a dyn Catalog, settings: &'a Settings) -> Scope<'a> {
        Scope {
            context,
            catalog,
            settings,
            new_tables: RefCell::default(),
            small_tables: RefCell::default(),
            empty_tables: RefCell::default(),
        }
    }

    /// Created in this transaction: invisible to other sessions, so its locks harm no one.
    pub fn is_new_table(&self, table: &QualifiedName) -> bool {
        remembered(&self.new_tables, table, || {
            self.catalog.created_in_transaction(table) == Some(true)
        })
    }

    /// Below `min_table_rows` by the planner's estimate (never when the estimate is unknown).
    pub fn is_small_table(&self, table: &QualifiedName) -> bool {
        let min = self.settings.min_table_rows;
        min > 0
            && remembered(&self.small_tables, table, || {
                self.catalog
                    .estimated_rows(table)
                    .is_some_and(|rows| rows >= 0.0 && rows < min as f64)
            })
    }

    /// Lock rules apply to `table` unless it is new in this transaction or small.
    pub fn lock_rules_apply(&self, table: &QualifiedName) -> bool {
        !self.is_new_table(table) && !self.is_small_table(table)
    }

    /// Holds `table` no row at all, by its size (`Catalog::relation_is_empty`)?
    pub fn is_empty_table(&self, table: &QualifiedName) -> bool {
        remembered(&self.empty_tables, table, || {
            self.catalog.relation_is_empty(table) == Some(true)
        })
    }

    /// The rules whose harm is a scan, a build or a rewrite of `table` under its lock apply
    /// unless lock rules do not (`lock_rules_apply`) or the table has no row: the work
    /// then takes as long as looking at no page. (Not the rules whose harm is the lock
    /// itself, held as long as the transaction (LOCK TABLE), or work that does not depend
    /// on the table's rows (a backfill into it, REFRESH of a view): those still apply.)
    pub fn scan_rules_apply(&self, table: &QualifiedName) -> bool {
        self.lock_rules_apply(table) && !self.is_empty_table(table)
    }
}

/// The answer about `table` in `answers`, else `answer()`, remembered.
fn remembered(
    answers: &RefCell<Vec<(QualifiedName, bool)>>,
    table: &QualifiedName,
    answer: impl FnOnce() -> bool,
) -> bool {
    if let Some((_, known)) = answers.borrow().iter().find(|(name, _)| name == table) {
        return *known;
    }
    let known = answer();
    answers.borrow_mut().push((table.clone(), known));
    known
}

/// VALIDATE CONSTRAINT of a FOREIGN KEY (when `foreign_key`, else a CHECK) while the
/// transaction holds a lock that blocks reads or writes: the scan NOT VALID put off runs
/// under that lock after all, as a validated ADD's would. The constraint's kind is known
/// when this transaction added it NOT VALID, else asked of the catalog (only while such a
/// lock is held). Reported by `rule`, the rule of the validated ADD.
pub(crate) fn validation_under_lock(
    alter: &crate::model::AlterTable,
    scope: &Scope,
    foreign_key: bool,
    rule: &'static str,
) -> Vec<Finding> {
    let Some(held) = scope
        .context
        .held_locks
        .iter()
        .find(|lock| lock.table == alter.table)
        .or_else(|| scope.context.held_locks.iter().max_by_key(|lock| lock.level))
    else {
        return Vec::new();
    };
    let findings = alter
        .actions
        .iter()
        .filter_map(|action| match action {
            AlterAction::ValidateConstraint { name } => Some(name),
            _ => None,
        })
        .filter(|name| {
            let added = scope
                .context
                .added_not_valid
                .iter()
                .find(|added| &added.name == *name && added.table.may_be(&alter.table));
            match added {
                Some(added) => added.foreign_key == foreign_key,
                // Added NOT VALID by an earlier transaction: its kind is the catalog's.
                None => scope
                    .catalog
                    .constraint_type(&alter.table, name)
                    .is_some_and(|kind| kind == if foreign_key { 'f' } else { 'c' }),
            }
        })
        .map(|name| {
            let table = &alter.table;
            let lock = held.lock();
            Finding::new(
                rule,
                SQLSTATE_LOCK,
                Some(lock.clone()),
                format!(
                    "VALIDATE CONSTRAINT {} scans every row of {table} while this transaction holds {} on {}, \
                     taken by `{}`: the scan NOT VALID put off runs under that lock after all",
                    crate::sql::ident(name),
                    held.level,
                    held.table,
                    held.statement
                ),
                format!(
                    "Lock: {}, held until the transaction ends. VALIDATE CONSTRAINT blocks neither reads nor \
                     writes only in a transaction of its own.",
                    lock.describe()
                ),
                format!(
                    "Commit after adding the constraint NOT VALID, then validate it in a transaction (or \
                     migration) of its own:\n    {} VALIDATE CONSTRAINT {};",
                    alter_table_sql(alter),
                    crate::sql::ident(name)
                ),
            )
        })
        .collect();
    unless_cheap(findings, &alter.table, scope)
}

/// `findings` about `table`, unless lock rules do not apply to it (new in this transaction
/// or small). The catalog is asked only when there is something to report: most ALTER
/// TABLE statements have nothing for a given rule, and each question costs a lookup.
pub(crate) fn unless_exempt(findings: Vec<Finding>, table: &QualifiedName, scope: &Scope) -> Vec<Finding> {
    if findings.is_empty() || !scope.lock_rules_apply(table) {
        Vec::new()
    } else {
        findings
    }
}

/// `findings` about a scan, build or rewrite of `table`, unless `Scope::scan_rules_apply`
/// says otherwise (asked only when there is something to report, like `unless_exempt`).
pub(crate) fn unless_cheap(findings: Vec<Finding>, table: &QualifiedName, scope: &Scope) -> Vec<Finding> {
    if findings.is_empty() || !scope.scan_rules_apply(table) {
        Vec::new()
    } else {
        findings
    }
}

/// `findings` about `table`, unless it was created in this transaction (asked only when
/// there is something to report, like `unless_exempt`).
pub(crate) fn unless_new(findings: Vec<Finding>, table: &QualifiedName, scope: &Scope) -> Vec<Finding> {
    if findings.is_empty() || scope.is_new_table(table) {
        Vec::new()
    } else {
        findings
    }
}

/// An acknowledged finding: let through, to be logged with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    pub rule: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    /// What the statement does wrong and is not allowed or acknowledged, in rule order.
    /// In warn mode every finding is a warning.
    pub findings: Vec<Finding>,
    pub acknowledged: Vec<Acknowledged>,
    /// Run the statement with this lock_timeout (ms), if set.
    pub lock_timeout_ms: Option<u64>,
    /// What becomes of it when its lock wait reaches that lock_timeout.
    pub retry: lock_timeout::Retry,
}

impl Decision {
    /// The finding that stops the statement, if any (the first error-level one).
    pub fn rejection(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| f.severity == Severity::Error)
    }

    /// Findings reported without stopping the statement (in order, the rejection excluded).
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        let rejection = self.rejection().map(|f| f as *const Finding);
        self.findings
            .iter()
            .filter(move |f| Some(*f as *const Finding) != rejection)
    }
}

/// Whether `decide` has nothing to say about `stmt` whatever the settings and the catalog:
/// no rule reads it and it takes no lock the lock_timeout cap applies to (transaction
/// control, SET / RESET of settings other than the guard's own, DISCARD, queries and the
/// utility statements that wrap them), as long as the statement changes no setting
/// otherwise (`Statement::changes` empty: a `set_config` call is decided wherever it
/// is). An adapter may let such a statement through without mapping or deciding it;
/// `inert_statements_get_empty_decisions` holds every rule to this.
pub fn is_inert(stmt: &Stmt) -> bool {
    match stmt {
        // SET / RESET of the guard's own settings: `policy_change` decides.
        Stmt::Set(set) => !set
            .name
            .as_deref()
            .is_some_and(|name| name.to_ascii_lowercase().starts_with("safe_migrations.")),
        Stmt::Transaction(_) | Stmt::Discard { .. } | Stmt::Query => true,
        _ => false,
    }
}

/// The decision on committing `transaction` now (a COMMIT or PREPARE TRANSACTION, the end
/// of an implicit transaction, an autocommit statement's end): rule rename_table for
/// each relation it renamed or moved with no view for the old name, acknowledged (or not)
/// by the comments of the statement that renamed it.
pub fn decide_commit(transaction: &Transaction, settings: &Settings, catalog: &dyn Catalog) -> Decision {
    let mut decision = Decision::default();
    for rename in transaction.renamed_without_view() {
        let statement = Statement::new(Stmt::Transaction(TransactionKind::Commit), rename.statement.clone());
        let context = Context {
            renamed_without_view: vec![rename],
            ..transaction.context(crate::transaction::Placement::ALONE)
        };
        let one = decide(&statement, &context, settings, catalog);
        decision.findings.extend(one.findings);
        decision.acknowledged.extend(one.acknowledged);
    }
    decision
}

/// Apply every rule to `statement` under `settings`.
pub fn decide(statement: &Statement, context: &Context, settings: &Settings, catalog: &dyn Catalog) -> Decision {
    if settings.mode == Mode::Off {
        return Decision::default();
    }
    let scope = Scope::new(context, catalog, settings);
    let mut findings: Vec<Finding> = RULES
        .iter()
        .filter(|rule| !settings.allow.contains(rule.id))
        .flat_map(|rule| (rule.check)(statement, &scope))
        .collect();

    let mut acknowledged = Vec::new();
    if settings.acknowledgements && !findings.is_empty() {
        let acks = acknowledgements(&statement.source);
        findings.retain_mut(|finding| {
            if is_policy_rule(finding.rule) {
                return true;
            }
            let Some(ack) = acks.iter().find(|ack| ack.rules.iter().any(|r| r == finding.rule)) else {
                return true;
            };
            match &ack.reason {
                Some(reason) => {
                    acknowledged.push(Acknowledged {
                        rule: finding.rule,
                        reason: reason.clone(),
                    });
                    false
                }
                None => {
                    finding.detail.push_str(&format!(
                        " The acknowledgement of {} does not count without a reason: \
                         -- safe_migrations:allow {} -- <why this is safe>",
                        finding.rule, finding.rule
                    ));
                    true
                }
            }
        });
    }
    if settings.mode == Mode::Warn {
        // The guard's own settings are a permission, as PostgreSQL's for superuser-only
        // settings is: warn mode does not soften it.
        for finding in findings.iter_mut().filter(|finding| !is_policy_rule(finding.rule)) {
            finding.severity = Severity::Warning;
        }
    }
    Decision {
        findings,
        acknowledged,
        lock_timeout_ms: lock_timeout::effective_lock_timeout(&statement.stmt, &scope),
        retry: lock_timeout::retry(&statement.stmt, &scope),
    }
}

/// Is `rule` about the guard's own settings (`Category::Policy`): never acknowledged by
/// a comment, refused in warn mode too?
fn is_policy_rule(rule: &str) -> bool {
    RULES
        .iter()
        .any(|known| known.id == rule && known.category == Category::Policy)
}

/// `ALTER TABLE [IF EXISTS] [ONLY] name`, as the statement wrote it: the start of most hints.
pub(crate) fn alter_table_sql(alter: &AlterTable) -> String {
    format!(
        "ALTER TABLE {}{}{}",
        if alter.if_exists { "IF EXISTS " } else { "" },
        if alter.only { "ONLY " } else { "" },
        alter.table
    )
}

/// The name Postgres gives an unnamed constraint: `<table>_<columns>_<suffix>`
/// (`orders_customer_id_fkey`, `t_pkey`), quoted for SQL.
pub(crate) fn default_constraint_name(table: &QualifiedName, columns: &[String], suffix: &str) -> String {
    let mut parts = vec![table.name.as_str()];
    parts.extend(columns.iter().map(String::as_str));
    parts.push(suffix);
    crate::sql::ident(&parts.join("_"))
}

/// An UPDATE that fills `table` in batches (each one a short transaction that locks only
/// its rows): `set` is the assignment, `pending` selects the rows still to do.
pub(crate) fn backfill_sql(table: &QualifiedName, set: &str, pending: &str) -> String {
    format!(
        "UPDATE {table} SET {set} WHERE ctid IN (SELECT ctid FROM {table} WHERE {pending} LIMIT 10000);  \
         -- repeat until it updates 0 rows"
    )
}

/// Make `column` NOT NULL without holding ACCESS EXCLUSIVE for a full scan: a validated
/// `CHECK (column IS NOT NULL)` lets SET NOT NULL skip its scan (Postgres 12+).
pub(crate) fn not_null_steps(alter: &str, table: &QualifiedName, column: &str) -> String {
    let check = default_constraint_name(table, &[column.to_string()], "check");
    let column = crate::sql::ident(column);
    format!(
        "{alter} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID;\n    \
         {alter} VALIDATE CONSTRAINT {check};  -- in its own transaction\n    \
         {alter} ALTER COLUMN {column} SET NOT NULL;  -- no scan: the validated check proves it\n    \
         {alter} DROP CONSTRAINT {check};  -- optional"
    )
}

/// `expr` without the parentheses that wrap all of it: `((a > 0))` -> `a > 0`,
/// while `(a) AND (b)` is left alone.
pub(crate) fn unparenthesized(expr: &str) -> &str {
    let mut expr = expr.trim();
    while expr.starts_with('(') && expr.ends_with(')') && closing_paren(expr) == Some(expr.len() - 1) {
        expr = expr[1..expr.len() - 1].trim();
    }
    expr
}

/// Byte index of the parenthesis that closes the one `expr` starts with (quotes respected).
fn closing_paren(expr: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quote = None;
    for (i, c) in expr.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Every constraint an ALTER TABLE adds, in order, with the column it was declared on
/// when it was written inline in ADD COLUMN. NOT VALID only exists on ADD CONSTRAINT, so
/// `validated` is false only there.
pub(crate) fn added_constraints(alter: &AlterTable) -> impl Iterator<Item = AddedConstraint<'_>> {
    alter.actions.iter().flat_map(|action| {
        let added: Vec<AddedConstraint<'_>> = match action {
            AlterAction::AddConstraint(constraint) => vec![AddedConstraint {
                constraint,
                inline: None,
                validated: !constraint.not_valid,
            }],
            AlterAction::AddColumn { column, .. } => column
                .constraints
                .iter()
                .map(|constraint| AddedConstraint {
                    constraint,
                    inline: Some(column),
                    validated: true,
                })
                .collect(),
            _ => Vec::new(),
        };
        added
    })
}

/// One constraint an ALTER TABLE adds (see `added_constraints`).
pub(crate) struct AddedConstraint<'a> {
    pub constraint: &'a Constraint,
    pub inline: Option<&'a ColumnDef>,
    /// Checked against every existing row as it is added (no NOT VALID).
    pub validated: bool,
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::testing::{add_column, alter, column, statement, ty, TestCatalog};
    use super::*;
    use crate::catalog::Volatility;
    use crate::model::Stmt;
    use crate::types::TypeName;

    /// Counts the questions that cost the backend a catalog lookup each.
    #[derive(Default)]
    struct CountingCatalog {
        inner: TestCatalog,
        created_in_transaction: Cell<usize>,
        estimated_rows: Cell<usize>,
    }

    impl Catalog for CountingCatalog {
        fn created_in_transaction(&self, table: &QualifiedName) -> Option<bool> {
            self.created_in_transaction.set(self.created_in_transaction.get() + 1);
            self.inner.created_in_transaction(table)
        }
        fn column_type(&self, table: &QualifiedName, column: &str) -> Option<TypeName> {
            self.inner.column_type(table, column)
        }
        fn function_volatility(&self, name: &QualifiedName) -> Option<Volatility> {
            self.inner.function_volatility(name)
        }
        fn has_validated_not_null_check(&self, table: &QualifiedName, column: &str) -> Option<bool> {
            self.inner.has_validated_not_null_check(table, column)
        }
        fn estimated_rows(&self, table: &QualifiedName) -> Option<f64> {
            self.estimated_rows.set(self.estimated_rows.get() + 1);
            self.inner.estimated_rows(table)
        }
        fn is_partitioned(&self, table: &QualifiedName) -> Option<bool> {
            self.inner.is_partitioned(table)
        }
        fn domain_has_constraints(&self, type_name: &TypeName) -> Option<bool> {
            self.inner.domain_has_constraints(type_name)
        }
        fn domain_base_type(&self, type_name: &TypeName) -> Option<String> {
            self.inner.domain_base_type(type_name)
        }
        fn relation_is_empty(&self, table: &QualifiedName) -> Option<bool> {
            self.inner.relation_is_empty(table)
        }
        fn nullable_index_columns(&self, table: &QualifiedName, index: &str) -> Option<Vec<String>> {
            self.inner.nullable_index_columns(table, index)
        }
        fn coercion(&self, from: &TypeName, to: &TypeName) -> Option<crate::types::Coercion> {
            self.inner.coercion(from, to)
        }
        fn type_change_dependents(
            &self,
            change: &crate::catalog::ColumnTypeChange,
        ) -> Option<crate::catalog::ColumnDependents> {
            self.inner.type_change_dependents(change)
        }
        fn is_superuser(&self) -> Option<bool> {
            self.inner.is_superuser()
        }
        fn server_version_num(&self) -> Option<u32> {
            Catalog::server_version_num(&self.inner)
        }
        fn timezone(&self) -> Option<String> {
            Catalog::timezone(&self.inner)
        }
    }

    #[test]
    fn a_decision_asks_about_each_table_once() {
        let catalog = CountingCatalog {
            inner: TestCatalog::default().existing_table("orders").rows("orders", 10.0),
            ..CountingCatalog::default()
        };
        let settings = Settings {
            mode: Mode::Enforce,
            min_table_rows: 1000,
            ..Settings::default()
        };
        let stmt = alter(
            "orders",
            vec![
                add_column(column("note", ty(&["text"], &[]))),
                AlterAction::SetNotNull { column: "id".into() },
                AlterAction::SetDefault { column: "note".into() },
            ],
        );
        let decision = decide(&statement(stmt, ""), &Context::default(), &settings, &catalog);
        assert!(decision.findings.is_empty(), "{:#?}", decision.findings);
        assert_eq!(catalog.created_in_transaction.get(), 1);
        assert_eq!(catalog.estimated_rows.get(), 1);
    }

    #[test]
    fn statements_no_rule_reads_ask_the_catalog_nothing() {
        let catalog = CountingCatalog::default();
        let settings = Settings {
            mode: Mode::Enforce,
            min_table_rows: 1000,
            ..Settings::default()
        };
        decide(
            &statement(Stmt::Query, "SELECT 1"),
            &Context::default(),
            &settings,
            &catalog,
        );
        // Catalog-only changes: no rule has anything to report, so none asks.
        let set_default = alter("orders", vec![AlterAction::SetDefault { column: "note".into() }]);
        decide(&statement(set_default, ""), &Context::default(), &settings, &catalog);
        assert_eq!(catalog.created_in_transaction.get() + catalog.estimated_rows.get(), 0);
    }

    #[test]
    fn inert_statements_get_empty_decisions() {
        use crate::model::{SetSetting, TransactionKind::*};
        let set = |name: Option<&str>, value: Option<&str>, local| {
            Stmt::Set(SetSetting {
                name: name.map(str::to_owned),
                value: value.map(str::to_owned),
                local,
            })
        };
        let mut inert: Vec<Stmt> = [
            Begin,
            Commit,
            Rollback,
            Savepoint("s".into()),
            Release("s".into()),
            RollbackToSavepoint("s".into()),
            Prepare,
            CommitPrepared,
            RollbackPrepared,
        ]
        .into_iter()
        .map(Stmt::Transaction)
        .collect();
        inert.extend([
            set(Some("lock_timeout"), Some("0"), false),
            set(Some("lock_timeout"), None, true),
            set(Some("search_path"), Some("app"), false),
            set(None, None, false),
            Stmt::Discard { all: true },
            Stmt::Discard { all: false },
            Stmt::Query,
        ]);
        let strictest = [Mode::Enforce, Mode::Warn].map(|mode| Settings {
            mode,
            min_table_rows: 0,
            ..Settings::default()
        });
        let contexts = [(false, false, false), (true, true, false), (true, false, true)].map(
            |(in_transaction_block, multi_statement, nested)| Context {
                in_transaction_block,
                multi_statement,
                nested,
                ..Context::default()
            },
        );
        let catalog = CountingCatalog::default();
        for stmt in inert {
            assert!(is_inert(&stmt), "{stmt:?}");
            let source = "-- safe_migrations:allow lock_timeout -- a reason\nCOMMIT";
            for settings in &strictest {
                for context in &contexts {
                    let decision = decide(&statement(stmt.clone(), source), context, settings, &catalog);
                    assert_eq!(decision, Decision::default(), "{stmt:?} {context:?}");
                }
            }
        }
        assert_eq!(catalog.created_in_transaction.get() + catalog.estimated_rows.get(), 0);
        let ddl = Stmt::Other {
            tag: "CREATE TRIGGER".into(),
            ddl: true,
        };
        assert!(!is_inert(&ddl));
        assert!(!is_inert(&set(Some("safe_migrations.mode"), Some("off"), false)));
        assert!(!is_inert(&Stmt::Routine(crate::model::RoutineKind::Do)));
    }
}
