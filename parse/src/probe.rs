//! A read-only stand-in for a data-modifying statement, for the proxy to EXPLAIN inside
//! the client's transaction block. EXPLAIN of an UPDATE, DELETE or MERGE starts its
//! executor, which takes a command id of the transaction (visible to the client in cmin
//! and cmax) even when nothing runs; a SELECT takes none. The stand-in reads the rows the
//! statement would change, with the same target, joins and condition, so the planner's
//! estimate of its rows is the estimate of the write's input.

use pg_query::protobuf::{
    a_const, AConst, Integer, JoinExpr, JoinType, LimitOption, MergeMatchKind, Node, ParseResult, RangeVar, RawStmt,
    ResTarget, SelectStmt, SetOperation, WithClause,
};
use pg_query::{DeparseOptions, NodeEnum};

/// The write `EXPLAIN ANALYZE` runs, when `sql` is one: `EXPLAIN (ANALYZE ...)` of an
/// INSERT, UPDATE, DELETE or MERGE (or a query whose WITH writes), or of an EXECUTE (of
/// a prepared statement that may write), as text.
pub fn analyzed_write(sql: &str) -> Option<String> {
    let parsed = pg_query::parse(sql, 0).ok()?;
    let [raw] = parsed.protobuf.stmts.as_slice() else {
        return None;
    };
    let NodeEnum::ExplainStmt(explain) = raw.stmt.as_ref()?.node.as_ref()? else {
        return None;
    };
    if !crate::options::enabled(&explain.options, "analyze") {
        return None;
    }
    let query = explain.query.as_ref()?.node.as_ref()?;
    if crate::dml::dml(query).is_none() && !matches!(query, NodeEnum::ExecuteStmt(_)) {
        return None;
    }
    query.deparse(DeparseOptions::default()).ok()
}

/// `SELECT 1 FROM <the rows sql's one UPDATE, DELETE or MERGE changes>`, or None for any
/// other statement, several, or one the stand-in cannot describe (WHERE CURRENT OF).
/// The write may be the statement itself or a WITH query of a SELECT or INSERT (`WITH
/// moved AS (DELETE ... RETURNING *) INSERT ...`): the stand-in then keeps the WITH's
/// other read-only queries, which the write may read.
pub fn rows_changed_probe(sql: &str) -> Option<String> {
    let parsed = pg_query::parse(sql, 0).ok()?;
    let [raw] = parsed.protobuf.stmts.as_slice() else {
        return None;
    };
    let (node, outer, recursive) = the_write(raw.stmt.as_ref()?.node.as_ref()?)?;
    let with = |own: &Option<WithClause>| joined_with(own.as_ref(), &outer, recursive);
    let select = match node {
        NodeEnum::UpdateStmt(update) => reading(
            update.relation.clone()?,
            update.from_clause.clone(),
            update.where_clause.clone(),
            with(&update.with_clause),
        )?,
        NodeEnum::DeleteStmt(delete) => reading(
            delete.relation.clone()?,
            delete.using_clause.clone(),
            delete.where_clause.clone(),
            with(&delete.with_clause),
        )?,
        NodeEnum::MergeStmt(merge) => {
            let kinds: Vec<i32> = merge
                .merge_when_clauses
                .iter()
                .filter_map(|clause| match clause.node.as_ref()? {
                    NodeEnum::MergeWhenClause(clause) => Some(clause.match_kind),
                    _ => None,
                })
                .collect();
            let unmatched_source = kinds.contains(&(MergeMatchKind::MergeWhenNotMatchedByTarget as i32));
            let unmatched_target = kinds.contains(&(MergeMatchKind::MergeWhenNotMatchedBySource as i32));
            let jointype = match (unmatched_target, unmatched_source) {
                (false, false) => JoinType::JoinInner,
                (true, false) => JoinType::JoinLeft,
                (false, true) => JoinType::JoinRight,
                (true, true) => JoinType::JoinFull,
            };
            let join = JoinExpr {
                jointype: jointype as i32,
                larg: Some(Box::new(range_var(merge.relation.clone()?))),
                rarg: merge.source_relation.clone(),
                quals: merge.join_condition.clone(),
                ..JoinExpr::default()
            };
            select(
                vec![Node {
                    node: Some(NodeEnum::JoinExpr(Box::new(join))),
                }],
                None,
                with(&merge.with_clause),
            )
        }
        _ => return None,
    };
    let stand_in = NodeEnum::SelectStmt(Box::new(select.clone()));
    if takes_a_command_id_anyway(&stand_in) {
        return None;
    }
    let version = parsed.protobuf.version;
    let text = deparse(version, select.clone())?;
    // Parameters only the write's SET list used: the stand-in still takes them all (an
    // EXECUTE of it passes every one), typed so the server can prepare it.
    let wanted = crate::calls::parameter_numbers(sql);
    let present = crate::calls::parameter_numbers(&text);
    let missing: Vec<usize> = wanted.difference(&present).copied().collect();
    if missing.is_empty() {
        return Some(text);
    }
    let mut select = select;
    for number in missing {
        select.target_list.push(parameter_as_text(number)?);
    }
    deparse(version, select)
}

