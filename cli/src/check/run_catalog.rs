//! The catalog `check` decides with: what the files showed (`FileCatalog`: tables they
//! created, columns they declared, the transaction), and, with `--database-url`, what the
//! database answers about everything else, as it stands before the run.
//!
//! The database has not seen the files: an object the run created, dropped, renamed or
//! moved is answered from the files or not at all, never by the database under that name
//! (a column renamed or dropped, a function the run created or replaced, a domain once
//! the run altered one, an unqualified name once the run set search_path, a schema the
//! run renamed). A table the run created and has written no row to holds none (its size
//! is zero blocks, as the extension would find it); one the run wrote to is of unknown
//! size. Sizes of the database's own tables (row estimates, emptiness, the planner's
//! estimates) are asked only with `--sizes database`: a schema-only database has none.

use std::collections::{HashMap, HashSet};

use parse::triggers::CreatedTrigger;
use policy::catalog::{Catalog, ColumnDependents, ColumnTypeChange, Volatility};
use policy::file_catalog::FileCatalog;
use policy::model::{AlterAction, ObjectKind, QualifiedName, RoutineKind, Statement, Stmt, TransactionKind};
use policy::transaction::Transaction;
use policy::types::{Coercion, TypeName};
use proxy::catalog::{Answer, Estimate, Executed, FunctionBody, Question};

use super::database::Database;

pub struct RunCatalog<'db> {
    file: FileCatalog,
    database: Option<&'db Database>,
    /// Relations the run created (under their current names).
    created: HashSet<QualifiedName>,
    /// Relations the run may have written rows to.
    written: HashSet<QualifiedName>,
    /// The database's table sizes and estimates stand for production's (`--sizes
    /// database`: a staging copy), else they are unknown (a schema-only database).
    sizes: bool,
    /// Columns the run renamed (from and to) or dropped.
    touched_columns: HashSet<(QualifiedName, String)>,
    /// Schemas the run renamed (from and to).
    touched_schemas: HashSet<String>,
    /// The run altered a domain: no domain is answered by the database.
    domains_altered: bool,
    /// Triggers the run created (on their tables' names as written), and whether it
    /// created one this catalog could not read.
    triggers: Vec<CreatedTrigger>,
    triggers_unread: bool,
    /// The run set search_path: unqualified names may resolve elsewhere than on the
    /// check's session.
    search_path_set: bool,
    /// The TimeZone before a SET LOCAL of the running transaction, back at its end.
    timezone_before_local: Option<Option<String>>,
    /// Names the run dropped, renamed or moved, from or to: the database's answer under
    /// such a name is not about what the name means at this point of the run.
    touched: HashSet<QualifiedName>,
    /// The session's TimeZone as the run's SETs leave it (None: unknown, after a SET
    /// LOCAL); at first the database's.
    timezone: Option<String>,
    /// Indexes the run built, by name (in their table's schema): their table and their
    /// row count (reltuples) as the build left it: 0 when the table held no row, which a
    /// rewrite of the table later sets to -1 again (unknown here, as other counts).
    built: HashMap<QualifiedName, (QualifiedName, Option<f64>)>,
    /// Functions and procedures the run created (the database has not), as written.
    functions: Vec<FunctionBody>,
    /// The EXECUTE whose prepared query is being decided, if one is.
    executing: Option<String>,
    /// Every file starts as this transaction (`--transaction`).
    start: Transaction,
}

/// Unqualified names are `public`'s, as in the file catalog.
fn key(name: &QualifiedName) -> QualifiedName {
    QualifiedName {
        schema: name.schema.clone().filter(|schema| schema != "public"),
        name: name.name.clone(),
    }
}

