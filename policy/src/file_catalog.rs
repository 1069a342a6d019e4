//! The CLI's catalog: what one migration file has shown about its own tables, learnt one
//! statement at a time (`observe` after each statement is decided). It knows the tables the
//! file created, column types and validated `CHECK (col IS NOT NULL)`s; the rest is unknown.

use std::collections::{HashMap, HashSet};

use crate::transaction::Transaction;

use crate::catalog::{Catalog, ColumnDependents, ColumnTypeChange, Volatility};
use crate::model::{
    AlterAction, Constraint, ConstraintKind, ObjectKind, QualifiedName, Rename, Statement, Stmt, TransactionKind,
};
use crate::rules::unparenthesized;
use crate::types::{Coercion, TypeName};

/// Facts learnt from one file. Without COMMIT or ROLLBACK the whole file is one transaction
/// (as Flyway, sqlx and Rails run it); a COMMIT or ROLLBACK ends it, whether the file opened
/// it with BEGIN or the migration tool did.
#[derive(Debug, Clone)]
pub struct FileCatalog {
    tables: HashMap<QualifiedName, TableFacts>,
    /// The file's transaction: the tables created in it, which no other session can see.
    transaction: Transaction,
    /// The server the migrations run on, when the user says (`--pg-version`).
    server_version_num: Option<u32>,
    /// Tables whose facts changed in the current transaction, forgotten on ROLLBACK.
    changed: HashSet<QualifiedName>,
}

#[derive(Debug, Default, Clone)]
struct TableFacts {
    /// Created by this file (not as a partition): every constraint it has was seen here.
    defined_here: bool,
    columns: HashMap<String, TypeName>,
    /// `CHECK (col IS NOT NULL)` constraints by name.
    not_null_checks: HashMap<String, NotNullCheck>,
}

#[derive(Debug, Clone)]
struct NotNullCheck {
    column: String,
    validated: bool,
}

/// Unqualified names resolve to `public` in a migration's usual search_path.
fn key(name: &QualifiedName) -> QualifiedName {
    QualifiedName {
        schema: name.schema.clone().filter(|schema| schema != "public"),
        name: name.name.clone(),
    }
}

impl Default for FileCatalog {
    fn default() -> Self {
        FileCatalog {
            tables: HashMap::new(),
            transaction: Transaction::file(),
            server_version_num: None,
            changed: HashSet::new(),
        }
    }
}

impl FileCatalog {
    pub fn new() -> Self {
        FileCatalog::default()
    }

    /// A catalog for migrations that run on a server of `server_version_num` (e.g. 150004).
    pub fn for_server(server_version_num: Option<u32>) -> Self {
        FileCatalog {
            server_version_num,
            ..FileCatalog::default()
        }
    }

    /// Judge what follows as run in `transaction` (the next file of a run, which knows
    /// the tables earlier files made), from the state of the last one's end.
    pub fn start(&mut self, transaction: Transaction) {
        self.transaction = transaction;
        self.changed.clear();
    }

    /// Before the next statement: what a transaction that has ended created is old now
    /// (`Transaction::forget_ended`; a statement outside a block and a file transaction
    /// commits as it ends).
    pub fn forget_ended(&mut self) {
        self.transaction.forget_ended();
    }

    /// The file's transaction as far as the statements observed so far show it.
    pub fn transaction(&self) -> &Transaction {
        &self.transaction
    }

    /// The statements a `DO` block runs run inside its transaction (`Transaction::
    /// set_implicit`): set while they are observed, then put back.
    pub fn set_implicit(&mut self, open: bool) -> bool {
        let was = self.transaction.implicit();
        self.transaction.set_implicit(open);
        was
    }

    /// The file's transaction ended and was judged (rule rename_table): its renames are
    /// committed.
    pub fn forget_renames(&mut self) {
        self.transaction.forget_renames();
    }

