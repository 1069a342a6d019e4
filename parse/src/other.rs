//! Everything the model does not describe in detail: routines (DO, CREATE FUNCTION,
//! CALL), queries and session commands that change no schema, and `Stmt::Other` with
//! the command tag. Anything unrecognised is DDL: never assumed harmless.

use pg_query::protobuf::{ObjectType, RoleStmtType};
use pg_query::NodeEnum;
use policy::model::RoutineKind;
use policy::Stmt;

use super::Input;

pub fn other(node: &NodeEnum, input: &Input) -> Stmt {
    use NodeEnum::*;
    let ddl = |tag: &str| Stmt::Other {
        tag: tag.to_string(),
        ddl: true,
    };
    let not_ddl = |tag: &str| Stmt::Other {
        tag: tag.to_string(),
        ddl: false,
    };
    match node {
        DoStmt(_) => Stmt::Routine(RoutineKind::Do),
        CreateFunctionStmt(_) => Stmt::Routine(RoutineKind::CreateFunction),
        CallStmt(_) => Stmt::Routine(RoutineKind::Call),

        InsertStmt(_)
        | UpdateStmt(_)
        | DeleteStmt(_)
        | MergeStmt(_)
        | SelectStmt(_)
        | CopyStmt(_)
        | ExplainStmt(_)
        | VariableShowStmt(_)
        | PrepareStmt(_)
        | ExecuteStmt(_)
        | DeallocateStmt(_)
        | ListenStmt(_)
        | NotifyStmt(_)
        | UnlistenStmt(_)
        | DeclareCursorStmt(_)
        | FetchStmt(_)
        | ClosePortalStmt(_)
        | ConstraintsSetStmt(_)
        | CheckPointStmt(_) => Stmt::Query,

        LoadStmt(_) => not_ddl("LOAD"),
        AlterSystemStmt(_) => not_ddl("ALTER SYSTEM"),

        CreateSchemaStmt(_) => ddl("CREATE SCHEMA"),
        CreateSeqStmt(_) => ddl("CREATE SEQUENCE"),
        AlterSeqStmt(_) => ddl("ALTER SEQUENCE"),
        CreateExtensionStmt(_) => ddl("CREATE EXTENSION"),
        AlterExtensionStmt(_) | AlterExtensionContentsStmt(_) => ddl("ALTER EXTENSION"),
        CreateTrigStmt(trigger) if trigger.isconstraint => ddl("CREATE CONSTRAINT TRIGGER"),
        CreateTrigStmt(_) => ddl("CREATE TRIGGER"),
        CreateEventTrigStmt(_) => ddl("CREATE EVENT TRIGGER"),
        AlterEventTrigStmt(_) => ddl("ALTER EVENT TRIGGER"),
        CreatePolicyStmt(_) => ddl("CREATE POLICY"),
        AlterPolicyStmt(_) => ddl("ALTER POLICY"),
        RuleStmt(_) => ddl("CREATE RULE"),
        CompositeTypeStmt(_) | CreateEnumStmt(_) | CreateRangeStmt(_) => ddl("CREATE TYPE"),
        AlterEnumStmt(_) | AlterTypeStmt(_) => ddl("ALTER TYPE"),
        CreateDomainStmt(_) => ddl("CREATE DOMAIN"),
        AlterDomainStmt(_) => ddl("ALTER DOMAIN"),
        DefineStmt(define) => ddl(&format!("CREATE {}", object_type_name(define.kind()))),
        CommentStmt(_) => ddl("COMMENT"),
        SecLabelStmt(_) => ddl("SECURITY LABEL"),
        GrantStmt(grant) => ddl(if grant.is_grant { "GRANT" } else { "REVOKE" }),
        GrantRoleStmt(grant) => ddl(if grant.is_grant { "GRANT ROLE" } else { "REVOKE ROLE" }),
        AlterDefaultPrivilegesStmt(_) => ddl("ALTER DEFAULT PRIVILEGES"),
        AlterOwnerStmt(owner) => ddl(&format!("ALTER {}", object_type_name(owner.object_type()))),
        AlterObjectDependsStmt(depends) => ddl(&format!("ALTER {}", object_type_name(depends.object_type()))),
        AlterFunctionStmt(function) => ddl(&format!("ALTER {}", object_type_name(function.objtype()))),
        AlterOperatorStmt(_) => ddl("ALTER OPERATOR"),
        CreateOpClassStmt(_) => ddl("CREATE OPERATOR CLASS"),
        CreateOpFamilyStmt(_) => ddl("CREATE OPERATOR FAMILY"),
        AlterOpFamilyStmt(_) => ddl("ALTER OPERATOR FAMILY"),
        CreateStatsStmt(_) => ddl("CREATE STATISTICS"),
        AlterStatsStmt(_) => ddl("ALTER STATISTICS"),
        CreateCastStmt(_) => ddl("CREATE CAST"),
        CreateConversionStmt(_) => ddl("CREATE CONVERSION"),
        CreateTransformStmt(_) => ddl("CREATE TRANSFORM"),
        CreateAmStmt(_) => ddl("CREATE ACCESS METHOD"),
        CreatePlangStmt(_) => ddl("CREATE LANGUAGE"),
        AlterCollationStmt(_) => ddl("ALTER COLLATION"),
        AlterTsdictionaryStmt(_) => ddl("ALTER TEXT SEARCH DICTIONARY"),
        AlterTsconfigurationStmt(_) => ddl("ALTER TEXT SEARCH CONFIGURATION"),
        CreateForeignTableStmt(_) => ddl("CREATE FOREIGN TABLE"),
        CreateFdwStmt(_) => ddl("CREATE FOREIGN DATA WRAPPER"),
        AlterFdwStmt(_) => ddl("ALTER FOREIGN DATA WRAPPER"),
        CreateForeignServerStmt(_) => ddl("CREATE SERVER"),
        AlterForeignServerStmt(_) => ddl("ALTER SERVER"),
        CreateUserMappingStmt(_) => ddl("CREATE USER MAPPING"),
        AlterUserMappingStmt(_) => ddl("ALTER USER MAPPING"),
        DropUserMappingStmt(_) => ddl("DROP USER MAPPING"),
        ImportForeignSchemaStmt(_) => ddl("IMPORT FOREIGN SCHEMA"),
        CreateTableSpaceStmt(_) => ddl("CREATE TABLESPACE"),
        DropTableSpaceStmt(_) => ddl("DROP TABLESPACE"),
        AlterTableSpaceOptionsStmt(_) => ddl("ALTER TABLESPACE"),
        // ALTER TABLE ALL IN TABLESPACE ... SET TABLESPACE: moves (rewrites) every table.
        AlterTableMoveAllStmt(_) => ddl("ALTER TABLE"),
        CreatePublicationStmt(_) => ddl("CREATE PUBLICATION"),
        AlterPublicationStmt(_) => ddl("ALTER PUBLICATION"),
        CreateSubscriptionStmt(_) => ddl("CREATE SUBSCRIPTION"),
        AlterSubscriptionStmt(_) => ddl("ALTER SUBSCRIPTION"),
        DropSubscriptionStmt(_) => ddl("DROP SUBSCRIPTION"),
        CreateRoleStmt(role) => ddl(match role.stmt_type() {
            RoleStmtType::RolestmtUser => "CREATE USER",
            RoleStmtType::RolestmtGroup => "CREATE GROUP",
            _ => "CREATE ROLE",
        }),
        AlterRoleStmt(_) | AlterRoleSetStmt(_) => ddl("ALTER ROLE"),
        DropRoleStmt(_) => ddl("DROP ROLE"),
        DropOwnedStmt(_) => ddl("DROP OWNED"),
        ReassignOwnedStmt(_) => ddl("REASSIGN OWNED"),
        CreatedbStmt(_) => ddl("CREATE DATABASE"),
        AlterDatabaseStmt(_) | AlterDatabaseSetStmt(_) | AlterDatabaseRefreshCollStmt(_) => ddl("ALTER DATABASE"),
        DropdbStmt(_) => ddl("DROP DATABASE"),
        _ => ddl(&leading_keywords(input.source)),
    }
}

