//! DROP TABLE destroys data that cannot be brought back, and breaks running code that still
//! uses the table. It goes through only when someone says it is meant.

use super::{Category, Rule, Scope};
use crate::finding::{Finding, SQLSTATE_DESTRUCTIVE};
use crate::model::{Drop, ObjectKind, Statement, Stmt};

pub const RULE: Rule = Rule {
    id: "drop_table",
    category: Category::Destructive,
    summary: "DROP TABLE destroys data; allowed only when acknowledged",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::Drop(Drop {
        kind: ObjectKind::Table,
        objects,
        if_exists,
        cascade,
    }) = &statement.stmt
    else {
        return vec![];
    };
    let if_exists = if *if_exists { "IF EXISTS " } else { "" };
    let cascade = if *cascade {
        " CASCADE also drops the views and foreign keys that depend on it."
    } else {
        ""
    };
    objects
        .iter()
        .filter(|table| !scope.is_new_table(table))
        .map(|table| {
            Finding::new(
                RULE.id,
                SQLSTATE_DESTRUCTIVE,
                None,
                format!("DROP TABLE {table} destroys its data"),
                format!(
                    "The rows of {table} cannot be recovered once this commits, and running code that still \
                     uses {table} fails.{cascade}"
                ),
                format!(
                    "First deploy code that no longer uses {table}. Then acknowledge the drop on the statement:\n    \
                     -- safe_migrations:allow {id} -- <why the data is no longer needed>\n    \
                     DROP TABLE {if_exists}{table};\n\
                     or add {id} to the role's safe_migrations.allow.",
                    id = RULE.id
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::*;

    fn drop(kind: ObjectKind, tables: &[&str]) -> Stmt {
        Stmt::Drop(Drop {
            kind,
            objects: tables.iter().map(|t| q(t)).collect(),
            if_exists: false,
            cascade: false,
        })
    }

    #[test]
    fn drop_table_err() {
        let finding = only(findings(
            &RULE,
            drop(ObjectKind::Table, &["audit_log"]),
            &TestCatalog::default(),
        ));
        assert_eq!(finding.text(), "drop_table: DROP TABLE audit_log destroys its data");
        assert_eq!(finding.sqlstate, "SM003");
        assert!(finding.hint.contains(
            "-- safe_migrations:allow drop_table -- <why the data is no longer needed>\n    DROP TABLE audit_log;"
        ));
    }

    #[test]
    fn table_created_in_same_transaction_ok() {
        let catalog = TestCatalog::default().new_table("tmp_import");
        assert!(findings(&RULE, drop(ObjectKind::Table, &["tmp_import"]), &catalog).is_empty());
    }

    #[test]
    fn several_tables_if_exists_cascade_quoted_schema_qualified() {
        let stmt = Stmt::Drop(Drop {
            kind: ObjectKind::Table,
            objects: vec![q("Old.Events"), q("fresh"), q("b")],
            if_exists: true,
            cascade: true,
        });
        let found = findings(&RULE, stmt, &TestCatalog::default().new_table("fresh"));
        assert_eq!(found.len(), 2);
        assert!(found[0].hint.contains("DROP TABLE IF EXISTS \"Old\".\"Events\";"));
        assert!(found[0].detail.contains("CASCADE also drops"));
    }

    #[test]
    fn drop_index_or_view_is_not_this_rule() {
        for kind in [ObjectKind::Index, ObjectKind::View] {
            assert!(findings(&RULE, drop(kind, &["x"]), &TestCatalog::default()).is_empty());
        }
    }

    #[test]
    fn role_allow_list_passes_decide() {
        let settings = crate::settings::Settings {
            allow: ["drop_table".to_string()].into(),
            ..enforce()
        };
        let decision = crate::rules::decide(
            &statement(drop(ObjectKind::Table, &["audit_log"]), "DROP TABLE audit_log"),
            &Default::default(),
            &settings,
            &TestCatalog::default(),
        );
        assert!(decision.findings.is_empty());
    }
}
