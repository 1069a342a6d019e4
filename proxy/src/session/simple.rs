//! The simple-query path: a Query decided, then sent on as it is, capped or refused; and
//! a FunctionCall, which runs at once too.

use crate::clean_verdicts::rememberable_shape;
use crate::guard::{self, unchecked, unchecked_report, Refusal, Unchecked};
use crate::lock_timeout::rewrite;
use crate::messages::function_call::{function_oid, is_user_defined, SET_CONFIG_OID};
use crate::messages::ready_for_query::TransactionStatus;
use crate::messages::{query, Message};
use crate::tracker::{Expect, Owner};

use policy::rules::lock_timeout::Retrying;

use super::retries::string_may_be_retried;
use super::{Session, SessionError};

impl Session {
    pub(super) async fn simple_query(&mut self, message: Message) -> Result<(), SessionError> {
        self.catch_up_with_the_server().await?;
        self.settle_restore().await?;
        self.aborted_by_hidden_work = None;
        self.verify_routine_locks().await?;
        if let Some(error) = self.take_abort_by_hidden_work() {
            // The client's cancel met the proxy's question: the client's statement gets it.
            self.answer_with_server_error(error);
            return Ok(());
        }
        self.lock_hold_warn_if_due();
        self.forget_tables_of_ended_transaction();
        let text = query::text(&message).map_err(SessionError::Client)?;
        let shape = rememberable_shape(text);
        if self.passed_before(text) || shape.as_ref().is_some_and(|shape| self.passed_before(&shape.text)) {
            self.send(&message, Owner::Client, Expect::Query);
            return Ok(());
        }
        let sql = text.to_string();
        let parsed = match self.parse_as_the_server_would(&sql) {
            Ok(parsed) => parsed,
            Err((report, allowable)) => match unchecked(report, &self.settings, allowable) {
                Unchecked::Pass(warning) => {
                    self.send_notices(warning.into_iter().collect()).await?;
                    self.send(&message, Owner::Client, Expect::Query);
                    return Ok(());
                }
                Unchecked::Refuse(report) => {
                    if let Some(error) = self.server_syntax_error(&sql, None).await? {
                        self.answer_with_server_error(error);
                        return Ok(());
                    }
                    let refusal = Refusal::new(policy::unchecked::RULE, &sql);
                    self.refuse_query(vec![report], refusal);
                    return Ok(());
                }
            },
        };
        if self.nothing_will_run(&parsed) {
            self.send(&message, Owner::Client, Expect::Query);
            return Ok(());
        }
        let verdict = self
            .judge_remembered(&sql, shape.map(|shape| shape.text), &parsed)
            .await?;
        if let Some(error) = self.take_abort_by_hidden_work() {
            self.answer_with_server_error(error);
            return Ok(());
        }
        if let Some(refusal) = verdict.refusal.clone() {
            if let Some(error) = self.server_syntax_error(&sql, Some(&parsed)).await? {
                self.answer_with_server_error(error);
                return Ok(());
            }
            self.log_acknowledgements(&verdict.reports, &sql);
            self.refuse_query(verdict.reports, refusal);
            return Ok(());
        }
        self.log_acknowledgements(&verdict.reports, &sql);
        self.send_notices(verdict.reports).await?;
        if let Some(error) = self.take_abort_by_hidden_work() {
            self.answer_with_server_error(error);
            return Ok(());
        }
        // Locks a string's statements take are released when it is undone to run again.
        let held_before = if verdict.retrying.iter().any(Option::is_some) {
            self.transaction.locks().to_vec()
        } else {
            Vec::new()
        };
        // The statements run as judged: COMMITs, drops and renames included.
        self.transaction.ran_as(verdict.transaction.clone());
        if parsed
            .iter()
            .any(|parsed| matches!(parsed.statement.stmt, policy::Stmt::Transaction(_)))
        {
            // Where its BEGIN or COMMIT takes the session before the answer comes.
            self.tracker.heading = Some(match verdict.transaction.status() {
                policy::TransactionStatus::Idle => TransactionStatus::Idle,
                _ => TransactionStatus::InBlock,
            });
        }
        self.lock_hold.routine_locks_unverified |= verdict.locks_in_routines;
        let caps = &verdict.caps;
        match &caps[..] {
            caps if caps.iter().all(Option::is_none) => self.send(&message, Owner::Client, Expect::Query),
            [Some(cap)] if self.tracker.idle() => {
                let retrying = verdict.retrying.first().cloned().flatten();
                self.send_capped_alone(message, *cap, retrying).await?
            }
            caps if self.tracker.idle()
                && self.tracker.status != TransactionStatus::Failed
                && verdict.retrying.iter().any(Option::is_some)
                && string_may_be_retried(&parsed, self.tracker.status == TransactionStatus::InBlock) =>
            {
                let starts: Vec<usize> = parsed.iter().map(|statement| statement.offset).collect();
                let rewritten = rewrite(&sql, &starts, caps);
                // Judged with the locks of the string's statements before it; run again
                // whole, only those held before the string count.
                let retrying: Vec<Option<Retrying>> = verdict
                    .retrying
                    .iter()
                    .map(|retrying| {
                        retrying
                            .clone()
                            .map(|retrying| retrying.holding(&held_before, &self.settings))
                    })
                    .collect();
                self.run_string_with_retries(rewritten, &parsed, &retrying).await?
            }
            _ => self.send_rewritten(&sql, &parsed, caps),
        }
        Ok(())
    }

    pub(super) async fn function_call(&mut self, message: Message) -> Result<(), SessionError> {
        let oid = function_oid(&message).map_err(SessionError::Client)?;
        if oid == SET_CONFIG_OID {
            let report = guard::policy_change_report("A FunctionCall of set_config");
            self.refuse_query(
                vec![report],
                Refusal {
                    rule: "policy_change".into(),
                    statement: "FunctionCall set_config".into(),
                    ends_transaction: false,
                },
            );
        } else if is_user_defined(oid) {
            // Built-in functions (the large-object calls libpq makes this way) run no
            // SQL of the caller's; a user-defined one is a routine whose body the
            // proxy does not read on this path: fail closed.
            match unchecked_report(guard::function_call_unchecked(oid), &self.settings) {
                Unchecked::Pass(warning) => {
                    self.send_notices(warning.into_iter().collect()).await?;
                    self.send(&message, Owner::Client, Expect::Query);
                }
                Unchecked::Refuse(report) => self.refuse_query(
                    vec![report],
                    Refusal {
                        rule: policy::unchecked::RULE.into(),
                        statement: format!("FunctionCall of oid {oid}"),
                        ends_transaction: false,
                    },
                ),
            }
        } else {
            self.send(&message, Owner::Client, Expect::Query);
        }
        Ok(())
    }
}
