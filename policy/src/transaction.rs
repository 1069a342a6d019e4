//! The session's transaction as the guard sees it, one model for the three adapters:
//! whether a transaction block is open (or failed), whether an implicit transaction is,
//! and the relations created in the running transaction. Each adapter feeds it the
//! statements it lets run (`observe`) and, where the server says where the session
//! stands, the server's word (`set_status`); every statement's `Context` comes from it.
//!
//! The extension reads the status from the backend (`IsTransactionBlock`) and asks the
//! relcache what a transaction created; the proxy reads the status from ReadyForQuery;
//! the CLI has only the file, which it reads as one transaction.

use crate::catalog::Catalog;
use crate::model::{Context, ObjectKind, QualifiedName, Rename, SetSchema, Stmt, TransactionKind};

/// Where the session's transaction stands, as ReadyForQuery reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransactionStatus {
    /// Not in a transaction block.
    #[default]
    Idle,
    /// In a transaction block.
    InBlock,
    /// In a failed transaction block: every statement but one that ends it fails.
    Failed,
}

impl TransactionStatus {
    /// Inside a transaction block, failed or not.
    pub fn in_block(self) -> bool {
        self != TransactionStatus::Idle
    }
}

/// Where one statement stands in what carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Placement {
    /// One of several statements of one simple-protocol query string (which runs in one
    /// implicit transaction block).
    pub multi_statement: bool,
    /// Run by a function, procedure, DO block or EXECUTE: always inside a transaction.
    pub nested: bool,
}

impl Placement {
    /// A statement sent on its own.
    pub const ALONE: Placement = Placement {
        multi_statement: false,
        nested: false,
    };
    /// A statement run from inside a function or DO block.
    pub const NESTED: Placement = Placement {
        multi_statement: false,
        nested: true,
    };
}

/// The context of a statement a function or DO block runs, whatever the session's state
/// (the adapters that read bodies themselves, the proxy and the CLI, judge them so).
pub const NESTED_CONTEXT: Context = Context {
    in_transaction_block: true,
    multi_statement: false,
    nested: true,
    session_lock_timeout_ms: 0,
};

/// One session's transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    status: TransactionStatus,
    /// An implicit transaction is open besides any block: an extended-protocol batch until
    /// its Sync, or a migration file that a tool runs as one transaction.
    implicit: bool,
    /// Relations (tables, indexes, views) created in the running transaction, as written:
    /// other sessions cannot see them, so their locks harm no one.
    created: Vec<QualifiedName>,
    /// The session's lock_timeout (ms, 0 = wait forever), where the adapter knows it.
    lock_timeout_ms: u64,
}

impl Transaction {
    /// A session outside any transaction that knows nothing more.
    pub const IDLE: Transaction = Transaction {
        status: TransactionStatus::Idle,
        implicit: false,
        created: Vec::new(),
        lock_timeout_ms: 0,
    };

    /// A session whose server reports `status`.
    pub fn with_status(status: TransactionStatus) -> Transaction {
        Transaction {
            status,
            ..Transaction::default()
        }
    }

    /// A migration file: without COMMIT or ROLLBACK the whole file is one transaction (as
    /// Flyway, sqlx and Rails run it), though not a transaction block until its BEGIN.
    pub fn file() -> Transaction {
        Transaction {
            implicit: true,
            ..Transaction::default()
        }
    }

    pub fn status(&self) -> TransactionStatus {
        self.status
    }

    /// The context of a statement placed as `placement` in this transaction.
    pub fn context(&self, placement: Placement) -> Context {
        Context {
            in_transaction_block: self.status.in_block() || placement.multi_statement || placement.nested,
            multi_statement: placement.multi_statement,
            nested: placement.nested,
            session_lock_timeout_ms: self.lock_timeout_ms,
        }
    }

    /// The relations created in the running transaction, in the order they were created.
    pub fn created(&self) -> &[QualifiedName] {
        &self.created
    }

