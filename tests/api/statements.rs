//! What a check-in costs the database, statement by statement: the benchmark's pgbench replay
//! (`tests/load/replay/daily_mood_check_in.sql`) must be exactly the SQL the server sends for a
//! daily mood, so that "the API against its own SQL" compares like with like.

use axum::http::StatusCode;
use chrono::{SecondsFormat, Utc};
use serde_json::json;

use crate::harness::{Backend, TestApp};
use companion::clock::Clock;
use companion::db::{Db, StatementLog};

const REPLAY: &str = include_str!("../load/replay/daily_mood_check_in.sql");

/// `sql` with its placeholders (`$1`, `?`, pgbench's `:name`, and `NULL`, which the replay
/// writes where the server binds a null: pgbench variables cannot be null) all written `?`, and
/// its whitespace collapsed.
fn shape(sql: &str) -> String {
    let mut out = String::new();
    let mut chars = sql.trim().trim_end_matches(';').chars().peekable();
    while let Some(c) = chars.next() {
        let placeholder = (c == '$' || c == ':')
            && chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '_');
        if placeholder {
            while chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '_')
            {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out.split_whitespace()
        .map(|word| match word.strip_suffix(',') {
            Some("NULL") => "?,",
            _ if word == "NULL" => "?",
            _ => word,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The replay's statements: every line that is not a pgbench meta-command or a comment.
fn replay_statements() -> Vec<String> {
    REPLAY
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('\\') && !l.starts_with("--"))
        .map(shape)
        .collect()
}

async fn logged_app(backend: Backend) -> (TestApp, StatementLog) {
    let log = StatementLog::default();
    let attached = log.clone();
    let app = TestApp::build(backend, &[], move |app| {
        app.db = Db::with_statement_log(&app.config.database, app.config.db_pool_size, attached)
            .expect("pool");
    })
    .await;
    (app, log)
}

async fn daily_mood(app: &TestApp, token: &str, mood: i64) {
    let reply = app
        .post(
            "/v1/check-ins",
            token,
            json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "daily_mood",
                   "answers": {"mood": mood, "sleep_hours": 7.5, "anxiety": 3},
                   "completed_at": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn the_replay_script_is_the_sql_a_daily_mood_check_in_sends() {
    let (app, log) = logged_app(Backend::Postgres).await;
    let world = app.world().await;
    daily_mood(&app, &world.patient_a.access, 6).await;
    log.take();
    daily_mood(&app, &world.patient_a.access, 5).await;
    let sent: Vec<String> = log.take().iter().map(|s| shape(s)).collect();
    let replay = replay_statements();
    assert_eq!(
        sent,
        replay,
        "the server's statements (left) and the replay script (right) differ: update \
         tests/load/replay/daily_mood_check_in.sql to what the server now sends:\n{}",
        sent.join(";\n")
    );
}

#[tokio::test]
async fn a_daily_mood_check_in_is_four_statements_and_its_transaction_on_both_backends() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (app, log) = logged_app(backend).await;
        let world = app.world().await;
        daily_mood(&app, &world.patient_a.access, 6).await;
        log.take();
        daily_mood(&app, &world.patient_a.access, 5).await;
        let sent = log.take();
        let work: Vec<&String> = sent
            .iter()
            .filter(|s| {
                let s = s.trim().to_ascii_uppercase();
                !(s.starts_with("BEGIN") || s.starts_with("COMMIT"))
            })
            .collect();
        assert_eq!(
            work.len(),
            4,
            "{backend:?}: a daily mood should take the session check, the insert (unless the \
             same answers came minutes before), the prompt completion and the mood read, \
             nothing more: {sent:#?}"
        );
        assert_eq!(
            sent.len(),
            6,
            "{backend:?}: plus BEGIN and COMMIT: {sent:#?}"
        );
    }
}

#[tokio::test]
async fn in_steady_state_every_statement_of_a_check_in_is_a_prepared_one() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (app, log) = logged_app(backend).await;
        let world = app.world().await;
        for mood in [6, 5, 4] {
            daily_mood(&app, &world.patient_a.access, mood).await;
        }
        log.take();
        daily_mood(&app, &world.patient_a.access, 3).await;
        let unprepared: Vec<String> = log
            .take()
            .into_iter()
            .filter(|s| {
                let upper = s.trim().to_ascii_uppercase();
                !(upper.starts_with("BEGIN") || upper.starts_with("COMMIT"))
            })
            .filter(|s| !log.was_prepared(s))
            .collect();
        assert!(
            unprepared.is_empty(),
            "{backend:?}: sent without being kept prepared (parsed and planned on every \
             check-in): {unprepared:#?}"
        );
    }
}

/// What `log` holds that no connection kept prepared, besides transaction control.
fn unprepared(log: &StatementLog) -> Vec<String> {
    log.take()
        .into_iter()
        .filter(|s| {
            let upper = s.trim().to_ascii_uppercase();
            !(upper.starts_with("BEGIN") || upper.starts_with("COMMIT"))
        })
        .filter(|s| !log.was_prepared(s))
        .collect()
}

async fn item9(app: &TestApp, token: &str) {
    let answers: serde_json::Map<String, serde_json::Value> = (1..=9)
        .map(|i| (format!("q{i}"), json!(if i == 9 { 2 } else { 1 })))
        .collect();
    let body = json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "phq9",
        "answers": answers,
        "completed_at": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)});
    let reply = app.post("/v1/check-ins", token, body).await;
    assert!(reply.status.is_success(), "{}", reply.body);
}