/// The first two words of a statement the tag table does not know, as its tag.
fn leading_keywords(source: &str) -> String {
    policy::sql::strip_leading_comments(source)
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase()
}

/// An object type as written in SQL (CREATE AGGREGATE, ALTER FUNCTION ...).
fn object_type_name(object_type: ObjectType) -> &'static str {
    match object_type {
        ObjectType::ObjectAccessMethod => "ACCESS METHOD",
        ObjectType::ObjectAggregate => "AGGREGATE",
        ObjectType::ObjectCollation => "COLLATION",
        ObjectType::ObjectConversion => "CONVERSION",
        ObjectType::ObjectDatabase => "DATABASE",
        ObjectType::ObjectDomain => "DOMAIN",
        ObjectType::ObjectEventTrigger => "EVENT TRIGGER",
        ObjectType::ObjectExtension => "EXTENSION",
        ObjectType::ObjectFdw => "FOREIGN DATA WRAPPER",
        ObjectType::ObjectForeignServer => "SERVER",
        ObjectType::ObjectForeignTable => "FOREIGN TABLE",
        ObjectType::ObjectFunction => "FUNCTION",
        ObjectType::ObjectIndex => "INDEX",
        ObjectType::ObjectLanguage => "LANGUAGE",
        ObjectType::ObjectLargeobject => "LARGE OBJECT",
        ObjectType::ObjectMatview => "MATERIALIZED VIEW",
        ObjectType::ObjectOpclass => "OPERATOR CLASS",
        ObjectType::ObjectOperator => "OPERATOR",
        ObjectType::ObjectOpfamily => "OPERATOR FAMILY",
        ObjectType::ObjectProcedure => "PROCEDURE",
        ObjectType::ObjectPublication => "PUBLICATION",
        ObjectType::ObjectRoutine => "ROUTINE",
        ObjectType::ObjectSchema => "SCHEMA",
        ObjectType::ObjectSequence => "SEQUENCE",
        ObjectType::ObjectSubscription => "SUBSCRIPTION",
        ObjectType::ObjectStatisticExt => "STATISTICS",
        ObjectType::ObjectTable => "TABLE",
        ObjectType::ObjectTablespace => "TABLESPACE",
        ObjectType::ObjectTsconfiguration => "TEXT SEARCH CONFIGURATION",
        ObjectType::ObjectTsdictionary => "TEXT SEARCH DICTIONARY",
        ObjectType::ObjectTsparser => "TEXT SEARCH PARSER",
        ObjectType::ObjectTstemplate => "TEXT SEARCH TEMPLATE",
        ObjectType::ObjectType => "TYPE",
        ObjectType::ObjectView => "VIEW",
        _ => "OBJECT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::stmt;

    fn ddl(tag: &str) -> Stmt {
        Stmt::Other {
            tag: tag.into(),
            ddl: true,
        }
    }

    #[test]
    fn routines() {
        assert_eq!(
            stmt("DO $$ BEGIN EXECUTE 'CREATE INDEX i ON t (c)'; END $$"),
            Stmt::Routine(RoutineKind::Do)
        );
        assert_eq!(
            stmt("CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"),
            Stmt::Routine(RoutineKind::CreateFunction)
        );
        assert_eq!(
            stmt("CREATE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$"),
            Stmt::Routine(RoutineKind::CreateFunction)
        );
        assert_eq!(stmt("CALL backfill(1000)"), Stmt::Routine(RoutineKind::Call));
    }

    #[test]
    fn queries_change_no_schema() {
        // INSERT, UPDATE, DELETE and MERGE are `Stmt::Dml` (dml.rs).
        for sql in [
            "SELECT pg_advisory_lock(72707369)",
            "COPY users FROM STDIN",
            "EXPLAIN SELECT 1",
            "SHOW lock_timeout",
            "PREPARE q AS SELECT 1",
            "EXECUTE q",
            "DEALLOCATE q",
            "LISTEN ch",
            "NOTIFY ch",
            "VALUES (1)",
            "WITH x AS (SELECT 1) SELECT * FROM x",
        ] {
            assert_eq!(stmt(sql), Stmt::Query, "{sql}");
        }
    }

    #[test]
    fn other_ddl_keeps_its_tag() {
        assert_eq!(stmt("CREATE EXTENSION IF NOT EXISTS pgcrypto"), ddl("CREATE EXTENSION"));
        assert_eq!(stmt("CREATE SCHEMA app"), ddl("CREATE SCHEMA"));
        assert_eq!(stmt("CREATE TYPE mood AS ENUM ('sad', 'ok')"), ddl("CREATE TYPE"));
        assert_eq!(stmt("ALTER TYPE mood ADD VALUE 'happy'"), ddl("ALTER TYPE"));
        assert_eq!(stmt("COMMENT ON TABLE t IS 'x'"), ddl("COMMENT"));
        assert_eq!(stmt("GRANT SELECT ON t TO app"), ddl("GRANT"));
        assert_eq!(stmt("REVOKE ALL ON t FROM app"), ddl("REVOKE"));
        assert_eq!(stmt("CREATE SEQUENCE s"), ddl("CREATE SEQUENCE"));
        assert_eq!(stmt("ALTER SEQUENCE s RESTART WITH 10"), ddl("ALTER SEQUENCE"));
        assert_eq!(
            stmt("CREATE TRIGGER t BEFORE UPDATE ON x FOR EACH ROW EXECUTE FUNCTION f()"),
            ddl("CREATE TRIGGER")
        );
        assert_eq!(
            stmt("CREATE AGGREGATE a (int) (sfunc = f, stype = int)"),
            ddl("CREATE AGGREGATE")
        );
        assert_eq!(stmt("ALTER FUNCTION f() OWNER TO app"), ddl("ALTER FUNCTION"));
        assert_eq!(stmt("CREATE POLICY p ON t USING (true)"), ddl("CREATE POLICY"));
        assert_eq!(stmt("CREATE USER app"), ddl("CREATE USER"));
    }

    #[test]
    fn session_commands_that_are_not_ddl() {
        // As the extension models them.
        assert_eq!(stmt("SET CONSTRAINTS ALL DEFERRED"), Stmt::Query);
        assert_eq!(stmt("CHECKPOINT"), Stmt::Query);
        assert_eq!(
            stmt("LOAD 'auto_explain'"),
            Stmt::Other {
                tag: "LOAD".into(),
                ddl: false
            }
        );
    }
}
