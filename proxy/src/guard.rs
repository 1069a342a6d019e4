//! A guarded role's statements: parse, refuse policy changes, decide each statement
//! with the policy crate, and turn the decisions into the reports the client gets.
//! No I/O here: the session supplies the catalog answers.

use std::cell::RefCell;
use std::collections::HashMap;

use policy::catalog::Volatility;
use policy::finding::{SQLSTATE_LOCK, SQLSTATE_UNPARSABLE};
use policy::model::{RoutineKind, Stmt, TransactionKind};
use policy::report::{reports, Level, Report};
use policy::rules::lock_timeout::Retrying;
use policy::settings::Unparsable;
use policy::sql::first_line;
use policy::transaction::{relations_created, Placement, Transaction, TransactionStatus};
use policy::unchecked::{self, Reader, Reason};
use policy::{decide, decide_commit, Mode, QualifiedName, Settings, Statement};

use super::catalog::{Answer, Executed, FunctionBody, Question, SessionCatalog};
use super::messages::error_response::{error_report, INSUFFICIENT_PRIVILEGE};
use parse::calls::{called_functions, set_config_calls_in_bodies};
use parse::plpgsql::{defined_function, do_block_sql, function_sql, BlockStatement, Unreadable};
use parse::prepared::Prepares;
use parse::{parse_sql, starts_with_word, ParseError, ParsedStatement};

/// Why a message is refused: the rule, and the statement's first line (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: String,
    pub statement: String,
    /// The refused statement is a COMMIT (or PREPARE TRANSACTION) of a transaction block:
    /// its transaction ends, rolled back, as a commit that fails on the server ends it.
    pub ends_transaction: bool,
}

impl Refusal {
    /// The refusal of `sql` by `rule`.
    pub fn new(rule: &str, sql: &str) -> Refusal {
        Refusal {
            rule: rule.to_string(),
            statement: first_line(sql),
            ends_transaction: false,
        }
    }
}

/// What the proxy does with one client message's statements.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Reports to send, in order; when the message is refused, the error is last.
    pub reports: Vec<Report>,
    /// Why the message is refused: the rule id and the statement's first line.
    pub refusal: Option<Refusal>,
    /// The lock_timeout cap for each statement (ms), when it gets one.
    pub caps: Vec<Option<u64>>,
    /// For each statement let through, how it is run again when its lock wait gives up
    /// (`policy::rules::lock_timeout::Retrying`), when it is.
    pub retrying: Vec<Option<Retrying>>,
    /// Relations the statements create.
    pub created: Vec<QualifiedName>,
    /// The session's transaction as the statements leave it, when they all run: what
    /// they created is pending in it.
    pub transaction: Transaction,
    /// A routine the statements run takes a lock the transaction is followed holding:
    /// one its caught error (a rolled-back subtransaction) may release unseen.
    pub locks_in_routines: bool,
    /// The queries of the prepared statements the statements EXECUTE, as judged.
    pub executed_queries: Vec<String>,
}

/// The session facts a decision needs besides the statements.
pub struct Facts<'a> {
    pub settings: &'a Settings,
    /// The session's transaction as the last ReadyForQuery left it, with the relations
    /// created in it (none when it has ended). In a failed one the server refuses every
    /// statement but one that ends it, and the proxy's own questions too.
    pub transaction: &'a Transaction,
    /// The session's standard_conforming_strings is surely on: the server reported it
    /// and nothing sent since could have changed it. Otherwise a routine body with a
    /// backslash may read differently for the server (fail closed).
    pub standard_strings: bool,
    pub answers: &'a HashMap<Question, Answer>,
    pub timezone: Option<String>,
    pub server_version_num: Option<u32>,
    /// The session's is_superuser, as the server reported it.
    pub superuser: Option<bool>,
}

impl<'a> Facts<'a> {
    /// A session outside any transaction, standard strings on, PostgreSQL 15, nothing
    /// known of the catalog beyond `answers`: what the unit tests judge with.
    #[cfg(test)]
    pub fn idle(settings: &'a Settings, answers: &'a HashMap<Question, Answer>) -> Facts<'a> {
        static IDLE: Transaction = Transaction::IDLE;
        Facts {
            settings,
            transaction: &IDLE,
            standard_strings: true,
            answers,
            timezone: None,
            server_version_num: Some(150_000),
            superuser: None,
        }
    }
}

/// Decide every statement; also returns the catalog questions that had no answer.
pub fn judge(statements: &[ParsedStatement], facts: &Facts) -> (Verdict, Vec<Question>) {
    let mut verdict = Verdict::default();
    // Relations created before this message exist on the server; those it creates are
    // pending until it runs.
    let mut transaction = facts.transaction.clone();
    if statements.len() > 1 {
        // Several statements in one Query run in one implicit transaction.
        transaction.set_implicit(true);
    }
    let placement = Placement {
        multi_statement: statements.len() > 1,
        nested: false,
    };
    let mut missing = Vec::new();
    // Functions created by earlier statements of the message: not on the server yet.
    let mut defined: Vec<FunctionBody> = Vec::new();
    // Statements prepared earlier in this message (PREPARE): not on the server yet.
    let mut prepared_here = Prepares::default();
    for (index, parsed) in statements.iter().enumerate() {
        // EXPLAIN ANALYZE runs its statement, and EXECUTE its prepared statement's query:
        // that is what is judged (the extension judges it where it runs, in its executor
        // hook).
        let analyzed = analyzed_write(parsed);
        let parsed = analyzed.as_ref().unwrap_or(parsed);
        let executed = match executed_query(parsed, facts, &prepared_here, &mut missing) {
            Ok(executed) => executed,
            Err(report) => match unchecked_report(report, facts.settings) {
                Unchecked::Pass(report) => {
                    verdict.reports.extend(report);
                    None
                }
                Unchecked::Refuse(report) => {
                    verdict.reports.push(report);
                    verdict.caps.push(None);
                    verdict.refusal = Some(Refusal::new(unchecked::RULE, &parsed.statement.source));
                    return (verdict, missing);
                }
            },
        };
        let (parsed, executed) = match executed {
            Some((ref query, executed)) => {
                verdict.executed_queries.push(query.statement.source.clone());
                (query, Some(executed))
            }
            None => (parsed, None),
        };
        let statement = &parsed.statement;
        let context = transaction.context(placement);
        let snapshot = transaction.clone();
        let mut catalog = session_catalog(facts, &snapshot);
        catalog.executed = executed;
        catalog.after_others = index > 0;
        let mut decision = decide(statement, &context, facts.settings, &catalog);
        // An extended-protocol COMMIT is judged when it is executed (the renames before
        // it may run after its Parse).
        if commits(&statement.stmt, &transaction) && !facts.transaction.implicit() {
            // It commits the renames before it.
            let commit = decide_commit(&transaction, facts.settings, &catalog);
            decision.findings.extend(commit.findings);
            decision.acknowledged.extend(commit.acknowledged);
        }
        let creates = relations_created(&statement.stmt, &catalog);
        missing.extend(catalog.missing.take());
        verdict.reports.extend(reports(&decision));
        if let Some(finding) = decision.rejection() {
            verdict.caps.push(decision.lock_timeout_ms);
            let mut refusal = Refusal::new(finding.rule, &statement.source);
            refusal.ends_transaction = matches!(
                statement.stmt,
                Stmt::Transaction(TransactionKind::Commit | TransactionKind::Prepare)
            );
            verdict.refusal = Some(refusal);
            return (verdict, missing);
        }
        let mut cap = decision.lock_timeout_ms;
        // What the statement itself sets (a set_config beside a function call) holds for
        // the routines it runs, which run inside the statement's transaction.
        transaction.note_settings(statement);
        let implicit = transaction.implicit();
        transaction.set_implicit(true);
        let mut nested = NestedJudgement::new(facts, &mut transaction, &defined, &mut verdict, &mut missing);
        let inner = if statement.stmt == Stmt::Routine(RoutineKind::Do) {
            nested.judge_do_block(&statement.source)
        } else {
            nested.judge_calls(parsed)
        };
        match inner {
            Ok(inner_cap) => cap = smallest_cap(cap, inner_cap),
            Err(rule) => {
                verdict.caps.push(cap);
                verdict.refusal = Some(Refusal::new(&rule, &statement.source));
                return (verdict, missing);
            }
        }
        verdict.caps.push(cap);
        verdict
            .retrying
            .push(Retrying::new(statement, &decision).map(|retrying| Retrying {
                cap_ms: cap.unwrap_or(retrying.cap_ms),
                ..retrying
            }));
        verdict.created.extend(creates);
        if statement.stmt == Stmt::Routine(RoutineKind::CreateFunction) {
            if let Some(name) = defined_function(&statement.source) {
                defined.push(FunctionBody {
                    name,
                    language: String::new(),
                    definition: statement.source.clone(),
                });
            }
        }
        // The statement's own effect, after the routines it runs: the relations it
        // creates, the locks it takes, the transaction it ends.
        transaction.set_implicit(implicit);
        transaction.observe(statement, &catalog);
        missing.extend(catalog.missing.take());
        if statement.stmt == Stmt::Query {
            prepared_here.note(&statement.source);
        }
    }
    // Outside a transaction block the message's statements commit when it ends: the
    // renames it made with no view for the old name are judged as that commit is (rule
    // rename_table). An extended-protocol batch is judged so at each Parse: the proxy does
    // not hold its statements back to its Sync.
    if !transaction.status().in_block() {
        if !transaction.renamed_without_view().is_empty() {
            let catalog = session_catalog(facts, &transaction);
            let decision = decide_commit(&transaction, facts.settings, &catalog);
            verdict.reports.extend(reports(&decision));
            if let Some(finding) = decision.rejection() {
                let last = statements.last().map_or("", |parsed| parsed.statement.source.as_str());
                verdict.refusal = Some(Refusal::new(finding.rule, last));
                return (verdict, missing);
            }
        }
        transaction.forget_renames();
    }
    verdict.transaction = transaction;
    (verdict, missing)
}

