//! The session's transaction as the guard sees it, one model for the three adapters:
//! whether a transaction block is open (or failed), whether an implicit transaction is,
//! and the relations created in the running transaction. Each adapter feeds it the
//! statements it lets run (`observe`) and, where the server says where the session
//! stands, the server's word (`set_status`); every statement's `Context` comes from it.
//!
//! The extension reads the status from the backend (`IsTransactionBlock`) and asks the
//! relcache what a transaction created; the proxy reads the status from ReadyForQuery;
//! the CLI has only the file, which it reads as one transaction.

use std::time::Instant;

use crate::bookkeeping::is_bookkeeping;
use crate::catalog::Catalog;
use crate::finding::Lock;
use crate::locks::table_locks;
use crate::model::{
    AlterAction, Constraint, ConstraintKind, Context, LockLevel, ObjectKind, QualifiedName, Rename, SetSchema,
    SetSetting, SettingChange, Statement, Stmt, TransactionKind,
};
use crate::sql::first_line;

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
    held_locks: Vec::new(),
    added_not_valid: Vec::new(),
    commits_later: true,
    renamed_without_view: Vec::new(),
};

/// How an unqualified name resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Naming {
    /// By the session's search_path, which is not known here: an unqualified name may be
    /// any schema's, so it is surely a created relation only when written the same way
    /// (the proxy asks the server more), and forgetting a name forgets every relation it
    /// may stand for.
    #[default]
    SearchPath,
    /// To `public`, as a migration file is read: `t` and `public.t` are the same table.
    Public,
}

impl Naming {
    /// Is `created` surely the relation `name` stands for?
    fn same(self, created: &QualifiedName, name: &QualifiedName) -> bool {
        match self {
            Naming::SearchPath => created == name,
            Naming::Public => created.name == name.name && public(&created.schema) == public(&name.schema),
        }
    }

    /// May `name` stand for `created` (so that dropping, renaming or moving it must forget
    /// `created`)?
    fn may_be(self, created: &QualifiedName, name: &QualifiedName) -> bool {
        match self {
            Naming::SearchPath => created.may_be(name),
            Naming::Public => self.same(created, name),
        }
    }

    /// Is `created` in schema `schema`?
    fn in_schema(self, created: &QualifiedName, schema: &str) -> bool {
        match self {
            Naming::SearchPath => created.schema.as_deref() == Some(schema),
            Naming::Public => public(&created.schema) == public(&Some(schema.to_string())),
        }
    }
}

/// A schema with `public` written as no schema.
fn public(schema: &Option<String>) -> Option<&str> {
    schema.as_deref().filter(|schema| *schema != "public")
}

/// A lock a transaction holds that blocks reads or writes of a table that existed before
/// it: every query of that kind on the table waits until the transaction ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    pub table: QualifiedName,
    pub level: LockLevel,
    /// The statement that took it: its first line.
    pub statement: String,
    /// When the adapter saw the statement let through.
    pub since: Instant,
    /// The subtransaction it was taken in (`Transaction::subtransaction`): rolling that
    /// back releases it.
    pub subtransaction: u32,
}

impl HeldLock {
    /// The lock as findings describe it.
    pub fn lock(&self) -> Lock {
        Lock {
            level: self.level,
            relation: self.table.clone(),
        }
    }
}

/// A constraint the transaction added NOT VALID: validating it before the transaction
/// ends scans the table under the lock the ADD took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedNotValid {
    pub table: QualifiedName,
    pub name: String,
    pub foreign_key: bool,
}

/// A relation the transaction renamed or moved to another schema while it existed before
/// (rule rename_table): code still using the old name breaks when the transaction commits,
/// unless by then a view under the old name reads all of the relation (`SELECT * FROM`
/// its new name), which keeps old code reading and writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRename {
    pub kind: ObjectKind,
    /// The name it had, as written.
    pub old: QualifiedName,
    /// The name it has now: the new name in the old schema, or the old name in the new
    /// schema (`moved`).
    pub new: QualifiedName,
    /// Moved by SET SCHEMA rather than renamed.
    pub moved: bool,
    /// The statement that renamed or moved it (its acknowledgements count at commit).
    pub statement: String,
    /// The subtransaction that renamed it: rolling that back undoes the rename.
    renamed_in: u32,
    /// The subtransaction that made the view under the old name, while it stands.
    view_in: Option<u32>,
}

impl PendingRename {
    /// The same rename (by the same statement).
    fn same(&self, other: &PendingRename) -> bool {
        self.old == other.old && self.new == other.new && self.statement == other.statement
    }

    /// What `stmt` renames or moves, if it is ALTER ... RENAME TO or SET SCHEMA of an
    /// object (not of a column or constraint), not yet checked to be a relation.
    pub fn of(stmt: &Stmt) -> Option<PendingRename> {
        match stmt {
            Stmt::Rename(Rename {
                kind,
                object,
                subname: None,
                new_name,
            }) => Some(PendingRename::new(
                *kind,
                object.clone(),
                QualifiedName::new(object.schema.as_deref(), new_name),
                false,
            )),
            Stmt::SetSchema(SetSchema {
                kind,
                object,
                new_schema,
            }) => Some(PendingRename::new(
                *kind,
                object.clone(),
                QualifiedName::new(Some(new_schema), &object.name),
                true,
            )),
            _ => None,
        }
    }

    /// A rename (or, `moved`, a move to another schema) of `old`, now `new`.
    pub fn new(kind: ObjectKind, old: QualifiedName, new: QualifiedName, moved: bool) -> PendingRename {
        PendingRename {
            kind,
            old,
            new,
            moved,
            statement: String::new(),
            renamed_in: TOP_SUBTRANSACTION,
            view_in: None,
        }
    }
}

