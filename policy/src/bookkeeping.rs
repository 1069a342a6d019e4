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
];

/// Is `table` one of the migration tools' own tables?
pub fn is_bookkeeping(table: &QualifiedName) -> bool {
    TABLES.contains(&table.name.as_str())
}