/// What the routines `parsed` runs do, decided as `judge` decides them (the functions it
/// calls, the triggers its writes fire, the views it refreshes or reads into a table, the
/// event triggers its DDL fires, a DO block's body), without the statement itself: the
/// reports, the rule that refuses one of them, and the catalog questions that had no
/// answer yet. `defined`: functions created by statements the server has not run, read
/// from those statements. For `safe-migrations check --database-url`, which decides the
/// statement itself with what the files showed and asks the database what the routines
/// are.
pub fn judge_routines(
    parsed: &ParsedStatement,
    facts: &Facts,
    transaction: &Transaction,
    defined: &[FunctionBody],
) -> (Vec<Report>, Option<String>, Vec<Question>) {
    let mut verdict = Verdict::default();
    let mut missing = Vec::new();
    let mut transaction = transaction.clone();
    transaction.note_settings(&parsed.statement);
    transaction.set_implicit(true);
    let mut nested = NestedJudgement::new(facts, &mut transaction, defined, &mut verdict, &mut missing);
    let inner = if parsed.statement.stmt == Stmt::Routine(RoutineKind::Do) {
        nested.judge_do_block(&parsed.statement.source)
    } else {
        nested.judge_calls(parsed)
    };
    (verdict.reports, inner.err(), missing)
}

/// Does `stmt` commit the renames `transaction` made (rule rename_table)? A COMMIT or
/// PREPARE TRANSACTION of a running transaction; in a failed one it rolls back.
fn commits(stmt: &Stmt, transaction: &Transaction) -> bool {
    matches!(
        stmt,
        Stmt::Transaction(TransactionKind::Commit | TransactionKind::Prepare)
    ) && transaction.status() != TransactionStatus::Failed
}

/// The write an `EXPLAIN ANALYZE` statement runs, read as the statement it is; None for
/// any other statement (a cheap look at its first word first).
fn analyzed_write(parsed: &ParsedStatement) -> Option<ParsedStatement> {
    if parsed.statement.stmt != Stmt::Query || !starts_with_word(&parsed.statement.source, "explain") {
        return None;
    }
    let write = ::parse::probe::analyzed_write(&parsed.statement.source)?;
    let mut inner = ::parse::parse_sql(&write).ok()?.into_iter().next()?;
    inner.offset = parsed.offset;
    Some(inner)
}

/// The query an `EXECUTE name (arguments)` runs, read as the statement it is, and the
/// EXECUTE (for the estimate of its rows, planned for its arguments); None for any other
/// statement, and for a name the session has not prepared (the server refuses the
/// EXECUTE). A PREPARE earlier in the same message is read from its text; otherwise the
/// server is asked (pg_prepared_statements), as the text that prepared it may have come
/// in any earlier message, or through the protocol's Parse. Err: the SM004 report of a
/// prepared statement whose text the proxy cannot read (fail closed).
fn executed_query(
    parsed: &ParsedStatement,
    facts: &Facts,
    prepared_here: &Prepares,
    missing: &mut Vec<Question>,
) -> Result<Option<(ParsedStatement, Executed)>, Report> {
    if parsed.statement.stmt != Stmt::Query || !starts_with_word(&parsed.statement.source, "execute") {
        return Ok(None);
    }
    let Some(name) = ::parse::prepared::executed_name(&parsed.statement.source) else {
        return Ok(None);
    };
    let unreadable = |why: &str| {
        unchecked_text(unchecked::text(
            &format!("prepared statement {name}"),
            Reason::Unparsable(why),
            Reader::Proxy,
        ))
    };
    let (query, parameter_types) = match prepared_here.query(&name) {
        // Its parameter types are the server's to infer, as it will when the PREPARE runs.
        Some(query) => (query.to_string(), Vec::new()),
        None => {
            let question = Question::PreparedStatement(name.clone());
            match facts.answers.get(&question) {
                Some(Answer::Prepared(Some(prepared))) => match &prepared.query {
                    Ok(query) => (query.clone(), prepared.parameter_types.clone()),
                    Err(why) => return Err(unreadable(why)),
                },
                Some(_) => return Ok(None),
                None => {
                    missing.push(question);
                    return Ok(None);
                }
            }
        }
    };
    let mut inner = match ::parse::parse_sql(&query).map(|parsed| parsed.into_iter().next()) {
        Ok(Some(inner)) => inner,
        Ok(None) => return Ok(None),
        Err(error) => return Err(unreadable(&error.message)),
    };
    inner.offset = parsed.offset;
    // The extension's plan is for the arguments' values; the proxy's question evaluates
    // them only when that does nothing (no volatile function: nextval, a write).
    let mut evaluate_arguments = Some(true);
    for function in called_functions(&parsed.statement.source) {
        let question = Question::Volatility(function);
        match facts.answers.get(&question) {
            Some(Answer::Volatility(Some(Volatility::Immutable | Volatility::Stable))) => {}
            Some(_) => evaluate_arguments = evaluate_arguments.map(|_| false),
            None => {
                missing.push(question);
                evaluate_arguments = None;
            }
        }
    }
    let executed = Executed {
        execute: parsed.statement.source.clone(),
        parameter_types,
        evaluate_arguments,
    };
    Ok(Some((inner, executed)))
}

/// What the session knows, as `transaction` leaves it.
fn session_catalog<'c>(facts: &'c Facts, transaction: &'c Transaction) -> SessionCatalog<'c> {
    SessionCatalog {
        transaction,
        answers: facts.answers,
        timezone: facts.timezone.clone(),
        server_version_num: facts.server_version_num,
        superuser: facts.superuser,
        executed: None,
        nested: false,
        after_others: false,
        missing: RefCell::new(Vec::new()),
    }
}