    /// Learn from `statement`, which has just been decided (and, as far as the file knows,
    /// run).
    pub fn observe(&mut self, statement: &Statement) {
        let stmt = &statement.stmt;
        // First, while the facts still stand under the names the statement uses.
        let mut transaction = self.transaction.clone();
        transaction.observe(statement, self);
        self.transaction = transaction;
        match stmt {
            Stmt::CreateTable(create) => {
                let table = key(&create.table);
                let mut facts = TableFacts {
                    defined_here: create.partition_of.is_none(),
                    ..TableFacts::default()
                };
                for column in &create.columns {
                    facts
                        .columns
                        .insert(column.name.clone(), stored_type(&column.type_name));
                    for constraint in &column.constraints {
                        facts.learn_constraint(&table, constraint, Some(&column.name));
                    }
                }
                for constraint in &create.constraints {
                    facts.learn_constraint(&table, constraint, None);
                }
                self.create(table, facts);
            }
            Stmt::CreateTableAs { table, .. } => self.create(
                key(table),
                TableFacts {
                    defined_here: true,
                    ..TableFacts::default()
                },
            ),
            Stmt::AlterTable(alter) => {
                let table = key(&alter.table);
                self.changed.insert(table.clone());
                let facts = self.tables.entry(table.clone()).or_default();
                for action in &alter.actions {
                    facts.learn_action(&table, action);
                }
            }
            Stmt::Rename(rename) => self.rename(rename),
            Stmt::SetSchema(set) if is_relation(set.kind) => {
                let moved = QualifiedName {
                    schema: Some(set.new_schema.clone()),
                    name: set.object.name.clone(),
                };
                self.move_table(&key(&set.object), key(&moved));
            }
            Stmt::Drop(drop) if is_relation(drop.kind) => {
                for object in &drop.objects {
                    self.forget(&key(object));
                }
            }
            Stmt::Drop(drop) if drop.kind == ObjectKind::Schema => {
                for schema in &drop.objects {
                    let schema = key(&QualifiedName::new(Some(&schema.name), "")).schema;
                    let inside: Vec<QualifiedName> =
                        self.tables.keys().filter(|t| t.schema == schema).cloned().collect();
                    for table in inside {
                        self.forget(&table);
                    }
                }
            }
            Stmt::Transaction(TransactionKind::Commit | TransactionKind::Prepare) => {
                self.changed.clear();
            }
            Stmt::Transaction(TransactionKind::Rollback) => {
                for table in self.changed.drain() {
                    self.tables.remove(&table);
                }
            }
            _ => {}
        }
    }

    fn create(&mut self, table: QualifiedName, facts: TableFacts) {
        self.changed.insert(table.clone());
        self.tables.insert(table, facts);
    }

    fn forget(&mut self, table: &QualifiedName) {
        self.tables.remove(table);
        self.changed.insert(table.clone());
    }

    fn move_table(&mut self, from: &QualifiedName, to: QualifiedName) {
        if let Some(facts) = self.tables.remove(from) {
            self.tables.insert(to.clone(), facts);
        }
        self.changed.insert(from.clone());
        self.changed.insert(to);
    }

    fn rename(&mut self, rename: &Rename) {
        let table = key(&rename.object);
        match (rename.kind, &rename.subname) {
            (ObjectKind::Column, Some(old)) => {
                self.changed.insert(table.clone());
                if let Some(facts) = self.tables.get_mut(&table) {
                    if let Some(type_name) = facts.columns.remove(old) {
                        facts.columns.insert(rename.new_name.clone(), type_name);
                    }
                    for check in facts.not_null_checks.values_mut().filter(|c| &c.column == old) {
                        check.column = rename.new_name.clone();
                    }
                }
            }
            (ObjectKind::Constraint, Some(old)) => {
                self.changed.insert(table.clone());
                if let Some(facts) = self.tables.get_mut(&table) {
                    if let Some(check) = facts.not_null_checks.remove(old) {
                        facts.not_null_checks.insert(rename.new_name.clone(), check);
                    }
                }
            }
            (ObjectKind::Schema, _) => {
                let from = key(&QualifiedName::new(Some(&rename.object.name), "")).schema;
                let to = key(&QualifiedName::new(Some(&rename.new_name), "")).schema;
                let inside: Vec<QualifiedName> = self.tables.keys().filter(|t| t.schema == from).cloned().collect();
                for table in inside {
                    let moved = QualifiedName {
                        schema: to.clone(),
                        name: table.name.clone(),
                    };
                    self.move_table(&table, moved);
                }
            }
            (kind, _) if is_relation(kind) => {
                let renamed = QualifiedName {
                    schema: table.schema.clone(),
                    name: rename.new_name.clone(),
                };
                self.move_table(&table, renamed);
            }
            _ => {}
        }
    }
}

