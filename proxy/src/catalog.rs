//! The policy's catalog questions, answered by the server on the client's own session.
//!
//! `decide` asks synchronously; the server answers asynchronously. So the session runs
//! the decision with what it knows, collects the questions that had no answer yet,
//! asks the server all of them in one hidden batch, and decides again.

use std::cell::RefCell;
use std::collections::HashMap;

use policy::catalog::{is_not_null_check, Catalog, ColumnDependents, ColumnTypeChange, Volatility};
use policy::catalog_queries;
use policy::sql::literal;
use policy::types::Coercion;
use policy::{QualifiedName, Statement, Transaction, TypeName};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Question {
    ColumnType(QualifiedName, String),
    Volatility(QualifiedName),
    NotNullCheck(QualifiedName, String),
    EstimatedRows(QualifiedName),
    /// Is the relation a partitioned table?
    Partitioned(QualifiedName),
    /// Is the type a domain with constraints (its own or a base domain's)?
    DomainConstraints(TypeName),
    /// The base type of a domain, through domains over domains, as format_type writes it.
    DomainBaseType(TypeName),
    /// Has the table (or materialized view) no block at all?
    EmptyRelation(QualifiedName),
    RelationKind(QualifiedName),
    /// The key columns of the table's index (by name) and whether each is NOT NULL.
    IndexColumns(QualifiedName, String),
    /// How the old type converts to the new one (policy::catalog_queries::coercion_sql).
    Coercion(TypeName, TypeName),
    /// What a type change of the column re-checks and rebuilds (dependents_sql).
    TypeChangeDependents(ColumnTypeChange),
    /// The relation a name resolves to under the session's search_path.
    RelationOid(QualifiedName),
    /// The language and source of every function or procedure a call of this name may
    /// reach (each visible overload outside pg_catalog).
    FunctionBodies(QualifiedName),
    /// The trigger functions writes to the table may fire, by the events they are
    /// (tgtype bits): the table's own enabled triggers for those events; its partitions'
    /// and inheritance children's (an UPDATE of a partitioned table may move rows: DELETE
    /// and INSERT on its partitions); those of the tables its foreign keys' actions write
    /// (ON DELETE CASCADE deletes, SET NULL / DEFAULT and ON UPDATE actions update,
    /// TRUNCATE ... CASCADE truncates every referencing table); and those of the tables
    /// its rewrite rules reach (a view written through writes its base tables with the
    /// same events; other rules may insert, update or delete anywhere), transitively.
    TriggerFunctions(QualifiedName, u8),
    /// The query of the view or materialized view a name resolves to (none for other
    /// relations).
    ViewQuery(QualifiedName),
    /// The functions of the database's enabled event triggers, which DDL fires.
    EventTriggerFunctions,
    /// The planner's estimate of the rows an UPDATE, DELETE or MERGE changes, by EXPLAIN
    /// on the session (`Session::explain`: never left to abort the client's transaction).
    RowsChanged(Estimate),
    /// The query the session's prepared statement of this name runs, and its parameter
    /// types (pg_prepared_statements).
    PreparedStatement(String),
    /// pg_constraint.contype of the table's constraint (by name).
    ConstraintType(QualifiedName, String),
}

/// What `Question::RowsChanged` asks EXPLAIN about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Estimate {
    /// The statement's text.
    pub statement: String,
    /// The statement is a prepared statement's query, run by this EXECUTE.
    pub executed: Option<Executed>,
    /// A routine (a DO block, a function) runs the statement.
    pub nested: bool,
}

/// An `EXECUTE` of a prepared statement: planned for its arguments, as the server plans it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Executed {
    /// The client's `EXECUTE name (arguments)`.
    pub execute: String,
    /// The prepared statement's parameter types (oids), as the server resolved them.
    pub parameter_types: Vec<u32>,
    /// Its arguments call no volatile function: the proxy's question may evaluate them
    /// (None: not known yet, and nothing is asked until it is).
    pub evaluate_arguments: Option<bool>,
}

/// A prepared statement, as pg_prepared_statements shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedQuery {
    /// The query it runs, or why its text cannot be read.
    pub query: Result<String, String>,
    pub parameter_types: Vec<u32>,
}

/// The query of a view or materialized view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewQuery {
    /// A materialized view runs its query only when refreshed, not when read.
    pub materialized: bool,
    pub query: String,
}

/// What a user-defined function runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionBody {
    pub name: QualifiedName,
    pub language: String,
    /// Its `CREATE FUNCTION` statement (pg_get_functiondef); empty for C and internal
    /// functions and aggregates.
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Type(Option<TypeName>),
    Volatility(Option<Volatility>),
    Bool(Option<bool>),
    Rows(Option<f64>),
    /// The relation's oid; `None` when the name resolves to nothing (or the query failed).
    Oid(Option<u32>),
    /// `None`: the query failed.
    Bodies(Option<Vec<FunctionBody>>),
    /// `None`: nothing found, or the query failed.
    Names(Option<Vec<String>>),
    Coercion(Option<Coercion>),
    Dependents(Option<ColumnDependents>),
    /// `None`: the query failed; `Some(None)`: not a view.
    ViewQuery(Option<Option<ViewQuery>>),
    /// `None`: no such prepared statement (or the query failed).
    Prepared(Option<PreparedQuery>),
}

