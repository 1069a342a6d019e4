//! Column definitions and constraints, shared by CREATE TABLE and ALTER TABLE.

use pg_query::protobuf::{self, ConstrType, Node};
use pg_query::NodeEnum;
use policy::model::{ColumnDef, Constraint, ConstraintKind};
use policy::sql::ForeignKeyOptions;

use super::{expr, names, types, Input};

pub fn column_def(column: &protobuf::ColumnDef, input: &Input) -> ColumnDef {
    let constraints: Vec<&protobuf::Constraint> = column
        .constraints
        .iter()
        .filter_map(|node| match node.node.as_ref()? {
            NodeEnum::Constraint(constraint) => Some(constraint.as_ref()),
            _ => None,
        })
        .collect();
    let mut def = ColumnDef {
        name: column.colname.clone(),
        type_name: types::type_name(column.type_name.as_ref()),
        not_null: column.is_not_null,
        ..ColumnDef::default()
    };
    // The inline REFERENCES that a following DEFERRABLE / INITIALLY DEFERRED qualifies.
    let mut last_foreign_key: Option<(usize, ForeignKeyOptions)> = None;
    for constraint in constraints.iter() {
        let attribute = |options: &mut ForeignKeyOptions| match constraint.contype() {
            ConstrType::ConstrAttrDeferrable => options.deferrable = true,
            ConstrType::ConstrAttrNotDeferrable => options.deferrable = false,
            ConstrType::ConstrAttrDeferred => options.initially_deferred = true,
            ConstrType::ConstrAttrImmediate => options.initially_deferred = false,
            _ => {}
        };
        match constraint.contype() {
            ConstrType::ConstrNotnull => def.not_null = true,
            ConstrType::ConstrNull => def.not_null = false,
            ConstrType::ConstrDefault => {
                if let Some(raw) = constraint.raw_expr.as_deref() {
                    def.default = Some(expr::default_expr(raw, constraint.location, input));
                }
            }
            ConstrType::ConstrGenerated => def.generated_stored = constraint.generated_kind != "v",
            ConstrType::ConstrIdentity => def.identity = true,
            // DEFERRABLE, INITIALLY DEFERRED ... qualify the constraint before them.
            ConstrType::ConstrAttrDeferrable
            | ConstrType::ConstrAttrDeferred
            | ConstrType::ConstrAttrNotDeferrable
            | ConstrType::ConstrAttrImmediate => {
                if let Some((index, options)) = last_foreign_key.as_mut() {
                    attribute(options);
                    if let ConstraintKind::ForeignKey { options_sql, .. } = &mut def.constraints[*index].kind {
                        *options_sql = options.sql();
                    }
                }
            }
            ConstrType::ConstrAttrEnforced | ConstrType::ConstrAttrNotEnforced => {}
            _ => {
                last_foreign_key = (constraint.contype() == ConstrType::ConstrForeign)
                    .then(|| (def.constraints.len(), foreign_key_options(constraint)));
                def.constraints
                    .push(self::constraint(constraint, Some(&column.colname), input));
            }
        }
    }
    def
}

