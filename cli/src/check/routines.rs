//! With `--database-url`: what a statement's routines run (the functions it calls, the
//! triggers its writes fire, the views it refreshes or reads into a table, the event
//! triggers its DDL fires), read from the database and decided by the proxy's own
//! judgement of them (`proxy::guard::judge_routines`), its catalog questions answered
//! round by round as the run's catalog answers them (`RunCatalog::answer`: the database,
//! where the run has not changed what it would say), as the proxy asks the server on a
//! client's session.

use std::collections::HashMap;

use policy::report::{acknowledgement, Level, Report};
use policy::{Catalog, Settings, Severity};
use proxy::catalog::{Answer, Question};
use proxy::guard::{judge_routines, Facts, MAX_CALL_DEPTH};

use parse::ParsedStatement;

use super::run_catalog::RunCatalog;
use super::Problem;

/// The problems of what `parsed`'s routines run, at `position` (its line and column),
/// when the catalog has a database; none without one.
pub fn problems(
    parsed: &ParsedStatement,
    catalog: &RunCatalog,
    settings: &Settings,
    file: &str,
    position: (usize, usize),
) -> Vec<Problem> {
    if catalog.database().is_none() {
        return Vec::new();
    }
    let mut answers: HashMap<Question, Answer> = HashMap::new();
    // One level of definitions per round, as the proxy asks them; a few more for the
    // questions the nested statements' rules ask. What is still unknown after the last
    // round is judged unknown (as the proxy judges it then: strictly).
    let rounds = MAX_CALL_DEPTH + 4;
    for round in 0..=rounds {
        let facts = Facts {
            settings,
            transaction: catalog.transaction(),
            standard_strings: true,
            answers: &answers,
            timezone: catalog.timezone(),
            server_version_num: catalog.server_version_num(),
            superuser: catalog.is_superuser(),
        };
        let (reports, _, missing) = judge_routines(parsed, &facts, catalog.transaction(), catalog.functions());
        if missing.is_empty() || round == rounds {
            return reports.iter().map(|report| problem(report, file, position)).collect();
        }
        for question in missing {
            let answer = catalog.answer(question.clone());
            answers.insert(question, answer);
        }
    }
    Vec::new()
}

/// A report of the proxy's judgement as `check` reports it.
fn problem(report: &Report, file: &str, (line, column): (usize, usize)) -> Problem {
    let (rule, message, counts) = match acknowledgement(report) {
        Some((rule, reason)) => (rule.to_string(), format!("acknowledged: {reason}"), false),
        None => {
            let known = report
                .message
                .split_once(": ")
                .filter(|(rule, _)| policy::RULES.iter().any(|known| known.id == *rule));
            match known {
                Some((rule, message)) => (rule.to_string(), message.to_string(), true),
                None => (policy::unchecked::RULE.to_string(), report.message.clone(), true),
            }
        }
    };
    // The rule reference the extension and the proxy add to a hint is `check`'s own
    // `docs:` line.
    let hint = report.hint.clone().unwrap_or_default();
    let hint = match hint.rsplit_once("\nRule reference: ") {
        Some((hint, _)) => hint.to_string(),
        None if hint.starts_with("Rule reference: ") => String::new(),
        None => hint,
    };
    Problem {
        file: file.to_string(),
        line: Some(line),
        column: Some(column),
        severity: if report.level == Level::Error {
            Severity::Error
        } else {
            Severity::Warning
        },
        sqlstate: (report.sqlstate != "00000").then_some(report.sqlstate),
        rule,
        message,
        detail: report.detail.clone().unwrap_or_default(),
        hint,
        lock: None,
        unchecked: false,
        counts,
    }
}