fn smallest_cap(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// SQL the client's statement runs without sending it: a `DO` block's body, the bodies of
/// the functions and procedures it calls (and those they call). Decided like statements
/// run from inside a function: in a transaction, nested. The extension sees each of them
/// in its ProcessUtility hook; the proxy sees only the client's statement, so it reads
/// the block's body, and asks the server for the definitions of the functions called.
struct NestedJudgement<'a, 'f> {
    facts: &'a Facts<'f>,
    /// The session's transaction as the statements before this one leave it (the
    /// routine's own creations join its pending relations).
    transaction: &'a mut Transaction,
    /// Functions created earlier in this message, read from their own statements.
    defined: &'a [FunctionBody],
    verdict: &'a mut Verdict,
    missing: &'a mut Vec<Question>,
    /// How many function bodies deep the statement being decided is.
    depth: usize,
    /// Functions whose bodies were read for this statement (a recursive one only once).
    visited: Vec<QualifiedName>,
    /// Tables (and the events written) whose trigger functions were read for this statement.
    written: Vec<(QualifiedName, u8)>,
    /// Relations whose view query was read for this statement.
    viewed: Vec<QualifiedName>,
    /// The event trigger functions were read for this statement.
    event_triggers_read: bool,
    /// How many view queries deep the statement being decided is: in a view's query,
    /// the views it reads run too.
    in_view: usize,
}

/// Calls nested deeper than this are not followed: the statement is refused (fail
/// closed) unless the role lets unparsable statements through. The session asks the
/// server one level of definitions per round, and allows enough rounds for this depth.
pub const MAX_CALL_DEPTH: usize = 4;

/// Whose SQL a nested statement is, for the reports.
enum Routine<'a> {
    DoBlock,
    Function(&'a QualifiedName),
    /// An event trigger's function, which DDL fires.
    EventTrigger(&'a QualifiedName),
    /// A trigger function a write to the table fires.
    Trigger {
        function: &'a QualifiedName,
        table: &'a QualifiedName,
    },
}

impl Routine<'_> {
    fn describe(&self) -> String {
        match self {
            Routine::DoBlock => "this DO block".to_string(),
            Routine::Function(name) => format!("function {name} (called by this statement)"),
            Routine::EventTrigger(function) => format!("event trigger function {function} (fired by this DDL)"),
            Routine::Trigger { function, table } => {
                format!("trigger function {function} (fired by this statement's writes to {table})")
            }
        }
    }
}

impl<'a, 'f> NestedJudgement<'a, 'f> {
    /// What one statement runs, judged from its top level (no body read yet).
    fn new(
        facts: &'a Facts<'f>,
        transaction: &'a mut Transaction,
        defined: &'a [FunctionBody],
        verdict: &'a mut Verdict,
        missing: &'a mut Vec<Question>,
    ) -> Self {
        NestedJudgement {
            facts,
            transaction,
            defined,
            verdict,
            missing,
            depth: 0,
            visited: Vec::new(),
            written: Vec::new(),
            viewed: Vec::new(),
            event_triggers_read: false,
            in_view: 0,
        }
    }
}

impl NestedJudgement<'_, '_> {
    /// The smallest lock_timeout cap of the block's statements; on refusal, the rule id,
    /// its error report already added to the verdict.
    fn judge_do_block(&mut self, source: &str) -> Result<Option<u64>, String> {
        if !self.facts.standard_strings && source.contains('\\') {
            self.cannot_read_as_the_server(&Routine::DoBlock)?;
        }
        let statements = do_block_sql(source).unwrap_or_default();
        self.judge_routine(statements, &Routine::DoBlock, false)
    }

    /// `sets_timeout_itself`: the routine's definition sets lock_timeout or
    /// statement_timeout for its run (CREATE FUNCTION ... SET lock_timeout = 0).
    fn judge_routine(
        &mut self,
        statements: Vec<BlockStatement>,
        routine: &Routine,
        sets_timeout_itself: bool,
    ) -> Result<Option<u64>, String> {
        let mut cap = None;
        let mut sets_timeout = sets_timeout_itself;
        for inner in statements {
            let reason = match inner {
                BlockStatement::Parsed(parsed) => {
                    sets_timeout |= sets_a_timeout(&parsed.statement);
                    cap = smallest_cap(cap, self.judge_statement(&parsed)?);
                    continue;
                }
                BlockStatement::Unreadable { reason, .. } => reason,
            };
            self.cannot_check(match &reason {
                Unreadable::Dynamic(expression) => dynamic_sql(routine, expression),
                Unreadable::OtherLanguage(language) => other_language(routine, language),
                Unreadable::Unparsable(error) => unparsable_in(routine, error),
            })?;
        }
        // The proxy caps the client's statement; a routine that sets its own timeout
        // runs the lock-taking statements after it without the cap (the extension caps
        // each statement where it runs, so it is not fooled).
        if cap.is_some() && sets_timeout {
            self.refuse_uncapped(routine)?;
        }
        Ok(cap)
    }

    /// A routine that would run lock-taking statements past the cap: refused in enforce,
    /// a warning in warn (`unparsable = allow` does not let it through: it is readable).
    fn refuse_uncapped(&mut self, routine: &Routine) -> Result<(), String> {
        self.warn_or_refuse(sets_its_own_timeout(routine), "lock_timeout")
    }

    /// `report` as a warning in warn mode (nothing is refused there), else as the
    /// refusal of rule `rule`, whatever `unparsable = allow` says.
    fn warn_or_refuse(&mut self, report: Report, rule: &str) -> Result<(), String> {
        if self.facts.settings.mode == Mode::Warn {
            self.verdict.reports.push(Report {
                level: Level::Warning,
                ..report
            });
            Ok(())
        } else {
            self.verdict.reports.push(report);
            Err(rule.to_string())
        }
    }

    fn judge_statement(&mut self, parsed: &ParsedStatement) -> Result<Option<u64>, String> {
        let statement = &parsed.statement;
        let snapshot = self.transaction.clone();
        let facts = self.facts;
        let mut catalog = session_catalog(facts, &snapshot);
        catalog.nested = true;
        let locks_before = self.transaction.locks().to_vec();
        let context = snapshot.context(Placement::NESTED);
        let mut decision = decide(statement, &context, self.facts.settings, &catalog);
        if commits(&statement.stmt, &snapshot) {
            // A procedure's COMMIT commits the renames before it.
            let commit = decide_commit(&snapshot, self.facts.settings, &catalog);
            decision.findings.extend(commit.findings);
            decision.acknowledged.extend(commit.acknowledged);
        }
        let creates = relations_created(&statement.stmt, &catalog);
        self.missing.extend(catalog.missing.take());
        self.verdict.reports.extend(reports(&decision));
        if let Some(finding) = decision.rejection() {
            return Err(finding.rule.to_string());
        }
        // What the statement sets holds for the routines it runs.
        self.transaction.note_settings(statement);
        self.verdict.created.extend(creates);
        let inner = if statement.stmt == Stmt::Routine(RoutineKind::Do) {
            self.judge_do_block(&statement.source)?
        } else {
            self.judge_calls(parsed)?
        };
        // Then its own effect: relations, locks, a procedure's COMMIT.
        self.transaction
            .observe(&policy::transaction::run_by_routine(statement), &catalog);
        self.missing.extend(catalog.missing.take());
        if self.transaction.locks().iter().any(|lock| !locks_before.contains(lock)) {
            self.verdict.locks_in_routines = true;
        }
        Ok(smallest_cap(decision.lock_timeout_ms, inner))
    }

    /// The statements of the user-defined functions `statement` may call, of the trigger
    /// functions its writes may fire and of the event trigger functions its DDL fires,
    /// decided; their smallest cap. Definitions
    /// not yet known are asked for (`missing`).
    fn judge_calls(&mut self, parsed: &ParsedStatement) -> Result<Option<u64>, String> {
        let statement = &parsed.statement;
        let mut cap = self.judge_event_triggers(statement)?;
        // In a failed transaction the statement fails without running (the server could
        // not answer either); a function defined, not called, runs nothing.
        if self.transaction.status() == TransactionStatus::Failed
            || statement.stmt == Stmt::Routine(RoutineKind::CreateFunction)
        {
            return Ok(cap);
        }
        for name in called_functions(&statement.source) {
            if self.visited.contains(&name) {
                continue;
            }
            self.visited.push(name.clone());
            let defined: Vec<FunctionBody> = self
                .defined
                .iter()
                .filter(|body| body.name.may_be(&name))
                .cloned()
                .collect();
            let bodies = if defined.is_empty() {
                let answer = self.ask(|catalog| catalog.function_bodies(&name));
                match self.read(answer, || unreadable_function(&name))? {
                    Some(bodies) => bodies,
                    None => continue,
                }
            } else {
                defined
            };
            for body in &bodies {
                cap = smallest_cap(cap, self.judge_body(body, &Routine::Function(&body.name))?);
            }
        }
        for write in &parsed.reach.writes {
            let table = &write.table;
            if self.written.contains(&(table.clone(), write.events)) {
                continue;
            }
            self.written.push((table.clone(), write.events));
            let answer = self.ask(|catalog| catalog.trigger_functions(table, write.events));
            let Some(bodies) = self.read(answer, || unreadable_triggers(table))? else {
                continue;
            };
            for body in bodies {
                if self.visited.contains(&body.name) {
                    continue;
                }
                self.visited.push(body.name.clone());
                let routine = Routine::Trigger {
                    function: &body.name,
                    table,
                };
                cap = smallest_cap(cap, self.judge_body(&body, &routine)?);
            }
        }
        // A query reading a view runs the view's functions too; the proxy follows views
        // where a migration recomputes one (REFRESH) or fills a table from a query, and
        // not in every SELECT, which would cost each application query a round trip.
        if self.in_view > 0
            || matches!(
                statement.stmt,
                Stmt::RefreshMaterializedView { .. } | Stmt::CreateTableAs { .. }
            )
        {
            cap = smallest_cap(cap, self.judge_views(parsed)?);
        }
        Ok(cap)
    }

    /// The queries of the views and materialized views `statement` reads (REFRESH
    /// recomputes one, CREATE TABLE AS runs its query), decided one level deeper like a
    /// function's statements: the functions they call run when the statement does.
    fn judge_views(&mut self, parsed: &ParsedStatement) -> Result<Option<u64>, String> {
        let mut cap = None;
        for relation in &parsed.reach.reads {
            if self.viewed.contains(relation) {
                continue;
            }
            self.viewed.push(relation.clone());
            let answer = self.ask(|catalog| catalog.view_query(relation));
            let refreshed = matches!(&parsed.statement.stmt,
                Stmt::RefreshMaterializedView { view, .. } if view.may_be(relation));
            let query = match self.read(answer, || unreadable_view(relation))? {
                None | Some(None) => continue,
                // Reading a materialized view runs nothing; refreshing it runs its query.
                Some(Some(view)) if view.materialized && !refreshed => continue,
                Some(Some(view)) => view.query,
            };
            if self.depth >= MAX_CALL_DEPTH {
                self.cannot_check(views_too_deep(relation))?;
                continue;
            }
            let Ok(view_statements) = parse_sql(&query) else {
                self.cannot_check(unreadable_view(relation))?;
                continue;
            };
            self.depth += 1;
            self.in_view += 1;
            let mut inner: Result<Option<u64>, String> = Ok(None);
            for view_statement in &view_statements {
                match self.judge_statement(view_statement) {
                    Ok(view_cap) => inner = inner.map(|found| smallest_cap(found, view_cap)),
                    Err(rule) => {
                        inner = Err(rule);
                        break;
                    }
                }
            }
            self.in_view -= 1;
            self.depth -= 1;
            cap = smallest_cap(cap, inner?);
        }
        Ok(cap)
    }

    /// The functions of the database's event triggers, which DDL fires (ddl_command_start
    /// and _end, sql_drop, table_rewrite), decided once per statement like called functions.
    /// Only a superuser creates event triggers; they run for every role's DDL.
    fn judge_event_triggers(&mut self, statement: &Statement) -> Result<Option<u64>, String> {
        if self.transaction.status() == TransactionStatus::Failed
            || self.event_triggers_read
            || !fires_event_triggers(&statement.stmt)
        {
            return Ok(None);
        }
        let answer = self.ask(|catalog| catalog.event_trigger_functions());
        let Some(bodies) = self.read(answer, unreadable_event_triggers)? else {
            return Ok(None);
        };
        self.event_triggers_read = true;
        let mut cap = None;
        for body in bodies {
            if self.visited.contains(&body.name) {
                continue;
            }
            self.visited.push(body.name.clone());
            cap = smallest_cap(cap, self.judge_body(&body, &Routine::EventTrigger(&body.name))?);
        }
        Ok(cap)
    }

    /// The statements of one function's definition, decided one level deeper.
    fn judge_body(&mut self, body: &FunctionBody, routine: &Routine) -> Result<Option<u64>, String> {
        if body.definition.is_empty() {
            return Ok(None);
        }
        // PL/pgSQL reads a body's literals under the session's setting, or the
        // function's own SET standard_conforming_strings.
        if body.definition.contains('\\')
            && (!self.facts.standard_strings || body.definition.contains("standard_conforming_strings"))
        {
            self.cannot_read_as_the_server(routine)?;
        }
        if self.depth >= MAX_CALL_DEPTH {
            self.cannot_check(calls_too_deep(&body.name))?;
            return Ok(None);
        }
        // set_config in the body's PL/pgSQL expressions, which are no statements.
        let changes = set_config_calls_in_bodies(&body.definition);
        if !changes.is_empty() {
            let settings_changed = Statement {
                stmt: Stmt::Query,
                source: body.definition.clone(),
                changes,
            };
            let context = self.transaction.context(Placement::NESTED);
            let decision = decide(&settings_changed, &context, self.facts.settings, &self.catalog());
            self.verdict.reports.extend(reports(&decision));
            if let Some(finding) = decision.rejection() {
                return Err(finding.rule.to_string());
            }
            self.transaction.note_settings(&settings_changed);
        }
        // A function's own SET search_path (or one its body mentions) moves names while
        // it runs.
        if body.definition.to_ascii_lowercase().contains("search_path") {
            self.transaction.search_path_may_change();
        }
        let statements = function_sql(&body.definition).unwrap_or_default();
        self.depth += 1;
        let inner = self.judge_routine(statements, routine, header_sets_a_timeout(&body.definition));
        self.depth -= 1;
        inner
    }

    /// Ask the session's catalog; what it could not answer yet is asked of the server
    /// (`missing`).
    fn ask<T>(&mut self, question: impl FnOnce(&SessionCatalog) -> T) -> T {
        let catalog = self.catalog();
        let answer = question(&catalog);
        self.missing.extend(catalog.missing.into_inner());
        answer
    }

    /// A definition asked of the server: None while it has not answered, and where it
    /// could not and the role lets `unreadable` through (refused otherwise).
    fn read<T>(&mut self, answer: Option<Option<T>>, unreadable: impl FnOnce() -> Report) -> Result<Option<T>, String> {
        match answer {
            None => Ok(None),
            Some(Some(value)) => Ok(Some(value)),
            Some(None) => self.cannot_check(unreadable()).map(|()| None),
        }
    }

    fn catalog(&self) -> SessionCatalog<'_> {
        session_catalog(self.facts, self.transaction)
    }

    /// A routine body whose literals the server may read differently (backslashes without
    /// standard strings): a warning in warn mode, else refused, whatever
    /// `unparsable = allow` says (this is no syntax the proxy lacks, but a second reading).
    fn cannot_read_as_the_server(&mut self, routine: &Routine) -> Result<(), String> {
        self.warn_or_refuse(nonstandard_body(routine), unchecked::RULE)
    }

    /// SQL the proxy cannot check: let through where the settings say so (a warning in
    /// warn mode, where nothing is refused), refused otherwise (fail closed).
    fn cannot_check(&mut self, report: Report) -> Result<(), String> {
        match unchecked_report(report, self.facts.settings) {
            Unchecked::Pass(report) => {
                self.verdict.reports.extend(report);
                Ok(())
            }
            Unchecked::Refuse(report) => {
                self.verdict.reports.push(report);
                Err(unchecked::RULE.to_string())
            }
        }
    }
}

