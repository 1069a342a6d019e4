//! The policy's catalog questions, answered by the server on the client's own session.
//!
//! `decide` asks synchronously; the server answers asynchronously. So the session runs
//! the decision with what it knows, collects the questions that had no answer yet,
//! asks the server all of them in one hidden batch, and decides again.

use std::cell::RefCell;
use std::collections::HashMap;

use policy::catalog::{is_not_null_check, Catalog, Volatility};
use policy::sql::literal;
use policy::{QualifiedName, TypeName};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Question {
    ColumnType(QualifiedName, String),
    Volatility(QualifiedName),
    NotNullCheck(QualifiedName, String),
    EstimatedRows(QualifiedName),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Type(Option<TypeName>),
    Volatility(Option<Volatility>),
    Bool(Option<bool>),
    Rows(Option<f64>),
}

type Rows = Vec<Vec<Option<String>>>;

fn regclass(table: &QualifiedName) -> String {
    format!("pg_catalog.to_regclass({})", literal(&table.sql()))
}

impl Question {
    /// The hidden query that answers it (never fails on a missing object: no rows/NULL).
    pub fn sql(&self) -> String {
        match self {
            Question::ColumnType(table, column) => format!(
                "SELECT n.nspname, COALESCE(e.typname, t.typname), a.atttypmod, e.oid IS NOT NULL \
                 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_catalog.pg_type e ON t.typcategory = 'A' AND e.oid = t.typelem \
                 JOIN pg_catalog.pg_namespace n ON n.oid = COALESCE(e.typnamespace, t.typnamespace) \
                 WHERE a.attrelid = {} AND a.attname = {} AND NOT a.attisdropped",
                regclass(table),
                literal(column)
            ),
            Question::Volatility(function) => format!(
                "SELECT max(CASE p.provolatile WHEN 'v' THEN 3 WHEN 's' THEN 2 WHEN 'i' THEN 1 END) \
                 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                 WHERE p.proname = {} AND {}",
                literal(&function.name),
                match &function.schema {
                    Some(schema) => format!("n.nspname = {}", literal(schema)),
                    None => "pg_catalog.pg_function_is_visible(p.oid)".to_string(),
                }
            ),
            Question::NotNullCheck(table, _) => format!(
                "SELECT pg_catalog.pg_get_constraintdef(c.oid) FROM pg_catalog.pg_constraint c \
                 WHERE c.conrelid = {} AND c.contype = 'c' AND c.convalidated",
                regclass(table)
            ),
            Question::EstimatedRows(table) => format!(
                "SELECT c.reltuples FROM pg_catalog.pg_class c WHERE c.oid = {}",
                regclass(table)
            ),
        }
    }

    /// The answer from the query's rows (`None`: the query failed).
    pub fn answer(&self, rows: Option<Rows>) -> Answer {
        let first = |rows: &Rows, column: usize| rows.first().and_then(|row| row.get(column).cloned().flatten());
        match self {
            Question::ColumnType(..) => Answer::Type(rows.and_then(|rows| {
                let typname = first(&rows, 1)?;
                let typmod = first(&rows, 2)?.parse().ok()?;
                let schema = first(&rows, 0);
                let array = first(&rows, 3).as_deref() == Some("t");
                Some(TypeName::from_catalog(schema.as_deref(), &typname, typmod, array))
            })),
            Question::Volatility(_) => Answer::Volatility(rows.and_then(|rows| match first(&rows, 0)?.as_str() {
                "3" => Some(Volatility::Volatile),
                "2" => Some(Volatility::Stable),
                "1" => Some(Volatility::Immutable),
                _ => None,
            })),
            Question::NotNullCheck(_, column) => Answer::Bool(rows.map(|rows| {
                rows.iter()
                    .filter_map(|row| row.first().cloned().flatten())
                    .any(|definition| is_not_null_check(&definition, column))
            })),
            Question::EstimatedRows(_) => Answer::Rows(rows.and_then(|rows| first(&rows, 0)?.parse().ok())),
        }
    }
}

