//! `policy::Catalog` answered from the backend's own caches (relcache, syscache,
//! namespace lookups), no lock taken on user relations. The questions whose answer takes
//! PostgreSQL's own reasoning over several catalogs (pg_cast through domains, operator
//! classes and dependencies of an ALTER COLUMN TYPE) run the same read-only query the
//! proxy runs (`policy::catalog_queries`) through SPI. Anything that does not resolve is
//! unknown.

use std::cell::RefCell;
use std::ffi::{c_char, CStr};

use pgrx::pg_sys;
use pgrx::{PgList, PgMemoryContexts, Spi};
use policy::catalog::is_not_null_check;
use policy::catalog::{ColumnDependents, ColumnTypeChange};
use policy::catalog_queries::{self, Rows};
use policy::types::Coercion;
use policy::{Catalog, QualifiedName, Statement, TypeName, Volatility};

/// InvalidSubTransactionId: rd_createSubid of a relation not created in this transaction.
const INVALID_SUBTRANSACTION_ID: pg_sys::SubTransactionId = 0;

/// The catalog of the database this backend is connected to, as this session sees it.
#[derive(Debug, Default)]
pub struct BackendCatalog {
    /// The estimate of rows changed in the plan the executor is about to run, when the
    /// question is about that statement.
    pub rows_changed: Option<f64>,
    /// `created_in_transaction`'s answers for the statement being judged: the rules and
    /// the transaction model ask it of the same tables (a relcache lookup each).
    pub created: RefCell<Vec<(QualifiedName, Option<bool>)>>,
}

/// A copy of `text` in the current memory context, for the C APIs that take `char *`.
fn palloc_cstring(text: &str) -> *mut c_char {
    // SAFETY: CurrentMemoryContext is always a valid context inside a backend, and the copy
    // lives as long as it (at least the statement). Interior NULs cannot be passed to C,
    // and a name containing one cannot exist in the catalog anyway.
    unsafe { PgMemoryContexts::CurrentMemoryContext.pstrdup(&text.replace('\0', "")) }
}

fn text(ptr: *const c_char) -> Option<String> {
    // SAFETY: callers pass NULL or a NUL-terminated string Postgres just returned
    // (palloc'd, or a GUC's current value), read only when non-NULL and copied at once.
    (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned())
}

