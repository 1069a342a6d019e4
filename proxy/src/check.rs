//! STUB: `safe-migrations check`.
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CheckArgs {}

pub fn run(_args: CheckArgs) -> ExitCode {
    ExitCode::FAILURE
}