/// What becomes of SQL the proxy cannot check.
pub enum Unchecked {
    /// It goes to the server, with this warning to the client, if any.
    Pass(Option<Report>),
    /// It is refused with this error.
    Refuse(Report),
}

/// `unparsable = allow` lets it through silently; warn mode lets it through with the
/// report as a warning (warn refuses nothing; the server decides, and its own errors,
/// such as a syntax error with its position, reach the client); enforce refuses it.
pub fn unchecked_report(report: Report, settings: &Settings) -> Unchecked {
    unchecked(report, settings, true)
}

/// As `unchecked_report`, where `unparsable = allow` counts only when `allowable`: it
/// lets through syntax the proxy lacks, not a text the server reads another way.
pub fn unchecked(report: Report, settings: &Settings, allowable: bool) -> Unchecked {
    if allowable && settings.unparsable == Unparsable::Allow {
        Unchecked::Pass(None)
    } else if settings.mode == Mode::Warn {
        Unchecked::Pass(Some(Report {
            level: Level::Warning,
            ..report
        }))
    } else {
        Unchecked::Refuse(report)
    }
}

/// A statement whose string literals the server reads differently from the proxy
/// (standard_conforming_strings off and a backslash that changes the tree).
pub fn nonstandard_strings() -> Report {
    error_report(
        SQLSTATE_UNPARSABLE,
        "safe_migrations proxy: with standard_conforming_strings off, the server reads the backslashes in \
         this statement's string literals differently from the proxy, which cannot check it"
            .to_string(),
        Some(
            "With standard_conforming_strings off, a backslash escapes the next character in a '...' literal, \
             so a literal can end elsewhere and hold other statements."
                .to_string(),
        ),
        Some("SET standard_conforming_strings = on, or write such literals as E'...'.".to_string()),
    )
}

/// A FunctionCall message of a user-defined function: its body is not read (fail closed).
pub fn function_call_unchecked(oid: i32) -> Report {
    error_report(
        SQLSTATE_UNPARSABLE,
        format!(
            "safe_migrations proxy: a FunctionCall (fast-path) message calls the user-defined function with oid \
             {}, whose SQL the proxy does not check on this path",
            oid as u32
        ),
        Some("The proxy checks the SQL of the functions a guarded role calls in statements.".to_string()),
        Some("Call the function in a statement (SELECT f(...)) instead.".to_string()),
    )
}

/// Timeouts that bound how long a statement waits for its locks.
const TIMEOUTS: [&str; 2] = ["lock_timeout", "statement_timeout"];