/// The number of a transaction's top level (PostgreSQL's TopSubTransactionId).
pub const TOP_SUBTRANSACTION: u32 = 1;

/// One session's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    status: TransactionStatus,
    /// An implicit transaction is open besides any block: an extended-protocol batch until
    /// its Sync, or a migration file that a tool runs as one transaction.
    implicit: bool,
    /// Relations (tables, indexes, views) created in the running transaction by
    /// statements the server has run, as written: other sessions cannot see them, so
    /// their locks harm no one.
    created: Vec<QualifiedName>,
    /// Relations created by statements judged but not run yet (earlier statements of the
    /// message being judged; every statement of a file): they do not exist on the server,
    /// so only their names tell.
    pending: Vec<QualifiedName>,
    naming: Naming,
    /// A statement judged since the last `ran` may have changed where unqualified names
    /// go (the search_path, the role, the schemas): what the server said of a name
    /// before the message may no longer hold for it.
    search_path_changed: bool,
    /// A SET LOCAL (or a `set_config`, which may be local) of the search_path or the
    /// role ran in this transaction: its end puts the old one back.
    search_path_set_locally: bool,
    /// Locks the transaction holds that block reads or writes of tables that existed
    /// before it, the strongest per table, in the order taken.
    locks: Vec<HeldLock>,
    /// Constraints added NOT VALID in the transaction.
    added_not_valid: Vec<AddedNotValid>,
    /// Relations renamed or moved in the transaction, with or without a view for the
    /// old name so far.
    renames: Vec<PendingRename>,
    /// The session's lock_timeout (ms, 0 = wait forever), where the adapter knows it.
    lock_timeout_ms: u64,
    /// The subtransaction statements run in now, numbered as PostgreSQL numbers them
    /// (SubTransactionId: the top level is 1, each new one, nested or not, the next):
    /// the extension reads it from the backend; for the proxy and the CLI the SAVEPOINT,
    /// RELEASE and ROLLBACK TO statements move it.
    subtransaction: u32,
    /// The savepoints open, innermost last: name and subtransaction.
    savepoints: Vec<(String, u32)>,
    /// The last subtransaction number given out.
    last_subtransaction: u32,
}

impl Default for Transaction {
    fn default() -> Transaction {
        Transaction::IDLE
    }
}