impl TableFacts {
    fn learn_action(&mut self, table: &QualifiedName, action: &AlterAction) {
        match action {
            AlterAction::AddColumn { column, .. } => {
                self.columns.insert(column.name.clone(), stored_type(&column.type_name));
                for constraint in &column.constraints {
                    self.learn_constraint(table, constraint, Some(&column.name));
                }
            }
            AlterAction::DropColumn { column, .. } => {
                self.columns.remove(column);
                self.not_null_checks.retain(|_, check| &check.column != column);
            }
            AlterAction::AlterColumnType { column, new_type, .. } => {
                self.columns.insert(column.clone(), new_type.clone());
            }
            AlterAction::AddConstraint(constraint) => self.learn_constraint(table, constraint, None),
            AlterAction::ValidateConstraint { name } => {
                if let Some(check) = self.not_null_checks.get_mut(name) {
                    check.validated = true;
                }
            }
            AlterAction::DropConstraint { name, .. } => {
                self.not_null_checks.remove(name);
            }
            _ => {}
        }
    }

    /// Remember a `CHECK (col IS NOT NULL)`; `column` is the column it was declared on, if inline.
    fn learn_constraint(&mut self, table: &QualifiedName, constraint: &Constraint, column: Option<&str>) {
        let ConstraintKind::Check { expr_sql } = &constraint.kind else {
            return;
        };
        let Some(checked) = not_null_column(expr_sql) else {
            return;
        };
        let name = constraint
            .name
            .clone()
            .unwrap_or_else(|| format!("{}_{}_check", table.name, column.unwrap_or(&checked)));
        self.not_null_checks.insert(
            name,
            NotNullCheck {
                column: checked,
                validated: !constraint.not_valid,
            },
        );
    }
}

fn is_relation(kind: ObjectKind) -> bool {
    matches!(
        kind,
        ObjectKind::Table | ObjectKind::View | ObjectKind::MaterializedView | ObjectKind::ForeignTable
    )
}

/// The type a column gets: `serial` is stored as `integer` (with a sequence default).
fn stored_type(type_name: &TypeName) -> TypeName {
    let integer = match type_name.name.as_str() {
        _ if !type_name.is_serial() => return type_name.clone(),
        "bigserial" | "serial8" => "int8",
        "smallserial" | "serial2" => "int2",
        _ => "int4",
    };
    TypeName::from_parts(&[integer], vec![], false)
}

/// The column of a `col IS NOT NULL` check expression (any parentheses, any case).
fn not_null_column(expr_sql: &str) -> Option<String> {
    let mut rest = unparenthesized(expr_sql);
    for word in ["null", "not", "is"] {
        let trimmed = rest.trim_end();
        let cut = trimmed.len().checked_sub(word.len())?;
        let tail = trimmed.get(cut..)?;
        let head = &trimmed[..cut];
        let bounded = head.ends_with(|c: char| c.is_whitespace() || c == ')' || c == '"');
        if !tail.eq_ignore_ascii_case(word) || !bounded {
            return None;
        }
        rest = head;
    }
    let subject = unparenthesized(rest);
    if let Some(quoted) = subject.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return Some(quoted.replace("\"\"", "\""));
    }
    let plain = !subject.is_empty()
        && subject.starts_with(|c: char| c.is_alphabetic() || c == '_')
        && subject.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$');
    plain.then(|| subject.to_lowercase())
}

impl Catalog for FileCatalog {
    fn created_in_transaction(&self, table: &QualifiedName) -> Option<bool> {
        // Only a table the file still knows under that name: a table created, then dropped
        // or moved away, is not.
        let table = key(table);
        self.tables
            .contains_key(&table)
            .then(|| self.transaction.created_under(&table))
    }

    fn column_type(&self, table: &QualifiedName, column: &str) -> Option<TypeName> {
        self.tables.get(&key(table))?.columns.get(column).cloned()
    }

    fn function_volatility(&self, _: &QualifiedName) -> Option<Volatility> {
        None
    }

