//! Push delivery load: notifications enqueued and delivered through the job queue and the FCM
//! gateway to a fake FCM server (HTTP/2 over cleartext, as the gateway speaks to a local URL), on
//! PostgreSQL and on SQLite.
//!
//! ```sh
//! cargo build --release -p companion-load
//! target/release/push-load [COUNT] [PACED_PER_SECOND]
//! ```
//! Ceiling: in the same run, a bare HTTP client (no queue, no database) sends COUNT messages to
//! the same fake as fast as it answers, over one HTTP/2 connection with as many requests in
//! flight as the worker runs jobs (and over HTTP/1.1 with a connection each, for reference).
//! Throughput: COUNT notifications (default 10,000) enqueued first, then drained by one worker,
//! printed as a share of the HTTP/2 ceiling.
//! The worker runs the server's default number of jobs at once unless `LOAD_CONCURRENCY` says
//! otherwise. `LOAD_GATEWAY_LATENCY_MS` (default 0) makes the fake answer each message that much
//! later, as a gateway across the internet does; the ceiling is then measured with the same
//! latency.
//! Latency: notifications enqueued one per transaction at PACED_PER_SECOND (default 200, below
//! capacity) for 10 s while the worker runs; enqueue-to-gateway p50/p99. Prints figures only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use companion::app::App;
use companion::clock::SystemClock;
use companion::config::Config;
use companion::jobs::runner::Runner;
use companion::push::content::PushMessage;
use companion::push::store::{self as push_store, DeviceRow};
use companion_fake_push::{FakeFcm, FakeOptions};
use companion_load::percentile;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

const KEY: &str = include_str!("../../fixtures/fcm-test-key.pem");

async fn app_on(
    database_url: &str,
    dir: &std::path::Path,
    fake: &FakeFcm,
    concurrency: usize,
) -> anyhow::Result<Arc<App>> {
    let account = serde_json::json!({
        "project_id": "load", "client_email": "load@example.iam", "private_key": KEY, "token_uri": fake.token_url(),
    });
    let key_file = dir.join("service-account.json");
    std::fs::write(&key_file, account.to_string())?;
    let settings = BTreeMap::from([
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        ("COMPANION_DATA_DIR".to_owned(), dir.display().to_string()),
        (
            "COMPANION_DB_POOL_SIZE".to_owned(),
            std::env::var("LOAD_POOL_SIZE").unwrap_or_else(|_| "16".into()),
        ),
        (
            "COMPANION_WORKER_CONCURRENCY".to_owned(),
            concurrency.to_string(),
        ),
        ("COMPANION_LOG".to_owned(), "warn".to_owned()),
        (
            "COMPANION_FCM_SERVICE_ACCOUNT_FILE".to_owned(),
            key_file.display().to_string(),
        ),
        ("COMPANION_FCM_BASE_URL".to_owned(), fake.base_url()),
    ]);
    let app = Arc::new(App::new(
        Config::from_source(&settings)?,
        Arc::new(SystemClock),
    )?);
    app.db.migrate().await?;
    Ok(app)
}

async fn device(app: &App) -> anyhow::Result<DeviceRow> {
    let account = companion::account::use_cases::create_org_admin(
        &app.db,
        &format!("push-{}@example.org", uuid::Uuid::new_v4().simple()),
        "load test passphrase",
        app.now(),
    )
    .await?;
    let now = app.now().naive_utc();
    let row = DeviceRow {
        id: push_store::new_device_id(),
        account_id: account,
        platform: "android".into(),
        token: "ok-load".into(),
        app_version: None,
        locale: None,
        active: true,
        invalid_argument_count: 0,
        deactivated_reason: None,
        created_at: now,
        last_seen_at: now,
        web_p256dh: None,
        web_auth: None,
    };
    Ok(app
        .db
        .write(move |conn| push_store::register(conn, row))
        .await?
        .0)
}

