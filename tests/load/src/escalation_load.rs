//! Escalation latency: from the check-in request carrying a PHQ-9 item 9 answer to the on-call
//! clinician's push reaching a fake FCM server, while other patients' check-ins load the server,
//! on PostgreSQL.
//!
//! ```sh
//! cargo run --release -p companion-load --bin escalation-load -- [SIGNALS] [LOAD_CLIENTS]
//! ```
//! Defaults: 100 safety signals, one every 100 ms, from different patients (each opens its own
//! alert) beside 8 clients submitting daily check-ins back to back. Prints figures only.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{SecondsFormat, Utc};
use companion::jobs::runner::Runner;
use companion_fake_push::FakeFcm;
use companion_load::{PASSWORD, drive, post, start_app};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const KEY: &str = include_str!("../../fixtures/fcm-test-key.pem");

async fn join(
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
    let (status, accepted) = post(client, format!("{base}/v1/invitations/accept"), None,
        json!({"code": invitation["code"], "email": format!("{role}-{n}@example.org"), "password": PASSWORD})).await?;
    anyhow::ensure!(status == 201, "enrolment failed: {status} {accepted}");
    Ok(accepted["access_token"]
        .as_str()
        .context("token")?
        .to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let signals: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(100);
    let load_clients: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(8);
    let server_url = std::env::var("COMPANION_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!(
        "companion_escalation_load_{}",
        uuid::Uuid::new_v4().simple()
    );
    let mut admin_conn = PgConnection::establish(&server_url).context("connect to PostgreSQL")?;
    admin_conn.batch_execute(&format!("CREATE DATABASE {name}"))?;
    let mut url = reqwest::Url::parse(&server_url)?;
    url.set_path(&format!("/{name}"));
    let result = run(url.as_str(), signals, load_clients).await;
    admin_conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    result
}

async fn run(database_url: &str, signals: usize, load_clients: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fake = FakeFcm::start().await?;
    let key_file = dir.path().join("service-account.json");
    std::fs::write(&key_file, json!({"project_id": "load", "client_email": "load@example.iam", "private_key": KEY, "token_uri": fake.token_url()}).to_string())?;
    let settings = BTreeMap::from([
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        (
            "COMPANION_DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        ("COMPANION_DB_POOL_SIZE".to_owned(), "8".to_owned()),
        ("COMPANION_AUTH_RATE_LIMIT".to_owned(), "100000".to_owned()),
        ("COMPANION_LOG".to_owned(), "warn".to_owned()),
        (
            "COMPANION_FCM_SERVICE_ACCOUNT_FILE".to_owned(),
            key_file.display().to_string(),
        ),
        ("COMPANION_FCM_BASE_URL".to_owned(), fake.base_url()),
    ]);
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
    let clinician = join(&client, &base, &admin, &clinic, "clinician", 0).await?;
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
    let mut load = Vec::new();
    for n in 0..load_clients {
        load.push(join(&client, &base, &admin, &clinic, "patient", n).await?);
    }
    let mut signalling = Vec::new();
    for n in 0..signals {
        let token = join(&client, &base, &admin, &clinic, "patient", 10_000 + n).await?;
        let me: Value = client
            .get(format!("{base}/v1/me"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        signalling.push((token, me["id"].as_str().context("id")?.to_owned()));
    }

    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(Runner::new(app.clone()).run(shutdown.clone()));
    let seconds = (signals as u64 / 10) + 2;
    let background = {
        let base = base.clone();
        tokio::spawn(async move { drive(&base, &load, load_clients, seconds).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let mut answers = serde_json::Map::new();
    for i in 1..=9 {
        answers.insert(format!("q{i}"), json!(if i == 9 { 1 } else { 0 }));
    }
    for (token, patient) in &signalling {
        let body = json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "phq9", "answers": answers,
            "completed_at": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)});
        let started = Instant::now();
        let (status, _) = post(&client, format!("{base}/v1/check-ins"), Some(token), body).await?;
        anyhow::ensure!(status == 201, "check-in refused: {status}");
        sent_at.insert(patient.clone(), started);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let figures = background.await??;
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.delivered_count() < signals {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {signals} alerts pushed",
            fake.delivered_count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let alerts: Value = client
        .get(format!("{base}/v1/alerts?limit=200"))
        .bearer_auth(&clinician)
        .send()
        .await?
        .json()
        .await?;
    let patient_of: HashMap<String, String> = alerts["items"]
        .as_array()
        .context("alerts")?
        .iter()
        .filter_map(|a| {
            Some((
                a["id"].as_str()?.to_owned(),
                a["patient_id"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let mut latencies: Vec<Duration> = fake
        .delivered()
        .iter()
        .filter_map(|r| {
            let alert = r.body["message"]["data"]["alert_id"].as_str()?;
            let sent = sent_at.get(patient_of.get(alert)?)?;
            Some(r.at.saturating_duration_since(*sent))
        })
        .collect();
    latencies.sort();
    let pct = |p: f64| companion_load::percentile(&latencies, p);
    println!(
        "escalation, PostgreSQL: {} item-9 check-ins -> on-call push: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         meanwhile {load_clients} clients stored {:.0} check-ins/s",
        latencies.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        figures.throughput()
    );
    shutdown.cancel();
    worker.await?;
    Ok(())
}