type Rows = Vec<Vec<Option<String>>>;

use catalog_queries::regclass;

/// The columns of a function as `FunctionBody` rows read them (schema, name, language,
/// definition: `CREATE FUNCTION` as pg_get_functiondef writes it, empty for C and
/// internal functions and aggregates), and the joins they need from `pg_proc p`.
const BODY_COLUMNS: &str = "n.nspname, p.proname, l.lanname, CASE WHEN l.lanname IN ('c', 'internal') THEN '' \
     WHEN p.prokind IN ('f', 'p') THEN pg_catalog.pg_get_functiondef(p.oid) ELSE '' END";
const BODY_JOINS: &str = "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
     JOIN pg_catalog.pg_language l ON l.oid = p.prolang";

/// The function bodies of rows of `BODY_COLUMNS`.
fn bodies(rows: Rows) -> Vec<FunctionBody> {
    rows.into_iter()
        .filter_map(|row| match row.as_slice() {
            [schema, Some(name), Some(language), Some(definition)] => Some(FunctionBody {
                name: QualifiedName::new(schema.as_deref(), name),
                language: language.clone(),
                definition: definition.clone(),
            }),
            _ => None,
        })
        .collect()
}

impl Question {
    /// The hidden query that answers it (never fails on a missing object: no rows/NULL).
    pub fn sql(&self) -> String {
        match self {
            Question::ColumnType(table, column) => format!(
                "SELECT n.nspname, COALESCE(e.typname, t.typname), a.atttypmod, e.oid IS NOT NULL \
                 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_catalog.pg_type e ON t.typcategory = 'A' AND e.oid = t.typelem \
                 JOIN pg_catalog.pg_namespace n ON n.oid = COALESCE(e.typnamespace, t.typnamespace) \
                 WHERE a.attrelid = {} AND a.attname = {} AND NOT a.attisdropped",
                regclass(table),
                literal(column)
            ),
            Question::Volatility(function) => format!(
                "SELECT max(CASE p.provolatile WHEN 'v' THEN 3 WHEN 's' THEN 2 WHEN 'i' THEN 1 END) \
                 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                 WHERE p.proname = {} AND {}",
                literal(&function.name),
                match &function.schema {
                    Some(schema) => format!("n.nspname = {}", literal(schema)),
                    None => "pg_catalog.pg_function_is_visible(p.oid)".to_string(),
                }
            ),
            Question::NotNullCheck(table, _) => format!(
                "SELECT pg_catalog.pg_get_constraintdef(c.oid) FROM pg_catalog.pg_constraint c \
                 WHERE c.conrelid = {} AND c.contype = 'c' AND c.convalidated",
                regclass(table)
            ),
            Question::EstimatedRows(table) => format!(
                "SELECT c.reltuples FROM pg_catalog.pg_class c WHERE c.oid = {}",
                regclass(table)
            ),
            Question::Partitioned(table) => format!(
                "SELECT c.relkind = 'p' FROM pg_catalog.pg_class c WHERE c.oid = {}",
                regclass(table)
            ),
            Question::DomainConstraints(type_name) => format!(
                "WITH RECURSIVE chain AS (\
                   SELECT t.oid, t.typtype, t.typbasetype, t.typnotnull FROM pg_catalog.pg_type t \
                   JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
                   WHERE t.typname = {} AND {} \
                   UNION ALL SELECT b.oid, b.typtype, b.typbasetype, b.typnotnull FROM pg_catalog.pg_type b \
                   JOIN chain ON b.oid = chain.typbasetype WHERE chain.typtype = 'd') \
                 SELECT pg_catalog.bool_or(chain.typtype = 'd' AND (chain.typnotnull OR EXISTS \
                   (SELECT FROM pg_catalog.pg_constraint k WHERE k.contypid = chain.oid))) FROM chain",
                literal(&type_name.name),
                match &type_name.schema {
                    Some(schema) => format!("n.nspname = {}", literal(schema)),
                    None => "pg_catalog.pg_type_is_visible(t.oid)".to_string(),
                }
            ),
            // pg_relation_size takes AccessShareLock: asked only when no other session (nor
            // a prepared transaction, whose pid is NULL) holds or awaits ACCESS EXCLUSIVE on
            // the relation, the one mode it waits for, so the question does not queue (else
            // unknown). A parent of inheritance children holds rows in them: never empty.
            Question::EmptyRelation(table) => format!(
                "SELECT CASE WHEN c.relkind IN ('r', 'm') AND c.relhassubclass THEN false \
                 WHEN c.relkind IN ('r', 'm') AND NOT EXISTS (SELECT FROM pg_catalog.pg_locks l \
                 WHERE l.locktype = 'relation' AND l.relation = c.oid AND l.mode = 'AccessExclusiveLock' \
                 AND l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid() AND l.database = (SELECT d.oid FROM \
                 pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())) \
                 THEN pg_catalog.pg_relation_size(c.oid) = 0 END FROM pg_catalog.pg_class c WHERE c.oid = {}",
                regclass(table)
            ),
            Question::DomainBaseType(type_name) => format!(
                "WITH RECURSIVE chain AS (\
                   SELECT t.typtype, t.typbasetype, t.typtypmod FROM pg_catalog.pg_type t \
                   JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
                   WHERE t.typname = {} AND {} AND t.typtype = 'd' \
                   UNION ALL SELECT b.typtype, b.typbasetype, \
                   CASE WHEN chain.typtypmod <> -1 THEN chain.typtypmod ELSE b.typtypmod END \
                   FROM pg_catalog.pg_type b JOIN chain ON b.oid = chain.typbasetype WHERE b.typtype = 'd') \
                 SELECT pg_catalog.format_type(c.typbasetype, c.typtypmod) FROM chain c \
                 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_type b WHERE b.oid = c.typbasetype AND b.typtype = 'd')",
                literal(&type_name.name),
                match &type_name.schema {
                    Some(schema) => format!("n.nspname = {}", literal(schema)),
                    None => "pg_catalog.pg_type_is_visible(t.oid)".to_string(),
                }
            ),
            Question::IndexColumns(table, index) => format!(
                "SELECT a.attname, a.attnotnull FROM pg_catalog.pg_index i \
                 JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid \
                 AND a.attnum = ANY ((i.indkey::pg_catalog.int2[])[0:i.indnkeyatts - 1]) \
                 WHERE i.indrelid = {} AND ic.relname = {}",
                regclass(table),
                literal(index)
            ),
            Question::Coercion(from, to) => catalog_queries::coercion_sql(from, to),
            Question::TypeChangeDependents(change) => catalog_queries::dependents_sql(change),
            Question::RelationOid(relation) => format!("SELECT {}::pg_catalog.oid", regclass(relation)),
            Question::TriggerFunctions(table, events) => format!(
                "WITH RECURSIVE rel(oid, events) AS (SELECT {}::pg_catalog.oid, {events}::pg_catalog.int4 \
                   UNION SELECT x.oid, x.events FROM rel CROSS JOIN LATERAL (\
                     SELECT i.inhrelid, CASE WHEN rel.events & 16 <> 0 AND p.relkind = 'p' \
                       THEN rel.events | 12 ELSE rel.events END \
                     FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class p ON p.oid = i.inhparent \
                     WHERE i.inhparent = rel.oid \
                     UNION ALL SELECT c.conrelid, \
                       (CASE WHEN rel.events & 8 <> 0 AND c.confdeltype = 'c' THEN 8 ELSE 0 END) \
                       | (CASE WHEN (rel.events & 8 <> 0 AND c.confdeltype IN ('n', 'd')) \
                           OR (rel.events & 16 <> 0 AND c.confupdtype IN ('c', 'n', 'd')) THEN 16 ELSE 0 END) \
                       | (rel.events & 32) \
                     FROM pg_catalog.pg_constraint c WHERE c.confrelid = rel.oid AND c.contype = 'f' \
                     UNION ALL SELECT d.refobjid, CASE WHEN r.ev_type = '1' THEN rel.events ELSE 28 END \
                     FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_depend d \
                       ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid \
                       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                     WHERE r.ev_class = rel.oid AND d.refobjid <> rel.oid) AS x(oid, events) \
                   WHERE x.events <> 0) \
                 SELECT DISTINCT {BODY_COLUMNS} \
                 FROM rel JOIN pg_catalog.pg_trigger t ON t.tgrelid = rel.oid AND t.tgenabled <> 'D' \
                 AND NOT t.tgisinternal AND t.tgtype::pg_catalog.int4 & rel.events <> 0 \
                 JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid {BODY_JOINS}",
                regclass(table)
            ),
            Question::ConstraintType(table, name) => catalog_queries::constraint_type_sql(table, name),
            Question::RelationKind(relation) => catalog_queries::relation_kind_sql(relation),
            Question::RowsChanged(estimate) => explain_sql(&estimate.statement),
            Question::PreparedStatement(name) => format!(
                "SELECT statement, from_sql, parameter_types::pg_catalog.oid[]::pg_catalog.text \
                 FROM pg_catalog.pg_prepared_statements WHERE name = {}",
                literal(name)
            ),
            Question::EventTriggerFunctions => format!(
                "SELECT {BODY_COLUMNS} FROM pg_catalog.pg_event_trigger e \
                 JOIN pg_catalog.pg_proc p ON p.oid = e.evtfoid {BODY_JOINS} WHERE e.evtenabled <> 'D'"
            ),
            Question::ViewQuery(relation) => format!(
                "SELECT c.relkind::pg_catalog.text, pg_catalog.pg_get_viewdef(c.oid) FROM pg_catalog.pg_class c \
                 WHERE c.oid = {} AND c.relkind IN ('v', 'm')",
                regclass(relation)
            ),
            Question::FunctionBodies(function) => format!(
                "SELECT {BODY_COLUMNS} FROM pg_catalog.pg_proc p {BODY_JOINS} \
                 WHERE p.proname = {} AND n.nspname <> 'pg_catalog' AND {}",
                literal(&function.name),
                match &function.schema {
                    Some(schema) => format!("n.nspname = {}", literal(schema)),
                    None => "pg_catalog.pg_function_is_visible(p.oid)".to_string(),
                }
            ),
        }
    }

    /// The answer from the query's rows (`None`: the query failed).
    pub fn answer(&self, rows: Option<Rows>) -> Answer {
        let first = |rows: &Rows, column: usize| rows.first().and_then(|row| row.get(column).cloned().flatten());
        match self {
            Question::ColumnType(..) => Answer::Type(rows.and_then(|rows| {
                let typname = first(&rows, 1)?;
                let typmod = first(&rows, 2)?.parse().ok()?;
                let schema = first(&rows, 0);
                let array = first(&rows, 3).as_deref() == Some("t");
                Some(TypeName::from_catalog(schema.as_deref(), &typname, typmod, array))
            })),
            Question::Volatility(_) => Answer::Volatility(rows.and_then(|rows| match first(&rows, 0)?.as_str() {
                "3" => Some(Volatility::Volatile),
                "2" => Some(Volatility::Stable),
                "1" => Some(Volatility::Immutable),
                _ => None,
            })),
            Question::NotNullCheck(_, column) => Answer::Bool(rows.map(|rows| {
                rows.iter()
                    .filter_map(|row| row.first().cloned().flatten())
                    .any(|definition| is_not_null_check(&definition, column))
            })),
            Question::EstimatedRows(_) => Answer::Rows(rows.and_then(|rows| first(&rows, 0)?.parse().ok())),
            Question::Partitioned(_) | Question::DomainConstraints(_) | Question::EmptyRelation(_) => {
                Answer::Bool(rows.and_then(|rows| match first(&rows, 0)?.as_str() {
                    "t" => Some(true),
                    "f" => Some(false),
                    _ => None,
                }))
            }
            Question::DomainBaseType(_) => Answer::Names(rows.and_then(|rows| Some(vec![first(&rows, 0)?]))),
            Question::IndexColumns(..) => Answer::Names(rows.and_then(|rows| {
                (!rows.is_empty()).then(|| {
                    rows.iter()
                        .filter(|row| row.get(1).cloned().flatten().as_deref() == Some("f"))
                        .filter_map(|row| row.first().cloned().flatten())
                        .collect()
                })
            })),
            Question::Coercion(from, to) => {
                Answer::Coercion(rows.and_then(|rows| catalog_queries::coercion_from_rows(from, to, &rows)))
            }
            Question::TypeChangeDependents(..) => {
                Answer::Dependents(rows.and_then(|rows| catalog_queries::dependents_from_rows(&rows)))
            }
            Question::RelationOid(_) => Answer::Oid(rows.and_then(|rows| first(&rows, 0)?.parse().ok())),
            Question::ViewQuery(_) => Answer::ViewQuery(rows.map(|rows| {
                Some(ViewQuery {
                    materialized: first(&rows, 0)? == "m",
                    query: first(&rows, 1)?,
                })
            })),
            Question::FunctionBodies(_) | Question::TriggerFunctions(..) | Question::EventTriggerFunctions => {
                Answer::Bodies(rows.map(bodies))
            }
            Question::RowsChanged(..) => Answer::Rows(rows.and_then(|rows| rows_changed(&first(&rows, 0)?))),
            Question::PreparedStatement(name) => Answer::Prepared(rows.and_then(|rows| {
                let text = first(&rows, 0)?;
                let from_sql = first(&rows, 1)? == "t";
                Some(PreparedQuery {
                    query: ::parse::prepared::prepared_query(&text, name, from_sql),
                    parameter_types: oids(&first(&rows, 2)?).unwrap_or_default(),
                })
            })),
            Question::ConstraintType(..) => Answer::Names(
                rows.and_then(|rows| catalog_queries::constraint_type_from_rows(&rows))
                    .map(|kind| vec![kind.to_string()]),
            ),
            Question::RelationKind(..) => Answer::Names(
                rows.and_then(|rows| catalog_queries::relation_kind_from_rows(&rows))
                    .map(|kind| vec![kind.to_string()]),
            ),
        }
    }

    /// Is it answered by EXPLAIN of the client's statement?
    pub fn is_explain(&self) -> bool {
        matches!(self, Question::RowsChanged(..))
    }

    /// Asked of the session's own transaction under a savepoint, which takes the lock
    /// its answer needs away with it (`Session::empty_relation`).
    pub fn is_empty_relation(&self) -> bool {
        matches!(self, Question::EmptyRelation(..))
    }
}

