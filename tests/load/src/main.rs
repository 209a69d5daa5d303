//! Check-in load: authenticated `POST /v1/check-ins` (daily mood) from N concurrent clients over
//! real HTTP against the release `companion` server running as its own process, on PostgreSQL
//! and on SQLite. Beside each PostgreSQL figure, measured on the same server in the same run:
//!
//! - a `pgbench` replay of exactly the SQL the server sends per check-in
//!   (`tests/load/replay/daily_mood_check_in.sql`, kept in step with the server by
//!   `tests/api/statements.rs`), so "API / same SQL" is what the server adds on top of its SQL;
//! - a `pgbench` of a single-row insert into a table shaped like `check_ins` (same indexes), the
//!   cheapest write a check-in could be.
//!
//! And the HTTP floor beside them: `GET /health/live` from as many clients (no token, no
//! database), with the server's and this tool's CPU per request, against what the API may spend
//! beyond PostgreSQL (server and clients) to reach 0.85 of the same SQL's rate on these shared
//! cores.
//!
//! Then the growth: the median latency of a patient's check-in with 0 and with 2,000 earlier
//! check-ins, measured alternately in the same run. And the server's resident memory during
//! each run.
//!
//! ```sh
//! cargo build --release -p companion-server
//! cargo run --release -p companion-load --bin checkin-load -- [SECONDS] [CLIENTS...]
//! ```
//! Defaults: 10 seconds per run, 8 and 32 clients. PostgreSQL comes from `COMPANION_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`); a fresh database is created and
//! dropped. Prints figures; asserts nothing about speed.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{TimeDelta, Utc};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};

use companion_load::{
    CpuMark, Figures, ServerProcess, check_in_once, drive, drive_get, enrol, enrol_as, median,
    peak_resident_mib, resident_mib, spawn_server,
};

/// Patients each load client speaks for.
const PATIENTS_PER_CLIENT: usize = 8;
/// Earlier check-ins of the long-history patient.
const HISTORY: usize = 2000;
/// Check-ins measured per patient for the growth figure.
const GROWTH_SAMPLES: usize = 200;

const REPLAY: &str = include_str!("../replay/daily_mood_check_in.sql");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let mut levels: Vec<usize> = args.map(|s| s.parse()).collect::<Result<_, _>>()?;
    if levels.is_empty() {
        levels = vec![8, 32];
    }
    let server_url = std::env::var("COMPANION_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("companion_load_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::establish(&server_url).context("connect to PostgreSQL")?;
    admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
    let mut db_url = reqwest::Url::parse(&server_url)?;
    db_url.set_path(&format!("/{name}"));
    let result = run(db_url.as_str(), seconds, &levels).await;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    result
}

fn settings(database_url: &str, data_dir: &std::path::Path) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        (
            "COMPANION_DATA_DIR".to_owned(),
            data_dir.display().to_string(),
        ),
        ("COMPANION_DB_POOL_SIZE".to_owned(), pool_size().to_string()),
        ("COMPANION_AUTH_RATE_LIMIT".to_owned(), "100000".to_owned()),
        ("COMPANION_LOG".to_owned(), "warn".to_owned()),
    ])
}

