//! A guarded role cannot get around the guard: not by turning the GUCs off (SET, SET
//! LOCAL, RESET, set_config, ALTER ROLE itself; RESET ALL, DISCARD ALL, PGOPTIONS and
//! ALTER DATABASE need a login role and are in tests/e2e.sh), nor by running DDL from DO blocks,
//! EXECUTE, SQL and plpgsql functions, SECURITY DEFINER functions, procedures, another
//! role, several statements in one string, or prepared plans.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::harness::{assert_rejected, mode, outcome, run};

    const UNSAFE_INDEX: &str = "CREATE INDEX i ON fixture.orders (note)";

    /// The session is guarded (as ALTER ROLE ... SET would make it) and runs as sm_guarded.
    fn as_guarded_role() {
        mode("enforce");
        run("SET LOCAL ROLE sm_guarded");
    }

    #[pg_test]
    fn guarded_role_cannot_turn_the_guard_off() {
        as_guarded_role();
        for attempt in [
            "SET safe_migrations.mode = off",
            "SET LOCAL safe_migrations.mode = off",
            "RESET safe_migrations.mode",
            "SELECT set_config('safe_migrations.mode', 'off', false)",
            "SELECT set_config('safe_migrations.mode', 'off', true)",
            "SET safe_migrations.allow = 'create_index_non_concurrently'",
            "SET safe_migrations.lock_timeout = 0",
            "SET safe_migrations.acknowledgements = on",
            "ALTER ROLE sm_guarded SET safe_migrations.mode = off",
            "ALTER ROLE CURRENT_USER SET safe_migrations.mode = off",
        ] {
            let result = outcome(attempt);
            // The hook sees SET, RESET and ALTER ROLE (rule policy_change refuses them
            // first); set_config is a function call, refused by PostgreSQL itself.
            let expected = if attempt.contains("set_config") {
                "42501: permission denied"
            } else {
                "42501: policy_change: a guarded role cannot change its safe_migrations settings"
            };
            assert!(result.starts_with(expected), "{attempt}: {result}");
        }
        assert_eq!(
            Spi::get_one::<String>("SHOW safe_migrations.mode").unwrap().unwrap(),
            "enforce"
        );
        assert_rejected(&outcome(UNSAFE_INDEX), "SM001", "create_index_non_concurrently");
    }

    #[pg_test]
    fn do_block_with_execute_is_guarded() {
        as_guarded_role();
        let sql = "DO $$ BEGIN EXECUTE 'CREATE INDEX i ON fixture.orders (note)'; END $$";
        assert_rejected(&outcome(sql), "SM001", "create_index_non_concurrently");
        let sql = "DO $$ BEGIN CREATE INDEX i ON fixture.orders (note); END $$";
        assert_rejected(&outcome(sql), "SM001", "create_index_non_concurrently");
    }

    #[pg_test]
    fn sql_and_plpgsql_functions_are_guarded() {
        as_guarded_role();
        run("CREATE FUNCTION fixture.sql_ddl() RETURNS void LANGUAGE sql AS 'CREATE INDEX i ON fixture.orders (note)'");
        assert_rejected(
            &outcome("SELECT fixture.sql_ddl()"),
            "SM001",
            "create_index_non_concurrently",
        );
        run(
            "CREATE FUNCTION fixture.plpgsql_ddl() RETURNS void LANGUAGE plpgsql AS \
             $$ BEGIN CREATE INDEX i ON fixture.orders (note); END $$",
        );
        assert_rejected(
            &outcome("SELECT fixture.plpgsql_ddl()"),
            "SM001",
            "create_index_non_concurrently",
        );
    }

    #[pg_test]
    fn security_definer_function_owned_by_a_superuser_is_guarded() {
        mode("enforce");
        // Created by the test's superuser, so it runs with superuser rights.
        run(
            "CREATE FUNCTION fixture.definer_ddl() RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS \
             $$ BEGIN CREATE INDEX i ON fixture.orders (note); END $$",
        );
        run("SET LOCAL ROLE sm_guarded");
        assert_rejected(
            &outcome("SELECT fixture.definer_ddl()"),
            "SM001",
            "create_index_non_concurrently",
        );
    }

    #[pg_test]
    fn procedure_is_guarded() {
        as_guarded_role();
        run("CREATE PROCEDURE fixture.migrate() LANGUAGE plpgsql AS \
             $$ BEGIN CREATE INDEX i ON fixture.orders (note); COMMIT; END $$");
        assert_rejected(
            &outcome("CALL fixture.migrate()"),
            "SM001",
            "create_index_non_concurrently",
        );
    }

    #[pg_test]
    fn set_role_to_an_unguarded_role_keeps_the_guard() {
        as_guarded_role();
        run("RESET ROLE");
        run("ALTER ROLE sm_unguarded SET safe_migrations.mode = off");
        run("SET LOCAL ROLE sm_unguarded");
        assert_rejected(&outcome(UNSAFE_INDEX), "SM001", "create_index_non_concurrently");
    }

    #[pg_test]
    fn multi_statement_strings_are_guarded_statement_by_statement() {
        as_guarded_role();
        let sql = "SELECT 1; ALTER TABLE fixture.orders ADD COLUMN ok int; CREATE INDEX i ON fixture.orders (note)";
        assert_rejected(&outcome(sql), "SM001", "create_index_non_concurrently");
    }

    #[pg_test]
    fn prepared_plans_are_guarded() {
        as_guarded_role();
        // plpgsql runs static SQL through cached, prepared plans; EXECUTE ... USING too.
        run(
            "CREATE FUNCTION fixture.prepared_ddl(n int) RETURNS void LANGUAGE plpgsql AS \
             $$ BEGIN EXECUTE 'CREATE INDEX i ON fixture.orders (note) WHERE c > ' || n; END $$",
        );
        assert_rejected(
            &outcome("SELECT fixture.prepared_ddl(1)"),
            "SM001",
            "create_index_non_concurrently",
        );
        let prepared = Spi::connect(|client| {
            let plan = client.prepare(UNSAFE_INDEX, &[]).map(|plan| plan.keep());
            plan.is_ok()
        });
        assert!(prepared);
    }
}