fn deparse(version: i32, select: SelectStmt) -> Option<String> {
    let result = ParseResult {
        version,
        stmts: vec![RawStmt {
            stmt: Some(Box::new(Node {
                node: Some(NodeEnum::SelectStmt(Box::new(select))),
            })),
            stmt_location: 0,
            stmt_len: 0,
        }],
    };
    pg_query::deparse(&result, DeparseOptions::default()).ok()
}

/// The target `$number::pg_catalog.text`.
fn parameter_as_text(number: usize) -> Option<Node> {
    let name = |text: &str| Node {
        node: Some(NodeEnum::String(pg_query::protobuf::String { sval: text.to_string() })),
    };
    let cast = pg_query::protobuf::TypeCast {
        arg: Some(Box::new(Node {
            node: Some(NodeEnum::ParamRef(pg_query::protobuf::ParamRef {
                number: i32::try_from(number).ok()?,
                location: -1,
            })),
        })),
        type_name: Some(pg_query::protobuf::TypeName {
            names: vec![name("pg_catalog"), name("text")],
            typemod: -1,
            location: -1,
            ..Default::default()
        }),
        location: -1,
    };
    Some(Node {
        node: Some(NodeEnum::ResTarget(Box::new(ResTarget {
            val: Some(Box::new(Node {
                node: Some(NodeEnum::TypeCast(Box::new(cast))),
            })),
            location: -1,
            ..ResTarget::default()
        }))),
    })
}

/// The one UPDATE, DELETE or MERGE `node` runs, itself or as a query of its WITH, and
/// (for the latter) the WITH's queries that write nothing and whether that WITH is
/// RECURSIVE. None for no such write, or several.
fn the_write(node: &NodeEnum) -> Option<(&NodeEnum, Vec<Node>, bool)> {
    let changes_rows = |node: &NodeEnum| {
        matches!(
            node,
            NodeEnum::UpdateStmt(_) | NodeEnum::DeleteStmt(_) | NodeEnum::MergeStmt(_)
        )
    };
    if changes_rows(node) {
        return Some((node, Vec::new(), false));
    }
    let withs: Vec<&WithClause> = match node {
        NodeEnum::SelectStmt(select) => select.with_clause.iter().collect(),
        NodeEnum::InsertStmt(insert) => {
            let select_with = match insert.select_stmt.as_ref().and_then(|select| select.node.as_ref()) {
                Some(NodeEnum::SelectStmt(select)) => select.with_clause.as_ref(),
                _ => None,
            };
            insert.with_clause.iter().chain(select_with).collect()
        }
        _ => return None,
    };
    let mut writes = Vec::new();
    let mut read_only = Vec::new();
    for cte_node in withs.iter().flat_map(|with| &with.ctes) {
        let Some(NodeEnum::CommonTableExpr(cte)) = cte_node.node.as_ref() else {
            return None;
        };
        match cte.ctequery.as_ref().and_then(|query| query.node.as_ref()) {
            Some(query) if changes_rows(query) => writes.push(query),
            Some(NodeEnum::SelectStmt(_)) => read_only.push(cte_node.clone()),
            // An INSERT: left out (a query that reads it fails, and gets no estimate).
            _ => {}
        }
    }
    let [write] = writes[..] else {
        return None;
    };
    Some((write, read_only, withs.iter().any(|with| with.recursive)))
}

