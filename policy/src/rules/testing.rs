//! Test helpers for rule files: a catalog with stated facts, and a one-call check.

use std::collections::{HashMap, HashSet};

use crate::catalog::{Catalog, ColumnDependents, ColumnTypeChange, Volatility};
use crate::finding::Finding;
use crate::model::{AlterAction, AlterTable, ColumnDef, Context, QualifiedName, Statement, Stmt};
use crate::settings::{Mode, Settings};
use crate::types::{Coercion, TypeName};

/// A catalog that knows exactly what a test tells it; everything else is unknown.
#[derive(Default)]
pub struct TestCatalog {
    pub new_tables: HashSet<String>,
    pub existing_tables: HashSet<String>,
    pub column_types: HashMap<(String, String), TypeName>,
    pub volatility: HashMap<String, Volatility>,
    pub not_null_checks: HashSet<(String, String)>,
    pub rows: HashMap<String, f64>,
    pub partitioned: HashMap<String, bool>,
    pub constrained_domains: HashSet<String>,
    /// domain -> its base type, as format_type writes it.
    pub domain_bases: HashMap<String, String>,
    /// Tables with no row (by their size).
    pub empty_tables: HashSet<String>,
    /// (table, index) -> its key columns that are not NOT NULL.
    pub nullable_index_columns: HashMap<(String, String), Vec<String>>,
    /// (old, new) -> the catalog's coercion.
    pub coercions: HashMap<(TypeName, TypeName), Coercion>,
    /// (table, column) -> what a type change re-checks and rebuilds.
    pub dependents: HashMap<(String, String), ColumnDependents>,
    pub timezone: Option<String>,
    pub superuser: Option<bool>,
    /// server_version_num; 15.0 when not stated.
    pub version: Option<u32>,
    /// The planner's estimate of the rows the statement changes.
    pub rows_changed: Option<f64>,
    /// (table, constraint) -> pg_constraint.contype.
    pub constraint_types: HashMap<(String, String), char>,
}

impl TestCatalog {
    pub fn rows_changed(mut self, rows: f64) -> Self {
        self.rows_changed = Some(rows);
        self
    }
    pub fn new_table(mut self, table: &str) -> Self {
        self.new_tables.insert(table.to_string());
        self
    }
    pub fn existing_table(mut self, table: &str) -> Self {
        self.existing_tables.insert(table.to_string());
        self
    }
    pub fn column(mut self, table: &str, column: &str, type_name: TypeName) -> Self {
        self.column_types
            .insert((table.to_string(), column.to_string()), type_name);
        self
    }
    pub fn function(mut self, name: &str, volatility: Volatility) -> Self {
        self.volatility.insert(name.to_string(), volatility);
        self
    }
    pub fn not_null_check(mut self, table: &str, column: &str) -> Self {
        self.not_null_checks.insert((table.to_string(), column.to_string()));
        self
    }
    pub fn index(mut self, table: &str, index: &str, nullable_columns: &[&str]) -> Self {
        self.nullable_index_columns.insert(
            (table.to_string(), index.to_string()),
            nullable_columns.iter().map(|c| c.to_string()).collect(),
        );
        self
    }
    pub fn constrained_domain(mut self, name: &str) -> Self {
        self.constrained_domains.insert(name.to_string());
        self
    }
    pub fn partitioned(mut self, table: &str, partitioned: bool) -> Self {
        self.partitioned.insert(table.to_string(), partitioned);
        self
    }
    pub fn rows(mut self, table: &str, rows: f64) -> Self {
        self.rows.insert(table.to_string(), rows);
        self
    }
    pub fn version(mut self, version_num: u32) -> Self {
        self.version = Some(version_num);
        self
    }
    pub fn with_coercion(mut self, from: TypeName, to: TypeName, coercion: Coercion) -> Self {
        self.coercions.insert((from, to), coercion);
        self
    }
    pub fn with_dependents(mut self, table: &str, column: &str, dependents: ColumnDependents) -> Self {
        self.dependents
            .insert((table.to_string(), column.to_string()), dependents);
        self
    }
    pub fn timezone(mut self, zone: &str) -> Self {
        self.timezone = Some(zone.to_string());
        self
    }
}

