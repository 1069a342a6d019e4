//! ALTER TABLE / INDEX / VIEW / MATERIALIZED VIEW / FOREIGN TABLE / SEQUENCE / TYPE and
//! each subcommand. Subcommands the model has no action for keep the lock Postgres'
//! own AlterTableGetLockLevel gives them.

// Postgres spells AlterTableType's constants in CamelCase; match them as they are.
#![allow(non_upper_case_globals)]

use pgrx::pg_sys;
use policy::model::{AlterAction, AlterTable, RelationKind, Using};
use policy::{LockLevel, Stmt, TypeName};

use super::cast::as_node;
use super::columns::{column_def, constraint};
use super::names::{cstr, nodes, qualified, range_var, recurses, string_value};
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
        // SAFETY: each element is a node of the parse tree (the `nodes` contract); a
        // T_AlterTableCmd node is an AlterTableCmd.
        .filter_map(|node| unsafe { as_node::<pg_sys::AlterTableCmd>(node, pg_sys::NodeTag::T_AlterTableCmd) })
        .map(|cmd| action(cmd, source))
        .collect();
    Stmt::AlterTable(AlterTable {
        table: range_var(stmt.relation),
        kind,
        only: !recurses(stmt.relation),
        if_exists: stmt.missing_ok,
        actions,
    })
}