async fn run(db_url: &str, seconds: u64, levels: &[usize]) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "check-in load: daily mood over HTTP/1.1 keep-alive, {seconds} s a run, server pool {}, \
         server in its own process, load tool and databases on the same {cores} cores",
        pool_size()
    );
    let max_clients = levels.iter().copied().max().unwrap_or(1);
    let client = reqwest::Client::new();

    // PostgreSQL.
    let data = tempfile::tempdir()?;
    let server = spawn_server(&settings(db_url, data.path())).await?;
    let tokens = enrol(&client, &server.base, max_clients * PATIENTS_PER_CLIENT).await?;
    let mut conn = PgConnection::establish(db_url)?;
    let replay_vars = prepare_replay(&mut conn, tokens.len())?;
    println!();
    println!("PostgreSQL");
    println!(
        "{:>7}  {:>9} {:>8} {:>8}  {:>10}  {:>14}  {:>8}  {:>10}  {:>8}  {:>10}  {:>10}  {:>8}  {:>9}  {:>9}  {:>10}",
        "clients",
        "API/s",
        "p50 ms",
        "p99 ms",
        "same SQL/s",
        "1-row insert/s",
        "API/SQL",
        "API/insert",
        "DB ms/API",
        "DB ms/SQL",
        "DB API/SQL",
        "srv ms",
        "PG ms/API",
        "PG ms/SQL",
        "PG API/SQL",
    );
    let mut counters = Vec::new();
    let mut stacks = Vec::new();
    let mut floors = Vec::new();
    for &clients in levels {
        let before = DbCounters::read(&mut conn)?;
        let replay = pgbench(
            db_url,
            clients,
            seconds,
            PgbenchScript::Replay(&replay_vars),
        )?;
        let replay_counters = DbCounters::read(&mut conn)?.since(&before);
        let insert = pgbench(db_url, clients, seconds, PgbenchScript::Insert)?;
        let before = DbCounters::read(&mut conn)?;
        let run = measured(&server, &tokens, clients, seconds).await?;
        let api_counters = DbCounters::read(&mut conn)?.since(&before);
        floors.push((clients, floor(&server, clients, seconds).await?));
        counters.push((clients, api_counters, run.figures.requests, replay_counters));
        stacks.push((
            clients,
            run.server_ms,
            run.pg_ms,
            run.tool_ms,
            replay.pg_ms_per_tx,
            replay.client_ms_per_tx,
        ));
        let figures = &run.figures;
        println!(
            "{clients:>7}  {:>9.0} {:>8.2} {:>8.2}  {:>10.0}  {:>14.0}  {:>8.2}  {:>10.2}  {:>8.3}  {:>10.3}  {:>10.2}  {:>8.3}  {:>9.3}  {:>9.3}  {:>10.2}   RSS {:.1} MiB{}",
            figures.throughput(),
            ms(figures.p50),
            ms(figures.p99),
            replay.tps,
            insert.tps,
            figures.throughput() / replay.tps,
            figures.throughput() / insert.tps,
            run.db_ms,
            replay.db_ms_per_tx,
            run.db_ms / replay.db_ms_per_tx,
            run.server_ms,
            run.pg_ms,
            replay.pg_ms_per_tx,
            run.pg_ms / replay.pg_ms_per_tx,
            run.rss,
            errors(figures),
        );
    }
    println!(
        "(DB ms: CPU per check-in or per replayed transaction of everything on the machine but the \
         server, pgbench and this tool, from /proc: the database's on a quiet machine; srv ms: the \
         server's own CPU per check-in; PG ms: the CPU of PostgreSQL's own processes, exited \
         backends included, per check-in or transaction: the database's alone, without the \
         HTTP traffic between this tool and the server)"
    );
    println!(
        "CPU ms per check-in (API: server + PostgreSQL + this tool's HTTP clients) and per \
         replayed transaction (same SQL: PostgreSQL + pgbench), on this run's machine:"
    );
    println!(
        "{:>7}  {:>8} {:>8} {:>8} {:>9}   {:>8} {:>8} {:>9}   {:>11}  {:>14}",
        "clients",
        "server",
        "PG",
        "clients",
        "API all",
        "PG",
        "pgbench",
        "SQL all",
        "API/SQL all",
        "server+PG/PG"
    );
    for (clients, server, pg, tool, replay_pg, pgbench) in &stacks {
        let api_all = server + pg + tool;
        let sql_all = replay_pg + pgbench;
        println!(
            "{clients:>7}  {server:>8.3} {pg:>8.3} {tool:>8.3} {api_all:>9.3}   {replay_pg:>8.3} \
             {pgbench:>8.3} {sql_all:>9.3}   {:>11.2}  {:>14.2}",
            api_all / sql_all,
            (server + pg) / replay_pg,
        );
    }
    println!(
        "What the API may spend beyond PostgreSQL (server and clients) to reach {TARGET} of the \
         same SQL on these shared cores (budget: SQL all / {TARGET} - PG per check-in, CPU ms), \
         against the HTTP floor measured \
         on the same server (GET /health/live from as many clients: no token, no database; the \
         server's CPU and this tool's clients' per request):"
    );
    println!(
        "{:>7}  {:>8}  {:>10} {:>8} {:>8} {:>8}  {:>12}",
        "clients", "budget", "floor/s", "server", "clients", "floor", "floor/budget"
    );
    for ((clients, _, pg, _, replay_pg, pgbench), (_, floor)) in stacks.iter().zip(&floors) {
        let budget = (replay_pg + pgbench) / TARGET - pg;
        let http = floor.server_ms + floor.tool_ms;
        println!(
            "{clients:>7}  {budget:>8.3}  {:>10.0} {:>8.3} {:>8.3} {http:>8.3}  {:>12}{}",
            floor.figures.throughput(),
            floor.server_ms,
            floor.tool_ms,
            if budget > 0.0 {
                format!("{:.2}", http / budget)
            } else {
                "no budget".to_owned()
            },
            errors(&floor.figures),
        );
    }
    println!(
        "PostgreSQL's own counters (pg_stat_database) per check-in (API) and per replayed \
         transaction (same SQL):"
    );
    for (clients, api, requests, replay) in &counters {
        let n = *requests as f64;
        let t = replay.commits.max(1) as f64;
        println!(
            "{clients:>7} clients: commits {:.2} / {:.2}, rows returned {:.1} / {:.1}, rows \
             fetched {:.1} / {:.1}, buffer hits {:.1} / {:.1}",
            api.commits as f64 / n,
            replay.commits as f64 / t,
            api.returned as f64 / n,
            replay.returned as f64 / t,
            api.fetched as f64 / n,
            replay.fetched as f64 / t,
            api.hits as f64 / n,
            replay.hits as f64 / t,
        );
    }
    println!(
        "server peak resident memory (VmHWM) after the PostgreSQL runs: {:.1} MiB",
        peak_resident_mib(server.pid()).unwrap_or(0.0)
    );
    growth(&client, &server).await?;
    drop(server);

    // SQLite.
    let sqlite_dir = tempfile::tempdir()?;
    let sqlite_url = format!("sqlite://{}", sqlite_dir.path().join("load.db").display());
    let server = spawn_server(&settings(&sqlite_url, sqlite_dir.path())).await?;
    let tokens = enrol(&client, &server.base, max_clients * PATIENTS_PER_CLIENT).await?;
    println!();
    println!("SQLite");
    println!(
        "{:>7}  {:>9} {:>8} {:>8}  {:>8}",
        "clients", "API/s", "p50 ms", "p99 ms", "RSS MiB"
    );
    for &clients in levels {
        let run = measured(&server, &tokens, clients, seconds).await?;
        let figures = &run.figures;
        println!(
            "{clients:>7}  {:>9.0} {:>8.2} {:>8.2}  {:>8.1}{}",
            figures.throughput(),
            ms(figures.p50),
            ms(figures.p99),
            run.rss,
            errors(figures),
        );
    }
    growth(&client, &server).await?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn errors(figures: &Figures) -> String {
    match figures.errors {
        0 => String::new(),
        n => format!("  ({n} errors)"),
    }
}

