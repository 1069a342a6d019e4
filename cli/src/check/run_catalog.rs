//! The catalog `check` decides with: what the files showed (`FileCatalog`: tables they
//! created, columns they declared, the transaction), and, with `--database-url`, what the
//! database answers about everything else, as it stands before the run.
//!
//! The database has not seen the files. A relation the run renamed or moved is asked of
//! the database under the name it has there; a relation the run created is answered from
//! the files (no trigger, no view query, no size but "empty until written"); and the
//! database is not asked at all for a name the run dropped or put something else under,
//! a column it renamed or dropped, a function it created or replaced (its own body is
//! read instead), domains and casts once it changed one, a schema it renamed, or an
//! unqualified name while a `SET LOCAL search_path` holds or after a search_path the
//! session could not follow (a plain `SET search_path` is run on the session too). Sizes
//! of the database's own tables (row estimates, emptiness, the planner's estimates) are
//! asked only with `--sizes database`: a schema-only database has none, and a table the
//! run wrote to is of unknown emptiness.

use std::collections::{HashMap, HashSet};

use parse::triggers::CreatedTrigger;
use policy::catalog::{Catalog, ColumnDependents, ColumnTypeChange, Volatility};
use policy::file_catalog::FileCatalog;
use policy::model::{
    AlterAction, ObjectKind, QualifiedName, RoutineKind, SettingChange, Statement, Stmt, TransactionKind,
};
use policy::transaction::Transaction;
use policy::types::{Coercion, TypeName};
use proxy::catalog::{Answer, Estimate, Executed, FunctionBody, Question, ViewQuery};

use super::database::Database;

pub struct RunCatalog<'db> {
    file: FileCatalog,
    database: Option<&'db Database>,
    /// The database's table sizes and estimates stand for production's (`--sizes
    /// database`: a staging copy), else they are unknown (a schema-only database).
    sizes: bool,
    /// Every file starts as this transaction (`--transaction`).
    start: Transaction,
    /// Relations (tables, views, materialized views) the run created, by current name.
    created: HashSet<QualifiedName>,
    /// Relations the run may have written rows to.
    written: HashSet<QualifiedName>,
    /// Names whose database relation is not what they stand for now: dropped, renamed or
    /// moved away, or an index the run built.
    gone: HashSet<QualifiedName>,
    /// Relations of the database's the run renamed or moved: current name to the name
    /// the database has.
    renamed: HashMap<QualifiedName, QualifiedName>,
    /// Columns the run renamed (from and to) or dropped.
    touched_columns: HashSet<(QualifiedName, String)>,
    /// Schemas the run renamed (from and to) or dropped.
    touched_schemas: HashSet<String>,
    /// The run changed a domain, a type or a cast the database has.
    types_changed: bool,
    /// Unqualified names may resolve elsewhere than on the session: a SET LOCAL
    /// search_path of the running transaction.
    search_path_local: bool,
    /// The same for good: a search_path the session could not follow (set_config).
    search_path_unknown: bool,
    /// The session's TimeZone as the run's SETs leave it (None: unknown); at first the
    /// database's.
    timezone: Option<String>,
    /// The TimeZone before a SET LOCAL of the running transaction, back at its end.
    timezone_before_local: Option<Option<String>>,
    /// Indexes the run built, by name (in their table's schema): their table and their
    /// row count (reltuples) as the build left it: 0 when the table held no row, which a
    /// rewrite of the table later sets to -1 again (unknown here, as other counts).
    built: HashMap<QualifiedName, (QualifiedName, Option<f64>)>,
    /// Functions and procedures the run created or replaced, as written.
    functions: Vec<FunctionBody>,
    /// Triggers the run created, and whether it created one this catalog could not read.
    triggers: Vec<CreatedTrigger>,
    triggers_unread: bool,
    /// The functions of the event triggers the run created, and whether one was unread.
    event_functions: Vec<QualifiedName>,
    event_triggers_unread: bool,
    /// The EXECUTE whose prepared query is being decided, if one is.
    executing: Option<String>,
    /// The schema unqualified names are created in now, when not `public` (the session
    /// follows the run's search_path).
    current_schema: Option<String>,
    /// The session's search_path (and current schema) before the running transaction set
    /// one, put back if it rolls back.
    search_path_saved: Option<(String, Option<String>)>,
    /// The queries of the views and materialized views the run created or replaced.
    view_queries: HashMap<QualifiedName, ViewQuery>,
}

