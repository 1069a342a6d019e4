//! The strongest table lock a statement takes, as Postgres 15 takes it
//! (AlterTableGetLockLevel and friends). Decides whether the lock_timeout cap applies.

use crate::model::{AlterAction, ConstraintKind, LockLevel, Stmt};

/// The strongest lock `stmt` takes on an existing relation, or None when it takes none
/// worth capping (queries, session commands, routines whose statements are seen one by one).
pub fn strongest_lock(stmt: &Stmt) -> Option<LockLevel> {
    use LockLevel::*;
    match stmt {
        Stmt::CreateIndex(index) if index.concurrently => Some(ShareUpdateExclusive),
        Stmt::CreateIndex(_) => Some(Share),
        Stmt::DropIndex(drop) if drop.concurrently => Some(ShareUpdateExclusive),
        Stmt::DropIndex(_) => Some(AccessExclusive),
        Stmt::Reindex(reindex) if reindex.concurrently => Some(ShareUpdateExclusive),
        Stmt::Reindex(_) => Some(AccessExclusive),
        Stmt::AlterTable(alter) => alter.actions.iter().map(action_lock).max(),
        Stmt::CreateTable(create) => {
            if create.partition_of.is_some() {
                Some(AccessExclusive)
            } else if create
                .constraints
                .iter()
                .chain(create.columns.iter().flat_map(|c| c.constraints.iter()))
                .any(|c| matches!(c.kind, ConstraintKind::ForeignKey { .. }))
            {
                Some(ShareRowExclusive)
            } else {
                None
            }
        }
        Stmt::CreateTableAs { .. } => None,
        Stmt::Rename(_) | Stmt::SetSchema(_) | Stmt::Drop(_) | Stmt::Truncate { .. } => Some(AccessExclusive),
        Stmt::Vacuum { full: true, .. } | Stmt::Cluster { .. } => Some(AccessExclusive),
        Stmt::Vacuum { full: false, .. } => Some(ShareUpdateExclusive),
        Stmt::Lock { mode, .. } => Some(*mode),
        Stmt::RefreshMaterializedView { concurrently: true, .. } => Some(Exclusive),
        Stmt::RefreshMaterializedView {
            concurrently: false, ..
        } => Some(AccessExclusive),
        Stmt::Other { ddl: true, .. } => Some(AccessExclusive),
        Stmt::Other { ddl: false, .. }
        | Stmt::Transaction(_)
        | Stmt::Set(_)
        | Stmt::Discard { .. }
        | Stmt::Routine(_)
        | Stmt::Query => None,
    }
}

/// The lock one ALTER TABLE subcommand takes.
pub fn action_lock(action: &AlterAction) -> LockLevel {
    use LockLevel::*;
    match action {
        AlterAction::AddConstraint(constraint) => match constraint.kind {
            ConstraintKind::ForeignKey { .. } => ShareRowExclusive,
            _ => AccessExclusive,
        },
        AlterAction::ValidateConstraint { .. } => ShareUpdateExclusive,
        AlterAction::DetachPartition { concurrently: true, .. } => ShareUpdateExclusive,
        AlterAction::Other { lock, .. } => *lock,
        _ => AccessExclusive,
    }
}
