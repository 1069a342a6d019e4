//! Catalog questions that both live adapters answer with the same SQL: the proxy on the
//! client's session, the extension through SPI. One query text means one answer, so the
//! two cannot drift apart on the subtle ones (pg_cast, operator classes, dependencies).
//! Every output column is text (bool as `true`/`false`). Every query is read-only, takes no lock on user tables, and returns no rows (never an
//! error) for names that do not resolve.

use crate::catalog::{ColumnDependents, ColumnTypeChange};
use crate::model::QualifiedName;
use crate::sql::{ident, literal};
use crate::types::{Coercion, TypeName};

/// Rows as text, NULL as None.
pub type Rows = Vec<Vec<Option<String>>>;

/// `to_regtype`'s input for `type_name`: schema and name quoted, no modifiers. A name
/// that cannot be written (empty, or with a NUL byte) is NULL: PostgreSQL 15's to_regtype
/// raises on a syntax error instead of returning NULL.
fn regtype(type_name: &TypeName) -> String {
    if !writable(&type_name.name) || type_name.schema.as_deref().is_some_and(|schema| !writable(schema)) {
        return "NULL::pg_catalog.regtype".to_string();
    }
    let mut text = match &type_name.schema {
        Some(schema) => format!("{}.{}", ident(schema), ident(&type_name.name)),
        None => ident(&type_name.name),
    };
    if type_name.array {
        text.push_str("[]");
    }
    format!("pg_catalog.to_regtype({})", literal(&text))
}

/// `to_regclass` of `table` (NULL for a name that cannot be written, as in `regtype`).
pub fn regclass(table: &QualifiedName) -> String {
    if !writable(&table.name) || table.schema.as_deref().is_some_and(|schema| !writable(schema)) {
        return "NULL::pg_catalog.regclass".to_string();
    }
    format!("pg_catalog.to_regclass({})", literal(&table.sql()))
}

/// Can `name` be written as a quoted identifier?
fn writable(name: &str) -> bool {
    !name.is_empty() && !name.contains('\0')
}

/// Two rows, old type then new: was it a domain, its base type's schema, name (the
/// element's for an array), the last domain's typmod, whether it is an array, whether
/// a domain on the way has constraints, and (new type's row) whether the old base type
/// converts to the new one by a binary relabel.
pub fn coercion_sql(from: &TypeName, to: &TypeName) -> String {
    format!(
        "WITH RECURSIVE chain(side, oid, depth, typmod) AS (\
           SELECT s.side, t.oid, 0, -1 FROM (VALUES (1, {from}), (2, {to})) AS s(side, oid) \
           JOIN pg_catalog.pg_type t ON t.oid = s.oid \
           UNION ALL SELECT c.side, d.typbasetype, c.depth + 1, d.typtypmod FROM chain c \
           JOIN pg_catalog.pg_type d ON d.oid = c.oid WHERE d.typtype = 'd'), \
         base AS (SELECT DISTINCT ON (c.side) c.side, c.oid, c.depth, c.typmod FROM chain c \
           ORDER BY c.side, c.depth DESC) \
         SELECT b.side::pg_catalog.text, (b.depth > 0)::pg_catalog.text, n.nspname::pg_catalog.text, \
           COALESCE(e.typname, t.typname)::pg_catalog.text, b.typmod::pg_catalog.text, \
           (e.oid IS NOT NULL)::pg_catalog.text, \
           COALESCE((SELECT pg_catalog.bool_or(d.typnotnull OR EXISTS (SELECT FROM pg_catalog.pg_constraint k \
             WHERE k.contypid = d.oid)) FROM chain c JOIN pg_catalog.pg_type d ON d.oid = c.oid \
             WHERE c.side = b.side AND d.typtype = 'd'), false)::pg_catalog.text, \
           (SELECT f.oid = b.oid OR EXISTS (SELECT FROM pg_catalog.pg_cast k WHERE k.castsource = f.oid \
             AND k.casttarget = b.oid AND k.castmethod = 'b' AND k.castcontext <> 'e') \
             FROM base f WHERE f.side = 1)::pg_catalog.text \
         FROM base b JOIN pg_catalog.pg_type t ON t.oid = b.oid \
         LEFT JOIN pg_catalog.pg_type e ON t.typcategory = 'A' AND e.oid = t.typelem \
         JOIN pg_catalog.pg_namespace n ON n.oid = COALESCE(e.typnamespace, t.typnamespace) \
         ORDER BY b.side",
        from = regtype(from),
        to = regtype(to)
    )
}