/// `{23,25}` (an oid[] as text) as numbers.
fn oids(array: &str) -> Option<Vec<u32>> {
    let inner = array.strip_prefix('{')?.strip_suffix('}')?;
    if inner.is_empty() {
        return Some(Vec::new());
    }
    inner.split(',').map(|oid| oid.parse().ok()).collect()
}

pub fn explain_sql(statement: &str) -> String {
    format!("EXPLAIN (FORMAT JSON)\n{statement}")
}

/// The rows an EXPLAIN (FORMAT JSON) plan's UPDATE, DELETE or MERGE changes: the largest
/// over its ModifyTable nodes of the estimate of the node's input (the ModifyTable's own
/// is 0 without RETURNING), as the extension reads it from the plan. A plan without one
/// (of the read-only stand-in) changes the rows its top node returns.
fn rows_changed(plan_json: &str) -> Option<f64> {
    fn walk(node: &serde_json::Value, most: &mut Option<f64>) {
        match node {
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, most)),
            serde_json::Value::Object(fields) => {
                let changes = fields.get("Node Type").and_then(|t| t.as_str()) == Some("ModifyTable")
                    && fields.get("Operation").and_then(|o| o.as_str()) != Some("Insert");
                if changes {
                    // Its input is its outer plan; InitPlans and SubPlans are listed too.
                    let input = fields
                        .get("Plans")
                        .and_then(|plans| plans.as_array())
                        .and_then(|plans| {
                            plans
                                .iter()
                                .find(|plan| plan.get("Parent Relationship").and_then(|r| r.as_str()) == Some("Outer"))
                        })
                        .and_then(|plan| plan.get("Plan Rows"))
                        .and_then(|rows| rows.as_f64());
                    if let Some(rows) = input {
                        *most = Some(most.map_or(rows, |most: f64| most.max(rows)));
                    }
                }
                fields.values().for_each(|value| walk(value, most));
            }
            _ => {}
        }
    }
    let plan: serde_json::Value = serde_json::from_str(plan_json).ok()?;
    let mut most = None;
    walk(&plan, &mut most);
    most.or_else(|| plan.get(0)?.get("Plan")?.get("Plan Rows")?.as_f64())
}

