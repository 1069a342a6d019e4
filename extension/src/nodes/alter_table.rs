//! ALTER TABLE / INDEX / VIEW / MATERIALIZED VIEW / FOREIGN TABLE / SEQUENCE / TYPE and
//! each subcommand. Subcommands the model has no action for keep the lock Postgres'
//! own AlterTableGetLockLevel gives them.

// Postgres spells AlterTableType's constants in CamelCase; match them as they are.
#![allow(non_upper_case_globals)]

use pgrx::pg_sys;
use policy::model::{AlterAction, AlterTable, RelationKind, Using};
use policy::{LockLevel, Stmt, TypeName};

use super::columns::{column_def, constraint};
use super::names::{cstr, is, nodes, qualified, range_var, recurses, string_value};
use super::types::type_name;

pub fn alter_table(stmt: &pg_sys::AlterTableStmt, source: &str) -> Stmt {
    let kind = match stmt.objtype {
        pg_sys::ObjectType::OBJECT_INDEX => RelationKind::Index,
        pg_sys::ObjectType::OBJECT_VIEW => RelationKind::View,
        pg_sys::ObjectType::OBJECT_MATVIEW => RelationKind::MaterializedView,
        pg_sys::ObjectType::OBJECT_FOREIGN_TABLE => RelationKind::ForeignTable,
        pg_sys::ObjectType::OBJECT_SEQUENCE => RelationKind::Sequence,
        pg_sys::ObjectType::OBJECT_TYPE => RelationKind::Type,
        _ => RelationKind::Table,
    };
    let actions = nodes(stmt.cmds)
        .into_iter()
        .filter(|node| is(*node, pg_sys::NodeTag::T_AlterTableCmd))
        // Checked: an AlterTableCmd.
        .map(|node| action(unsafe { &mut *(node as *mut pg_sys::AlterTableCmd) }, source))
        .collect();
    Stmt::AlterTable(AlterTable {
        table: range_var(stmt.relation),
        kind,
        only: !recurses(stmt.relation),
        if_exists: stmt.missing_ok,
        actions,
    })
}

fn action(cmd: &mut pg_sys::AlterTableCmd, source: &str) -> AlterAction {
    use pg_sys::AlterTableType::*;
    let name = cstr(cmd.name).unwrap_or_default();
    match cmd.subtype {
        AT_AddColumn if is(cmd.def, pg_sys::NodeTag::T_ColumnDef) => AlterAction::AddColumn {
            column: column_def(cmd.def as *const pg_sys::ColumnDef, source),
            if_not_exists: cmd.missing_ok,
        },
        AT_DropColumn => AlterAction::DropColumn {
            column: name,
            if_exists: cmd.missing_ok,
        },
        AT_AlterColumnType if is(cmd.def, pg_sys::NodeTag::T_ColumnDef) => {
            // Checked: the new type and USING expression travel in a ColumnDef.
            let def = unsafe { &*(cmd.def as *const pg_sys::ColumnDef) };
            let new_type = type_name(def.typeName);
            // collClause is NULL or the parser's CollateClause.
            let collation = unsafe { def.collClause.as_ref() }.map(|clause| qualified(clause.collname));
            AlterAction::AlterColumnType {
                using: using(def.raw_default, &name, &new_type),
                new_type,
                column: name,
                collation,
            }
        }
        AT_SetNotNull => AlterAction::SetNotNull { column: name },
        AT_DropNotNull => AlterAction::DropNotNull { column: name },
        AT_ColumnDefault => AlterAction::SetDefault { column: name },
        AT_AddConstraint if is(cmd.def, pg_sys::NodeTag::T_Constraint) => {
            // Checked: a Constraint.
            AlterAction::AddConstraint(constraint(
                unsafe { &*(cmd.def as *const pg_sys::Constraint) },
                None,
                source,
            ))
        }
        AT_ValidateConstraint => AlterAction::ValidateConstraint { name },
        AT_DropConstraint => AlterAction::DropConstraint {
            name,
            if_exists: cmd.missing_ok,
        },
        AT_SetTableSpace => AlterAction::SetTablespace { tablespace: name },
        AT_SetLogged => AlterAction::Rewrite {
            what: "SET LOGGED".into(),
        },
        AT_SetUnLogged => AlterAction::Rewrite {
            what: "SET UNLOGGED".into(),
        },
        #[cfg(not(any(feature = "pg13", feature = "pg14")))]
        AT_SetAccessMethod => AlterAction::Rewrite {
            what: format!("SET ACCESS METHOD {}", policy::sql::ident(&name))
                .trim_end()
                .to_string(),
        },
        AT_AttachPartition if is(cmd.def, pg_sys::NodeTag::T_PartitionCmd) => AlterAction::AttachPartition {
            // Checked: a PartitionCmd.
            partition: range_var(unsafe { (*(cmd.def as *const pg_sys::PartitionCmd)).name }),
        },
        AT_DetachPartition if is(cmd.def, pg_sys::NodeTag::T_PartitionCmd) => {
            // Checked: a PartitionCmd.
            let partition = unsafe { &*(cmd.def as *const pg_sys::PartitionCmd) };
            AlterAction::DetachPartition {
                partition: range_var(partition.name),
                concurrently: detach_concurrently(partition),
                finalize: false,
            }
        }
        // FINALIZE completes an interrupted DETACH ... CONCURRENTLY under its lock (SHARE
        // UPDATE EXCLUSIVE on the parent, AlterTableGetLockLevel), not a plain DETACH's.
        #[cfg(not(feature = "pg13"))]
        AT_DetachPartitionFinalize if is(cmd.def, pg_sys::NodeTag::T_PartitionCmd) => {
            AlterAction::DetachPartition {
                // Checked: a PartitionCmd.
                partition: range_var(unsafe { (*(cmd.def as *const pg_sys::PartitionCmd)).name }),
                concurrently: true,
                finalize: true,
            }
        }
        other => AlterAction::Other {
            what: policy::sql::alter_table_subcommand_sql(&subtype_name(other)).to_string(),
            lock: subcommand_lock(cmd),
        },
    }
}