    fn has_validated_not_null_check(&self, table: &QualifiedName, column: &str) -> Option<bool> {
        let facts = self.tables.get(&key(table))?;
        let validated = facts
            .not_null_checks
            .values()
            .any(|check| check.validated && check.column == column);
        (validated || facts.defined_here).then_some(validated)
    }

    fn estimated_rows(&self, _: &QualifiedName) -> Option<f64> {
        None
    }

    // What the files do not show (a table created elsewhere, or PARTITION BY, which the
    // model does not keep): unknown.
    fn is_partitioned(&self, _: &QualifiedName) -> Option<bool> {
        None
    }

    // CREATE DOMAIN is not in the model: unknown.
    fn domain_has_constraints(&self, _: &TypeName) -> Option<bool> {
        None
    }

    // Index columns are not kept: unknown.
    fn nullable_index_columns(&self, _: &QualifiedName, _: &str) -> Option<Vec<String>> {
        None
    }

    // pg_cast and domains are not in the files; built-in types are known without them.
    fn coercion(&self, _: &TypeName, _: &TypeName) -> Option<Coercion> {
        None
    }

    // Indexes and CHECK constraints of a column are not kept: unknown.
    fn type_change_dependents(&self, _: &ColumnTypeChange) -> Option<ColumnDependents> {
        None
    }

    // Who runs the files is not known.
    fn is_superuser(&self) -> Option<bool> {
        None
    }

    fn server_version_num(&self) -> Option<u32> {
        self.server_version_num
    }

