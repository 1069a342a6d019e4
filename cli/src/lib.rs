//! The `safe-migrations` command: `check` lints SQL files with the rules the extension and
//! the proxy enforce (`check`), deciding on libpg_query's tree (`parse`) with the `policy`
//! crate; `proxy` runs the wire-protocol proxy (crate `proxy`); `run` guards a migration
//! command with that proxy.

pub mod check;
pub mod run;
mod url;