impl<'db> RunCatalog<'db> {
    /// Files judged with `start` as each file's transaction, and the database if given.
    pub fn new(
        server_version_num: Option<u32>,
        start: Transaction,
        database: Option<&'db Database>,
        sizes: bool,
    ) -> Self {
        let mut file = FileCatalog::for_server(server_version_num.or(database.and_then(|db| db.server_version_num)));
        file.start(start.clone());
        RunCatalog {
            file,
            database,
            created: HashSet::new(),
            written: HashSet::new(),
            sizes,
            touched_columns: HashSet::new(),
            touched_schemas: HashSet::new(),
            domains_altered: false,
            triggers: Vec::new(),
            triggers_unread: false,
            search_path_set: false,
            timezone_before_local: None,
            touched: HashSet::new(),
            executing: None,
            built: HashMap::new(),
            functions: Vec::new(),
            timezone: database.and_then(|db| db.timezone.clone()),
            start,
        }
    }

    /// The run's next file: whatever transaction the last one left open ended with it.
    pub fn next_file(&mut self) {
        self.file
            .observe(&Statement::new(Stmt::Transaction(TransactionKind::Commit), "COMMIT"));
        self.file.start(self.start.clone());
    }

    /// The statement decided next is the query `execute` (an EXECUTE) runs; None after.
    pub fn set_executing(&mut self, execute: Option<String>) {
        self.executing = execute;
    }

    /// The functions and procedures the run created, read from their statements.
    pub fn functions(&self) -> &[FunctionBody] {
        &self.functions
    }

