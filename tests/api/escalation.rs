//! Escalation through the API: safety signals and declines open alerts in the check-in's own
//! request, the care team is pushed PHI-free notices, and unacknowledged alerts climb tiers at
//! their deadlines until someone acknowledges.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use chrono::{SecondsFormat, TimeDelta};
use companion::push::content::PushMessage;
use companion::push::gateway::MemoryGateway;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Actor, Backend, TestApp, World, assert_error};

both!(
    an_item_nine_answer_opens_an_urgent_alert_and_a_clinician_push_in_the_same_request,
    a_repeat_signal_updates_the_open_alert_instead_of_opening_another,
    an_unacknowledged_alert_climbs_tiers_at_its_deadlines_and_stops_once_acknowledged,
    a_worker_killed_before_notifying_leaves_the_clinician_notified_once_after_the_lease,
    a_decline_explains_itself,
    the_care_team_works_the_inbox_and_nobody_else_can,
);

pub(crate) fn phq9(values: [i64; 9]) -> Value {
    let mut answers = serde_json::Map::new();
    for (i, v) in values.iter().enumerate() {
        answers.insert(format!("q{}", i + 1), json!(v));
    }
    Value::Object(answers)
}

pub(crate) async fn submit(
    app: &TestApp,
    patient: &Actor,
    instrument: &str,
    answers: Value,
) -> Value {
    let at = app.app.now().to_rfc3339_opts(SecondsFormat::Micros, true);
    app.post(
        "/v1/check-ins",
        &patient.access,
        json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": instrument, "answers": answers, "completed_at": at}),
    )
    .await
    .expect(StatusCode::CREATED)
    .body
}

pub(crate) async fn device(app: &TestApp, who: &Actor) -> String {
    let token = format!("tok-{}", uuid::Uuid::new_v4());
    app.post(
        "/v1/devices",
        &who.access,
        json!({"platform": "android", "token": token}),
    )
    .await
    .expect(StatusCode::CREATED);
    token
}

pub(crate) async fn on_call(app: &TestApp, who: &Actor) {
    app.put("/v1/me/on-call", &who.access, json!({"on_call": true}))
        .await
        .expect(StatusCode::OK);
}

/// Alert pushes that reached each token.
pub(crate) fn alert_pushes(gateway: &MemoryGateway, token: &str) -> Vec<String> {
    gateway
        .sent()
        .into_iter()
        .filter(|(t, _)| t == token)
        .filter_map(|(_, m)| match m {
            PushMessage::ClinicianAlert { alert_id, .. } => Some(alert_id),
            _ => None,
        })
        .collect()
}

pub(crate) async fn app_with_gateway(backend: Backend) -> (TestApp, Arc<MemoryGateway>, World) {
    let gateway = Arc::new(MemoryGateway::default());
    let installed = gateway.clone();
    // Day-long access tokens: these tests move the clock by hours.
    let app = TestApp::build(
        backend,
        &[("COMPANION_ACCESS_TOKEN_TTL", "86400")],
        move |a| a.push.fcm = installed,
    )
    .await;
    let world = app.world().await;
    (app, gateway, world)
}

