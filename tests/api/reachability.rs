//! Reachability is what actually happened (CLINICAL.md, "Safety path guarantees, part 2"), through
//! the API: a high alert on a Saturday night reaches someone at once and is never held; a failing
//! webhook or a push service without credentials reaches nobody and the alert says so; the
//! patient is told `reached` only once something counted; urgent and high pushes ring through
//! Focus on every route; safety work is claimed before a backlog of routine pushes; an
//! acknowledged alert left unresolved comes back; an assignee is told; email reaches staff
//! without devices through a real SMTP exchange and counts only when the server accepts it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::http::{Method, StatusCode};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use companion::push::content::PushMessage;
use companion::push::gateway::MemoryGateway;
use companion_fake_push::smtp::SmtpSink;
use serde_json::{Value, json};

use crate::both;
use crate::escalation::{alerts_of, device, on_call, phq9};
use crate::harness::{Actor, Backend, PASSWORD, Reply, TestApp, World};

both!(
    a_high_alert_on_a_saturday_night_with_nobody_on_call_reaches_a_clinician_at_once_and_holds_nothing,
    a_failing_webhook_reaches_nobody_until_it_answers_and_readiness_says_since_when,
    without_push_credentials_no_device_counts_and_the_patient_hears_unreachable,
    the_patient_is_told_reached_only_after_a_push_was_accepted,
    a_patient_whose_clinic_nobody_can_reach_is_told_so_in_the_answer_itself,
    urgent_and_high_pushes_ring_through_focus_on_the_fcm_route_and_routine_ones_do_not,
    safety_work_is_claimed_before_a_backlog_of_routine_pushes,
    an_acknowledged_alert_left_unresolved_returns_to_open_and_an_assignee_is_told,
    email_reaches_staff_without_devices_and_counts_only_when_the_server_accepts_it,
);

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn check_in(app: &TestApp, patient: &Actor, instrument: &str, answers: Value) -> Reply {
    app.post(
        "/v1/check-ins",
        &patient.access,
        json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "instrument": instrument,
            "answers": answers,
            "completed_at": stamp(app.app.now()),
        }),
    )
    .await
    .expect(StatusCode::CREATED)
}

async fn item9(app: &TestApp, patient: &Actor) -> Reply {
    check_in(app, patient, "phq9", phq9([0, 0, 0, 0, 0, 0, 0, 0, 2])).await
}

/// The check-in as the patient reads it later.
async fn read_back(app: &TestApp, patient: &Actor, reply: &Reply) -> Value {
    let id = reply.body["id"].as_str().unwrap();
    app.get(&format!("/v1/me/check-ins/{id}"), &patient.access)
        .await
        .expect(StatusCode::OK)
        .body
}

/// The words must match the state (CLINICAL.md, part 2).
#[track_caller]
fn assert_told(safety: &Value, care_team: &str) {
    assert_eq!(safety["care_team"], care_team, "{safety}");
    let message = safety["message"].as_str().unwrap();
    let told = message.contains("Your care team has been told");
    match care_team {
        "reached" => assert!(told, "{message}"),
        "trying" => {
            assert!(!told, "{message}");
            assert!(
                message.contains("We are contacting your care team now"),
                "{message}"
            );
            assert!(message.contains("If you are in danger, call"), "{message}");
        }
        _ => {
            assert!(!told, "{message}");
            assert!(
                message.contains("We could not reach your care team right now"),
                "{message}"
            );
            assert!(message.contains("If you are in danger, call"), "{message}");
        }
    }
}

