//! Facts only a live database knows. Every answer may be "unknown" (`None`): the CLI
//! knows little, the extension and the proxy ask the server.

use crate::model::{QualifiedName, Statement};
use crate::types::{Coercion, TypeName};

/// What ALTER COLUMN TYPE redoes for the objects that depend on the column, even when
/// the table is not rewritten (ATPostAlterTypeCleanup re-adds them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnDependents {
    /// Validated CHECK constraints on the column: re-checked against every row.
    pub checks: Vec<String>,
    /// Indexes on the column that are built again: expression and partial indexes,
    /// invalid ones, and those whose operator class or collation the new type does not
    /// share (CheckIndexCompatible).
    pub rebuilt_indexes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Volatility {
    Immutable,
    Stable,
    Volatile,
}

impl Volatility {
    /// From pg_proc.provolatile ('i', 's', 'v').
    pub fn from_provolatile(code: char) -> Option<Volatility> {
        match code {
            'i' => Some(Volatility::Immutable),
            's' => Some(Volatility::Stable),
            'v' => Some(Volatility::Volatile),
            _ => None,
        }
    }
}

/// ALTER COLUMN ... TYPE as the catalog is asked about it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ColumnTypeChange {
    pub table: QualifiedName,
    pub column: String,
    pub new_type: TypeName,
    /// The COLLATE clause, if any.
    pub collation: Option<QualifiedName>,
}

pub trait Catalog {
    /// Was `table` created in the current transaction (so no other session can see it)?
    fn created_in_transaction(&self, table: &QualifiedName) -> Option<bool>;
    /// The current type of `table.column`.
    fn column_type(&self, table: &QualifiedName, column: &str) -> Option<TypeName>;
    /// Volatility of the function `name` (when overloads disagree: the most volatile).
    fn function_volatility(&self, name: &QualifiedName) -> Option<Volatility>;
    /// Does `table` have a validated `CHECK (column IS NOT NULL)`?
    fn has_validated_not_null_check(&self, table: &QualifiedName, column: &str) -> Option<bool>;
    /// pg_class.reltuples, when the table has been analyzed.
    fn estimated_rows(&self, table: &QualifiedName) -> Option<f64>;
    /// Is `table` a partitioned table (pg_class.relkind 'p')?
    fn is_partitioned(&self, table: &QualifiedName) -> Option<bool>;
    /// Is `type_name` a domain with constraints (CHECK or NOT NULL, its own or a base
    /// domain's), which Postgres checks for every row a new column of it gets?
    fn domain_has_constraints(&self, type_name: &TypeName) -> Option<bool>;
    /// The key columns of `table`'s index `index` (in the table's schema) that are not
    /// NOT NULL; None when there is no such index.
    fn nullable_index_columns(&self, table: &QualifiedName, index: &str) -> Option<Vec<String>>;
    /// How a value of `from` becomes a `to` in ALTER COLUMN TYPE: both resolved through
    /// domains to their base types, and whether pg_cast makes it a binary relabel.
    fn coercion(&self, from: &TypeName, to: &TypeName) -> Option<Coercion>;
    /// What changing a column's type re-checks and rebuilds.
    fn type_change_dependents(&self, change: &ColumnTypeChange) -> Option<ColumnDependents>;
    /// Is the session's current role a superuser (who may change superuser-only settings)?
    fn is_superuser(&self) -> Option<bool>;
    /// server_version_num, e.g. 150004.
    fn server_version_num(&self) -> Option<u32>;
    /// The session's TimeZone setting.
    fn timezone(&self) -> Option<String>;
    /// The planner's estimate of the rows `statement` (an UPDATE, DELETE or MERGE, or a
    /// query whose WITH runs one) changes: the largest over its writes. Known only where
    /// the statement is about to run (the extension reads it from the plan, the proxy asks
    /// the server to EXPLAIN it).
    fn rows_changed_estimate(&self, _statement: &Statement) -> Option<f64> {
        None
    }
    /// Does `table` hold no row for certain: an ordinary table or materialized view whose
    /// main fork has no block (its size, exact, as `pg_relation_size` gives it; not
    /// `reltuples`, which is -1 or stale until ANALYZE)? None when unknown here, when the
    /// size cannot be read without waiting for a lock, and for a partitioned table (its
    /// partitions hold its rows).
    fn relation_is_empty(&self, _table: &QualifiedName) -> Option<bool> {
        None
    }
    /// The base type of `type_name` when it is a domain (through domains over domains), as
    /// PostgreSQL's `format_type` writes it (`json`, `character varying(20)`); None when it
    /// is not a domain, or not known here.
    fn domain_base_type(&self, _type_name: &TypeName) -> Option<String> {
        None
    }
    /// pg_constraint.contype of `table`'s constraint `name` ('f' foreign key, 'c' check,
    /// ...), when it is not validated yet (a VALIDATE CONSTRAINT of it scans the table).
    fn constraint_type(&self, _table: &QualifiedName, _name: &str) -> Option<char> {
        None
    }
    /// pg_class.relkind of `relation` ('r' table, 'S' sequence, 'i' index, ...): ALTER
    /// TABLE renames sequences and indexes too. None when unknown here.
    fn relation_kind(&self, _relation: &QualifiedName) -> Option<char> {
        None
    }
}

