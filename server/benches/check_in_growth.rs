//! Whether a check-in costs more as a patient's history grows: PHQ-9 submissions, in-process
//! through the router, for a patient with no earlier check-ins and for one with 2,000, taken in
//! turns so that both see the same machine; on SQLite and, when one answers, on PostgreSQL
//! (`COMPANION_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`; a fresh
//! database is created and dropped).
//!
//! Run with `cargo bench -p companion-server --bench check_in_growth [-- EARLIER ROUNDS]`
//! (defaults 2000 and 300). Prints figures, the reference being the new patient's in the same
//! run; asserts nothing about speed.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: any failure should stop it loudly"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use chrono::{SecondsFormat, TimeDelta, Utc};
use companion::app::{App, AppState};
use companion::clock::SystemClock;
use companion::config::Config;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "bench password 123";

async fn call(
    router: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Value {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {value}");
    value
}

async fn join(router: &Router, inviter: &str, clinic: &str, role: &str, n: usize) -> String {
    let invitation = call(
        router,
        "POST",
        &format!("/v1/clinics/{clinic}/invitations"),
        Some(inviter),
        json!({"role": role}),
    )
    .await;
    let accepted = call(
        router,
        "POST",
        "/v1/invitations/accept",
        None,
        json!({"code": invitation["code"], "email": format!("{role}-{n}@example.org"), "password": PASSWORD}),
    )
    .await;
    accepted["access_token"].as_str().unwrap().to_owned()
}

fn phq9(total: i64, at: chrono::DateTime<Utc>) -> Value {
    let mut answers = serde_json::Map::new();
    let mut left = total;
    for i in 1..=9 {
        let v = if i == 9 { 0 } else { left.min(3) };
        left -= v;
        answers.insert(format!("q{i}"), json!(v));
    }
    json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "phq9", "answers": answers,
           "completed_at": at.to_rfc3339_opts(SecondsFormat::Micros, true)})
}

/// A measured round's PHQ-9 of `total`: the points start at an item and item 10 (not scored)
/// varies with the round, so that no round repeats another's answers or a seeded one's (the
/// same answers completed within 10 minutes of each other would be one check-in).
fn phq9_round(total: i64, round: usize, at: chrono::DateTime<Utc>) -> Value {
    let mut body = phq9(0, at);
    let answers = body["answers"].as_object_mut().unwrap();
    let mut left = total;
    for k in 0..8 {
        let item = (k + round / 4) % 8 + 1;
        let v = left.min(3);
        left -= v;
        answers.insert(format!("q{item}"), json!(v));
    }
    answers.insert("q10".into(), json!(round % 4));
    body
}

async fn run(label: &str, url: String, earlier: usize, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_source(&BTreeMap::from([
        ("DATABASE_URL".to_owned(), url),
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
        ("COMPANION_AUTH_RATE_LIMIT".to_owned(), "100000".to_owned()),
        ("COMPANION_ACCESS_TOKEN_TTL".to_owned(), "86400".to_owned()),
    ]))
    .unwrap();
    let app = Arc::new(App::new(config, Arc::new(SystemClock)).unwrap());
    app.db.migrate().await.unwrap();
    companion::account::use_cases::create_org_admin(&app.db, "g@example.org", PASSWORD, app.now())
        .await
        .unwrap();
    let router = companion::router::router(AppState(app));
    let login = call(
        &router,
        "POST",
        "/v1/auth/login",
        None,
        json!({"email": "g@example.org", "password": PASSWORD}),
    )
    .await;
    let org = login["access_token"].as_str().unwrap().to_owned();
    let clinic = call(
        &router,
        "POST",
        "/v1/clinics",
        Some(&org),
        json!({"name": "Growth", "timezone": "America/Chicago"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = join(&router, &org, &clinic, "clinic_admin", 0).await;
    let fresh = join(&router, &admin, &clinic, "patient", 1).await;
    let heavy = join(&router, &admin, &clinic, "patient", 2).await;
    let now = Utc::now();
    let seeding = Instant::now();
    for i in 0..earlier {
        let at = now - TimeDelta::minutes(20 * (earlier - i) as i64);
        call(
            &router,
            "POST",
            "/v1/check-ins",
            Some(&heavy),
            phq9(3 + (i % 5) as i64, at),
        )
        .await;
    }
    let seeded = seeding.elapsed();
    let mut fresh_times = Vec::with_capacity(rounds);
    let mut heavy_times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        for (token, times) in [(&fresh, &mut fresh_times), (&heavy, &mut heavy_times)] {
            let body = phq9_round(
                4 + (i % 3) as i64,
                i,
                Utc::now() - TimeDelta::minutes(11 * i as i64),
            );
            let started = Instant::now();
            call(&router, "POST", "/v1/check-ins", Some(token), body).await;
            times.push(started.elapsed());
        }
    }
    let pct = |times: &mut Vec<Duration>, p: f64| {
        times.sort();
        times[((times.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3
    };
    let (f50, f99) = (pct(&mut fresh_times, 0.5), pct(&mut fresh_times, 0.99));
    let (h50, h99) = (pct(&mut heavy_times, 0.5), pct(&mut heavy_times, 0.99));
    println!(
        "{label}: PHQ-9 check-in, new patient p50 {f50:.2} ms (p99 {f99:.2}); with {earlier} earlier p50 {h50:.2} ms (p99 {h99:.2}); ratio {:.2} (seeded in {seeded:.1?})",
        h50 / f50
    );
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let earlier: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        run(
            "SQLite",
            format!("sqlite://{}", dir.path().join("growth.db").display()),
            earlier,
            rounds,
        )
        .await;
        let server = std::env::var("COMPANION_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let Ok(mut admin) = PgConnection::establish(&server) else {
            println!("PostgreSQL: not reachable at {server}; skipped");
            return;
        };
        let name = format!("companion_growth_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let mut url = url::Url::parse(&server).unwrap();
        url.set_path(&format!("/{name}"));
        run("PostgreSQL", url.to_string(), earlier, rounds).await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .expect("drop the benchmark database");
    });
}