#[cfg(feature = "pg13")]
fn detach_concurrently(_: &pg_sys::PartitionCmd) -> bool {
    false
}

#[cfg(not(feature = "pg13"))]
fn detach_concurrently(partition: &pg_sys::PartitionCmd) -> bool {
    partition.concurrent
}

/// USING: none, the altered column itself (`col`, `t.col`) or cast to the new type
/// (`col::newtype`), which change nothing over no USING, or any other expression (a
/// cast to another type first is a different conversion). The proxy decides alike.
fn using(expr: *mut pg_sys::Node, column: &str, new_type: &TypeName) -> Using {
    if expr.is_null() {
        return Using::None;
    }
    if is_column(expr, column) {
        return Using::CastOfColumn;
    }
    if is(expr, pg_sys::NodeTag::T_TypeCast) {
        // Checked: a TypeCast.
        let cast = unsafe { &*(expr as *const pg_sys::TypeCast) };
        if is_column(cast.arg, column) && type_name(cast.typeName) == *new_type {
            return Using::CastOfColumn;
        }
    }
    Using::Expression
}

/// A reference to `column`, bare or qualified by the table (`col`, `t.col`).
fn is_column(node: *mut pg_sys::Node, column: &str) -> bool {
    // Checked: a ColumnRef; its fields are String nodes (or A_Star).
    is(node, pg_sys::NodeTag::T_ColumnRef)
        && nodes(unsafe { (*(node as *const pg_sys::ColumnRef)).fields })
            .last()
            .and_then(|field| string_value(*field))
            .as_deref()
            == Some(column)
}

/// The lock Postgres takes for one subcommand, from AlterTableGetLockLevel itself.
fn subcommand_lock(cmd: &mut pg_sys::AlterTableCmd) -> LockLevel {
    // AlterTableGetLockLevel only reads the list and the commands in it; the one-element
    // list is allocated in the current memory context and lives as long as the statement.
    let mode = unsafe {
        let list = pg_sys::lappend(std::ptr::null_mut(), (cmd as *mut pg_sys::AlterTableCmd).cast());
        pg_sys::AlterTableGetLockLevel(list)
    };
    LockLevel::from_lockmode(mode)
}

/// The subcommand's name in Postgres' AlterTableType (what libpg_query's tree spells too).
fn subtype_name(subtype: pg_sys::AlterTableType::Type) -> String {
    use pg_sys::AlterTableType::*;
    let name = match subtype {
        AT_AddColumn => "AT_AddColumn",
        AT_AddColumnToView => "AT_AddColumnToView",
        AT_DropExpression => "AT_DropExpression",
        AT_CheckNotNull => "AT_CheckNotNull",
        AT_SetStatistics => "AT_SetStatistics",
        AT_SetOptions => "AT_SetOptions",
        AT_ResetOptions => "AT_ResetOptions",
        AT_SetStorage => "AT_SetStorage",
        AT_AddIndex => "AT_AddIndex",
        AT_AlterConstraint => "AT_AlterConstraint",
        AT_AddIndexConstraint => "AT_AddIndexConstraint",
        AT_AlterColumnType => "AT_AlterColumnType",
        AT_AlterColumnGenericOptions => "AT_AlterColumnGenericOptions",
        AT_ChangeOwner => "AT_ChangeOwner",
        AT_ClusterOn => "AT_ClusterOn",
        AT_DropCluster => "AT_DropCluster",
        AT_DropOids => "AT_DropOids",
        AT_SetRelOptions => "AT_SetRelOptions",
        AT_ResetRelOptions => "AT_ResetRelOptions",
        AT_ReplaceRelOptions => "AT_ReplaceRelOptions",
        AT_EnableTrig => "AT_EnableTrig",
        AT_EnableAlwaysTrig => "AT_EnableAlwaysTrig",
        AT_EnableReplicaTrig => "AT_EnableReplicaTrig",
        AT_DisableTrig => "AT_DisableTrig",
        AT_EnableTrigAll => "AT_EnableTrigAll",
        AT_DisableTrigAll => "AT_DisableTrigAll",
        AT_EnableTrigUser => "AT_EnableTrigUser",
        AT_DisableTrigUser => "AT_DisableTrigUser",
        AT_EnableRule => "AT_EnableRule",
        AT_EnableAlwaysRule => "AT_EnableAlwaysRule",
        AT_EnableReplicaRule => "AT_EnableReplicaRule",
        AT_DisableRule => "AT_DisableRule",
        AT_AddInherit => "AT_AddInherit",
        AT_DropInherit => "AT_DropInherit",
        AT_AddOf => "AT_AddOf",
        AT_DropOf => "AT_DropOf",
        AT_ReplicaIdentity => "AT_ReplicaIdentity",
        AT_EnableRowSecurity => "AT_EnableRowSecurity",
        AT_DisableRowSecurity => "AT_DisableRowSecurity",
        AT_ForceRowSecurity => "AT_ForceRowSecurity",
        AT_NoForceRowSecurity => "AT_NoForceRowSecurity",
        AT_GenericOptions => "AT_GenericOptions",
        AT_AddIdentity => "AT_AddIdentity",
        AT_SetIdentity => "AT_SetIdentity",
        AT_DropIdentity => "AT_DropIdentity",
        _ => return format!("AT_{subtype}"),
    };
    name.to_string()
}