async fn enqueue(app: &App, device: &DeviceRow, count: usize) -> anyhow::Result<Vec<String>> {
    let device = device.clone();
    let now = app.now().naive_utc();
    let ids = app
        .db
        .write(move |conn| {
            (0..count)
                .map(|_| {
                    push_store::notify_device(
                        conn,
                        &device,
                        |id| PushMessage::Test {
                            notification_id: id.to_owned(),
                        },
                        now,
                    )
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    app.jobs_enqueued();
    Ok(ids)
}

async fn wait_for(fake: &FakeFcm, count: usize, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while fake.delivered_count() < count {
        anyhow::ensure!(
            started.elapsed() < limit,
            "only {} of {count} delivered",
            fake.delivered_count()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// What the run is against: jobs the worker runs at once, and how the fake answers.
struct Load {
    concurrency: usize,
    gateway: FakeOptions,
}

async fn measure(
    label: &str,
    database_url: &str,
    count: usize,
    paced: u64,
    load: &Load,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let concurrency = load.concurrency;
    let fake = FakeFcm::start_with(load.gateway.clone()).await?;
    let h1 = fake
        .ceiling(count, concurrency, false)
        .await
        .map_err(anyhow::Error::msg)?;
    let h2 = fake
        .ceiling(count, concurrency, true)
        .await
        .map_err(anyhow::Error::msg)?;
    println!(
        "{label:<10} fake FCM ceiling (bare client, {concurrency} in flight): {h2:>7.0}/s over HTTP/2, {h1:>7.0}/s over HTTP/1.1"
    );
    let fake = FakeFcm::start_with(load.gateway.clone()).await?;
    let app = app_on(database_url, dir.path(), &fake, concurrency).await?;
    let device = device(&app).await?;

    // Throughput: a backlog of `count`, drained by one worker.
    for _ in 0..count / 500 {
        enqueue(&app, &device, 500).await?;
    }
    enqueue(&app, &device, count % 500).await?;
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let worker = tokio::spawn(Runner::new(app.clone()).run(shutdown.clone()));
    wait_for(&fake, count, Duration::from_secs(600)).await?;
    let elapsed = started.elapsed();
    let rate = count as f64 / elapsed.as_secs_f64();
    println!(
        "{label:<10} backlog of {count}: {rate:>7.0} notifications/s ({elapsed:.2?}), {:.0}% of the HTTP/2 ceiling",
        100.0 * rate / h2
    );
    let versions: std::collections::BTreeSet<String> =
        fake.delivered().into_iter().map(|r| r.version).collect();
    anyhow::ensure!(
        versions.len() == 1 && versions.contains("HTTP/2.0"),
        "the gateway did not speak HTTP/2 only: {versions:?}"
    );

    // Latency below saturation: one notification per transaction at a steady pace.
    let before = fake.delivered_count();
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let interval = Duration::from_secs_f64(1.0 / paced as f64);
    let total = (paced * 10) as usize;
    let mut next = Instant::now();
    for _ in 0..total {
        let ids = enqueue(&app, &device, 1).await?;
        let now = Instant::now();
        for id in ids {
            sent_at.insert(id, now);
        }
        next += interval;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
    wait_for(&fake, before + total, Duration::from_secs(120)).await?;
    let mut latencies: Vec<Duration> = fake
        .delivered()
        .iter()
        .filter_map(|r| {
            let id = r.body["message"]["data"]["notification_id"].as_str()?;
            Some(r.at.saturating_duration_since(*sent_at.get(id)?))
        })
        .collect();
    latencies.sort();
    println!(
        "{label:<10} paced at {paced}/s: enqueue-to-gateway p50 {:.1} ms, p99 {:.1} ms ({} notifications)",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.len()
    );
    shutdown.cancel();
    worker.await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let paced: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(200);
    let load = Load {
        concurrency: companion_load::worker_concurrency()?,
        gateway: companion_load::gateway_options()?,
    };
    println!(
        "push load: fake FCM (h2c) on loopback answering after {:?}, one worker ({} jobs at once), all on this machine",
        load.gateway.latency, load.concurrency
    );
    let server_url = std::env::var("COMPANION_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("companion_push_load_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::establish(&server_url).context("connect to PostgreSQL")?;
    admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
    let mut url = reqwest::Url::parse(&server_url)?;
    url.set_path(&format!("/{name}"));
    let result = measure("PostgreSQL", url.as_str(), count, paced, &load).await;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    result?;
    let dir = tempfile::tempdir()?;
    measure(
        "SQLite",
        &format!("sqlite://{}", dir.path().join("push.db").display()),
        count,
        paced,
        &load,
    )
    .await
}