pub(crate) async fn alerts_of(app: &TestApp, staff: &Actor) -> Vec<Value> {
    app.get("/v1/alerts", &staff.access)
        .await
        .expect(StatusCode::OK)
        .body["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn an_item_nine_answer_opens_an_urgent_alert_and_a_clinician_push_in_the_same_request(
    backend: Backend,
) {
    let (app, gateway, world) = app_with_gateway(backend).await;
    on_call(&app, &world.clinician_a).await;
    let clinician_phone = device(&app, &world.clinician_a).await;
    let patient_phone = device(&app, &world.patient_a).await;
    let reply = submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([1, 1, 0, 0, 0, 0, 0, 0, 1]),
    )
    .await;
    // Before any worker runs nothing has reached anyone, and the patient is told so.
    assert_eq!(reply["safety"]["care_team"], "trying");
    assert!(
        reply["safety"]["message"]
            .as_str()
            .unwrap()
            .contains("We are contacting your care team now"),
        "{reply}"
    );
    // Before any worker runs: the alert and its notification job exist already.
    let alerts = alerts_of(&app, &world.clinician_a).await;
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(
        (
            alert["rule"].as_str(),
            alert["severity"].as_str(),
            alert["status"].as_str()
        ),
        (Some("safety_item9"), Some("urgent"), Some("open"))
    );
    assert_eq!(alert["patient_id"], world.patient_a.id.as_str());
    assert_eq!(alert["explanation"], "PHQ-9 item 9 answered 1 of 3");
    let opened: chrono::DateTime<chrono::Utc> =
        alert["opened_at"].as_str().unwrap().parse().unwrap();
    let deadline: chrono::DateTime<chrono::Utc> =
        alert["ack_deadline"].as_str().unwrap().parse().unwrap();
    assert_eq!(deadline - opened, TimeDelta::minutes(15));
    assert_eq!(
        app.count(
            "SELECT COUNT(*) AS n FROM jobs WHERE kind = 'alert.notify' AND status = 'queued'"
        )
        .await,
        1
    );
    app.run_jobs().await;
    let id = alert["id"].as_str().unwrap().to_owned();
    assert_eq!(alert_pushes(&gateway, &clinician_phone), vec![id.clone()]);
    assert!(
        gateway.sent().iter().all(|(t, _)| *t != patient_phone),
        "the patient is not pushed"
    );
    // The other clinic sees nothing.
    assert!(alerts_of(&app, &world.clinician_b).await.is_empty());
}

async fn a_repeat_signal_updates_the_open_alert_instead_of_opening_another(backend: Backend) {
    let (app, gateway, world) = app_with_gateway(backend).await;
    let phone = device(&app, &world.clinician_a).await;
    submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
    )
    .await;
    app.run_jobs().await;
    app.clock.advance(TimeDelta::minutes(5));
    submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 3]),
    )
    .await;
    app.run_jobs().await;
    let alerts = alerts_of(&app, &world.clinician_a).await;
    assert_eq!(alerts.len(), 1, "one open alert per patient and rule");
    assert_eq!(alerts[0]["signal_count"], 2);
    assert_eq!(alerts[0]["explanation"], "PHQ-9 item 9 answered 3 of 3");
    assert_eq!(
        alert_pushes(&gateway, &phone).len(),
        1,
        "no second push for a repeat"
    );
    let detail = app
        .get(
            &format!("/v1/alerts/{}", alerts[0]["id"].as_str().unwrap()),
            &world.clinician_a.access,
        )
        .await
        .body;
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    // Nobody is on call, so the first tier is empty and the clinicians are told at once.
    assert_eq!(
        kinds,
        ["opened", "tier_skipped", "notified", "reached", "repeated"]
    );
    // Another patient's signal is another alert.
    submit(
        &app,
        &world.patient_a2,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
    )
    .await;
    assert_eq!(alerts_of(&app, &world.clinician_a).await.len(), 2);
}

