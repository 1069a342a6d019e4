//! What a `CREATE TRIGGER` statement sets up (and an event trigger, and where a `COPY`
//! writes): the table, the events that fire it (the
//! bits of pg_trigger.tgtype: 4 INSERT, 8 DELETE, 16 UPDATE, 32 TRUNCATE) and the
//! function it runs. For `safe-migrations check --database-url`, which answers what a
//! write fires for triggers the run created and the database does not have yet.

use pg_query::NodeEnum;
use policy::QualifiedName;

use crate::names::{dotted, range_var};
use crate::prepared::only_statement;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTrigger {
    pub table: QualifiedName,
    /// tgtype's event bits.
    pub events: u8,
    pub function: QualifiedName,
}

/// The trigger `source` creates, when it is one `CREATE [CONSTRAINT] TRIGGER`.
pub fn created_trigger(source: &str) -> Option<CreatedTrigger> {
    let parsed = pg_query::parse(source, 0).ok()?.protobuf;
    let Some(NodeEnum::CreateTrigStmt(create)) = only_statement(&parsed) else {
        return None;
    };
    // CreateTrigStmt.events holds the TRIGGER_TYPE_ bits of the events, as tgtype does.
    let events = u8::try_from(create.events & (4 | 8 | 16 | 32)).ok()?;
    Some(CreatedTrigger {
        table: range_var(create.relation.as_ref()),
        events,
        function: dotted(&create.funcname),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_s_table_events_and_function() {
        let trigger = created_trigger(
            "CREATE TRIGGER plans_touch BEFORE UPDATE OR DELETE ON billing.plans \
             FOR EACH ROW EXECUTE FUNCTION billing.touch_updated_at()",
        )
        .unwrap();
        assert_eq!(trigger.table, QualifiedName::new(Some("billing"), "plans"));
        assert_eq!(trigger.events, 16 | 8);
        assert_eq!(
            trigger.function,
            QualifiedName::new(Some("billing"), "touch_updated_at")
        );
        assert_eq!(
            created_trigger("CREATE TRIGGER t AFTER INSERT ON x FOR EACH ROW EXECUTE PROCEDURE f()")
                .map(|trigger| trigger.events),
            Some(4)
        );
        assert_eq!(created_trigger("CREATE TABLE t (id int)"), None);
    }
}

/// The function an event trigger `source` creates runs, when it is one `CREATE EVENT
/// TRIGGER`.
pub fn created_event_trigger_function(source: &str) -> Option<QualifiedName> {
    let parsed = pg_query::parse(source, 0).ok()?.protobuf;
    let Some(NodeEnum::CreateEventTrigStmt(create)) = only_statement(&parsed) else {
        return None;
    };
    Some(dotted(&create.funcname))
}

/// The table a `COPY ... FROM` writes rows into, when `source` is one.
pub fn copied_into(source: &str) -> Option<QualifiedName> {
    let parsed = pg_query::parse(source, 0).ok()?.protobuf;
    let Some(NodeEnum::CopyStmt(copy)) = only_statement(&parsed) else {
        return None;
    };
    (copy.is_from && copy.relation.is_some()).then(|| range_var(copy.relation.as_ref()))
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn event_trigger_functions_and_copy_targets() {
        assert_eq!(
            created_event_trigger_function(
                "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION audit.log_ddl()"
            ),
            Some(QualifiedName::new(Some("audit"), "log_ddl"))
        );
        assert_eq!(
            copied_into("COPY app.t (a, b) FROM STDIN"),
            Some(QualifiedName::new(Some("app"), "t"))
        );
        assert_eq!(copied_into("COPY t TO STDOUT"), None);
        assert_eq!(copied_into("COPY (SELECT 1) TO STDOUT"), None);
    }
}

/// The query of the view or materialized view `source` creates (as PostgreSQL would
/// print it back), and whether it is materialized: what reading or refreshing it runs.
pub fn created_view_query(source: &str) -> Option<(bool, String)> {
    let parsed = pg_query::parse(source, 0).ok()?.protobuf;
    let (materialized, query) = match only_statement(&parsed)? {
        NodeEnum::ViewStmt(view) => (false, view.query.as_ref()?.node.as_ref()?),
        NodeEnum::CreateTableAsStmt(create) if create.objtype() == pg_query::protobuf::ObjectType::ObjectMatview => {
            (true, create.query.as_ref()?.node.as_ref()?)
        }
        _ => return None,
    };
    Some((materialized, query.deparse(pg_query::DeparseOptions::default()).ok()?))
}

#[cfg(test)]
mod view_tests {
    use super::*;

    #[test]
    fn a_created_view_s_query() {
        assert_eq!(
            created_view_query("CREATE OR REPLACE VIEW v AS SELECT refresh_me() AS x"),
            Some((false, "SELECT refresh_me() AS x".to_string()))
        );
        assert_eq!(
            created_view_query("CREATE MATERIALIZED VIEW m AS SELECT id FROM t WITH NO DATA"),
            Some((true, "SELECT id FROM t".to_string()))
        );
        assert_eq!(created_view_query("CREATE TABLE c AS SELECT 1"), None);
    }
}
