//! safe_migrations: a ProcessUtility guard that stops unsafe migrations where they run.
//!
//! hook.c holds the hook, the GUCs and the raising of reports; this crate maps parse
//! nodes to the policy model (`nodes`), answers the catalog (`catalog`), decides
//! (`verdict`), and installs the SQL functions (`sql_api`).

use pgrx::prelude::*;

mod catalog;
mod nodes;
mod retry;
mod settings;
mod shim;
mod sql_api;
mod verdict;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

::pgrx::pg_module_magic!();

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // The hook only when preloaded: a guard that appears mid-session (LOAD, CREATE
    // EXTENSION) would be one a session could have avoided.
    shim::define_settings();
    // SAFETY: a plain read of a C bool global on the process's only thread; only
    // Postgres' own loading of shared_preload_libraries writes it, around this call.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        shim::install_hook();
    }
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'safe_migrations'"]
    }
}