    /// The database the run is judged against, if any.
    pub fn database(&self) -> Option<&'db Database> {
        self.database
    }

    /// Before the next statement (`FileCatalog::forget_ended`); a SET LOCAL of a
    /// transaction that ended is undone.
    pub fn forget_ended(&mut self) {
        if !self.file.transaction().running() {
            if let Some(timezone) = self.timezone_before_local.take() {
                self.timezone = timezone;
            }
        }
        self.file.forget_ended()
    }

    pub fn transaction(&self) -> &Transaction {
        self.file.transaction()
    }

    pub fn set_implicit(&mut self, open: bool) -> bool {
        self.file.set_implicit(open)
    }

    pub fn forget_renames(&mut self) {
        self.file.forget_renames()
    }

    /// Learn from `statement`, decided (and, as far as the run knows, run).
    pub fn observe(&mut self, statement: &Statement) {
        match &statement.stmt {
            Stmt::CreateTable(create) => {
                // IF NOT EXISTS of a table the database has leaves that one.
                let existing = create.if_not_exists
                    && self.database_for(&create.table).is_some_and(|db| {
                        matches!(
                            db.ask(Question::RelationOid(create.table.clone())),
                            Answer::Oid(Some(_))
                        )
                    });
                if !existing {
                    self.created.insert(key(&create.table));
                    self.written.remove(&key(&create.table));
                }
                // A partition's rows are its parent's too.
                if let Some(parent) = &create.partition_of {
                    self.written.insert(key(parent));
                }
            }
            Stmt::CreateTableAs { table, .. } => {
                self.created.insert(key(table));
                if !with_no_data(&statement.source) {
                    self.written.insert(key(table));
                }
            }
            Stmt::Dml(writes) => {
                for write in writes {
                    self.written.insert(key(&write.table));
                }
            }
            Stmt::Rename(rename) if rename.kind == ObjectKind::Schema => {
                self.touched_schemas.insert(rename.object.name.clone());
                self.touched_schemas.insert(rename.new_name.clone());
            }
            Stmt::Rename(rename) if rename.kind == ObjectKind::Column => {
                if let Some(old) = &rename.subname {
                    self.touched_columns.insert((key(&rename.object), old.clone()));
                    self.touched_columns
                        .insert((key(&rename.object), rename.new_name.clone()));
                }
            }
            Stmt::Rename(rename) if rename.subname.is_none() => {
                let from = key(&rename.object);
                let to = QualifiedName {
                    schema: from.schema.clone(),
                    name: rename.new_name.clone(),
                };
                self.move_relation(from, to);
            }
            Stmt::SetSchema(set) => {
                let from = key(&set.object);
                let to = key(&QualifiedName {
                    schema: Some(set.new_schema.clone()),
                    name: set.object.name.clone(),
                });
                self.move_relation(from, to);
            }
            Stmt::Drop(drop) if drop.kind != ObjectKind::Schema => {
                for object in &drop.objects {
                    self.created.remove(&key(object));
                    self.touched.insert(key(object));
                }
            }
            // The indexes on a dropped column go with it; a change that may rewrite the
            // table builds its indexes again.
            Stmt::AlterTable(alter) => {
                if alter.actions.iter().any(|action| {
                    matches!(
                        action,
                        AlterAction::AlterColumnType { .. }
                            | AlterAction::AddColumn { .. }
                            | AlterAction::Rewrite { .. }
                            | AlterAction::SetTablespace { .. }
                            | AlterAction::Other { .. }
                    )
                }) {
                    self.rewritten(std::slice::from_ref(&alter.table));
                }
                for action in &alter.actions {
                    match action {
                        AlterAction::DropColumn { column, .. } => {
                            self.touched_columns.insert((key(&alter.table), column.clone()));
                        }
                        // Its rows are the parent's now.
                        AlterAction::AttachPartition { .. } => {
                            self.written.insert(key(&alter.table));
                        }
                        _ => {}
                    }
                }
                if let Some(db) = self.database_for(&alter.table) {
                    for action in &alter.actions {
                        if let AlterAction::DropColumn { column, .. } = action {
                            for index in db.indexes_on_column(&alter.table, column) {
                                self.touched.insert(key(&QualifiedName {
                                    schema: alter.table.schema.clone(),
                                    name: index,
                                }));
                            }
                        }
                    }
                }
            }
            Stmt::CreateView(view) => {
                self.touched.insert(key(&view.view));
            }
            Stmt::Routine(RoutineKind::CreateFunction) => {
                if let Some(name) = parse::plpgsql::defined_function(&statement.source) {
                    self.functions.retain(|body| body.name != name);
                    self.functions.push(FunctionBody {
                        name,
                        language: String::new(),
                        definition: statement.source.clone(),
                    });
                }
            }
            // An index the run built is not the database's: its row count (reltuples) is
            // what the build counted, which the run's rows decide.
            Stmt::CreateIndex(index) => {
                if let Some(name) = &index.name {
                    let name = key(&QualifiedName {
                        schema: index.table.schema.clone(),
                        name: name.clone(),
                    });
                    let rows = (self.relation_is_empty(&index.table) == Some(true)).then_some(0.0);
                    self.touched.insert(name.clone());
                    self.built.insert(name, (key(&index.table), rows));
                }
            }
            // A rewrite builds the table's indexes again: an empty table's count is -1.
            Stmt::Vacuum { full: true, tables } => self.rewritten(tables),
            Stmt::Cluster { table: Some(table) } => self.rewritten(std::slice::from_ref(table)),
            Stmt::Set(set) if set.name.as_deref().is_none_or(|name| name == "timezone") => {
                if set.local {
                    // Until the transaction ends: not followed, and undone then.
                    if self.file.transaction().running() && self.timezone_before_local.is_none() {
                        self.timezone_before_local = Some(self.timezone.clone());
                    }
                    self.timezone = None;
                } else {
                    self.timezone_before_local = None;
                    self.timezone = match &set.value {
                        Some(value) => Some(value.trim_matches('\'').to_string()),
                        None => self.database.and_then(|db| db.timezone.clone()),
                    };
                }
                if set.name.is_none() {
                    self.search_path_set = false;
                }
            }
            Stmt::Set(set) if set.name.as_deref() == Some("search_path") => {
                self.search_path_set = set.value.is_some() || set.local;
            }
            Stmt::Other { tag, .. } if tag == "ALTER DOMAIN" => self.domains_altered = true,
            Stmt::Other { tag, .. } if tag.starts_with("CREATE") && tag.ends_with("TRIGGER") => {
                match parse::triggers::created_trigger(&statement.source) {
                    Some(trigger) => self.triggers.push(trigger),
                    None => self.triggers_unread = true,
                }
            }
            _ => {}
        }
        self.file.observe(statement);
    }

    /// The trigger functions a write of `events` to `table` fires: the database's (when
    /// it may answer for the table; none for a table the run created) and those of the
    /// triggers the run created on it; the query failed (None) where neither can say.
    fn trigger_functions(&self, table: &QualifiedName, events: u8, database: Option<&Database>) -> Answer {
        if self.triggers_unread {
            return Answer::Bodies(None);
        }
        let mut bodies = match database {
            Some(database) => match database.ask(Question::TriggerFunctions(table.clone(), events)) {
                Answer::Bodies(Some(bodies)) => bodies,
                _ => return Answer::Bodies(None),
            },
            None if self.created_by_run(table) => Vec::new(),
            None => return Answer::Bodies(None),
        };
        let fired = self
            .triggers
            .iter()
            .filter(|trigger| key(&trigger.table) == key(table) && trigger.events & events != 0);
        for trigger in fired {
            let defined: Vec<FunctionBody> = self
                .functions
                .iter()
                .filter(|body| body.name.may_be(&trigger.function))
                .cloned()
                .collect();
            if !defined.is_empty() {
                bodies.extend(defined);
                continue;
            }
            match self
                .database
                .map(|db| db.ask(Question::FunctionBodies(trigger.function.clone())))
            {
                Some(Answer::Bodies(Some(found))) => bodies.extend(found),
                _ => return Answer::Bodies(None),
            }
        }
        Answer::Bodies(Some(bodies))
    }

    /// `tables` may have been rewritten: their indexes' counts are not known any more.
    fn rewritten(&mut self, tables: &[QualifiedName]) {
        let tables: Vec<QualifiedName> = tables.iter().map(key).collect();
        for (table, rows) in self.built.values_mut() {
            if tables.contains(table) {
                *rows = None;
            }
        }
    }

    fn move_relation(&mut self, from: QualifiedName, to: QualifiedName) {
        if self.created.remove(&from) {
            self.created.insert(to.clone());
        }
        if self.written.remove(&from) {
            self.written.insert(to.clone());
        }
        self.touched.insert(from);
        self.touched.insert(to);
    }

    /// The database, when it may answer for `table`: a table the database has under
    /// that name at this point of the run.
    fn database_for(&self, table: &QualifiedName) -> Option<&'db Database> {
        let key = key(table);
        if self.created.contains(&key)
            || self.touched.contains(&key)
            || (table.schema.is_none() && self.search_path_set)
            || table
                .schema
                .as_ref()
                .is_some_and(|schema| self.touched_schemas.contains(schema))
        {
            return None;
        }
        self.database
    }

    /// The database, when it may answer for `table.column`.
    fn database_for_column(&self, table: &QualifiedName, column: &str) -> Option<&'db Database> {
        if self.touched_columns.contains(&(key(table), column.to_string())) {
            return None;
        }
        self.database_for(table)
    }

    /// The database, when its sizes of `table` may be asked.
    fn sizes_for(&self, table: &QualifiedName) -> Option<&'db Database> {
        self.database_for(table).filter(|_| self.sizes)
    }

    /// The database, when it may answer for domains and casts.
    fn database_for_types(&self) -> Option<&'db Database> {
        self.database.filter(|_| !self.domains_altered)
    }

    /// The answer to a question the proxy's judgement of routines asks (`routines`):
    /// the database's, as this catalog would give it, or unknown where the run knows
    /// better than the database.
    pub fn answer(&self, question: Question) -> Answer {
        let Some(database) = self.database else {
            return question.answer(None);
        };
        let relation = match &question {
            Question::ColumnType(table, column) | Question::NotNullCheck(table, column) => {
                self.database_for_column(table, column)
            }
            Question::TypeChangeDependents(change) => self.database_for_column(&change.table, &change.column),
            Question::EstimatedRows(table) => self.sizes_for(table),
            // A table the run wrote to is not the database's size.
            Question::EmptyRelation(table) => self.sizes_for(table).filter(|_| !self.written.contains(&key(table))),
            Question::Partitioned(table)
            | Question::RelationKind(table)
            | Question::IndexColumns(table, _)
            | Question::ConstraintType(table, _)
            | Question::RelationOid(table)
            | Question::ViewQuery(table)
            | Question::TriggerFunctions(table, _) => self.database_for(table),
            Question::DomainConstraints(_) | Question::DomainBaseType(_) | Question::Coercion(..) => {
                self.database_for_types()
            }
            Question::RowsChanged(_) => self.database.filter(|_| self.sizes),
            Question::Volatility(name) | Question::FunctionBodies(name) => self
                .database
                .filter(|_| !self.functions.iter().any(|body| body.name.may_be(name))),
            Question::EventTriggerFunctions | Question::PreparedStatement(_) => Some(database),
        };
        if let Question::TriggerFunctions(table, events) = &question {
            return self.trigger_functions(table, *events, relation);
        }
        match relation {
            // A relation the run created as a table is no view.
            None if matches!(&question, Question::ViewQuery(table) if self.created_by_run(table)) => {
                Answer::ViewQuery(Some(None))
            }
            None => question.answer(None),
            Some(database) if question.is_explain() => database.rows_changed(question),
            Some(database) => database.ask(question),
        }
    }

    fn created_by_run(&self, table: &QualifiedName) -> bool {
        self.created.contains(&key(table))
    }
}

