//! The `companion` binary.

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = companion::cli::Cli::parse();
    match companion::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("companion: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
