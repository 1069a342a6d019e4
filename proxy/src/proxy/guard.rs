//! A guarded role's statements: parse, refuse policy changes, decide each statement
//! with the policy crate, and turn the decisions into the reports the client gets.
//! No I/O here: the session supplies the catalog answers.

use std::cell::RefCell;
use std::collections::HashMap;

use policy::finding::SQLSTATE_UNPARSABLE;
use policy::model::{ObjectKind, Rename, RoutineKind, Stmt, TransactionKind};
use policy::report::{reports, Report};
use policy::settings::Unparsable;
use policy::{decide, Catalog, Context, QualifiedName, Settings, Statement};

use super::catalog::{Answer, Question, SessionCatalog};
use super::messages::error_response::{error_report, INSUFFICIENT_PRIVILEGE};
use crate::parse::plpgsql::{do_block_sql, BlockStatement, Unreadable, BLOCK_CONTEXT};
use crate::parse::{ParseError, ParsedStatement};

/// What the proxy does with one client message's statements.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Reports to send, in order; when the message is refused, the error is last.
    pub reports: Vec<Report>,
    /// Why the message is refused: the rule id and the statement's first line.
    pub refusal: Option<(String, String)>,
    /// The lock_timeout cap for each statement (ms), when it gets one.
    pub caps: Vec<Option<u64>>,
    /// Tables the statements create.
    pub created: Vec<QualifiedName>,
}

/// The session facts a decision needs besides the statements.
pub struct Facts<'a> {
    pub settings: &'a Settings,
    /// Last ReadyForQuery status was 'T' or 'E'.
    pub in_transaction_block: bool,
    pub created: &'a [QualifiedName],
    pub answers: &'a HashMap<Question, Answer>,
    pub timezone: Option<String>,
    pub server_version_num: Option<u32>,
}

/// Decide every statement; also returns the catalog questions that had no answer.
pub fn judge(statements: &[ParsedStatement], facts: &Facts) -> (Verdict, Vec<Question>) {
    let mut verdict = Verdict::default();
    let mut created: Vec<QualifiedName> = facts.created.to_vec();
    let mut pending: Vec<QualifiedName> = Vec::new();
    let multi_statement = statements.len() > 1;
    let mut in_block = facts.in_transaction_block;
    let mut missing = Vec::new();
    for parsed in statements {
        let statement = &parsed.statement;
        if let Some(report) = policy_change(statement) {
            verdict.refusal = Some(("policy_change".to_string(), first_line(&statement.source)));
            verdict.reports.push(report);
            return (verdict, missing);
        }
        let context = Context {
            in_transaction_block: in_block || multi_statement,
            multi_statement,
            nested: false,
            session_lock_timeout_ms: 0,
        };
        let catalog = SessionCatalog {
            created: &created,
            pending: &pending,
            answers: facts.answers,
            timezone: facts.timezone.clone(),
            server_version_num: facts.server_version_num,
            missing: RefCell::new(Vec::new()),
        };
        let decision = decide(statement, &context, facts.settings, &catalog);
        let creates = relations_created(&statement.stmt, &catalog);
        missing.extend(catalog.missing.into_inner());
        verdict.reports.extend(reports(&decision));
        if let Some(finding) = decision.rejection() {
            verdict.caps.push(decision.lock_timeout_ms);
            verdict.refusal = Some((finding.rule.to_string(), first_line(&statement.source)));
            return (verdict, missing);
        }
        let mut cap = decision.lock_timeout_ms;
        if statement.stmt == Stmt::Routine(RoutineKind::Do) {
            let mut block = DoBlockJudgement {
                facts,
                created: &created,
                pending: &mut pending,
                verdict: &mut verdict,
                missing: &mut missing,
            };
            match block.judge(&statement.source) {
                Ok(inner_cap) => cap = smallest_cap(cap, inner_cap),
                Err(rule) => {
                    verdict.caps.push(cap);
                    verdict.refusal = Some((rule, first_line(&statement.source)));
                    return (verdict, missing);
                }
            }
        }
        verdict.caps.push(cap);
        pending.extend(creates.iter().cloned());
        verdict.created.extend(creates);
        match &statement.stmt {
            Stmt::Transaction(TransactionKind::Begin) => in_block = true,
            Stmt::Transaction(TransactionKind::Commit | TransactionKind::Rollback) => {
                in_block = false;
                created.clear();
                pending.clear();
            }
            _ => {}
        }
    }
    (verdict, missing)
}