/// One load run through the API: its figures, the server's highest resident memory sampled
/// during it, and per check-in the CPU milliseconds of the rest of the machine (the database,
/// on a quiet machine) and of the server.
struct Measured {
    figures: Figures,
    rss: f64,
    db_ms: f64,
    pg_ms: f64,
    server_ms: f64,
    /// This tool's own CPU per check-in (the HTTP clients).
    tool_ms: f64,
}

impl Measured {
    /// The CPU from `before` to `after` shared out over the run's requests.
    fn per_request(figures: Figures, rss: f64, before: &CpuMark, after: &CpuMark) -> Self {
        let (db_secs, server_secs) = before.until(after);
        let n = figures.requests.max(1) as f64;
        Self {
            db_ms: db_secs * 1e3 / n,
            pg_ms: before.postgres_until(after) * 1e3 / n,
            server_ms: server_secs * 1e3 / n,
            tool_ms: before.own_until(after) * 1e3 / n,
            figures,
            rss,
        }
    }
}

async fn measured(
    server: &ServerProcess,
    tokens: &[String],
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Measured> {
    let done = Arc::new(AtomicBool::new(false));
    let pid = server.pid();
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut highest: f64 = 0.0;
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = resident_mib(pid) {
                    highest = highest.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            highest
        })
    };
    let before = CpuMark::now(Some(pid));
    let figures = drive(&server.base, tokens, clients, seconds).await?;
    let after = CpuMark::now(Some(pid));
    done.store(true, Ordering::Relaxed);
    let rss = sampler.await?.max(server.resident_mib().unwrap_or(0.0));
    Ok(Measured::per_request(figures, rss, &before, &after))
}

/// The API's aim as a share of the same SQL's rate (docs/BENCHMARKS.md, "Check-in load").
const TARGET: f64 = 0.85;

