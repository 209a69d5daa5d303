//! FHIR Bulk Data export at scale: a clinic of N patients with 30 daily check-ins each (mood,
//! sleep and blood pressure: one QuestionnaireResponse and three Observations per check-in),
//! seeded straight into a SQLite database, then exported through the HTTP kick-off and the job
//! worker. Prints resources per second and the process's peak resident memory during the export
//! (the peak is reset just before it), for each N given; asserts nothing.
//!
//! Run with `cargo bench -p companion-server --bench fhir_export [-- N...]` (default 1000 10000).
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark: any failure should stop it loudly"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use chrono::Utc;
use companion::app::{App, AppState};
use companion::clock::SystemClock;
use companion::config::Config;
use diesel::connection::SimpleConnection;
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "bench password 123";
const CHECK_INS: usize = 30;

async fn call(
    router: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, axum::http::HeaderMap, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("prefer", "respond-async");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Peak resident memory since the last reset, in MiB (Linux).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn run(patients: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("bench.db");
    let config = Config::from_source(&BTreeMap::from([
        (
            "DATABASE_URL".to_owned(),
            format!("sqlite://{}", db_path.display()),
        ),
        (
            "COMPANION_DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        (
            "COMPANION_JWT_KEYS".to_owned(),
            format!(
                "k1={}",
                base64::engine::general_purpose::STANDARD.encode([7u8; 32])
            ),
        ),
        ("COMPANION_ACCESS_TOKEN_TTL".to_owned(), "86400".to_owned()),
    ]))
    .unwrap();
    let app = Arc::new(App::new(config, Arc::new(SystemClock)).unwrap());
    app.db.migrate().await.unwrap();
    companion::account::use_cases::create_org_admin(&app.db, "g@example.org", PASSWORD, app.now())
        .await
        .unwrap();
    let router = companion::router::router(AppState(app.clone()));
    let (_, _, login) = call(
        &router,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": "g@example.org", "password": PASSWORD})),
    )
    .await;
    let org = login["access_token"].as_str().unwrap().to_owned();
    let (_, _, clinic) = call(
        &router,
        "POST",
        "/v1/clinics",
        Some(&org),
        Some(json!({"name": "Export", "timezone": "America/Chicago"})),
    )
    .await;
    let clinic = clinic["id"].as_str().unwrap().to_owned();
    let (_, _, invitation) = call(
        &router,
        "POST",
        &format!("/v1/clinics/{clinic}/invitations"),
        Some(&org),
        Some(json!({"role": "clinic_admin"})),
    )
    .await;
    let (_, _, accepted) = call(
        &router,
        "POST",
        "/v1/invitations/accept",
        None,
        Some(
            json!({"code": invitation["code"], "email": "admin@example.org", "password": PASSWORD}),
        ),
    )
    .await;
    let admin = accepted["access_token"].as_str().unwrap().to_owned();

    // Seed in SQL: the API would take far longer than the export being measured.
    let seeding = Instant::now();
    let now = Utc::now().naive_utc();
    let stamp = |minutes: i64| {
        (now - chrono::TimeDelta::minutes(minutes))
            .format("%Y-%m-%d %H:%M:%S%.6f")
            .to_string()
    };
    for chunk in (0..patients).collect::<Vec<_>>().chunks(200) {
        let mut sql = String::from("BEGIN;");
        for p in chunk {
            let id = uuid::Uuid::now_v7();
            let at = stamp(0);
            write!(
                sql,
                "INSERT INTO accounts (id, email, password_hash, role, clinic_id, display_name, timezone, created_at, updated_at, on_call) \
                 VALUES ('{id}', 'p{p}@example.org', 'x', 'patient', '{clinic}', 'Patient {p}', 'America/Chicago', '{at}', '{at}', false);"
            )
            .unwrap();
            for c in 0..CHECK_INS {
                let check_in = uuid::Uuid::now_v7();
                let when = stamp((c * 1440) as i64);
                let answers = json!({"mood": (p + c) % 11, "sleep_hours": 7.5, "bp_systolic": 120, "bp_diastolic": 80});
                write!(
                    sql,
                    "INSERT INTO check_ins (id, patient_id, clinic_id, instrument, instrument_version, answers, completed_at, received_at, content_hash, timing, mood) \
                     VALUES ('{check_in}', '{id}', '{clinic}', 'daily_mood', 1, '{answers}', '{when}', '{when}', 'h', 'on_time', {});",
                    (p + c) % 11
                )
                .unwrap();
            }
        }
        sql.push_str("COMMIT;");
        app.db
            .run(move |conn| conn.batch_execute(&sql))
            .await
            .unwrap();
    }
    let seeded = seeding.elapsed();

    reset_peak_rss();
    let before = peak_rss_mib();
    let started = Instant::now();
    let (status, headers, _) = call(
        &router,
        "GET",
        "/fhir/r4/Patient/$export?_type=Patient,QuestionnaireResponse,Observation",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 202);
    companion::jobs::runner::Runner::new(app.clone())
        .drain()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let peak = peak_rss_mib();
    let location = headers["content-location"].to_str().unwrap();
    let path = location.strip_prefix("http://localhost").unwrap();
    let (status, _, manifest) = call(&router, "GET", path, Some(&admin), None).await;
    assert_eq!(status, 200, "{manifest}");
    let resources: u64 = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["count"].as_u64().unwrap())
        .sum();
    println!(
        "export of {patients} patients x {CHECK_INS} check-ins: {resources} resources in {:.1} s = {:.0} resources/s; \
         peak RSS during the export {peak:.0} MiB (at its start {before:.0} MiB); seeded in {seeded:.1?}",
        elapsed.as_secs_f64(),
        resources as f64 / elapsed.as_secs_f64()
    );
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 10_000]
    } else {
        sizes
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for n in sizes {
        runtime.block_on(run(n));
    }
}
