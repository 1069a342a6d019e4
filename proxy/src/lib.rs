//! safe-migrations: the proxy and the CLI.
