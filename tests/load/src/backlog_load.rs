//! Safety work first: the delay from an item-9 check-in to the on-call clinician's push reaching a
//! fake FCM server while the worker drains a backlog of routine prompt pushes, beside the same
//! delay with no backlog, measured in the same run.
//!
//! ```sh
//! cargo run --release -p companion-load --bin backlog-load -- [BACKLOG] [SIGNALS] [postgres|sqlite]
//! ```
//! Defaults: 100,000 prompt pushes, 10 signals (one every 250 ms), PostgreSQL at
//! `COMPANION_TEST_PG_URL` (or 127.0.0.1:5432). Prints figures only; the aim is an urgent push
//! within one second of its check-in whatever the backlog. The worker runs the server's default
//! number of jobs at once unless `LOAD_CONCURRENCY` says otherwise; `LOAD_GATEWAY_LATENCY_MS`
//! (default 0) makes the fake answer each message that much later, as a gateway across the
//! internet does (a message counts as arrived when it arrives, before that wait).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{SecondsFormat, Utc};
use companion::jobs::runner::Runner;
use companion::push::content::PushMessage;
use companion_fake_push::FakeFcm;
use companion_load::{PASSWORD, post, start_app};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const KEY: &str = include_str!("../../fixtures/fcm-test-key.pem");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let backlog: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let signals: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let backend = args.next().unwrap_or_else(|| "postgres".to_owned());
    match backend.as_str() {
        "sqlite" => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("load.db").display());
            run(&url, "SQLite", backlog, signals).await
        }
        _ => {
            let server_url = std::env::var("COMPANION_TEST_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
            let name = format!("companion_backlog_load_{}", uuid::Uuid::new_v4().simple());
            let mut admin =
                PgConnection::establish(&server_url).context("connect to PostgreSQL")?;
            admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
            let mut url = reqwest::Url::parse(&server_url)?;
            url.set_path(&format!("/{name}"));
            let result = run(url.as_str(), "PostgreSQL", backlog, signals).await;
            admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
            result
        }
    }
}

async fn enrol(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    clinic: &str,
    role: &str,
    n: usize,
) -> anyhow::Result<String> {
    let (_, invitation) = post(
        client,
        format!("{base}/v1/clinics/{clinic}/invitations"),
        Some(admin),
        json!({"role": role}),
    )
    .await?;
    let (status, accepted) = post(
        client,
        format!("{base}/v1/invitations/accept"),
        None,
        json!({"code": invitation["code"], "email": format!("{role}-{n}@example.org"), "password": PASSWORD}),
    )
    .await?;
    anyhow::ensure!(status == 201, "enrolment failed: {status} {accepted}");
    Ok(accepted["access_token"]
        .as_str()
        .context("token")?
        .to_owned())
}