/// The write's own WITH, after the read-only queries of the WITH around it (RECURSIVE
/// when either is).
fn joined_with(own: Option<&WithClause>, outer: &[Node], recursive: bool) -> Option<WithClause> {
    if outer.is_empty() {
        return own.cloned();
    }
    let mut with = WithClause {
        ctes: outer.to_vec(),
        recursive,
        location: -1,
    };
    if let Some(own) = own {
        with.ctes.extend(own.ctes.iter().cloned());
        with.recursive |= own.recursive;
    }
    Some(with)
}

/// Would the stand-in still take a command id? PostgreSQL's executor takes one for a
/// plan with row marks (FOR UPDATE / SHARE anywhere in it) or a data-modifying WITH,
/// EXPLAIN only or not. The whole tree is searched, through its Debug form, which names
/// every node it holds: a locking clause or a write may sit in any subquery.
fn takes_a_command_id_anyway(node: &NodeEnum) -> bool {
    let tree = format!("{node:?}");
    let inner = tree.split_once('(').map_or("", |(_, rest)| rest);
    [
        "LockingClause(",
        "InsertStmt(",
        "UpdateStmt(",
        "DeleteStmt(",
        "MergeStmt(",
    ]
    .iter()
    .any(|name| inner.contains(name))
}

/// `SELECT 1 FROM target, from... WHERE condition`; None for WHERE CURRENT OF.
fn reading(
    target: RangeVar,
    from: Vec<Node>,
    condition: Option<Box<Node>>,
    with: Option<WithClause>,
) -> Option<SelectStmt> {
    if matches!(
        condition.as_deref().and_then(|node| node.node.as_ref()),
        Some(NodeEnum::CurrentOfExpr(_))
    ) {
        return None;
    }
    let mut from_clause = vec![range_var(target)];
    from_clause.extend(from);
    Some(select(from_clause, condition, with))
}

/// `WITH ... SELECT 1 FROM from_clause WHERE condition`.
fn select(
    from_clause: Vec<Node>,
    where_clause: Option<Box<Node>>,
    with_clause: Option<pg_query::protobuf::WithClause>,
) -> SelectStmt {
    SelectStmt {
        target_list: vec![one()],
        from_clause,
        where_clause,
        with_clause,
        limit_option: LimitOption::Default as i32,
        op: SetOperation::SetopNone as i32,
        ..SelectStmt::default()
    }
}

fn range_var(relation: RangeVar) -> Node {
    Node {
        node: Some(NodeEnum::RangeVar(relation)),
    }
}