impl Catalog for TestCatalog {
    fn created_in_transaction(&self, table: &QualifiedName) -> Option<bool> {
        if self.new_tables.contains(&table.name) {
            Some(true)
        } else if self.existing_tables.contains(&table.name) {
            Some(false)
        } else {
            None
        }
    }
    fn column_type(&self, table: &QualifiedName, column: &str) -> Option<TypeName> {
        self.column_types
            .get(&(table.name.clone(), column.to_string()))
            .cloned()
    }
    fn function_volatility(&self, name: &QualifiedName) -> Option<Volatility> {
        self.volatility.get(&name.name).copied()
    }
    fn has_validated_not_null_check(&self, table: &QualifiedName, column: &str) -> Option<bool> {
        Some(self.not_null_checks.contains(&(table.name.clone(), column.to_string())))
    }
    fn estimated_rows(&self, table: &QualifiedName) -> Option<f64> {
        self.rows.get(&table.name).copied()
    }
    fn is_partitioned(&self, table: &QualifiedName) -> Option<bool> {
        self.partitioned.get(&table.name).copied()
    }
    fn domain_has_constraints(&self, type_name: &TypeName) -> Option<bool> {
        Some(self.constrained_domains.contains(&type_name.name))
    }
    fn domain_base_type(&self, type_name: &TypeName) -> Option<String> {
        self.domain_bases.get(&type_name.name).cloned()
    }
    fn relation_is_empty(&self, table: &QualifiedName) -> Option<bool> {
        Some(self.empty_tables.contains(&table.name))
    }
    fn nullable_index_columns(&self, table: &QualifiedName, index: &str) -> Option<Vec<String>> {
        self.nullable_index_columns
            .get(&(table.name.clone(), index.to_string()))
            .cloned()
    }
    fn coercion(&self, from: &TypeName, to: &TypeName) -> Option<Coercion> {
        self.coercions.get(&(from.clone(), to.clone())).cloned()
    }
    fn type_change_dependents(&self, change: &ColumnTypeChange) -> Option<ColumnDependents> {
        self.dependents
            .get(&(change.table.name.clone(), change.column.clone()))
            .cloned()
    }
    fn is_superuser(&self) -> Option<bool> {
        self.superuser
    }
    fn server_version_num(&self) -> Option<u32> {
        Some(self.version.unwrap_or(150000))
    }
    fn timezone(&self) -> Option<String> {
        self.timezone.clone()
    }
    fn rows_changed_estimate(&self, _: &crate::model::Statement) -> Option<f64> {
        self.rows_changed
    }
    fn constraint_type(&self, table: &QualifiedName, name: &str) -> Option<char> {
        self.constraint_types
            .get(&(table.name.clone(), name.to_string()))
            .copied()
    }
}

pub fn enforce() -> Settings {
    Settings {
        mode: Mode::Enforce,
        ..Settings::default()
    }
}

pub fn statement(stmt: Stmt, source: &str) -> Statement {
    Statement::new(stmt, source)
}

/// Findings of one rule for `stmt`, outside a transaction block.
pub fn findings(rule: &super::Rule, stmt: Stmt, catalog: &TestCatalog) -> Vec<Finding> {
    findings_in(rule, stmt, catalog, &Context::default())
}

pub fn findings_in(rule: &super::Rule, stmt: Stmt, catalog: &TestCatalog, context: &Context) -> Vec<Finding> {
    let settings = enforce();
    let scope = super::Scope::new(context, catalog, &settings);
    (rule.check)(&statement(stmt, ""), &scope)
}

pub fn q(name: &str) -> QualifiedName {
    match name.split_once('.') {
        Some((schema, name)) => QualifiedName::new(Some(schema), name),
        None => QualifiedName::bare(name),
    }
}

pub fn ty(names: &[&str], modifiers: &[i64]) -> TypeName {
    TypeName::from_parts(names, modifiers.to_vec(), false)
}

/// `ALTER TABLE <table> <actions>`; `table` may be `schema.name`.
pub fn alter(table: &str, actions: Vec<AlterAction>) -> Stmt {
    Stmt::AlterTable(AlterTable {
        table: q(table),
        actions,
        ..AlterTable::default()
    })
}

/// A plain column definition.
pub fn column(name: &str, type_name: TypeName) -> ColumnDef {
    ColumnDef {
        name: name.to_string(),
        type_name,
        ..ColumnDef::default()
    }
}

pub fn add_column(column: ColumnDef) -> AlterAction {
    AlterAction::AddColumn {
        column,
        if_not_exists: false,
    }
}

/// The one finding of a check that must report exactly one.
pub fn only(findings: Vec<Finding>) -> Finding {
    assert_eq!(findings.len(), 1, "{findings:#?}");
    findings.into_iter().next().unwrap()
}
