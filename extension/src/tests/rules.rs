//! Each rule through the hook: rejected in enforce, let through in warn and off, and
//! its safe form passing; the exemptions. Statements run nested (EXECUTE in plpgsql),
//! so CONCURRENTLY forms are checked with `safe_migrations.check`, as a client would
//! send them.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::harness::{assert_rejected, error_findings, mode, outcome, run, warnings_of};

    /// (rule, SQLSTATE, unsafe statement, safe statement run nested or "").
    const CASES: &[(&str, &str, &str, &str)] = &[
        ("create_index_non_concurrently", "SM001", "CREATE INDEX i ON fixture.orders (note)", ""),
        ("drop_index_non_concurrently", "SM001", "DROP INDEX fixture.orders_c", ""),
        ("reindex_non_concurrently", "SM001", "REINDEX INDEX fixture.orders_c", ""),
        (
            "detach_partition_non_concurrently",
            "SM001",
            "ALTER TABLE fixture.events DETACH PARTITION fixture.events_1",
            "",
        ),
        (
            "refresh_materialized_view_non_concurrently",
            "SM001",
            "REFRESH MATERIALIZED VIEW fixture.totals",
            "",
        ),
        (
            "concurrently_in_transaction",
            "25001",
            "CREATE INDEX CONCURRENTLY i ON fixture.orders (note)",
            "",
        ),
        (
            "add_foreign_key_validated",
            "SM001",
            "ALTER TABLE fixture.orders ADD CONSTRAINT orders_c_fk FOREIGN KEY (c) REFERENCES fixture.customers (id)",
            "ALTER TABLE fixture.orders ADD CONSTRAINT orders_c_fk FOREIGN KEY (c) REFERENCES fixture.customers (id) NOT VALID",
        ),
        (
            "add_check_constraint_validated",
            "SM001",
            "ALTER TABLE fixture.orders ADD CONSTRAINT c_positive CHECK (c > 0)",
            "ALTER TABLE fixture.orders ADD CONSTRAINT c_positive CHECK (c > 0) NOT VALID",
        ),
        (
            "set_not_null",
            "SM001",
            "ALTER TABLE fixture.orders ALTER COLUMN note SET NOT NULL",
            "ALTER TABLE fixture.orders ALTER COLUMN email SET NOT NULL",
        ),
        (
            "add_unique_constraint",
            "SM001",
            "ALTER TABLE fixture.orders ADD CONSTRAINT orders_c_key UNIQUE (c)",
            "ALTER TABLE fixture.u ADD CONSTRAINT u_id_key UNIQUE USING INDEX u_id",
        ),
        (
            "add_exclusion_constraint",
            "SM001",
            "ALTER TABLE fixture.orders ADD CONSTRAINT c_excl EXCLUDE USING btree (c WITH =)",
            "",
        ),
        (
            "add_column_volatile_default",
            "SM001",
            "ALTER TABLE fixture.orders ADD COLUMN token uuid DEFAULT gen_random_uuid()",
            "ALTER TABLE fixture.orders ADD COLUMN created timestamptz DEFAULT now()",
        ),
        (
            "add_column_rewrites_table",
            "SM001",
            "ALTER TABLE fixture.orders ADD COLUMN seq bigserial",
            "ALTER TABLE fixture.orders ADD COLUMN seq bigint",
        ),
        (
            "change_column_type",
            "SM001",
            "ALTER TABLE fixture.orders ALTER COLUMN c TYPE bigint",
            "ALTER TABLE fixture.orders ALTER COLUMN v TYPE varchar(100)",
        ),
        (
            "rewrite_table",
            "SM001",
            "CLUSTER fixture.orders USING orders_pkey",
            "ANALYZE fixture.orders",
        ),
        ("truncate", "SM001", "TRUNCATE fixture.orders", ""),
        (
            "json_column",
            "SM002",
            "ALTER TABLE fixture.orders ADD COLUMN data json",
            "ALTER TABLE fixture.orders ADD COLUMN data jsonb",
        ),
        (
            "rename_column",
            "SM002",
            "ALTER TABLE fixture.orders RENAME COLUMN note TO remark",
            "ALTER TABLE fixture.orders ADD COLUMN remark text",
        ),
        // rename_table is judged when the rename's transaction commits: see
        // rename_table_is_judged_when_its_transaction_commits.
        (
            "drop_column",
            "SM003",
            "ALTER TABLE fixture.orders DROP COLUMN note",
            "-- safe_migrations:allow drop_column -- note is unused since v2\nALTER TABLE fixture.orders DROP COLUMN note",
        ),
        (
            "drop_table",
            "SM003",
            "DROP TABLE fixture.customers",
            "/* safe_migrations:allow drop_table -- replaced by accounts */ DROP TABLE fixture.customers",
        ),
        (
            "add_column_required",
            "SM002",
            "ALTER TABLE fixture.orders ADD COLUMN region int NOT NULL",
            "ALTER TABLE fixture.orders ADD COLUMN region int NOT NULL DEFAULT 0",
        ),
    ];

    /// How the unsafe statement ends when the guard lets it through: it runs, unless
    /// Postgres itself refuses it in this setting.
    fn unguarded_outcome(rule: &str) -> &'static str {
        match rule {
            "concurrently_in_transaction" => "25001: CREATE INDEX CONCURRENTLY cannot run inside a transaction block",
            "add_column_required" => "23502: column \"region\" of relation \"orders\" contains null values",
            _ => "ok",
        }
    }

    #[pg_test]
    fn every_rule_is_rejected_in_enforce() {
        mode("enforce");
        for (rule, sqlstate, unsafe_sql, _) in CASES {
            assert_rejected(&outcome(unsafe_sql), sqlstate, rule);
        }
    }

    #[pg_test]
    fn every_rule_only_warns_in_warn() {
        mode("warn");
        for (rule, _, unsafe_sql, _) in CASES {
            let (result, warnings) = warnings_of(unsafe_sql);
            assert!(
                result.starts_with(unguarded_outcome(rule)),
                "{rule}: {unsafe_sql}: {result}"
            );
            // concurrently_in_transaction is Postgres' own error in warn mode, no warning.
            if *rule != "concurrently_in_transaction" {
                assert!(
                    warnings.iter().any(|warning| warning.starts_with(&format!("{rule}: "))),
                    "{rule}: {unsafe_sql}: no warning of the rule in {warnings:?}"
                );
            }
        }
    }

    /// A test runs inside one transaction that never commits: the rename runs, and what
    /// its commit would raise is asked of the commit callback's function directly.
    #[pg_test]
    fn rename_table_is_judged_when_its_transaction_commits() {
        mode("enforce");
        run("ALTER TABLE fixture.orders RENAME TO purchases");
        assert!(
            !crate::verdict::sm_transaction_committing().is_null(),
            "a rename without a view for the old name commits unrefused"
        );
        // With a view for the old name over all of the new one: nothing to raise.
        run("ALTER TABLE fixture.customers RENAME TO clients");
        run("CREATE VIEW fixture.customers AS SELECT * FROM fixture.clients");
        assert!(crate::verdict::sm_transaction_committing().is_null());
        // A view of some columns does not stand in.
        run("ALTER TABLE fixture.clients RENAME TO accounts");
        run("CREATE VIEW fixture.clients AS SELECT id FROM fixture.accounts");
        assert!(!crate::verdict::sm_transaction_committing().is_null());
    }

    #[pg_test]
    fn off_touches_nothing() {
        mode("off");
        for (rule, _, unsafe_sql, _) in CASES {
            let result = outcome(unsafe_sql);
            assert!(
                result.starts_with(unguarded_outcome(rule)),
                "{rule}: {unsafe_sql}: {result}"
            );
        }
    }

    #[pg_test]
    fn lock_table_is_a_warning_even_in_enforce() {
        mode("enforce");
        let (result, warnings) = warnings_of("LOCK TABLE fixture.orders IN SHARE MODE");
        assert_eq!(result, "ok");
        assert!(
            warnings.iter().any(|warning| warning.starts_with("lock_table: ")),
            "{warnings:?}"
        );
        let (result, warnings) = warnings_of("LOCK TABLE fixture.orders IN SHARE UPDATE EXCLUSIVE MODE");
        assert_eq!(result, "ok");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[pg_test]
    fn safe_forms_pass_in_enforce() {
        mode("enforce");
        for (rule, _, _, safe_sql) in CASES.iter().filter(|case| !case.3.is_empty()) {
            assert_eq!(outcome(safe_sql), "ok", "{rule}: {safe_sql}");
        }
    }

    #[pg_test]
    fn concurrently_forms_pass_as_a_client_sends_them() {
        mode("enforce");
        for safe in [
            "CREATE INDEX CONCURRENTLY i ON fixture.orders (note)",
            "CREATE UNIQUE INDEX CONCURRENTLY i ON fixture.orders (id)",
            "DROP INDEX CONCURRENTLY fixture.orders_c",
            "REINDEX INDEX CONCURRENTLY fixture.orders_c",
            "ALTER TABLE fixture.events DETACH PARTITION fixture.events_1 CONCURRENTLY",
            "REFRESH MATERIALIZED VIEW CONCURRENTLY fixture.totals",
        ] {
            assert_eq!(error_findings(safe), Vec::<String>::new(), "{safe}");
        }
        assert_eq!(
            error_findings("BEGIN; CREATE INDEX CONCURRENTLY i ON fixture.orders (note); COMMIT;"),
            vec!["concurrently_in_transaction".to_string()]
        );
    }

    #[pg_test]
    fn index_on_a_table_created_in_the_same_transaction_passes() {
        mode("enforce");
        run("CREATE TABLE fixture.fresh (id int, c int)");
        run("CREATE INDEX fresh_c ON fixture.fresh (c)");
        run("ALTER TABLE fixture.fresh ADD CONSTRAINT fresh_pk PRIMARY KEY (id)");
    }

    #[pg_test]
    fn set_not_null_after_a_validated_check_passes() {
        mode("enforce");
        assert_eq!(
            outcome("ALTER TABLE fixture.orders ALTER COLUMN email SET NOT NULL"),
            "ok"
        );
        let unvalidated = "ALTER TABLE fixture.orders ADD CONSTRAINT note_present CHECK (note IS NOT NULL) NOT VALID; \
                           ALTER TABLE fixture.orders ALTER COLUMN note SET NOT NULL";
        assert_rejected(&outcome(unvalidated), "SM001", "set_not_null");
    }

    #[pg_test]
    fn widening_varchar_passes_narrowing_does_not() {
        mode("enforce");
        assert_eq!(
            outcome("ALTER TABLE fixture.orders ALTER COLUMN v TYPE varchar(100)"),
            "ok"
        );
        assert_eq!(outcome("ALTER TABLE fixture.orders ALTER COLUMN v TYPE text"), "ok");
        assert_rejected(
            &outcome("ALTER TABLE fixture.orders ALTER COLUMN v TYPE varchar(20)"),
            "SM001",
            "change_column_type",
        );
    }

    #[pg_test]
    fn real_migration_flows_pass() {
        mode("enforce");
        for flow in [
            // VALIDATE belongs in a transaction of its own (a pg_test is one transaction):
            // `validating_in_the_adding_transaction_is_refused`.
            "ALTER TABLE fixture.orders ADD CONSTRAINT orders_c_fk FOREIGN KEY (c) REFERENCES fixture.customers (id) NOT VALID",
            "ALTER TABLE fixture.orders ADD COLUMN discount numeric(10,2)",
            "CREATE TABLE fixture.items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
             order_id int NOT NULL REFERENCES fixture.orders (id), sku text UNIQUE); \
             CREATE INDEX items_order_id ON fixture.items (order_id)",
            "LOCK TABLE fixture.orders IN SHARE UPDATE EXCLUSIVE MODE",
        ] {
            assert_eq!(outcome(flow), "ok", "{flow}");
        }
    }

    #[pg_test]
    fn validating_in_the_adding_transaction_is_refused() {
        mode("enforce");
        let add = "ALTER TABLE fixture.orders ADD CONSTRAINT orders_c_fk FOREIGN KEY (c) REFERENCES fixture.customers (id) NOT VALID";
        run(add);
        assert_rejected(
            &outcome("ALTER TABLE fixture.orders VALIDATE CONSTRAINT orders_c_fk"),
            "SM001",
            "add_foreign_key_validated",
        );
    }

    #[pg_test]
    fn a_backfill_under_the_transaction_s_ddl_lock_is_refused() {
        mode("enforce");
        let add = "ALTER TABLE fixture.orders ADD COLUMN discount numeric(10,2)";
        // Rolled back with its subtransaction (`outcome` runs each statement in one), the
        // schema change released its lock: the UPDATE after it is no backfill under it.
        assert_eq!(outcome(add), "ok");
        assert_eq!(outcome("UPDATE fixture.orders SET c = c + 1"), "ok");
        // Run for good, its lock stays until the transaction ends.
        run(add);
        assert_rejected(
            &outcome("UPDATE fixture.orders SET c = c + 1"),
            "SM001",
            "backfill_in_ddl_transaction",
        );
        // Rows the statement carries are no backfill (the fixture's own constraints decide).
        let insert = outcome("INSERT INTO fixture.orders (id, c) VALUES (100000, 1)");
        assert!(!insert.starts_with("SM"), "{insert}");
    }

    #[pg_test]
    fn check_reads_the_planner_s_estimate_of_an_unbatched_backfill() {
        // A table of the fixture's (one created in this test's transaction would be new).
        run("INSERT INTO fixture.u SELECT g FROM generate_series(2, 5000) g; ANALYZE fixture.u");
        run("SET LOCAL safe_migrations.max_rows_per_statement = 1000");
        assert_eq!(error_findings("UPDATE fixture.u SET id = id"), ["unbatched_backfill"]);
        assert!(error_findings("UPDATE fixture.u SET id = id WHERE id <= 500").is_empty());
        // A table the checked string does not find here: no estimate, no error.
        assert!(error_findings("DELETE FROM fixture.nowhere").is_empty());
        // Nothing of the planning stays: a table this transaction did not touch is not
        // locked by it after check() planned a statement on it.
        // (Analyzed: a table never analyzed is planned as ten pages of rows.)
        run("ANALYZE fixture.customers");
        assert!(error_findings("UPDATE fixture.customers SET id = id").is_empty());
        let locked: i64 = Spi::get_one(
            "SELECT count(*) FROM pg_locks WHERE relation = 'fixture.customers'::regclass \
             AND pid = pg_backend_pid() AND mode = 'RowExclusiveLock'",
        )
        .unwrap()
        .unwrap();
        assert_eq!(locked, 0);
    }

    #[pg_test]
    fn an_event_trigger_s_queries_are_not_the_client_s() {
        // A DDL audit trigger that writes with INSERT ... SELECT at every DDL statement:
        // its write is PostgreSQL's work for the DDL, not a backfill of the client's.
        run(
            "CREATE FUNCTION fixture.audit_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ \
             BEGIN INSERT INTO fixture.u SELECT coalesce(max(id), 0) + 1 FROM fixture.u; END $$",
        );
        run("CREATE EVENT TRIGGER audit_ddl ON ddl_command_end EXECUTE FUNCTION fixture.audit_ddl()");
        mode("enforce");
        run("ALTER TABLE fixture.orders ADD COLUMN discount numeric(10,2)");
        assert_eq!(
            outcome("ALTER TABLE fixture.orders ADD COLUMN rebate numeric(10,2)"),
            "ok"
        );
        // The client's own INSERT ... SELECT under that lock is a backfill.
        assert_rejected(
            &outcome("INSERT INTO fixture.u SELECT max(id) + 1 FROM fixture.u"),
            "SM001",
            "backfill_in_ddl_transaction",
        );
    }

    #[pg_test]
    fn acknowledgement_needs_a_reason_and_the_setting() {
        mode("enforce");
        let with_reason =
            "-- safe_migrations:allow drop_column -- unused since v2\nALTER TABLE fixture.orders DROP COLUMN note";
        assert_eq!(outcome(with_reason), "ok");
        let without_reason = "-- safe_migrations:allow drop_column\nALTER TABLE fixture.orders DROP COLUMN note";
        assert_rejected(&outcome(without_reason), "SM003", "drop_column");
        run("SET LOCAL safe_migrations.acknowledgements = off");
        assert_rejected(&outcome(with_reason), "SM003", "drop_column");
    }

    #[pg_test]
    fn allowed_rules_are_not_enforced() {
        mode("enforce");
        run("SET LOCAL safe_migrations.allow = 'rename_column, create_index_non_concurrently'");
        assert_eq!(outcome("ALTER TABLE fixture.orders RENAME COLUMN note TO remark"), "ok");
        assert_eq!(outcome("CREATE INDEX i ON fixture.orders (note)"), "ok");
        assert_rejected(&outcome("TRUNCATE fixture.orders"), "SM001", "truncate");
    }

    #[pg_test]
    fn rejection_carries_lock_detail_and_safe_hint() {
        mode("enforce");
        let result = outcome("CREATE INDEX i ON fixture.orders (note)");
        assert_eq!(
            result,
            "SM001: create_index_non_concurrently: CREATE INDEX i on fixture.orders without CONCURRENTLY blocks \
             writes while the index builds | Lock: SHARE on fixture.orders, blocks writes. CREATE INDEX holds this \
             lock for the whole build, and every INSERT, UPDATE and DELETE on fixture.orders waits behind it. | \
             Build the index without blocking writes, outside a transaction block:\n    \
             CREATE INDEX CONCURRENTLY i ON fixture.orders (note);\n\
             Rule reference: docs/rules/create_index_non_concurrently.md"
        );
    }

    #[pg_test]
    fn several_problems_in_one_statement_are_all_found() {
        let rules: Vec<String> = Spi::connect(|client| {
            client
                .select(
                    "SELECT rule FROM safe_migrations.check('ALTER TABLE fixture.orders ADD COLUMN data json, \
                     DROP COLUMN note')",
                    None,
                    &[],
                )
                .unwrap()
                .map(|row| row.get::<String>(1).unwrap().unwrap_or_default())
                .collect()
        });
        assert!(rules.contains(&"json_column".to_string()), "{rules:?}");
        assert!(rules.contains(&"drop_column".to_string()), "{rules:?}");
    }
}