/// Does the statement set lock_timeout or statement_timeout (SET, SET LOCAL, RESET,
/// RESET ALL, or a set_config naming one; a set_config of a computed name too)?
fn sets_a_timeout(statement: &Statement) -> bool {
    match &statement.stmt {
        Stmt::Set(set) => set.name.as_deref().is_none_or(|name| TIMEOUTS.contains(&name)),
        _ => {
            let text = statement.source.to_ascii_lowercase();
            text.contains("set_config")
                && (TIMEOUTS.iter().any(|timeout| text.contains(timeout)) || !text.contains("set_config('"))
        }
    }
}

/// Does a function's definition (CREATE FUNCTION text, or pg_get_functiondef's) set
/// lock_timeout or statement_timeout for its run, in the part before its body?
fn header_sets_a_timeout(definition: &str) -> bool {
    let lower = definition.to_ascii_lowercase();
    let header_end = lower
        .find(" as ")
        .or_else(|| lower.find("\nas "))
        .unwrap_or(lower.len());
    let header = &lower[..header_end];
    TIMEOUTS.iter().any(|timeout| header.contains(timeout))
}

/// A routine that sets its own lock_timeout or statement_timeout and takes locks.
fn sets_its_own_timeout(routine: &Routine) -> Report {
    error_report(
        SQLSTATE_LOCK,
        format!(
            "lock_timeout: {} sets lock_timeout or statement_timeout itself and runs statements that take locks, \
             which would then wait for them without the cap",
            routine.describe()
        ),
        Some(
            "The proxy caps the lock_timeout of the statement it is sent; a routine that sets its own timeout \
             replaces the cap for the statements after it."
                .to_string(),
        ),
        Some("Leave lock_timeout and statement_timeout to the guard in routines that change the schema.".to_string()),
    )
}

/// A routine body with backslashes where standard_conforming_strings may be off.
fn nonstandard_body(routine: &Routine) -> Report {
    error_report(
        SQLSTATE_UNPARSABLE,
        format!(
            "safe_migrations proxy: {} has backslashes in its body and may run with standard_conforming_strings \
             off, where its string literals can read differently from the proxy's reading",
            routine.describe()
        ),
        Some(
            "PL/pgSQL reads the body's literals under the session's standard_conforming_strings, or the \
             function's own SET clause."
                .to_string(),
        ),
        Some("Keep standard_conforming_strings on, or write such literals as E'...'.".to_string()),
    )
}

/// A routine that runs SQL text computed at run time (fail closed).
fn dynamic_sql(routine: &Routine, expression: &str) -> Report {
    unchecked_text(unchecked::text(
        &routine.describe(),
        Reason::Dynamic(expression),
        Reader::Proxy,
    ))
}

/// A routine in a language other than PL/pgSQL (or SQL, for functions): fail closed.
fn other_language(routine: &Routine, language: &str) -> Report {
    unchecked_text(unchecked::text(
        &routine.describe(),
        Reason::OtherLanguage(language),
        Reader::Proxy,
    ))
}

/// SQL a routine runs that the parser could not read (fail closed).
fn unparsable_in(routine: &Routine, error: &ParseError) -> Report {
    unchecked_text(unchecked::text(
        &routine.describe(),
        Reason::Unparsable(&error.message),
        Reader::Proxy,
    ))
}

/// The SM004 report of `text`.
fn unchecked_text(text: unchecked::Text) -> Report {
    error_report(
        SQLSTATE_UNPARSABLE,
        format!("safe_migrations proxy: {}", text.message),
        Some(text.detail),
        Some(text.hint),
    )
}

/// A called function whose definition the server would not give (fail closed).
fn unreadable_function(name: &QualifiedName) -> Report {
    error_report(
        SQLSTATE_UNPARSABLE,
        format!("safe_migrations proxy: cannot read the definition of function {name}, which this statement calls"),
        Some("The proxy checks the SQL of the functions a guarded role calls, and could not read it.".to_string()),
        Some("Set safe_migrations.unparsable = 'allow' for this role to let such calls through.".to_string()),
    )
}

/// Statements that fire event triggers: DDL of the objects of a database (not of roles,
/// databases or tablespaces), as PostgreSQL's event trigger firing matrix lists them,
/// read generously (Stmt::Other DDL covers GRANT, COMMENT and the rest).
fn fires_event_triggers(stmt: &Stmt) -> bool {
    matches!(
        stmt,
        Stmt::CreateIndex(_)
            | Stmt::DropIndex(_)
            | Stmt::AlterTable(_)
            | Stmt::CreateTable(_)
            | Stmt::CreateTableAs { .. }
            | Stmt::CreateView(_)
            | Stmt::Rename(_)
            | Stmt::SetSchema(_)
            | Stmt::Drop(_)
            | Stmt::RefreshMaterializedView { .. }
            | Stmt::Routine(RoutineKind::CreateFunction)
            | Stmt::Other { ddl: true, .. }
    )
}

/// The event triggers the server would not list (fail closed).
fn unreadable_event_triggers() -> Report {
    error_report(
        SQLSTATE_UNPARSABLE,
        "safe_migrations proxy: cannot read the database's event trigger functions, which this DDL fires".to_string(),
        Some("The proxy checks the SQL of the event trigger functions that a guarded role's DDL fires.".to_string()),
        Some("Set safe_migrations.unparsable = 'allow' for this role to let such statements through.".to_string()),
    )
}

/// A written table whose trigger functions the server would not list (fail closed).
fn unreadable_triggers(table: &QualifiedName) -> Report {
    error_report(
        SQLSTATE_UNPARSABLE,
        format!("safe_migrations proxy: cannot read the trigger functions of {table}, which this statement writes"),
        Some(
            "The proxy checks the SQL of the trigger functions that a guarded role's writes fire, and could not \
             read them."
                .to_string(),
        ),
        Some("Set safe_migrations.unparsable = 'allow' for this role to let such writes through.".to_string()),
    )
}

/// A view whose query the server would not give, or the proxy cannot parse (fail closed).
fn unreadable_view(relation: &QualifiedName) -> Report {
    error_report(
        SQLSTATE_UNPARSABLE,
        format!("safe_migrations proxy: cannot read the query of view {relation}, which this statement reads"),
        Some(
            "The proxy checks the functions a view's query calls when a guarded role's statement runs it, and \
             could not read it."
                .to_string(),
        ),
        Some("Set safe_migrations.unparsable = 'allow' for this role to let such statements through.".to_string()),
    )
}

/// Views on views (and functions) nested deeper than the proxy follows (fail closed).
fn views_too_deep(relation: &QualifiedName) -> Report {
    error_report(
        SQLSTATE_UNPARSABLE,
        format!(
            "safe_migrations proxy: view {relation} is nested deeper than {MAX_CALL_DEPTH} levels of views and \
             functions, which the proxy does not follow"
        ),
        Some("The proxy checks the SQL a guarded role's statement runs, level by level.".to_string()),
        Some("Set safe_migrations.unparsable = 'allow' for this role to let such statements through.".to_string()),
    )
}

/// Calls nested deeper than the proxy follows (fail closed).
fn calls_too_deep(name: &QualifiedName) -> Report {
    error_report(
        SQLSTATE_UNPARSABLE,
        format!(
            "safe_migrations proxy: function {name} is called more than {MAX_CALL_DEPTH} functions deep; \
             the proxy does not follow calls that deep"
        ),
        Some("The proxy checks the SQL of the functions a guarded role calls, level by level.".to_string()),
        Some(
            "Call the inner function directly, or set safe_migrations.unparsable = 'allow' for this role.".to_string(),
        ),
    )
}

/// The report for a statement the parser could not read (fail closed).
pub fn unparsable(error: &ParseError) -> Report {
    unchecked_text(unchecked::unparsable_statement(&error.message, Reader::Proxy))
}

