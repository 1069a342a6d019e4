//! What a statement does, independent of the parser that saw it.
//!
//! The extension builds these from Postgres' own parse nodes, the proxy and the CLI
//! from libpg_query's tree. Rules read only this model. Anything the model does not
//! know is `Stmt::Other`, never a known kind that happens to look safe.

use crate::types::TypeName;

/// A possibly schema-qualified name, as written (already case-folded by the parser).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct QualifiedName {
    pub schema: Option<String>,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: Option<&str>, name: &str) -> Self {
        QualifiedName {
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    pub fn bare(name: &str) -> Self {
        QualifiedName::new(None, name)
    }

    /// May both names stand for the same relation, as far as names tell (an unqualified
    /// name may resolve to any schema)?
    pub fn may_be(&self, other: &QualifiedName) -> bool {
        self.name == other.name && (self.schema == other.schema || self.schema.is_none() || other.schema.is_none())
    }

    /// The name as SQL, each part quoted when it needs to be.
    pub fn sql(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", crate::sql::ident(schema), crate::sql::ident(&self.name)),
            None => crate::sql::ident(&self.name),
        }
    }
}

impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sql())
    }
}

/// One parsed statement: what it does and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub stmt: Stmt,
    /// The statement's own text (from the end of the previous statement to its end,
    /// so leading comments, where acknowledgements live, are included).
    pub source: String,
    /// Settings it changes other than by SET / RESET (which `Stmt::Set` describes).
    pub changes: Vec<SettingChange>,
}

impl Statement {
    /// A statement that changes no setting other than by SET / RESET.
    pub fn new(stmt: Stmt, source: impl Into<String>) -> Statement {
        Statement {
            stmt,
            source: source.into(),
            changes: Vec::new(),
        }
    }
}

/// A setting a statement changes besides SET / RESET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingChange {
    /// A `set_config` call (anywhere in the statement) naming the setting as a constant,
    /// lower-cased.
    SetConfig(String),
    /// A `set_config` call whose setting name is computed when it runs.
    SetConfigComputed,
    /// A stored setting of a role, a database or the server (`ALTER ROLE ... SET`,
    /// `ALTER DATABASE ... RESET`, `ALTER SYSTEM SET`): `target` is `ALTER ROLE`,
    /// `ALTER DATABASE` or `ALTER SYSTEM`; `name` lower-cased, `None` for RESET ALL.
    Stored { target: String, name: Option<String> },
}

