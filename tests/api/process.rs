//! The real `companion` binary as a child process, for the tests that run several of them.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The password every first administrator gets.
pub const PASSWORD: &str = "a long admin passphrase";

/// A child process, killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `companion <args>` in `dir` with only `env` (and `PATH`), its output discarded.
pub fn companion<K, V>(dir: &Path, env: impl IntoIterator<Item = (K, V)>, args: &[&str]) -> Command
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let mut command = Command::new(env!("CARGO_BIN_EXE_companion"));
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Creates the first organisation admin `email` (with [`PASSWORD`]); this also migrates.
pub fn create_org_admin<K, V>(dir: &Path, env: impl IntoIterator<Item = (K, V)>, email: &str)
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    use std::io::Write as _;
    let mut admin = companion(dir, env, &["admin", "create-org-admin", "--email", email])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(admin.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(admin.wait().unwrap().success());
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