    /// The server's word on where the session stands (ReadyForQuery, IsTransactionBlock).
    pub fn set_status(&mut self, status: TransactionStatus) {
        self.status = status;
    }

    /// The session's lock_timeout, as the adapter reads it.
    pub fn set_lock_timeout_ms(&mut self, ms: u64) {
        self.lock_timeout_ms = ms;
    }

    /// An implicit transaction opens (the first extended-protocol message after a Sync)
    /// or ends (its Sync).
    pub fn set_implicit(&mut self, open: bool) {
        self.implicit = open;
    }

    pub fn implicit(&self) -> bool {
        self.implicit
    }

    /// Is a transaction running, in a block or implicitly, so that what it created is
    /// still new? Outside one, the relations the last one created are old tables now.
    pub fn running(&self) -> bool {
        self.status.in_block() || self.implicit
    }

    /// Forget what an ended transaction created: call before judging what comes next.
    pub fn forget_ended(&mut self) {
        if !self.running() {
            self.created.clear();
        }
    }

    /// Relations that a statement judged earlier created, once it runs (an Execute of a
    /// prepared statement).
    pub fn record_created(&mut self, relations: &[QualifiedName]) {
        self.created.extend(relations.iter().cloned());
    }

    /// `stmt` runs (it passed): follow the transaction statements and the relations it
    /// creates. `catalog` tells whether a renamed or moved relation was created in this
    /// transaction.
    pub fn observe(&mut self, stmt: &Stmt, catalog: &dyn Catalog) {
        match stmt {
            Stmt::Transaction(TransactionKind::Begin) if self.status == TransactionStatus::Idle => {
                self.status = TransactionStatus::InBlock
            }
            Stmt::Transaction(TransactionKind::Commit | TransactionKind::Rollback | TransactionKind::Prepare) => {
                self.status = TransactionStatus::Idle;
                self.created.clear();
            }
            // ROLLBACK TO SAVEPOINT leaves a failed transaction usable; it releases no lock
            // and forgets no relation (a relation created after the savepoint is gone, and
            // a name that no longer resolves harms no one).
            Stmt::Transaction(TransactionKind::RollbackToSavepoint) if self.status == TransactionStatus::Failed => {
                self.status = TransactionStatus::InBlock
            }
            Stmt::Rename(Rename {
                kind: ObjectKind::Schema,
                object,
                new_name,
                ..
            }) => {
                for created in self
                    .created
                    .iter_mut()
                    .filter(|c| c.schema.as_ref() == Some(&object.name))
                {
                    created.schema = Some(new_name.clone());
                }
            }
            Stmt::Drop(drop) if drop.kind == ObjectKind::Schema => {
                let schemas: Vec<&String> = drop.objects.iter().map(|schema| &schema.name).collect();
                self.created
                    .retain(|created| !created.schema.as_ref().is_some_and(|s| schemas.contains(&s)));
            }
            Stmt::Drop(drop) if is_relation(drop.kind) || drop.kind == ObjectKind::Index => {
                for object in &drop.objects {
                    if catalog.created_in_transaction(object) == Some(true) {
                        self.forget(object);
                    }
                }
            }
            _ => {
                let created = relations_created(stmt, catalog);
                if !created.is_empty() {
                    // A renamed or moved relation no longer stands under its old name.
                    if let Stmt::Rename(Rename { object, .. }) | Stmt::SetSchema(SetSchema { object, .. }) = stmt {
                        self.forget(object);
                    }
                }
                self.created.extend(created);
            }
        }
    }

    /// Forget `relation`, which no longer stands under that name.
    fn forget(&mut self, relation: &QualifiedName) {
        self.created.retain(|created| !created.may_be(relation));
    }
}

/// Relation kinds (besides indexes) a transaction can create and rename or move.
fn is_relation(kind: ObjectKind) -> bool {
    matches!(
        kind,
        ObjectKind::Table | ObjectKind::View | ObjectKind::MaterializedView | ObjectKind::ForeignTable
    )
}

