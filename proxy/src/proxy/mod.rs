//! STUB: the wire-protocol proxy.
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ProxyArgs {}

pub fn run(_args: ProxyArgs) -> ExitCode {
    ExitCode::FAILURE
}
