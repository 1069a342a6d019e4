//! Expressions: their text (taken from the input where the node says it starts, so the
//! user's own spelling is kept; deparsed when that fails) and the functions they call,
//! for the volatility question of a DEFAULT.

use pg_query::protobuf::{self, Node, SelectStmt};
use pg_query::NodeEnum;
use policy::model::DefaultExpr;
use policy::QualifiedName;

use super::{names, Input};

/// A DEFAULT clause: `location` is where its constraint node starts (the DEFAULT
/// keyword, or CONSTRAINT when named). The text comes from
/// `policy::sql::default_expression_at`, the function the extension calls, so hints
/// quote the same expression; deparsed only when the location is not in the statement.
pub fn default_expr(expr: &Node, location: i32, input: &Input) -> DefaultExpr {
    let sql = input
        .text_from(location)
        .map(|text| policy::sql::default_expression_at(text, 0))
        .unwrap_or_else(|| deparse(expr));
    let mut calls = Calls::default();
    calls.walk(expr);
    DefaultExpr {
        sql,
        functions: calls.functions,
        always_volatile: calls.always_volatile,
    }
}

/// The text inside the first parentheses at or after `location`: CHECK (...)'s condition.
pub fn parenthesized(expr: Option<&Node>, location: i32, input: &Input) -> String {
    parenthesized_text(input, location)
        .or_else(|| expr.map(deparse))
        .unwrap_or_default()
}

/// The functions an expression calls, and whether it holds something evaluated per row
/// whatever it calls (a sub-query, or a construct the walker does not look into).
#[derive(Default)]
struct Calls {
    functions: Vec<QualifiedName>,
    always_volatile: bool,
}

impl Calls {
    fn walk(&mut self, node: &Node) {
        let Some(node) = node.node.as_ref() else {
            return;
        };
        match node {
            NodeEnum::AConst(_) | NodeEnum::ColumnRef(_) | NodeEnum::ParamRef(_) | NodeEnum::AStar(_) => {}
            NodeEnum::FuncCall(call) => {
                self.functions.push(names::dotted(&call.funcname));
                self.walk_all(&call.args);
                self.walk_all(&call.agg_order);
                self.walk_opt(call.agg_filter.as_deref());
            }
            // CURRENT_TIMESTAMP, SESSION_USER ...: never volatile, and no function call in
            // Postgres' raw tree either (the extension's model has none).
            NodeEnum::SqlvalueFunction(_) => {}
            NodeEnum::TypeCast(cast) => self.walk_opt(cast.arg.as_deref()),
            NodeEnum::AExpr(op) => {
                self.walk_opt(op.lexpr.as_deref());
                self.walk_opt(op.rexpr.as_deref());
            }
            NodeEnum::BoolExpr(op) => self.walk_all(&op.args),
            NodeEnum::List(list) => self.walk_all(&list.items),
            NodeEnum::CoalesceExpr(op) => self.walk_all(&op.args),
            NodeEnum::MinMaxExpr(op) => self.walk_all(&op.args),
            NodeEnum::NullTest(test) => self.walk_opt(test.arg.as_deref()),
            NodeEnum::BooleanTest(test) => self.walk_opt(test.arg.as_deref()),
            NodeEnum::CaseExpr(case) => {
                self.walk_opt(case.arg.as_deref());
                self.walk_all(&case.args);
                self.walk_opt(case.defresult.as_deref());
            }
            NodeEnum::CaseWhen(when) => {
                self.walk_opt(when.expr.as_deref());
                self.walk_opt(when.result.as_deref());
            }
            NodeEnum::AArrayExpr(array) => self.walk_all(&array.elements),
            NodeEnum::RowExpr(row) => self.walk_all(&row.args),
            NodeEnum::CollateClause(collate) => self.walk_opt(collate.arg.as_deref()),
            NodeEnum::AIndirection(indirection) => {
                self.walk_opt(indirection.arg.as_deref());
                self.walk_all(&indirection.indirection);
            }
            NodeEnum::AIndices(indices) => {
                self.walk_opt(indices.lidx.as_deref());
                self.walk_opt(indices.uidx.as_deref());
            }
            NodeEnum::NamedArgExpr(arg) => self.walk_opt(arg.arg.as_deref()),
            NodeEnum::SortBy(sort) => self.walk_opt(sort.node.as_deref()),
            // XML constructors evaluate their arguments once, like any function call; the
            // extension's walker (Postgres' raw_expression_tree_walker) looks into them too.
            NodeEnum::XmlExpr(xml) => {
                self.walk_all(&xml.named_args);
                self.walk_all(&xml.args);
            }
            NodeEnum::XmlSerialize(xml) => self.walk_opt(xml.expr.as_deref()),
            NodeEnum::ResTarget(target) => self.walk_opt(target.val.as_deref()),
            // A sub-query, or a construct this walker does not look into: per row, as
            // far as we can tell.
            _ => self.always_volatile = true,
        }
    }

    fn walk_all(&mut self, nodes: &[Node]) {
        nodes.iter().for_each(|node| self.walk(node));
    }