/// A catalog that knows nothing: every answer is unknown.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCatalog;

impl Catalog for NoCatalog {
    fn created_in_transaction(&self, _: &QualifiedName) -> Option<bool> {
        None
    }
    fn column_type(&self, _: &QualifiedName, _: &str) -> Option<TypeName> {
        None
    }
    fn function_volatility(&self, _: &QualifiedName) -> Option<Volatility> {
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
    fn domain_has_constraints(&self, _: &TypeName) -> Option<bool> {
        None
    }
    fn nullable_index_columns(&self, _: &QualifiedName, _: &str) -> Option<Vec<String>> {
        None
    }
    fn coercion(&self, _: &TypeName, _: &TypeName) -> Option<Coercion> {
        None
    }
    fn type_change_dependents(&self, _: &ColumnTypeChange) -> Option<ColumnDependents> {
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

/// Volatility of well-known built-in and extension functions, for when the catalog
/// cannot say (the CLI). Unknown names are `None`.
pub fn builtin_volatility(name: &QualifiedName) -> Option<Volatility> {
    if let Some(schema) = &name.schema {
        if schema != "pg_catalog" && schema != "public" {
            return None;
        }
    }
    let volatile = [
        "random",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "clock_timestamp",
        "timeofday",
        "nextval",
        "setseed",
        "txid_current",
        "pg_current_xact_id",
        "random_normal",
        "uuidv4",
        "uuidv7",
    ];
    let stable = [
        "now",
        "current_timestamp",
        "current_date",
        "current_time",
        "localtimestamp",
        "localtime",
        "statement_timestamp",
        "transaction_timestamp",
        "current_user",
        "current_setting",
        "to_char",
        "current_schema",
    ];
    let immutable = [
        "lower",
        "upper",
        "abs",
        "coalesce",
        "length",
        "md5",
        "concat_ws",
        "jsonb_build_object",
    ];
    let n = name.name.as_str();
    if volatile.contains(&n) {
        Some(Volatility::Volatile)
    } else if stable.contains(&n) {
        Some(Volatility::Stable)
    } else if immutable.contains(&n) {
        Some(Volatility::Immutable)
    } else {
        None
    }
}

/// Is `definition` (pg_get_constraintdef output) exactly `CHECK ((column IS NOT NULL))`?
/// Both the extension and the proxy answer `has_validated_not_null_check` with this.
pub fn is_not_null_check(definition: &str, column: &str) -> bool {
    let def = definition.trim();
    let Some(inner) = def
        .strip_prefix("CHECK ")
        .and_then(|rest| rest.strip_suffix(" NOT VALID").or(Some(rest)))
    else {
        return false;
    };
    let mut inner = inner.trim();
    while let Some(stripped) = inner.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        inner = stripped.trim();
    }
    let Some(subject) = inner.strip_suffix(" IS NOT NULL") else {
        return false;
    };
    let subject = subject.trim().trim_start_matches('(').trim_end_matches(')');
    subject == crate::sql::ident(column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_null_check_definitions() {
        assert!(is_not_null_check("CHECK ((email IS NOT NULL))", "email"));
        assert!(is_not_null_check("CHECK ((\"Email\" IS NOT NULL))", "Email"));
        assert!(!is_not_null_check("CHECK ((email IS NOT NULL) AND (id > 0))", "email"));
        assert!(!is_not_null_check("CHECK ((name IS NOT NULL))", "email"));
    }
}