async fn an_unacknowledged_alert_climbs_tiers_at_its_deadlines_and_stops_once_acknowledged(
    backend: Backend,
) {
    let (app, gateway, world) = app_with_gateway(backend).await;
    on_call(&app, &world.clinician_a).await;
    let on_call_phone = device(&app, &world.clinician_a).await;
    let colleague = app.join(&world.admin_a, &world.clinic_a, "clinician").await;
    let colleague_phone = device(&app, &colleague).await;
    let admin_phone = device(&app, &world.admin_a).await;
    submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([2, 2, 2, 2, 2, 2, 2, 2, 2]),
    )
    .await;
    app.run_jobs().await;
    let pushes = |token: &str| alert_pushes(&gateway, token).len();
    assert_eq!(
        (
            pushes(&on_call_phone),
            pushes(&colleague_phone),
            pushes(&admin_phone)
        ),
        (1, 0, 0)
    );
    // One second before the deadline: nothing moves.
    app.clock
        .advance(TimeDelta::minutes(15) - TimeDelta::seconds(1));
    app.run_jobs().await;
    assert_eq!(
        (
            pushes(&on_call_phone),
            pushes(&colleague_phone),
            pushes(&admin_phone)
        ),
        (1, 0, 0)
    );
    // At the deadline: tier 1, every clinician.
    app.clock.advance(TimeDelta::seconds(1));
    app.run_jobs().await;
    assert_eq!(
        (
            pushes(&on_call_phone),
            pushes(&colleague_phone),
            pushes(&admin_phone)
        ),
        (2, 1, 0)
    );
    // Fifteen minutes later still nobody: tier 2, the clinic admins; then again at every deadline.
    app.clock.advance(TimeDelta::minutes(15));
    app.run_jobs().await;
    assert_eq!(pushes(&admin_phone), 1);
    let alert = &alerts_of(&app, &world.admin_a).await[0];
    assert_eq!(alert["tier"], 2);
    app.clock.advance(TimeDelta::minutes(15));
    app.run_jobs().await;
    assert_eq!(pushes(&admin_phone), 2);
    // Acknowledged: no further escalation, ever.
    let id = alert["id"].as_str().unwrap().to_owned();
    let acked = app
        .call(
            Method::POST,
            &format!("/v1/alerts/{id}/acknowledge"),
            Some(&colleague.access),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(acked.body["status"], "acknowledged");
    assert_eq!(acked.body["acknowledged_by"], colleague.id.as_str());
    let before = gateway.sent().len();
    for _ in 0..4 {
        app.clock.advance(TimeDelta::minutes(15));
        app.run_jobs().await;
    }
    assert_eq!(
        gateway.sent().len(),
        before,
        "escalation stopped at acknowledgement"
    );
    // What is left is the return to open if nobody resolves it within 24 hours.
    assert_eq!(
        app.count(
            "SELECT COUNT(*) AS n FROM jobs WHERE status IN ('queued', 'running') \
             AND kind <> 'alert.ack_lapse'"
        )
        .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM jobs WHERE kind = 'alert.ack_lapse'")
            .await,
        1
    );
}

async fn a_worker_killed_before_notifying_leaves_the_clinician_notified_once_after_the_lease(
    backend: Backend,
) {
    let gateway = Arc::new(MemoryGateway::default());
    let installed = gateway.clone();
    let app = TestApp::build(backend, &[("COMPANION_JOB_LEASE", "30")], move |a| {
        a.push.fcm = installed
    })
    .await;
    let world = app.world().await;
    let phone = device(&app, &world.clinician_a).await;
    submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 2]),
    )
    .await;
    // A worker claims the notification job and dies before doing anything.
    let now = app.app.now().naive_utc();
    let lease = now + TimeDelta::seconds(30);
    let claimed = app
        .app
        .db
        .run(move |conn| companion::jobs::store::claim(conn, "worker-that-died", now, lease, 10))
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().filter(|j| j.kind == "alert.notify").count(),
        1
    );
    assert_eq!(
        app.run_jobs().await,
        0,
        "the dead worker's lease still holds"
    );
    assert!(alert_pushes(&gateway, &phone).is_empty());
    app.clock.advance(TimeDelta::seconds(31));
    app.run_jobs().await;
    app.run_jobs().await;
    assert_eq!(
        alert_pushes(&gateway, &phone).len(),
        1,
        "notified exactly once"
    );
}

