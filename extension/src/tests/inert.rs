//! hook.c lets some statement kinds through without asking Rust (`sm_is_inert_utility`);
//! the policy must agree that it has nothing to say about every one of them.

#[pgrx::pg_schema]
mod tests {
    use std::collections::BTreeSet;
    use std::ffi::CString;

    use pgrx::prelude::*;
    use pgrx::PgList;

    extern "C" {
        fn sm_is_inert_utility(node: *mut pg_sys::Node) -> bool;
    }

    /// One statement of every kind hook.c lets through, and some it must not.
    const STATEMENTS: &str = "
        BEGIN; START TRANSACTION; SAVEPOINT s; RELEASE SAVEPOINT s; ROLLBACK TO SAVEPOINT s;
        COMMIT; ROLLBACK; PREPARE TRANSACTION 'x'; COMMIT PREPARED 'x'; ROLLBACK PREPARED 'x';
        SET lock_timeout = 0; SET LOCAL work_mem = '8MB'; RESET ALL; RESET lock_timeout;
        SET safe_migrations.mode = off; SHOW work_mem; DISCARD ALL; DISCARD PLANS;
        EXPLAIN SELECT 1; COPY fixture.orders TO STDOUT; DECLARE c CURSOR FOR SELECT 1;
        FETCH c; CLOSE c; PREPARE p AS SELECT 1; EXECUTE p; DEALLOCATE p; NOTIFY n;
        LISTEN n; UNLISTEN n; SET CONSTRAINTS ALL DEFERRED; CHECKPOINT;
        CREATE INDEX ON fixture.orders (note); ALTER TABLE fixture.orders ADD COLUMN x int;
        DROP TABLE fixture.orders; VACUUM fixture.orders; DO $$ BEGIN END $$; CALL p();
        LOCK fixture.orders; CREATE TRIGGER t AFTER INSERT ON fixture.orders EXECUTE FUNCTION f();
        REFRESH MATERIALIZED VIEW v; TRUNCATE fixture.orders; CREATE TABLE t AS SELECT 1";

    #[pg_test]
    fn the_hooks_inert_statements_are_inert_to_the_policy() {
        let sql = CString::new(STATEMENTS).unwrap();
        let query = STATEMENTS;
        // SAFETY: `sql` is a live C string; raw_parser returns a List of RawStmt in the
        // current memory context, which lives for the test.
        let parsed = unsafe { pg_sys::raw_parser(sql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT) };
        // SAFETY: that List of RawStmt pointers, which PgList only reads.
        let raw_statements = unsafe { PgList::<pg_sys::RawStmt>::from_pg(parsed) };
        let mut inert_tags = BTreeSet::new();
        let mut others = 0;
        for raw in raw_statements.iter_ptr() {
            // SAFETY: each element is a RawStmt of that List; its stmt is the statement's
            // parse node, non-NULL and alive for the test.
            let (node, location, len) = unsafe { ((*raw).stmt, (*raw).stmt_location, (*raw).stmt_len) };
            // SAFETY: `node` is that parse node, alive for the test.
            let statement = unsafe { crate::nodes::statement(node, query, location, len) };
            // SAFETY: hook.c's function takes NULL or a parse node and only reads its tag
            // and, for a VariableSetStmt, its name; it cannot raise.
            if unsafe { sm_is_inert_utility(node) } {
                assert!(
                    policy::is_inert(&statement.stmt),
                    "hook.c lets {:?} through, but the policy may decide something about it: {:?}",
                    statement.source.trim(),
                    statement.stmt
                );
                // SAFETY: `node` is a non-NULL parse node, which starts with its tag.
                inert_tags.insert(unsafe { (*node).type_ } as u32);
            } else {
                others += 1;
            }
        }
        // Every case of the switch in hook.c came up, and the rest were not waved through.
        assert_eq!(inert_tags.len(), 17, "{inert_tags:?}");
        // SET safe_migrations.mode is decided (policy_change), the other SETs are not.
        assert_eq!(others, 12);
    }
}
