//! Check-in load: authenticated `POST /v1/check-ins` from N concurrent clients over real HTTP
//! against a server started in this process, on PostgreSQL and on SQLite, beside a `pgbench` of a
//! plain single-row insert into an equivalent table on the same PostgreSQL server in the same run.
//!
//! ```sh
//! cargo run --release -p companion-load --bin checkin-load -- [SECONDS] [CLIENTS...]
//! ```
//! Defaults: 10 seconds per run, 8 and 32 clients. PostgreSQL comes from `COMPANION_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`); a fresh database is created and
//! dropped. Prints figures; asserts nothing about speed.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use companion_load::{Figures, drive, enrol, start_server};

/// The same clients fetching `/health/live` (no database): the ceiling that HTTP, the client and
/// the server's middleware put on any endpoint on this machine.
async fn ceiling(base: &str, clients: usize, seconds: u64) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let url = format!("{base}/health/live");
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut done = 0usize;
            while Instant::now() < deadline {
                if let Ok(r) = client.get(&url).send().await {
                    let _ = r.bytes().await;
                    done += 1;
                }
            }
            done
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await?;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// `pgbench` inserting single rows into a table shaped like `check_ins` (with the same indexes).
fn pgbench(url: &str, clients: usize, seconds: u64) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("insert.sql");
    std::fs::write(
        &script,
        "\\set mood random(0, 10)\n\
         INSERT INTO bench_check_ins (id, patient_id, clinic_id, instrument, instrument_version, answers, total, severity, item9, completed_at, received_at, prompt_id, content_hash) \
         VALUES (gen_random_uuid()::text, 'p' || :client_id, 'c', 'daily_mood', 1, '{\"mood\":' || :mood || '}', NULL, NULL, NULL, now(), now(), NULL, md5(random()::text));\n",
    )?;
    let jobs = clients.min(2).to_string();
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            &jobs,
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .context("run pgbench (install postgresql-client)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .with_context(|| {
            format!(
                "pgbench gave no tps: {text} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

fn settings(
    database_url: &str,
    data_dir: &std::path::Path,
    pool: usize,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        (
            "COMPANION_DATA_DIR".to_owned(),
            data_dir.display().to_string(),
        ),
        ("COMPANION_DB_POOL_SIZE".to_owned(), pool.to_string()),
        ("COMPANION_AUTH_RATE_LIMIT".to_owned(), "100000".to_owned()),
        ("COMPANION_LOG".to_owned(), "warn".to_owned()),
    ])
}

fn print(label: &str, clients: usize, figures: &Figures, reference: Option<f64>) {
    let ratio = reference
        .map(|r| {
            format!(
                "{:>5.0}% of pgbench ({r:.0}/s)",
                figures.throughput() / r * 100.0
            )
        })
        .unwrap_or_default();
    println!(
        "{label:<10} {clients:>3} clients  {:>8.0} check-ins/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}  {ratio}",
        figures.throughput(),
        figures.p50.as_secs_f64() * 1e3,
        figures.p99.as_secs_f64() * 1e3,
        figures.errors,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let mut levels: Vec<usize> = args.map(|s| s.parse()).collect::<Result<_, _>>()?;
    if levels.is_empty() {
        levels = vec![8, 32];
    }
    let max_clients = levels.iter().copied().max().unwrap_or(1);
    let server_url = std::env::var("COMPANION_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("companion_load_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::establish(&server_url).context("connect to PostgreSQL")?;
    admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
    let mut db_url = reqwest::Url::parse(&server_url)?;
    db_url.set_path(&format!("/{name}"));
    let db_url = db_url.to_string();
    let data = tempfile::tempdir()?;
    let result = run(&db_url, data.path(), seconds, &levels, max_clients).await;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    result
}

async fn run(
    db_url: &str,
    data: &std::path::Path,
    seconds: u64,
    levels: &[usize],
    max_clients: usize,
) -> anyhow::Result<()> {
    println!(
        "check-in load: {seconds} s per run, daily_mood submissions over HTTP/1.1 keep-alive, server in-process ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let client = reqwest::Client::new();

    let addr = start_server(settings(db_url, data, pool_size())).await?;
    let base = format!("http://{addr}");
    let tokens = enrol(&client, &base, max_clients * PATIENTS_PER_CLIENT).await?;
    {
        let mut conn = PgConnection::establish(db_url)?;
        conn.batch_execute(
            "CREATE TABLE bench_check_ins (LIKE check_ins INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)",
        )?;
    }
    for &clients in levels {
        let reference = pgbench(db_url, clients, seconds)?;
        let figures = drive(&base, &tokens, clients, seconds).await?;
        print("PostgreSQL", clients, &figures, Some(reference));
        let ceiling = ceiling(&base, clients, seconds).await?;
        println!(
            "{:<10} {clients:>3} clients  {ceiling:>8.0} GET /health/live/s (HTTP ceiling, no database)",
            ""
        );
    }

    let sqlite_dir = tempfile::tempdir()?;
    let sqlite_url = format!("sqlite://{}", sqlite_dir.path().join("load.db").display());
    let addr = start_server(settings(&sqlite_url, sqlite_dir.path(), max_clients.min(8))).await?;
    let base = format!("http://{addr}");
    let tokens = enrol(&client, &base, max_clients * PATIENTS_PER_CLIENT).await?;
    for &clients in levels {
        let figures = drive(&base, &tokens, clients, seconds).await?;
        print("SQLite", clients, &figures, None);
    }
    Ok(())
}

/// Patients each load client speaks for.
const PATIENTS_PER_CLIENT: usize = 8;

/// Server connection-pool size: `LOAD_POOL_SIZE`, default 8.
fn pool_size() -> usize {
    std::env::var("LOAD_POOL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}
