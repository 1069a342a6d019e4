use std::process::ExitCode;

use clap::{Parser, Subcommand};
use safe_migrations_cli::{check, run};

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
    /// Run a migration command guarded by the proxy: `safe-migrations run -- <command>`
    /// (the proxy on a loopback port in front of DATABASE_URL's server, the command's
    /// DATABASE_URL, PGHOST and PGPORT pointing at it; exits with the command's status).
    Run(run::RunArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check(args) => check::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Run(args) => run::run(args),
    }
}