/// Is `a` the same table as `b`, as far as names tell (an unqualified name matches any schema)?
pub fn same_table(a: &QualifiedName, b: &QualifiedName) -> bool {
    a.name == b.name && (a.schema == b.schema || a.schema.is_none() || b.schema.is_none())
}

/// What the session knows; questions without an answer are recorded in `missing`.
pub struct SessionCatalog<'a> {
    /// Tables created in the current transaction (tracked by the proxy).
    pub created: &'a [QualifiedName],
    pub answers: &'a HashMap<Question, Answer>,
    pub timezone: Option<String>,
    pub server_version_num: Option<u32>,
    pub missing: RefCell<Vec<Question>>,
}

impl SessionCatalog<'_> {
    fn ask(&self, question: Question) -> Option<&Answer> {
        let answer = self.answers.get(&question);
        if answer.is_none() {
            let mut missing = self.missing.borrow_mut();
            if !missing.contains(&question) {
                missing.push(question);
            }
        }
        answer
    }
}

impl Catalog for SessionCatalog<'_> {
    fn created_in_transaction(&self, table: &QualifiedName) -> Option<bool> {
        Some(self.created.iter().any(|created| same_table(created, table)))
    }

    fn column_type(&self, table: &QualifiedName, column: &str) -> Option<TypeName> {
        match self.ask(Question::ColumnType(table.clone(), column.to_string())) {
            Some(Answer::Type(answer)) => answer.clone(),
            _ => None,
        }
    }

    fn function_volatility(&self, name: &QualifiedName) -> Option<Volatility> {
        match self.ask(Question::Volatility(name.clone())) {
            Some(Answer::Volatility(answer)) => *answer,
            _ => None,
        }
    }

    fn has_validated_not_null_check(&self, table: &QualifiedName, column: &str) -> Option<bool> {
        match self.ask(Question::NotNullCheck(table.clone(), column.to_string())) {
            Some(Answer::Bool(answer)) => *answer,
            _ => None,
        }
    }

    fn estimated_rows(&self, table: &QualifiedName) -> Option<f64> {
        match self.ask(Question::EstimatedRows(table.clone())) {
            Some(Answer::Rows(answer)) => *answer,
            _ => None,
        }
    }

    fn server_version_num(&self) -> Option<u32> {
        self.server_version_num
    }

    fn timezone(&self) -> Option<String> {
        self.timezone.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_types_come_from_the_catalog_row() {
        let question = Question::ColumnType(QualifiedName::bare("t"), "c".into());
        let rows = vec![vec![
            Some("pg_catalog".to_string()),
            Some("varchar".to_string()),
            Some("14".to_string()),
            Some("f".to_string()),
        ]];
        let Answer::Type(Some(type_name)) = question.answer(Some(rows)) else {
            panic!("no type");
        };
        assert_eq!(type_name, TypeName::from_catalog(None, "varchar", 14, false));
        assert_eq!(question.answer(None), Answer::Type(None));
        assert_eq!(question.answer(Some(vec![])), Answer::Type(None));
    }

    #[test]
    fn names_are_quoted_in_questions() {
        let question = Question::EstimatedRows(QualifiedName::new(Some("Sales"), "o'rders"));
        assert!(
            question.sql().contains("to_regclass('\"Sales\".\"o''rders\"')"),
            "{}",
            question.sql()
        );
    }

    #[test]
    fn unanswered_questions_are_recorded_once() {
        let answers = HashMap::new();
        let catalog = SessionCatalog {
            created: &[],
            answers: &answers,
            timezone: None,
            server_version_num: None,
            missing: RefCell::new(Vec::new()),
        };
        let t = QualifiedName::bare("t");
        assert_eq!(catalog.estimated_rows(&t), None);
        assert_eq!(catalog.estimated_rows(&t), None);
        assert_eq!(catalog.missing.borrow().len(), 1);
        assert_eq!(catalog.created_in_transaction(&t), Some(false));
    }
}
