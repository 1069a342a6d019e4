//! Migration tools' own bookkeeping tables (versions, locks, checksums). Only the tool
//! touches them, under its own advisory lock: what it does to them blocks no one else
//! (golang-migrate records every version with `TRUNCATE schema_migrations` + INSERT).

use crate::model::QualifiedName;

const TABLES: &[&str] = &[
    "schema_migrations",
    "schema_lock",
    "ar_internal_metadata",
    "goose_db_version",
    "flyway_schema_history",
    "schema_version",
    "_sqlx_migrations",
    "alembic_version",
    "django_migrations",
    "knex_migrations",
    "knex_migrations_lock",
    "pgmigrations",
    "_prisma_migrations",
    "__diesel_schema_migrations",
    "refinery_schema_history",
    "databasechangelog",
    "databasechangeloglock",
    "SequelizeMeta",
    "__EFMigrationsHistory",
    "doctrine_migration_versions",
    "mikro_orm_migrations",
    "phinxlog",
    "migrations",
    "_yoyo_migration",
    "_yoyo_log",
    "_yoyo_version",
    "yoyo_lock",
    "atlas_schema_revisions",
    "__drizzle_migrations",
    "kysely_migration",
    "kysely_migration_lock",
    "SequelizeData",
    // Django's contenttypes app renames a model's row in its migration's transaction
    // (RenameModel: UPDATE django_content_type SET model = ... WHERE id = ...).
    "django_content_type",
];

/// Schemas that hold only a tool's bookkeeping (sqitch's registry, graphile-migrate's).
const SCHEMAS: &[&str] = &["sqitch", "graphile_migrate"];

/// Is `table` one of the migration tools' own tables?
pub fn is_bookkeeping(table: &QualifiedName) -> bool {
    TABLES.contains(&table.name.as_str()) || table.schema.as_deref().is_some_and(|schema| SCHEMAS.contains(&schema))
}
