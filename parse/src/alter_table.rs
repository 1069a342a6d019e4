//! ALTER TABLE / INDEX / VIEW / MATERIALIZED VIEW / FOREIGN TABLE / SEQUENCE / TYPE and
//! their subcommands. Subcommands the model does not name keep the lock Postgres 15's
//! AlterTableGetLockLevel takes for them.

use pg_query::protobuf::{self, AlterTableType, Node, ObjectType};
use pg_query::NodeEnum;
use policy::model::{AlterAction, AlterTable, RelationKind, Using};
use policy::{LockLevel, Stmt, TypeName};

use super::{columns, names, types, Input};

pub fn alter_table(alter: &protobuf::AlterTableStmt, input: &Input) -> Stmt {
    let actions = alter
        .cmds
        .iter()
        .filter_map(|node| match node.node.as_ref()? {
            NodeEnum::AlterTableCmd(cmd) => Some(action(cmd, input)),
            _ => None,
        })
        .collect();
    Stmt::AlterTable(AlterTable {
        table: names::range_var(alter.relation.as_ref()),
        kind: relation_kind(alter.objtype()),
        only: alter.relation.as_ref().is_some_and(|relation| !relation.inh),
        if_exists: alter.missing_ok,
        actions,
    })
}

fn relation_kind(objtype: ObjectType) -> RelationKind {
    match objtype {
        ObjectType::ObjectIndex => RelationKind::Index,
        ObjectType::ObjectView => RelationKind::View,
        ObjectType::ObjectMatview => RelationKind::MaterializedView,
        ObjectType::ObjectForeignTable => RelationKind::ForeignTable,
        ObjectType::ObjectSequence => RelationKind::Sequence,
        ObjectType::ObjectType => RelationKind::Type,
        _ => RelationKind::Table,
    }
}

fn action(cmd: &protobuf::AlterTableCmd, input: &Input) -> AlterAction {
    let column = || cmd.name.clone();
    let def = cmd.def.as_deref().and_then(|def| def.node.as_ref());
    match (cmd.subtype(), def) {
        (AlterTableType::AtAddColumn, Some(NodeEnum::ColumnDef(def))) => AlterAction::AddColumn {
            column: columns::column_def(def, input),
            if_not_exists: cmd.missing_ok,
        },
        (AlterTableType::AtDropColumn, _) => AlterAction::DropColumn {
            column: column(),
            if_exists: cmd.missing_ok,
        },
        (AlterTableType::AtAlterColumnType, Some(NodeEnum::ColumnDef(def))) => {
            let new_type = types::type_name(def.type_name.as_ref());
            let using = using(def.raw_default.as_deref(), &cmd.name, &new_type);
            AlterAction::AlterColumnType {
                column: column(),
                new_type,
                using,
                collation: def.coll_clause.as_ref().map(|clause| names::dotted(&clause.collname)),
            }
        }
        (AlterTableType::AtSetNotNull, _) => AlterAction::SetNotNull { column: column() },
        (AlterTableType::AtDropNotNull, _) => AlterAction::DropNotNull { column: column() },
        (AlterTableType::AtColumnDefault, _) => AlterAction::SetDefault { column: column() },
        (AlterTableType::AtAddConstraint, Some(NodeEnum::Constraint(constraint))) => {
            AlterAction::AddConstraint(columns::constraint(constraint, None, input))
        }
        (AlterTableType::AtValidateConstraint, _) => AlterAction::ValidateConstraint { name: column() },
        (AlterTableType::AtDropConstraint, _) => AlterAction::DropConstraint {
            name: column(),
            if_exists: cmd.missing_ok,
        },
        (AlterTableType::AtSetTableSpace, _) => AlterAction::SetTablespace {
            tablespace: cmd.name.clone(),
        },
        (AlterTableType::AtSetLogged, _) => AlterAction::Rewrite {
            what: "SET LOGGED".to_string(),
        },
        (AlterTableType::AtSetUnLogged, _) => AlterAction::Rewrite {
            what: "SET UNLOGGED".to_string(),
        },
        (AlterTableType::AtSetAccessMethod, _) => AlterAction::Rewrite {
            what: format!("SET ACCESS METHOD {}", policy::sql::ident(&cmd.name))
                .trim_end()
                .to_string(),
        },
        (AlterTableType::AtAttachPartition, Some(NodeEnum::PartitionCmd(partition))) => AlterAction::AttachPartition {
            partition: names::range_var(partition.name.as_ref()),
        },
        (AlterTableType::AtDetachPartition, Some(NodeEnum::PartitionCmd(partition))) => AlterAction::DetachPartition {
            partition: names::range_var(partition.name.as_ref()),
            concurrently: partition.concurrent,
            finalize: false,
        },
        // FINALIZE completes an interrupted DETACH ... CONCURRENTLY, under its lock.
        (AlterTableType::AtDetachPartitionFinalize, Some(NodeEnum::PartitionCmd(partition))) => {
            AlterAction::DetachPartition {
                partition: names::range_var(partition.name.as_ref()),
                concurrently: true,
                finalize: true,
            }
        }
        (subtype, def) => AlterAction::Other {
            what: describe(subtype).to_string(),
            lock: other_lock(subtype, def),
        },
    }
}