/// The HTTP floor: `GET /health/live` from `clients` for `seconds`, with the server's and this
/// tool's CPU per request.
async fn floor(server: &ServerProcess, clients: usize, seconds: u64) -> anyhow::Result<Measured> {
    let pid = server.pid();
    let before = CpuMark::now(Some(pid));
    let figures = drive_get(&server.base, "/health/live", clients, seconds).await?;
    let after = CpuMark::now(Some(pid));
    let rss = server.resident_mib().unwrap_or(0.0);
    Ok(Measured::per_request(figures, rss, &before, &after))
}

/// The median check-in of a new patient and of one with [`HISTORY`] earlier check-ins (a year
/// and a half of four a day), measured alternately so that both see the same machine.
async fn growth(client: &reqwest::Client, server: &ServerProcess) -> anyhow::Result<()> {
    let tokens = enrol_as(client, &server.base, 1 + GROWTH_SAMPLES, "growth").await?;
    let (long, fresh) = tokens.split_first().context("patients")?;
    let now = Utc::now();
    for n in 0..HISTORY {
        let at = now - TimeDelta::hours(6 * (HISTORY - n) as i64);
        check_in_once(client, &server.base, long, (n % 11) as i64, at)
            .await
            .context("a history check-in was not stored")?;
    }
    let (mut new_patient, mut with_history) = (Vec::new(), Vec::new());
    for (n, first) in fresh.iter().take(GROWTH_SAMPLES).enumerate() {
        let mood = (n % 11) as i64;
        if let Some(t) = check_in_once(client, &server.base, first, mood, Utc::now()).await {
            new_patient.push(t);
        }
        if let Some(t) = check_in_once(client, &server.base, long, mood, Utc::now()).await {
            with_history.push(t);
        }
    }
    let (a, b) = (median(&mut new_patient), median(&mut with_history));
    println!(
        "growth, one client, {GROWTH_SAMPLES} check-ins each: p50 {:.2} ms with no earlier \
         check-in, {:.2} ms with {HISTORY} earlier: {:+.0}%",
        ms(a),
        ms(b),
        (b.as_secs_f64() / a.as_secs_f64() - 1.0) * 100.0
    );
    Ok(())
}

/// The `-D` variables of the replay, after making patients `1..=patients` replay copies of an
/// enrolled patient (account and session), and the single-row insert's table.
fn prepare_replay(conn: &mut PgConnection, patients: usize) -> anyhow::Result<Vec<String>> {
    conn.batch_execute(&format!(
        "INSERT INTO accounts SELECT (jsonb_populate_record(NULL::accounts, to_jsonb(a) \
           || jsonb_build_object('id', g::text, 'email', 'replay' || g || '@example.org'))).* \
         FROM (SELECT * FROM accounts WHERE role = 'patient' ORDER BY id LIMIT 1) a, \
              generate_series(1, {patients}) g; \
         INSERT INTO refresh_families SELECT (jsonb_populate_record(NULL::refresh_families, \
           to_jsonb(f) || jsonb_build_object('id', g::text, 'account_id', g::text))).* \
         FROM (SELECT * FROM refresh_families WHERE revoked_at IS NULL AND account_id = \
           (SELECT id FROM accounts WHERE role = 'patient' ORDER BY id LIMIT 1) LIMIT 1) f, \
              generate_series(1, {patients}) g; \
         CREATE TABLE bench_check_ins (LIKE check_ins INCLUDING DEFAULTS INCLUDING CONSTRAINTS \
           INCLUDING INDEXES);"
    ))?;
    let clinic: String = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
        "(SELECT clinic_id FROM accounts WHERE id = '1')",
    ))
    .get_result(conn)?;
    let at = Utc::now().naive_utc();
    let stamp = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    Ok([
        ("patients", patients.to_string()),
        ("clinic", clinic),
        ("instrument", "daily_mood".into()),
        (
            "answers",
            r#"{"anxiety":3,"mood":5,"sleep_hours":7.5}"#.into(),
        ),
        ("at", stamp(at)),
        ("since", stamp(at - TimeDelta::days(22))),
        ("recent", stamp(at - TimeDelta::minutes(10))),
        ("soon", stamp(at + TimeDelta::minutes(10))),
        ("hash", "0".repeat(64)),
        // Answers never sent before, as each check-in of the load carries.
        ("answers_hash", "1".repeat(64)),
        ("timing", "on_time".into()),
        ("complete", "complete".into()),
        ("completed", "completed".into()),
        ("scheduled", "scheduled".into()),
        ("sent", "sent".into()),
        ("reminded", "reminded".into()),
        ("expired", "expired".into()),
        ("one", "1".into()),
        ("mood_rows", "200".into()),
    ]
    .into_iter()
    .map(|(k, v)| format!("{k}={v}"))
    .collect())
}