/// The relations `stmt` creates in the running transaction, under their new names.
pub fn relations_created(stmt: &Stmt, catalog: &dyn Catalog) -> Vec<QualifiedName> {
    match stmt {
        Stmt::CreateTable(create) => vec![create.table.clone()],
        Stmt::CreateTableAs { table, .. } => vec![table.clone()],
        // IF NOT EXISTS may name an index that already exists: not known to be new.
        Stmt::CreateIndex(index) if !index.if_not_exists => index
            .name
            .iter()
            .map(|name| QualifiedName::new(index.table.schema.as_deref(), name))
            .collect(),
        Stmt::Rename(Rename {
            kind,
            object,
            subname: None,
            new_name,
        }) if (is_relation(*kind) || *kind == ObjectKind::Index)
            && catalog.created_in_transaction(object) == Some(true) =>
        {
            vec![QualifiedName::new(object.schema.as_deref(), new_name)]
        }
        Stmt::SetSchema(SetSchema {
            kind,
            object,
            new_schema,
        }) if is_relation(*kind) && catalog.created_in_transaction(object) == Some(true) => {
            vec![QualifiedName::new(Some(new_schema), &object.name)]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::NoCatalog;
    use crate::model::CreateTable;

    fn create(name: &str) -> Stmt {
        Stmt::CreateTable(CreateTable {
            table: QualifiedName::new(None, name),
            ..CreateTable::default()
        })
    }

    #[test]
    fn a_block_opens_at_begin_and_ends_at_commit_with_what_it_created() {
        let mut tx = Transaction::default();
        assert!(!tx.context(Placement::ALONE).in_transaction_block);
        tx.observe(&Stmt::Transaction(TransactionKind::Begin), &NoCatalog);
        tx.observe(&create("t"), &NoCatalog);
        assert!(tx.context(Placement::ALONE).in_transaction_block);
        assert_eq!(tx.created(), &[QualifiedName::new(None, "t")]);
        tx.observe(&Stmt::Transaction(TransactionKind::Commit), &NoCatalog);
        assert_eq!(tx.status(), TransactionStatus::Idle);
        assert!(tx.created().is_empty());
    }

    #[test]
    fn several_statements_and_nested_ones_run_in_a_transaction() {
        let tx = Transaction::default();
        let several = Placement {
            multi_statement: true,
            nested: false,
        };
        assert!(tx.context(several).in_transaction_block);
        assert_eq!(tx.context(Placement::NESTED), NESTED_CONTEXT);
    }

    #[test]
    fn rollback_to_savepoint_recovers_a_failed_block_and_keeps_its_relations() {
        let mut tx = Transaction::with_status(TransactionStatus::InBlock);
        tx.observe(&create("t"), &NoCatalog);
        tx.set_status(TransactionStatus::Failed);
        tx.observe(&Stmt::Transaction(TransactionKind::RollbackToSavepoint), &NoCatalog);
        assert_eq!(tx.status(), TransactionStatus::InBlock);
        assert_eq!(tx.created().len(), 1);
    }

    #[test]
    fn what_an_ended_transaction_created_is_forgotten_only_outside_any_transaction() {
        let mut tx = Transaction::with_status(TransactionStatus::InBlock);
        tx.observe(&create("t"), &NoCatalog);
        tx.set_status(TransactionStatus::Idle);
        tx.set_implicit(true);
        tx.forget_ended();
        assert_eq!(tx.created().len(), 1);
        tx.set_implicit(false);
        tx.forget_ended();
        assert!(tx.created().is_empty());
    }

    #[test]
    fn a_file_counts_its_relations_as_new_until_commit() {
        let mut tx = Transaction::file();
        tx.observe(&create("t"), &NoCatalog);
        tx.forget_ended();
        assert_eq!(tx.created().len(), 1);
        assert!(!tx.context(Placement::ALONE).in_transaction_block);
        tx.observe(&Stmt::Transaction(TransactionKind::Commit), &NoCatalog);
        assert!(tx.created().is_empty());
    }
}
