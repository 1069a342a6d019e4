//! Errors raised by statements the guard lets through keep every field, exactly as
//! without the extension.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::harness::{error_fields, mode};

    #[pg_test]
    fn unique_violation_in_a_do_block_keeps_every_field() {
        let sql = "DO $$ BEGIN INSERT INTO fixture.u VALUES (1); END $$";
        mode("off");
        let unguarded = error_fields(sql);
        mode("enforce");
        let guarded = error_fields(sql);
        assert_eq!(guarded, unguarded);
        assert_eq!(
            guarded,
            "23505\nduplicate key value violates unique constraint \"u_id\"\n\
             SQL statement \"INSERT INTO fixture.u VALUES (1)\"\n\
             PL/pgSQL function inline_code_block line 1 at SQL statement\n\
             SQL statement \"DO $$ BEGIN INSERT INTO fixture.u VALUES (1); END $$\"\n\
             PL/pgSQL function fixture.error_fields(text) line 5 at EXECUTE\n\
             SQL statement \"SELECT fixture.error_fields($1)\"\n\
             fixture\nu\nu_id"
        );
    }

    #[pg_test]
    fn ddl_errors_under_the_lock_timeout_cap_keep_their_fields() {
        let sql = "ALTER TABLE fixture.orders ADD CONSTRAINT email_present CHECK (email <> '') NOT VALID";
        mode("off");
        let unguarded = error_fields(sql);
        mode("enforce");
        assert_eq!(error_fields(sql), unguarded);
        assert!(unguarded.starts_with("42710\nconstraint \"email_present\" for relation \"orders\" already exists"));
    }
}
