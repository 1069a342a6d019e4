use std::process::ExitCode;

use clap::{Parser, Subcommand};
use safe_migrations_cli::check;

/// Stop unsafe PostgreSQL schema migrations: lint SQL files, or guard a live session.
#[derive(Parser)]
#[command(name = "safe-migrations", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lint SQL migration files with the same rules the extension and the proxy enforce.
    Check(check::CheckArgs),
    /// Run the PostgreSQL wire-protocol proxy in front of a server.
    Proxy(proxy::ProxyArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check(args) => check::run(args),
        Command::Proxy(args) => proxy::run(args),
    }
}
