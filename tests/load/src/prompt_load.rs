//! Prompt scheduling load: plan a day of prompts for many patients (mixed zones, windows, plans
//! and sessions), then run that day through the workers with the clock fast-forwarded, sending
//! every due prompt and reminder through the job queue and the FCM gateway to a fake FCM server
//! over HTTP. PostgreSQL first, then SQLite.
//!
//! ```sh
//! cargo run --release -p companion-load --bin prompt-load -- [PATIENTS] [plan]
//! ```
//! With `plan`, each backend stops after planning the day (no delivery), and planning is timed
//! three times on fresh databases.
//! Prints: the fake FCM's own ceiling (a bare client over one HTTP/2 connection, same run),
//! seeding time, planning time (and prompts planned), the simulated day's wall time with pushes
//! delivered, pushes per second and their share of the ceiling, and the process's peak resident
//! memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use companion::app::App;
use companion::clock::{Clock, ManualClock};
use companion::config::Config;
use companion::jobs::runner::Runner;
use companion::prompt::passes;
use companion_fake_push::FakeFcm;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};
use tokio_util::sync::CancellationToken;

const KEY: &str = include_str!("../../fixtures/fcm-test-key.pem");

/// Zones of real clinics' patients, including half-hour and 45-minute offsets and both
/// hemispheres' daylight saving.
const ZONES: [&str; 10] = [
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Sao_Paulo",
];

/// Three clinic plans: the default; daily mood at a random minute of the window; daily mood
/// plus weekly GAD-7 and before-session PHQ-9.
fn clinic_plans() -> [Option<String>; 3] {
    [
        None,
        Some(
            serde_json::json!({"rules": [
                {"id": "mood", "instrument": "daily_mood", "anchor": {"kind": "daily"}, "random_offset": true}
            ]})
            .to_string(),
        ),
        Some(
            serde_json::json!({"rules": [
                {"id": "mood", "instrument": "daily_mood", "anchor": {"kind": "daily"}},
                {"id": "pre", "instrument": "phq9", "anchor": {"kind": "before_session", "hours_before": 24}},
                {"id": "anx", "instrument": "gad7", "anchor": {"kind": "weekly", "weekday": "sun"}}
            ]})
            .to_string(),
        ),
    ]
}

/// The wall clock, a fixed distance ahead.
struct Ahead(TimeDelta);

impl Clock for Ahead {
    fn now(&self) -> DateTime<Utc> {
        (Utc::now() + self.0).trunc_subsecs(6)
    }
}

