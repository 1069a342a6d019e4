//! The decision on a client's statements: read as the server would read them, judged
//! by the guard with the server's answers to its catalog questions, and a verdict that
//! lets a statement through unchanged remembered.

use std::collections::HashMap;

use policy::model::TransactionKind;
use policy::report::Report;
use policy::{Stmt, Transaction};

use crate::catalog::{Answer, Question};
use crate::clean_verdicts::passes_unchanged;
use crate::guard::{self, Facts, Verdict};
use crate::messages::ready_for_query::TransactionStatus;
use ::parse::{parse_sql, reads_the_same_with_nonstandard_strings, ParsedStatement};

use super::{Session, SessionError};

impl Session {
    /// Tables created in the open transaction, and locks it holds, are facts a verdict
    /// depends on too: verdicts are remembered, and used, only without them.
    fn transaction_adds_no_facts(&self) -> bool {
        !self.created_tables_count() || (self.transaction.created_nothing() && self.transaction.locks().is_empty())
    }

    /// Did `sql` pass unchanged before, under the session's present facts?
    pub(super) fn passed_before(&self, sql: &str) -> bool {
        if self.nonstandard_backslashes(sql) {
            return false;
        }
        let in_transaction_block = self.tracker.status.in_block();
        self.transaction_adds_no_facts() && self.clean.passed(sql, in_transaction_block, &self.tracker.timezone)
    }

    /// `sql` split and parsed as the server will read it, or why the proxy cannot.
    ///
    /// The grammar is libpg_query's; the session's `standard_conforming_strings` (which
    /// the server reports in ParameterStatus) decides what a backslash in a '...' literal
    /// does. With it off, a literal can end where the proxy's reading of it does not and
    /// hide a statement inside it. The rules, and the lexer that finds function calls,
    /// read literals as standard strings, so such a statement is judged only when both
    /// readings give the same tree; otherwise the proxy cannot check it.
    /// The error says whether `unparsable = allow` may let the text through (syntax the
    /// proxy lacks) or not (a text the server may read another way).
    pub(super) fn parse_as_the_server_would(&self, sql: &str) -> Result<Vec<ParsedStatement>, (Report, bool)> {
        if self.nonstandard_backslashes(sql) && !reads_the_same_with_nonstandard_strings(sql) {
            return Err((guard::nonstandard_strings(), false));
        }
        parse_sql(sql).map_err(|err| (guard::unparsable(&err), true))
    }

    /// Could a backslash in `sql` mean something else to the server than to the proxy?
    fn nonstandard_backslashes(&self, sql: &str) -> bool {
        !self.standard_strings() && sql.contains('\\')
    }

    /// Is standard_conforming_strings surely on? The server reports a change only at
    /// the end of a batch or query, so with answers still to come it may already be off.
    fn standard_strings(&self) -> bool {
        self.tracker.standard_conforming_strings && self.tracker.idle()
    }

    /// In a failed transaction the server rejects every statement but one that ends it
    /// (COMMIT, ROLLBACK [TO SAVEPOINT], PREPARE TRANSACTION) before it runs, and with it
    /// the rest of its string: a message that starts with another statement runs
    /// nothing, and gets the server's 25P02 unjudged, as with the extension (whose hook
    /// is never called then). Only when every answer is in: a status still to come could
    /// be the end of that transaction.
    pub(super) fn nothing_will_run(&self, parsed: &[ParsedStatement]) -> bool {
        self.tracker.idle()
            && self.tracker.status == TransactionStatus::Failed
            && !parsed.first().is_some_and(|statement| {
                matches!(
                    statement.statement.stmt,
                    Stmt::Transaction(
                        TransactionKind::Commit
                            | TransactionKind::Rollback
                            | TransactionKind::RollbackToSavepoint(_)
                            | TransactionKind::Prepare
                    )
                )
            })
    }

    /// `judge`, remembering a verdict that lets `sql` through unchanged: by its shape
    /// (`sql` with parameters for its constants) when the shape passes too.
    pub(super) async fn judge_remembered(
        &mut self,
        sql: &str,
        shape: Option<String>,
        parsed: &[ParsedStatement],
    ) -> Result<Verdict, SessionError> {
        let in_transaction_block = self.tracker.status.in_block();
        // In a failed transaction nothing is decided in full (function bodies are not read).
        // What passes for a superuser (a policy change) may not after SET ROLE: a
        // superuser's verdicts are not remembered.
        let rememberable = self.tracker.status != TransactionStatus::Failed
            && self.transaction_adds_no_facts()
            && self.tracker.superuser != Some(true);
        let timezone = self.tracker.timezone.clone();
        let (verdict, asked_server) = self.judge(parsed).await?;
        if rememberable && !asked_server && passes_unchanged(&verdict) {
            match shape.filter(|shape| self.shape_passes(shape)) {
                Some(shape) => self.clean.remember(&shape, in_transaction_block, timezone),
                None => self.clean.remember(sql, in_transaction_block, timezone),
            }
        }
        Ok(verdict)
    }