pub fn policy_change_report(what: &str) -> Report {
    error_report(
        INSUFFICIENT_PRIVILEGE,
        "safe_migrations: a guarded role cannot change its safe_migrations settings through the proxy".to_string(),
        Some(format!("{what} would weaken the policy the proxy enforces for this role.")),
        Some("An administrator changes a role's policy: ALTER ROLE ... SET safe_migrations.<setting>, or the proxy's config file.".to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::super::catalog::FunctionBody;
    use super::*;
    use parse::parse_sql;
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
        judge(&statements, &Facts::idle(settings, &answers)).0
    }

    /// Judge `sql` with every table empty by its size, and nothing else known.
    fn judge_with_empty_tables(sql: &str) -> Verdict {
        let statements = parse_sql(sql).unwrap();
        let settings = enforce();
        let mut answers = HashMap::new();
        loop {
            let (verdict, missing) = judge(&statements, &Facts::idle(&settings, &answers));
            if missing.is_empty() {
                return verdict;
            }
            for question in missing {
                let answer = match question {
                    Question::EmptyRelation(_) => Answer::Bool(Some(true)),
                    Question::RelationOid(_) => Answer::Oid(None),
                    Question::Partitioned(_) | Question::DomainConstraints(_) => Answer::Bool(Some(false)),
                    Question::EstimatedRows(_) => Answer::Rows(None),
                    _ => Answer::Bodies(Some(Vec::new())),
                };
                answers.insert(question, answer);
            }
        }
    }

    #[test]
    fn an_empty_table_counts_only_for_the_first_statement_of_a_message() {
        let alone = judge_with_empty_tables("CREATE INDEX ON t (x)");
        assert_eq!(alone.refusal, None, "{:?}", alone.reports);
        // The INSERT's rows are not on the server when the proxy asks about t's size.
        let after = judge_with_empty_tables("INSERT INTO t SELECT 1; CREATE INDEX ON t (x)");
        assert_eq!(
            after.refusal.map(|refusal| refusal.rule),
            Some("create_index_non_concurrently".to_string())
        );
    }

    #[test]
    fn policy_changes_are_refused() {
        for sql in [
            "SET safe_migrations.mode = off",
            "RESET safe_migrations.mode",
            "SELECT set_config('safe_migrations.mode', 'off', false)",
            "ALTER ROLE migrator SET safe_migrations.mode = 'off'",
            "SELECT set_config/**/('safe_migrations.mode', 'off', false)",
            "DO $$DECLARE x text; BEGIN x := set_config('safe_migrations.mode', 'off', false); END$$",
        ] {
            let verdict = judge_sql(sql, &enforce());
            assert_eq!(
                verdict.refusal.as_ref().map(|r| r.rule.as_str()),
                Some("policy_change"),
                "{sql}"
            );
            assert_eq!(verdict.reports.last().unwrap().sqlstate, "42501");
        }
        assert!(judge_sql("SHOW safe_migrations.mode", &enforce()).refusal.is_none());
        // A setting only mentioned in a comment or a string changes nothing.
        for sql in [
            "SELECT 1 -- set_config('safe_migrations.mode', 'off', false)",
            "COMMENT ON TABLE t IS 'ALTER ROLE migrator RESET ALL; SET safe_migrations.mode = off'",
            "SELECT set_config('work_mem', '8MB', false)",
        ] {
            let verdict = judge_sql(sql, &enforce());
            assert!(verdict.refusal.is_none(), "{sql}: {:?}", verdict.reports);
        }
        // Nor can an acknowledgement let it through: the role would write it itself.
        let verdict = judge_sql(
            "-- safe_migrations:allow policy_change -- because\nSET safe_migrations.mode = off",
            &enforce(),
        );
        assert_eq!(verdict.refusal.map(|r| r.rule), Some("policy_change".to_string()));
    }

    #[test]
    fn a_create_table_earlier_in_the_string_counts_as_new() {
        let verdict = judge_resolving("CREATE TABLE n (id int); CREATE INDEX ON n (id)", &[], &[]);
        assert!(verdict.refusal.is_none(), "{:?}", verdict.reports);
        let verdict = judge_resolving("CREATE INDEX ON old (id)", &[], &[]);
        assert_eq!(
            verdict.refusal.map(|r| r.rule),
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
        let verdict = judge_resolving(
            "CREATE TABLE n (id int); CREATE INDEX n_id ON n (id); ALTER TABLE n RENAME TO m; \
             CREATE INDEX IF NOT EXISTS n_id2 ON m (id); DROP INDEX n_id; CREATE INDEX ON m (id)",
            &[],
            &[],
        );
        assert!(verdict.refusal.is_none(), "{:?}", verdict.reports);
        assert_eq!(verdict.created, ["n", "n_id", "m"].map(QualifiedName::bare).to_vec());
        // Renaming a relation that is not new creates nothing.
        let verdict = judge_resolving("ALTER INDEX old_i RENAME TO new_i", &[], &[]);
        assert!(verdict.created.is_empty());
    }

    /// `sql` judged in a transaction block in which earlier messages created `created`,
    /// each resolving to the OID given; other names resolve to nothing.
    fn judge_in_transaction(sql: &str, created: &[(&str, u32)]) -> Verdict {
        judge_resolving(sql, created, &[])
    }

    /// As `judge_in_transaction`, the names `existing` resolving to older relations.
    fn judge_resolving(sql: &str, created: &[(&str, u32)], existing: &[&str]) -> Verdict {
        let settings = enforce();
        let statements = parse_sql(sql).unwrap();
        let mut transaction = Transaction::with_status(policy::TransactionStatus::InBlock);
        let names: Vec<QualifiedName> = created.iter().map(|(name, _)| QualifiedName::bare(name)).collect();
        transaction.record_created(&names);
        let name = |text: &str| match text.split_once('.') {
            Some((schema, name)) => QualifiedName::new(Some(schema), name),
            None => QualifiedName::bare(text),
        };
        let mut answers: HashMap<Question, Answer> = created
            .iter()
            .map(|(created, oid)| (Question::RelationOid(name(created)), Answer::Oid(Some(*oid))))
            .chain(
                existing
                    .iter()
                    .map(|existing| (Question::RelationOid(name(existing)), Answer::Oid(Some(99)))),
            )
            .collect();
        loop {
            let facts = Facts {
                transaction: &transaction,
                ..Facts::idle(&settings, &answers)
            };
            let (verdict, missing) = judge(&statements, &facts);
            if missing.is_empty() {
                return verdict;
            }
            // No functions, no event triggers; no other relation either.
            for question in missing {
                let answer = match question {
                    Question::RelationOid(_) => Answer::Oid(None),
                    _ => Answer::Bodies(Some(Vec::new())),
                };
                answers.insert(question, answer);
            }
        }
    }

    #[test]
    fn relations_a_message_creates_stay_new_whatever_it_drops_or_renames() {
        // `a` was created by an earlier message; this one renames it and indexes it.
        let verdict = judge_in_transaction("ALTER TABLE a RENAME TO b; CREATE INDEX ON b (x)", &[("a", 10)]);
        assert_eq!(refusal(&verdict), None, "{:?}", verdict.reports);
        // Or drops it, and creates and indexes another.
        let verdict = judge_in_transaction(
            "CREATE TABLE c (x int); DROP TABLE a; CREATE INDEX ON c (x)",
            &[("a", 10)],
        );
        assert_eq!(refusal(&verdict), None, "{:?}", verdict.reports);
        // The message's transaction, as the session takes it once the message runs.
        assert_eq!(verdict.transaction.pending(), &[QualifiedName::bare("c")]);
    }

    #[test]
    fn a_name_that_resolved_to_a_relation_before_the_message_is_that_relation() {
        let settings = Settings {
            allow: ["rename_table".to_string()].into(),
            ..enforce()
        };
        let sql = "CREATE TABLE s1.t (x int); ALTER TABLE t SET SCHEMA s3; CREATE INDEX ON s3.t (x)";
        // `t` was public.t, an existing table: moving it does not make s3.t new.
        let verdict = judge_sql(sql, &settings);
        assert_eq!(refusal(&verdict), Some(("create_index_non_concurrently", "SM001")));
        let index = Some(("create_index_non_concurrently", "SM001"));
        // A temporary table, or a pg_catalog one, of the name of an existing table.
        let sql = "CREATE TEMP TABLE users (id int); CREATE INDEX ON public.users (id)";
        assert_eq!(refusal(&judge_resolving(sql, &[], &["public.users"])), index);
        let sql = "CREATE TABLE pg_class (x int); CREATE INDEX ON pg_class (x)";
        assert_eq!(refusal(&judge_resolving(sql, &[], &["pg_class"])), index);
        // A CREATE that a DO block may skip (IF, EXCEPTION) when the table exists.
        let sql = "DO $$ BEGIN CREATE TABLE users (id int); EXCEPTION WHEN duplicate_table THEN NULL; END $$; \
                   CREATE INDEX ON users (id)";
        assert_eq!(refusal(&judge_resolving(sql, &[], &["users"])), index);
        // The same, where the names resolved to nothing: the relations are new.
        for sql in [
            "CREATE TEMP TABLE users (id int); CREATE INDEX ON users (id)",
            "CREATE TABLE public.foo (x int); CREATE INDEX ON foo (x)",
            "CREATE TABLE foo (x int); CREATE INDEX ON public.foo (x)",
            "DO $$ BEGIN CREATE TABLE users (id int); EXCEPTION WHEN duplicate_table THEN NULL; END $$; \
             CREATE INDEX ON users (id)",
        ] {
            assert_eq!(refusal(&judge_resolving(sql, &[], &[])), None, "{sql}");
        }
    }

    #[test]
    fn once_names_may_resolve_otherwise_only_qualified_names_tell() {
        for change in [
            "SET search_path = app, public",
            "SELECT set_config('search_path', 'app', false)",
            "SET ROLE app",
            "CREATE SCHEMA app",
            "GRANT USAGE ON SCHEMA app TO migrator",
            "DO $$ BEGIN SET search_path = app; END $$",
        ] {
            let sql = format!("CREATE TABLE foo (x int); {change}; CREATE INDEX ON foo (x)");
            assert_eq!(
                refusal(&judge_resolving(&sql, &[], &[])),
                Some(("create_index_non_concurrently", "SM001")),
                "{sql}"
            );
            let sql = format!("CREATE TABLE app.foo (x int); {change}; CREATE INDEX ON app.foo (x)");
            assert_eq!(refusal(&judge_resolving(&sql, &[], &[])), None, "{sql}");
        }
    }

    #[test]
    fn a_commit_ends_what_the_message_created() {
        let verdict = judge_sql("BEGIN; CREATE TABLE t (x int); COMMIT; BEGIN", &enforce());
        assert_eq!(refusal(&verdict), None);
        assert!(verdict.transaction.created_nothing());
    }

    fn refusal(verdict: &Verdict) -> Option<(&str, &str)> {
        let rule = &verdict.refusal.as_ref()?.rule;
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
        assert!(judge_resolving("DO $$ BEGIN PERFORM 1; END $$", &[], &[])
            .refusal
            .is_none());
        let verdict = judge_resolving(
            "DO $$ BEGIN CREATE TABLE n (id int); CREATE INDEX ON n (id); END $$",
            &[],
            &[],
        );
        assert!(verdict.refusal.is_none(), "{:?}", verdict.reports);
        assert_eq!(verdict.created, [QualifiedName::bare("n")]);
        // ... and for the statements after the block in the same message.
        let verdict = judge_resolving(
            "DO $$ BEGIN CREATE TABLE n (id int); END $$; CREATE INDEX ON n (id)",
            &[],
            &[],
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

    /// A plpgsql function's definition as pg_get_functiondef writes it.
    fn plpgsql(name: &str, body: &str) -> String {
        format!(
            "CREATE OR REPLACE FUNCTION public.{name}()\n RETURNS void\n LANGUAGE plpgsql\n\
             AS $function$\nBEGIN\n{body}\nEND\n$function$\n"
        )
    }

    /// `judge` as the session runs it, the server knowing `functions` (name, language,
    /// definition) and nothing else; also how many rounds of questions it took.
    fn judge_with_functions(sql: &str, settings: &Settings, functions: &[(&str, &str, String)]) -> (Verdict, usize) {
        judge_with_triggers(sql, settings, functions, &[])
    }

    /// As `judge_with_functions`, tables having the trigger functions `triggers` names
    /// (table, function).
    fn judge_with_triggers(
        sql: &str,
        settings: &Settings,
        functions: &[(&str, &str, String)],
        triggers: &[(&str, &str)],
    ) -> (Verdict, usize) {
        let body = |function: &str| {
            functions
                .iter()
                .filter(|(name, ..)| *name == function)
                .map(|(name, language, definition)| FunctionBody {
                    name: QualifiedName::new(Some("public"), name),
                    language: language.to_string(),
                    definition: definition.clone(),
                })
                .collect::<Vec<_>>()
        };
        let statements = parse_sql(sql).unwrap();
        let mut answers = HashMap::new();
        for round in 1.. {
            let facts = Facts::idle(settings, &answers);
            let (verdict, missing) = judge(&statements, &facts);
            if missing.is_empty() || round > MAX_CALL_DEPTH + 2 {
                return (verdict, round);
            }
            for question in missing {
                let answer = match &question {
                    Question::FunctionBodies(name) => Answer::Bodies(Some(body(&name.name))),
                    // Event triggers are listed under the table name "<event>".
                    Question::EventTriggerFunctions => Answer::Bodies(Some(
                        triggers
                            .iter()
                            .filter(|(table, _)| *table == "<event>")
                            .flat_map(|(_, function)| body(function))
                            .collect(),
                    )),
                    Question::TriggerFunctions(table, _) => Answer::Bodies(Some(
                        triggers
                            .iter()
                            .filter(|(written, _)| *written == table.name)
                            .flat_map(|(_, function)| body(function))
                            .collect(),
                    )),
                    other => other.answer(None),
                };
                answers.insert(question, answer);
            }
        }
        unreachable!()
    }

    #[test]
    fn a_function_with_its_own_search_path_does_not_see_the_message_s_new_tables_by_name() {
        let sql = "CREATE TABLE foo (x int); SELECT index_foo()";
        let plain = plpgsql("index_foo", "CREATE INDEX ON foo (x);");
        let (verdict, _) = judge_with_functions(sql, &enforce(), &[("index_foo", "plpgsql", plain)]);
        assert_eq!(refusal(&verdict), None, "{:?}", verdict.reports);
        // With SET search_path = app, `foo` in its body is app.foo: maybe an older table.
        let own_path = plpgsql("index_foo", "CREATE INDEX ON foo (x);")
            .replace(" LANGUAGE plpgsql\n", " LANGUAGE plpgsql\n SET search_path TO 'app'\n");
        let (verdict, _) = judge_with_functions(sql, &enforce(), &[("index_foo", "plpgsql", own_path)]);
        assert_eq!(refusal(&verdict), Some(("create_index_non_concurrently", "SM001")));
        // As when the statement that calls it sets the search_path itself.
        let plain = plpgsql("index_foo", "CREATE INDEX ON foo (x);");
        let (verdict, _) = judge_with_functions(
            "CREATE TABLE foo (x int); SELECT set_config('search_path', 'app', false), index_foo()",
            &enforce(),
            &[("index_foo", "plpgsql", plain)],
        );
        assert_eq!(refusal(&verdict), Some(("create_index_non_concurrently", "SM001")));
    }

    #[test]
    fn a_called_function_is_refused_for_the_unsafe_sql_it_runs() {
        let make_index = plpgsql("make_index", "CREATE INDEX i ON t (c);");
        for sql in [
            "SELECT make_index()",
            "CALL make_index()",
            "INSERT INTO log VALUES (make_index())",
            "DO $$ BEGIN PERFORM make_index(); END $$",
        ] {
            let (verdict, _) = judge_with_functions(sql, &enforce(), &[("make_index", "plpgsql", make_index.clone())]);
            assert_eq!(
                refusal(&verdict),
                Some(("create_index_non_concurrently", "SM001")),
                "{sql}: {:?}",
                verdict.reports
            );
        }
        // Through a chain of calls, each level asked for in its own round.
        let functions = [
            ("outer_fn", "plpgsql", plpgsql("outer_fn", "PERFORM middle_fn();")),
            ("middle_fn", "sql", "CREATE OR REPLACE FUNCTION public.middle_fn()\n RETURNS void\n LANGUAGE sql\nAS $function$ SELECT make_index() $function$\n".to_string()),
            ("make_index", "plpgsql", make_index.clone()),
        ];
        let (verdict, rounds) = judge_with_functions("SELECT outer_fn()", &enforce(), &functions);
        assert_eq!(refusal(&verdict), Some(("create_index_non_concurrently", "SM001")));
        assert_eq!(rounds, 4);
    }

    #[test]
    fn harmless_and_builtin_calls_pass_and_ddl_in_a_function_gets_the_cap() {
        let (verdict, _) = judge_with_functions(
            "SELECT count(*), touch() FROM t",
            &enforce(),
            &[("touch", "plpgsql", plpgsql("touch", "UPDATE t SET c = 1;"))],
        );
        assert!(verdict.refusal.is_none(), "{:?}", verdict.reports);
        assert_eq!(verdict.caps, [None]);
        let (verdict, _) = judge_with_functions(
            "SELECT add_column()",
            &enforce(),
            &[(
                "add_column",
                "plpgsql",
                plpgsql("add_column", "ALTER TABLE t ADD COLUMN x int;"),
            )],
        );
        assert!(verdict.refusal.is_none(), "{:?}", verdict.reports);
        assert_eq!(verdict.caps, [Some(enforce().lock_timeout_cap_ms)]);
        // C functions and aggregates come without a definition.
        let (verdict, _) = judge_with_functions("SELECT c_fn()", &enforce(), &[("c_fn", "c", String::new())]);
        assert!(verdict.refusal.is_none());
    }

    #[test]
    fn writes_are_judged_with_the_trigger_functions_they_fire() {
        let trigger = |name: &str, body: &str| {
            format!(
                "CREATE OR REPLACE FUNCTION public.{name}()\n RETURNS trigger\n LANGUAGE plpgsql\n\
                 AS $function$\nBEGIN\n{body}\nRETURN NEW;\nEND\n$function$\n"
            )
        };
        let functions = [
            (
                "index_on_write",
                "plpgsql",
                trigger("index_on_write", "EXECUTE 'CREATE INDEX i ON t (c)';"),
            ),
            (
                "audit",
                "plpgsql",
                trigger("audit", "INSERT INTO audit_log VALUES (1);"),
            ),
            (
                "computed",
                "plpgsql",
                trigger("computed", "EXECUTE format('DROP TABLE %I', TG_TABLE_NAME);"),
            ),
            ("c_trigger", "c", String::new()),
        ];
        let triggers = [
            ("guarded", "index_on_write"),
            ("audited", "audit"),
            ("audit_log", "index_on_write"),
            ("dynamic", "computed"),
            ("plain", "c_trigger"),
        ];
        for sql in [
            "INSERT INTO guarded VALUES (1)",
            "UPDATE guarded SET c = 2",
            "DELETE FROM guarded",
            "WITH gone AS (DELETE FROM guarded RETURNING *) SELECT count(*) FROM gone",
            "COPY guarded FROM STDIN",
            // The trigger of the table the first trigger writes.
            "INSERT INTO audited VALUES (1)",
            "DO $$ BEGIN UPDATE guarded SET c = 3; END $$",
        ] {
            let (verdict, _) = judge_with_triggers(sql, &enforce(), &functions, &triggers);
            assert_eq!(
                refusal(&verdict),
                Some(("create_index_non_concurrently", "SM001")),
                "{sql}: {:?}",
                verdict.reports
            );
        }
        let (verdict, _) = judge_with_triggers("INSERT INTO dynamic VALUES (1)", &enforce(), &functions, &triggers);
        assert_eq!(
            refusal(&verdict),
            Some(("unparsable", "SM004")),
            "{:?}",
            verdict.reports
        );
        assert!(verdict.reports[0]
            .message
            .contains("trigger function public.computed (fired by this statement's writes to dynamic)"));
        // DDL fires the event triggers' functions.
        let events = [("<event>", "index_on_write")];
        for sql in [
            "ALTER TABLE t ADD COLUMN x int",
            "COMMENT ON TABLE t IS 'x'",
            "DROP TABLE IF EXISTS gone_already",
        ] {
            let settings = Settings {
                allow: ["drop_table".to_string()].into_iter().collect(),
                ..enforce()
            };
            let (verdict, _) = judge_with_triggers(sql, &settings, &functions, &events);
            assert_eq!(
                refusal(&verdict),
                Some(("create_index_non_concurrently", "SM001")),
                "{sql}: {:?}",
                verdict.reports
            );
        }
        let (verdict, _) = judge_with_triggers("SELECT 1", &enforce(), &functions, &events);
        assert!(verdict.refusal.is_none());
        for sql in [
            "INSERT INTO plain VALUES (1)",
            "SELECT * FROM guarded",
            "COPY guarded TO STDOUT",
        ] {
            let (verdict, _) = judge_with_triggers(sql, &enforce(), &functions, &triggers);
            assert!(verdict.refusal.is_none(), "{sql}: {:?}", verdict.reports);
        }
    }

    #[test]
    fn a_called_function_cannot_change_the_policy_in_an_expression() {
        let definition = "CREATE OR REPLACE FUNCTION public.turn_off()\n RETURNS text\n LANGUAGE plpgsql\n\
                          AS $function$\nBEGIN\nRETURN set_config('safe_migrations.mode', 'off', false);\nEND\n\
                          $function$\n"
            .to_string();
        let (verdict, _) =
            judge_with_functions("SELECT turn_off()", &enforce(), &[("turn_off", "plpgsql", definition)]);
        assert_eq!(
            refusal(&verdict),
            Some(("policy_change", "42501")),
            "{:?}",
            verdict.reports
        );
    }

    #[test]
    fn a_function_created_earlier_in_the_message_is_read_from_its_statement() {
        let sql = "CREATE FUNCTION make_index() RETURNS void LANGUAGE plpgsql AS $$ BEGIN CREATE INDEX i ON t (c); \
                   END $$; SELECT make_index()";
        let (verdict, rounds) = judge_with_functions(sql, &enforce(), &[]);
        assert_eq!(refusal(&verdict), Some(("create_index_non_concurrently", "SM001")));
        // One round for the event triggers CREATE FUNCTION fires; the function itself is
        // read from its statement, not asked for.
        assert_eq!(rounds, 2);
    }

    #[test]
    fn a_recursive_function_is_read_once() {
        let (verdict, _) = judge_with_functions(
            "SELECT countdown()",
            &enforce(),
            &[("countdown", "plpgsql", plpgsql("countdown", "PERFORM countdown();"))],
        );
        assert!(verdict.refusal.is_none(), "{:?}", verdict.reports);
    }

    #[test]
    fn routines_that_set_their_own_timeout_and_take_locks_are_refused() {
        for sql in [
            "DO $$ BEGIN SET LOCAL lock_timeout = 0; ALTER TABLE t ADD COLUMN c int; END $$",
            "DO $$ BEGIN PERFORM set_config('statement_timeout', '0', true); ALTER TABLE t ADD COLUMN c int; END $$",
            "DO $$ BEGIN RESET ALL; ALTER TABLE t ADD COLUMN c int; END $$",
            "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql SET lock_timeout = 0 \
             AS $$ BEGIN ALTER TABLE t ADD COLUMN c int; END $$; SELECT f()",
        ] {
            let verdict = judge_sql(sql, &enforce());
            assert_eq!(
                refusal(&verdict),
                Some(("lock_timeout", "SM001")),
                "{sql}: {:?}",
                verdict.reports
            );
        }
        let timeout_clause = "CREATE OR REPLACE FUNCTION public.migrate()\n RETURNS void\n LANGUAGE plpgsql\n \
                              SET lock_timeout TO '0'\nAS $function$ BEGIN ALTER TABLE t ADD COLUMN c int; END $function$\n";
        let (verdict, _) = judge_with_functions(
            "SELECT migrate()",
            &enforce(),
            &[("migrate", "plpgsql", timeout_clause.to_string())],
        );
        assert_eq!(
            refusal(&verdict),
            Some(("lock_timeout", "SM001")),
            "{:?}",
            verdict.reports
        );
        for sql in [
            "DO $$ BEGIN SET LOCAL work_mem = '64MB'; ALTER TABLE t ADD COLUMN c int; END $$",
            "DO $$ BEGIN SET LOCAL lock_timeout = 0; PERFORM 1; END $$",
        ] {
            let verdict = judge_sql(sql, &enforce());
            assert_eq!(refusal(&verdict), None, "{sql}: {:?}", verdict.reports);
        }
    }

    #[test]
    fn what_a_called_function_runs_unseen_fails_closed_unless_allowed() {
        let dynamic = plpgsql("dynamic", "EXECUTE format('CREATE INDEX %I ON t (c)', 'i');");
        let python = "CREATE OR REPLACE FUNCTION public.py()\n RETURNS void\n LANGUAGE plpython3u\nAS $function$ pass $function$\n".to_string();
        let deep: Vec<(String, String)> = (0..=MAX_CALL_DEPTH)
            .map(|level| {
                (
                    format!("level{level}"),
                    plpgsql(&format!("level{level}"), &format!("PERFORM level{}();", level + 1)),
                )
            })
            .collect();
        let deep: Vec<(&str, &str, String)> = deep
            .iter()
            .map(|(name, definition)| (name.as_str(), "plpgsql", definition.clone()))
            .collect();
        let allow = Settings {
            unparsable: Unparsable::Allow,
            ..enforce()
        };
        for (sql, functions) in [
            ("SELECT dynamic()", vec![("dynamic", "plpgsql", dynamic)]),
            ("SELECT py()", vec![("py", "plpython3u", python)]),
            ("SELECT level0()", deep),
        ] {
            let (verdict, _) = judge_with_functions(sql, &enforce(), &functions);
            assert_eq!(
                refusal(&verdict),
                Some(("unparsable", "SM004")),
                "{sql}: {:?}",
                verdict.reports
            );
            let (verdict, _) = judge_with_functions(sql, &allow, &functions);
            assert!(verdict.refusal.is_none(), "{sql}: {:?}", verdict.reports);
        }
        let (verdict, _) = judge_with_functions("SELECT py()", &enforce(), &[]);
        assert!(
            verdict.refusal.is_none(),
            "an unknown name calls nothing the proxy could read"
        );
    }
}