async fn a_decline_explains_itself(backend: Backend) {
    let (app, _gateway, world) = app_with_gateway(backend).await;
    submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([1, 1, 1, 1, 1, 1, 1, 2, 0]),
    )
    .await;
    app.clock.advance(TimeDelta::hours(20));
    submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([2, 2, 2, 2, 2, 2, 2, 3, 0]),
    )
    .await;
    let alerts = alerts_of(&app, &world.clinician_a).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["rule"], "phq9_deterioration");
    assert_eq!(alerts[0]["severity"], "high");
    assert_eq!(alerts[0]["explanation"], "PHQ-9 17, baseline 9, +8 >= 5");
    assert_eq!(alerts[0]["inputs"]["baseline"], 9);
    let opened: chrono::DateTime<chrono::Utc> =
        alerts[0]["opened_at"].as_str().unwrap().parse().unwrap();
    let deadline: chrono::DateTime<chrono::Utc> =
        alerts[0]["ack_deadline"].as_str().unwrap().parse().unwrap();
    assert_eq!(deadline - opened, TimeDelta::hours(2));
    // Home blood pressure in the crisis range.
    submit(
        &app,
        &world.patient_a2,
        "daily_mood",
        json!({"mood": 6, "bp_systolic": 185, "bp_diastolic": 95}),
    )
    .await;
    let rules: Vec<String> = alerts_of(&app, &world.clinician_a)
        .await
        .iter()
        .map(|a| a["rule"].as_str().unwrap().to_owned())
        .collect();
    assert!(rules.contains(&"blood_pressure".to_owned()), "{rules:?}");
}