/// A table or column constraint; `column` is the column an inline constraint belongs to.
pub fn constraint(constraint: &protobuf::Constraint, column: Option<&str>, input: &Input) -> Constraint {
    let own_column = || column.map(str::to_owned).into_iter().collect::<Vec<_>>();
    let keys = |nodes: &[Node]| {
        if nodes.is_empty() {
            own_column()
        } else {
            names::strings(nodes)
        }
    };
    let kind = match constraint.contype() {
        ConstrType::ConstrForeign => ConstraintKind::ForeignKey {
            columns: keys(&constraint.fk_attrs),
            referenced_table: names::range_var(constraint.pktable.as_ref()),
            referenced_columns: names::strings(&constraint.pk_attrs),
            options_sql: foreign_key_options(constraint).sql(),
        },
        ConstrType::ConstrCheck => ConstraintKind::Check {
            expr_sql: expr::parenthesized(constraint.raw_expr.as_deref(), constraint.location, input),
        },
        contype @ (ConstrType::ConstrPrimary | ConstrType::ConstrUnique) => ConstraintKind::Unique {
            primary_key: contype == ConstrType::ConstrPrimary,
            columns: keys(&constraint.keys),
            using_index: (!constraint.indexname.is_empty()).then(|| constraint.indexname.clone()),
        },
        ConstrType::ConstrExclusion => ConstraintKind::Exclusion,
        ConstrType::ConstrNotnull => ConstraintKind::NotNull {
            column: names::strings(&constraint.keys)
                .pop()
                .or_else(|| column.map(str::to_owned)),
        },
        _ => ConstraintKind::Other,
    };
    Constraint {
        name: (!constraint.conname.is_empty()).then(|| constraint.conname.clone()),
        kind,
        // The grammar sets initially_valid = !skip_validation; NOT VALID is the skip.
        not_valid: constraint.skip_validation,
    }
}

/// The match type, referential actions and deferrability of a foreign key, in the
/// shared form both adapters print (`policy::sql::ForeignKeyOptions`).
fn foreign_key_options(constraint: &protobuf::Constraint) -> ForeignKeyOptions {
    let code = |text: &str, default: char| text.chars().next().unwrap_or(default);
    ForeignKeyOptions {
        match_type: code(&constraint.fk_matchtype, 's'),
        on_update: code(&constraint.fk_upd_action, 'a'),
        on_delete: code(&constraint.fk_del_action, 'a'),
        deferrable: constraint.deferrable,
        initially_deferred: constraint.initdeferred,
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::stmt;
    use policy::model::{AlterAction, ColumnDef, Constraint, ConstraintKind};
    use policy::{QualifiedName, Stmt};

    fn added_column(sql: &str) -> ColumnDef {
        match stmt(sql) {
            Stmt::AlterTable(alter) => match &alter.actions[..] {
                [AlterAction::AddColumn { column, .. }] => column.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn not_null_default_identity_generated() {
        let column = added_column("ALTER TABLE t ADD COLUMN c integer NOT NULL DEFAULT 0");
        assert!(column.not_null);
        assert_eq!(column.default.unwrap().sql, "0");
        let column = added_column("ALTER TABLE t ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY");
        assert!(column.identity);
        assert!(!column.not_null);
        let column = added_column("ALTER TABLE t ADD COLUMN total numeric GENERATED ALWAYS AS (a * b) STORED");
        assert!(column.generated_stored);
        let column = added_column("ALTER TABLE t ADD COLUMN c text NULL");
        assert!(!column.not_null);
        assert!(column.constraints.is_empty());
    }

    #[test]
    fn inline_references_is_a_foreign_key_on_the_column() {
        let column = added_column(
            r#"ALTER TABLE "orders" ADD COLUMN "user_id" bigint NULL CONSTRAINT "orders_user_fk" REFERENCES "auth"."Users" ("id") ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED"#,
        );
        assert_eq!(
            column.constraints,
            vec![Constraint {
                name: Some("orders_user_fk".into()),
                kind: ConstraintKind::ForeignKey {
                    columns: vec!["user_id".into()],
                    referenced_table: QualifiedName::new(Some("auth"), "Users"),
                    referenced_columns: vec!["id".into()],
                    options_sql: "ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED".into(),
                },
                not_valid: false,
            }]
        );
    }

    #[test]
    fn inline_check_unique_primary_key() {
        let column = added_column("ALTER TABLE t ADD COLUMN c int CHECK ( c > 0 ) UNIQUE PRIMARY KEY");
        let kinds: Vec<ConstraintKind> = column.constraints.into_iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ConstraintKind::Check {
                    expr_sql: "c > 0".into()
                },
                ConstraintKind::Unique {
                    primary_key: false,
                    columns: vec!["c".into()],
                    using_index: None
                },
                ConstraintKind::Unique {
                    primary_key: true,
                    columns: vec!["c".into()],
                    using_index: None
                },
            ]
        );
    }
}