fn action(cmd: &pg_sys::AlterTableCmd, source: &str) -> AlterAction {
    use pg_sys::AlterTableType::*;
    let name = cstr(cmd.name).unwrap_or_default();
    // What `def` holds, by its tag: the subcommands below that read it take it only in the
    // form they expect.
    // SAFETY: def is NULL or a node of the parse tree (the `nodes` contract); each tag is
    // paired with the struct parsenodes.h declares for it.
    let (column, new_constraint, partition_cmd) = unsafe {
        (
            as_node::<pg_sys::ColumnDef>(cmd.def, pg_sys::NodeTag::T_ColumnDef),
            as_node::<pg_sys::Constraint>(cmd.def, pg_sys::NodeTag::T_Constraint),
            as_node::<pg_sys::PartitionCmd>(cmd.def, pg_sys::NodeTag::T_PartitionCmd),
        )
    };
    match cmd.subtype {
        AT_AddColumn if let Some(def) = column => AlterAction::AddColumn {
            column: column_def(def, source),
            if_not_exists: cmd.missing_ok,
        },
        AT_DropColumn => AlterAction::DropColumn {
            column: name,
            if_exists: cmd.missing_ok,
        },
        // The new type and USING expression travel in a ColumnDef.
        AT_AlterColumnType if let Some(def) = column => {
            let new_type = type_name(def.typeName);
            // SAFETY: collClause is NULL or the CollateClause the parser built into the
            // tree.
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
        AT_AddConstraint if let Some(raw) = new_constraint => AlterAction::AddConstraint(constraint(raw, None, source)),
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
        AT_AttachPartition if let Some(partition) = partition_cmd => AlterAction::AttachPartition {
            partition: range_var(partition.name),
        },
        AT_DetachPartition if let Some(partition) = partition_cmd => AlterAction::DetachPartition {
            partition: range_var(partition.name),
            concurrently: detach_concurrently(partition),
            finalize: false,
        },
        // FINALIZE completes an interrupted DETACH ... CONCURRENTLY under its lock (SHARE
        // UPDATE EXCLUSIVE on the parent, AlterTableGetLockLevel), not a plain DETACH's.
        #[cfg(not(feature = "pg13"))]
        AT_DetachPartitionFinalize if let Some(partition) = partition_cmd => AlterAction::DetachPartition {
            partition: range_var(partition.name),
            concurrently: true,
            finalize: true,
        },
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
    // SAFETY: `expr` is a node of the parse tree (the `nodes` contract); a T_TypeCast node
    // is a TypeCast.
    if let Some(cast) = unsafe { as_node::<pg_sys::TypeCast>(expr, pg_sys::NodeTag::T_TypeCast) } {
        if is_column(cast.arg, column) && type_name(cast.typeName) == *new_type {
            return Using::CastOfColumn;
        }
    }
    Using::Expression
}

/// A reference to `column`, bare or qualified by the table (`col`, `t.col`).
fn is_column(node: *mut pg_sys::Node, column: &str) -> bool {
    // SAFETY: `node` is NULL or a node of the parse tree (the `nodes` contract); a
    // T_ColumnRef node is a ColumnRef.
    let Some(column_ref) = (unsafe { as_node::<pg_sys::ColumnRef>(node, pg_sys::NodeTag::T_ColumnRef) }) else {
        return false;
    };
    // Its fields are String nodes (or an A_Star last).
    nodes(column_ref.fields)
        .last()
        .and_then(|field| string_value(*field))
        .as_deref()
        == Some(column)
}

/// The lock Postgres takes for one subcommand, from AlterTableGetLockLevel itself.
fn subcommand_lock(cmd: &pg_sys::AlterTableCmd) -> LockLevel {
    // SAFETY: `cmd` is a parse-tree AlterTableCmd, valid for the call. lappend only stores
    // the pointer in a new one-element List, allocated in the current memory context (it
    // raises, through pgrx's FFI guard, rather than return NULL), and
    // AlterTableGetLockLevel only reads that List, the command and its `def`: nothing
    // writes through the `*mut` made from the shared reference.
    let mode = unsafe {
        let list = pg_sys::lappend(std::ptr::null_mut(), std::ptr::from_ref(cmd).cast_mut().cast());
        pg_sys::AlterTableGetLockLevel(list)
    };
    LockLevel::from_lockmode(mode)
}

/// The subcommand's name in Postgres' AlterTableType (what libpg_query's tree spells too).
/// The list differs between majors: each constant is matched only where its major's
/// bindings have it (the crate denies the catch-all binding a missing one would become).
fn subtype_name(subtype: pg_sys::AlterTableType::Type) -> String {
    use pg_sys::AlterTableType::*;
    let name = match subtype {
        AT_AddColumn => "AT_AddColumn",
        AT_AddColumnToView => "AT_AddColumnToView",
        AT_ColumnDefault => "AT_ColumnDefault",
        AT_CookedColumnDefault => "AT_CookedColumnDefault",
        AT_DropNotNull => "AT_DropNotNull",
        AT_SetNotNull => "AT_SetNotNull",
        AT_DropExpression => "AT_DropExpression",
        AT_SetStatistics => "AT_SetStatistics",
        AT_SetOptions => "AT_SetOptions",
        AT_ResetOptions => "AT_ResetOptions",
        AT_SetStorage => "AT_SetStorage",
        #[cfg(not(feature = "pg13"))]
        AT_SetCompression => "AT_SetCompression",
        AT_DropColumn => "AT_DropColumn",
        AT_AddIndex => "AT_AddIndex",
        AT_ReAddIndex => "AT_ReAddIndex",
        AT_AddConstraint => "AT_AddConstraint",
        AT_ReAddConstraint => "AT_ReAddConstraint",
        AT_ReAddDomainConstraint => "AT_ReAddDomainConstraint",
        AT_AlterConstraint => "AT_AlterConstraint",
        AT_ValidateConstraint => "AT_ValidateConstraint",
        AT_AddIndexConstraint => "AT_AddIndexConstraint",
        AT_DropConstraint => "AT_DropConstraint",
        AT_ReAddComment => "AT_ReAddComment",
        AT_AlterColumnType => "AT_AlterColumnType",
        AT_AlterColumnGenericOptions => "AT_AlterColumnGenericOptions",
        AT_ChangeOwner => "AT_ChangeOwner",
        AT_ClusterOn => "AT_ClusterOn",
        AT_DropCluster => "AT_DropCluster",
        AT_SetLogged => "AT_SetLogged",
        AT_SetUnLogged => "AT_SetUnLogged",
        AT_DropOids => "AT_DropOids",
        #[cfg(not(any(feature = "pg13", feature = "pg14")))]
        AT_SetAccessMethod => "AT_SetAccessMethod",
        AT_SetTableSpace => "AT_SetTableSpace",
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
        AT_AttachPartition => "AT_AttachPartition",
        AT_DetachPartition => "AT_DetachPartition",
        #[cfg(not(feature = "pg13"))]
        AT_DetachPartitionFinalize => "AT_DetachPartitionFinalize",
        AT_AddIdentity => "AT_AddIdentity",
        AT_SetIdentity => "AT_SetIdentity",
        AT_DropIdentity => "AT_DropIdentity",
        #[cfg(not(feature = "pg13"))]
        AT_ReAddStatistics => "AT_ReAddStatistics",
        #[cfg(any(feature = "pg17", feature = "pg18"))]
        AT_SetExpression => "AT_SetExpression",
        // PostgreSQL 18 checks NOT NULL through its pg_constraint rows instead.
        #[cfg(not(feature = "pg18"))]
        AT_CheckNotNull => "AT_CheckNotNull",
        // Before 16 the recursion was a subcommand of its own.
        #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
        AT_AddColumnRecurse => "AT_AddColumn",
        #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
        AT_DropColumnRecurse => "AT_DropColumn",
        #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
        AT_AddConstraintRecurse => "AT_AddConstraint",
        #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
        AT_ValidateConstraintRecurse => "AT_ValidateConstraint",
        #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
        AT_DropConstraintRecurse => "AT_DropConstraint",
        _ => return format!("AT_{subtype}"),
    };
    name.to_string()
}