async fn session(app: &TestApp, email: &str) {
    let tokens = app
        .login(email, crate::harness::PASSWORD)
        .await
        .expect(StatusCode::OK);
    let refresh = tokens.body["refresh_token"].as_str().unwrap().to_owned();
    app.post_anonymous("/v1/auth/refresh", json!({"refresh_token": refresh}))
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn in_steady_state_sign_in_refresh_and_the_workers_claims_are_prepared_statements() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (app, log) = logged_app(backend).await;
        let world = app.world().await;
        for _ in 0..3 {
            session(&app, &world.patient_a.email).await;
            item9(&app, &world.patient_a.access).await;
            app.run_jobs().await;
        }
        log.take();
        session(&app, &world.patient_a.email).await;
        let auth = unprepared(&log);
        assert!(
            auth.is_empty(),
            "{backend:?}: sign-in and refresh sent these without keeping them prepared: {auth:#?}"
        );
        item9(&app, &world.patient_b.access).await;
        log.take();
        app.run_jobs().await;
        let sent = log.take();
        let claims: Vec<&String> = sent
            .iter()
            .filter(|s| s.contains("UPDATE jobs SET status = 'running'"))
            .collect();
        assert!(
            !claims.is_empty(),
            "{backend:?}: no claim was sent: {sent:#?}"
        );
        let work: Vec<&&String> = claims.iter().filter(|s| !log.was_prepared(s)).collect();
        assert!(
            work.is_empty(),
            "{backend:?}: the workers' claims were not kept prepared: {work:#?}"
        );
    }
}

#[tokio::test]
async fn planning_ahead_inserts_prompts_with_one_prepared_statement_on_postgres() {
    let (app, log) = logged_app(Backend::Postgres).await;
    app.world().await;
    let inserts = |sent: &[String]| -> Vec<String> {
        sent.iter()
            .filter(|s| {
                s.starts_with("INSERT INTO prompts") || s.starts_with("INSERT INTO \"prompts\"")
            })
            .cloned()
            .collect()
    };
    app.run_workers().await;
    let first = inserts(&log.take());
    assert!(!first.is_empty(), "the first pass planned nothing");
    // A day later every patient's plan runs short and is extended: the same statement again,
    // kept prepared, whatever the number of rows.
    app.clock.set(app.clock.now() + chrono::TimeDelta::days(1));
    app.run_workers().await;
    let second = inserts(&log.take());
    assert!(!second.is_empty(), "the second pass planned nothing");
    let shapes: std::collections::BTreeSet<&String> = first.iter().chain(&second).collect();
    assert_eq!(shapes.len(), 1, "more than one statement text: {shapes:#?}");
    for sql in &second {
        assert!(log.was_prepared(sql), "not kept prepared: {sql}");
    }
}

