//! The strongest table lock a statement takes, as Postgres 15 takes it
//! (AlterTableGetLockLevel and friends). Decides whether the lock_timeout cap applies.

use crate::model::{AlterAction, ConstraintKind, LockLevel, ObjectKind, QualifiedName, ReindexTarget, Stmt};

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
        // CREATE OR REPLACE takes ACCESS EXCLUSIVE on the view it replaces.
        Stmt::CreateView(_) | Stmt::Other { ddl: true, .. } => Some(AccessExclusive),
        Stmt::Other { ddl: false, .. }
        | Stmt::Transaction(_)
        | Stmt::Set(_)
        | Stmt::Discard { .. }
        | Stmt::Routine(_)
        | Stmt::Query
        | Stmt::Dml(_) => None,
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

/// The tables `stmt` locks so that their reads or writes wait (SHARE and stronger), and
/// how: the locks a transaction then holds until it ends. Relations it names only through
/// an index (DROP INDEX, REINDEX INDEX) are named by the index; DDL the model does not
/// know in detail names nothing.
pub fn table_locks(stmt: &Stmt) -> Vec<(QualifiedName, LockLevel)> {
    use LockLevel::*;
    let mut locks: Vec<(QualifiedName, LockLevel)> = match stmt {
        Stmt::CreateIndex(index) if !index.concurrently && !index.only => vec![(index.table.clone(), Share)],
        Stmt::DropIndex(drop) if !drop.concurrently => drop
            .indexes
            .iter()
            .map(|index| (index.clone(), AccessExclusive))
            .collect(),
        Stmt::Reindex(reindex) if !reindex.concurrently => match (&reindex.target, &reindex.name) {
            (ReindexTarget::Index | ReindexTarget::Table, Some(name)) => vec![(name.clone(), AccessExclusive)],
            _ => Vec::new(),
        },
        Stmt::AlterTable(alter) => {
            let mut locks: Vec<(QualifiedName, LockLevel)> = alter
                .actions
                .iter()
                .map(action_lock)
                .max()
                .map(|level| (alter.table.clone(), level))
                .into_iter()
                .collect();
            // A foreign key locks the table it references too, SHARE ROW EXCLUSIVE.
            for action in &alter.actions {
                if let AlterAction::AddConstraint(constraint) = action {
                    if let ConstraintKind::ForeignKey { referenced_table, .. } = &constraint.kind {
                        locks.push((referenced_table.clone(), ShareRowExclusive));
                    }
                }
            }
            locks
        }
        Stmt::CreateTable(create) => {
            let mut locks: Vec<(QualifiedName, LockLevel)> = create
                .partition_of
                .iter()
                .map(|parent| (parent.clone(), AccessExclusive))
                .collect();
            for constraint in create
                .constraints
                .iter()
                .chain(create.columns.iter().flat_map(|c| c.constraints.iter()))
            {
                if let ConstraintKind::ForeignKey { referenced_table, .. } = &constraint.kind {
                    locks.push((referenced_table.clone(), ShareRowExclusive));
                }
            }
            locks
        }
        Stmt::Rename(rename) if rename.kind != ObjectKind::Schema => vec![(rename.object.clone(), AccessExclusive)],
        Stmt::SetSchema(set) => vec![(set.object.clone(), AccessExclusive)],
        Stmt::Drop(drop) if is_relation_kind(drop.kind) => drop
            .objects
            .iter()
            .map(|object| (object.clone(), AccessExclusive))
            .collect(),
        Stmt::Truncate { tables } => tables.iter().map(|table| (table.clone(), AccessExclusive)).collect(),
        Stmt::Vacuum { full: true, tables } => tables.iter().map(|table| (table.clone(), AccessExclusive)).collect(),
        Stmt::Cluster { table: Some(table) } => vec![(table.clone(), AccessExclusive)],
        Stmt::Lock { tables, mode } => tables.iter().map(|table| (table.clone(), *mode)).collect(),
        Stmt::RefreshMaterializedView { view, concurrently } => {
            vec![(view.clone(), if *concurrently { Exclusive } else { AccessExclusive })]
        }
        _ => Vec::new(),
    };
    locks.retain(|(_, level)| level.blocks_reads() || level.blocks_writes());
    locks
}

fn is_relation_kind(kind: ObjectKind) -> bool {
    matches!(
        kind,
        ObjectKind::Table | ObjectKind::View | ObjectKind::MaterializedView | ObjectKind::ForeignTable
    )
}
