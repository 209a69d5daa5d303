//! Shared pieces of the load tools: an in-process server, enrolment over HTTP, and a check-in
//! load driver.

/// The server binary's allocator (`server/src/main.rs`), so that what runs in-process here
/// (the in-process app of `prompt-load`, `push-load` and `backlog-load`) allocates as the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{SecondsFormat, Utc};
use companion::app::{App, AppState};
use companion::clock::SystemClock;
use companion::config::Config;
use serde_json::{Value, json};

/// The password of every account the tools create.
pub const PASSWORD: &str = "load test passphrase";

/// Jobs one worker runs at once: `LOAD_CONCURRENCY`, else the server's default.
pub fn worker_concurrency() -> anyhow::Result<usize> {
    match std::env::var("LOAD_CONCURRENCY") {
        Ok(text) => text
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=1024).contains(n))
            .with_context(|| format!("LOAD_CONCURRENCY must be 1 to 1024, not {text:?}")),
        Err(_) => Ok(companion::config::DEFAULT_WORKER_CONCURRENCY),
    }
}

/// The fake gateway's added latency per message: `LOAD_GATEWAY_LATENCY_MS`, else none.
pub fn gateway_options() -> anyhow::Result<companion_fake_push::FakeOptions> {
    let latency = match std::env::var("LOAD_GATEWAY_LATENCY_MS") {
        Ok(text) => Duration::from_millis(text.trim().parse().with_context(|| {
            format!("LOAD_GATEWAY_LATENCY_MS must be milliseconds, not {text:?}")
        })?),
        Err(_) => Duration::ZERO,
    };
    Ok(companion_fake_push::FakeOptions { latency })
}

/// Figures of one load run.
pub struct Figures {
    /// Check-ins stored.
    pub requests: usize,
    /// Failed requests.
    pub errors: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

impl Figures {
    /// Check-ins per second.
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Starts the API in this process on a loopback port; returns its address.
pub async fn start_server(settings: BTreeMap<String, String>) -> anyhow::Result<SocketAddr> {
    start_app(settings).await.map(|(addr, _)| addr)
}

/// Like [`start_server`], also returning the application (to run workers on).
pub async fn start_app(
    settings: BTreeMap<String, String>,
) -> anyhow::Result<(SocketAddr, Arc<App>)> {
    let config = Config::from_source(&settings)?;
    let app = Arc::new(App::new(config, Arc::new(SystemClock))?);
    app.db.migrate().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = companion::router::router(AppState(app.clone()));
    companion::account::use_cases::create_org_admin(
        &app.db,
        "load-admin@example.org",
        PASSWORD,
        app.now(),
    )
    .await?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .ok();
    });
    Ok((addr, app))
}

/// POSTs JSON; returns status and body.
pub async fn post(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let mut request = client.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// Signs in as the load tools' organisation admin (created by [`spawn_server`] and
/// [`start_app`]); returns the access token.
pub async fn sign_in_admin(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let (_, admin) = post(
        client,
        format!("{base}/v1/auth/login"),
        None,
        json!({"email": "load-admin@example.org", "password": PASSWORD}),
    )
    .await?;
    Ok(admin["access_token"]
        .as_str()
        .context("admin login")?
        .to_owned())
}

/// Creates a clinic and `count` enrolled patients; returns their access tokens.
pub async fn enrol(
    client: &reqwest::Client,
    base: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    enrol_as(client, base, count, "p").await
}

/// Like [`enrol`], the patients' emails starting with `prefix` (so that a second enrolment on
/// the same server needs another prefix).
pub async fn enrol_as(
    client: &reqwest::Client,
    base: &str,
    count: usize,
    prefix: &str,
) -> anyhow::Result<Vec<String>> {
    let admin = sign_in_admin(client, base).await?;
    let (_, clinic) = post(
        client,
        format!("{base}/v1/clinics"),
        Some(&admin),
        json!({"name": "Load", "timezone": "America/Chicago", "country": "US"}),
    )
    .await?;
    let clinic = clinic["id"].as_str().context("clinic")?.to_owned();
    let mut tokens = Vec::new();
    for n in 0..count {
        let (_, invitation) = post(
            client,
            format!("{base}/v1/clinics/{clinic}/invitations"),
            Some(&admin),
            json!({"role": "patient"}),
        )
        .await?;
        let (status, accepted) = post(client, format!("{base}/v1/invitations/accept"), None,
            json!({"code": invitation["code"], "email": format!("{prefix}{n}@example.org"), "password": PASSWORD})).await?;
        if status != 201 {
            bail!("enrolment failed: {status} {accepted}");
        }
        tokens.push(
            accepted["access_token"]
                .as_str()
                .context("token")?
                .to_owned(),
        );
    }
    Ok(tokens)
}

/// `clients` concurrent clients submitting daily check-ins back to back for `seconds`, each on
/// behalf of its share of the patients in `tokens`.
pub async fn drive(
    base: &str,
    tokens: &[String],
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Figures> {
    let clients = clients.min(tokens.len());
    let tokens: Arc<[String]> = tokens.into();
    let url = format!("{base}/v1/check-ins");
    // Each client speaks for several patients in turn, as a real population of patients who each
    // check in a few times a day would: client `c` for patients c, c + clients, c + 2 clients...
    let share = move |client: usize, turn: usize| {
        let own = (tokens.len() - client).div_ceil(clients);
        tokens[client + (turn % own) * clients].clone()
    };
    load(clients, seconds, 201, move |http, client, turn| {
        let body = json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "instrument": "daily_mood",
            "answers": {"mood": (turn + 1) % 11, "sleep_hours": sleep_hours(), "anxiety": 3},
            "completed_at": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
        });
        http.post(&url).bearer_auth(share(client, turn)).json(&body)
    })
    .await
}