impl Transaction {
    /// A session outside any transaction that knows nothing more.
    pub const IDLE: Transaction = Transaction {
        status: TransactionStatus::Idle,
        implicit: false,
        created: Vec::new(),
        pending: Vec::new(),
        naming: Naming::SearchPath,
        search_path_changed: false,
        search_path_set_locally: false,
        locks: Vec::new(),
        added_not_valid: Vec::new(),
        renames: Vec::new(),
        lock_timeout_ms: 0,
        subtransaction: TOP_SUBTRANSACTION,
        savepoints: Vec::new(),
        last_subtransaction: TOP_SUBTRANSACTION,
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
    /// Unqualified names are `public`'s, as in a migration's usual search_path.
    pub fn file() -> Transaction {
        Transaction {
            implicit: true,
            naming: Naming::Public,
            ..Transaction::default()
        }
    }

    /// A script run statement by statement (`psql -f`, a tool's autocommit mode): each
    /// statement outside a `BEGIN` block commits on its own. Unqualified names are
    /// `public`'s, as in `file`.
    pub fn script() -> Transaction {
        Transaction {
            naming: Naming::Public,
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
            held_locks: self.locks.clone(),
            added_not_valid: self.added_not_valid.clone(),
            commits_later: self.running() || placement.multi_statement || placement.nested,
            // Judged at the transaction's end (`rules::decide_commit`), not per statement.
            renamed_without_view: Vec::new(),
        }
    }

    /// The renames and moves of relations that no view for the old name covers now:
    /// committing them breaks code that still uses the old name.
    pub fn renamed_without_view(&self) -> Vec<PendingRename> {
        self.renames
            .iter()
            .filter(|rename| rename.view_in.is_none())
            .cloned()
            .collect()
    }

    /// The renames `judged` (this transaction as a statement judged on a copy of it left
    /// it) has without a view and this one does not: what that statement does when it
    /// runs (`require_renames`). True for a rename it makes (not known here at all),
    /// false for one known here whose view it drops or renames away.
    pub fn unmet_added_by(&self, judged: &Transaction) -> Vec<(PendingRename, bool)> {
        let mine = self.renamed_without_view();
        judged
            .renamed_without_view()
            .into_iter()
            .filter(|rename| !mine.iter().any(|known| known.same(rename)))
            .map(|rename| {
                let made = !self.renames.iter().any(|known| known.same(&rename));
                (rename, made)
            })
            .collect()
    }

    /// A statement judged earlier runs (`unmet_added_by`): the renames it makes are this
    /// transaction's; the view it takes away from a rename made before leaves that one
    /// uncovered, if this transaction made it.
    pub fn require_renames(&mut self, unmet: &[(PendingRename, bool)]) {
        for (rename, made) in unmet {
            match self.renames.iter_mut().find(|known| known.same(rename)) {
                Some(known) => known.view_in = None,
                // Made by the subtransaction that runs it.
                None if *made => self.renames.push(PendingRename {
                    renamed_in: self.subtransaction,
                    view_in: None,
                    ..rename.clone()
                }),
                None => {}
            }
        }
    }

    /// A DROP, rename or move judged earlier runs: a view it takes away from a rename no
    /// longer stands in for it (the renames it makes come from `unmet_added_by`, judged
    /// with the catalog).
    pub fn unview_by(&mut self, statement: &Statement) {
        let naming = self.naming;
        let objects: Vec<&QualifiedName> = match &statement.stmt {
            Stmt::Rename(Rename {
                kind,
                object,
                subname: None,
                ..
            })
            | Stmt::SetSchema(SetSchema { kind, object, .. })
                if is_relation(*kind) =>
            {
                vec![object]
            }
            Stmt::Drop(drop) if is_relation(drop.kind) => drop.objects.iter().collect(),
            _ => Vec::new(),
        };
        for object in objects {
            for rename in self
                .renames
                .iter_mut()
                .filter(|rename| naming.may_be(&rename.old, object))
            {
                rename.view_in = None;
            }
        }
    }

    /// The renames, taken away (a COMMIT or ROLLBACK is sent, whose answer says whether
    /// they are over: `restore_renames` if not).
    pub fn take_renames(&mut self) -> Vec<PendingRename> {
        std::mem::take(&mut self.renames)
    }

    /// Renames taken away that still stand (the COMMIT or ROLLBACK did not run).
    pub fn restore_renames(&mut self, mut renames: Vec<PendingRename>) {
        renames.append(&mut self.renames);
        self.renames = renames;
    }

    /// The transaction's end was judged (rule rename_table at its commit): its renames
    /// are committed, or gone with it.
    pub fn forget_renames(&mut self) {
        self.renames.clear();
    }

    /// The locks the transaction holds that block reads or writes of existing tables.
    pub fn locks(&self) -> &[HeldLock] {
        &self.locks
    }

    /// Locks that statements judged earlier took, once they run (an Execute of a prepared
    /// statement): held from now, in the subtransaction running now.
    pub fn record_locks(&mut self, locks: &[HeldLock]) {
        let now = Instant::now();
        for lock in locks {
            self.hold(HeldLock {
                since: now,
                subtransaction: self.subtransaction,
                ..lock.clone()
            });
        }
    }

    /// What the server says the session holds of each lock followed (in `locks()`'s
    /// order): the strongest lock on its table, or none. A routine's subtransaction rolled
    /// back (an error its EXCEPTION block caught, which the proxy cannot follow) released
    /// what it took: a lock held no longer, or now too weak to block writes, is forgotten;
    /// one held weaker than followed counts at the level held.
    pub fn locks_held_now(&mut self, held: &[Option<LockLevel>]) {
        let mut held = held.iter();
        self.locks.retain_mut(|lock| match held.next().copied().flatten() {
            Some(level) if level.blocks_writes() => {
                lock.level = lock.level.min(level);
                true
            }
            _ => false,
        });
    }

    /// The locks `statement` (its first line) took are taken again from `since`: its
    /// earlier attempt gave up waiting and was rolled back, and it is tried again.
    pub fn locks_taken_again(&mut self, statement: &str, since: Instant) {
        for lock in self.locks.iter_mut().filter(|lock| lock.statement == statement) {
            lock.since = since;
        }
    }

    /// Is a savepoint open (as the proxy and the CLI follow them)? In a failed transaction
    /// the locks taken before it are still held.
    pub fn savepoints_open(&self) -> bool {
        !self.savepoints.is_empty()
    }

    fn hold(&mut self, lock: HeldLock) {
        let same_table = self.locks.iter().filter(|held| held.table == lock.table);
        if same_table.clone().any(|held| held.level >= lock.level) {
            return;
        }
        match self
            .locks
            .iter_mut()
            .find(|held| held.table == lock.table && held.subtransaction == lock.subtransaction)
        {
            // A stronger lock on the same table in the same subtransaction: the strongest
            // counts, since the first.
            Some(held) => {
                held.level = lock.level;
                held.statement = lock.statement;
            }
            // Taken in a subtransaction of its own, a rollback of which releases it alone.
            None => self.locks.push(lock),
        }
    }

    /// The subtransaction statements run in now (the extension: the backend's
    /// GetCurrentSubTransactionId()).
    pub fn set_subtransaction(&mut self, subtransaction: u32) {
        self.subtransaction = subtransaction;
    }

    /// Subtransaction `id` rolled back (ROLLBACK TO SAVEPOINT, or an error caught by a
    /// PL/pgSQL EXCEPTION block): PostgreSQL releases the locks taken in it and in the
    /// subtransactions it contained (their numbers are larger).
    pub fn subtransaction_aborted(&mut self, id: u32, parent: u32) {
        self.locks.retain(|lock| lock.subtransaction < id);
        self.renames.retain(|rename| rename.renamed_in < id);
        for rename in &mut self.renames {
            rename.view_in = rename.view_in.filter(|&view_in| view_in < id);
        }
        self.subtransaction = parent;
    }

    /// Subtransaction `id` committed (RELEASE SAVEPOINT, a PL/pgSQL block that ended
    /// without error): its locks, and those of what it contained, are its parent's now.
    pub fn subtransaction_committed(&mut self, id: u32, parent: u32) {
        for lock in self.locks.iter_mut().filter(|lock| lock.subtransaction >= id) {
            lock.subtransaction = parent;
        }
        for rename in &mut self.renames {
            if rename.renamed_in >= id {
                rename.renamed_in = parent;
            }
            if rename.view_in.is_some_and(|view_in| view_in >= id) {
                rename.view_in = Some(parent);
            }
        }
        self.subtransaction = parent;
    }

    /// A SAVEPOINT, RELEASE or ROLLBACK TO judged earlier ran (an Execute of a prepared
    /// statement).
    pub fn savepoint_ran(&mut self, kind: &TransactionKind) {
        if let TransactionKind::RollbackToSavepoint(_) = kind {
            self.observe(
                &Statement::new(Stmt::Transaction(kind.clone()), ""),
                &crate::catalog::NoCatalog,
            );
        } else {
            self.follow_savepoints(kind);
        }
    }

    /// The SAVEPOINT, RELEASE and ROLLBACK TO statements, for an adapter that sees no
    /// subtransaction numbers (the proxy, the CLI).
    fn follow_savepoints(&mut self, kind: &TransactionKind) {
        let parent_of = |savepoints: &[(String, u32)], index: usize| {
            index
                .checked_sub(1)
                .map_or(TOP_SUBTRANSACTION, |outer| savepoints[outer].1)
        };
        match kind {
            TransactionKind::Savepoint(name) if self.running() => {
                self.last_subtransaction = self.last_subtransaction.max(self.subtransaction) + 1;
                self.savepoints.push((name.clone(), self.last_subtransaction));
                self.subtransaction = self.last_subtransaction;
            }
            TransactionKind::Release(name) => {
                if let Some(index) = self.savepoints.iter().rposition(|(open, _)| open == name) {
                    let parent = parent_of(&self.savepoints, index);
                    self.subtransaction_committed(self.savepoints[index].1, parent);
                    self.savepoints.truncate(index);
                }
            }
            TransactionKind::RollbackToSavepoint(name) => {
                if let Some(index) = self.savepoints.iter().rposition(|(open, _)| open == name) {
                    let parent = parent_of(&self.savepoints, index);
                    self.subtransaction_aborted(self.savepoints[index].1, parent);
                    // The savepoint stays, as a new subtransaction.
                    self.savepoints.truncate(index + 1);
                    self.last_subtransaction = self.last_subtransaction.max(self.subtransaction) + 1;
                    self.savepoints[index].1 = self.last_subtransaction;
                    self.subtransaction = self.last_subtransaction;
                }
            }
            _ => {}
        }
    }

    /// The relations created in the running transaction by statements the server ran.
    pub fn created(&self) -> &[QualifiedName] {
        &self.created
    }

    /// The relations created by statements judged but not run yet.
    pub fn pending(&self) -> &[QualifiedName] {
        &self.pending
    }

    /// Was a relation created in the running transaction, or by a statement before this
    /// one, under the name `name`, written so that it surely is the same one?
    pub fn created_under(&self, name: &QualifiedName) -> bool {
        self.created
            .iter()
            .chain(&self.pending)
            .any(|c| self.naming.same(c, name))
    }

    /// Might a relation created by a statement judged but not run yet be `name`, as far
    /// as names tell (one of them may be unqualified)? The server then tells whether the
    /// name resolved to anything before the message (see the proxy's `SessionCatalog`).
    pub fn pending_may_be(&self, name: &QualifiedName) -> bool {
        self.pending.iter().any(|c| c.may_be(name))
    }

    /// May an unqualified name resolve otherwise than the server said before the message?
    pub fn search_path_changed(&self) -> bool {
        self.search_path_changed
    }

    /// Note whether `statement` may change where unqualified names go: SET or RESET of
    /// the search_path or of the role (`$user` in the search_path), RESET ALL, DISCARD
    /// ALL, a `set_config` of those or of a name computed when it runs, and statements
    /// that create, rename or drop schemas or change who may use them (the search_path
    /// skips schemas the role may not use).
    pub fn note_settings(&mut self, statement: &Statement) {
        let moves_names = |name: &str| matches!(name, "search_path" | "role" | "session_authorization");
        let (changes, local) = match &statement.stmt {
            Stmt::Set(SetSetting { name, local, .. }) => (name.as_deref().is_none_or(moves_names), *local),
            Stmt::Discard { all } => (*all, false),
            Stmt::Other { tag, .. } => (
                tag.starts_with("GRANT")
                    || tag.starts_with("REVOKE")
                    || matches!(
                        tag.as_str(),
                        "CREATE SCHEMA"
                            | "ALTER SCHEMA"
                            | "DROP OWNED"
                            | "REASSIGN OWNED"
                            | "CREATE EXTENSION"
                            | "ALTER EXTENSION"
                    ),
                false,
            ),
            Stmt::Drop(drop) => (drop.kind == ObjectKind::Schema, false),
            Stmt::Rename(rename) => (rename.kind == ObjectKind::Schema, false),
            _ => (false, false),
        };
        let set_config = statement.changes.iter().any(|change| match change {
            SettingChange::SetConfig(name) => moves_names(name),
            SettingChange::SetConfigComputed => true,
            SettingChange::Stored { .. } => false,
        });
        if changes || set_config {
            self.search_path_changed = true;
        }
        if (changes && local) || set_config {
            self.search_path_set_locally = true;
        }
    }

    /// Where unqualified names go may change in a way not told apart: a function's own
    /// SET search_path, for one.
    pub fn search_path_may_change(&mut self) {
        self.search_path_changed = true;
    }

    /// Nothing was created in the running transaction, run or pending.
    pub fn created_nothing(&self) -> bool {
        self.created.is_empty() && self.pending.is_empty()
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
            self.pending.clear();
            self.locks.clear();
            self.end_subtransactions();
            self.added_not_valid.clear();
            self.search_path_set_locally = false;
        }
    }