async fn events(app: &TestApp, staff: &Actor, alert: &str) -> Vec<(String, String)> {
    app.get(&format!("/v1/alerts/{alert}"), &staff.access)
        .await
        .expect(StatusCode::OK)
        .body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["detail"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn alert(app: &TestApp, staff: &Actor, id: &str) -> Value {
    app.get(&format!("/v1/alerts/{id}"), &staff.access)
        .await
        .expect(StatusCode::OK)
        .body["alert"]
        .clone()
}

/// Alert pushes (id, time-sensitive) that reached `token`.
fn alert_pushes(gateway: &MemoryGateway, token: &str) -> Vec<(String, bool)> {
    gateway
        .sent()
        .into_iter()
        .filter(|(t, _)| t == token)
        .filter_map(|(_, m)| match &m {
            PushMessage::ClinicianAlert { alert_id, .. } => {
                Some((alert_id.clone(), m.is_time_sensitive()))
            }
            _ => None,
        })
        .collect()
}

fn unreachable_pushes(gateway: &MemoryGateway, token: &str) -> usize {
    gateway
        .sent()
        .into_iter()
        .filter(|(t, m)| t == token && matches!(m, PushMessage::UnreachableAlert { .. }))
        .count()
}

async fn world_with(
    backend: Backend,
    settings: &[(&str, &str)],
) -> (TestApp, Arc<MemoryGateway>, World) {
    let gateway = Arc::new(MemoryGateway::default());
    let installed = gateway.clone();
    let mut all = vec![("COMPANION_ACCESS_TOKEN_TTL", "86400")];
    all.extend_from_slice(settings);
    let app = TestApp::build(backend, &all, move |a| a.push.fcm = installed).await;
    let world = app.world().await;
    (app, gateway, world)
}

async fn queued_pushes_held_for_later(app: &TestApp) -> i64 {
    let now = app.app.now().naive_utc();
    let rows: Vec<chrono::NaiveDateTime> = app
        .app
        .db
        .run(move |conn| {
            use companion_schema::schema::jobs;
            use diesel::prelude::*;
            jobs::table
                .filter(jobs::kind.eq("push.deliver"))
                .filter(jobs::status.eq("queued"))
                .select(jobs::run_at)
                .load(conn)
        })
        .await
        .unwrap();
    rows.into_iter().filter(|at| *at > now).count() as i64
}

async fn a_high_alert_on_a_saturday_night_with_nobody_on_call_reaches_a_clinician_at_once_and_holds_nothing(
    backend: Backend,
) {
    let (app, gateway, world) = world_with(backend, &[]).await;
    // Saturday 22:00 in Chicago; nobody is on call; everyone works weekdays 08:00-18:00.
    app.clock.set("2026-12-06T04:00:00Z".parse().unwrap());
    let clinician_phone = device(&app, &world.clinician_a).await;
    let admin_phone = device(&app, &world.admin_a).await;
    let reply = check_in(
        &app,
        &world.patient_a,
        "daily_mood",
        json!({"mood": 5, "bp_systolic": 200, "bp_diastolic": 120}),
    )
    .await;
    // What to do about the reading, at once.
    let advice = reply.body["safety"]["advice"].as_str().unwrap();
    assert!(
        advice.contains("Call 911 now if you have chest pain"),
        "{advice}"
    );
    assert!(advice.contains("measure again in 5 minutes"), "{advice}");
    assert_told(&reply.body["safety"], "trying");
    app.run_jobs().await;
    let alerts = alerts_of(&app, &world.clinician_a).await;
    let high = alerts
        .iter()
        .find(|a| a["rule"] == "blood_pressure")
        .expect("a blood-pressure alert");
    assert_eq!(high["severity"], "high");
    let id = high["id"].as_str().unwrap().to_owned();
    // The clinicians were pushed now, time-sensitive, not at Monday 08:00.
    assert_eq!(
        alert_pushes(&gateway, &clinician_phone),
        [(id.clone(), true)]
    );
    assert_eq!(queued_pushes_held_for_later(&app).await, 0);
    let now = alert(&app, &world.clinician_a, &id).await;
    assert_eq!(now["care_team"], "reached");
    assert!(now["reached_at"].is_string());
    assert_told(
        &read_back(&app, &world.patient_a, &reply).await["safety"],
        "reached",
    );

    // Through the weekend to Monday morning unacknowledged: every deadline escalates and tells
    // someone now, and no phone ever gets held copies.
    for _ in 0..(58 * 4) {
        app.clock.advance(TimeDelta::minutes(15));
        app.run_jobs().await;
        assert_eq!(queued_pushes_held_for_later(&app).await, 0);
    }
    let mut clinician = world.clinician_a.clone();
    clinician.access = app.token(&clinician).await;
    let history = events(&app, &clinician, &id).await;
    let notified_admins = history
        .iter()
        .filter(|(kind, detail)| kind == "notified" && detail.starts_with("tier 2"))
        .count();
    assert!(notified_admins >= 1, "{history:?}");
    // One push per step that told the admins: never one per deadline on top.
    assert_eq!(alert_pushes(&gateway, &admin_phone).len(), notified_admins);
    assert!(
        !history.iter().any(|(kind, _)| kind == "unreachable"),
        "{history:?}"
    );
}

/// A clinic's paging endpoint whose health the test switches.
struct Pager {
    url: String,
    healthy: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

async fn pager(healthy: bool) -> Pager {
    let flag = Arc::new(AtomicBool::new(healthy));
    let requests = Arc::new(AtomicUsize::new(0));
    let (state, count) = (flag.clone(), requests.clone());
    let router = axum::Router::new().route(
        "/page",
        axum::routing::post(move || {
            let (state, count) = (state.clone(), count.clone());
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                if state.load(Ordering::SeqCst) {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/page", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.ok() });
    Pager {
        url,
        healthy: flag,
        requests,
    }
}

async fn readiness(app: &TestApp, staff: &Actor, clinic: &str) -> Value {
    app.get(&format!("/v1/clinics/{clinic}/readiness"), &staff.access)
        .await
        .expect(StatusCode::OK)
        .body
}

fn problem<'a>(readiness: &'a Value, code: &str) -> Option<&'a Value> {
    readiness["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == code)
}

async fn a_failing_webhook_reaches_nobody_until_it_answers_and_readiness_says_since_when(
    backend: Backend,
) {
    // The pager listens on loopback, which webhooks reach only when the operator allows it.
    let (app, gateway, world) =
        world_with(backend, &[("COMPANION_WEBHOOK_ALLOW", "127.0.0.1")]).await;
    let org_phone = device(&app, &world.org_admin).await;
    let pager = pager(false).await;
    app.post(
        &format!("/v1/clinics/{}/webhooks", world.clinic_a),
        &world.admin_a.access,
        json!({"url": pager.url}),
    )
    .await
    .expect(StatusCode::CREATED);
    // Nobody in the clinic has a device: the webhook is the only way.
    let ready = readiness(&app, &world.admin_a, &world.clinic_a).await;
    assert_eq!(ready["reachable"], true, "{ready}");
    let reply = item9(&app, &world.patient_a).await;
    app.run_jobs().await;
    assert!(pager.requests.load(Ordering::SeqCst) >= 1);
    let id = alerts_of(&app, &world.clinician_a).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = alert(&app, &world.clinician_a, &id).await;
    assert_eq!(
        now["unreachable"], true,
        "a retrying webhook counts for nothing: {now}"
    );
    assert_eq!(now["care_team"], "unreachable");
    let history = events(&app, &world.clinician_a, &id).await;
    assert!(
        history
            .iter()
            .any(|(kind, detail)| kind == "tier_reached_nobody"
                && detail.contains("webhook retrying")),
        "{history:?}"
    );
    assert_eq!(
        unreachable_pushes(&gateway, &org_phone),
        1,
        "the last resort was told"
    );
    assert_told(
        &read_back(&app, &world.patient_a, &reply).await["safety"],
        "unreachable",
    );
    let ready = readiness(&app, &world.admin_a, &world.clinic_a).await;
    assert_eq!(ready["reachable"], false, "{ready}");
    let failing = problem(&ready, "webhook_failing").expect("webhook_failing");
    assert!(
        failing["message"]
            .as_str()
            .unwrap()
            .contains("failing since"),
        "{failing}"
    );

    // The pager comes back: its retried delivery is accepted, which counts.
    pager.healthy.store(true, Ordering::SeqCst);
    for _ in 0..6 {
        app.clock.advance(TimeDelta::seconds(30));
        app.run_jobs().await;
    }
    let now = alert(&app, &world.clinician_a, &id).await;
    assert_eq!(now["care_team"], "reached", "{now}");
    assert_eq!(now["unreachable"], false);
    assert_told(
        &read_back(&app, &world.patient_a, &reply).await["safety"],
        "reached",
    );
    let ready = readiness(&app, &world.admin_a, &world.clinic_a).await;
    assert!(problem(&ready, "webhook_failing").is_none(), "{ready}");
}

async fn without_push_credentials_no_device_counts_and_the_patient_hears_unreachable(
    backend: Backend,
) {
    // No credentials at all: the development stand-in logs and sends nothing.
    let app = TestApp::with_settings(backend, &[("COMPANION_ACCESS_TOKEN_TTL", "86400")]).await;
    let world = app.world().await;
    on_call(&app, &world.clinician_a).await;
    device(&app, &world.clinician_a).await;
    device(&app, &world.admin_a).await;
    let ready = readiness(&app, &world.admin_a, &world.clinic_a).await;
    assert_eq!(ready["reachable"], false, "{ready}");
    let push = problem(&ready, "push_not_configured").expect("push_not_configured");
    assert!(
        push["message"]
            .as_str()
            .unwrap()
            .contains("Push is not configured")
    );
    assert_eq!(
        push["account_ids"].as_array().unwrap().len(),
        2,
        "the staff whose phones will never ring: {push}"
    );
    let reply = item9(&app, &world.patient_a).await;
    app.run_jobs().await;
    let found = alerts_of(&app, &world.clinician_a).await;
    assert_eq!(found[0]["unreachable"], true);
    assert_eq!(found[0]["care_team"], "unreachable");
    assert_told(
        &read_back(&app, &world.patient_a, &reply).await["safety"],
        "unreachable",
    );
    // Nothing pretends to have been delivered.
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM notifications WHERE status = 'delivered'")
            .await,
        0
    );
}

async fn the_patient_is_told_reached_only_after_a_push_was_accepted(backend: Backend) {
    let (app, gateway, world) = world_with(backend, &[]).await;
    on_call(&app, &world.clinician_a).await;
    let phone = device(&app, &world.clinician_a).await;
    let reply = item9(&app, &world.patient_a).await;
    assert_told(&reply.body["safety"], "trying");
    // The notification job runs and queues the push: still nothing accepted.
    app.run_jobs().await;
    assert_eq!(alert_pushes(&gateway, &phone).len(), 1);
    assert_told(
        &read_back(&app, &world.patient_a, &reply).await["safety"],
        "reached",
    );
    // The list shows the same.
    let listed = app
        .get("/v1/me/check-ins", &world.patient_a.access)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_told(&listed["items"][0]["safety"], "reached");
    // Someone else's check-in is not found.
    let id = reply.body["id"].as_str().unwrap();
    app.get(&format!("/v1/me/check-ins/{id}"), &world.patient_a2.access)
        .await
        .expect(StatusCode::NOT_FOUND);
}

async fn a_patient_whose_clinic_nobody_can_reach_is_told_so_in_the_answer_itself(backend: Backend) {
    // The server waits for the first outcome; a worker runs beside the requests, as in
    // `companion serve`.
    let (app, gateway, world) =
        world_with(backend, &[("COMPANION_SAFETY_ANSWER_WAIT_MS", "5000")]).await;
    let org_phone = device(&app, &world.org_admin).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker =
        tokio::spawn(companion::jobs::runner::Runner::new(app.app.clone()).run(shutdown.clone()));
    // Nobody in clinic A has a device, a webhook or an email server.
    let reply = item9(&app, &world.patient_a).await;
    assert_told(&reply.body["safety"], "unreachable");
    // Clinic B's clinician has a phone: that answer says reached.
    device(&app, &world.clinician_b).await;
    let reply_b = item9(&app, &world.patient_b).await;
    assert_told(&reply_b.body["safety"], "reached");
    shutdown.cancel();
    worker.await.unwrap();
    assert_eq!(unreachable_pushes(&gateway, &org_phone), 1);
}

async fn urgent_and_high_pushes_ring_through_focus_on_the_fcm_route_and_routine_ones_do_not(
    backend: Backend,
) {
    let (app, fcm) =
        TestApp::with_fake_fcm(backend, &[("COMPANION_ACCESS_TOKEN_TTL", "86400")]).await;
    let world = app.world().await;
    on_call(&app, &world.clinician_a).await;
    let token = device(&app, &world.clinician_a).await;
    // Urgent (item 9), high (a dangerous blood pressure), medium (a GAD-7 rise) at 10:00 on a
    // Wednesday in Chicago, inside working hours so that nothing is held.
    app.clock.set("2026-06-03T15:00:00Z".parse().unwrap());
    item9(&app, &world.patient_a).await;
    check_in(
        &app,
        &world.patient_a2,
        "daily_mood",
        json!({"mood": 6, "bp_systolic": 185, "bp_diastolic": 95}),
    )
    .await;
    let gad = |total: i64| {
        let mut answers = serde_json::Map::new();
        let mut left = total;
        for i in 1..=7 {
            let v = left.min(3);
            left -= v;
            answers.insert(format!("q{i}"), json!(v));
        }
        Value::Object(answers)
    };
    check_in(&app, &world.patient_a2, "gad7", gad(2)).await;
    app.clock.advance(TimeDelta::minutes(1));
    check_in(&app, &world.patient_a2, "gad7", gad(12)).await;
    app.run_jobs().await;
    let alerts = alerts_of(&app, &world.clinician_a).await;
    let severity_of = |id: &str| {
        alerts
            .iter()
            .find(|a| a["id"] == id)
            .map(|a| a["severity"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let received: Vec<Value> = fcm
        .received()
        .into_iter()
        .filter(|r| r.token == token)
        .map(|r| r.body)
        .collect();
    assert_eq!(received.len(), 3, "{received:?}");
    for body in received {
        let message = &body["message"];
        let severity = severity_of(message["data"]["alert_id"].as_str().unwrap());
        let apns = &message["apns"];
        assert_eq!(message["android"]["priority"], "high");
        if severity == "medium" {
            assert_eq!(apns["headers"]["apns-priority"], "5", "{body}");
            assert!(apns.get("payload").is_none(), "{body}");
        } else {
            assert_eq!(apns["headers"]["apns-priority"], "10", "{severity}: {body}");
            assert_eq!(
                apns["payload"]["aps"]["interruption-level"], "time-sensitive",
                "{severity}: {body}"
            );
        }
    }
}

async fn safety_work_is_claimed_before_a_backlog_of_routine_pushes(backend: Backend) {
    let (app, gateway, world) = world_with(backend, &[("COMPANION_WORKER_CONCURRENCY", "4")]).await;
    on_call(&app, &world.clinician_a).await;
    let clinician_phone = device(&app, &world.clinician_a).await;
    let patient_phone = device(&app, &world.patient_a2).await;
    // 300 routine pushes due before the alert.
    let patient = world.patient_a2.id.clone();
    let now = app.app.now().naive_utc();
    app.app
        .db
        .write(move |conn| {
            let device = companion::push::store::active_devices(conn, &patient)?
                .pop()
                .unwrap();
            let items = (0..300)
                .map(|i| {
                    (
                        &device,
                        PushMessage::CheckInPrompt {
                            prompt_id: format!("0190c1c2-0000-7000-8000-{i:012}"),
                        },
                    )
                })
                .collect();
            companion::push::store::notify_devices(conn, items, now)
        })
        .await
        .unwrap();
    app.clock.advance(TimeDelta::seconds(1));
    item9(&app, &world.patient_a).await;
    // Two claims of four: the notification, then its push, ahead of all 300.
    let runner = companion::jobs::runner::Runner::new(app.app.clone());
    runner.run_once().await.unwrap();
    runner.run_once().await.unwrap();
    assert_eq!(alert_pushes(&gateway, &clinician_phone).len(), 1);
    let routine = gateway
        .sent()
        .into_iter()
        .filter(|(t, _)| *t == patient_phone)
        .count();
    assert!(routine <= 6, "{routine} routine pushes went first");
}

async fn an_acknowledged_alert_left_unresolved_returns_to_open_and_an_assignee_is_told(
    backend: Backend,
) {
    let (app, gateway, world) = world_with(backend, &[]).await;
    on_call(&app, &world.clinician_a).await;
    let phone = device(&app, &world.clinician_a).await;
    let admin_phone = device(&app, &world.admin_a).await;
    item9(&app, &world.patient_a).await;
    app.run_jobs().await;
    let id = alerts_of(&app, &world.clinician_a).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.call(
        Method::POST,
        &format!("/v1/alerts/{id}/acknowledge"),
        Some(&world.clinician_a.access),
        None,
    )
    .await
    .expect(StatusCode::OK);
    // Assigning tells the assignee.
    let assigned = app
        .post(
            &format!("/v1/alerts/{id}/assign"),
            &world.clinician_a.access,
            json!({"assignee_id": world.admin_a.id}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(assigned.body["assigned_to"], world.admin_a.id.as_str());
    app.run_jobs().await;
    assert_eq!(alert_pushes(&gateway, &admin_phone), [(id.clone(), true)]);
    // 23 h 59 min later: still acknowledged.
    app.clock.advance(TimeDelta::minutes(24 * 60 - 1));
    app.run_jobs().await;
    let mut clinician = world.clinician_a.clone();
    clinician.access = app.token(&clinician).await;
    assert_eq!(alert(&app, &clinician, &id).await["status"], "acknowledged");
    let before = alert_pushes(&gateway, &phone).len();
    // 24 h: open again, its first tier told again.
    app.clock.advance(TimeDelta::minutes(2));
    app.run_jobs().await;
    let now = alert(&app, &clinician, &id).await;
    assert_eq!(now["status"], "open", "{now}");
    assert_eq!(now["reopen_count"], 1);
    assert_eq!(alert_pushes(&gateway, &phone).len(), before + 1);
    let history = events(&app, &clinician, &id).await;
    assert!(
        history.iter().any(
            |(kind, detail)| kind == "reopened" && detail.contains("acknowledged 24 hours ago")
        ),
        "{history:?}"
    );
    // Resolved: it stays resolved.
    app.post(
        &format!("/v1/alerts/{id}/resolve"),
        &clinician.access,
        json!({"note": "called the patient"}),
    )
    .await
    .expect(StatusCode::OK);
    app.clock.advance(TimeDelta::days(4));
    app.run_jobs().await;
    clinician.access = app.token(&clinician).await;
    assert_eq!(alert(&app, &clinician, &id).await["status"], "resolved");
}

/// Joins `clinic` with `role` under a chosen email address.
async fn join_as(app: &TestApp, inviter: &Actor, clinic: &str, role: &str, email: &str) -> Actor {
    let code = app.invite(inviter, clinic, role).await;
    app.accept(&code, email).await.expect(StatusCode::CREATED);
    let tokens = app.login(email, PASSWORD).await.expect(StatusCode::OK);
    let access = tokens.body["access_token"].as_str().unwrap().to_owned();
    let me = app.get("/v1/me", &access).await;
    Actor {
        id: me.body["id"].as_str().unwrap().to_owned(),
        email: email.to_owned(),
        access,
        refresh: tokens.body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

async fn email_reaches_staff_without_devices_and_counts_only_when_the_server_accepts_it(
    backend: Backend,
) {
    let sink = SmtpSink::start().await.unwrap();
    let url = sink.url();
    let (app, _gateway, world) = world_with(
        backend,
        &[
            ("COMPANION_SMTP_URL", &url),
            ("COMPANION_SMTP_FROM", "Companion <alerts@care.example.org>"),
            ("COMPANION_PUBLIC_URL", "https://care.example.org"),
        ],
    )
    .await;
    // Nobody has a device; email is the way.
    let reply = item9(&app, &world.patient_a).await;
    app.run_jobs().await;
    for staff in [&world.clinician_a, &world.admin_a] {
        let mails = sink.mails_to(&staff.email);
        assert_eq!(mails.len(), 1, "{}: {mails:?}", staff.email);
        let mail = &mails[0];
        assert_eq!(
            mail.header("Subject").as_deref(),
            Some("A patient alert needs your attention")
        );
        let body = mail.body();
        assert!(
            body.contains("https://care.example.org/console/alerts"),
            "{body}"
        );
        for word in [
            "phq",
            "item",
            "suicid",
            "Test Person",
            &world.patient_a.email,
        ] {
            assert!(
                !body.to_lowercase().contains(&word.to_lowercase()),
                "{word} in {body}"
            );
        }
    }
    assert!(sink.mails_to(&world.clinician_b.email).is_empty());
    assert_told(
        &read_back(&app, &world.patient_a, &reply).await["safety"],
        "reached",
    );

    // A clinic whose staff's mail is refused reaches nobody; the organisation's admins are
    // emailed instead.
    let clinic = app.create_clinic(&world.org_admin, "Clinic C").await;
    let admin = join_as(
        &app,
        &world.org_admin,
        &clinic,
        "clinic_admin",
        "refused-admin@example.org",
    )
    .await;
    join_as(
        &app,
        &admin,
        &clinic,
        "clinician",
        "refused-clinician@example.org",
    )
    .await;
    let patient = app.join(&admin, &clinic, "patient").await;
    let reply = item9(&app, &patient).await;
    for _ in 0..4 {
        app.run_jobs().await;
    }
    let found = alerts_of(&app, &admin).await;
    assert_eq!(found[0]["care_team"], "unreachable", "{}", found[0]);
    assert_told(
        &read_back(&app, &patient, &reply).await["safety"],
        "unreachable",
    );
    let to_org = sink.mails_to(&world.org_admin.email);
    assert_eq!(to_org.len(), 1, "{to_org:?}");
    assert_eq!(
        to_org[0].header("Subject").as_deref(),
        Some("An alert could not reach its care team")
    );
}