/// `GET {base}{path}` from `clients` concurrent clients for `seconds`, each on a kept-alive
/// connection of its own: the HTTP floor under any request (no token, no database for
/// `/health/live`).
pub async fn drive_get(
    base: &str,
    path: &str,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Figures> {
    let url = format!("{base}{path}");
    load(clients, seconds, 200, move |http, _, _| http.get(&url)).await
}

/// `clients` tasks, each with an HTTP client of its own, sending the request `next` builds (for
/// that client and its turn) back to back for `seconds`; an answer with status `expected` counts.
async fn load<F>(clients: usize, seconds: u64, expected: u16, next: F) -> anyhow::Result<Figures>
where
    F: Fn(&reqwest::Client, usize, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let next = Arc::new(next);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut turn = 0usize;
            while Instant::now() < deadline {
                let request = next(&http, client, turn);
                turn += 1;
                let t = Instant::now();
                match request.send().await {
                    Ok(r) if r.status().as_u16() == expected => {
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    gather(started, tasks).await
}

/// The figures of client tasks started at `started`, each answering (its latencies, its
/// failed requests).
async fn gather(
    started: Instant,
    tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>,
) -> anyhow::Result<Figures> {
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(Figures {
        requests: latencies.len(),
        errors,
        elapsed,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    })
}

/// The `p` quantile (0 to 1) of `sorted` latencies; zero when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p) as usize)
        .copied()
        .unwrap_or_default()
}

/// The `companion` server running as its own process (so that its memory is its own).
pub struct ServerProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl ServerProcess {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory now, in MiB (Linux; none elsewhere).
    pub fn resident_mib(&self) -> Option<f64> {
        resident_mib(self.pid())
    }
}

/// A process's highest resident memory so far (`VmHWM`), in MiB (Linux; none elsewhere).
pub fn peak_resident_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Clock ticks per second of `/proc`'s CPU times (`USER_HZ`, 100 on Linux).
const TICKS: f64 = 100.0;

/// The busy CPU time of the whole machine so far (every core, every process: all but idle and
/// I/O wait), in seconds (Linux).
pub fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((total - idle) / TICKS)
}

/// Fields of `/proc/<pid>/stat` after the command name, from the state (field 3) on.
fn stat_fields(pid: &str) -> Option<Vec<f64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(
        rest.split_whitespace()
            .map(|v| v.parse().unwrap_or(0.0))
            .collect(),
    )
}

/// A process's own CPU time so far (user and system), in seconds (Linux).
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    let f = stat_fields(&pid.to_string())?;
    Some((f.get(11)? + f.get(12)?) / TICKS)
}

/// This process's CPU time and that of its children it has waited for (a finished `pgbench`),
/// in seconds (Linux).
pub fn own_and_children_cpu_secs() -> Option<f64> {
    let f = stat_fields("self")?;
    Some((f.get(11)? + f.get(12)? + f.get(13)? + f.get(14)?) / TICKS)
}

/// The CPU time of PostgreSQL on this machine so far, in seconds (Linux, read as a user who may
/// read its processes' `/proc` entries): every live `postgres` process's own, plus the
/// postmaster's finished children's (backends that have exited, such as pgbench's). Unlike the
/// machine's busy time, it leaves out the HTTP traffic between a load tool and the server.
pub fn postgres_cpu_secs() -> Option<f64> {
    let mut total = 0.0;
    let mut seen = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != "postgres" {
            continue;
        }
        let Some(f) = stat_fields(pid) else { continue };
        seen = true;
        total += f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0);
        // The postmaster (its parent is no postgres process) holds its exited children's time.
        let parent = f.get(1).map(|p| *p as u32).unwrap_or(0);
        let parent_is_postgres = std::fs::read_to_string(format!("/proc/{parent}/stat"))
            .is_ok_and(|s| s.contains("(postgres)"));
        if !parent_is_postgres {
            total += f.get(13).unwrap_or(&0.0) + f.get(14).unwrap_or(&0.0);
        }
    }
    seen.then_some(total / TICKS)
}