/// The type `type_name` names (schema-qualified or by the search path), if it exists.
fn type_oid(type_name: &TypeName) -> Option<pg_sys::Oid> {
    // SAFETY: the TypeName node is built from palloc'd copies of the names (nothing is
    // parsed, so nothing can raise); LookupTypeNameOid takes a NULL ParseState and with
    // missing_ok returns InvalidOid for a type or schema that does not exist.
    let oid = unsafe {
        let mut names = PgList::<pg_sys::String>::new();
        if let Some(schema) = &type_name.schema {
            names.push(pg_sys::makeString(palloc_cstring(schema)));
        }
        names.push(pg_sys::makeString(palloc_cstring(&type_name.name)));
        let node = pg_sys::makeTypeNameFromNameList(names.into_pg());
        pg_sys::LookupTypeNameOid(std::ptr::null_mut(), node, true)
    };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// The relation `table` names under the current search_path, without taking a lock.
fn relation_oid(table: &QualifiedName) -> Option<pg_sys::Oid> {
    // SAFETY: the names are palloc'd copies (NULL schema: search_path), which makeRangeVar
    // stores without copying and which outlive the lookup. With NoLock, RVR_MISSING_OK and
    // no callback, RangeVarGetRelidExtended only reads the catalog and returns InvalidOid
    // instead of raising for a missing schema or relation.
    let oid = unsafe {
        let schema = table.schema.as_deref().map_or(std::ptr::null_mut(), palloc_cstring);
        let range_var = pg_sys::makeRangeVar(schema, palloc_cstring(&table.name), -1);
        pg_sys::RangeVarGetRelidExtended(
            range_var,
            pg_sys::NoLock as pg_sys::LOCKMODE,
            pg_sys::RVROption::RVR_MISSING_OK,
            None,
            std::ptr::null_mut(),
        )
    };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// Run `read` on the relcache entry of `relid`, if it exists.
fn with_relation<T>(relid: pg_sys::Oid, read: impl FnOnce(&pg_sys::RelationData) -> T) -> Option<T> {
    // SAFETY: RelationIdGetRelation takes any OID and returns a pinned entry or NULL. The
    // `&RelationData` handed to `read` cannot outlive the call (it is not 'static and `T`
    // cannot borrow it), so it is used only while the entry is pinned; RelationClose unpins
    // it afterwards. (Should `read` panic, the statement aborts and its resource owner
    // drops the pin; nothing dangles.)
    unsafe {
        let relation = pg_sys::RelationIdGetRelation(relid);
        if relation.is_null() {
            return None;
        }
        let result = read(&*relation);
        pg_sys::RelationClose(relation);
        Some(result)
    }
}

/// The rows of a read-only catalog query whose columns are all text; None if it failed.
pub(crate) fn query_rows(sql: &str) -> Option<Rows> {
    // SPI nests inside the utility hook (and inside functions already using SPI); the
    // queries read pg_catalog only and return text columns, so every `get` is of text.
    Spi::connect(|client| {
        let table = client.select(sql, None, &[]).ok()?;
        let mut rows = Vec::new();
        for row in table {
            let values: Option<Vec<Option<String>>> = (1..=row.columns())
                .map(|column| row.get::<String>(column).ok())
                .collect();
            rows.push(values?);
        }
        Some(rows)
    })
}

impl Catalog for BackendCatalog {
    fn coercion(&self, from: &TypeName, to: &TypeName) -> Option<Coercion> {
        let rows = query_rows(&catalog_queries::coercion_sql(from, to))?;
        catalog_queries::coercion_from_rows(from, to, &rows)
    }

    fn type_change_dependents(&self, change: &ColumnTypeChange) -> Option<ColumnDependents> {
        let rows = query_rows(&catalog_queries::dependents_sql(change))?;
        catalog_queries::dependents_from_rows(&rows)
    }

    fn created_in_transaction(&self, table: &QualifiedName) -> Option<bool> {
        if let Some((_, answer)) = self.created.borrow().iter().find(|(known, _)| known == table) {
            return *answer;
        }
        let answer = relation_oid(table)
            .and_then(|relid| with_relation(relid, |relation| relation.rd_createSubid != INVALID_SUBTRANSACTION_ID));
        self.created.borrow_mut().push((table.clone(), answer));
        answer
    }

    fn column_type(&self, table: &QualifiedName, column: &str) -> Option<TypeName> {
        let relid = relation_oid(table)?;
        // SAFETY: SearchSysCacheAttName takes any relid and a palloc'd name, and returns a
        // pinned pg_attribute tuple or NULL; its struct is read (two fields copied out)
        // before ReleaseSysCache, and the reference does not escape the block.
        let (type_oid, typmod) = unsafe {
            let tuple = pg_sys::SearchSysCacheAttName(relid, palloc_cstring(column));
            if tuple.is_null() {
                return None;
            }
            let attribute = &*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_attribute>(tuple);
            let found = (attribute.atttypid, attribute.atttypmod);
            pg_sys::ReleaseSysCache(tuple);
            found
        };
        // SAFETY: get_element_type is a syscache lookup that takes any OID (InvalidOid when
        // not an array type).
        let element = unsafe { pg_sys::get_element_type(type_oid) };
        let (base, array) = if element == pg_sys::InvalidOid {
            (type_oid, false)
        } else {
            (element, true)
        };
        // SAFETY: SearchSysCache1(TYPEOID) takes any OID and returns a pinned pg_type tuple
        // or NULL; its name (copied into a String) and namespace are read before
        // ReleaseSysCache, and the reference does not escape the block.
        let (name, namespace) = unsafe {
            let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::TYPEOID as i32, pg_sys::Datum::from(base));
            if tuple.is_null() {
                return None;
            }
            let form = &*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_type>(tuple);
            let found = (pg_sys::name_data_to_str(&form.typname).to_string(), form.typnamespace);
            pg_sys::ReleaseSysCache(tuple);
            found
        };
        // SAFETY: get_namespace_name takes any OID and returns a palloc'd copy or NULL.
        let schema = text(unsafe { pg_sys::get_namespace_name(namespace) });
        Some(TypeName::from_catalog(schema.as_deref(), &name, typmod, array))
    }

    fn function_volatility(&self, name: &QualifiedName) -> Option<Volatility> {
        // SAFETY: makeString wraps palloc'd copies of the names in String nodes, which the
        // List holds. FuncnameGetCandidates with missing_ok returns a palloc'd linked list
        // of candidates (NULL when nothing matches) that is only walked through `next`;
        // each candidate's oid names an existing function, which func_volatile reads
        // through the syscache.
        unsafe {
            let mut names = PgList::<pg_sys::String>::new();
            if let Some(schema) = &name.schema {
                names.push(pg_sys::makeString(palloc_cstring(schema)));
            }
            names.push(pg_sys::makeString(palloc_cstring(&name.name)));
            #[cfg(feature = "pg13")]
            let mut candidate =
                pg_sys::FuncnameGetCandidates(names.into_pg(), -1, std::ptr::null_mut(), false, false, true);
            #[cfg(not(feature = "pg13"))]
            let mut candidate =
                pg_sys::FuncnameGetCandidates(names.into_pg(), -1, std::ptr::null_mut(), false, false, false, true);
            let mut most_volatile: Option<Volatility> = None;
            while !candidate.is_null() {
                let code = pg_sys::func_volatile((*candidate).oid) as u8 as char;
                if let Some(volatility) = Volatility::from_provolatile(code) {
                    most_volatile = Some(most_volatile.map_or(volatility, |seen| more_volatile(seen, volatility)));
                }
                candidate = (*candidate).next;
            }
            most_volatile
        }
    }

    fn has_validated_not_null_check(&self, table: &QualifiedName, column: &str) -> Option<bool> {
        let relid = relation_oid(table)?;
        // SAFETY: hook.c returns NIL or a new List whose elements are palloc'd C strings
        // (pg_get_constraintdef results), which PgList only reads.
        let definitions = unsafe { PgList::<c_char>::from_pg(crate::shim::validated_check_definitions(relid)) };
        let found = definitions
            .iter_ptr()
            .filter_map(|definition| text(definition))
            .any(|definition| is_not_null_check(&definition, column));
        Some(found)
    }

    fn estimated_rows(&self, table: &QualifiedName) -> Option<f64> {
        let relid = relation_oid(table)?;
        // SAFETY: rd_rel is always set (and valid while pinned) for a relcache entry that
        // RelationIdGetRelation returned.
        let rows = with_relation(relid, |relation| unsafe { (*relation.rd_rel).reltuples })?;
        (rows >= 0.0).then_some(f64::from(rows))
    }

    fn is_partitioned(&self, table: &QualifiedName) -> Option<bool> {
        let relid = relation_oid(table)?;
        with_relation(
            relid,
            // SAFETY: rd_rel is always set (and valid while pinned) for a relcache entry
            // that RelationIdGetRelation returned.
            |relation| unsafe { (*relation.rd_rel).relkind } as u8 == pg_sys::RELKIND_PARTITIONED_TABLE,
        )
    }

    fn domain_has_constraints(&self, type_name: &TypeName) -> Option<bool> {
        let oid = type_oid(type_name)?;
        // SAFETY: DomainHasConstraints reads the type cache for an existing type oid (false
        // for a type that is not a domain).
        Some(unsafe { pg_sys::DomainHasConstraints(oid) })
    }

    fn relation_is_empty(&self, table: &QualifiedName) -> Option<bool> {
        let relid = relation_oid(table)?;
        let share = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        // The size is read under AccessShareLock, so that the relation cannot be dropped or
        // truncated meanwhile, and only if that lock is free at once (or already the
        // session's): the guard never waits for a lock. Otherwise: unknown.
        // SAFETY: ConditionalLockRelationOid takes any oid and says whether it locked it.
        if !unsafe { pg_sys::ConditionalLockRelationOid(relid, share) } {
            return None;
        }
        // SAFETY: RelationIdGetRelation pins the relcache entry (NULL if the relation is
        // gone); its rd_rel is valid while pinned; RelationGetNumberOfBlocksInFork reads the
        // main fork's size through smgr, asked only of the kinds with storage; RelationClose
        // unpins, and UnlockRelationOid releases the one lock taken above (one the session
        // held before stays).
        unsafe {
            let relation = pg_sys::RelationIdGetRelation(relid);
            let empty = if relation.is_null() {
                None
            } else {
                let kind = (*(*relation).rd_rel).relkind as u8;
                // A parent of inheritance children holds rows in them: never empty.
                let parent = (*(*relation).rd_rel).relhassubclass;
                let answer = (kind == pg_sys::RELKIND_RELATION || kind == pg_sys::RELKIND_MATVIEW).then(|| {
                    !parent && pg_sys::RelationGetNumberOfBlocksInFork(relation, pg_sys::ForkNumber::MAIN_FORKNUM) == 0
                });
                pg_sys::RelationClose(relation);
                answer
            };
            pg_sys::UnlockRelationOid(relid, share);
            empty
        }
    }

    fn domain_base_type(&self, type_name: &TypeName) -> Option<String> {
        let oid = type_oid(type_name)?;
        let mut typmod: i32 = -1;
        // SAFETY: getBaseTypeAndTypmod reads the syscache for an existing type oid (a type
        // that is not a domain comes back as it is) and writes the domain's typmod through
        // the pointer, a live local.
        let base = unsafe { pg_sys::getBaseTypeAndTypmod(oid, &mut typmod) };
        if base == oid {
            return None;
        }
        // SAFETY: format_type_with_typemod takes any type oid and typmod and returns a
        // palloc'd C string, which `text` copies at once.
        text(unsafe { pg_sys::format_type_with_typemod(base, typmod) })
    }

    fn nullable_index_columns(&self, table: &QualifiedName, index: &str) -> Option<Vec<String>> {
        let relid = relation_oid(table)?;
        // An index lives in its table's schema: looked up there by name, as Postgres does
        // for USING INDEX.
        // SAFETY: get_rel_namespace and get_relname_relid are syscache lookups that take
        // any OID and a palloc'd name (InvalidOid when there is none).
        let index_oid = unsafe { pg_sys::get_relname_relid(palloc_cstring(index), pg_sys::get_rel_namespace(relid)) };
        if index_oid == pg_sys::InvalidOid {
            return None;
        }
        // SAFETY: rd_index is NULL or, for an index, its pg_index row, valid while the
        // entry is pinned. indkey holds indnatts attribute numbers inline, the first
        // indnkeyatts (<= indnatts) of them the key columns, so the slice is in bounds; it
        // is copied out before the entry is unpinned.
        let key_columns: Vec<i16> = with_relation(index_oid, |relation| unsafe {
            match relation.rd_index.as_ref() {
                Some(form) if form.indrelid == relid => {
                    let keys = usize::try_from(form.indnkeyatts).unwrap_or(0);
                    form.indkey.values.as_slice(keys).to_vec()
                }
                _ => Vec::new(),
            }
        })?;
        if key_columns.is_empty() {
            return None;
        }
        let mut nullable = Vec::new();
        for attnum in key_columns.into_iter().filter(|attnum| *attnum > 0) {
            // SAFETY: SearchSysCacheAttNum takes any relid and attnum and returns a pinned
            // pg_attribute tuple or NULL; two fields are copied out before ReleaseSysCache,
            // and the reference does not escape the block.
            let (name, not_null) = unsafe {
                let tuple = pg_sys::SearchSysCacheAttNum(relid, attnum);
                if tuple.is_null() {
                    return None;
                }
                let attribute = &*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_attribute>(tuple);
                let found = (
                    pg_sys::name_data_to_str(&attribute.attname).to_string(),
                    attribute.attnotnull,
                );
                pg_sys::ReleaseSysCache(tuple);
                found
            };
            if !not_null {
                nullable.push(name);
            }
        }
        Some(nullable)
    }

    fn is_superuser(&self) -> Option<bool> {
        // SAFETY: superuser() reads the current user's rolsuper from the syscache; it
        // raises only for a role that does not exist, and the current user always does.
        Some(unsafe { pg_sys::superuser() })
    }

    fn server_version_num(&self) -> Option<u32> {
        Some(pg_sys::PG_VERSION_NUM)
    }

    fn timezone(&self) -> Option<String> {
        // SAFETY: a static NUL-terminated name; with missing_ok GetConfigOption returns a
        // pointer into the GUC's own storage or NULL, which `text` copies at once.
        text(unsafe { pg_sys::GetConfigOption(c"TimeZone".as_ptr(), true, false) })
    }

    fn rows_changed_estimate(&self, _: &Statement) -> Option<f64> {
        self.rows_changed
    }

    fn constraint_type(&self, table: &QualifiedName, name: &str) -> Option<char> {
        catalog_queries::constraint_type_from_rows(&query_rows(&catalog_queries::constraint_type_sql(table, name))?)
    }

    fn relation_kind(&self, relation: &QualifiedName) -> Option<char> {
        catalog_queries::relation_kind_from_rows(&query_rows(&catalog_queries::relation_kind_sql(relation))?)
    }
}

fn more_volatile(a: Volatility, b: Volatility) -> Volatility {
    let rank = |v: Volatility| match v {
        Volatility::Immutable => 0,
        Volatility::Stable => 1,
        Volatility::Volatile => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}