/// The target list `1`.
fn one() -> Node {
    let constant = AConst {
        val: Some(a_const::Val::Ival(Integer { ival: 1 })),
        ..AConst::default()
    };
    Node {
        node: Some(NodeEnum::ResTarget(Box::new(ResTarget {
            val: Some(Box::new(Node {
                node: Some(NodeEnum::AConst(constant)),
            })),
            ..ResTarget::default()
        }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_write_reads_the_rows_it_would_change() {
        let probe = |sql: &str| rows_changed_probe(sql);
        assert_eq!(
            probe("UPDATE ONLY s.t AS x SET c = 1 FROM u WHERE x.id = u.id AND u.k > 3").as_deref(),
            Some("SELECT 1 FROM ONLY s.t x, u WHERE x.id = u.id AND u.k > 3")
        );
        assert_eq!(
            probe("WITH d AS (SELECT 1) DELETE FROM t USING d WHERE t.id < 5").as_deref(),
            Some("WITH d AS (SELECT 1) SELECT 1 FROM t, d WHERE t.id < 5")
        );
        assert_eq!(
            probe("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET c = s.c").as_deref(),
            Some("SELECT 1 FROM t JOIN s ON t.id = s.id")
        );
        assert_eq!(
            probe(
                "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.id)"
            )
            .as_deref(),
            Some("SELECT 1 FROM t RIGHT JOIN s ON t.id = s.id")
        );
        // A parameter only the SET list used is still taken, typed.
        assert_eq!(
            probe("UPDATE t SET c = $1 WHERE id > $2").as_deref(),
            Some("SELECT 1, $1::pg_catalog.text FROM t WHERE id > $2")
        );
        assert_eq!(probe("UPDATE t SET c = 1 WHERE CURRENT OF cur"), None);
        assert_eq!(probe("INSERT INTO t SELECT * FROM u"), None);
        assert_eq!(probe("UPDATE t SET c = 1; UPDATE t SET c = 2"), None);
        // The one write of a WITH, with the WITH's read-only queries; several: none.
        assert_eq!(
            probe("WITH x AS (UPDATE t SET c = 1 RETURNING 1) SELECT * FROM x").as_deref(),
            Some("SELECT 1 FROM t")
        );
        assert_eq!(
            probe(
                "WITH s AS (SELECT 4 AS k), moved AS (DELETE FROM a USING s WHERE a.k < s.k RETURNING a.*) \
                 INSERT INTO b SELECT * FROM moved"
            )
            .as_deref(),
            Some("WITH s AS (SELECT 4 AS k) SELECT 1 FROM a, s WHERE a.k < s.k")
        );
        assert_eq!(
            probe("WITH x AS (UPDATE t SET c = 1 RETURNING 1), y AS (DELETE FROM u RETURNING 1) SELECT 1"),
            None
        );
        assert_eq!(
            probe("WITH x AS (INSERT INTO t VALUES (1) RETURNING 1) SELECT * FROM x"),
            None
        );
        assert_eq!(
            probe(
                "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 5), \
                 d AS (DELETE FROM t USING n WHERE t.id = n.k RETURNING 1) SELECT count(*) FROM d"
            )
            .as_deref(),
            Some(
                "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 5) \
                 SELECT 1 FROM t, n WHERE t.id = n.k"
            )
        );
        // Row marks or a write in the WITH: the stand-in would take a command id too.
        assert_eq!(
            probe("DELETE FROM jobs WHERE id IN (SELECT id FROM jobs LIMIT 10 FOR UPDATE SKIP LOCKED)"),
            None
        );
        assert_eq!(
            probe("WITH x AS (UPDATE u SET c = 1 RETURNING id) DELETE FROM t USING x WHERE t.id = x.id"),
            None
        );
        assert!(probe("WITH x AS (SELECT id FROM u) DELETE FROM t USING x WHERE t.id = x.id").is_some());
    }

    #[test]
    fn explain_analyze_runs_its_write_and_plain_explain_runs_nothing() {
        assert_eq!(
            analyzed_write("EXPLAIN (ANALYZE, COSTS OFF) UPDATE t SET c = 1 WHERE id < 3").as_deref(),
            Some("UPDATE t SET c = 1 WHERE id < 3")
        );
        assert_eq!(
            analyzed_write("explain analyze delete from t").as_deref(),
            Some("DELETE FROM t")
        );
        assert_eq!(analyzed_write("EXPLAIN UPDATE t SET c = 1"), None);
        assert_eq!(analyzed_write("EXPLAIN (ANALYZE false) UPDATE t SET c = 1"), None);
        assert_eq!(analyzed_write("EXPLAIN ANALYZE SELECT 1"), None);
    }
}