/// The answer to [`coercion_sql`]; None when either type does not resolve.
pub fn coercion_from_rows(from: &TypeName, to: &TypeName, rows: &Rows) -> Option<Coercion> {
    let [old, new] = rows.as_slice() else {
        return None;
    };
    let flag = |row: &Vec<Option<String>>, column: usize| match row.get(column)?.as_deref()? {
        "true" | "t" => Some(true),
        "false" | "f" => Some(false),
        _ => None,
    };
    // `old`: a domain's value becomes its base type's with no type modifier (a
    // RelabelType with typmod -1, find_coercion_pathway), so no length is known to have
    // been kept; the new type's domain applies its own modifier.
    let base = |row: &Vec<Option<String>>, given: &TypeName, old: bool| -> Option<TypeName> {
        let schema = row.get(2)?.as_deref();
        let name = row.get(3)?.as_deref()?;
        let typmod: i32 = row.get(4)?.as_deref()?.parse().ok()?;
        let array = flag(row, 5)?;
        Some(if flag(row, 1)? {
            TypeName::from_catalog(schema, name, if old { -1 } else { typmod }, array)
        } else {
            TypeName {
                modifiers: given.modifiers.clone(),
                ..TypeName::from_catalog(schema, name, -1, array)
            }
        })
    };
    Some(Coercion {
        from_base: base(old, from, true)?,
        to_base: base(new, to, false)?,
        binary: flag(new, 7)?,
        checks_domain: flag(new, 6)?,
    })
}

/// The default operator class of the (base) type `type_oid` for the access method
/// `am`, as GetDefaultOpClass picks it: the type's own, else one whose input type the
/// type is binary-coercible to (a polymorphic one among them: anyarray for arrays,
/// anyenum, anyrange, anymultirange), the category's preferred type first.
fn default_opclass(type_oid: &str, am: &str) -> String {
    format!(
        "(SELECT o.oid FROM pg_catalog.pg_opclass o JOIN pg_catalog.pg_type it ON it.oid = o.opcintype \
           WHERE o.opcmethod = {am} AND o.opcdefault AND (o.opcintype = {type_oid} \
           OR EXISTS (SELECT FROM pg_catalog.pg_cast c WHERE c.castsource = {type_oid} \
             AND c.casttarget = o.opcintype AND c.castmethod = 'b') \
           OR EXISTS (SELECT FROM pg_catalog.pg_type x WHERE x.oid = {type_oid} \
             AND ((it.typname = 'anyarray' AND x.typcategory = 'A') OR (it.typname = 'anyenum' AND x.typtype = 'e') \
               OR (it.typname = 'anyrange' AND x.typtype = 'r') OR (it.typname = 'anymultirange' AND x.typtype = 'm')))) \
           ORDER BY o.opcintype = {type_oid} DESC, it.typispreferred DESC LIMIT 1)"
    )
}

/// Rows `('column', '')` when the column exists, `('check', name)` for each validated
/// CHECK constraint on it, `('index', name)` for each index ALTER COLUMN TYPE builds
/// again, on the table and on every partition or inheritance child (the change recurses
/// to them). An index is built again (CheckIndexCompatible) when it has expressions or a
/// predicate (not compared), is invalid, or a key on the column gets another operator
/// class or collation. The definition PostgreSQL replays names an operator class only
/// when it was not the old type's default, and a collation only when it was not the
/// column's; what it does not name comes from the new type (or the COLLATE clause).
/// With a polymorphic operator class (array_ops, enum_ops) the index is kept only when
/// the type it stores is the column's new declared type, domain included (GIN's
/// array_ops stores the element type, so never).
pub fn dependents_sql(change: &ColumnTypeChange) -> String {
    let ColumnTypeChange {
        table,
        column,
        new_type,
        collation,
    } = change;
    let new = regtype(new_type);
    let new_collation = match collation {
        Some(name) => format!("pg_catalog.to_regcollation({})::pg_catalog.oid", literal(&name.sql())),
        None => format!("(SELECT t.typcollation FROM pg_catalog.pg_type t WHERE t.oid = {new})"),
    };
    format!(
        "WITH RECURSIVE rels(oid) AS (SELECT {table}::pg_catalog.oid \
           UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN rels ON i.inhparent = rels.oid), \
         col AS (SELECT a.attrelid, a.attnum, a.atttypid, a.attcollation FROM pg_catalog.pg_attribute a \
           JOIN rels ON a.attrelid = rels.oid WHERE a.attname = {column} AND a.attnum > 0 AND NOT a.attisdropped), \
         chain(start, oid, depth) AS (SELECT s.oid, s.oid, 0 FROM \
             (SELECT {new}::pg_catalog.oid UNION SELECT col.atttypid FROM col) AS s(oid) WHERE s.oid IS NOT NULL \
           UNION ALL SELECT c.start, d.typbasetype, c.depth + 1 FROM chain c \
           JOIN pg_catalog.pg_type d ON d.oid = c.oid WHERE d.typtype = 'd'), \
         base AS (SELECT DISTINCT ON (c.start) c.start, c.oid FROM chain c ORDER BY c.start, c.depth DESC), \
         new AS (SELECT (SELECT b.oid FROM base b WHERE b.start = {new}) AS base, {new_collation} AS collation) \
         SELECT 'column'::pg_catalog.text, ''::pg_catalog.text FROM col WHERE col.attrelid = {table} \
         UNION ALL SELECT 'check', k.conname::pg_catalog.text FROM pg_catalog.pg_constraint k \
           JOIN col ON k.conrelid = col.attrelid \
           WHERE k.contype = 'c' AND k.convalidated AND col.attnum = ANY (k.conkey) \
         UNION ALL SELECT 'index', ic.relname::pg_catalog.text FROM pg_catalog.pg_index i \
           JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid JOIN col ON i.indrelid = col.attrelid \
           LEFT JOIN base old ON old.start = col.atttypid CROSS JOIN new \
           WHERE (col.attnum = ANY (i.indkey::pg_catalog.int2[]) OR EXISTS (SELECT FROM pg_catalog.pg_depend d \
             WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = i.indexrelid \
             AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = col.attrelid \
             AND d.refobjsubid = col.attnum)) \
           AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL OR NOT i.indisvalid OR EXISTS (\
             SELECT FROM pg_catalog.generate_series(0, i.indnkeyatts - 1) AS k(n) \
             JOIN pg_catalog.pg_opclass oc ON oc.oid = (i.indclass::pg_catalog.oid[])[k.n] \
             JOIN pg_catalog.pg_type ot ON ot.oid = oc.opcintype \
             WHERE (i.indkey::pg_catalog.int2[])[k.n] = col.attnum \
             AND (((i.indcollation::pg_catalog.oid[])[k.n] = col.attcollation \
                 AND (i.indcollation::pg_catalog.oid[])[k.n] IS DISTINCT FROM new.collation) \
               OR (oc.oid = {old_default} AND oc.oid IS DISTINCT FROM {new_default}) \
               OR (ot.typtype = 'p' AND (SELECT ia.atttypid FROM pg_catalog.pg_attribute ia \
                 WHERE ia.attrelid = i.indexrelid AND ia.attnum = k.n + 1) IS DISTINCT FROM {new}::pg_catalog.oid))))",
        table = regclass(table),
        column = literal(column),
        old_default = default_opclass("old.oid", "ic.relam"),
        new_default = default_opclass("new.base", "ic.relam"),
    )
}

