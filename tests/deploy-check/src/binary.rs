//! The built `companion` binary, and asking its command-line parser whether an invocation is one
//! it accepts.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::files;

/// Names a prebuilt binary to check against instead of the workspace's own build. It sits in the
/// `COMPANION_TEST_` namespace because the server refuses to start on any other unknown
/// `COMPANION_*` variable, and this one may be exported in a shell that also runs the server.
pub const BINARY_VARIABLE: &str = "COMPANION_TEST_BIN";

/// The binary to check against: `COMPANION_TEST_BIN` when set, otherwise `companion` in the
/// profile folder this test was built into, built first when it is missing or older than the
/// server's sources. Located once per process.
pub fn companion() -> Result<&'static Path, String> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(locate)
        .as_deref()
        .map_err(ToOwned::to_owned)
}

fn locate() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(BINARY_VARIABLE) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{BINARY_VARIABLE}={} is not a file",
                path.display()
            ))
        };
    }
    // This test runs from <target dir>/<profile>/deps/.
    let test_binary =
        std::env::current_exe().map_err(|e| format!("cannot find this test's binary: {e}"))?;
    let profile_dir = test_binary
        .parent()
        .and_then(Path::parent)
        .ok_or("this test's binary is not in <target>/<profile>/deps")?;
    let target_dir = profile_dir
        .parent()
        .ok_or("this test's binary is not in <target>/<profile>/deps")?;
    let profile = profile_dir
        .file_name()
        .and_then(OsStr::to_str)
        .ok_or("the profile folder has no name")?;
    let binary = profile_dir.join(format!("companion{}", std::env::consts::EXE_SUFFIX));
    if !is_current(&binary) {
        build(target_dir, profile)?;
    }
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!("{} was not built", binary.display()))
    }
}

/// Whether the binary exists and is newer than every file of the server's sources.
fn is_current(binary: &Path) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let Some(built) = modified(binary) else {
        return false;
    };
    let server = files::workspace_root().join("server");
    let Ok(mut sources) = files::files_under(&server.join("src")) else {
        return false;
    };
    sources.push(server.join("Cargo.toml"));
    sources
        .iter()
        .all(|source| modified(source).is_some_and(|time| time <= built))
}

fn build(target_dir: &Path, profile: &str) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(files::workspace_root())
        .args([
            "build",
            "--quiet",
            "-p",
            "companion-server",
            "--bin",
            "companion",
        ])
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo build -p companion-server --bin companion` failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Runs the binary with these arguments and an empty environment.
fn run(binary: &Path, args: &[&str]) -> Result<std::process::Output, String> {
    Command::new(binary)
        .args(args)
        .env_clear()
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))
}

/// The subcommands `companion --help` lists (without `help`).
pub fn subcommands(binary: &Path) -> Result<Vec<String>, String> {
    let output = run(binary, &["--help"])?;
    if !output.status.success() {
        return Err(format!(
            "`companion --help` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let help = String::from_utf8_lossy(&output.stdout);
    let commands: Vec<String> = help
        .lines()
        .skip_while(|line| line.trim() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect();
    if commands.is_empty() {
        return Err(format!("`companion --help` lists no commands:\n{help}"));
    }
    Ok(commands)
}

/// Checks an argument list against the binary's own parser: the first argument must be one of
/// the subcommands `companion --help` lists, and `companion <args> --help` must succeed (clap
/// rejects an unknown subcommand, option or extra argument before it prints any help).
pub fn check_arguments(binary: &Path, args: &[String]) -> Result<(), String> {
    let Some(first) = args.first() else {
        return Err("names no subcommand".into());
    };
    let subcommands = subcommands(binary)?;
    if !subcommands.contains(first) {
        return Err(format!(
            "`{first}` is not a companion subcommand (there are: {})",
            subcommands.join(", ")
        ));
    }
    let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
    with_help.push("--help");
    let output = run(binary, &with_help)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`companion {}` is refused: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