/// A relation's name as the run's sets keep it: `public` as no schema.
fn key(name: &QualifiedName) -> QualifiedName {
    QualifiedName {
        schema: name.schema.clone().filter(|schema| schema != "public"),
        name: name.name.clone(),
    }
}

impl<'db> RunCatalog<'db> {
    /// Files judged with `start` as each file's transaction, the database if given, its
    /// sizes if `sizes`.
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
            sizes,
            start,
            created: HashSet::new(),
            written: HashSet::new(),
            gone: HashSet::new(),
            renamed: HashMap::new(),
            touched_columns: HashSet::new(),
            touched_schemas: HashSet::new(),
            types_changed: false,
            search_path_local: false,
            search_path_unknown: false,
            timezone: database.and_then(|db| db.timezone.clone()),
            timezone_before_local: None,
            built: HashMap::new(),
            functions: Vec::new(),
            triggers: Vec::new(),
            triggers_unread: false,
            event_functions: Vec::new(),
            event_triggers_unread: false,
            executing: None,
            current_schema: None,
            search_path_saved: None,
            view_queries: HashMap::new(),
        }
    }

    /// `name` as the run's sets keep it: unqualified, in the current schema.
    fn k(&self, name: &QualifiedName) -> QualifiedName {
        key(&QualifiedName {
            schema: name.schema.clone().or_else(|| self.current_schema.clone()),
            name: name.name.clone(),
        })
    }

    /// The run's next file: whatever transaction the last one left open ended with it.
    pub fn next_file(&mut self) {
        self.file
            .observe(&Statement::new(Stmt::Transaction(TransactionKind::Commit), "COMMIT"));
        self.transaction_ended();
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

    /// Before the next statement (`FileCatalog::forget_ended`).
    pub fn forget_ended(&mut self) {
        if !self.file.transaction().running() {
            self.transaction_ended();
        }
        self.file.forget_ended()
    }

    /// What a transaction's SET LOCALs set ends with it.
    fn transaction_ended(&mut self) {
        self.search_path_saved = None;
        if let Some(timezone) = self.timezone_before_local.take() {
            self.timezone = timezone;
        }
        self.search_path_local = false;
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
        if statement.changes.iter().any(|change| {
            matches!(change, SettingChange::SetConfig(name) if name == "search_path")
                || *change == SettingChange::SetConfigComputed
        }) {
            self.search_path_unknown = true;
        }
        match &statement.stmt {
            Stmt::CreateTable(create) => {
                // IF NOT EXISTS of a relation that exists leaves that one.
                if !(create.if_not_exists && self.exists(&create.table)) {
                    self.create(&create.table);
                }
                // A partition's rows are its parent's too.
                if let Some(parent) = &create.partition_of {
                    self.written.insert(self.k(parent));
                }
            }
            Stmt::CreateTableAs {
                table, if_not_exists, ..
            } if !(*if_not_exists && self.exists(table)) => {
                self.create(table);
                if !with_no_data(&statement.source) {
                    self.written.insert(self.k(table));
                }
                self.remember_view(table, &statement.source);
            }
            Stmt::CreateView(view) => {
                // OR REPLACE of a view the database has keeps it (its triggers too): only
                // its query is the run's.
                if !(view.replace && self.exists(&view.view)) {
                    self.create(&view.view);
                }
                self.remember_view(&view.view, &statement.source);
            }
            Stmt::Transaction(TransactionKind::Rollback) => self.rolled_back(),
            Stmt::Dml(writes) => {
                for write in writes {
                    self.written.insert(self.k(&write.table));
                }
            }
            Stmt::Query => {
                if let Some(table) = parse::triggers::copied_into(&statement.source) {
                    self.written.insert(self.k(&table));
                }
            }
            Stmt::Rename(rename) => match rename.kind {
                ObjectKind::Schema => {
                    self.touched_schemas.insert(rename.object.name.clone());
                    self.touched_schemas.insert(rename.new_name.clone());
                }
                ObjectKind::Column => {
                    if let Some(old) = &rename.subname {
                        self.touched_columns.insert((self.k(&rename.object), old.clone()));
                        self.touched_columns
                            .insert((self.k(&rename.object), rename.new_name.clone()));
                    }
                }
                ObjectKind::Type => self.types_changed = true,
                _ if rename.subname.is_none() => {
                    let to = QualifiedName {
                        schema: rename.object.schema.clone(),
                        name: rename.new_name.clone(),
                    };
                    self.move_relation(&rename.object, &to);
                }
                _ => {}
            },
            Stmt::SetSchema(set) if set.kind == ObjectKind::Type => self.types_changed = true,
            Stmt::SetSchema(set) => {
                let to = QualifiedName {
                    schema: Some(set.new_schema.clone()),
                    name: set.object.name.clone(),
                };
                self.move_relation(&set.object, &to);
            }
            Stmt::Drop(drop) if drop.kind == ObjectKind::Schema => {
                self.touched_schemas
                    .extend(drop.objects.iter().map(|schema| schema.name.clone()));
            }
            Stmt::Drop(drop) => {
                if drop.kind == ObjectKind::Type {
                    self.types_changed = true;
                }
                for object in &drop.objects {
                    self.created.remove(&self.k(object));
                    self.renamed.remove(&self.k(object));
                    self.gone.insert(self.k(object));
                }
            }
            Stmt::DropIndex(drop) => {
                for index in &drop.indexes {
                    self.renamed.remove(&self.k(index));
                    self.gone.insert(self.k(index));
                }
            }
            Stmt::AlterTable(alter) => self.altered(alter),
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
                    let name = self.k(&QualifiedName {
                        schema: index.table.schema.clone(),
                        name: name.clone(),
                    });
                    let rows = (self.relation_is_empty(&index.table) == Some(true)).then_some(0.0);
                    self.gone.insert(name.clone());
                    self.built.insert(name, (self.k(&index.table), rows));
                }
            }
            // A rewrite builds the table's indexes again: an empty table's count is -1.
            Stmt::Vacuum { full: true, tables } => self.rewritten(tables),
            Stmt::Cluster { table: Some(table) } => self.rewritten(std::slice::from_ref(table)),
            Stmt::Set(set) => {
                let name = set.name.as_deref();
                if name.is_none_or(|name| name == "timezone") {
                    self.set_timezone(set.value.as_deref(), set.local);
                }
                // RESET ALL resets the search_path too; only that is run on the session (it
                // would reset the session's own read-only and standard-strings settings).
                match name {
                    None => self.set_search_path("RESET search_path", set.local),
                    Some("search_path") => self.set_search_path(&statement.source, set.local),
                    Some(_) => {}
                }
            }
            Stmt::Other { tag, .. } => match tag.as_str() {
                "ALTER DOMAIN" | "CREATE CAST" | "DROP CAST" | "ALTER TYPE" => self.types_changed = true,
                "CREATE TRIGGER" | "CREATE CONSTRAINT TRIGGER" => {
                    match parse::triggers::created_trigger(&statement.source) {
                        Some(trigger) => self.triggers.push(trigger),
                        None => self.triggers_unread = true,
                    }
                }
                "CREATE EVENT TRIGGER" => match parse::triggers::created_event_trigger_function(&statement.source) {
                    Some(function) => self.event_functions.push(function),
                    None => self.event_triggers_unread = true,
                },
                _ => {}
            },
            _ => {}
        }
        self.file.observe(statement);
    }

    /// Does `relation` exist at this point of the run (the run's, or the database's)?
    fn exists(&self, relation: &QualifiedName) -> bool {
        self.created_by_run(relation)
            || matches!(
                self.database_answer(Question::RelationOid(relation.clone())),
                Answer::Oid(Some(_))
            )
    }

    /// The query of the view `source` creates (or replaces), as reading it runs it.
    fn remember_view(&mut self, relation: &QualifiedName, source: &str) {
        let name = self.k(relation);
        match parse::triggers::created_view_query(source) {
            Some((materialized, query)) => {
                self.view_queries.insert(name, ViewQuery { materialized, query });
            }
            None => {
                self.view_queries.remove(&name);
            }
        }
    }

    /// A ROLLBACK: the search_path the transaction set is undone on the session too.
    fn rolled_back(&mut self) {
        if let (Some((path, schema)), Some(database)) = (self.search_path_saved.take(), self.database) {
            let restore = format!("SET search_path TO {path}");
            if !database.follow_search_path(&restore) {
                self.search_path_unknown = true;
            }
            self.current_schema = schema;
        }
    }

    /// The run created `relation`: empty, and none of the database's.
    fn create(&mut self, relation: &QualifiedName) {
        self.created.insert(self.k(relation));
        self.written.remove(&self.k(relation));
        self.renamed.remove(&self.k(relation));
    }

    fn altered(&mut self, alter: &policy::model::AlterTable) {
        // A change that may rewrite the table builds its indexes again.
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
                    self.touched_columns.insert((self.k(&alter.table), column.clone()));
                    // The database's indexes on the column go with it.
                    if let (Some(database), Some(name)) = (self.database, self.db_name(&alter.table)) {
                        for index in database.indexes_on_column(&name, column) {
                            self.gone.insert(self.k(&QualifiedName {
                                schema: alter.table.schema.clone(),
                                name: index,
                            }));
                        }
                    }
                }
                // Its rows are the parent's now.
                AlterAction::AttachPartition { .. } => {
                    self.written.insert(self.k(&alter.table));
                }
                // The index takes the constraint's name (PostgreSQL renames it).
                AlterAction::AddConstraint(policy::model::Constraint {
                    kind:
                        policy::model::ConstraintKind::Unique {
                            using_index: Some(index),
                            ..
                        },
                    ..
                }) => {
                    let index = self.k(&QualifiedName {
                        schema: alter.table.schema.clone(),
                        name: index.clone(),
                    });
                    self.built.remove(&index);
                    self.renamed.remove(&index);
                    self.gone.insert(index);
                }
                _ => {}
            }
        }
    }

    fn set_timezone(&mut self, value: Option<&str>, local: bool) {
        if local {
            // Outside a transaction a SET LOCAL does nothing; inside one it holds until
            // the transaction ends: not followed, and undone then.
            if self.file.transaction().running() {
                if self.timezone_before_local.is_none() {
                    self.timezone_before_local = Some(self.timezone.clone());
                }
                self.timezone = None;
            }
        } else {
            self.timezone_before_local = None;
            self.timezone = match value {
                Some(value) => Some(value.trim_matches('\'').to_string()),
                None => self.database.and_then(|db| db.timezone.clone()),
            };
        }
    }

    /// A SET (or RESET) of search_path: run on the session too, so that unqualified
    /// names resolve as they will for the migration; a SET LOCAL makes them unknown
    /// until its transaction ends.
    fn set_search_path(&mut self, source: &str, local: bool) {
        if local {
            self.search_path_local |= self.file.transaction().running();
            return;
        }
        let Some(database) = self.database else {
            return;
        };
        if self.file.transaction().running() && self.search_path_saved.is_none() {
            match database.search_path() {
                Some(path) => self.search_path_saved = Some((path, self.current_schema.clone())),
                None => self.search_path_unknown = true,
            }
        }
        if !database.follow_search_path(source) {
            self.search_path_unknown = true;
        }
        match database.current_schema() {
            Some(schema) => self.current_schema = Some(schema).filter(|schema| schema != "public"),
            None => self.search_path_unknown = true,
        }
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

    /// `from` is `to` now.
    fn move_relation(&mut self, from: &QualifiedName, to: &QualifiedName) {
        let (from_key, to_key) = (self.k(from), self.k(to));
        if self.created.remove(&from_key) {
            self.created.insert(to_key.clone());
        } else if let Some(name) = self.db_name(from) {
            self.renamed.insert(to_key.clone(), name);
        }
        self.renamed.remove(&from_key);
        if self.written.remove(&from_key) {
            self.written.insert(to_key.clone());
        }
        let moved: Vec<usize> = (0..self.triggers.len())
            .filter(|&at| self.k(&self.triggers[at].table) == from_key)
            .collect();
        for at in moved {
            self.triggers[at].table = to.clone();
        }
        let columns: Vec<(QualifiedName, String)> = self
            .touched_columns
            .iter()
            .filter(|(table, _)| *table == from_key)
            .cloned()
            .collect();
        for (_, column) in columns {
            self.touched_columns.insert((to_key.clone(), column));
        }
        if let Some(view) = self.view_queries.remove(&from_key) {
            self.view_queries.insert(to_key.clone(), view);
        }
        self.gone.insert(from_key);
        self.gone.remove(&to_key);
    }

    /// The name the database has for the relation `relation` names at this point of the
    /// run, when it is one of the database's.
    fn db_name(&self, relation: &QualifiedName) -> Option<QualifiedName> {
        let name = self.k(relation);
        let unqualified_unknown = relation.schema.is_none() && (self.search_path_local || self.search_path_unknown);
        let schema_touched = relation
            .schema
            .as_ref()
            .is_some_and(|schema| self.touched_schemas.contains(schema));
        if self.created.contains(&name) || unqualified_unknown || schema_touched {
            return None;
        }
        if let Some(original) = self.renamed.get(&name) {
            return Some(original.clone());
        }
        (!self.gone.contains(&name)).then(|| relation.clone())
    }

    fn created_by_run(&self, relation: &QualifiedName) -> bool {
        self.created.contains(&self.k(relation))
    }

    fn run_function(&self, name: &QualifiedName) -> Option<&FunctionBody> {
        self.functions.iter().find(|body| body.name.may_be(name))
    }

    /// The database's function bodies, each one the run replaced read from the run.
    fn with_run_bodies(&self, bodies: Vec<FunctionBody>) -> Vec<FunctionBody> {
        bodies
            .into_iter()
            .map(|body| self.run_function(&body.name).cloned().unwrap_or(body))
            .collect()
    }

    /// The bodies of `function`: the run's, else the database's; None when neither.
    fn function_bodies(&self, function: &QualifiedName) -> Option<Vec<FunctionBody>> {
        if let Some(body) = self.run_function(function) {
            return Some(vec![body.clone()]);
        }
        match self.database?.ask(Question::FunctionBodies(function.clone())) {
            Answer::Bodies(Some(bodies)) => Some(bodies),
            _ => None,
        }
    }

    /// The trigger functions a write of `events` to `relation` fires: the database's (none
    /// for a relation the run created) and those of the triggers the run created on it;
    /// the query failed (None) where neither can say.
    fn trigger_functions(&self, relation: &QualifiedName, events: u8) -> Answer {
        let Some(database) = self.database else {
            return Answer::Bodies(None);
        };
        if self.triggers_unread {
            return Answer::Bodies(None);
        }
        let mut bodies = if self.created_by_run(relation) {
            Vec::new()
        } else {
            let Some(name) = self.db_name(relation) else {
                return Answer::Bodies(None);
            };
            match database.ask(Question::TriggerFunctions(name, events)) {
                Answer::Bodies(Some(bodies)) => self.with_run_bodies(bodies),
                _ => return Answer::Bodies(None),
            }
        };
        let fired = self
            .triggers
            .iter()
            .filter(|trigger| self.k(&trigger.table) == self.k(relation) && trigger.events & events != 0);
        for trigger in fired {
            match self.function_bodies(&trigger.function) {
                Some(found) => bodies.extend(found),
                None => return Answer::Bodies(None),
            }
        }
        Answer::Bodies(Some(bodies))
    }

    /// The functions of the enabled event triggers: the database's and the run's.
    fn event_trigger_functions(&self, database: &Database) -> Answer {
        if self.event_triggers_unread {
            return Answer::Bodies(None);
        }
        let Answer::Bodies(Some(bodies)) = database.ask(Question::EventTriggerFunctions) else {
            return Answer::Bodies(None);
        };
        let mut bodies = self.with_run_bodies(bodies);
        for function in &self.event_functions {
            match self.function_bodies(function) {
                Some(found) => bodies.extend(found),
                None => return Answer::Bodies(None),
            }
        }
        Answer::Bodies(Some(bodies))
    }

    /// The answer to a question the proxy's judgement of routines asks (`routines`), as
    /// this catalog answers it: what the files know first, then the database.
    pub fn answer(&self, question: Question) -> Answer {
        match &question {
            Question::ColumnType(table, column) => Answer::Type(self.column_type(table, column)),
            Question::NotNullCheck(table, column) => Answer::Bool(self.has_validated_not_null_check(table, column)),
            Question::EstimatedRows(table) => Answer::Rows(self.estimated_rows(table)),
            Question::EmptyRelation(table) => Answer::Bool(self.relation_is_empty(table)),
            _ => self.database_answer(question),
        }
    }

    /// The database's answer to `question`, asked under the names the database has, or
    /// unknown where the run has changed what it would say.
    fn database_answer(&self, question: Question) -> Answer {
        // "Not known" as the question's own answer says it (for a view's query or a
        // definition that is "could not be read", which the judgement reports).
        let unknown = question.answer(None);
        let Some(database) = self.database else {
            return unknown;
        };
        let column_known =
            |table: &QualifiedName, column: &str| !self.touched_columns.contains(&(self.k(table), column.to_string()));
        let asked = match question {
            Question::ColumnType(table, column) => self
                .db_name(&table)
                .filter(|_| column_known(&table, &column))
                .map(|name| Question::ColumnType(name, column)),
            Question::NotNullCheck(table, column) => self
                .db_name(&table)
                .filter(|_| column_known(&table, &column))
                .map(|name| Question::NotNullCheck(name, column)),
            Question::TypeChangeDependents(change) => self
                .db_name(&change.table)
                .filter(|_| column_known(&change.table, &change.column))
                .map(|table| Question::TypeChangeDependents(ColumnTypeChange { table, ..change })),
            Question::EstimatedRows(table) => self.db_name(&table).filter(|_| self.sizes).map(Question::EstimatedRows),
            // A table the run wrote to is not the database's size.
            Question::EmptyRelation(table) => self
                .db_name(&table)
                .filter(|_| self.sizes && !self.written.contains(&self.k(&table)))
                .map(Question::EmptyRelation),
            Question::Partitioned(table) => self.db_name(&table).map(Question::Partitioned),
            Question::RelationKind(table) => self.db_name(&table).map(Question::RelationKind),
            Question::RelationOid(table) => self.db_name(&table).map(Question::RelationOid),
            Question::IndexColumns(table, index) => {
                let index_key = self.k(&QualifiedName {
                    schema: table.schema.clone(),
                    name: index.clone(),
                });
                self.db_name(&table)
                    .filter(|_| !self.gone.contains(&index_key) && !self.built.contains_key(&index_key))
                    .map(|name| Question::IndexColumns(name, index))
            }
            Question::ConstraintType(table, constraint) => self
                .db_name(&table)
                .map(|name| Question::ConstraintType(name, constraint)),
            // A relation the run created is no view of the database's (a view it created
            // is not read: what its query calls is not followed).
            Question::ViewQuery(table) if self.view_queries.contains_key(&self.k(&table)) => {
                return Answer::ViewQuery(Some(self.view_queries.get(&self.k(&table)).cloned()));
            }
            Question::ViewQuery(table) if self.created_by_run(&table) => return Answer::ViewQuery(Some(None)),
            Question::ViewQuery(table) => self.db_name(&table).map(Question::ViewQuery),
            Question::TriggerFunctions(table, events) => return self.trigger_functions(&table, events),
            Question::EventTriggerFunctions => return self.event_trigger_functions(database),
            Question::FunctionBodies(name) => {
                return Answer::Bodies(self.function_bodies(&name));
            }
            // A function the run created or replaced: its volatility is its statement's.
            Question::Volatility(name) => (self.run_function(&name).is_none()).then_some(Question::Volatility(name)),
            question @ (Question::DomainConstraints(_) | Question::DomainBaseType(_) | Question::Coercion(..)) => {
                (!self.types_changed).then_some(question)
            }
            question @ Question::RowsChanged(_) => self.sizes.then_some(question),
            question @ Question::PreparedStatement(_) => Some(question),
        };
        match asked {
            None => unknown,
            Some(question) if question.is_explain() => database.rows_changed(question),
            Some(question) => database.ask(question),
        }
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
        if self.file.transaction().created_under(&self.k(table)) {
            return Some(true);
        }
        if let Some(known) = self.file.created_in_transaction(table) {
            return Some(known);
        }
        // A relation the database has under that name, which the run did not create.
        match self.database_answer(Question::RelationOid(table.clone())) {
            Answer::Oid(Some(_)) => Some(false),
            _ => None,
        }
    }

    fn column_type(&self, table: &QualifiedName, column: &str) -> Option<TypeName> {
        if let Some(known) = self.file.column_type(table, column) {
            return Some(known);
        }
        match self.database_answer(Question::ColumnType(table.clone(), column.to_string())) {
            Answer::Type(answer) => answer,
            _ => None,
        }
    }

    fn function_volatility(&self, name: &QualifiedName) -> Option<Volatility> {
        match self.database_answer(Question::Volatility(name.clone())) {
            Answer::Volatility(answer) => answer,
            _ => None,
        }
    }

    fn has_validated_not_null_check(&self, table: &QualifiedName, column: &str) -> Option<bool> {
        if let Some(known) = self.file.has_validated_not_null_check(table, column) {
            return Some(known);
        }
        bool_answer(self.database_answer(Question::NotNullCheck(table.clone(), column.to_string())))
    }

    fn estimated_rows(&self, table: &QualifiedName) -> Option<f64> {
        if let Some((_, rows)) = self.built.get(&self.k(table)) {
            return *rows;
        }
        match self.database_answer(Question::EstimatedRows(table.clone())) {
            Answer::Rows(answer) => answer,
            _ => None,
        }
    }

    fn is_partitioned(&self, table: &QualifiedName) -> Option<bool> {
        bool_answer(self.database_answer(Question::Partitioned(table.clone())))
    }

    fn domain_has_constraints(&self, type_name: &TypeName) -> Option<bool> {
        bool_answer(self.database_answer(Question::DomainConstraints(type_name.clone())))
    }

    fn nullable_index_columns(&self, table: &QualifiedName, index: &str) -> Option<Vec<String>> {
        names_answer(self.database_answer(Question::IndexColumns(table.clone(), index.to_string())))
    }

    fn coercion(&self, from: &TypeName, to: &TypeName) -> Option<Coercion> {
        match self.database_answer(Question::Coercion(from.clone(), to.clone())) {
            Answer::Coercion(answer) => answer,
            _ => None,
        }
    }

    fn type_change_dependents(&self, change: &ColumnTypeChange) -> Option<ColumnDependents> {
        match self.database_answer(Question::TypeChangeDependents(change.clone())) {
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
        // Planned as the database stands (EXPLAIN, never run), with --sizes database: only
        // for writes to relations of the database's, under their names there.
        let Stmt::Dml(writes) = &statement.stmt else {
            return None;
        };
        if writes
            .iter()
            .any(|write| self.db_name(&write.table).as_ref() != Some(&write.table))
        {
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
        match self.database_answer(Question::RowsChanged(estimate)) {
            Answer::Rows(answer) => answer,
            _ => None,
        }
    }

    fn relation_is_empty(&self, table: &QualifiedName) -> Option<bool> {
        // Judged as one run against a database, a table the run created holds what the
        // run wrote to it; a file judged on its own says nothing of what others wrote.
        if self.created_by_run(table) {
            return (self.database.is_some() && !self.written.contains(&self.k(table))).then_some(true);
        }
        bool_answer(self.database_answer(Question::EmptyRelation(table.clone())))
    }

    fn domain_base_type(&self, type_name: &TypeName) -> Option<String> {
        names_answer(self.database_answer(Question::DomainBaseType(type_name.clone())))?
            .into_iter()
            .next()
    }

    fn constraint_type(&self, table: &QualifiedName, name: &str) -> Option<char> {
        names_answer(self.database_answer(Question::ConstraintType(table.clone(), name.to_string())))?
            .first()?
            .chars()
            .next()
    }

    fn relation_kind(&self, relation: &QualifiedName) -> Option<char> {
        names_answer(self.database_answer(Question::RelationKind(relation.clone())))?
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