/// CPU spent during a run by everything but the named processes: on a quiet machine, the
/// database's. Take one before and one after; the difference is [`CpuSpan`].
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    busy: f64,
    own: f64,
    server: f64,
    postgres: f64,
}

impl CpuMark {
    /// Now, with `server`'s CPU when a server process is part of the run.
    pub fn now(server: Option<u32>) -> Self {
        Self {
            busy: machine_busy_secs().unwrap_or(0.0),
            own: own_and_children_cpu_secs().unwrap_or(0.0),
            server: server.and_then(process_cpu_secs).unwrap_or(0.0),
            postgres: postgres_cpu_secs().unwrap_or(0.0),
        }
    }

    /// PostgreSQL's own CPU seconds from `self` to `later` (see [`postgres_cpu_secs`]).
    pub fn postgres_until(&self, later: &CpuMark) -> f64 {
        (later.postgres - self.postgres).max(0.0)
    }

    /// This tool's own CPU seconds from `self` to `later`, its exited children's (`pgbench`)
    /// included.
    pub fn own_until(&self, later: &CpuMark) -> f64 {
        (later.own - self.own).max(0.0)
    }

    /// The CPU seconds from `self` to `later`: (the rest of the machine, the server).
    pub fn until(&self, later: &CpuMark) -> (f64, f64) {
        let server = later.server - self.server;
        let rest = (later.busy - self.busy) - (later.own - self.own) - server;
        (rest.max(0.0), server)
    }
}

/// A process's resident memory now, in MiB (Linux; none elsewhere).
pub fn resident_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The release `companion` binary beside this tool (build it with
/// `cargo build --release -p companion-server`), or `COMPANION_TEST_BIN` (a `COMPANION_TEST_*` name, which the server ignores).
pub fn companion_binary() -> anyhow::Result<std::path::PathBuf> {
    if let Ok(path) = std::env::var("COMPANION_TEST_BIN") {
        return Ok(path.into());
    }
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .context("the tool's folder")?
        .join(format!("companion{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        bail!(
            "{} is missing: run `cargo build --release -p companion-server` first",
            path.display()
        );
    }
    Ok(path)
}

/// Starts `companion serve --no-workers` on a free loopback port with `settings` as its
/// environment, after creating the load tools' organisation admin (which also migrates), and
/// waits until it is ready.
pub async fn spawn_server(settings: &BTreeMap<String, String>) -> anyhow::Result<ServerProcess> {
    let bin = companion_binary()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let admin = std::process::Command::new(&bin)
        .args([
            "admin",
            "create-org-admin",
            "--email",
            "load-admin@example.org",
        ])
        .envs(settings)
        .env("COMPANION_ADMIN_PASSWORD", PASSWORD)
        .output()
        .context("run companion admin create-org-admin")?;
    if !admin.status.success() {
        bail!(
            "creating the admin failed: {}",
            String::from_utf8_lossy(&admin.stderr)
        );
    }
    let child = std::process::Command::new(&bin)
        .args(["serve", "--no-workers"])
        .envs(settings)
        .env("COMPANION_ADDR", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("start companion serve")?;
    let server = ServerProcess {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client
            .get(format!("{}/health/ready", server.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!("the server did not become ready within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A sleep answer (0.0 to 24.0 hours) that differs from one check-in to the next: the server
/// takes the same answers sent again within minutes as the same check-in, so every check-in of
/// a load run carries answers of its own.
pub fn sleep_hours() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    (NEXT.fetch_add(1, Ordering::Relaxed) % 2_400_001) as f64 / 100_000.0
}

/// One daily mood check-in for `token`, completed at `at`; its latency, or none if it was not
/// stored.
pub async fn check_in_once(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    mood: i64,
    at: chrono::DateTime<Utc>,
) -> Option<Duration> {
    let body = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "instrument": "daily_mood",
        "answers": {"mood": mood, "sleep_hours": sleep_hours(), "anxiety": 3},
        "completed_at": at.to_rfc3339_opts(SecondsFormat::Micros, true),
    });
    let t = Instant::now();
    let response = client
        .post(format!("{base}/v1/check-ins"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .ok()?;
    let stored = response.status().as_u16() == 201;
    let _ = response.bytes().await;
    stored.then(|| t.elapsed())
}

/// The median of `samples`.
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}