    /// The transaction ended, and its savepoints with it.
    fn end_subtransactions(&mut self) {
        self.savepoints.clear();
        self.subtransaction = TOP_SUBTRANSACTION;
        self.last_subtransaction = TOP_SUBTRANSACTION;
    }

    /// Relations that a statement judged earlier created, once it runs (an Execute of a
    /// prepared statement).
    pub fn record_created(&mut self, relations: &[QualifiedName]) {
        self.created.extend(relations.iter().cloned());
    }

    /// Relations created by statements judged but not run yet (those a function or DO
    /// block runs, judged before the statement that runs it).
    pub fn add_pending(&mut self, relations: &[QualifiedName]) {
        self.pending.extend(relations.iter().cloned());
    }

    /// The statements judged so far have run: their relations exist on the server.
    pub fn ran(&mut self) {
        if self.search_path_changed {
            // An unqualified name may now stand for another relation: only qualified
            // names stay known.
            self.created.retain(|created| created.schema.is_some());
            self.pending.retain(|created| created.schema.is_some());
        }
        self.created.append(&mut self.pending);
        self.search_path_changed = false;
    }

    /// The statements judged in `judged` (which started from this transaction) have been
    /// sent to run: take the relations as they left them. The status stays the server's.
    pub fn ran_as(&mut self, mut judged: Transaction) {
        judged.ran();
        self.created = judged.created;
        self.locks = judged.locks;
        self.savepoints = judged.savepoints;
        self.subtransaction = judged.subtransaction;
        self.last_subtransaction = judged.last_subtransaction;
        self.added_not_valid = judged.added_not_valid;
        self.renames = judged.renames;
        self.pending.clear();
        self.search_path_changed = false;
        self.search_path_set_locally = judged.search_path_set_locally;
    }

