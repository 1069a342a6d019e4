//! The GUCs: bad values refused with the accepted ones named; the policy() view; the
//! lock_timeout cap applied while a statement runs and restored after it.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::harness::{mode, outcome, run};

    #[pg_test]
    fn bad_values_are_refused_naming_what_is_accepted() {
        assert_eq!(
            outcome("SET safe_migrations.mode = 'strict'"),
            "22023: invalid value for parameter \"safe_migrations.mode\": \"strict\" |  | \
             Available values: off, warn, enforce."
        );
        let allow = outcome("SET safe_migrations.allow = 'drop_colum'");
        assert!(
            allow.starts_with(
                "22023: invalid value for parameter \"safe_migrations.allow\": \"drop_colum\" | \
                 unknown rule \"drop_colum\"; the rules are create_index_non_concurrently, "
            ),
            "{allow}"
        );
        let lock_timeout = outcome("SET safe_migrations.lock_timeout = '3 parsecs'");
        assert!(
            lock_timeout.contains("Valid units for this parameter are"),
            "{lock_timeout}"
        );
        assert!(outcome("SET safe_migrations.min_table_rows = -1").starts_with("22023: -1 is outside the valid range"));
        assert!(outcome("SET safe_migrations.unparsable = 'maybe'").contains("Available values: reject, allow."));
        assert!(outcome("SET safe_migrations.acknowledgements = 'perhaps'")
            .starts_with("22023: parameter \"safe_migrations.acknowledgements\" requires a Boolean value"));
        assert!(outcome("SET safe_migrations.typo = 1").starts_with("42602: invalid configuration parameter name"));
    }

    #[pg_test]
    fn policy_shows_the_effective_settings() {
        mode("warn");
        run("SET LOCAL safe_migrations.lock_timeout = '3s'");
        run("SET LOCAL safe_migrations.allow = 'rename_column,drop_column'");
        let rows: Vec<(String, String)> = Spi::connect(|client| {
            client
                .select("SELECT setting, value FROM safe_migrations.policy()", None, &[])
                .unwrap()
                .map(|row| {
                    (
                        row.get::<String>(1).unwrap().unwrap(),
                        row.get::<String>(2).unwrap().unwrap(),
                    )
                })
                .collect()
        });
        let expected: Vec<(String, String)> = [
            ("safe_migrations.mode", "warn"),
            ("safe_migrations.lock_timeout", "3s"),
            ("safe_migrations.allow", "drop_column,rename_column"),
            ("safe_migrations.acknowledgements", "on"),
            ("safe_migrations.min_table_rows", "0"),
            ("safe_migrations.unparsable", "reject"),
            ("safe_migrations.max_rows_per_statement", "50000"),
            ("safe_migrations.max_lock_hold", "10s"),
            ("safe_migrations.lock_retries", "3"),
            ("safe_migrations.lock_retry_delay", "1s"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(rows, expected);
    }

    #[pg_test]
    fn guard_is_active_when_preloaded() {
        assert_eq!(
            Spi::get_one::<bool>("SELECT safe_migrations.guard_active()").unwrap(),
            Some(true)
        );
    }

    #[pg_test]
    fn ddl_runs_under_the_cap_and_lock_timeout_is_restored() {
        mode("enforce");
        run("SET LOCAL safe_migrations.lock_timeout = '3s'");
        run("SET LOCAL safe_migrations.allow = 'add_column_volatile_default'");
        run("SET LOCAL lock_timeout = 0");
        run(
            "CREATE FUNCTION fixture.seen_lock_timeout() RETURNS text VOLATILE LANGUAGE sql AS \
             $$ SELECT current_setting('lock_timeout') $$",
        );
        run("ALTER TABLE fixture.orders ADD COLUMN seen text DEFAULT fixture.seen_lock_timeout()");
        assert_eq!(
            Spi::get_one::<String>("SELECT seen FROM fixture.orders LIMIT 1")
                .unwrap()
                .as_deref(),
            Some("3s")
        );
        assert_eq!(
            Spi::get_one::<String>("SHOW lock_timeout").unwrap().as_deref(),
            Some("0")
        );
        run("SET LOCAL lock_timeout = '1s'");
        run("ALTER TABLE fixture.orders ADD COLUMN seen_again text DEFAULT fixture.seen_lock_timeout()");
        assert_eq!(
            Spi::get_one::<String>("SELECT seen_again FROM fixture.orders LIMIT 1")
                .unwrap()
                .as_deref(),
            Some("1s")
        );
        assert_eq!(
            Spi::get_one::<String>("SHOW lock_timeout").unwrap().as_deref(),
            Some("1s")
        );
    }

    #[pg_test]
    fn check_reports_findings_without_running_the_statement() {
        let rows: Vec<(String, String, Option<String>)> = Spi::connect(|client| {
            client
                .select(
                    "SELECT rule, severity, lock FROM safe_migrations.check('CREATE INDEX i ON fixture.orders (note)')",
                    None,
                    &[],
                )
                .unwrap()
                .map(|row| {
                    (
                        row.get::<String>(1).unwrap().unwrap(),
                        row.get::<String>(2).unwrap().unwrap(),
                        row.get::<String>(3).unwrap(),
                    )
                })
                .collect()
        });
        assert_eq!(
            rows,
            vec![(
                "create_index_non_concurrently".to_string(),
                "error".to_string(),
                Some("SHARE on fixture.orders, blocks writes".to_string())
            )]
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM pg_indexes WHERE indexname = 'i'").unwrap(),
            Some(0)
        );
    }
}
