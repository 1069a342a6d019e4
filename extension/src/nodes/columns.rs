//! Column definitions and constraints, shared by CREATE TABLE and ALTER TABLE: types,
//! NOT NULL, DEFAULT (its text and the functions it calls), identity, generated
//! columns, and table or column constraints.

use pgrx::pg_sys;
use policy::model::{ColumnDef, Constraint, ConstraintKind, DefaultExpr};
use policy::sql::ForeignKeyOptions;
use policy::QualifiedName;

use super::cast::as_node;
use super::names::{cstr, nodes, qualified, range_var, strings};
use super::types::type_name;

/// A raw ColumnDef; `source` is the text its locations point into.
pub fn column_def(def: &pg_sys::ColumnDef, source: &str) -> ColumnDef {
    let name = cstr(def.colname).unwrap_or_default();
    let mut column = ColumnDef {
        name: name.clone(),
        type_name: type_name(def.typeName),
        not_null: def.is_not_null,
        ..ColumnDef::default()
    };
    // The inline REFERENCES that a following DEFERRABLE / INITIALLY DEFERRED qualifies
    // (the raw parser keeps those as separate CONSTR_ATTR_* nodes, as libpg_query does).
    let mut last_foreign_key: Option<(usize, ForeignKeyOptions)> = None;
    for node in nodes(def.constraints) {
        // SAFETY: each element is a node of the parse tree (the `nodes` contract); a
        // T_Constraint node is a Constraint.
        let Some(raw) = (unsafe { as_node::<pg_sys::Constraint>(node, pg_sys::NodeTag::T_Constraint) }) else {
            continue;
        };
        if let Some((index, options)) = last_foreign_key.as_mut() {
            let qualified = qualify(options, raw.contype);
            if qualified {
                if let ConstraintKind::ForeignKey { options_sql, .. } = &mut column.constraints[*index].kind {
                    *options_sql = options.sql();
                }
                continue;
            }
        }
        match raw.contype {
            pg_sys::ConstrType::CONSTR_NOTNULL => column.not_null = true,
            pg_sys::ConstrType::CONSTR_DEFAULT => column.default = Some(default_expr(raw, source)),
            pg_sys::ConstrType::CONSTR_IDENTITY => column.identity = true,
            pg_sys::ConstrType::CONSTR_GENERATED => column.generated_stored = true,
            pg_sys::ConstrType::CONSTR_CHECK
            | pg_sys::ConstrType::CONSTR_PRIMARY
            | pg_sys::ConstrType::CONSTR_UNIQUE
            | pg_sys::ConstrType::CONSTR_EXCLUSION
            | pg_sys::ConstrType::CONSTR_FOREIGN => {
                last_foreign_key = (raw.contype == pg_sys::ConstrType::CONSTR_FOREIGN)
                    .then(|| (column.constraints.len(), foreign_key_options(raw)));
                column.constraints.push(constraint(raw, Some(&name), source));
            }
            _ => {}
        }
    }
    column
}

/// A raw Constraint; `column` is the column it is written on, for inline constraints.
pub fn constraint(raw: &pg_sys::Constraint, column: Option<&str>, source: &str) -> Constraint {
    let kind = match raw.contype {
        pg_sys::ConstrType::CONSTR_FOREIGN => {
            let mut columns = strings(raw.fk_attrs);
            if columns.is_empty() {
                columns.extend(column.map(str::to_owned));
            }
            ConstraintKind::ForeignKey {
                columns,
                referenced_table: range_var(raw.pktable),
                referenced_columns: strings(raw.pk_attrs),
                options_sql: foreign_key_options(raw).sql(),
            }
        }
        pg_sys::ConstrType::CONSTR_CHECK => ConstraintKind::Check {
            expr_sql: policy::sql::parenthesized_at(source, location(raw.location)),
        },
        pg_sys::ConstrType::CONSTR_PRIMARY | pg_sys::ConstrType::CONSTR_UNIQUE => {
            let mut columns = strings(raw.keys);
            if columns.is_empty() {
                columns.extend(column.map(str::to_owned));
            }
            ConstraintKind::Unique {
                primary_key: raw.contype == pg_sys::ConstrType::CONSTR_PRIMARY,
                columns,
                using_index: cstr(raw.indexname),
            }
        }
        pg_sys::ConstrType::CONSTR_EXCLUSION => ConstraintKind::Exclusion,
        pg_sys::ConstrType::CONSTR_NOTNULL => ConstraintKind::NotNull {
            column: column.map(str::to_owned),
        },
        _ => ConstraintKind::Other,
    };
    Constraint {
        name: cstr(raw.conname),
        kind,
        not_valid: raw.skip_validation,
    }
}

/// Parse locations are byte offsets, -1 when unknown.
pub fn location(location: i32) -> usize {
    usize::try_from(location).unwrap_or(usize::MAX)
}

/// DEFAULT: its text (from the constraint's location, as the proxy takes it) and the
/// functions it calls, for the volatility question.
fn default_expr(raw: &pg_sys::Constraint, source: &str) -> DefaultExpr {
    // SAFETY: raw_expr is NULL or the raw expression the parser built into this Constraint,
    // alive for the statement (the `nodes` contract). hook.c walks it with Postgres' own
    // raw_expression_tree_walker and returns a new List of the FuncCall nodes in it, which
    // point into the same tree.
    let (calls, has_sublink) = unsafe { crate::shim::raw_function_calls(raw.raw_expr) };
    let functions: Vec<QualifiedName> = nodes(calls)
        .into_iter()
        // Every element is a FuncCall (that is all the walker collects), so nothing is
        // skipped; the tag is checked all the same.
        // SAFETY: each element is a FuncCall node of the parse tree (above).
        .filter_map(|call| unsafe { as_node::<pg_sys::FuncCall>(call, pg_sys::NodeTag::T_FuncCall) })
        .map(|call| qualified(call.funcname))
        .collect();
    DefaultExpr {
        sql: policy::sql::default_expression_at(source, location(raw.location)),
        functions,
        always_volatile: has_sublink,
    }
}

/// Apply a DEFERRABLE / NOT DEFERRABLE / INITIALLY DEFERRED / INITIALLY IMMEDIATE
/// attribute node to the options of the foreign key before it; false for other nodes.
fn qualify(options: &mut ForeignKeyOptions, contype: pg_sys::ConstrType::Type) -> bool {
    match contype {
        pg_sys::ConstrType::CONSTR_ATTR_DEFERRABLE => options.deferrable = true,
        pg_sys::ConstrType::CONSTR_ATTR_NOT_DEFERRABLE => options.deferrable = false,
        pg_sys::ConstrType::CONSTR_ATTR_DEFERRED => options.initially_deferred = true,
        pg_sys::ConstrType::CONSTR_ATTR_IMMEDIATE => options.initially_deferred = false,
        _ => return false,
    }
    true
}

/// The match type, referential actions and deferrability of a foreign key, in the
/// shared form both adapters print (`policy::sql::ForeignKeyOptions`).
fn foreign_key_options(raw: &pg_sys::Constraint) -> ForeignKeyOptions {
    ForeignKeyOptions {
        match_type: raw.fk_matchtype as u8 as char,
        on_update: raw.fk_upd_action as u8 as char,
        on_delete: raw.fk_del_action as u8 as char,
        deferrable: raw.deferrable,
        initially_deferred: raw.initdeferred,
    }
}