    /// Does `shape` pass unchanged as it stands, parameters and all, without asking the
    /// server anything (with no tables created in the transaction: the caller's case)?
    fn shape_passes(&mut self, shape: &str) -> bool {
        if self.clean.shape_does_not_pass(shape) {
            return false;
        }
        let passes = parse_sql(shape).is_ok_and(|parsed| {
            let answers = HashMap::new();
            let transaction = Transaction::with_status(self.tracker.status);
            let facts = self.facts(&transaction, &answers);
            let (verdict, missing) = guard::judge(&parsed, &facts);
            missing.is_empty() && passes_unchanged(&verdict)
        });
        if !passes {
            self.clean.remember_shape_does_not_pass(shape);
        }
        passes
    }

    /// Decide the statements, asking the server what the rules want to know; true when
    /// it was asked.
    async fn judge(&mut self, parsed: &[ParsedStatement]) -> Result<(Verdict, bool), SessionError> {
        crate::metrics::STATEMENTS_JUDGED.add_n(parsed.len() as u64);
        let mut answers: HashMap<Question, Answer> = HashMap::new();
        let mut rounds = 0;
        loop {
            // As the last ReadyForQuery left it; what an ended transaction created is old.
            let mut transaction = self.transaction.clone();
            transaction.set_status(self.status_now());
            transaction.forget_ended();
            let (verdict, missing) = guard::judge(parsed, &self.facts(&transaction, &answers));
            rounds += 1;
            // One round per level of function calls, one for the questions of the last, and
            // one for the prepared statement an EXECUTE runs.
            if missing.is_empty() || rounds > guard::MAX_CALL_DEPTH + 3 {
                return Ok((verdict, rounds > 1));
            }
            let (explains, questions): (Vec<Question>, Vec<Question>) =
                missing.into_iter().partition(Question::is_explain);
            let (empties, questions): (Vec<Question>, Vec<Question>) =
                questions.into_iter().partition(Question::is_empty_relation);
            let sqls: Vec<String> = questions.iter().map(Question::sql).collect();
            let results = self.hidden_queries(&sqls).await?;
            for (question, rows) in questions.into_iter().zip(results) {
                let answer = question.answer(rows);
                answers.insert(question, answer);
            }
            for question in explains {
                let rows = self.explain(&question).await?;
                let answer = question.answer(rows);
                answers.insert(question, answer);
            }
            for question in empties {
                let rows = self.empty_relation(&question).await?;
                let answer = question.answer(rows);
                answers.insert(question, answer);
            }
        }
    }

    /// The verdict on a statement judged before (at its Parse), under the transaction as
    /// it stands now: the locks taken since. Without asking the server anything (it may
    /// be in the middle of the client's batch): what needs an answer counts as unknown,
    /// which the lock rules read strictly (the table is neither new nor small).
    pub(super) fn judge_again(&self, parsed: &[ParsedStatement]) -> Verdict {
        let answers = HashMap::new();
        let mut transaction = self.transaction.clone();
        transaction.set_status(self.status_now());
        guard::judge(parsed, &self.facts(&transaction, &answers)).0
    }

    fn facts<'a>(&'a self, transaction: &'a Transaction, answers: &'a HashMap<Question, Answer>) -> Facts<'a> {
        Facts {
            settings: &self.settings,
            transaction,
            standard_strings: self.standard_strings(),
            answers,
            timezone: self.tracker.timezone.clone(),
            server_version_num: self.server_version_num,
            superuser: self.tracker.superuser,
        }
    }

    /// The server's transaction status as the client's messages so far leave it: the
    /// last ReadyForQuery's, or where a BEGIN, COMMIT or ROLLBACK executed in a batch still
    /// unanswered takes it (drivers send BEGIN with the first statement of a transaction).
    pub(super) fn status_now(&self) -> TransactionStatus {
        self.tracker.heading.unwrap_or(self.tracker.status)
    }

    /// Outside a transaction block, the tables created in the last one are old tables
    /// now (as the extension's relcache says): forget them before the next message.
    pub(super) fn forget_tables_of_ended_transaction(&mut self) {
        self.transaction.set_status(self.status_now());
        self.transaction.forget_ended();
        if self.tracker.idle() {
            // Every answer is in: the transaction is over (its renames were judged), or a
            // COMMIT or ROLLBACK did not run and its renames stand.
            let aside = std::mem::take(&mut self.renames_set_aside);
            if self.tracker.status == TransactionStatus::Idle {
                self.transaction.forget_renames();
            } else {
                self.transaction.restore_renames(aside);
            }
        }
    }

    /// Do the tables in `created` still count as created in the running transaction?
    /// Inside a transaction block, and inside an extended-protocol batch (its implicit
    /// transaction lasts until Sync).
    fn created_tables_count(&self) -> bool {
        self.tracker.status.in_block() || self.transaction.implicit()
    }
}