    /// `statement` is let through: follow the transaction statements, the relations it
    /// creates, renames, moves and drops (pending until `ran`), the locks it takes on
    /// tables that existed before the transaction, and whether it may move unqualified
    /// names. `catalog` tells whether a relation was created in this transaction.
    pub fn observe(&mut self, statement: &Statement, catalog: &dyn Catalog) {
        let stmt = &statement.stmt;
        self.note_settings(statement);
        let now = Instant::now();
        for (table, level) in table_locks(stmt) {
            // Held already at this strength: nothing to learn (and no catalog question).
            if self.locks.iter().any(|held| held.table == table && held.level >= level) {
                continue;
            }
            // Migration tools' own tables block no one else; new tables no one can see.
            if is_bookkeeping(&table)
                || self.created_under(&table)
                || catalog.created_in_transaction(&table) == Some(true)
            {
                continue;
            }
            self.hold(HeldLock {
                table,
                level,
                statement: first_line(&statement.source),
                since: now,
                subtransaction: self.subtransaction,
            });
        }
        if let Stmt::AlterTable(alter) = stmt {
            for action in &alter.actions {
                if let AlterAction::AddConstraint(Constraint {
                    name: Some(name),
                    kind,
                    not_valid: true,
                }) = action
                {
                    self.added_not_valid.push(AddedNotValid {
                        table: alter.table.clone(),
                        name: name.clone(),
                        foreign_key: matches!(kind, ConstraintKind::ForeignKey { .. }),
                    });
                }
            }
        }
        self.follow_renames(statement, catalog);
        match stmt {
            Stmt::Transaction(TransactionKind::Begin) if self.status == TransactionStatus::Idle => {
                self.status = TransactionStatus::InBlock
            }
            Stmt::Transaction(TransactionKind::Commit | TransactionKind::Rollback | TransactionKind::Prepare) => {
                self.status = TransactionStatus::Idle;
                self.created.clear();
                self.pending.clear();
                self.locks.clear();
                self.end_subtransactions();
                self.added_not_valid.clear();
                self.renames.clear();
                self.search_path_changed |= std::mem::take(&mut self.search_path_set_locally);
            }
            Stmt::Transaction(kind @ (TransactionKind::Savepoint(_) | TransactionKind::Release(_))) => {
                self.follow_savepoints(kind)
            }
            // ROLLBACK TO SAVEPOINT leaves a failed transaction usable, and releases the
            // locks taken since the savepoint. The relations created since are gone, and
            // one of them may have hidden an older relation of the same name: every
            // relation of the transaction is forgotten (stricter, never looser).
            Stmt::Transaction(kind @ TransactionKind::RollbackToSavepoint(_)) => {
                if self.status == TransactionStatus::Failed {
                    self.status = TransactionStatus::InBlock
                }
                self.follow_savepoints(kind);
                self.created.clear();
                self.pending.clear();
                self.search_path_changed |= self.search_path_set_locally;
            }
            Stmt::Rename(Rename {
                kind: ObjectKind::Schema,
                object,
                new_name,
                ..
            }) => {
                let naming = self.naming;
                for created in self.created.iter_mut().chain(self.pending.iter_mut()) {
                    if naming.in_schema(created, &object.name) {
                        created.schema = Some(new_name.clone());
                    }
                }
            }
            Stmt::Drop(drop) if drop.kind == ObjectKind::Schema => {
                let naming = self.naming;
                let dropped = |created: &QualifiedName| drop.objects.iter().any(|s| naming.in_schema(created, &s.name));
                self.created.retain(|created| !dropped(created));
                self.pending.retain(|created| !dropped(created));
            }
            Stmt::Drop(drop) if is_relation(drop.kind) => self.forget_created(&drop.objects, catalog),
            Stmt::DropIndex(drop) => self.forget_created(&drop.indexes, catalog),
            _ => {
                let created = relations_created(stmt, catalog);
                if !created.is_empty() {
                    // A renamed or moved relation no longer stands under its old name.
                    if let Stmt::Rename(Rename { object, .. }) | Stmt::SetSchema(SetSchema { object, .. }) = stmt {
                        self.forget(object);
                    }
                }
                self.pending.extend(created);
            }
        }
        // A file that shows its own transaction control runs what lies outside its blocks
        // one statement at a time, as psql would.
        if self.naming == Naming::Public
            && matches!(
                stmt,
                Stmt::Transaction(
                    TransactionKind::Begin
                        | TransactionKind::Commit
                        | TransactionKind::Rollback
                        | TransactionKind::Prepare
                )
            )
        {
            self.implicit = false;
        }
        // Outside any transaction a statement commits when it ends, and its locks go.
        if !self.running() {
            self.locks.clear();
            self.end_subtransactions();
            self.added_not_valid.clear();
        }
    }

