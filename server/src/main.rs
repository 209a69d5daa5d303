//! The `companion` binary.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = companion::cli::Cli::parse();
    let runtime = match companion::cli::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("companion: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(companion::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("companion: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