/// What the session knows; questions without an answer are recorded in `missing`.
pub struct SessionCatalog<'a> {
    /// The session's transaction as the statements before this one leave it: relations
    /// created by earlier messages exist on the server, so a name is theirs when it
    /// resolves to them; those created earlier in the message being judged (pending) do
    /// not exist yet, so only their names can tell: written the same way, or in the
    /// session's current schema.
    pub transaction: &'a Transaction,
    pub answers: &'a HashMap<Question, Answer>,
    pub timezone: Option<String>,
    pub server_version_num: Option<u32>,
    /// The session's is_superuser, as the server reported it.
    pub superuser: Option<bool>,
    /// The statement judged is a prepared statement's query, run by this EXECUTE.
    pub executed: Option<Executed>,
    /// The statement judged is one a routine runs.
    pub nested: bool,
    /// Statements of the same message come before it: rows they write are not on the
    /// server when the proxy asks.
    pub after_others: bool,
    pub missing: RefCell<Vec<Question>>,
}

impl SessionCatalog<'_> {
    fn ask(&self, question: Question) -> Option<&Answer> {
        let answer = self.answers.get(&question);
        if answer.is_none() {
            let mut missing = self.missing.borrow_mut();
            if !missing.contains(&question) {
                missing.push(question);
            }
        }
        answer
    }
}