/// The answer to [`dependents_sql`]; None when the column does not exist.
pub fn dependents_from_rows(rows: &Rows) -> Option<ColumnDependents> {
    let mut found = false;
    let mut dependents = ColumnDependents::default();
    for row in rows {
        match (row.first().cloned().flatten().as_deref(), row.get(1).cloned().flatten()) {
            (Some("column"), _) => found = true,
            (Some("check"), Some(name)) => dependents.checks.push(name),
            (Some("index"), Some(name)) => dependents.rebuilt_indexes.push(name),
            _ => {}
        }
    }
    // A CHECK inherited by partitions shows once per table.
    dependents.checks.sort();
    dependents.checks.dedup();
    dependents.rebuilt_indexes.sort();
    dependents.rebuilt_indexes.dedup();
    found.then_some(dependents)
}

/// pg_constraint.contype of `table`'s constraint `name` if it is not validated yet: one
/// row, or none.
pub fn constraint_type_sql(table: &QualifiedName, name: &str) -> String {
    format!(
        "SELECT c.contype::pg_catalog.text FROM pg_catalog.pg_constraint c WHERE c.conrelid = {} AND c.conname = {} \
         AND NOT c.convalidated",
        regclass(table),
        literal(name)
    )
}

/// The answer of `constraint_type_sql`.
pub fn constraint_type_from_rows(rows: &Rows) -> Option<char> {
    rows.first()?.first()?.as_deref()?.chars().next()
}

/// pg_class.relkind of `relation`: one row, or none.
pub fn relation_kind_sql(relation: &QualifiedName) -> String {
    format!(
        "SELECT c.relkind::pg_catalog.text FROM pg_catalog.pg_class c WHERE c.oid = {}",
        regclass(relation)
    )
}

/// The answer of `relation_kind_sql` (the same shape as `constraint_type_from_rows`).
pub fn relation_kind_from_rows(rows: &Rows) -> Option<char> {
    constraint_type_from_rows(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_written_are_null_not_a_syntax_error() {
        let empty = TypeName::default();
        assert!(coercion_sql(&empty, &empty).contains("(1, NULL::pg_catalog.regtype)"));
        let sql = dependents_sql(&ColumnTypeChange {
            table: QualifiedName::bare(""),
            column: "c".to_string(),
            new_type: empty.clone(),
            collation: None,
        });
        assert!(sql.contains("SELECT NULL::pg_catalog.regclass::pg_catalog.oid"));
        let quoted = regtype(&TypeName::from_parts(&["my schema", "We\"ird"], vec![], true));
        assert_eq!(quoted, "pg_catalog.to_regtype('\"my schema\".\"We\"\"ird\"[]')");
    }
}