async fn the_care_team_works_the_inbox_and_nobody_else_can(backend: Backend) {
    let (app, _gateway, world) = app_with_gateway(backend).await;
    submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
    )
    .await;
    let id = alerts_of(&app, &world.clinician_a).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/alerts/{id}");
    let detail = app
        .get(&path, &world.clinician_a.access)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        detail["alert"]["explanation"],
        "PHQ-9 item 9 answered 1 of 3"
    );
    assert_eq!(detail["recent_check_ins"][0]["safety_signal"], true);
    // Nobody outside the clinic's staff.
    assert_error(
        &app.get(&path, &world.clinician_b.access).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &app.get(&path, &world.patient_a.access).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.get("/v1/alerts", &world.org_admin.access).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.call(
            Method::POST,
            &format!("{path}/acknowledge"),
            Some(&world.admin_b.access),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Assign to a colleague; not to a patient or another clinic's clinician.
    for bad in [
        world.patient_a.id.as_str(),
        world.clinician_b.id.as_str(),
        "nobody",
    ] {
        let reply = app
            .post(
                &format!("{path}/assign"),
                &world.admin_a.access,
                json!({"assignee_id": bad}),
            )
            .await;
        assert_error(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
    let assigned = app
        .post(
            &format!("{path}/assign"),
            &world.admin_a.access,
            json!({"assignee_id": world.clinician_a.id}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(assigned.body["assigned_to"], world.clinician_a.id.as_str());
    let empty = app
        .post(
            &format!("{path}/resolve"),
            &world.clinician_a.access,
            json!({"note": "  "}),
        )
        .await;
    assert_error(
        &empty,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let resolved = app
        .post(
            &format!("{path}/resolve"),
            &world.clinician_a.access,
            json!({"note": "Called the patient; safety plan reviewed."}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(resolved.body["status"], "resolved");
    assert!(
        resolved.body["acknowledged_at"].is_string(),
        "resolving acknowledges"
    );
    let again = app
        .call(
            Method::POST,
            &format!("{path}/acknowledge"),
            Some(&world.clinician_a.access),
            None,
        )
        .await;
    assert_error(&again, StatusCode::CONFLICT, "alert_resolved");
    // Filters.
    let open = app
        .get("/v1/alerts?status=open", &world.clinician_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(open.body["items"], json!([]));
    let done = app
        .get("/v1/alerts?status=resolved", &world.clinician_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(done.body["items"].as_array().unwrap().len(), 1);
    let bad = app
        .get("/v1/alerts?status=closed", &world.clinician_a.access)
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    // A signal after resolution opens a new alert (new answers: the same ones re-sent within
    // minutes would be the same check-in).
    submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 2]),
    )
    .await;
    assert_eq!(alerts_of(&app, &world.clinician_a).await.len(), 2);
    // Every action is audited.
    let audited = app
        .count("SELECT COUNT(*) AS n FROM audit_events WHERE action IN ('alert.read', 'alert.assign', 'alert.resolve')")
        .await;
    assert_eq!(audited, 3);
    // Patients cannot mark themselves on call.
    let reply = app
        .put(
            "/v1/me/on-call",
            &world.patient_a.access,
            json!({"on_call": true}),
        )
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
}

mod thresholds {
    use super::*;

    both!(a_clinic_sets_its_own_thresholds_within_range);

    async fn a_clinic_sets_its_own_thresholds_within_range(backend: Backend) {
        let (app, _gateway, world) = app_with_gateway(backend).await;
        let path = format!("/v1/clinics/{}/alert-thresholds", world.clinic_a);
        let defaults = app
            .get(&path, &world.clinician_a.access)
            .await
            .expect(StatusCode::OK)
            .body;
        assert_eq!(
            (
                defaults["phq9_rise"].as_i64(),
                defaults["phq9_floor"].as_i64()
            ),
            (Some(5), Some(10))
        );
        let bad = app
            .put(
                &path,
                &world.admin_a.access,
                json!({"phq9_rise": 0, "systolic": 400}),
            )
            .await;
        assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let fields: Vec<&String> = bad.body["error"]["fields"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(fields, ["phq9_rise", "systolic"]);
        let typo = app
            .put(&path, &world.admin_a.access, json!({"phq9_raise": 3}))
            .await;
        assert_error(&typo, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let clinician = app
            .put(&path, &world.clinician_a.access, json!({"phq9_rise": 3}))
            .await;
        assert_error(&clinician, StatusCode::FORBIDDEN, "forbidden");
        let other = app
            .put(&path, &world.admin_b.access, json!({"phq9_rise": 3}))
            .await;
        assert_error(&other, StatusCode::NOT_FOUND, "not_found");
        app.put(&path, &world.admin_a.access, json!({"phq9_rise": 3}))
            .await
            .expect(StatusCode::OK);
        // +3 to 12 now escalates in clinic A, not under clinic B's defaults.
        for (patient, staff) in [
            (&world.patient_a, &world.clinician_a),
            (&world.patient_b, &world.clinician_b),
        ] {
            submit(&app, patient, "phq9", phq9([1, 1, 1, 1, 1, 1, 1, 2, 0])).await;
            app.clock.advance(TimeDelta::hours(1));
            submit(&app, patient, "phq9", phq9([2, 2, 1, 1, 1, 1, 1, 3, 0])).await;
            let rules: Vec<String> = alerts_of(&app, staff)
                .await
                .iter()
                .map(|a| a["rule"].as_str().unwrap().to_owned())
                .collect();
            if staff.id == world.clinician_a.id {
                assert_eq!(rules, ["phq9_deterioration"]);
            } else {
                assert!(rules.is_empty(), "{rules:?}");
            }
        }
    }
}

mod roster {
    use super::*;

    both!(the_roster_puts_the_patients_most_at_risk_first);

    async fn the_roster_puts_the_patients_most_at_risk_first(backend: Backend) {
        let (app, _gateway, world) = app_with_gateway(backend).await;
        let third = app
            .join(&world.clinician_a, &world.clinic_a, "patient")
            .await;
        // patient_a2: a high alert (blood pressure); third: an urgent one; patient_a: none.
        submit(
            &app,
            &world.patient_a2,
            "daily_mood",
            json!({"mood": 6, "bp_systolic": 190, "bp_diastolic": 100}),
        )
        .await;
        submit(&app, &third, "phq9", phq9([0, 0, 0, 0, 0, 0, 0, 0, 2])).await;
        let path = format!("/v1/clinics/{}/patients", world.clinic_a);
        let roster = app
            .get(&path, &world.clinician_a.access)
            .await
            .expect(StatusCode::OK)
            .body;
        let order: Vec<(&str, Option<&str>, i64)> = roster["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().unwrap(),
                    p["risk"].as_str(),
                    p["open_alerts"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            order,
            [
                (third.id.as_str(), Some("urgent"), 1),
                (world.patient_a2.id.as_str(), Some("high"), 1),
                (world.patient_a.id.as_str(), None, 0)
            ]
        );
        // The same order, one page at a time.
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}?limit=1&cursor={c}"),
                None => format!("{path}?limit=1"),
            };
            let page = app
                .get(&url, &world.clinician_a.access)
                .await
                .expect(StatusCode::OK)
                .body;
            seen.push(page["items"][0]["id"].as_str().unwrap().to_owned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(
            seen,
            [
                third.id.clone(),
                world.patient_a2.id.clone(),
                world.patient_a.id.clone()
            ]
        );
    }
}

mod webhooks {
    use std::sync::Mutex;

    use super::*;

    /// A clinic's receiver: answers 500 to its first `fail` requests, then 200.
    #[derive(Default)]
    struct Receiver {
        requests: Mutex<Vec<(axum::http::HeaderMap, String)>>,
    }

    async fn start_receiver(fail: usize) -> (String, Arc<Receiver>) {
        let receiver = Arc::new(Receiver::default());
        let state = receiver.clone();
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let mut requests = state.requests.lock().unwrap();
                    requests.push((headers, body));
                    if requests.len() <= fail {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.ok() });
        (url, receiver)
    }

    fn verifies(headers: &axum::http::HeaderMap, body: &str, secret: &str) -> bool {
        let timestamp: i64 = headers["companion-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let signature = headers["companion-signature"].to_str().unwrap();
        companion::escalation::webhooks::verify(signature, secret, timestamp, body.as_bytes())
    }

    both!(signed_webhooks_survive_a_receiver_that_fails_twice_and_rotate_secrets);

    async fn signed_webhooks_survive_a_receiver_that_fails_twice_and_rotate_secrets(
        backend: Backend,
    ) {
        // The receiver listens on loopback, which webhooks reach only when the operator
        // allow-lists it.
        let app = TestApp::build(
            backend,
            &[
                ("COMPANION_ACCESS_TOKEN_TTL", "86400"),
                ("COMPANION_WEBHOOK_ALLOW", "127.0.0.1"),
            ],
            |a| a.push.fcm = Arc::new(MemoryGateway::default()),
        )
        .await;
        let world = app.world().await;
        // The clinicians are reached by push; the webhook is retried on its own.
        device(&app, &world.clinician_a).await;
        let (url, receiver) = start_receiver(2).await;
        let path = format!("/v1/clinics/{}/webhooks", world.clinic_a);
        for (who, status) in [
            (&world.clinician_a, StatusCode::FORBIDDEN),
            (&world.admin_b, StatusCode::NOT_FOUND),
        ] {
            assert_eq!(
                app.post(&path, &who.access, json!({"url": url}))
                    .await
                    .status,
                status
            );
        }
        let bad = app
            .post(
                &path,
                &world.admin_a.access,
                json!({"url": "ftp://example.org"}),
            )
            .await;
        assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let created = app
            .post(&path, &world.admin_a.access, json!({"url": url}))
            .await
            .expect(StatusCode::CREATED);
        let secret = created.body["secret"].as_str().unwrap().to_owned();
        let hook = created.body["id"].as_str().unwrap().to_owned();

        submit(
            &app,
            &world.patient_a,
            "phq9",
            phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
        )
        .await;
        app.run_jobs().await;
        assert_eq!(
            receiver.requests.lock().unwrap().len(),
            1,
            "first attempt (refused)"
        );
        for attempt in 2..=3 {
            app.clock.advance(TimeDelta::seconds(5));
            app.run_jobs().await;
            assert_eq!(receiver.requests.lock().unwrap().len(), attempt);
        }
        app.clock.advance(TimeDelta::seconds(10));
        app.run_jobs().await;
        let requests = receiver.requests.lock().unwrap().clone();
        assert_eq!(
            requests.len(),
            3,
            "accepted on the third try, not sent again"
        );
        let alert_id = alerts_of(&app, &world.clinician_a).await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for (headers, body) in &requests {
            assert!(verifies(headers, body, &secret), "signature");
            let body: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                (
                    body["type"].as_str(),
                    body["alert_id"].as_str(),
                    body["severity"].as_str()
                ),
                (
                    Some("alert.opened"),
                    Some(alert_id.as_str()),
                    Some("urgent")
                )
            );
            assert!(
                body.get("explanation").is_none(),
                "no clinical detail leaves in a webhook"
            );
        }
        assert!(!verifies(&requests[0].0, &requests[0].1, "whsec_wrong"));

        // Rotation: deliveries carry both signatures while the old secret lasts.
        let rotated = app
            .call(
                Method::POST,
                &format!("/v1/webhooks/{hook}/rotate-secret"),
                Some(&world.admin_a.access),
                None,
            )
            .await
            .expect(StatusCode::OK);
        let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
        assert_ne!(new_secret, secret);
        submit(
            &app,
            &world.patient_a2,
            "phq9",
            phq9([0, 0, 0, 0, 0, 0, 0, 0, 2]),
        )
        .await;
        app.run_jobs().await;
        let (headers, body) = receiver.requests.lock().unwrap().last().cloned().unwrap();
        assert!(verifies(&headers, &body, &new_secret) && verifies(&headers, &body, &secret));
        // Removed: nothing more is sent.
        assert_eq!(
            app.call(
                Method::DELETE,
                &format!("/v1/webhooks/{hook}"),
                Some(&world.admin_a.access),
                None
            )
            .await
            .status,
            StatusCode::NO_CONTENT
        );
        let before = receiver.requests.lock().unwrap().len();
        submit(
            &app,
            &third_patient(&app, &world).await,
            "phq9",
            phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
        )
        .await;
        app.run_jobs().await;
        assert_eq!(receiver.requests.lock().unwrap().len(), before);
    }

    async fn third_patient(app: &TestApp, world: &World) -> Actor {
        app.join(&world.clinician_a, &world.clinic_a, "patient")
            .await
    }
}

mod policy {
    use super::*;

    both!(a_clinic_policy_decides_who_is_told_and_when);

    async fn a_clinic_policy_decides_who_is_told_and_when(backend: Backend) {
        let (app, gateway, world) = app_with_gateway(backend).await;
        let path = format!("/v1/clinics/{}/escalation-policy", world.clinic_a);
        let default = app
            .get(&path, &world.clinician_a.access)
            .await
            .expect(StatusCode::OK)
            .body;
        assert_eq!(default["tiers"].as_array().unwrap().len(), 3);
        let bad = app
            .put(&path, &world.admin_a.access, json!({"tiers": []}))
            .await;
        assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let clinician = app
            .put(
                &path,
                &world.clinician_a.access,
                json!({"tiers": [{"audience": "clinicians"}]}),
            )
            .await;
        assert_error(&clinician, StatusCode::FORBIDDEN, "forbidden");
        // Admins first, with five minutes each round.
        app.put(
            &path,
            &world.admin_a.access,
            json!({"tiers": [{"audience": "clinic_admins", "delay_minutes": 5}]}),
        )
        .await
        .expect(StatusCode::OK);
        let admin_phone = device(&app, &world.admin_a).await;
        let clinician_phone = device(&app, &world.clinician_a).await;
        submit(
            &app,
            &world.patient_a,
            "phq9",
            phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
        )
        .await;
        app.run_jobs().await;
        assert_eq!(
            (
                alert_pushes(&gateway, &admin_phone).len(),
                alert_pushes(&gateway, &clinician_phone).len()
            ),
            (1, 0)
        );
        let alert = &alerts_of(&app, &world.admin_a).await[0];
        let opened: chrono::DateTime<chrono::Utc> =
            alert["opened_at"].as_str().unwrap().parse().unwrap();
        let deadline: chrono::DateTime<chrono::Utc> =
            alert["ack_deadline"].as_str().unwrap().parse().unwrap();
        assert_eq!(deadline - opened, TimeDelta::minutes(5));
        app.clock.advance(TimeDelta::minutes(5));
        app.run_jobs().await;
        assert_eq!(
            (
                alert_pushes(&gateway, &admin_phone).len(),
                alert_pushes(&gateway, &clinician_phone).len()
            ),
            (2, 0)
        );
    }
}