impl SessionCatalog<'_> {
    /// What a call of `name` may run: `None` until the server answered, `Some(None)`
    /// when its query failed.
    pub fn function_bodies(&self, name: &QualifiedName) -> Option<Option<Vec<FunctionBody>>> {
        match self.ask(Question::FunctionBodies(name.clone()))? {
            Answer::Bodies(bodies) => Some(bodies.clone()),
            _ => None,
        }
    }

    /// The trigger functions a write to `table` may fire (`TriggerFunctions`): `None`
    /// until the server answered, `Some(None)` when its query failed.
    pub fn trigger_functions(&self, table: &QualifiedName, events: u8) -> Option<Option<Vec<FunctionBody>>> {
        match self.ask(Question::TriggerFunctions(table.clone(), events))? {
            Answer::Bodies(bodies) => Some(bodies.clone()),
            _ => None,
        }
    }

    /// The functions of the enabled event triggers: `None` until the server answered,
    /// `Some(None)` when its query failed.
    pub fn event_trigger_functions(&self) -> Option<Option<Vec<FunctionBody>>> {
        match self.ask(Question::EventTriggerFunctions)? {
            Answer::Bodies(bodies) => Some(bodies.clone()),
            _ => None,
        }
    }

    /// The query of the view `relation` names: `None` until the server answered,
    /// `Some(None)` when its query failed, `Some(Some(None))` when it is no view.
    pub fn view_query(&self, relation: &QualifiedName) -> Option<Option<Option<ViewQuery>>> {
        match self.ask(Question::ViewQuery(relation.clone()))? {
            Answer::ViewQuery(query) => Some(query.clone()),
            _ => None,
        }
    }

    fn relation_oid(&self, relation: &QualifiedName) -> Option<Option<u32>> {
        match self.ask(Question::RelationOid(relation.clone()))? {
            Answer::Oid(oid) => Some(*oid),
            _ => None,
        }
    }
}

