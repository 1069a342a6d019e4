//! pgrx tests: they run inside a backend of a server with the library preloaded, each
//! in a transaction that is rolled back. Fixtures are created by CREATE EXTENSION (so
//! they are not "created in this transaction"); `harness` runs a statement and reports
//! how it ended.

mod bypass;
mod errors;
mod harness;
mod inert;
mod rules;
mod settings;
