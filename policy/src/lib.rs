//! safe_migrations' rule catalogue: one model of what a statement does, one decision.
//!
//! Adapters (the extension, the proxy, the CLI) translate their parse trees into
//! [`model::Statement`], answer [`catalog::Catalog`], and call [`decide`].

pub mod ack;
pub mod blockers;
pub mod bookkeeping;
pub mod catalog;
pub mod catalog_queries;
pub mod file_catalog;
pub mod finding;
pub mod locks;
pub mod model;
pub mod report;
pub mod rules;
pub mod settings;
pub mod sql;
pub mod transaction;
pub mod types;
pub mod unchecked;

pub use catalog::{Catalog, NoCatalog, Volatility};
pub use finding::{Finding, Lock, Severity};
pub use model::{Context, LockLevel, QualifiedName, Statement, Stmt};
pub use rules::{decide, decide_commit, is_inert, Decision, Rule, Scope, RULES};
pub use settings::{Mode, Settings};
pub use transaction::{Placement, Transaction, TransactionStatus};
pub use types::TypeName;
