//! safe-migrations: the wire-protocol proxy and the `check` linter, both deciding with
//! the `policy` crate on libpg_query's parse tree.

pub mod check;
pub mod parse;
pub mod proxy;