/// Does a CREATE TABLE AS / MATERIALIZED VIEW end with `WITH NO DATA` (no row)?
fn with_no_data(source: &str) -> bool {
    let text = policy::sql::strip_leading_comments(source)
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
        .to_ascii_lowercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    words.ends_with(&["with", "no", "data"])
}

fn bool_answer(answer: Answer) -> Option<bool> {
    match answer {
        Answer::Bool(answer) => answer,
        _ => None,
    }
}

fn names_answer(answer: Answer) -> Option<Vec<String>> {
    match answer {
        Answer::Names(answer) => answer,
        _ => None,
    }
}

impl Catalog for RunCatalog<'_> {
    fn created_in_transaction(&self, table: &QualifiedName) -> Option<bool> {
        // An index (or any relation) this transaction created.
        if self.file.transaction().created_under(&key(table)) {
            return Some(true);
        }
        if let Some(known) = self.file.created_in_transaction(table) {
            return Some(known);
        }
        // A relation the database has under that name, which the run did not create.
        self.database_for(table)?;
        match self.answer(Question::RelationOid(table.clone())) {
            Answer::Oid(Some(_)) => Some(false),
            _ => None,
        }
    }

    fn column_type(&self, table: &QualifiedName, column: &str) -> Option<TypeName> {
        if let Some(known) = self.file.column_type(table, column) {
            return Some(known);
        }
        match self.answer(Question::ColumnType(table.clone(), column.to_string())) {
            Answer::Type(answer) => answer,
            _ => None,
        }
    }

    fn function_volatility(&self, name: &QualifiedName) -> Option<Volatility> {
        match self.answer(Question::Volatility(name.clone())) {
            Answer::Volatility(answer) => answer,
            _ => None,
        }
    }

    fn has_validated_not_null_check(&self, table: &QualifiedName, column: &str) -> Option<bool> {
        if let Some(known) = self.file.has_validated_not_null_check(table, column) {
            return Some(known);
        }
        bool_answer(self.answer(Question::NotNullCheck(table.clone(), column.to_string())))
    }

    fn estimated_rows(&self, table: &QualifiedName) -> Option<f64> {
        if let Some((_, rows)) = self.built.get(&key(table)) {
            return *rows;
        }
        match self.answer(Question::EstimatedRows(table.clone())) {
            Answer::Rows(answer) => answer,
            _ => None,
        }
    }

    fn is_partitioned(&self, table: &QualifiedName) -> Option<bool> {
        bool_answer(self.answer(Question::Partitioned(table.clone())))
    }

    fn domain_has_constraints(&self, type_name: &TypeName) -> Option<bool> {
        bool_answer(self.answer(Question::DomainConstraints(type_name.clone())))
    }

    fn nullable_index_columns(&self, table: &QualifiedName, index: &str) -> Option<Vec<String>> {
        names_answer(self.answer(Question::IndexColumns(table.clone(), index.to_string())))
    }

    fn coercion(&self, from: &TypeName, to: &TypeName) -> Option<Coercion> {
        match self.answer(Question::Coercion(from.clone(), to.clone())) {
            Answer::Coercion(answer) => answer,
            _ => None,
        }
    }

    fn type_change_dependents(&self, change: &ColumnTypeChange) -> Option<ColumnDependents> {
        match self.answer(Question::TypeChangeDependents(change.clone())) {
            Answer::Dependents(answer) => answer,
            _ => None,
        }
    }

    fn is_superuser(&self) -> Option<bool> {
        self.database?.superuser
    }

    fn server_version_num(&self) -> Option<u32> {
        self.file.server_version_num()
    }

    fn timezone(&self) -> Option<String> {
        self.timezone.clone()
    }

    fn rows_changed_estimate(&self, statement: &Statement) -> Option<f64> {
        // Planned as the database stands (EXPLAIN, never run): only for writes to tables
        // the run has not created, written or changed the name of, with --sizes database.
        let Stmt::Dml(writes) = &statement.stmt else {
            return None;
        };
        if writes.iter().any(|write| self.sizes_for(&write.table).is_none()) {
            return None;
        }
        let estimate = Estimate {
            statement: statement.source.clone(),
            executed: self.executing.clone().map(|execute| Executed {
                execute,
                parameter_types: Vec::new(),
                evaluate_arguments: Some(false),
            }),
            nested: false,
        };
        match self.answer(Question::RowsChanged(estimate)) {
            Answer::Rows(answer) => answer,
            _ => None,
        }
    }

    fn relation_is_empty(&self, table: &QualifiedName) -> Option<bool> {
        // Judged as one run against a database, a table the run created holds what the
        // run wrote to it; a file judged on its own says nothing of what others wrote.
        if self.created_by_run(table) {
            return (self.database.is_some() && !self.written.contains(&key(table))).then_some(true);
        }
        bool_answer(self.answer(Question::EmptyRelation(table.clone())))
    }

    fn domain_base_type(&self, type_name: &TypeName) -> Option<String> {
        names_answer(self.answer(Question::DomainBaseType(type_name.clone())))?
            .into_iter()
            .next()
    }

    fn constraint_type(&self, table: &QualifiedName, name: &str) -> Option<char> {
        names_answer(self.answer(Question::ConstraintType(table.clone(), name.to_string())))?
            .first()?
            .chars()
            .next()
    }

    fn relation_kind(&self, relation: &QualifiedName) -> Option<char> {
        names_answer(self.answer(Question::RelationKind(relation.clone())))?
            .first()?
            .chars()
            .next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_no_data_ends_the_statement() {
        assert!(with_no_data("CREATE MATERIALIZED VIEW v AS SELECT 1 WITH NO DATA;"));
        assert!(with_no_data("CREATE TABLE t AS SELECT 1 with  no\ndata"));
        assert!(!with_no_data("CREATE TABLE t AS SELECT 1 WITH DATA"));
        assert!(!with_no_data("CREATE TABLE t AS SELECT 'with no data'"));
    }
}
