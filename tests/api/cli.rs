//! The real `companion` binary: a newcomer's first run on SQLite, the same on PostgreSQL, and
//! start-up errors that name their cause.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_companion");

fn companion(dir: &std::path::Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("COMPANION_LOG_FORMAT", "json");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A minimal HTTP/1.1 client over a real socket.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status: u16 = response[9..12].parse().unwrap();
    let payload = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(payload).unwrap_or(Value::Null))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(dir: &std::path::Path, addr: SocketAddr, env: &[(&str, &str)]) -> Server {
    start_server_with(dir, addr, env, &["serve"])
}

fn start_server_with(
    dir: &std::path::Path,
    addr: SocketAddr,
    env: &[(&str, &str)],
    args: &[&str],
) -> Server {
    let addr_text = addr.to_string();
    let mut all = env.to_vec();
    all.push(("COMPANION_ADDR", &addr_text));
    let child = companion(dir, &all)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(addr).is_ok()
            && http(addr, "GET", "/health/ready", None, None).0 == 200
        {
            return server;
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create_org_admin(dir: &std::path::Path, env: &[(&str, &str)], email: &str, password: &str) {
    let mut child = companion(dir, env)
        .args(["admin", "create-org-admin", "--email", email])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The walk-through of API.md: admin, clinic, invitations, acceptance, `/v1/me`.
fn first_run(dir: &std::path::Path, env: &[(&str, &str)]) {
    let password = "a long admin passphrase";
    create_org_admin(dir, env, "root@example.org", password);
    let addr = free_addr();
    let _server = start_server(dir, addr, env);
    let (status, tokens) = http(
        addr,
        "POST",
        "/v1/auth/login",
        None,
        Some(&json!({"email": "root@example.org", "password": password})),
    );
    assert_eq!(status, 200, "{tokens}");
    let admin = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, clinic) = http(
        addr,
        "POST",
        "/v1/clinics",
        Some(&admin),
        Some(&json!({"name": "Lakeside", "timezone": "America/Chicago"})),
    );
    assert_eq!(status, 201, "{clinic}");
    let clinic_id = clinic["id"].as_str().unwrap();
    for (role, email) in [
        ("clinician", "doc@example.org"),
        ("patient", "pat@example.org"),
    ] {
        let (status, invitation) = http(
            addr,
            "POST",
            &format!("/v1/clinics/{clinic_id}/invitations"),
            Some(&admin),
            Some(&json!({"role": role})),
        );
        assert_eq!(status, 201, "{invitation}");
        let (status, tokens) = http(
            addr,
            "POST",
            "/v1/invitations/accept",
            None,
            Some(
                &json!({"code": invitation["code"], "email": email, "password": "another long passphrase"}),
            ),
        );
        assert_eq!(status, 201, "{tokens}");
        let (status, me) = http(addr, "GET", "/v1/me", tokens["access_token"].as_str(), None);
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["role"], role);
        assert_eq!(me["clinic_id"], clinic_id);
        assert_push_is_attempted(addr, tokens["access_token"].as_str().unwrap());
    }
}

/// Registers a device and sends it a test notification; the workers `serve` runs in-process
/// attempt it at once. No push credentials here: the development stand-in sends nothing, and the
/// notification says so (`failed`), never `delivered`.
fn assert_push_is_attempted(addr: SocketAddr, token: &str) {
    let (status, device) = http(
        addr,
        "POST",
        "/v1/devices",
        Some(token),
        Some(&json!({"platform": "android", "token": format!("tok-{}", uuid::Uuid::new_v4())})),
    );
    assert_eq!(status, 201, "{device}");
    let (status, sent) = http(
        addr,
        "POST",
        &format!("/v1/devices/{}/test", device["id"].as_str().unwrap()),
        Some(token),
        None,
    );
    assert_eq!(status, 202, "{sent}");
    let path = format!("/v1/notifications/{}", sent["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, state) = http(addr, "GET", &path, Some(token), None);
        if state["attempts"] == 1 {
            assert_eq!(state["status"], "failed", "{state}");
            assert!(state["delivered_at"].is_null(), "{state}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the in-process worker did not deliver: {state}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_fresh_folder_runs_on_sqlite_with_no_setup() {
    let dir = tempfile::tempdir().unwrap();
    first_run(dir.path(), &[]);
    assert!(dir.path().join("data/companion.db").exists());
    assert!(dir.path().join("data/jwt-dev.key").exists());
    // The development Web Push key, readable by the server's user only, like the signing key.
    let vapid = dir.path().join("data/vapid-dev.key");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&vapid).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&vapid).unwrap();
    assert_eq!(text.trim().len(), 43, "a base64url P-256 private scalar");
}

#[test]
fn the_same_first_run_works_on_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, url) = TestDb::empty_postgres();
    first_run(dir.path(), &[("DATABASE_URL", &url)]);
}

#[test]
fn an_unreachable_database_fails_at_start_with_the_real_cause() {
    let dir = tempfile::tempdir().unwrap();
    let output = companion(
        dir.path(),
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/companion")],
    )
    .arg("migrate")
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("PostgreSQL at 127.0.0.1:1/companion"),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
    assert!(!stderr.contains("invalid connection url"), "{stderr}");
}

#[test]
fn bad_settings_fail_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (env, key) in [
        (
            vec![("DATABASE_URL", "mysql://localhost/x")],
            "DATABASE_URL",
        ),
        (vec![("COMPANION_ADDR", "nowhere")], "COMPANION_ADDR"),
        (vec![("COMPANION_ENV", "production")], "COMPANION_JWT_KEYS"),
        // Production refuses to start with push that would only be logged, naming the risk.
        (
            vec![
                ("COMPANION_ENV", "production"),
                (
                    "COMPANION_JWT_KEYS",
                    "k1=MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
                ),
                ("COMPANION_PUBLIC_URL", "https://companion.example.org"),
            ],
            "COMPANION_ACCEPT_PUSH_NOT_CONFIGURED",
        ),
        (
            vec![
                ("COMPANION_ENV", "production"),
                (
                    "COMPANION_JWT_KEYS",
                    "k1=MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
                ),
            ],
            "COMPANION_PUBLIC_URL",
        ),
        (
            vec![("COMPANION_ACESS_TOKEN_TTL", "60")],
            "COMPANION_ACESS_TOKEN_TTL",
        ),
    ] {
        let output = companion(dir.path(), &env).arg("migrate").output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "{key}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn the_openapi_command_prints_the_committed_document() {
    let dir = tempfile::tempdir().unwrap();
    let output = companion(dir.path(), &[]).arg("openapi").output().unwrap();
    assert!(output.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../openapi/openapi.json"
    ))
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), committed);
}

