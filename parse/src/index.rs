//! CREATE INDEX and REINDEX. (DROP INDEX is in `drop`.)

use pg_query::protobuf::{self, ReindexObjectType};
use policy::model::{CreateIndex, Reindex, ReindexTarget};
use policy::{QualifiedName, Stmt};

use super::{names, options};

pub fn create_index(index: &protobuf::IndexStmt) -> Stmt {
    Stmt::CreateIndex(CreateIndex {
        name: (!index.idxname.is_empty()).then(|| index.idxname.clone()),
        table: names::range_var(index.relation.as_ref()),
        unique: index.unique,
        concurrently: index.concurrent,
        if_not_exists: index.if_not_exists,
        only: index.relation.as_ref().is_some_and(|relation| !relation.inh),
    })
}

pub fn reindex(reindex: &protobuf::ReindexStmt) -> Stmt {
    let target = match reindex.kind() {
        ReindexObjectType::ReindexObjectIndex => ReindexTarget::Index,
        ReindexObjectType::ReindexObjectTable => ReindexTarget::Table,
        ReindexObjectType::ReindexObjectSchema => ReindexTarget::Schema,
        ReindexObjectType::ReindexObjectSystem => ReindexTarget::System,
        ReindexObjectType::ReindexObjectDatabase | ReindexObjectType::Undefined => ReindexTarget::Database,
    };
    let name = match &reindex.relation {
        Some(relation) => Some(names::range_var(Some(relation))),
        None => (!reindex.name.is_empty()).then(|| QualifiedName::bare(&reindex.name)),
    };
    Stmt::Reindex(Reindex {
        target,
        name,
        concurrently: options::enabled(&reindex.params, "concurrently"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::stmt;

    #[test]
    fn create_index_flags() {
        assert_eq!(
            stmt(r#"CREATE INDEX "app_book_title_3c1a2b_idx" ON "app_book" ("title")"#),
            Stmt::CreateIndex(CreateIndex {
                name: Some("app_book_title_3c1a2b_idx".into()),
                table: QualifiedName::bare("app_book"),
                ..CreateIndex::default()
            })
        );
        assert_eq!(
            stmt(
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email ON public.users USING btree (lower(email))"
            ),
            Stmt::CreateIndex(CreateIndex {
                name: Some("users_email".into()),
                table: QualifiedName::new(Some("public"), "users"),
                unique: true,
                concurrently: true,
                if_not_exists: true,
                only: false,
            })
        );
    }

    #[test]
    fn create_index_on_only_and_without_a_name() {
        assert_eq!(
            stmt(r#"CREATE INDEX ON ONLY "Measurements" (ts)"#),
            Stmt::CreateIndex(CreateIndex {
                name: None,
                table: QualifiedName::bare("Measurements"),
                only: true,
                ..CreateIndex::default()
            })
        );
    }

    #[test]
    fn reindex_targets_and_concurrently() {
        assert_eq!(
            stmt("REINDEX INDEX CONCURRENTLY public.users_email"),
            Stmt::Reindex(Reindex {
                target: ReindexTarget::Index,
                name: Some(QualifiedName::new(Some("public"), "users_email")),
                concurrently: true,
            })
        );
        assert_eq!(
            stmt("REINDEX (VERBOSE) TABLE users"),
            Stmt::Reindex(Reindex {
                target: ReindexTarget::Table,
                name: Some(QualifiedName::bare("users")),
                concurrently: false,
            })
        );
        assert_eq!(
            stmt("REINDEX (CONCURRENTLY false) SCHEMA app"),
            Stmt::Reindex(Reindex {
                target: ReindexTarget::Schema,
                name: Some(QualifiedName::bare("app")),
                concurrently: false,
            })
        );
        assert_eq!(
            stmt("REINDEX DATABASE"),
            Stmt::Reindex(Reindex {
                target: ReindexTarget::Database,
                name: None,
                concurrently: false,
            })
        );
    }
}