impl Catalog for SessionCatalog<'_> {
    /// As the extension answers it (the relation the name resolves to was created in this
    /// transaction): a name that resolves to the same relation as one created earlier in
    /// the transaction, whatever schema each was written with; an unqualified name does
    /// not match a table of that name in another schema.
    fn created_in_transaction(&self, table: &QualifiedName) -> Option<bool> {
        // A relation created earlier in this message does not exist yet. A name that may
        // be one (as far as names tell) is new when it resolved to nothing before the
        // message: whatever it names when the statement runs was created since. If it
        // resolved to a relation, it is that older one (with a temporary table or a
        // pg_catalog one of the same name, or a CREATE that a DO block's IF or EXCEPTION
        // skipped). An unqualified name counts only while the search_path, the role and
        // the schemas stay as they were when the server was asked.
        if self.transaction.pending_may_be(table)
            && (table.schema.is_some() || !self.transaction.search_path_changed())
            && self.relation_oid(table)?.is_none()
        {
            return Some(true);
        }
        let candidates: Vec<&QualifiedName> = self
            .transaction
            .created()
            .iter()
            .filter(|created| created.name == table.name)
            .collect();
        if candidates.is_empty() {
            return Some(false);
        }
        // Ask everything in one round.
        let oid = self.relation_oid(table);
        let created_oids: Vec<Option<Option<u32>>> =
            candidates.iter().map(|created| self.relation_oid(created)).collect();
        let oid = match oid? {
            Some(oid) => oid,
            None => return Some(false),
        };
        if created_oids.contains(&Some(Some(oid))) {
            Some(true)
        } else {
            (!created_oids.contains(&None)).then_some(false)
        }
    }

    fn column_type(&self, table: &QualifiedName, column: &str) -> Option<TypeName> {
        match self.ask(Question::ColumnType(table.clone(), column.to_string())) {
            Some(Answer::Type(answer)) => answer.clone(),
            _ => None,
        }
    }

    fn function_volatility(&self, name: &QualifiedName) -> Option<Volatility> {
        match self.ask(Question::Volatility(name.clone())) {
            Some(Answer::Volatility(answer)) => *answer,
            _ => None,
        }
    }

    fn has_validated_not_null_check(&self, table: &QualifiedName, column: &str) -> Option<bool> {
        match self.ask(Question::NotNullCheck(table.clone(), column.to_string())) {
            Some(Answer::Bool(answer)) => *answer,
            _ => None,
        }
    }

    fn estimated_rows(&self, table: &QualifiedName) -> Option<f64> {
        match self.ask(Question::EstimatedRows(table.clone())) {
            Some(Answer::Rows(answer)) => *answer,
            _ => None,
        }
    }

    fn domain_has_constraints(&self, type_name: &TypeName) -> Option<bool> {
        match self.ask(Question::DomainConstraints(type_name.clone())) {
            Some(Answer::Bool(answer)) => *answer,
            _ => None,
        }
    }

    fn relation_is_empty(&self, table: &QualifiedName) -> Option<bool> {
        // The server's size is the table's when the statement runs only if nothing of the
        // message (or of the routine running it) wrote to it first.
        if self.nested || self.after_others {
            return None;
        }
        match self.ask(Question::EmptyRelation(table.clone())) {
            Some(Answer::Bool(answer)) => *answer,
            _ => None,
        }
    }

    fn domain_base_type(&self, type_name: &TypeName) -> Option<String> {
        match self.ask(Question::DomainBaseType(type_name.clone())) {
            Some(Answer::Names(answer)) => answer.as_ref()?.first().cloned(),
            _ => None,
        }
    }

    fn nullable_index_columns(&self, table: &QualifiedName, index: &str) -> Option<Vec<String>> {
        match self.ask(Question::IndexColumns(table.clone(), index.to_string())) {
            Some(Answer::Names(answer)) => answer.clone(),
            _ => None,
        }
    }

    fn coercion(&self, from: &TypeName, to: &TypeName) -> Option<Coercion> {
        match self.ask(Question::Coercion(from.clone(), to.clone())) {
            Some(Answer::Coercion(answer)) => answer.clone(),
            _ => None,
        }
    }

    fn type_change_dependents(&self, change: &ColumnTypeChange) -> Option<ColumnDependents> {
        match self.ask(Question::TypeChangeDependents(change.clone())) {
            Some(Answer::Dependents(answer)) => answer.clone(),
            _ => None,
        }
    }

    fn is_partitioned(&self, table: &QualifiedName) -> Option<bool> {
        match self.ask(Question::Partitioned(table.clone())) {
            Some(Answer::Bool(answer)) => *answer,
            _ => None,
        }
    }

    fn is_superuser(&self) -> Option<bool> {
        self.superuser
    }

    fn server_version_num(&self) -> Option<u32> {
        self.server_version_num
    }

    fn timezone(&self) -> Option<String> {
        self.timezone.clone()
    }

    fn constraint_type(&self, table: &QualifiedName, name: &str) -> Option<char> {
        match self.ask(Question::ConstraintType(table.clone(), name.to_string())) {
            Some(Answer::Names(Some(kinds))) => kinds.first()?.chars().next(),
            _ => None,
        }
    }

    fn relation_kind(&self, relation: &QualifiedName) -> Option<char> {
        match self.ask(Question::RelationKind(relation.clone())) {
            Some(Answer::Names(Some(kinds))) => kinds.first()?.chars().next(),
            _ => None,
        }
    }

    fn rows_changed_estimate(&self, statement: &Statement) -> Option<f64> {
        if self
            .executed
            .as_ref()
            .is_some_and(|executed| executed.evaluate_arguments.is_none())
        {
            // Asked once the arguments' functions are known (another round).
            return None;
        }
        let estimate = Estimate {
            statement: statement.source.clone(),
            executed: self.executed.clone(),
            nested: self.nested,
        };
        match self.ask(Question::RowsChanged(estimate)) {
            Some(Answer::Rows(answer)) => *answer,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_changed_is_the_modify_table_s_outer_input_not_an_init_plan() {
        // UPDATE ... WHERE b = (SELECT 1): the InitPlan is listed before the input.
        let plan = r#"[{"Plan": {"Node Type": "ModifyTable", "Operation": "Update", "Plan Rows": 0,
            "Plans": [
                {"Node Type": "Result", "Parent Relationship": "InitPlan", "Plan Rows": 1},
                {"Node Type": "Nested Loop", "Parent Relationship": "Outer", "Plan Rows": 223740}
            ]}}]"#;
        assert_eq!(rows_changed(plan), Some(223_740.0));
        // A WITH's write is a ModifyTable below a CTE; the largest counts.
        let cte = r#"[{"Plan": {"Node Type": "Aggregate", "Plan Rows": 1, "Plans": [
            {"Node Type": "ModifyTable", "Operation": "Delete", "Parent Relationship": "InitPlan",
             "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Plan Rows": 5000}]},
            {"Node Type": "CTE Scan", "Parent Relationship": "Outer", "Plan Rows": 5000}]}}]"#;
        assert_eq!(rows_changed(cte), Some(5_000.0));
        // The read-only stand-in: the rows its top node returns.
        let select = r#"[{"Plan": {"Node Type": "Seq Scan", "Plan Rows": 42}}]"#;
        assert_eq!(rows_changed(select), Some(42.0));
        // An INSERT changes no existing row: its ModifyTable's own count (0).
        let insert = r#"[{"Plan": {"Node Type": "ModifyTable", "Operation": "Insert", "Plan Rows": 0, "Plans": [
            {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Plan Rows": 9}]}}]"#;
        assert_eq!(rows_changed(insert), Some(0.0));
    }

    #[test]
    fn column_types_come_from_the_catalog_row() {
        let question = Question::ColumnType(QualifiedName::bare("t"), "c".into());
        let rows = vec![vec![
            Some("pg_catalog".to_string()),
            Some("varchar".to_string()),
            Some("14".to_string()),
            Some("f".to_string()),
        ]];
        let Answer::Type(Some(type_name)) = question.answer(Some(rows)) else {
            panic!("no type");
        };
        assert_eq!(type_name, TypeName::from_catalog(None, "varchar", 14, false));
        assert_eq!(question.answer(None), Answer::Type(None));
        assert_eq!(question.answer(Some(vec![])), Answer::Type(None));
    }

    #[test]
    fn names_are_quoted_in_questions() {
        let question = Question::EstimatedRows(QualifiedName::new(Some("Sales"), "o'rders"));
        assert!(
            question.sql().contains("to_regclass('\"Sales\".\"o''rders\"')"),
            "{}",
            question.sql()
        );
    }

    #[test]
    fn unanswered_questions_are_recorded_once() {
        let answers = HashMap::new();
        let catalog = SessionCatalog {
            transaction: &Transaction::IDLE,
            answers: &answers,
            timezone: None,
            server_version_num: None,
            superuser: None,
            executed: None,
            nested: false,
            after_others: false,
            missing: RefCell::new(Vec::new()),
        };
        let t = QualifiedName::bare("t");
        assert_eq!(catalog.estimated_rows(&t), None);
        assert_eq!(catalog.estimated_rows(&t), None);
        assert_eq!(catalog.missing.borrow().len(), 1);
        assert_eq!(catalog.created_in_transaction(&t), Some(false));
    }

    fn answers_of(oids: &[(QualifiedName, Option<u32>)]) -> HashMap<Question, Answer> {
        oids.iter()
            .map(|(name, oid)| (Question::RelationOid(name.clone()), Answer::Oid(*oid)))
            .collect()
    }

    fn created_in_transaction(
        created: &[QualifiedName],
        pending: &[QualifiedName],
        answers: &HashMap<Question, Answer>,
        table: &QualifiedName,
    ) -> Option<bool> {
        let mut transaction = Transaction::default();
        transaction.record_created(created);
        transaction.add_pending(pending);
        SessionCatalog {
            transaction: &transaction,
            answers,
            timezone: None,
            server_version_num: None,
            superuser: None,
            executed: None,
            nested: false,
            after_others: false,
            missing: RefCell::new(Vec::new()),
        }
        .created_in_transaction(table)
    }

    #[test]
    fn a_name_is_new_when_it_resolves_to_a_relation_created_in_the_transaction() {
        let other_accounts = QualifiedName::new(Some("other"), "accounts");
        let accounts = QualifiedName::bare("accounts");
        let public_accounts = QualifiedName::new(Some("public"), "accounts");
        // other.accounts was created; `accounts` resolves to public.accounts, an old table.
        let answers = answers_of(&[(other_accounts.clone(), Some(20)), (accounts.clone(), Some(10))]);
        assert_eq!(
            created_in_transaction(std::slice::from_ref(&other_accounts), &[], &answers, &accounts),
            Some(false)
        );
        // public.accounts was created and `accounts` resolves to it.
        let answers = answers_of(&[(public_accounts.clone(), Some(10)), (accounts.clone(), Some(10))]);
        assert_eq!(
            created_in_transaction(std::slice::from_ref(&public_accounts), &[], &answers, &accounts),
            Some(true)
        );
        // Unanswered yet: unknown, and both questions are asked in one round.
        let empty = HashMap::new();
        let mut transaction = Transaction::default();
        transaction.record_created(std::slice::from_ref(&public_accounts));
        let catalog = SessionCatalog {
            transaction: &transaction,
            answers: &empty,
            timezone: None,
            server_version_num: None,
            superuser: None,
            executed: None,
            nested: false,
            after_others: false,
            missing: RefCell::new(Vec::new()),
        };
        assert_eq!(catalog.created_in_transaction(&accounts), None);
        assert_eq!(catalog.missing.borrow().len(), 2);
        // A name nothing resolves to (dropped, rolled back to a savepoint) is not new.
        let answers = answers_of(&[(public_accounts.clone(), None), (accounts.clone(), None)]);
        assert_eq!(
            created_in_transaction(std::slice::from_ref(&public_accounts), &[], &answers, &accounts),
            Some(false)
        );
    }

    #[test]
    fn a_relation_created_earlier_in_the_message_is_a_name_that_resolved_to_nothing() {
        let fresh = QualifiedName::bare("fresh");
        let public_fresh = QualifiedName::new(Some("public"), "fresh");
        let resolving = |name: &QualifiedName, oid: Option<u32>| {
            HashMap::from([(Question::RelationOid(name.clone()), Answer::Oid(oid))])
        };
        let pending = std::slice::from_ref(&fresh);
        // Unanswered yet: unknown.
        assert_eq!(created_in_transaction(&[], pending, &HashMap::new(), &fresh), None);
        assert_eq!(
            created_in_transaction(&[], pending, &resolving(&fresh, None), &fresh),
            Some(true)
        );
        assert_eq!(
            created_in_transaction(&[], pending, &resolving(&public_fresh, None), &public_fresh),
            Some(true)
        );
        // public.fresh existed before the message: it is that table, not the new one.
        assert_eq!(
            created_in_transaction(&[], pending, &resolving(&public_fresh, Some(7)), &public_fresh),
            Some(false)
        );
        // Nothing of that name was created.
        assert_eq!(created_in_transaction(&[], &[], &HashMap::new(), &fresh), Some(false));
    }
}