fn smallest_cap(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A `DO` block's own SQL, decided like client statements run from inside a function:
/// in a transaction, nested. The extension sees each of them in its ProcessUtility hook;
/// the proxy sees only the `DO`, so it reads the block's body.
struct DoBlockJudgement<'a, 'f> {
    facts: &'a Facts<'f>,
    /// Tables created before this message's current transaction statements.
    created: &'a [QualifiedName],
    /// Relations created earlier in this message (the block's own creations join them).
    pending: &'a mut Vec<QualifiedName>,
    verdict: &'a mut Verdict,
    missing: &'a mut Vec<Question>,
}

impl DoBlockJudgement<'_, '_> {
    /// The smallest lock_timeout cap of the block's statements; on refusal, the rule id,
    /// its error report already added to the verdict.
    fn judge(&mut self, source: &str) -> Result<Option<u64>, String> {
        let allow_unparsable = self.facts.settings.unparsable == Unparsable::Allow;
        let mut cap = None;
        for inner in do_block_sql(source).unwrap_or_default() {
            let reason = match inner {
                BlockStatement::Parsed(parsed) => {
                    cap = smallest_cap(cap, self.judge_statement(&parsed.statement)?);
                    continue;
                }
                BlockStatement::Unreadable { .. } if allow_unparsable => continue,
                BlockStatement::Unreadable { reason, .. } => reason,
            };
            return Err(self.refuse(match &reason {
                Unreadable::Dynamic(expression) => dynamic_sql(expression),
                Unreadable::OtherLanguage(language) => other_language(language),
                Unreadable::Unparsable(error) => unparsable(error),
            }));
        }
        Ok(cap)
    }

    fn judge_statement(&mut self, statement: &Statement) -> Result<Option<u64>, String> {
        if let Some(report) = policy_change(statement) {
            self.verdict.reports.push(report);
            return Err("policy_change".to_string());
        }
        let catalog = SessionCatalog {
            created: self.created,
            pending: self.pending,
            answers: self.facts.answers,
            timezone: self.facts.timezone.clone(),
            server_version_num: self.facts.server_version_num,
            missing: RefCell::new(Vec::new()),
        };
        let decision = decide(statement, &BLOCK_CONTEXT, self.facts.settings, &catalog);
        let creates = relations_created(&statement.stmt, &catalog);
        self.missing.extend(catalog.missing.into_inner());
        self.verdict.reports.extend(reports(&decision));
        if let Some(finding) = decision.rejection() {
            return Err(finding.rule.to_string());
        }
        self.pending.extend(creates.iter().cloned());
        self.verdict.created.extend(creates);
        Ok(decision.lock_timeout_ms)
    }

    fn refuse(&mut self, report: Report) -> String {
        self.verdict.reports.push(report);
        "unparsable".to_string()
    }
}

/// A `DO` block that runs SQL text computed at run time (fail closed).
fn dynamic_sql(expression: &str) -> Report {
    error_report(
        SQLSTATE_UNPARSABLE,
        "safe_migrations proxy: this DO block runs dynamic SQL (EXECUTE of a computed string) that the \
         proxy cannot check; run the statements directly, or set safe_migrations.unparsable = 'allow' for \
         this role"
            .to_string(),
        Some(format!("EXECUTE {}", first_line(expression))),
        Some("Write the statements as plain SQL, in the DO block or outside it.".to_string()),
    )
}

/// A `DO` block in a language other than PL/pgSQL (fail closed).
fn other_language(language: &str) -> Report {
    error_report(
        SQLSTATE_UNPARSABLE,
        format!(
            "safe_migrations proxy: this DO block is in language {language}, whose SQL the proxy cannot \
             check; run the statements directly, or set safe_migrations.unparsable = 'allow' for this role"
        ),
        Some("The proxy reads the SQL of PL/pgSQL DO blocks only.".to_string()),
        None,
    )
}

/// The relations `stmt` creates in the transaction, as the extension's relcache would
/// know them: tables, named indexes (in their table's schema), and the new name of a
/// relation renamed after being created in this transaction.
fn relations_created(stmt: &Stmt, catalog: &SessionCatalog) -> Vec<QualifiedName> {
    match stmt {
        Stmt::CreateTable(create) => vec![create.table.clone()],
        Stmt::CreateTableAs { table, .. } => vec![table.clone()],
        // IF NOT EXISTS may name an index that already exists: not known to be new.
        Stmt::CreateIndex(index) if !index.if_not_exists => index
            .name
            .iter()
            .map(|name| QualifiedName::new(index.table.schema.as_deref(), name))
            .collect(),
        Stmt::Rename(Rename {
            kind: ObjectKind::Table | ObjectKind::Index | ObjectKind::View | ObjectKind::MaterializedView,
            object,
            subname: None,
            new_name,
        }) if catalog.created_in_transaction(object) == Some(true) => {
            vec![QualifiedName::new(object.schema.as_deref(), new_name)]
        }
        _ => Vec::new(),
    }
}

/// The report for a statement the parser could not read (fail closed).
pub fn unparsable(error: &ParseError) -> Report {
    error_report(
        SQLSTATE_UNPARSABLE,
        format!(
            "safe_migrations: the proxy cannot parse this statement: {}",
            error.message
        ),
        Some("The proxy refuses what it cannot check for this role (fail closed).".to_string()),
        Some(
            "Fix the statement, or let unparsable statements through for this role: \
             safe_migrations.unparsable = allow."
                .to_string(),
        ),
    )
}

/// A guarded role may not weaken its own policy through the proxy: SET/RESET of a
/// `safe_migrations.*` setting, set_config of one, ALTER ROLE/DATABASE/SYSTEM ... SET.
pub fn policy_change(statement: &Statement) -> Option<Report> {
    let text = statement.source.to_ascii_lowercase();
    let names_policy = text.contains("safe_migrations.");
    let what = match &statement.stmt {
        Stmt::Set(set)
            if set
                .name
                .as_deref()
                .is_some_and(|name| name.starts_with("safe_migrations.")) =>
        {
            format!("SET/RESET of {}", set.name.as_deref().unwrap_or_default())
        }
        _ if names_policy && text.contains("set_config") => "set_config of a safe_migrations setting".to_string(),
        Stmt::Other { tag, .. }
            if names_policy
                && (tag.contains("ROLE")
                    || tag.contains("USER")
                    || tag.contains("DATABASE")
                    || tag.contains("SYSTEM")) =>
        {
            format!("{tag} naming a safe_migrations setting")
        }
        _ => return None,
    };
    Some(policy_change_report(&what))
}

pub fn policy_change_report(what: &str) -> Report {
    error_report(
        INSUFFICIENT_PRIVILEGE,
        "safe_migrations: a guarded role cannot change its safe_migrations settings through the proxy".to_string(),
        Some(format!("{what} would weaken the policy the proxy enforces for this role.")),
        Some("An administrator changes a role's policy: ALTER ROLE ... SET safe_migrations.<setting>, or the proxy's config file.".to_string()),
    )
}

/// The statement's first line, for a log line.
pub fn first_line(source: &str) -> String {
    let text = policy::sql::strip_leading_comments(source).trim();
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_sql;
    use policy::Mode;

    fn enforce() -> Settings {
        Settings {
            mode: Mode::Enforce,
            ..Settings::default()
        }
    }

    fn judge_sql(sql: &str, settings: &Settings) -> Verdict {
        let statements = parse_sql(sql).unwrap();
        let answers = HashMap::new();
        judge(
            &statements,
            &Facts {
                settings,
                in_transaction_block: false,
                created: &[],
                answers: &answers,
                timezone: None,
                server_version_num: Some(150_000),
            },
        )
        .0
    }

    #[test]
    fn policy_changes_are_refused() {
        for sql in [
            "SET safe_migrations.mode = off",
            "RESET safe_migrations.mode",
            "SELECT set_config('safe_migrations.mode', 'off', false)",
            "ALTER ROLE migrator SET safe_migrations.mode = 'off'",
        ] {
            let verdict = judge_sql(sql, &enforce());
            assert_eq!(
                verdict.refusal.as_ref().map(|r| r.0.as_str()),
                Some("policy_change"),
                "{sql}"
            );
            assert_eq!(verdict.reports.last().unwrap().sqlstate, "42501");
        }
        assert!(judge_sql("SHOW safe_migrations.mode", &enforce()).refusal.is_none());
    }

    #[test]
    fn a_create_table_earlier_in_the_string_counts_as_new() {
        let verdict = judge_sql("CREATE TABLE n (id int); CREATE INDEX ON n (id)", &enforce());
        assert!(verdict.refusal.is_none(), "{:?}", verdict.reports);
        let verdict = judge_sql("CREATE INDEX ON old (id)", &enforce());
        assert_eq!(
            verdict.refusal.map(|r| r.0),
            Some("create_index_non_concurrently".to_string())
        );
    }

    #[test]
    fn unparsable_is_sm004() {
        let error = parse_sql("ALTER TABLE").unwrap_err();
        let report = unparsable(&error);
        assert_eq!(report.sqlstate, "SM004");
        assert_eq!(report.level, policy::report::Level::Error);
    }

    #[test]
    fn named_indexes_and_renames_of_new_relations_count_as_created() {
        let verdict = judge_sql(
            "CREATE TABLE n (id int); CREATE INDEX n_id ON n (id); ALTER TABLE n RENAME TO m; \
             CREATE INDEX IF NOT EXISTS n_id2 ON m (id); DROP INDEX n_id; CREATE INDEX ON m (id)",
            &enforce(),
        );
        assert!(verdict.refusal.is_none(), "{:?}", verdict.reports);
        assert_eq!(verdict.created, ["n", "n_id", "m"].map(QualifiedName::bare).to_vec());
        // Renaming a relation that is not new creates nothing.
        let verdict = judge_sql("ALTER INDEX old_i RENAME TO new_i", &enforce());
        assert!(verdict.created.is_empty());
    }

    fn refusal(verdict: &Verdict) -> Option<(&str, &str)> {
        let (rule, _) = verdict.refusal.as_ref()?;
        Some((rule.as_str(), verdict.reports.last()?.sqlstate))
    }

    #[test]
    fn a_do_block_is_refused_for_the_unsafe_sql_it_runs() {
        for sql in [
            "DO $$ BEGIN CREATE INDEX i ON t (c); END $$",
            "DO $$ BEGIN IF true THEN BEGIN CREATE INDEX i ON t (c); END; END IF; END $$",
            "DO $$ BEGIN EXECUTE 'CREATE INDEX i ON t (c)'; END $$",
        ] {
            let verdict = judge_sql(sql, &enforce());
            assert_eq!(
                refusal(&verdict),
                Some(("create_index_non_concurrently", "SM001")),
                "{sql}"
            );
        }
        let verdict = judge_sql(
            "DO $$ BEGIN EXECUTE 'ALTER TABLE t ADD COLUMN x uuid DEFAULT gen_random_uuid()'; END $$",
            &enforce(),
        );
        assert!(verdict.refusal.is_some(), "{:?}", verdict.reports);
    }

    #[test]
    fn a_do_block_running_computed_sql_is_refused_unless_unparsable_is_allowed() {
        let sql = "DO $$ BEGIN EXECUTE format('CREATE INDEX %I ON t (c)', 'i'); END $$";
        let verdict = judge_sql(sql, &enforce());
        assert_eq!(refusal(&verdict), Some(("unparsable", "SM004")));
        assert!(
            verdict.reports[0].message.contains("dynamic SQL"),
            "{:?}",
            verdict.reports
        );
        let verdict = judge_sql("DO LANGUAGE plperl $$ 1; $$", &enforce());
        assert_eq!(refusal(&verdict), Some(("unparsable", "SM004")));
        let allow = Settings {
            unparsable: Unparsable::Allow,
            ..enforce()
        };
        assert!(judge_sql(sql, &allow).refusal.is_none());
        assert!(judge_sql("DO LANGUAGE plperl $$ 1; $$", &allow).refusal.is_none());
        // Allowing the computed SQL does not let the block's static SQL through.
        let verdict = judge_sql(
            "DO $$ BEGIN EXECUTE format('SELECT %s', 1); CREATE INDEX i ON t (c); END $$",
            &allow,
        );
        assert_eq!(refusal(&verdict), Some(("create_index_non_concurrently", "SM001")));
    }

    #[test]
    fn a_harmless_do_block_passes_and_its_new_tables_count_as_created() {
        assert!(judge_sql("DO $$ BEGIN PERFORM 1; END $$", &enforce()).refusal.is_none());
        let verdict = judge_sql(
            "DO $$ BEGIN CREATE TABLE n (id int); CREATE INDEX ON n (id); END $$",
            &enforce(),
        );
        assert!(verdict.refusal.is_none(), "{:?}", verdict.reports);
        assert_eq!(verdict.created, [QualifiedName::bare("n")]);
        // ... and for the statements after the block in the same message.
        let verdict = judge_sql(
            "DO $$ BEGIN CREATE TABLE n (id int); END $$; CREATE INDEX ON n (id)",
            &enforce(),
        );
        assert!(verdict.refusal.is_none(), "{:?}", verdict.reports);
    }

    #[test]
    fn a_do_block_gets_the_smallest_cap_of_its_statements() {
        let verdict = judge_sql("DO $$ BEGIN ALTER TABLE t ADD COLUMN x int; END $$", &enforce());
        assert!(verdict.refusal.is_none(), "{:?}", verdict.reports);
        assert_eq!(verdict.caps, [Some(enforce().lock_timeout_cap_ms)]);
        let verdict = judge_sql("DO $$ BEGIN PERFORM 1; END $$", &enforce());
        assert_eq!(verdict.caps, [None]);
    }

    #[test]
    fn a_do_block_cannot_change_the_policy() {
        let verdict = judge_sql(
            "DO $$ BEGIN EXECUTE 'SET safe_migrations.mode = off'; END $$",
            &enforce(),
        );
        assert_eq!(refusal(&verdict), Some(("policy_change", "42501")));
    }
}
