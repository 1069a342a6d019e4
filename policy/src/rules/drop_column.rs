//! DROP COLUMN destroys data that cannot be brought back, and breaks running code that
//! still reads or writes the column. It goes through only when someone says it is meant.

use super::{alter_table_sql, unless_new, Category, Rule, Scope};
use crate::finding::{Finding, SQLSTATE_DESTRUCTIVE};
use crate::model::{AlterAction, Statement, Stmt};
use crate::sql;

pub const RULE: Rule = Rule {
    id: "drop_column",
    category: Category::Destructive,
    summary: "DROP COLUMN destroys data; allowed only when acknowledged",
    check,
};

fn check(statement: &Statement, scope: &Scope) -> Vec<Finding> {
    let Stmt::AlterTable(alter) = &statement.stmt else {
        return vec![];
    };
    let table = &alter.table;
    let findings = alter
        .actions
        .iter()
        .filter_map(|action| match action {
            AlterAction::DropColumn { column, if_exists } => Some((sql::ident(column), *if_exists)),
            _ => None,
        })
        .map(|(column, if_exists)| {
            let if_exists = if if_exists { "IF EXISTS " } else { "" };
            Finding::new(
                RULE.id,
                SQLSTATE_DESTRUCTIVE,
                None,
                format!("DROP COLUMN {table}.{column} destroys its data"),
                format!(
                    "The column's values cannot be recovered once this commits, and running code that still \
                     reads or writes {column} fails (an ORM that lists every column in its INSERTs and SELECTs \
                     fails on {table} as a whole)."
                ),
                format!(
                    "First deploy code that no longer uses {column} (Rails: ignored_columns; Django: remove the \
                     field in code, then drop it). Then acknowledge the drop on the statement:\n    \
                     -- safe_migrations:allow {id} -- <why the data is no longer needed>\n    \
                     {} DROP COLUMN {if_exists}{column};\n\
                     or add {id} to the role's safe_migrations.allow.",
                    alter_table_sql(alter),
                    id = RULE.id
                ),
            )
        })
        .collect();
    unless_new(findings, table, scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlterTable;
    use crate::rules::testing::*;

    fn drop_column(column: &str, if_exists: bool) -> AlterAction {
        AlterAction::DropColumn {
            column: column.into(),
            if_exists,
        }
    }

    #[test]
    fn drop_column_err() {
        let finding = only(findings(
            &RULE,
            alter("users", vec![drop_column("legacy_id", false)]),
            &TestCatalog::default(),
        ));
        assert_eq!(
            finding.text(),
            "drop_column: DROP COLUMN users.legacy_id destroys its data"
        );
        assert_eq!(finding.sqlstate, "SM003");
        assert_eq!(finding.lock, None);
        assert!(finding.hint.contains(
            "-- safe_migrations:allow drop_column -- <why the data is no longer needed>\n    \
             ALTER TABLE users DROP COLUMN legacy_id;"
        ));
    }

    #[test]
    fn column_of_table_created_in_same_transaction_ok() {
        let stmt = alter("users", vec![drop_column("legacy_id", false)]);
        assert!(findings(&RULE, stmt, &TestCatalog::default().new_table("users")).is_empty());
    }

    #[test]
    fn if_exists_only_quoted_schema_qualified_and_several_columns() {
        let stmt = Stmt::AlterTable(AlterTable {
            table: q("Crm.users"),
            only: true,
            if_exists: true,
            actions: vec![
                drop_column("Fax", true),
                AlterAction::SetDefault { column: "a".into() },
                drop_column("pager", false),
            ],
            ..AlterTable::default()
        });
        let found = findings(&RULE, stmt, &TestCatalog::default());
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].text(),
            "drop_column: DROP COLUMN \"Crm\".users.\"Fax\" destroys its data"
        );
        assert!(found[0]
            .hint
            .contains("ALTER TABLE IF EXISTS ONLY \"Crm\".users DROP COLUMN IF EXISTS \"Fax\";"));
    }

    #[test]
    fn acknowledged_drop_passes_decide() {
        let source = "-- safe_migrations:allow drop_column -- replaced by users.external_id in v42\n\
                      ALTER TABLE users DROP COLUMN legacy_id;";
        let decision = crate::rules::decide(
            &statement(alter("users", vec![drop_column("legacy_id", false)]), source),
            &Default::default(),
            &enforce(),
            &TestCatalog::default(),
        );
        assert!(decision.findings.is_empty(), "{:#?}", decision.findings);
        assert_eq!(decision.acknowledged.len(), 1);
        assert_eq!(decision.acknowledged[0].reason, "replaced by users.external_id in v42");
    }
}