/// Sends `signals` item-9 check-ins from `patients` and returns each one's delay until its push
/// reached the fake, in milliseconds, sorted.
async fn measure(
    client: &reqwest::Client,
    base: &str,
    fake: &FakeFcm,
    patients: &[String],
) -> anyhow::Result<Vec<f64>> {
    let mut answers = serde_json::Map::new();
    for i in 1..=9 {
        answers.insert(format!("q{i}"), json!(if i == 9 { 2 } else { 0 }));
    }
    let mut delays = Vec::new();
    for token in patients {
        let before = alert_pushes(fake);
        let body = json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "phq9", "answers": answers,
            "completed_at": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)});
        let started = Instant::now();
        let (status, _) = post(client, format!("{base}/v1/check-ins"), Some(token), body).await?;
        anyhow::ensure!(status == 201, "check-in refused: {status}");
        let deadline = started + Duration::from_secs(60);
        while alert_pushes(fake) == before {
            anyhow::ensure!(Instant::now() < deadline, "no alert push within 60 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        delays.push(started.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    delays.sort_by(f64::total_cmp);
    Ok(delays)
}

fn alert_pushes(fake: &FakeFcm) -> usize {
    fake.delivered()
        .iter()
        .filter(|r| r.body["message"]["data"]["kind"] == "care_alert")
        .count()
}

fn routine_pushes(fake: &FakeFcm) -> usize {
    fake.delivered()
        .iter()
        .filter(|r| r.body["message"]["data"]["kind"] == "check_in_prompt")
        .count()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

async fn run(
    database_url: &str,
    label: &str,
    backlog: usize,
    signals: usize,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let gateway = companion_load::gateway_options()?;
    let latency = gateway.latency;
    let fake = FakeFcm::start_with(gateway).await?;
    let key_file = dir.path().join("service-account.json");
    std::fs::write(&key_file, json!({"project_id": "load", "client_email": "load@example.iam", "private_key": KEY, "token_uri": fake.token_url()}).to_string())?;
    let mut settings = BTreeMap::from([
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        (
            "COMPANION_DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        ("COMPANION_DB_POOL_SIZE".to_owned(), "8".to_owned()),
        ("COMPANION_AUTH_RATE_LIMIT".to_owned(), "100000".to_owned()),
        ("COMPANION_LOG".to_owned(), "warn".to_owned()),
        ("COMPANION_SAFETY_ANSWER_WAIT_MS".to_owned(), "0".to_owned()),
        (
            "COMPANION_FCM_SERVICE_ACCOUNT_FILE".to_owned(),
            key_file.display().to_string(),
        ),
        ("COMPANION_FCM_BASE_URL".to_owned(), fake.base_url()),
    ]);
    settings.insert(
        "COMPANION_WORKER_CONCURRENCY".to_owned(),
        companion_load::worker_concurrency()?.to_string(),
    );
    let (addr, app) = start_app(settings).await?;
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let admin = companion_load::sign_in_admin(&client, &base).await?;
    let (_, clinic) = post(
        &client,
        format!("{base}/v1/clinics"),
        Some(&admin),
        json!({"name": "Load", "timezone": "UTC", "country": "US"}),
    )
    .await?;
    let clinic = clinic["id"].as_str().context("clinic")?.to_owned();
    let clinician = enrol(&client, &base, &admin, &clinic, "clinician", 0).await?;
    client
        .put(format!("{base}/v1/me/on-call"))
        .bearer_auth(&clinician)
        .json(&json!({"on_call": true}))
        .send()
        .await?;
    post(
        &client,
        format!("{base}/v1/devices"),
        Some(&clinician),
        json!({"platform": "android", "token": "ok-clinician"}),
    )
    .await?;
    let mut patients = Vec::new();
    for n in 0..2 * signals {
        patients.push(enrol(&client, &base, &admin, &clinic, "patient", n).await?);
    }
    let prompted = enrol(&client, &base, &admin, &clinic, "patient", 1_000_000).await?;
    let (_, device) = post(
        &client,
        format!("{base}/v1/devices"),
        Some(&prompted),
        json!({"platform": "android", "token": "ok-patient"}),
    )
    .await?;
    let device_id = device["id"].as_str().context("device")?.to_owned();

    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(Runner::new(app.clone()).run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quiet = measure(&client, &base, &fake, &patients[..signals]).await?;

    // The backlog: routine prompt pushes, all due now, queued in large transactions.
    let queued = Instant::now();
    let mut left = backlog;
    while left > 0 {
        let n = left.min(5_000);
        left -= n;
        let device_id = device_id.clone();
        let now = app.now().naive_utc();
        app.db
            .write(move |conn| {
                let device = companion::push::store::find_device(conn, &device_id)?
                    .ok_or(diesel::result::Error::NotFound)?;
                let items = (0..n)
                    .map(|_| {
                        (
                            &device,
                            PushMessage::CheckInPrompt {
                                prompt_id: uuid::Uuid::now_v7().to_string(),
                            },
                        )
                    })
                    .collect();
                companion::push::store::notify_devices(conn, items, now)
            })
            .await?;
    }
    app.jobs_enqueued();
    let queue_seconds = queued.elapsed().as_secs_f64();
    // Let the worker get going on the backlog first.
    while routine_pushes(&fake) < backlog.min(2_000) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let behind_started = routine_pushes(&fake);
    let busy = measure(&client, &base, &fake, &patients[signals..]).await?;
    let behind_ended = routine_pushes(&fake);
    shutdown.cancel();
    worker.await?;
    let show = |v: &[f64]| {
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct(v, 0.5),
            pct(v, 0.99),
            v.last().copied().unwrap_or_default()
        )
    };
    println!(
        "backlog, {label}: item-9 check-in -> on-call push, {signals} signals each, one worker ({} jobs at once), the gateway answering after {latency:?}\n  \
         no backlog:                       {}\n  \
         behind {backlog} prompt pushes:   {}\n  \
         ratio (p99 behind / p99 without): {:.2}; aim: under 1,000 ms behind the backlog\n  \
         (backlog queued in {queue_seconds:.1} s; {} of its pushes went out while the signals were measured, \
         {} still waiting when the last urgent push arrived)",
        app.config.jobs.concurrency,
        show(&quiet),
        show(&busy),
        pct(&busy, 0.99) / pct(&quiet, 0.99).max(0.001),
        behind_ended - behind_started,
        backlog.saturating_sub(behind_ended),
    );
    Ok(())
}
