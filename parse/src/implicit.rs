//! What a statement runs without naming it, found in its parse tree: the tables it writes
//! (their trigger functions fire) and the relations it reads (a view's or materialized
//! view's query runs, with the functions it calls). The targets of INSERT, UPDATE,
//! DELETE and MERGE at every nesting level (data-modifying CTEs included), COPY ... FROM
//! and TRUNCATE are written; every relation a query names, and the view REFRESH
//! MATERIALIZED VIEW recomputes, is read. Statements in function bodies are read the same
//! way where they are decided.

use pg_query::{NodeEnum, NodeRef};
use policy::QualifiedName;

use super::names::{range_var, range_vars};

/// pg_trigger.tgtype's event bits (TRIGGER_TYPE_INSERT ...).
pub const INSERT: u8 = 1 << 2;
pub const DELETE: u8 = 1 << 3;
pub const UPDATE: u8 = 1 << 4;
pub const TRUNCATE: u8 = 1 << 5;

/// A table a statement writes, and the trigger events the writes fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub table: QualifiedName,
    /// tgtype bits: INSERT, DELETE, UPDATE, TRUNCATE.
    pub events: u8,
}

/// What a statement reaches without naming it: the tables it writes and the relations
/// it reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// Each table once, with all its events, in order. INSERT ... ON CONFLICT may update;
    /// MERGE may insert, update and delete.
    pub writes: Vec<Write>,
    /// Each relation once, in order (views among them; a CTE's name too).
    pub reads: Vec<QualifiedName>,
}

/// What the statement `node` (one parsed statement, walked once) reaches.
pub fn reach(node: &NodeEnum) -> Reach {
    let mut reach = Reach::default();
    for (node, ..) in node.nodes() {
        let (tables, events) = match node {
            NodeRef::InsertStmt(insert) => (
                vec![range_var(insert.relation.as_ref())],
                if insert.on_conflict_clause.is_some() {
                    INSERT | UPDATE
                } else {
                    INSERT
                },
            ),
            NodeRef::UpdateStmt(update) => (vec![range_var(update.relation.as_ref())], UPDATE),
            NodeRef::DeleteStmt(delete) => (vec![range_var(delete.relation.as_ref())], DELETE),
            NodeRef::MergeStmt(merge) => (vec![range_var(merge.relation.as_ref())], INSERT | UPDATE | DELETE),
            NodeRef::CopyStmt(copy) if copy.is_from => (vec![range_var(copy.relation.as_ref())], INSERT),
            NodeRef::TruncateStmt(truncate) => (range_vars(&truncate.relations), TRUNCATE),
            NodeRef::RangeVar(relation) => {
                reach.read(range_var(Some(relation)));
                continue;
            }
            NodeRef::RefreshMatViewStmt(refresh) => {
                reach.read(range_var(refresh.relation.as_ref()));
                continue;
            }
            _ => continue,
        };
        for table in tables.into_iter().filter(|table| !table.name.is_empty()) {
            match reach.writes.iter_mut().find(|write| write.table == table) {
                Some(write) => write.events |= events,
                None => reach.writes.push(Write { table, events }),
            }
        }
    }
    reach
}

impl Reach {
    fn read(&mut self, relation: QualifiedName) {
        if !relation.name.is_empty() && !self.reads.contains(&relation) {
            self.reads.push(relation);
        }
    }
}

/// `reach` of every statement of `sql`, for the tests: nothing when it does not parse.
#[cfg(test)]
fn reach_of(sql: &str) -> Reach {
    let mut all = Reach::default();
    for statement in pg_query::parse(sql, 0)
        .map(|parsed| parsed.protobuf.stmts)
        .unwrap_or_default()
    {
        if let Some(node) = statement.stmt.as_ref().and_then(|node| node.node.as_ref()) {
            let one = reach(node);
            all.writes.extend(one.writes);
            all.reads.extend(one.reads);
        }
    }
    all
}

#[cfg(test)]
fn written_tables(sql: &str) -> Vec<Write> {
    reach_of(sql).writes
}

#[cfg(test)]
fn read_relations(sql: &str) -> Vec<QualifiedName> {
    reach_of(sql).reads
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> Vec<String> {
        written_tables(sql).iter().map(|write| write.table.sql()).collect()
    }

    #[test]
    fn each_write_carries_its_events() {
        let events = |sql: &str| written_tables(sql).iter().map(|write| write.events).collect::<Vec<_>>();
        assert_eq!(events("INSERT INTO t VALUES (1)"), [INSERT]);
        assert_eq!(
            events("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 1"),
            [INSERT | UPDATE]
        );
        assert_eq!(
            events("WITH d AS (DELETE FROM t RETURNING *) UPDATE t SET a = 1"),
            [UPDATE | DELETE]
        );
        assert_eq!(
            events("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE"),
            [INSERT | UPDATE | DELETE]
        );
        assert_eq!(events("TRUNCATE t"), [TRUNCATE]);
    }

    #[test]
    fn every_kind_of_write_at_every_level() {
        assert_eq!(names("INSERT INTO audit.log (a) VALUES (1)"), ["audit.log"]);
        assert_eq!(names("UPDATE t SET a = 1"), ["t"]);
        assert_eq!(names("DELETE FROM ONLY \"T\" WHERE a = 1"), ["\"T\""]);
        assert_eq!(
            names("WITH moved AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM moved"),
            ["b", "a"]
        );
        assert_eq!(
            names("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a"),
            ["t"]
        );
        assert_eq!(names("COPY t FROM STDIN"), ["t"]);
        assert!(names("COPY t TO STDOUT").is_empty());
        assert_eq!(names("TRUNCATE a, s.b"), ["a", "s.b"]);
        assert!(names("SELECT * FROM t").is_empty());
        assert!(names("SELECT (").is_empty());
    }

    #[test]
    fn relations_read_at_every_level() {
        let read = |sql: &str| read_relations(sql).iter().map(QualifiedName::sql).collect::<Vec<_>>();
        assert_eq!(read("REFRESH MATERIALIZED VIEW CONCURRENTLY s.totals"), ["s.totals"]);
        assert_eq!(
            read("SELECT * FROM a JOIN b ON true WHERE EXISTS (SELECT FROM c)"),
            ["a", "b", "c"]
        );
        // A CTE's name is looked up too (over-approximate: the server says it is no view).
        assert_eq!(
            read("WITH x AS (SELECT * FROM v) INSERT INTO t SELECT * FROM x"),
            ["t", "x", "v"]
        );
    }
}
