//! The job queue: atomic enqueue, leases that survive a dead worker, several workers without
//! double runs, retries that end in a dead job, and prompt wake-ups.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use chrono::TimeDelta;
use companion::jobs::runner::Runner;
use companion::push::content::PushMessage;
use companion::push::gateway::{Attempt, MemoryGateway, Outcome, PushGateway, Target};
use companion::push::store as push_store;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::both;
use crate::harness::{Actor, Backend, TestApp};

both!(
    a_job_commits_with_its_transaction_or_not_at_all,
    a_dedupe_key_admits_one_job,
    a_worker_killed_mid_job_leaves_it_to_another_after_the_lease,
    two_workers_share_a_thousand_jobs_running_each_exactly_once,
    a_job_that_keeps_failing_is_parked_as_dead_after_its_last_attempt,
    a_job_enqueued_in_this_process_starts_at_once,
    housekeeping_deletes_finished_jobs_after_a_week_and_keeps_the_rest,
    a_job_of_an_unknown_kind_is_parked_as_dead_with_a_clear_error,
    an_unreadable_payload_is_parked_as_dead_with_a_clear_error,
    a_payload_from_a_newer_release_is_left_for_a_newer_worker,
    a_payload_written_with_its_version_is_run,
);

/// Hangs forever on its first delivery (a worker that dies mid-job), delivers the rest.
#[derive(Debug, Default)]
struct HangsFirst {
    calls: Mutex<usize>,
    delivered: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl PushGateway for HangsFirst {
    async fn send(&self, target: &Target, _message: &PushMessage) -> Attempt {
        let first = {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            *calls == 1
        };
        if first {
            std::future::pending::<()>().await;
        }
        self.delivered
            .lock()
            .unwrap()
            .push(target.notification_id.clone());
        Attempt {
            outcome: Outcome::Delivered,
            status: Some(200),
        }
    }
}

async fn device_of(app: &TestApp, who: &Actor) -> push_store::DeviceRow {
    let reply = app
        .post(
            "/v1/devices",
            &who.access,
            json!({"platform": "android", "token": format!("ok-{}", uuid::Uuid::new_v4())}),
        )
        .await
        .expect(StatusCode::CREATED);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    app.app
        .db
        .run(move |conn| push_store::find_device(conn, &id))
        .await
        .unwrap()
        .unwrap()
}

async fn queue(app: &TestApp, device: &push_store::DeviceRow, count: usize) {
    let device = device.clone();
    let now = app.app.now().naive_utc();
    app.app
        .db
        .write(move |conn| {
            for _ in 0..count {
                push_store::notify_device(
                    conn,
                    &device,
                    |id| PushMessage::Test {
                        notification_id: id.to_owned(),
                    },
                    now,
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
}

async fn send_test(app: &TestApp, who: &Actor, device: &push_store::DeviceRow) -> String {
    app.call(
        Method::POST,
        &format!("/v1/devices/{}/test", device.id),
        Some(&who.access),
        None,
    )
    .await
    .expect(StatusCode::ACCEPTED)
    .body["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Polls the notification until it is delivered; fails with `why` after 10 s (the workers in
/// these tests poll once a minute, so only a wake-up delivers sooner).
async fn wait_until_delivered(app: &TestApp, who: &Actor, sent: &str, why: &str) {
    let started = Instant::now();
    loop {
        let status = app
            .get(&format!("/v1/notifications/{sent}"), &who.access)
            .await
            .body;
        if status["status"] == "delivered" {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{why}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn jobs_with_status(app: &TestApp, status: &'static str) -> i64 {
    app.app
        .db
        .run(move |conn| companion::jobs::store::count_by_status(conn, status))
        .await
        .unwrap()
}

async fn a_job_commits_with_its_transaction_or_not_at_all(backend: Backend) {
    let app = TestApp::new(backend).await;
    let admin = app.org_admin().await;
    let device = device_of(&app, &admin).await;
    let now = app.app.now().naive_utc();
    let result = app
        .app
        .db
        .write(move |conn| {
            push_store::notify_device(
                conn,
                &device,
                |id| PushMessage::Test {
                    notification_id: id.to_owned(),
                },
                now,
            )?;
            Err::<(), _>(diesel::result::Error::RollbackTransaction)
        })
        .await;
    assert!(result.is_err());
    assert_eq!(jobs_with_status(&app, "queued").await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM notifications").await,
        0
    );
}

async fn a_dedupe_key_admits_one_job(backend: Backend) {
    let app = TestApp::new(backend).await;
    let now = app.app.now().naive_utc();
    let job = companion::jobs::NewJob {
        kind: companion::push::kinds::PUSH_DELIVER,
        payload: json!({"notification_id": "x"}),
        dedupe_key: Some("once".into()),
        run_at: now,
        max_attempts: 3,
        priority: companion::jobs::store::Priority::Routine,
    };
    let (first, second) = app
        .app
        .db
        .write(move |conn| {
            Ok((
                companion::jobs::enqueue(conn, &job, now)?,
                companion::jobs::enqueue(conn, &job, now)?,
            ))
        })
        .await
        .unwrap();
    assert!(first && !second);
    assert_eq!(jobs_with_status(&app, "queued").await, 1);
}

async fn a_worker_killed_mid_job_leaves_it_to_another_after_the_lease(backend: Backend) {
    let gateway = Arc::new(HangsFirst::default());
    let installed = gateway.clone();
    let app = TestApp::build(backend, &[("COMPANION_JOB_LEASE", "30")], move |a| {
        a.push.fcm = installed
    })
    .await;
    let admin = app.org_admin().await;
    let device = device_of(&app, &admin).await;
    let sent = app
        .call(
            Method::POST,
            &format!("/v1/devices/{}/test", device.id),
            Some(&admin.access),
            None,
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let doomed = Runner::new(app.app.clone());
    let task = tokio::spawn(async move { doomed.run_once().await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while *gateway.calls.lock().unwrap() == 0 {
        assert!(
            Instant::now() < deadline,
            "the first worker never reached the gateway"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort(); // the worker dies holding the job
    let _ = task.await;
    assert_eq!(jobs_with_status(&app, "running").await, 1);
    // Its lease still holds: nobody else may take the job yet.
    app.clock.advance(TimeDelta::seconds(29));
    assert_eq!(app.run_jobs().await, 0);
    app.clock.advance(TimeDelta::seconds(2));
    assert_eq!(app.run_jobs().await, 1);
    assert_eq!(
        *gateway.delivered.lock().unwrap(),
        vec![sent.clone()],
        "delivered exactly once"
    );
    let status = app
        .get(&format!("/v1/notifications/{sent}"), &admin.access)
        .await
        .body;
    assert_eq!(
        (status["status"].as_str(), status["attempts"].as_i64()),
        (Some("delivered"), Some(2))
    );
    assert_eq!(jobs_with_status(&app, "done").await, 1);
    assert_eq!(app.run_jobs().await, 0);
}

async fn two_workers_share_a_thousand_jobs_running_each_exactly_once(backend: Backend) {
    let first = Arc::new(MemoryGateway::default());
    let second = Arc::new(MemoryGateway::default());
    let installed = first.clone();
    let app = TestApp::build(
        backend,
        &[("COMPANION_WORKER_CONCURRENCY", "16")],
        move |a| a.push.fcm = installed,
    )
    .await;
    let admin = app.org_admin().await;
    let device = device_of(&app, &admin).await;
    queue(&app, &device, 1000).await;
    let installed = second.clone();
    let other_process = app.another_process(move |a| a.push.fcm = installed);
    let (runner_a, runner_b) = (Runner::new(app.app.clone()), Runner::new(other_process));
    let (a, b) = tokio::join!(runner_a.drain(), runner_b.drain());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a + b, 1000, "each job claimed once ({a} + {b})");
    let mut ids: Vec<String> = first
        .sent()
        .into_iter()
        .chain(second.sent())
        .map(|(_, message)| message.ref_id().to_owned())
        .collect();
    assert_eq!(ids.len(), 1000, "every job ran once");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000, "no job ran twice");
    assert_eq!(jobs_with_status(&app, "done").await, 1000);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM notifications WHERE status = 'delivered'")
            .await,
        1000
    );
}

async fn a_job_that_keeps_failing_is_parked_as_dead_after_its_last_attempt(backend: Backend) {
    let failing: Vec<Outcome> = (0..20)
        .map(|_| Outcome::RetryLater {
            reason: "UNAVAILABLE".into(),
            after: None,
        })
        .collect();
    let gateway = Arc::new(MemoryGateway::scripted(failing));
    let installed = gateway.clone();
    let app = TestApp::build(backend, &[], move |a| a.push.fcm = installed).await;
    let admin = app.org_admin().await;
    let device = device_of(&app, &admin).await;
    queue(&app, &device, 1).await;
    let max = push_store::MAX_DELIVERY_ATTEMPTS as usize;
    for attempt in 1..=max {
        assert_eq!(app.run_jobs().await, 1, "attempt {attempt}");
        app.clock.advance(TimeDelta::minutes(11));
    }
    assert_eq!(app.run_jobs().await, 0, "no attempt after the last");
    assert_eq!(gateway.sent().len(), max);
    assert_eq!(jobs_with_status(&app, "dead").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM notifications WHERE status = 'failed'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM notification_attempts")
            .await,
        max as i64
    );
}

async fn a_job_enqueued_in_this_process_starts_at_once(backend: Backend) {
    // Polling every minute: only a wake-up can explain a prompt delivery.
    let app = TestApp::build(backend, &[("COMPANION_JOB_POLL_INTERVAL", "60000")], |a| {
        a.push.fcm = Arc::new(MemoryGateway::default())
    })
    .await;
    let admin = app.org_admin().await;
    let device = device_of(&app, &admin).await;
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(Runner::new(app.app.clone()).run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = send_test(&app, &admin, &device).await;
    wait_until_delivered(&app, &admin, &sent, "the worker was not woken").await;
    shutdown.cancel();
    worker.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wakes_a_worker_in_another_process_through_listen_notify() {
    let app = TestApp::with_settings(
        Backend::Postgres,
        &[("COMPANION_JOB_POLL_INTERVAL", "60000")],
    )
    .await;
    let admin = app.org_admin().await;
    let device = device_of(&app, &admin).await;
    let other_process = app.another_process(|a| a.push.fcm = Arc::new(MemoryGateway::default()));
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(Runner::new(other_process).run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = send_test(&app, &admin, &device).await;
    wait_until_delivered(&app, &admin, &sent, "the other process was not woken").await;
    shutdown.cancel();
    worker.await.unwrap();
}

/// The backend pids of this database's job listeners.
async fn listener_pids(app: &TestApp) -> Vec<i32> {
    #[derive(diesel::QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    app.app
        .db
        .run(|conn| {
            use diesel::RunQueryDsl;
            let companion::db::DbConnection::Pg(pg) = conn else {
                return Ok(Vec::new());
            };
            diesel::sql_query(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'companion-job-listener' AND query ILIKE 'LISTEN%'",
            )
            .load::<Pid>(pg)
        })
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.pid)
        .collect()
}

async fn wait_for_listener(app: &TestApp, not: &[i32]) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = listener_pids(app)
            .await
            .into_iter()
            .find(|p| !not.contains(p))
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no job listener connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A NOTIFY from another connection wakes a worker whose poll interval is a minute: the delivery
/// lands in well under a second, and again after the listener's connection was killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_wakes_a_polling_worker_at_once_and_the_listener_reconnects_when_cut_off() {
    let gateway = Arc::new(MemoryGateway::default());
    let app = TestApp::with_settings(
        Backend::Postgres,
        &[("COMPANION_JOB_POLL_INTERVAL", "60000")],
    )
    .await;
    let admin = app.org_admin().await;
    let device = device_of(&app, &admin).await;
    let installed = gateway.clone();
    let worker_process = app.another_process(move |a| a.push.fcm = installed);
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(Runner::new(worker_process).run(shutdown.clone()));
    let first = wait_for_listener(&app, &[]).await;
    // Let the worker's first claim pass and its wait begin.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    queue(&app, &device, 1).await;
    while gateway.sent().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the NOTIFY did not wake the worker"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let woken = started.elapsed();
    assert!(woken < Duration::from_secs(2), "{woken:?}");

    // The listener's connection is cut: it reconnects (backoff from 100 ms) and listens again.
    let cut = app
        .app
        .db
        .run(move |conn| {
            use diesel::RunQueryDsl;
            let companion::db::DbConnection::Pg(pg) = conn else {
                unreachable!()
            };
            diesel::sql_query(format!("SELECT pg_terminate_backend({first})")).execute(pg)
        })
        .await
        .unwrap();
    assert_eq!(cut, 1);
    let second = wait_for_listener(&app, &[first]).await;
    assert_ne!(first, second);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restarted = Instant::now();
    queue(&app, &device, 1).await;
    while gateway.sent().len() < 2 {
        assert!(
            restarted.elapsed() < Duration::from_secs(5),
            "the reconnected listener did not wake the worker"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let woken_again = restarted.elapsed();
    println!("NOTIFY wake-up: {woken:?}; after a reconnect: {woken_again:?} (poll interval 60 s)");
    shutdown.cancel();
    worker.await.unwrap();
    // The listener closes with its worker (the server notices the closed socket a moment later).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !listener_pids(&app).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the listener closes with its worker"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Takes a while per delivery, so a shutdown finds jobs in flight.
#[derive(Debug, Default)]
struct Slow {
    delivered: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl PushGateway for Slow {
    async fn send(&self, target: &Target, _message: &PushMessage) -> Attempt {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.delivered
            .lock()
            .unwrap()
            .push(target.notification_id.clone());
        Attempt {
            outcome: Outcome::Delivered,
            status: Some(200),
        }
    }
}

mod shutdown {
    use super::*;
    both!(shutdown_finishes_jobs_in_flight_and_leaves_none_held);
}

async fn shutdown_finishes_jobs_in_flight_and_leaves_none_held(backend: Backend) {
    let gateway = Arc::new(Slow::default());
    let installed = gateway.clone();
    let app = TestApp::build(
        backend,
        &[("COMPANION_WORKER_CONCURRENCY", "2")],
        move |a| a.push.fcm = installed,
    )
    .await;
    let admin = app.org_admin().await;
    let device = device_of(&app, &admin).await;
    queue(&app, &device, 5).await;
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(Runner::new(app.app.clone()).run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.cancel();
    worker.await.unwrap();
    let finished = gateway.delivered.lock().unwrap().len();
    assert_eq!(
        finished, 2,
        "the two jobs in flight were finished, no new one started"
    );
    assert_eq!(
        jobs_with_status(&app, "running").await,
        0,
        "nothing is left held"
    );
    assert_eq!(jobs_with_status(&app, "done").await, 2);
    assert_eq!(jobs_with_status(&app, "queued").await, 3);
    // Another worker picks up the rest at once.
    let installed = Arc::new(MemoryGateway::default());
    let other = app.another_process({
        let installed = installed.clone();
        move |a| a.push.fcm = installed
    });
    assert_eq!(Runner::new(other).drain().await.unwrap(), 3);
    assert_eq!(installed.sent().len(), 3);
}

async fn housekeeping_deletes_finished_jobs_after_a_week_and_keeps_the_rest(backend: Backend) {
    let app = TestApp::new(backend).await;
    let admin = app.org_admin().await;
    let device = device_of(&app, &admin).await;
    queue(&app, &device, 3).await;
    app.run_jobs().await;
    assert_eq!(jobs_with_status(&app, "done").await, 3);
    app.clock.advance(TimeDelta::days(6));
    queue(&app, &device, 2).await;
    companion::worker::housekeeping(&app.app).await.unwrap();
    assert_eq!(jobs_with_status(&app, "done").await, 3, "a week is kept");
    assert_eq!(jobs_with_status(&app, "queued").await, 2);
    app.clock.advance(TimeDelta::days(2));
    companion::worker::housekeeping(&app.app).await.unwrap();
    assert_eq!(jobs_with_status(&app, "done").await, 0, "older than a week");
    assert_eq!(
        jobs_with_status(&app, "queued").await,
        2,
        "queued jobs stay"
    );
    // The deliveries' history stays with the notifications.
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM notifications").await,
        5
    );
}

async fn enqueue_raw(app: &TestApp, kind: &'static str, payload: serde_json::Value) {
    let now = app.app.now().naive_utc();
    let job = companion::jobs::NewJob {
        kind,
        payload,
        dedupe_key: None,
        run_at: now,
        max_attempts: 3,
        priority: companion::jobs::store::Priority::Routine,
    };
    app.app
        .db
        .write(move |conn| companion::jobs::enqueue(conn, &job, now))
        .await
        .unwrap();
}

async fn dead_errors(app: &TestApp) -> Vec<(String, String)> {
    app.app
        .db
        .run(|conn| companion::jobs::store::dead_jobs(conn, 100))
        .await
        .unwrap()
        .into_iter()
        .map(|j| (j.kind, j.last_error.unwrap_or_default()))
        .collect()
}

async fn a_job_of_an_unknown_kind_is_parked_as_dead_with_a_clear_error(backend: Backend) {
    let app = TestApp::new(backend).await;
    enqueue_raw(&app, "report.nightly", json!({"clinic_id": "c"})).await;
    assert_eq!(app.run_jobs().await, 1, "claimed once, not retried");
    assert_eq!(jobs_with_status(&app, "dead").await, 1);
    let dead = dead_errors(&app).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "report.nightly");
    assert!(
        dead[0].1.contains("unknown job kind \"report.nightly\""),
        "{}",
        dead[0].1
    );
    // The worker is unharmed: a real job after it runs.
    let gateway = Arc::new(MemoryGateway::default());
    let installed = gateway.clone();
    let app2 = app.another_process(move |a| a.push.fcm = installed);
    let admin = app.org_admin().await;
    let device = device_of(&app, &admin).await;
    queue(&app, &device, 1).await;
    assert_eq!(Runner::new(app2).drain().await.unwrap(), 1);
    assert_eq!(gateway.sent().len(), 1);
}

async fn an_unreadable_payload_is_parked_as_dead_with_a_clear_error(backend: Backend) {
    let app = TestApp::new(backend).await;
    let kind = companion::push::kinds::PUSH_DELIVER;
    enqueue_raw(&app, kind, json!({"notification_id": 5})).await;
    enqueue_raw(&app, kind, json!({"something": "else"})).await;
    enqueue_raw(&app, kind, json!("a string")).await;
    enqueue_raw(&app, kind, json!({"notification_id": "n", "v": "two"})).await;
    assert_eq!(app.run_jobs().await, 4, "each claimed once, none retried");
    assert_eq!(jobs_with_status(&app, "dead").await, 4);
    for (dead_kind, error) in dead_errors(&app).await {
        assert_eq!(dead_kind, kind);
        assert!(
            error.starts_with("unreadable push.deliver payload: "),
            "{error}"
        );
    }
    let errors: Vec<String> = dead_errors(&app).await.into_iter().map(|d| d.1).collect();
    assert!(
        errors.iter().any(|e| e.contains("notification_id")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("payload version")),
        "{errors:?}"
    );
}

async fn a_payload_from_a_newer_release_is_left_for_a_newer_worker(backend: Backend) {
    let app = TestApp::new(backend).await;
    let kind = companion::push::kinds::PUSH_DELIVER;
    enqueue_raw(&app, kind, json!({"notification_id": "n", "v": 99})).await;
    assert_eq!(app.run_jobs().await, 1);
    assert_eq!(jobs_with_status(&app, "queued").await, 1, "retried later");
    let error: Option<String> = app
        .app
        .db
        .run(|conn| {
            use companion_schema::schema::jobs;
            use diesel::prelude::*;
            jobs::table.select(jobs::last_error).first(conn)
        })
        .await
        .unwrap();
    let error = error.unwrap();
    assert!(
        error.contains("payload version 99 is newer than this worker reads (1)"),
        "{error}"
    );
    // After its last attempt it is parked, still saying why.
    for _ in 0..2 {
        app.clock.advance(TimeDelta::minutes(2));
        app.run_jobs().await;
    }
    let dead = dead_errors(&app).await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].1.contains("newer than this worker"),
        "{}",
        dead[0].1
    );
}

async fn a_payload_written_with_its_version_is_run(backend: Backend) {
    use companion::jobs::JobKind as _;
    let gateway = Arc::new(MemoryGateway::default());
    let installed = gateway.clone();
    let app = TestApp::build(backend, &[], move |a| a.push.fcm = installed).await;
    let admin = app.org_admin().await;
    let device = device_of(&app, &admin).await;
    let sent = send_test(&app, &admin, &device).await;
    // Replace the stored job by one written through the typed constructor.
    let now = app.app.now().naive_utc();
    let job = companion::jobs::new_job::<companion::push::deliver::DeliverPush>(
        &companion::push::deliver::Payload {
            notification_id: sent.clone(),
        },
        None,
        now,
        3,
    );
    assert_eq!(job.kind, companion::push::deliver::DeliverPush::KIND);
    assert_eq!(job.payload["v"], 1);
    app.app
        .db
        .write(move |conn| {
            use companion_schema::schema::jobs;
            use diesel::prelude::*;
            diesel::delete(jobs::table).execute(conn)?;
            companion::jobs::enqueue(conn, &job, now)
        })
        .await
        .unwrap();
    assert_eq!(app.run_jobs().await, 1);
    assert_eq!(gateway.sent().len(), 1);
    wait_until_delivered(&app, &admin, &sent, "the versioned job delivered").await;
}