/// USING of ALTER COLUMN TYPE: `col` or `col::newtype` changes nothing over no USING.
fn using(expr: Option<&Node>, column: &str, new_type: &TypeName) -> Using {
    match expr.and_then(|expr| expr.node.as_ref()) {
        None => Using::None,
        Some(reference) if is_column(reference, column) => Using::CastOfColumn,
        Some(NodeEnum::TypeCast(cast))
            if cast
                .arg
                .as_deref()
                .and_then(|arg| arg.node.as_ref())
                .is_some_and(|arg| is_column(arg, column))
                && types::type_name(cast.type_name.as_ref()) == *new_type =>
        {
            Using::CastOfColumn
        }
        Some(_) => Using::Expression,
    }
}

/// A reference to `column` (`col` or `table.col`).
fn is_column(node: &NodeEnum, column: &str) -> bool {
    match node {
        NodeEnum::ColumnRef(reference) => reference.fields.last().and_then(names::string) == Some(column),
        _ => false,
    }
}

/// The lock Postgres 15 takes for a subcommand the model does not name.
fn other_lock(subtype: AlterTableType, def: Option<&NodeEnum>) -> LockLevel {
    use AlterTableType::*;
    match subtype {
        AtSetStatistics
        | AtClusterOn
        | AtDropCluster
        | AtSetOptions
        | AtResetOptions
        | AtValidateConstraint
        | AtAttachPartition
        | AtDetachPartitionFinalize => LockLevel::ShareUpdateExclusive,
        AtEnableTrig | AtEnableAlwaysTrig | AtEnableReplicaTrig | AtEnableTrigAll | AtEnableTrigUser
        | AtDisableTrig | AtDisableTrigAll | AtDisableTrigUser => LockLevel::ShareRowExclusive,
        AtSetRelOptions | AtResetRelOptions => reloptions_lock(def),
        _ => LockLevel::AccessExclusive,
    }
}

/// SET (...) / RESET (...) takes the strongest lock any of its options needs
/// (AlterTableGetRelOptionsLockLevel); options we do not know need the strongest.
fn reloptions_lock(def: Option<&NodeEnum>) -> LockLevel {
    let Some(NodeEnum::List(options)) = def else {
        return LockLevel::AccessExclusive;
    };
    options
        .items
        .iter()
        .map(|option| match option.node.as_ref() {
            Some(NodeEnum::DefElem(elem)) if reloption_is_maintenance_only(&elem.defname) => {
                LockLevel::ShareUpdateExclusive
            }
            _ => LockLevel::AccessExclusive,
        })
        .max()
        .unwrap_or(LockLevel::AccessExclusive)
}

