//! INSERT, UPDATE, DELETE, MERGE, and a SELECT whose WITH writes: the tables each writes,
//! the statement's own target first, then the data-modifying CTEs of its WITH in order
//! (PostgreSQL allows them only there). Mirrors extension/src/nodes/dml.rs.

use pg_query::protobuf::{self, SetOperation};
use pg_query::NodeEnum;
use policy::model::{DmlWrite, WriteKind};
use policy::Stmt;

use super::names::range_var;

/// The model of `node` when it writes a table; None for anything else.
pub fn dml(node: &NodeEnum) -> Option<Stmt> {
    let writes = writes(node);
    (!writes.is_empty()).then_some(Stmt::Dml(writes))
}

fn writes(node: &NodeEnum) -> Vec<DmlWrite> {
    let (own, with, select_with) = match node {
        NodeEnum::InsertStmt(insert) => {
            let select = match insert.select_stmt.as_ref().and_then(|select| select.node.as_ref()) {
                Some(NodeEnum::SelectStmt(select)) => Some(select),
                _ => None,
            };
            let kind = match select {
                Some(select) if !carries_its_rows(select) => WriteKind::InsertSelect,
                _ => WriteKind::InsertValues,
            };
            // INSERT ... WITH ... SELECT: the SELECT's WITH runs for the INSERT.
            (
                Some(write(insert.relation.as_ref(), kind)),
                insert.with_clause.as_ref(),
                select.and_then(|select| select.with_clause.as_ref()),
            )
        }
        NodeEnum::UpdateStmt(update) => (
            Some(write(update.relation.as_ref(), WriteKind::Update)),
            update.with_clause.as_ref(),
            None,
        ),
        NodeEnum::DeleteStmt(delete) => (
            Some(write(delete.relation.as_ref(), WriteKind::Delete)),
            delete.with_clause.as_ref(),
            None,
        ),
        NodeEnum::MergeStmt(merge) => (
            Some(write(merge.relation.as_ref(), merge_kind(merge))),
            merge.with_clause.as_ref(),
            None,
        ),
        NodeEnum::SelectStmt(select) => (None, select.with_clause.as_ref(), None),
        _ => return Vec::new(),
    };
    let mut writes: Vec<DmlWrite> = own.into_iter().collect();
    for with in [with, select_with].into_iter().flatten() {
        for cte in &with.ctes {
            if let Some(NodeEnum::CommonTableExpr(cte)) = cte.node.as_ref() {
                if let Some(query) = cte.ctequery.as_ref().and_then(|query| query.node.as_ref()) {
                    writes.extend(self::writes(query));
                }
            }
        }
    }
    writes
}

fn write(relation: Option<&protobuf::RangeVar>, kind: WriteKind) -> DmlWrite {
    DmlWrite {
        table: range_var(relation),
        kind,
    }
}

/// `MergeInsert` when every WHEN clause is for source rows the target lacks.
fn merge_kind(merge: &protobuf::MergeStmt) -> WriteKind {
    let inserts_only = merge.merge_when_clauses.iter().all(|clause| {
        matches!(
            clause.node.as_ref(),
            Some(NodeEnum::MergeWhenClause(clause))
                if clause.match_kind == protobuf::MergeMatchKind::MergeWhenNotMatchedByTarget as i32
        )
    });
    if inserts_only {
        WriteKind::MergeInsert
    } else {
        WriteKind::Merge
    }
}

/// VALUES, or a SELECT of constants (no FROM, no WITH, no set operation): rows the
/// statement carries itself rather than reads from tables.
fn carries_its_rows(select: &protobuf::SelectStmt) -> bool {
    !select.values_lists.is_empty()
        || (select.from_clause.is_empty() && select.with_clause.is_none() && select.op() == SetOperation::SetopNone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::stmt;

    fn writes(sql: &str) -> Vec<(String, WriteKind)> {
        match stmt(sql) {
            Stmt::Dml(writes) => writes.into_iter().map(|w| (w.table.to_string(), w.kind)).collect(),
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn each_statement_kind() {
        use WriteKind::*;
        assert_eq!(writes("UPDATE users SET a = 1"), [("users".into(), Update)]);
        assert_eq!(
            writes("DELETE FROM app.users WHERE id < 10"),
            [("app.users".into(), Delete)]
        );
        assert_eq!(
            writes("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE"),
            [("t".into(), Merge)]
        );
        assert_eq!(writes("INSERT INTO t VALUES (1), (2)"), [("t".into(), InsertValues)]);
        assert_eq!(writes("INSERT INTO t DEFAULT VALUES"), [("t".into(), InsertValues)]);
        assert_eq!(writes("INSERT INTO t SELECT 1, now()"), [("t".into(), InsertValues)]);
        assert_eq!(writes("INSERT INTO t SELECT * FROM s"), [("t".into(), InsertSelect)]);
        assert_eq!(
            writes("INSERT INTO t SELECT 1 UNION SELECT 2"),
            [("t".into(), InsertSelect)]
        );
    }

    #[test]
    fn data_modifying_ctes() {
        use WriteKind::*;
        assert_eq!(
            writes("WITH moved AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM moved"),
            [("b".into(), InsertSelect), ("a".into(), Delete)]
        );
        assert_eq!(
            writes("WITH u AS (UPDATE a SET x = 1 RETURNING id) SELECT count(*) FROM u"),
            [("a".into(), Update)]
        );
        assert_eq!(
            writes("INSERT INTO b WITH moved AS (DELETE FROM a RETURNING *) SELECT * FROM moved"),
            [("b".into(), InsertSelect), ("a".into(), Delete)]
        );
        assert_eq!(stmt("WITH x AS (SELECT 1) SELECT * FROM x"), Stmt::Query);
        assert_eq!(stmt("SELECT * FROM users"), Stmt::Query);
    }
}