enum PgbenchScript<'a> {
    /// The server's own statements, with these `-D` variables.
    Replay(&'a [String]),
    /// One row into `bench_check_ins`.
    Insert,
}

/// What one `pgbench` run did: transactions per second, and the database's CPU per transaction
/// (the machine's busy time less pgbench's and this tool's own), in milliseconds.
struct Pgbench {
    tps: f64,
    db_ms_per_tx: f64,
    pg_ms_per_tx: f64,
    /// pgbench's own CPU per transaction.
    client_ms_per_tx: f64,
}

/// `pgbench` running `script` with `clients` clients, as prepared statements (as the server
/// sends them).
fn pgbench(
    url: &str,
    clients: usize,
    seconds: u64,
    script: PgbenchScript,
) -> anyhow::Result<Pgbench> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("script.sql");
    let mut vars = Vec::new();
    match script {
        PgbenchScript::Replay(defines) => {
            std::fs::write(&file, REPLAY)?;
            for define in defines {
                vars.push("-D".to_owned());
                vars.push(define.clone());
            }
        }
        PgbenchScript::Insert => std::fs::write(
            &file,
            "\\set mood random(0, 10)\n\
             INSERT INTO bench_check_ins (id, patient_id, clinic_id, instrument, instrument_version, answers, total, severity, item9, completed_at, received_at, prompt_id, content_hash, timing) \
             VALUES (gen_random_uuid()::text, 'p' || :client_id, 'c', 'daily_mood', 1, '{\"mood\":' || :mood || '}', NULL, NULL, NULL, now(), now(), NULL, md5(random()::text), 'on_time');\n",
        )?,
    }
    let jobs = clients.min(2).to_string();
    let before = CpuMark::now(None);
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &clients.to_string(),
            "-j",
            &jobs,
        ])
        .args(["-T", &seconds.to_string()])
        .args(&vars)
        .arg("-f")
        .arg(&file)
        .arg(url)
        .output()
        .context("run pgbench (install postgresql-client)")?;
    let after = CpuMark::now(None);
    let (db_secs, _) = before.until(&after);
    let pg_secs = before.postgres_until(&after);
    let client_secs = before.own_until(&after);
    let text = String::from_utf8_lossy(&output.stdout);
    let figure = |prefix: &str, word: usize| -> anyhow::Result<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(word))
            .and_then(|v| v.parse().ok())
            .with_context(|| {
                format!(
                    "pgbench gave no {prefix}: {text} {}",
                    String::from_utf8_lossy(&output.stderr)
                )
            })
    };
    let tps = figure("tps = ", 2)?;
    let transactions = figure("number of transactions actually processed: ", 5)?;
    Ok(Pgbench {
        tps,
        db_ms_per_tx: db_secs * 1e3 / transactions.max(1.0),
        pg_ms_per_tx: pg_secs * 1e3 / transactions.max(1.0),
        client_ms_per_tx: client_secs * 1e3 / transactions.max(1.0),
    })
}

/// Server connection-pool size: `LOAD_POOL_SIZE`, default 8.
fn pool_size() -> usize {
    std::env::var("LOAD_POOL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// The database's cumulative counters from `pg_stat_database` (this database only).
#[derive(Debug, Clone, Copy, diesel::QueryableByName)]
struct DbCounters {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    commits: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    returned: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    fetched: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    hits: i64,
}

impl DbCounters {
    /// Now (the statistics collector's view, flushed by a new snapshot).
    fn read(conn: &mut PgConnection) -> anyhow::Result<Self> {
        conn.batch_execute("SELECT pg_stat_clear_snapshot()")?;
        // The collector publishes a backend's counts when its transaction ends and at most every
        // half second: wait that out so that a run's last transactions are in.
        std::thread::sleep(Duration::from_millis(1100));
        Ok(diesel::sql_query(
            "SELECT xact_commit AS commits, tup_returned AS returned, tup_fetched AS fetched, \
             blks_hit AS hits FROM pg_stat_database WHERE datname = current_database()",
        )
        .get_result(conn)?)
    }

    fn since(&self, before: &DbCounters) -> DbCounters {
        DbCounters {
            commits: self.commits - before.commits,
            returned: self.returned - before.returned,
            fetched: self.fetched - before.fetched,
            hits: self.hits - before.hits,
        }
    }
}
