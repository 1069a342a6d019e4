//! CREATE VIEW: the view, and the relation it stands in for when its query is exactly
//! `SELECT * FROM relation`.

use pg_query::protobuf::{Node, SelectStmt, SetOperation, ViewStmt};
use pg_query::NodeEnum;
use policy::model::CreateView;
use policy::{QualifiedName, Stmt};

use super::names::range_var;

pub fn create_view(view: &ViewStmt) -> Stmt {
    let select = match view.query.as_deref().and_then(|query| query.node.as_ref()) {
        Some(NodeEnum::SelectStmt(select)) => Some(select),
        _ => None,
    };
    Stmt::CreateView(CreateView {
        view: range_var(view.view.as_ref()),
        replace: view.replace,
        temporary: view.view.as_ref().is_some_and(|view| view.relpersistence == "t"),
        // Column aliases rename what old code reads.
        all_of: select
            .filter(|_| view.aliases.is_empty())
            .and_then(|select| all_of(select)),
    })
}

/// The relation `SELECT * FROM relation` reads, with no other clause.
fn all_of(select: &SelectStmt) -> Option<QualifiedName> {
    let plain = select.distinct_clause.is_empty()
        && select.into_clause.is_none()
        && select.where_clause.is_none()
        && select.group_clause.is_empty()
        && select.having_clause.is_none()
        && select.window_clause.is_empty()
        && select.values_lists.is_empty()
        && select.sort_clause.is_empty()
        && select.limit_offset.is_none()
        && select.limit_count.is_none()
        && select.locking_clause.is_empty()
        && select.with_clause.is_none()
        && select.op == SetOperation::SetopNone as i32;
    let [from] = select.from_clause.as_slice() else {
        return None;
    };
    let Some(NodeEnum::RangeVar(relation)) = from.node.as_ref() else {
        return None;
    };
    let [target] = select.target_list.as_slice() else {
        return None;
    };
    let alias = relation.alias.as_ref().map(|alias| alias.aliasname.as_str());
    let named = alias.unwrap_or(&relation.relname);
    // `FROM accounts AS a (x, y)` renames its columns.
    let renames_columns = relation.alias.as_ref().is_some_and(|alias| !alias.colnames.is_empty());
    (plain && relation.inh && !renames_columns && is_star(target, named)).then(|| range_var(Some(relation)))
}

/// `*`, or `name.*` for the FROM item's name (its alias, if it has one).
fn is_star(target: &Node, named: &str) -> bool {
    let Some(NodeEnum::ResTarget(target)) = target.node.as_ref() else {
        return false;
    };
    let Some(NodeEnum::ColumnRef(column)) = target.val.as_deref().and_then(|value| value.node.as_ref()) else {
        return false;
    };
    let star = |node: &Node| matches!(node.node, Some(NodeEnum::AStar(_)));
    match column.fields.as_slice() {
        [only] => star(only),
        [prefix, last] => star(last) && super::names::string(prefix) == Some(named),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(sql: &str) -> CreateView {
        match crate::parse_sql(sql).unwrap().remove(0).statement.stmt {
            Stmt::CreateView(view) => view,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn select_star_of_one_relation_stands_in_for_it() {
        for sql in [
            "CREATE VIEW posts AS SELECT * FROM articles",
            "CREATE OR REPLACE VIEW posts AS SELECT articles.* FROM articles",
            "CREATE VIEW posts AS SELECT a.* FROM articles a",
            "CREATE VIEW posts WITH (security_barrier) AS SELECT * FROM articles WITH CASCADED CHECK OPTION",
        ] {
            assert_eq!(view(sql).all_of, Some(QualifiedName::bare("articles")), "{sql}");
        }
        let moved = view("CREATE VIEW public.users AS SELECT * FROM archive.users");
        assert_eq!(moved.view, QualifiedName::new(Some("public"), "users"));
        assert_eq!(moved.all_of, Some(QualifiedName::new(Some("archive"), "users")));
        assert!(view("CREATE TEMP VIEW posts AS SELECT * FROM articles").temporary);
        assert!(view("CREATE OR REPLACE VIEW posts AS SELECT * FROM articles").replace);
    }

    #[test]
    fn any_other_query_stands_in_for_nothing() {
        for sql in [
            "CREATE VIEW posts AS SELECT id FROM articles",
            "CREATE VIEW posts AS SELECT *, 1 AS one FROM articles",
            "CREATE VIEW posts AS SELECT * FROM articles WHERE id > 0",
            "CREATE VIEW posts AS SELECT DISTINCT * FROM articles",
            "CREATE VIEW posts AS SELECT * FROM articles LIMIT 10",
            "CREATE VIEW posts AS SELECT * FROM articles ORDER BY id",
            "CREATE VIEW posts AS SELECT * FROM ONLY articles",
            "CREATE VIEW posts AS SELECT * FROM articles, other",
            "CREATE VIEW posts AS SELECT * FROM articles JOIN other USING (id)",
            "CREATE VIEW posts AS SELECT * FROM articles UNION ALL SELECT * FROM other",
            "CREATE VIEW posts AS WITH a AS (SELECT * FROM articles) SELECT * FROM a",
            "CREATE VIEW posts AS SELECT other.* FROM articles",
            "CREATE VIEW posts (a, b) AS SELECT * FROM articles",
            "CREATE VIEW posts AS SELECT * FROM articles AS a (x, y)",
            "CREATE VIEW posts AS SELECT * FROM (SELECT * FROM articles) s",
            "CREATE VIEW posts AS VALUES (1)",
            "CREATE RECURSIVE VIEW posts (n) AS SELECT 1",
        ] {
            assert_eq!(view(sql).all_of, None, "{sql}");
        }
    }
}