    /// Rule rename_table's part of `observe`: a relation that existed before the
    /// transaction renamed or moved, and a view under its old name made, replaced or
    /// dropped.
    /// (Public for the proxy: a prepared statement's part, when an Execute runs it.)
    pub fn follow_renames(&mut self, statement: &Statement, catalog: &dyn Catalog) {
        let stmt = &statement.stmt;
        let naming = self.naming;
        // Outside a running transaction a rename was judged as it ran (it commits then).
        let running = self.running();
        let is_new = |this: &Transaction, name: &QualifiedName| {
            this.created_under(name) || catalog.created_in_transaction(name) == Some(true)
        };
        // The view for an old name stops standing in when it is dropped, replaced,
        // renamed or moved.
        let unviewed = |renames: &mut Vec<PendingRename>, name: &QualifiedName| {
            for rename in renames.iter_mut().filter(|rename| naming.may_be(&rename.old, name)) {
                rename.view_in = None;
            }
        };
        let renamed = PendingRename::of(stmt).filter(|rename| is_relation(rename.kind));
        match stmt {
            _ if renamed.is_some() => {
                let Some(rename) = renamed else {
                    return;
                };
                unviewed(&mut self.renames, &rename.old);
                if running && !is_new(self, &rename.old) && renames_a_relation(rename.kind, &rename.old, catalog) {
                    let rename = PendingRename {
                        statement: statement.source.clone(),
                        renamed_in: self.subtransaction,
                        ..rename
                    };
                    self.require_renames(&[(rename, true)]);
                }
            }
            Stmt::Drop(drop) if is_relation(drop.kind) => {
                for object in &drop.objects {
                    unviewed(&mut self.renames, object);
                }
            }
            Stmt::CreateView(view) => {
                unviewed(&mut self.renames, &view.view);
                if view.temporary {
                    return;
                }
                let subtransaction = self.subtransaction;
                for rename in &mut self.renames {
                    let stands_in = naming.same(&rename.old, &view.view)
                        && view
                            .all_of
                            .as_ref()
                            .is_some_and(|all_of| naming.same(&rename.new, all_of));
                    if stands_in {
                        rename.view_in = Some(subtransaction);
                    }
                }
            }
            _ => {}
        }
    }

    /// Forget the relations among `objects` that were created in this transaction.
    fn forget_created(&mut self, objects: &[QualifiedName], catalog: &dyn Catalog) {
        for object in objects {
            if catalog.created_in_transaction(object) == Some(true) {
                self.forget(object);
            }
        }
    }

    /// Forget every relation `name` may stand for: it no longer stands under that name.
    fn forget(&mut self, name: &QualifiedName) {
        let naming = self.naming;
        self.created.retain(|created| !naming.may_be(created, name));
        self.pending.retain(|created| !naming.may_be(created, name));
    }
}

/// A statement a routine runs, as the proxy and the CLI follow it: they read a routine's
/// statements without its control flow, so a view one makes does not stand in for a
/// renamed relation (it may sit in a branch not taken, or in a block rolled back).
pub fn run_by_routine(statement: &Statement) -> Statement {
    let mut statement = statement.clone();
    if let Stmt::CreateView(view) = &mut statement.stmt {
        view.all_of = None;
    }
    statement
}