/// Storage parameters that only steer vacuum, planning and future writes
/// (declared with ShareUpdateExclusiveLock in reloptions.c).
fn reloption_is_maintenance_only(name: &str) -> bool {
    name.starts_with("autovacuum_")
        || matches!(
            name,
            "fillfactor"
                | "toast_tuple_target"
                | "parallel_workers"
                | "log_autovacuum_min_duration"
                | "vacuum_index_cleanup"
                | "vacuum_truncate"
                | "fastupdate"
                | "gin_pending_list_limit"
                | "deduplicate_items"
                | "pages_per_range"
                | "autosummarize"
        )
}

/// The subcommand as SQL, for messages (`policy::sql::alter_table_subcommand_sql`, by
/// Postgres' own name for it: libpg_query's `AtSetRelOptions` is `AT_SetRelOptions`).
fn describe(subtype: AlterTableType) -> &'static str {
    let name = format!("{subtype:?}");
    match name.strip_prefix("At") {
        Some(rest) => policy::sql::alter_table_subcommand_sql(&format!("AT_{rest}")),
        None => "ALTER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::stmt;
    use policy::model::{ColumnDef, Constraint, ConstraintKind};
    use policy::QualifiedName;

    fn alter(sql: &str) -> AlterTable {
        match stmt(sql) {
            Stmt::AlterTable(alter) => alter,
            other => panic!("{other:?}"),
        }
    }

    fn actions(sql: &str) -> Vec<AlterAction> {
        alter(sql).actions
    }

    fn ty(names: &[&str], modifiers: &[i64]) -> TypeName {
        TypeName::from_parts(names, modifiers.to_vec(), false)
    }

    #[test]
    fn table_name_only_and_if_exists() {
        let alter = alter(r#"ALTER TABLE IF EXISTS ONLY "Shop"."Orders" DROP COLUMN "Note""#);
        assert_eq!(alter.table, QualifiedName::new(Some("Shop"), "Orders"));
        assert!(alter.only);
        assert!(alter.if_exists);
        assert_eq!(alter.kind, RelationKind::Table);
        assert_eq!(
            alter.actions,
            vec![AlterAction::DropColumn {
                column: "Note".into(),
                if_exists: false
            }]
        );
        let plain = self::alter("ALTER TABLE orders DROP COLUMN IF EXISTS note");
        assert!(!plain.only && !plain.if_exists);
        assert_eq!(
            plain.actions,
            vec![AlterAction::DropColumn {
                column: "note".into(),
                if_exists: true
            }]
        );
    }

    #[test]
    fn relation_kinds() {
        assert_eq!(alter("ALTER INDEX i SET TABLESPACE fast").kind, RelationKind::Index);
        assert_eq!(
            alter("ALTER VIEW v ALTER COLUMN c SET DEFAULT 1").kind,
            RelationKind::View
        );
        assert_eq!(
            alter("ALTER MATERIALIZED VIEW m SET TABLESPACE fast").kind,
            RelationKind::MaterializedView
        );
        assert_eq!(
            alter("ALTER FOREIGN TABLE f DROP COLUMN c").kind,
            RelationKind::ForeignTable
        );
        assert_eq!(alter("ALTER SEQUENCE s OWNER TO bob").kind, RelationKind::Sequence);
        assert_eq!(
            alter("ALTER TYPE address ADD ATTRIBUTE zip text").kind,
            RelationKind::Type
        );
    }

    #[test]
    fn several_actions_in_one_statement() {
        assert_eq!(
            actions(
                "ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text, ALTER COLUMN total SET NOT NULL, \
                 ALTER COLUMN total DROP NOT NULL, ALTER COLUMN total SET DEFAULT 0, ALTER COLUMN total DROP DEFAULT"
            ),
            vec![
                AlterAction::AddColumn {
                    column: ColumnDef {
                        name: "note".into(),
                        type_name: ty(&["text"], &[]),
                        ..ColumnDef::default()
                    },
                    if_not_exists: true,
                },
                AlterAction::SetNotNull { column: "total".into() },
                AlterAction::DropNotNull { column: "total".into() },
                AlterAction::SetDefault { column: "total".into() },
                AlterAction::SetDefault { column: "total".into() },
            ]
        );
    }

    #[test]
    fn alter_column_type_and_using() {
        assert_eq!(
            actions(r#"ALTER TABLE "t" ALTER COLUMN "c" TYPE varchar(100)"#),
            vec![AlterAction::AlterColumnType {
                column: "c".into(),
                new_type: ty(&["varchar"], &[100]),
                using: Using::None,
                collation: None,
            }]
        );
        let using = |sql: &str| match &actions(sql)[0] {
            AlterAction::AlterColumnType { using, .. } => *using,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            using(r#"ALTER TABLE "t" ALTER COLUMN "c" TYPE bigint USING "c"::bigint"#),
            Using::CastOfColumn
        );
        assert_eq!(
            using("ALTER TABLE t ALTER c TYPE bigint USING t.c"),
            Using::CastOfColumn
        );
        assert_eq!(
            using("ALTER TABLE t ALTER c TYPE bigint USING c::integer"),
            Using::Expression
        );
        assert_eq!(
            using("ALTER TABLE t ALTER c TYPE bigint USING d::bigint"),
            Using::Expression
        );
        assert_eq!(
            using("ALTER TABLE t ALTER c TYPE integer USING c + 1"),
            Using::Expression
        );
    }

    #[test]
    fn add_foreign_key_not_valid_and_validate() {
        assert_eq!(
            actions(
                r#"ALTER TABLE "app_book" ADD CONSTRAINT "app_book_author_id_fk" FOREIGN KEY ("author_id") REFERENCES "app_author" ("id") ON DELETE SET NULL ON UPDATE CASCADE NOT VALID"#
            ),
            vec![AlterAction::AddConstraint(Constraint {
                name: Some("app_book_author_id_fk".into()),
                kind: ConstraintKind::ForeignKey {
                    columns: vec!["author_id".into()],
                    referenced_table: QualifiedName::bare("app_author"),
                    referenced_columns: vec!["id".into()],
                    options_sql: "ON UPDATE CASCADE ON DELETE SET NULL".into(),
                },
                not_valid: true,
            })]
        );
        assert_eq!(
            actions("ALTER TABLE app_book VALIDATE CONSTRAINT app_book_author_id_fk"),
            vec![AlterAction::ValidateConstraint {
                name: "app_book_author_id_fk".into()
            }]
        );
    }

    #[test]
    fn check_unique_exclusion_and_not_null_constraints() {
        let kinds: Vec<(ConstraintKind, bool)> = actions(
            "ALTER TABLE t ADD CONSTRAINT positive CHECK (price > 0 AND (qty >= 1)) NOT VALID, \
             ADD CONSTRAINT t_email_key UNIQUE (email), ADD PRIMARY KEY USING INDEX t_pkey_idx, \
             ADD CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, during WITH &&), \
             ADD CONSTRAINT email_nn NOT NULL email",
        )
        .into_iter()
        .map(|action| match action {
            AlterAction::AddConstraint(constraint) => (constraint.kind, constraint.not_valid),
            other => panic!("{other:?}"),
        })
        .collect();
        assert_eq!(
            kinds,
            vec![
                (
                    ConstraintKind::Check {
                        expr_sql: "price > 0 AND (qty >= 1)".into()
                    },
                    true
                ),
                (
                    ConstraintKind::Unique {
                        primary_key: false,
                        columns: vec!["email".into()],
                        using_index: None
                    },
                    false
                ),
                (
                    ConstraintKind::Unique {
                        primary_key: true,
                        columns: vec![],
                        using_index: Some("t_pkey_idx".into())
                    },
                    false
                ),
                (ConstraintKind::Exclusion, false),
                (
                    ConstraintKind::NotNull {
                        column: Some("email".into())
                    },
                    false
                ),
            ]
        );
    }

    #[test]
    fn drop_constraint_tablespace_and_rewrites() {
        assert_eq!(
            actions("ALTER TABLE t DROP CONSTRAINT IF EXISTS c, SET TABLESPACE fast, SET LOGGED, SET UNLOGGED"),
            vec![
                AlterAction::DropConstraint {
                    name: "c".into(),
                    if_exists: true
                },
                AlterAction::SetTablespace {
                    tablespace: "fast".into()
                },
                AlterAction::Rewrite {
                    what: "SET LOGGED".into()
                },
                AlterAction::Rewrite {
                    what: "SET UNLOGGED".into()
                },
            ]
        );
        assert_eq!(
            actions("ALTER TABLE t SET ACCESS METHOD heap2"),
            vec![AlterAction::Rewrite {
                what: "SET ACCESS METHOD heap2".into()
            }]
        );
    }

    #[test]
    fn partitions() {
        assert_eq!(
            actions("ALTER TABLE measurements ATTACH PARTITION m2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')"),
            vec![AlterAction::AttachPartition {
                partition: QualifiedName::bare("m2024")
            }]
        );
        assert_eq!(
            actions("ALTER TABLE measurements DETACH PARTITION archive.m2023 CONCURRENTLY"),
            vec![AlterAction::DetachPartition {
                partition: QualifiedName::new(Some("archive"), "m2023"),
                concurrently: true,
                finalize: false
            }]
        );
        assert_eq!(
            actions("ALTER TABLE measurements DETACH PARTITION m2023"),
            vec![AlterAction::DetachPartition {
                partition: QualifiedName::bare("m2023"),
                concurrently: false,
                finalize: false
            }]
        );
        assert_eq!(
            actions("ALTER TABLE measurements DETACH PARTITION m2023 FINALIZE"),
            vec![AlterAction::DetachPartition {
                partition: QualifiedName::bare("m2023"),
                concurrently: true,
                finalize: true
            }]
        );
    }

    #[test]
    fn other_subcommands_keep_postgres_lock_levels() {
        let lock = |sql: &str| match &actions(sql)[0] {
            AlterAction::Other { lock, .. } => *lock,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            lock("ALTER TABLE t ALTER COLUMN c SET STATISTICS 500"),
            LockLevel::ShareUpdateExclusive
        );
        assert_eq!(lock("ALTER TABLE t CLUSTER ON t_pkey"), LockLevel::ShareUpdateExclusive);
        assert_eq!(
            lock("ALTER TABLE t SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01)"),
            LockLevel::ShareUpdateExclusive
        );
        assert_eq!(
            lock("ALTER TABLE t RESET (toast.autovacuum_enabled)"),
            LockLevel::ShareUpdateExclusive
        );
        assert_eq!(
            lock("ALTER TABLE t SET (fillfactor = 70, user_catalog_table = true)"),
            LockLevel::AccessExclusive
        );
        assert_eq!(lock("ALTER TABLE t DISABLE TRIGGER ALL"), LockLevel::ShareRowExclusive);
        assert_eq!(lock("ALTER TABLE t ENABLE TRIGGER audit"), LockLevel::ShareRowExclusive);
        assert_eq!(lock("ALTER TABLE t OWNER TO app"), LockLevel::AccessExclusive);
        assert_eq!(lock("ALTER TABLE t REPLICA IDENTITY FULL"), LockLevel::AccessExclusive);
        assert_eq!(
            lock("ALTER TABLE t ENABLE ROW LEVEL SECURITY"),
            LockLevel::AccessExclusive
        );
        assert_eq!(
            lock("ALTER TABLE t ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY"),
            LockLevel::AccessExclusive
        );
        assert_eq!(
            actions("ALTER TABLE t INHERIT parent"),
            vec![AlterAction::Other {
                what: "INHERIT".into(),
                lock: LockLevel::AccessExclusive
            }]
        );
    }
}