#[tokio::test]
async fn only_a_job_that_can_run_now_wakes_other_processes_workers() {
    let (app, log) = logged_app(Backend::Postgres).await;
    let now = app.clock.now().naive_utc();
    let job = |key: &str, run_at: chrono::NaiveDateTime| companion::jobs::NewJob {
        kind: "prompt.replan_clinic",
        payload: json!({}),
        dedupe_key: Some(key.to_owned()),
        run_at,
        max_attempts: 3,
        priority: Default::default(),
    };
    let notifies = |sent: Vec<String>| sent.iter().filter(|s| s.contains("pg_notify")).count();
    let later = job("later", now + chrono::TimeDelta::hours(1));
    let enqueued = app
        .app
        .db
        .write(move |conn| companion::jobs::enqueue(conn, &later, now))
        .await
        .unwrap();
    assert!(enqueued);
    assert_eq!(
        notifies(log.take()),
        0,
        "a job due in an hour woke the workers"
    );
    let due = job("due", now);
    app.app
        .db
        .write(move |conn| companion::jobs::enqueue(conn, &due, now))
        .await
        .unwrap();
    assert_eq!(
        notifies(log.take()),
        1,
        "a job due now did not wake the workers"
    );
}

#[tokio::test]
async fn delivered_pushes_settle_with_a_statement_planned_for_its_values_on_postgres() {
    use companion::push::content::PushMessage;
    use companion::push::store as push_store;
    let (app, log) = logged_app(Backend::Postgres).await;
    let world = app.world().await;
    let device = app
        .post(
            "/v1/devices",
            &world.patient_a.access,
            json!({"platform": "android", "token": "settle-phone"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let device_id = device.body["id"].as_str().unwrap().to_owned();
    let now = app.clock.now().naive_utc();
    let held = app
        .app
        .db
        .run(move |conn| {
            let device = push_store::find_device(conn, &device_id)?.expect("device");
            let mut held = Vec::new();
            // Two settles of different sizes: one statement text.
            for size in [1, 3] {
                let delivered: Vec<push_store::Delivered> = (0..size)
                    .map(|_| {
                        let id = push_store::notify_device(
                            conn,
                            &device,
                            |id| PushMessage::CheckInPrompt {
                                prompt_id: id.to_owned(),
                            },
                            now,
                        )?;
                        Ok(push_store::Delivered {
                            record: push_store::AttemptRecord {
                                notification_id: id,
                                attempt: 1,
                                at: now,
                                outcome: "delivered",
                                provider_status: Some(200),
                                provider_reason: None,
                                latency_ms: 3,
                            },
                            job_id: "no-such-job".to_owned(),
                            worker: "w".to_owned(),
                            now,
                        })
                    })
                    .collect::<diesel::QueryResult<_>>()?;
                let companion::db::DbConnection::Pg(pg) = conn else {
                    unreachable!("PostgreSQL")
                };
                held.extend(push_store::settle_delivered_pg(pg, &delivered)?);
            }
            Ok(held)
        })
        .await
        .unwrap();
    // No job was held by worker `w`: each settle says so, and still records its attempts.
    assert_eq!(held, vec![false; 4]);
    let settles: Vec<String> = log
        .take()
        .into_iter()
        .filter(|s| s.starts_with("WITH input AS (SELECT * FROM unnest("))
        .collect();
    assert_eq!(settles.len(), 2, "{settles:#?}");
    assert_eq!(settles[0], settles[1], "two statement texts");
    // Planned on every run: a generic plan made while the tables are small keeps scanning them
    // whole once they have grown (see `push::store::settle_delivered_pg`).
    assert!(
        !log.was_prepared(&settles[1]),
        "kept prepared, so planned once for small tables: {}",
        settles[1]
    );
}
