//! STUB: libpg_query tree -> policy model.