fn peak_memory_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn app_on(
    database_url: &str,
    dir: &std::path::Path,
    fake: &FakeFcm,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<App>> {
    let account = serde_json::json!({
        "project_id": "load", "client_email": "load@example.iam", "private_key": KEY, "token_uri": fake.token_url(),
    });
    let key_file = dir.join("service-account.json");
    std::fs::write(&key_file, account.to_string())?;
    let settings = BTreeMap::from([
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        ("COMPANION_DATA_DIR".to_owned(), dir.display().to_string()),
        ("COMPANION_DB_POOL_SIZE".to_owned(), "16".to_owned()),
        ("COMPANION_WORKER_CONCURRENCY".to_owned(), "64".to_owned()),
        ("COMPANION_PROMPT_HORIZON_HOURS".to_owned(), "24".to_owned()),
        ("COMPANION_LOG".to_owned(), "warn".to_owned()),
        (
            "COMPANION_FCM_SERVICE_ACCOUNT_FILE".to_owned(),
            key_file.display().to_string(),
        ),
        ("COMPANION_FCM_BASE_URL".to_owned(), fake.base_url()),
    ]);
    let app = Arc::new(App::new(Config::from_source(&settings)?, clock)?);
    app.db.migrate().await?;
    Ok(app)
}

/// Inserts clinics, patients (with schedules and one device each) and some sessions, in
/// multi-row statements. Every value is generated here, so plain SQL text is safe.
async fn seed(app: &App, patients: usize, start: DateTime<Utc>) -> anyhow::Result<()> {
    let stamp = start.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string();
    let clinics: Vec<String> = (0..3).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let plans = clinic_plans();
    let mut statements = Vec::new();
    for (id, plan) in clinics.iter().zip(&plans) {
        let plan = plan
            .as_ref()
            .map_or("NULL".to_owned(), |p| format!("'{p}'"));
        statements.push(format!(
            "INSERT INTO clinics (id, name, timezone, created_at, care_plan) \
             VALUES ('{id}', 'Load clinic', 'UTC', '{stamp}', {plan})"
        ));
    }
    for chunk_start in (0..patients).step_by(1000) {
        let (mut accounts, mut schedules, mut devices, mut sessions) =
            (String::new(), String::new(), String::new(), String::new());
        for i in chunk_start..(chunk_start + 1000).min(patients) {
            let id = uuid::Uuid::now_v7();
            let clinic = &clinics[i % 3];
            let zone = ZONES[i % ZONES.len()];
            let sep = if accounts.is_empty() { "" } else { "," };
            write!(
                accounts,
                "{sep}('{id}', 'p{i}@load.example', 'x', 'patient', '{clinic}', '{zone}', '{stamp}', '{stamp}', false)"
            )?;
            let window_start = 7 + (i % 5);
            write!(
                schedules,
                "{sep}('{id}', '{clinic}', '{window_start:02}:00', '{:02}:00', '21:00', '08:00', '{stamp}', '{stamp}')",
                window_start + 2
            )?;
            write!(
                devices,
                "{sep}('{}', '{id}', 'android', 'ok-{i}', true, 0, '{stamp}', '{stamp}')",
                uuid::Uuid::now_v7()
            )?;
            if i % 10 == 0 {
                let at = (start + TimeDelta::hours(20 + (i % 7) as i64))
                    .naive_utc()
                    .format("%Y-%m-%d %H:%M:%S");
                let sep = if sessions.is_empty() { "" } else { "," };
                write!(
                    sessions,
                    "{sep}('{}', '{id}', '{clinic}', 'intranasal_esketamine', 'scheduled', '{at}', '{id}', '{stamp}', '{stamp}')",
                    uuid::Uuid::now_v7()
                )?;
            }
        }
        statements.push(format!(
            "INSERT INTO accounts (id, email, password_hash, role, clinic_id, timezone, created_at, updated_at, on_call) VALUES {accounts}"
        ));
        statements.push(format!(
            "INSERT INTO patient_schedules (patient_id, clinic_id, window_start, window_end, quiet_start, quiet_end, planned_until, updated_at) VALUES {schedules}"
        ));
        statements.push(format!(
            "INSERT INTO devices (id, account_id, platform, token, active, invalid_argument_count, created_at, last_seen_at) VALUES {devices}"
        ));
        if !sessions.is_empty() {
            statements.push(format!(
                "INSERT INTO treatment_sessions (id, patient_id, clinic_id, modality, status, scheduled_at, created_by, created_at, updated_at) VALUES {sessions}"
            ));
        }
    }
    app.db
        .write(move |conn| {
            for sql in &statements {
                diesel::sql_query(sql.as_str()).execute(conn)?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}

async fn count(app: &App, sql: &'static str) -> anyhow::Result<i64> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    Ok(app
        .db
        .run(move |conn| diesel::sql_query(sql).get_result::<Count>(conn))
        .await?
        .n)
}

async fn measure(
    label: &str,
    database_url: &str,
    patients: usize,
    plan_only: bool,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // As many requests in flight as the worker runs jobs.
    let in_flight = 64;
    let ceiling = if plan_only {
        0.0
    } else {
        let ceiling = FakeFcm::start()
            .await?
            .ceiling(20_000, in_flight, true)
            .await
            .map_err(anyhow::Error::msg)?;
        println!(
            "{label:<10} fake FCM ceiling (bare client, {in_flight} in flight, HTTP/2): {ceiling:.0}/s"
        );
        ceiling
    };
    let fake = FakeFcm::start().await?;
    // Saturday 7 March 2026, 00:00 UTC: New York springs forward the next morning.
    let start: DateTime<Utc> = "2026-03-07T00:00:00Z".parse()?;
    let clock = Arc::new(ManualClock::new(start));
    let app = app_on(database_url, dir.path(), &fake, clock.clone()).await?;

    let began = Instant::now();
    seed(&app, patients, start).await?;
    let seeded = began.elapsed();

    let began = Instant::now();
    let report = passes::tick(&app).await?;
    let planned = began.elapsed();
    let prompts = count(&app, "SELECT COUNT(*) AS n FROM prompts").await?;
    println!(
        "{label:<10} {patients} patients seeded in {seeded:.2?}; planned a day ({} patients, {prompts} prompts) in {planned:.2?}; peak resident memory {:.0} MiB",
        report.planned,
        peak_memory_mib()
    );
    if plan_only {
        return Ok(());
    }

    // The day, fast-forwarded in 10-minute steps, with one worker delivering as it goes. The
    // worker keeps real time two days ahead, so that every push the day enqueues is due for it
    // while its job leases still run at the speed of the wall clock.
    let ahead = start + TimeDelta::days(2) - Utc::now();
    let deliverer = app_on(database_url, dir.path(), &fake, Arc::new(Ahead(ahead))).await?;
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(Runner::new(deliverer).run(shutdown.clone()));
    let began = Instant::now();
    let mut totals = passes::TickReport::default();
    let mut tick_time = Duration::ZERO;
    for step in 1..=(24 * 6) {
        clock.set(start + TimeDelta::minutes(10 * step));
        let t = Instant::now();
        let r = passes::tick(&app).await?;
        tick_time += t.elapsed();
        totals.sent += r.sent;
        totals.reminded += r.reminded;
        totals.expired += r.expired;
        totals.planned += r.planned;
    }
    let expected = totals.sent + totals.reminded;
    let deadline = Instant::now() + Duration::from_secs(1800);
    while fake.delivered_count() < expected {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {expected} pushes delivered",
            fake.delivered_count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let day = began.elapsed();
    shutdown.cancel();
    worker.await?;
    println!(
        "{label:<10} the day: {} prompts sent, {} reminders, {} expired, {} patients replanned; \
         {} pushes delivered in {day:.2?} = {:.0} pushes/s, {:.0}% of the ceiling (prompt passes took {tick_time:.2?})",
        totals.sent,
        totals.reminded,
        totals.expired,
        totals.planned,
        fake.delivered_count(),
        fake.delivered_count() as f64 / day.as_secs_f64(),
        100.0 * fake.delivered_count() as f64 / day.as_secs_f64() / ceiling,
    );
    // Every push once: no (device, prompt, kind) twice.
    let mut seen = std::collections::HashSet::new();
    let mut twice = 0;
    for r in fake.delivered() {
        let data = &r.body["message"]["data"];
        if !seen.insert((
            r.token.clone(),
            data["prompt_id"].to_string(),
            data["kind"].to_string(),
        )) {
            twice += 1;
        }
    }
    let notifications = count(&app, "SELECT COUNT(*) AS n FROM notifications").await?;
    let retried = count(
        &app,
        "SELECT COUNT(*) AS n FROM notification_attempts WHERE outcome <> 'delivered'",
    )
    .await?;
    if retried > 0 {
        #[derive(diesel::QueryableByName)]
        struct Reason {
            #[diesel(sql_type = diesel::sql_types::Text)]
            reason: String,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let reasons = app
            .db
            .run(|conn| {
                diesel::sql_query(
                    "SELECT outcome || ': ' || COALESCE(provider_reason, '') AS reason, COUNT(*) AS n \
                     FROM notification_attempts WHERE outcome <> 'delivered' GROUP BY outcome, provider_reason",
                )
                .load::<Reason>(conn)
            })
            .await?;
        for r in reasons {
            println!("{label:<10} attempts not delivered: {} x {}", r.n, r.reason);
        }
    }
    println!(
        "{label:<10} {notifications} notifications stored; pushes delivered twice to a device: {twice}"
    );
    println!(
        "{label:<10} peak resident memory so far: {:.0} MiB (includes the fake FCM's copy of every message)",
        peak_memory_mib()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let patients: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let plan_only = std::env::args().nth(2).as_deref() == Some("plan");
    let rounds = if plan_only { 3 } else { 1 };
    println!(
        "prompt load: {patients} patients in {} zones, 3 clinic plans, one device each, 10% with a session; \
         fake FCM (h2c) on loopback; one worker (64 jobs at once)",
        ZONES.len()
    );
    let server_url = std::env::var("COMPANION_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut admin = PgConnection::establish(&server_url).context("connect to PostgreSQL")?;
    for _ in 0..rounds {
        let name = format!("companion_prompt_load_{}", uuid::Uuid::new_v4().simple());
        admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let mut url = reqwest::Url::parse(&server_url)?;
        url.set_path(&format!("/{name}"));
        let result = measure("PostgreSQL", url.as_str(), patients, plan_only).await;
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        result?;
    }
    for _ in 0..rounds {
        let dir = tempfile::tempdir()?;
        measure(
            "SQLite",
            &format!("sqlite://{}", dir.path().join("prompts.db").display()),
            patients,
            plan_only,
        )
        .await?;
    }
    Ok(())
}
