//! The `companion` binary.

use clap::Parser as _;

/// mimalloc rather than the system allocator: a request allocates and frees on different
/// threads (a runtime worker and a blocking thread), which glibc's per-thread arenas handle with
/// consolidation passes and which keep memory the process no longer uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