    fn timezone(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl FileCatalog {
        fn observe_stmt(&mut self, stmt: &Stmt) {
            self.observe(&Statement::new(stmt.clone(), ""));
        }
    }
    use crate::model::{AlterTable, ColumnDef, CreateIndex, CreateTable, Drop, SetSchema, Statement, Using};
    use crate::rules::decide;
    use crate::settings::{Mode, Settings};

    fn q(name: &str) -> QualifiedName {
        match name.split_once('.') {
            Some((schema, name)) => QualifiedName::new(Some(schema), name),
            None => QualifiedName::bare(name),
        }
    }

    fn ty(name: &str) -> TypeName {
        TypeName::from_parts(&[name], vec![], false)
    }

    fn create_table(table: &str, columns: &[(&str, &str)]) -> Stmt {
        Stmt::CreateTable(CreateTable {
            table: q(table),
            columns: columns
                .iter()
                .map(|(name, type_name)| ColumnDef {
                    name: name.to_string(),
                    type_name: ty(type_name),
                    ..ColumnDef::default()
                })
                .collect(),
            ..CreateTable::default()
        })
    }

    fn alter(table: &str, actions: Vec<AlterAction>) -> Stmt {
        Stmt::AlterTable(AlterTable {
            table: q(table),
            actions,
            ..AlterTable::default()
        })
    }

    fn add_check(name: Option<&str>, expr: &str, not_valid: bool) -> AlterAction {
        AlterAction::AddConstraint(Constraint {
            name: name.map(str::to_owned),
            kind: ConstraintKind::Check { expr_sql: expr.into() },
            not_valid,
        })
    }

    fn rename(kind: ObjectKind, object: &str, subname: Option<&str>, new_name: &str) -> Stmt {
        Stmt::Rename(Rename {
            kind,
            object: q(object),
            subname: subname.map(str::to_owned),
            new_name: new_name.into(),
        })
    }

    fn learnt(stmts: &[Stmt]) -> FileCatalog {
        let mut catalog = FileCatalog::new();
        for stmt in stmts {
            catalog.observe_stmt(stmt);
        }
        catalog
    }

    #[test]
    fn table_created_in_the_file_is_new_until_commit() {
        let mut catalog = learnt(&[Stmt::Transaction(TransactionKind::Begin), create_table("orders", &[])]);
        assert_eq!(catalog.created_in_transaction(&q("orders")), Some(true));
        assert_eq!(catalog.created_in_transaction(&q("customers")), None);
        catalog.observe_stmt(&Stmt::Transaction(TransactionKind::Commit));
        assert_eq!(catalog.created_in_transaction(&q("orders")), Some(false));
    }

    #[test]
    fn without_transaction_control_the_file_is_one_transaction() {
        let catalog = learnt(&[create_table("orders", &[]), Stmt::Query, alter("orders", vec![])]);
        assert_eq!(catalog.created_in_transaction(&q("orders")), Some(true));
    }

    #[test]
    fn rollback_forgets_what_the_transaction_did() {
        let catalog = learnt(&[
            create_table("kept", &[("id", "int8")]),
            Stmt::Transaction(TransactionKind::Commit),
            Stmt::Transaction(TransactionKind::Begin),
            create_table("orders", &[]),
            alter(
                "kept",
                vec![AlterAction::AlterColumnType {
                    column: "id".into(),
                    new_type: ty("text"),
                    using: Using::None,
                    collation: None,
                }],
            ),
            Stmt::Transaction(TransactionKind::Rollback),
        ]);
        assert_eq!(catalog.created_in_transaction(&q("orders")), None);
        assert_eq!(catalog.column_type(&q("kept"), "id"), None);
    }

    #[test]
    fn public_schema_and_unqualified_names_are_the_same_table() {
        let catalog = learnt(&[create_table("public.orders", &[("id", "int4")])]);
        assert_eq!(catalog.created_in_transaction(&q("orders")), Some(true));
        assert_eq!(catalog.created_in_transaction(&q("sales.orders")), None);
        assert_eq!(catalog.column_type(&q("orders"), "id"), Some(ty("int4")));
    }

    #[test]
    fn column_types_from_create_add_alter_and_rename() {
        let catalog = learnt(&[
            create_table("orders", &[("id", "bigserial"), ("note", "varchar")]),
            Stmt::Transaction(TransactionKind::Commit),
            alter(
                "orders",
                vec![
                    AlterAction::AddColumn {
                        column: ColumnDef {
                            name: "total".into(),
                            type_name: ty("numeric"),
                            ..ColumnDef::default()
                        },
                        if_not_exists: false,
                    },
                    AlterAction::AlterColumnType {
                        column: "note".into(),
                        new_type: ty("text"),
                        using: Using::None,
                        collation: None,
                    },
                ],
            ),
            rename(ObjectKind::Column, "orders", Some("total"), "amount"),
        ]);
        let orders = q("orders");
        assert_eq!(catalog.column_type(&orders, "id"), Some(ty("int8")));
        assert_eq!(catalog.column_type(&orders, "note"), Some(ty("text")));
        assert_eq!(catalog.column_type(&orders, "total"), None);
        assert_eq!(catalog.column_type(&orders, "amount"), Some(ty("numeric")));
        assert_eq!(catalog.column_type(&q("customers"), "id"), None);
    }

    #[test]
    fn validated_not_null_check_added_earlier() {
        let catalog = learnt(&[alter("users", vec![add_check(None, "((email IS NOT NULL))", false)])]);
        assert_eq!(catalog.has_validated_not_null_check(&q("users"), "email"), Some(true));
        assert_eq!(catalog.has_validated_not_null_check(&q("users"), "name"), None);
    }

    #[test]
    fn not_valid_check_counts_once_validated() {
        let mut catalog = learnt(&[alter(
            "users",
            vec![add_check(Some("users_email_nn"), "email is not null", true)],
        )]);
        assert_eq!(catalog.has_validated_not_null_check(&q("users"), "email"), None);
        catalog.observe_stmt(&alter(
            "users",
            vec![AlterAction::ValidateConstraint {
                name: "users_email_nn".into(),
            }],
        ));
        assert_eq!(catalog.has_validated_not_null_check(&q("users"), "email"), Some(true));
    }

    #[test]
    fn unnamed_not_valid_check_is_validated_by_its_default_name() {
        let catalog = learnt(&[
            alter("users", vec![add_check(None, "\"Email\" IS NOT NULL", true)]),
            alter(
                "users",
                vec![AlterAction::ValidateConstraint {
                    name: "users_Email_check".into(),
                }],
            ),
        ]);
        assert_eq!(catalog.has_validated_not_null_check(&q("users"), "Email"), Some(true));
    }

    #[test]
    fn other_check_expressions_are_not_not_null_checks() {
        for expr in [
            "email IS NULL",
            "email IS NOT NULL AND id > 0",
            "lower(email) IS NOT NULL",
            "this IS NOT NULLX",
        ] {
            assert_eq!(not_null_column(expr), None, "{expr}");
        }
        assert_eq!(not_null_column("(Email) is  not\nnull").as_deref(), Some("email"));
    }

    #[test]
    fn dropping_or_renaming_keeps_checks_consistent() {
        let mut catalog = learnt(&[alter("users", vec![add_check(Some("nn"), "email IS NOT NULL", false)])]);
        catalog.observe_stmt(&rename(ObjectKind::Column, "users", Some("email"), "mail"));
        assert_eq!(catalog.has_validated_not_null_check(&q("users"), "mail"), Some(true));
        catalog.observe_stmt(&rename(ObjectKind::Constraint, "users", Some("nn"), "mail_nn"));
        catalog.observe_stmt(&alter(
            "users",
            vec![AlterAction::DropConstraint {
                name: "mail_nn".into(),
                if_exists: false,
            }],
        ));
        assert_eq!(catalog.has_validated_not_null_check(&q("users"), "mail"), None);
    }

    #[test]
    fn table_defined_in_the_file_without_a_check_has_none() {
        let catalog = learnt(&[create_table("users", &[("email", "text")])]);
        assert_eq!(catalog.has_validated_not_null_check(&q("users"), "email"), Some(false));
    }

    #[test]
    fn rename_set_schema_and_drop_move_or_forget_the_table() {
        let mut catalog = learnt(&[create_table("users", &[("id", "int4")])]);
        catalog.observe_stmt(&rename(ObjectKind::Table, "users", None, "accounts"));
        assert_eq!(catalog.created_in_transaction(&q("users")), None);
        assert_eq!(catalog.created_in_transaction(&q("accounts")), Some(true));
        catalog.observe_stmt(&Stmt::SetSchema(SetSchema {
            kind: ObjectKind::Table,
            object: q("accounts"),
            new_schema: "archive".into(),
        }));
        assert_eq!(catalog.column_type(&q("archive.accounts"), "id"), Some(ty("int4")));
        catalog.observe_stmt(&rename(ObjectKind::Schema, "archive", None, "old"));
        assert_eq!(catalog.created_in_transaction(&q("old.accounts")), Some(true));
        catalog.observe_stmt(&Stmt::Drop(Drop {
            kind: ObjectKind::Table,
            objects: vec![q("old.accounts")],
            if_exists: false,
            cascade: false,
        }));
        assert_eq!(catalog.created_in_transaction(&q("old.accounts")), None);
    }

    #[test]
    fn drop_schema_forgets_its_tables() {
        let mut catalog = learnt(&[create_table("app.users", &[])]);
        catalog.observe_stmt(&Stmt::Drop(Drop {
            kind: ObjectKind::Schema,
            objects: vec![q("app")],
            if_exists: false,
            cascade: true,
        }));
        assert_eq!(catalog.created_in_transaction(&q("app.users")), None);
    }

    #[test]
    fn what_only_a_server_knows_is_unknown() {
        let catalog = learnt(&[create_table("users", &[])]);
        assert_eq!(catalog.function_volatility(&q("now")), None);
        assert_eq!(catalog.estimated_rows(&q("users")), None);
        assert_eq!(catalog.server_version_num(), None);
        assert_eq!(catalog.timezone(), None);
    }

    #[test]
    fn create_index_on_table_from_earlier_in_the_file_passes_until_commit() {
        let settings = Settings {
            mode: Mode::Enforce,
            ..Settings::default()
        };
        let index = Statement {
            stmt: Stmt::CreateIndex(CreateIndex {
                table: q("orders"),
                ..CreateIndex::default()
            }),
            source: "CREATE INDEX ON orders (customer_id)".into(),
            changes: Vec::new(),
        };
        let mut catalog = learnt(&[create_table("orders", &[("customer_id", "int8")])]);
        let context = Default::default();
        assert!(decide(&index, &context, &settings, &catalog).findings.is_empty());
        catalog.observe_stmt(&Stmt::Transaction(TransactionKind::Commit));
        let decision = decide(&index, &context, &settings, &catalog);
        assert_eq!(decision.findings[0].rule, "create_index_non_concurrently");
    }
}