#[test]
fn operators_see_the_job_queue_and_its_dead_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let output = companion(dir.path(), &[])
        .args(["admin", "jobs"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    for status in ["queued", "running", "done", "dead"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(status) && l.ends_with(" 0")),
            "{text}"
        );
    }
}

#[test]
fn an_api_process_and_a_worker_process_share_one_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, url) = TestDb::empty_postgres();
    // The worker polls once a minute: only LISTEN/NOTIFY can make it deliver promptly.
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("COMPANION_JOB_POLL_INTERVAL", "60000"),
    ];
    let password = "a long admin passphrase";
    create_org_admin(dir.path(), &env, "ops@example.org", password);
    let addr = free_addr();
    let _api = start_server_with(dir.path(), addr, &env, &["serve", "--no-workers"]);
    let _worker = Server(
        companion(dir.path(), &env)
            .arg("work")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let (status, tokens) = http(
        addr,
        "POST",
        "/v1/auth/login",
        None,
        Some(&json!({"email": "ops@example.org", "password": password})),
    );
    assert_eq!(status, 200, "{tokens}");
    assert_push_is_attempted(addr, tokens["access_token"].as_str().unwrap());
}

/// Sends SIGTERM and waits for a clean exit; returns how long it took.
fn terminate(child: &mut Child) -> Duration {
    let started = Instant::now();
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            assert!(exit.success(), "exited with {exit}");
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still running 15 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_stops_the_server_and_a_worker_cleanly_within_the_shutdown_bound() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("COMPANION_SHUTDOWN_TIMEOUT", "5")];
    let addr = free_addr();
    let mut server = start_server(dir.path(), addr, &env);
    let took = terminate(&mut server.0);
    println!("serve stopped {took:?} after SIGTERM");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        TcpStream::connect(addr).is_err(),
        "no longer accepts connections"
    );
    // A worker answers health and metrics probes on COMPANION_WORKER_ADDR.
    let ops = free_addr();
    let ops_text = ops.to_string();
    let mut worker = Server(
        companion(dir.path(), &[env[0], ("COMPANION_WORKER_ADDR", &ops_text)])
            .arg("work")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(ops).is_err() {
        assert!(
            Instant::now() < deadline,
            "the worker's listener did not open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http(ops, "GET", "/health/ready", None, None).0, 200);
    assert_eq!(http(ops, "GET", "/metrics", None, None).0, 200);
    assert_eq!(
        http(ops, "GET", "/v1/me", None, None).0,
        404,
        "no API on the worker"
    );
    let took = terminate(&mut worker.0);
    println!("work stopped {took:?} after SIGTERM");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn demo_creates_a_clinic_to_sign_in_to_and_is_refused_in_production() {
    let dir = tempfile::tempdir().unwrap();
    let output = companion(dir.path(), &[]).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("/console"), "{stdout}");
    assert!(
        stdout.contains("clinician@demo.companion.example"),
        "{stdout}"
    );
    // The demo clinic's accounts sign in, and its clinician has open alerts to work.
    let addr = free_addr();
    let _server = start_server(dir.path(), addr, &[]);
    let (status, tokens) = http(
        addr,
        "POST",
        "/v1/auth/login",
        None,
        Some(
            &serde_json::json!({"email": "clinician@demo.companion.example", "password": "demo passphrase"}),
        ),
    );
    assert_eq!(status, 200, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap();
    let (status, alerts) = http(addr, "GET", "/v1/alerts?status=open", Some(token), None);
    assert_eq!(status, 200);
    assert!(!alerts["items"].as_array().unwrap().is_empty(), "{alerts}");
    let (status, roster) = http(
        addr,
        "GET",
        &format!(
            "/v1/clinics/{}/patients?limit=50",
            tokens_clinic(addr, token)
        ),
        Some(token),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(roster["items"].as_array().unwrap().len(), 12);

    let production = tempfile::tempdir().unwrap();
    let output = companion(
        production.path(),
        &[
            ("COMPANION_ENV", "production"),
            (
                "COMPANION_JWT_KEYS",
                "k1=MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
            ),
            ("COMPANION_ACCEPT_PUSH_NOT_CONFIGURED", "true"),
            ("COMPANION_PUBLIC_URL", "https://companion.example.org"),
        ],
    )
    .arg("demo")
    .output()
    .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("refused when COMPANION_ENV=production")
    );
}

fn tokens_clinic(addr: SocketAddr, token: &str) -> String {
    let (_, me) = http(addr, "GET", "/v1/me", Some(token), None);
    me["clinic_id"].as_str().unwrap().to_owned()
}