/// Does ALTER ... RENAME or SET SCHEMA of `object`, written as `kind`, rename a relation
/// that code reads and writes by name (rule rename_table)? ALTER TABLE renames sequences
/// and indexes too, which the catalog tells apart.
pub fn renames_a_relation(kind: ObjectKind, object: &QualifiedName, catalog: &dyn Catalog) -> bool {
    matches!(
        kind,
        ObjectKind::Table | ObjectKind::View | ObjectKind::MaterializedView | ObjectKind::ForeignTable
    ) && !matches!(catalog.relation_kind(object), Some('S' | 'i' | 'I'))
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
        // IF NOT EXISTS may leave a table that already exists: not known to be new.
        Stmt::CreateTable(create) if !create.if_not_exists => vec![create.table.clone()],
        Stmt::CreateTableAs {
            table,
            if_not_exists: false,
            ..
        } => vec![table.clone()],
        // OR REPLACE may replace a view that already exists: not known to be new.
        Stmt::CreateView(view) if !view.replace => vec![view.view.clone()],
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
    use crate::model::{CreateTable, Drop};

    fn q(name: &str) -> QualifiedName {
        match name.split_once('.') {
            Some((schema, name)) => QualifiedName::new(Some(schema), name),
            None => QualifiedName::bare(name),
        }
    }

    fn create(name: &str) -> Stmt {
        Stmt::CreateTable(CreateTable {
            table: q(name),
            ..CreateTable::default()
        })
    }

    fn drop_table(name: &str) -> Stmt {
        Stmt::Drop(Drop {
            kind: ObjectKind::Table,
            objects: vec![q(name)],
            if_exists: false,
            cascade: false,
        })
    }

    /// Answers from the transaction itself, as the CLI's catalog does.
    struct Own<'a>(&'a Transaction);

    impl Catalog for Own<'_> {
        fn created_in_transaction(&self, table: &QualifiedName) -> Option<bool> {
            Some(self.0.created_under(table))
        }
        fn column_type(&self, _: &QualifiedName, _: &str) -> Option<crate::TypeName> {
            None
        }
        fn function_volatility(&self, _: &QualifiedName) -> Option<crate::Volatility> {
            None
        }
        fn has_validated_not_null_check(&self, _: &QualifiedName, _: &str) -> Option<bool> {
            None
        }
        fn estimated_rows(&self, _: &QualifiedName) -> Option<f64> {
            None
        }
        fn is_partitioned(&self, _: &QualifiedName) -> Option<bool> {
            None
        }
        fn domain_has_constraints(&self, _: &crate::TypeName) -> Option<bool> {
            None
        }
        fn nullable_index_columns(&self, _: &QualifiedName, _: &str) -> Option<Vec<String>> {
            None
        }
        fn coercion(&self, _: &crate::TypeName, _: &crate::TypeName) -> Option<crate::types::Coercion> {
            None
        }
        fn type_change_dependents(
            &self,
            _: &crate::catalog::ColumnTypeChange,
        ) -> Option<crate::catalog::ColumnDependents> {
            None
        }
        fn is_superuser(&self) -> Option<bool> {
            None
        }
        fn server_version_num(&self) -> Option<u32> {
            None
        }
        fn timezone(&self) -> Option<String> {
            None
        }
    }

    fn observe(tx: &mut Transaction, stmt: Stmt) {
        let before = tx.clone();
        tx.observe(&Statement::new(stmt, ""), &Own(&before));
    }

    #[test]
    fn a_block_opens_at_begin_and_ends_at_commit_with_what_it_created() {
        let mut tx = Transaction::default();
        assert!(!tx.context(Placement::ALONE).in_transaction_block);
        observe(&mut tx, Stmt::Transaction(TransactionKind::Begin));
        observe(&mut tx, create("t"));
        assert!(tx.context(Placement::ALONE).in_transaction_block);
        assert_eq!(tx.pending(), &[q("t")]);
        tx.ran();
        assert_eq!(tx.created(), &[q("t")]);
        assert!(tx.pending().is_empty());
        observe(&mut tx, Stmt::Transaction(TransactionKind::Commit));
        assert_eq!(tx.status(), TransactionStatus::Idle);
        assert!(tx.created_nothing());
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
    fn rollback_to_savepoint_recovers_a_failed_block() {
        let mut tx = Transaction::with_status(TransactionStatus::InBlock);
        observe(&mut tx, create("t"));
        tx.set_status(TransactionStatus::Failed);
        observe(
            &mut tx,
            Stmt::Transaction(TransactionKind::RollbackToSavepoint("s".into())),
        );
        assert_eq!(tx.status(), TransactionStatus::InBlock);
    }

    #[test]
    fn what_an_ended_transaction_created_is_forgotten_only_outside_any_transaction() {
        let mut tx = Transaction::with_status(TransactionStatus::InBlock);
        tx.record_created(&[q("t")]);
        tx.set_status(TransactionStatus::Idle);
        tx.set_implicit(true);
        tx.forget_ended();
        assert_eq!(tx.created().len(), 1);
        tx.set_implicit(false);
        tx.forget_ended();
        assert!(tx.created_nothing());
    }

    #[test]
    fn a_file_counts_its_relations_as_new_until_commit() {
        let mut tx = Transaction::file();
        observe(&mut tx, create("t"));
        tx.forget_ended();
        assert!(tx.created_under(&q("t")));
        assert!(tx.created_under(&q("public.t")));
        assert!(!tx.context(Placement::ALONE).in_transaction_block);
        observe(&mut tx, Stmt::Transaction(TransactionKind::Commit));
        assert!(tx.created_nothing());
    }

    #[test]
    fn a_live_session_follows_a_move_only_of_what_it_created() {
        // The search_path is not known: `t` may be another schema's `t`.
        let mut tx = Transaction::with_status(TransactionStatus::InBlock);
        observe(&mut tx, create("s1.t"));
        assert!(tx.created_under(&q("s1.t")));
        assert!(!tx.created_under(&q("t")));
        assert!(tx.pending_may_be(&q("t")));
        // So moving `t` does not make `s3.t` new.
        observe(
            &mut tx,
            Stmt::SetSchema(SetSchema {
                kind: ObjectKind::Table,
                object: q("t"),
                new_schema: "s3".into(),
            }),
        );
        assert!(!tx.created_under(&q("s3.t")));
        // Moving the relation created here does.
        observe(
            &mut tx,
            Stmt::SetSchema(SetSchema {
                kind: ObjectKind::Table,
                object: q("s1.t"),
                new_schema: "s3".into(),
            }),
        );
        assert!(tx.created_under(&q("s3.t")));
        assert!(!tx.created_under(&q("s1.t")));
    }

    #[test]
    fn dropping_forgets_what_the_name_may_stand_for() {
        let mut tx = Transaction::with_status(TransactionStatus::InBlock);
        observe(&mut tx, create("t"));
        observe(&mut tx, create("s.t"));
        observe(&mut tx, drop_table("s.t"));
        // In a live session `t` may have been `s.t`: forgotten too (stricter, never looser).
        assert!(!tx.created_under(&q("t")));
        // A file reads `t` as `public.t`, another table.
        let mut file = Transaction::file();
        observe(&mut file, create("t"));
        observe(&mut file, create("s.t"));
        observe(&mut file, drop_table("s.t"));
        assert!(file.created_under(&q("t")));
        assert!(!file.created_under(&q("s.t")));
    }

    #[test]
    fn renaming_public_moves_the_unqualified_names_of_a_file() {
        let mut file = Transaction::file();
        observe(&mut file, create("t"));
        observe(
            &mut file,
            Stmt::Rename(Rename {
                kind: ObjectKind::Schema,
                object: q("public"),
                subname: None,
                new_name: "p2".into(),
            }),
        );
        assert!(file.created_under(&q("p2.t")));
    }

    #[test]
    fn if_not_exists_creates_nothing_known() {
        let mut tx = Transaction::with_status(TransactionStatus::InBlock);
        observe(
            &mut tx,
            Stmt::CreateTable(CreateTable {
                table: q("users"),
                if_not_exists: true,
                ..CreateTable::default()
            }),
        );
        observe(
            &mut tx,
            Stmt::CreateTableAs {
                table: q("totals"),
                materialized: true,
                if_not_exists: true,
            },
        );
        assert!(tx.created_nothing());
    }

    #[test]
    fn rollback_to_savepoint_forgets_every_relation() {
        // One created since the savepoint is gone, and may have hidden an older one.
        let mut tx = Transaction::with_status(TransactionStatus::InBlock);
        tx.record_created(&[q("a")]);
        observe(&mut tx, create("b"));
        observe(
            &mut tx,
            Stmt::Transaction(TransactionKind::RollbackToSavepoint("s".into())),
        );
        assert!(tx.created_nothing());
    }

    fn lock(table: &str) -> Stmt {
        Stmt::Lock {
            tables: vec![q(table)],
            mode: LockLevel::AccessExclusive,
        }
    }

    fn locked(tx: &Transaction) -> Vec<String> {
        tx.locks().iter().map(|lock| lock.table.to_string()).collect()
    }

    fn savepoint(kind: fn(String) -> TransactionKind, name: &str) -> Stmt {
        Stmt::Transaction(kind(name.to_string()))
    }

    #[test]
    fn rollback_to_a_savepoint_releases_the_locks_taken_since_and_release_keeps_them() {
        let mut tx = Transaction::default();
        observe(&mut tx, Stmt::Transaction(TransactionKind::Begin));
        observe(&mut tx, lock("a"));
        observe(&mut tx, savepoint(TransactionKind::Savepoint, "s1"));
        observe(&mut tx, lock("b"));
        observe(&mut tx, savepoint(TransactionKind::Savepoint, "s2"));
        observe(&mut tx, lock("c"));
        observe(&mut tx, savepoint(TransactionKind::Release, "s2"));
        assert_eq!(locked(&tx), ["a", "b", "c"]);
        // s1 contains what s2 took.
        observe(&mut tx, savepoint(TransactionKind::RollbackToSavepoint, "s1"));
        assert_eq!(locked(&tx), ["a"]);
        // s1 stays open, as a new subtransaction.
        observe(&mut tx, lock("d"));
        observe(&mut tx, savepoint(TransactionKind::RollbackToSavepoint, "s1"));
        assert_eq!(locked(&tx), ["a"]);
        observe(&mut tx, lock("e"));
        observe(&mut tx, savepoint(TransactionKind::Release, "s1"));
        observe(&mut tx, savepoint(TransactionKind::Savepoint, "s3"));
        observe(&mut tx, savepoint(TransactionKind::RollbackToSavepoint, "s3"));
        assert_eq!(locked(&tx), ["a", "e"]);
        // An unknown name changes nothing (the server refuses it).
        observe(&mut tx, savepoint(TransactionKind::RollbackToSavepoint, "nope"));
        assert_eq!(locked(&tx), ["a", "e"]);
        observe(&mut tx, Stmt::Transaction(TransactionKind::Commit));
        assert!(tx.locks().is_empty());
    }

    #[test]
    fn a_stronger_lock_in_a_subtransaction_is_released_with_it() {
        let mut tx = Transaction::with_status(TransactionStatus::InBlock);
        observe(
            &mut tx,
            Stmt::Lock {
                tables: vec![q("a")],
                mode: LockLevel::Share,
            },
        );
        observe(&mut tx, savepoint(TransactionKind::Savepoint, "s"));
        observe(&mut tx, lock("a"));
        assert_eq!(
            tx.locks().iter().map(|l| l.level).max(),
            Some(LockLevel::AccessExclusive)
        );
        observe(&mut tx, savepoint(TransactionKind::RollbackToSavepoint, "s"));
        let levels: Vec<LockLevel> = tx.locks().iter().map(|l| l.level).collect();
        assert_eq!(levels, [LockLevel::Share]);
    }

    #[test]
    fn the_backend_s_subtransaction_numbers_release_what_an_aborted_one_took() {
        // As the extension follows a PL/pgSQL EXCEPTION block, with PostgreSQL's numbers.
        let mut tx = Transaction::with_status(TransactionStatus::InBlock);
        observe(&mut tx, lock("a"));
        tx.set_subtransaction(2);
        observe(&mut tx, lock("b"));
        tx.subtransaction_committed(2, 1);
        tx.set_subtransaction(3);
        observe(&mut tx, lock("c"));
        tx.set_subtransaction(4);
        observe(&mut tx, lock("d"));
        tx.subtransaction_committed(4, 3);
        tx.subtransaction_aborted(3, 1);
        assert_eq!(locked(&tx), ["a", "b"]);
    }

    fn set(name: &str, local: bool) -> Statement {
        Statement {
            stmt: Stmt::Set(SetSetting {
                name: Some(name.to_string()),
                value: Some("app".to_string()),
                local,
            }),
            source: String::new(),
            changes: Vec::new(),
        }
    }

    #[test]
    fn names_that_may_resolve_otherwise_are_forgotten_unless_qualified() {
        let mut tx = Transaction::with_status(TransactionStatus::InBlock);
        observe(&mut tx, create("t"));
        observe(&mut tx, create("app.u"));
        tx.note_settings(&set("search_path", false));
        assert!(tx.search_path_changed());
        tx.ran();
        assert_eq!(tx.created(), &[q("app.u")]);
        assert!(!tx.search_path_changed());
        // A role is a schema of the search_path too ($user); other settings are not.
        tx.note_settings(&set("role", false));
        assert!(tx.search_path_changed());
        tx.ran();
        tx.note_settings(&set("work_mem", false));
        assert!(!tx.search_path_changed());
    }

    #[test]
    fn the_end_of_a_transaction_undoes_a_local_search_path() {
        let mut tx = Transaction::with_status(TransactionStatus::InBlock);
        tx.note_settings(&set("search_path", true));
        tx.ran();
        assert!(!tx.search_path_changed());
        observe(&mut tx, Stmt::Transaction(TransactionKind::Commit));
        assert!(tx.search_path_changed());
        // A plain SET outlives the transaction.
        let mut tx = Transaction::with_status(TransactionStatus::InBlock);
        tx.note_settings(&set("search_path", false));
        tx.ran();
        observe(&mut tx, Stmt::Transaction(TransactionKind::Commit));
        assert!(!tx.search_path_changed());
    }
}