    fn walk_opt(&mut self, node: Option<&Node>) {
        if let Some(node) = node {
            self.walk(node);
        }
    }
}

/// The text between the first `(` at or after `location` and its matching `)`, as the
/// extension takes it (`policy::sql::parenthesized_at`), so hints match.
fn parenthesized_text(input: &Input, location: i32) -> Option<String> {
    let inner = policy::sql::parenthesized_at(input.text_from(location)?, 0);
    (!inner.is_empty()).then_some(inner)
}

/// The expression as libpg_query prints it, by deparsing `SELECT <expr>`.
fn deparse(expr: &Node) -> String {
    let select = SelectStmt {
        target_list: vec![Node {
            node: Some(NodeEnum::ResTarget(Box::new(protobuf::ResTarget {
                val: Some(Box::new(expr.clone())),
                ..Default::default()
            }))),
        }],
        op: protobuf::SetOperation::SetopNone as i32,
        limit_option: protobuf::LimitOption::Default as i32,
        ..Default::default()
    };
    NodeEnum::SelectStmt(Box::new(select))
        .deparse(Default::default())
        .ok()
        .and_then(|text| text.strip_prefix("SELECT ").map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::stmt;
    use policy::model::{AlterAction, ColumnDef};
    use policy::Stmt;

    fn default_of(sql: &str) -> DefaultExpr {
        match stmt(sql) {
            Stmt::AlterTable(alter) => match &alter.actions[0] {
                AlterAction::AddColumn {
                    column: ColumnDef {
                        default: Some(default), ..
                    },
                    ..
                } => default.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    fn names(default: &DefaultExpr) -> Vec<String> {
        default
            .functions
            .iter()
            .map(|f| match &f.schema {
                Some(schema) => format!("{schema}.{}", f.name),
                None => f.name.clone(),
            })
            .collect()
    }

    #[test]
    fn default_text_is_the_users_own_spelling() {
        let default = default_of("ALTER TABLE t ADD COLUMN c integer DEFAULT 1 +  2 NOT NULL");
        assert_eq!(default.sql, "1 +  2");
        assert!(default.functions.is_empty());
        assert!(!default.always_volatile);
        let default = default_of("ALTER TABLE t ADD COLUMN c text DEFAULT 'a,b' COLLATE \"C\", ADD COLUMN d int");
        assert_eq!(default.sql, "'a,b'");
    }

    #[test]
    fn default_functions_include_nested_calls_and_casts() {
        let default = default_of("ALTER TABLE t ADD COLUMN c uuid DEFAULT (public.gen_random_uuid())::uuid");
        assert_eq!(default.sql, "(public.gen_random_uuid())::uuid");
        assert_eq!(names(&default), vec!["public.gen_random_uuid"]);
        let default = default_of("ALTER TABLE t ADD COLUMN c text DEFAULT lower(md5(random()::text))");
        assert_eq!(names(&default), vec!["lower", "md5", "random"]);
    }

    #[test]
    fn sql_value_functions_are_no_function_calls() {
        let default = default_of("ALTER TABLE t ADD COLUMN c timestamptz DEFAULT CURRENT_TIMESTAMP");
        assert_eq!(default.sql, "CURRENT_TIMESTAMP");
        assert!(names(&default).is_empty());
        let default = default_of("ALTER TABLE t ADD COLUMN c timestamptz DEFAULT now() NOT NULL");
        assert_eq!(names(&default), vec!["now"]);
    }

    #[test]
    fn default_text_is_taken_as_the_extension_takes_it() {
        let sql = "ALTER TABLE t ADD COLUMN c int CONSTRAINT c_default DEFAULT (random() * 10)::int NOT NULL";
        let default = default_of(sql);
        let location = sql.find("CONSTRAINT").unwrap();
        assert_eq!(default.sql, policy::sql::default_expression_at(sql, location));
        assert_eq!(default.sql, "(random() * 10)::int");
    }

    #[test]
    fn xml_constructors_are_walked_not_assumed_volatile() {
        let default = default_of("ALTER TABLE t ADD COLUMN c xml DEFAULT xmlelement(name a, random()::text)");
        assert!(!default.always_volatile);
        assert_eq!(names(&default), vec!["random"]);
    }

    #[test]
    fn sub_queries_are_always_volatile() {
        let default = default_of("ALTER TABLE t ADD COLUMN c int DEFAULT (SELECT max(id) FROM u)");
        assert!(default.always_volatile);
    }

    #[test]
    fn deparse_prints_an_expression() {
        let parsed = pg_query::parse("SELECT now() + interval '1 day'", 0).unwrap();
        let Some(NodeEnum::SelectStmt(select)) = parsed.protobuf.stmts[0].stmt.as_ref().unwrap().node.as_ref() else {
            panic!()
        };
        let Some(NodeEnum::ResTarget(target)) = select.target_list[0].node.as_ref() else {
            panic!()
        };
        assert_eq!(deparse(target.val.as_ref().unwrap()), "now() + '1 day'::interval");
    }
}