/// Where the statement runs; decides `concurrently_in_transaction` and nesting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    /// Inside BEGIN ... COMMIT (or an implicit transaction of a multi-statement string).
    pub in_transaction_block: bool,
    /// The statement is one of several in one simple-protocol query string.
    pub multi_statement: bool,
    /// Run from inside a function, procedure, DO block or EXECUTE rather than by the client.
    pub nested: bool,
    /// The session's current lock_timeout in milliseconds (0 = wait forever).
    pub session_lock_timeout_ms: u64,
    /// Locks the transaction already holds that block reads or writes of existing tables.
    pub held_locks: Vec<crate::transaction::HeldLock>,
    /// Constraints the transaction added NOT VALID (by name), still to be validated.
    pub added_not_valid: Vec<crate::transaction::AddedNotValid>,
    /// A transaction runs that commits after this statement (a block, a multi-statement
    /// string's or a file's implicit one, a routine's): a rename is judged at that commit,
    /// when a view may stand in for the old name (rule rename_table).
    pub commits_later: bool,
    /// Relations the transaction renamed or moved that no view for the old name covers
    /// (rule rename_table, at COMMIT).
    pub renamed_without_view: Vec<crate::transaction::PendingRename>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    CreateIndex(CreateIndex),
    DropIndex(DropIndex),
    Reindex(Reindex),
    AlterTable(AlterTable),
    CreateTable(CreateTable),
    /// CREATE TABLE AS / SELECT INTO / CREATE MATERIALIZED VIEW: a new relation.
    CreateTableAs {
        table: QualifiedName,
        materialized: bool,
        /// IF NOT EXISTS: may leave an existing relation as it is.
        if_not_exists: bool,
    },
    /// CREATE [OR REPLACE] [TEMP] VIEW.
    CreateView(CreateView),
    Rename(Rename),
    SetSchema(SetSchema),
    Drop(Drop),
    Truncate {
        tables: Vec<QualifiedName>,
    },
    Vacuum {
        full: bool,
        tables: Vec<QualifiedName>,
    },
    Cluster {
        table: Option<QualifiedName>,
    },
    Lock {
        tables: Vec<QualifiedName>,
        mode: LockLevel,
    },
    RefreshMaterializedView {
        view: QualifiedName,
        concurrently: bool,
    },
    Transaction(TransactionKind),
    /// SET / SET LOCAL / RESET / RESET ALL of a run-time setting.
    Set(SetSetting),
    /// DISCARD ALL / PLANS / SEQUENCES / TEMP.
    Discard {
        all: bool,
    },
    /// DO block, CREATE FUNCTION/PROCEDURE, CALL: code whose statements the extension
    /// sees one by one when they run.
    Routine(RoutineKind),
    /// SELECT / INSERT / UPDATE / DELETE / MERGE / COPY / EXPLAIN / SHOW ...: no DDL.
    Query,
    /// INSERT, UPDATE, DELETE or MERGE, or a SELECT whose WITH holds one: every table it
    /// writes, the statement's own target first, then its data-modifying CTEs in order.
    Dml(Vec<DmlWrite>),
    /// A statement the model does not describe. `ddl` says whether it changes schema
    /// (it still gets the lock_timeout cap and is never assumed harmless).
    Other {
        tag: String,
        ddl: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CreateIndex {
    pub name: Option<String>,
    pub table: QualifiedName,
    pub unique: bool,
    pub concurrently: bool,
    pub if_not_exists: bool,
    /// CREATE INDEX ON ONLY parent: builds nothing, only a partitioned-index shell.
    pub only: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DropIndex {
    pub indexes: Vec<QualifiedName>,
    pub concurrently: bool,
    pub if_exists: bool,
    pub cascade: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReindexTarget {
    Index,
    Table,
    Schema,
    Database,
    System,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reindex {
    pub target: ReindexTarget,
    pub name: Option<QualifiedName>,
    pub concurrently: bool,
}

/// Which kind of relation ALTER ... names (ALTER TABLE, ALTER INDEX ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RelationKind {
    #[default]
    Table,
    Index,
    View,
    MaterializedView,
    ForeignTable,
    Sequence,
    Type,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlterTable {
    pub table: QualifiedName,
    pub kind: RelationKind,
    pub only: bool,
    pub if_exists: bool,
    pub actions: Vec<AlterAction>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlterAction {
    AddColumn {
        column: ColumnDef,
        if_not_exists: bool,
    },
    DropColumn {
        column: String,
        if_exists: bool,
    },
    AlterColumnType {
        column: String,
        new_type: TypeName,
        using: Using,
        /// COLLATE of the new type, when written.
        collation: Option<QualifiedName>,
    },
    SetNotNull {
        column: String,
    },
    DropNotNull {
        column: String,
    },
    /// SET DEFAULT / DROP DEFAULT: catalog-only.
    SetDefault {
        column: String,
    },
    AddConstraint(Constraint),
    ValidateConstraint {
        name: String,
    },
    DropConstraint {
        name: String,
        if_exists: bool,
    },
    SetTablespace {
        tablespace: String,
    },
    /// SET LOGGED / SET UNLOGGED / SET ACCESS METHOD: rewrite the table.
    Rewrite {
        what: String,
    },
    AttachPartition {
        partition: QualifiedName,
    },
    DetachPartition {
        partition: QualifiedName,
        concurrently: bool,
        finalize: bool,
    },
    /// Any other subcommand, with the lock Postgres takes for it.
    Other {
        what: String,
        lock: LockLevel,
    },
}

/// The USING clause of ALTER COLUMN TYPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Using {
    #[default]
    None,
    /// `USING col::newtype` (what Django writes): no different from no USING.
    CastOfColumn,
    /// Any other expression: every row is recomputed.
    Expression,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ColumnDef {
    pub name: String,
    pub type_name: TypeName,
    pub not_null: bool,
    pub default: Option<DefaultExpr>,
    /// GENERATED ALWAYS AS (...) STORED.
    pub generated_stored: bool,
    /// GENERATED { ALWAYS | BY DEFAULT } AS IDENTITY.
    pub identity: bool,
    /// Inline constraints other than NOT NULL / DEFAULT (REFERENCES, CHECK, UNIQUE, PRIMARY KEY).
    pub constraints: Vec<Constraint>,
}

/// A DEFAULT expression: its text and the functions it calls, for the volatility question.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DefaultExpr {
    pub sql: String,
    pub functions: Vec<QualifiedName>,
    /// Contains a construct evaluated per row regardless of functions (e.g. a subquery).
    pub always_volatile: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    pub name: Option<String>,
    pub kind: ConstraintKind,
    /// NOT VALID was written.
    pub not_valid: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConstraintKind {
    ForeignKey {
        columns: Vec<String>,
        referenced_table: QualifiedName,
        referenced_columns: Vec<String>,
        /// Referential actions and options as SQL (e.g. "ON DELETE CASCADE"), for hints.
        options_sql: String,
    },
    Check {
        expr_sql: String,
    },
    /// UNIQUE or PRIMARY KEY; `using_index` when built from an existing index.
    Unique {
        primary_key: bool,
        columns: Vec<String>,
        using_index: Option<String>,
    },
    Exclusion,
    NotNull {
        column: Option<String>,
    },
    Other,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CreateTable {
    pub table: QualifiedName,
    pub columns: Vec<ColumnDef>,
    /// Table-level constraints (FOREIGN KEY (...) REFERENCES ..., CHECK, UNIQUE ...).
    pub constraints: Vec<Constraint>,
    pub temporary: bool,
    /// CREATE TABLE ... PARTITION OF parent: attaches to an existing table.
    pub partition_of: Option<QualifiedName>,
    /// IF NOT EXISTS: may leave an existing table as it is.
    pub if_not_exists: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Table,
    Column,
    Index,
    View,
    MaterializedView,
    Sequence,
    Schema,
    Constraint,
    Type,
    ForeignTable,
    Other,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CreateView {
    pub view: QualifiedName,
    /// CREATE OR REPLACE.
    pub replace: bool,
    /// TEMP: other sessions never see it.
    pub temporary: bool,
    /// The relation when the view's query is exactly `SELECT * FROM relation` (no other
    /// clause): every column of it, and updatable, so the view stands in for the relation.
    pub all_of: Option<QualifiedName>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rename {
    pub kind: ObjectKind,
    /// The relation (for tables, columns, constraints) or object renamed.
    pub object: QualifiedName,
    /// The column or constraint renamed, for those kinds.
    pub subname: Option<String>,
    pub new_name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SetSchema {
    pub kind: ObjectKind,
    pub object: QualifiedName,
    pub new_schema: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Drop {
    pub kind: ObjectKind,
    pub objects: Vec<QualifiedName>,
    pub if_exists: bool,
    pub cascade: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionKind {
    Begin,
    Commit,
    Rollback,
    /// SAVEPOINT name; RELEASE [SAVEPOINT] name; ROLLBACK TO [SAVEPOINT] name.
    Savepoint(String),
    Release(String),
    RollbackToSavepoint(String),
    Prepare,
    CommitPrepared,
    RollbackPrepared,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SetSetting {
    /// Lower-case setting name; `None` for RESET ALL.
    pub name: Option<String>,
    /// Value as text; `None` for RESET / SET ... TO DEFAULT.
    pub value: Option<String>,
    pub local: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutineKind {
    Do,
    CreateFunction,
    Call,
}

/// A table a data-modifying statement writes, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmlWrite {
    pub table: QualifiedName,
    pub kind: WriteKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Update,
    Delete,
    Merge,
    /// A MERGE whose every action is for source rows not matched in the target (WHEN NOT
    /// MATCHED [BY TARGET] THEN INSERT or DO NOTHING): it copies rows, as INSERT ...
    /// SELECT does, and changes none already in the table.
    MergeInsert,
    /// INSERT ... SELECT reading a table (or a CTE, or a set operation).
    InsertSelect,
    /// INSERT ... VALUES, DEFAULT VALUES, or a SELECT of constants: rows the statement
    /// carries itself.
    InsertValues,
}

impl WriteKind {
    /// Does it change rows already in the table, or copy rows from tables: the work a
    /// backfill does, which takes as long as the tables are large?
    pub fn rewrites_rows(self) -> bool {
        self != WriteKind::InsertValues
    }

    pub fn keyword(self) -> &'static str {
        match self {
            WriteKind::Update => "UPDATE",
            WriteKind::Delete => "DELETE",
            WriteKind::Merge | WriteKind::MergeInsert => "MERGE",
            WriteKind::InsertSelect => "INSERT ... SELECT",
            WriteKind::InsertValues => "INSERT",
        }
    }
}

/// Postgres' table lock levels, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockLevel {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

impl LockLevel {
    /// Every level, weakest first.
    pub const ALL: [LockLevel; 8] = [
        LockLevel::AccessShare,
        LockLevel::RowShare,
        LockLevel::RowExclusive,
        LockLevel::ShareUpdateExclusive,
        LockLevel::Share,
        LockLevel::ShareRowExclusive,
        LockLevel::Exclusive,
        LockLevel::AccessExclusive,
    ];

    /// Does a lock of this level conflict with one of `other` (lock.c's LockConflicts)?
    pub fn conflicts_with(self, other: LockLevel) -> bool {
        // One bit per level, in `ALL`'s order (bit 0: ACCESS SHARE ... bit 7: ACCESS EXCLUSIVE).
        const CONFLICTS: [u8; 8] = [0x80, 0xC0, 0xF0, 0xF8, 0xEC, 0xFC, 0xFE, 0xFF];
        CONFLICTS[self as usize] & (1 << other as usize) != 0
    }

    /// A LOCKMODE number (lockdefs.h: 1 AccessShareLock ... 8 AccessExclusiveLock), as
    /// both parse trees carry it; a number out of range is taken as the strongest.
    pub fn from_lockmode(mode: i32) -> LockLevel {
        match mode {
            1 => LockLevel::AccessShare,
            2 => LockLevel::RowShare,
            3 => LockLevel::RowExclusive,
            4 => LockLevel::ShareUpdateExclusive,
            5 => LockLevel::Share,
            6 => LockLevel::ShareRowExclusive,
            7 => LockLevel::Exclusive,
            _ => LockLevel::AccessExclusive,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LockLevel::AccessShare => "ACCESS SHARE",
            LockLevel::RowShare => "ROW SHARE",
            LockLevel::RowExclusive => "ROW EXCLUSIVE",
            LockLevel::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockLevel::Share => "SHARE",
            LockLevel::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockLevel::Exclusive => "EXCLUSIVE",
            LockLevel::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// Parse a lock mode as written in LOCK TABLE (case-insensitive, single spaces).
    pub fn from_name(name: &str) -> Option<LockLevel> {
        let normalized = name
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_uppercase();
        LockLevel::ALL.into_iter().find(|level| level.name() == normalized)
    }

    /// Does holding (or queueing for) this lock stop plain SELECTs?
    pub fn blocks_reads(self) -> bool {
        self == LockLevel::AccessExclusive
    }

    /// Does holding (or queueing for) this lock stop INSERT/UPDATE/DELETE?
    pub fn blocks_writes(self) -> bool {
        self >= LockLevel::Share
    }

    /// "reads and writes", "writes", or "neither reads nor writes".
    pub fn blocks_description(self) -> &'static str {
        match (self.blocks_reads(), self.blocks_writes()) {
            (true, _) => "blocks reads and writes",
            (false, true) => "blocks writes",
            (false, false) => "blocks neither reads nor writes",
        }
    }
}

impl std::fmt::Display for LockLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
