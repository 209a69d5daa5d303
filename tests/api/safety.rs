//! The safety path guarantees of CLINICAL.md through the API: an acknowledged alert re-opens on
//! a new urgent signal, no safety answer is refused for its timestamp, crisis resources are
//! never empty, nobody reachable is an event, urgency keeps its pace, routine alerts wait for
//! working hours, and two staff acting on one alert get one decision.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use companion::push::content::PushMessage;
use companion::push::gateway::MemoryGateway;
use serde_json::{Value, json};

use crate::both;
use crate::escalation::{alert_pushes, alerts_of, app_with_gateway, device, on_call, phq9, submit};
use crate::harness::{Actor, Backend, Reply, TestApp, World, assert_error};

both!(
    an_urgent_signal_after_acknowledgement_reopens_the_alert_with_a_fresh_deadline,
    a_routine_signal_after_acknowledgement_is_marked_and_moves_up_the_inbox,
    a_check_in_from_a_fast_or_long_offline_phone_is_stored_and_item_nine_still_alerts,
    crisis_resources_are_never_empty_and_a_clinic_can_replace_them,
    a_tier_nobody_can_receive_is_skipped_and_nobody_reachable_is_an_event,
    a_slow_policy_for_low_alerts_does_not_slow_item_nine_nor_tell_a_tier_twice,
    routine_alerts_wait_for_working_hours_and_only_urgent_ones_break_through,
    the_missed_check_in_count_restarts_after_a_resolve_and_after_any_check_in,
    a_severe_phq9_reopens_after_a_resolve_only_on_a_rise_of_three_or_after_two_weeks,
    of_two_staff_resolving_at_once_one_succeeds_and_the_other_is_told,
);

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

async fn submit_at(
    app: &TestApp,
    patient: &Actor,
    instrument: &str,
    answers: Value,
    completed_at: DateTime<Utc>,
) -> Reply {
    app.post(
        "/v1/check-ins",
        &patient.access,
        json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": instrument,
               "answers": answers, "completed_at": stamp(completed_at)}),
    )
    .await
}

fn gad7(total: i64) -> Value {
    let mut answers = serde_json::Map::new();
    let mut left = total;
    for i in 1..=7 {
        let v = left.min(3);
        left -= v;
        answers.insert(format!("q{i}"), json!(v));
    }
    Value::Object(answers)
}

async fn detail(app: &TestApp, staff: &Actor, id: &str) -> Value {
    app.get(&format!("/v1/alerts/{id}"), &staff.access)
        .await
        .expect(StatusCode::OK)
        .body
}

fn event_kinds(detail: &Value) -> Vec<String> {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

async fn acknowledge(app: &TestApp, staff: &Actor, id: &str) -> Reply {
    app.call(
        Method::POST,
        &format!("/v1/alerts/{id}/acknowledge"),
        Some(&staff.access),
        None,
    )
    .await
}

async fn resolve(app: &TestApp, staff: &Actor, id: &str, note: &str) -> Reply {
    app.post(
        &format!("/v1/alerts/{id}/resolve"),
        &staff.access,
        json!({"note": note}),
    )
    .await
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .parse()
        .unwrap()
}

fn of_rule<'a>(alerts: &'a [Value], rule: &str, patient: &Actor) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| a["rule"] == rule && a["patient_id"] == json!(patient.id))
        .collect()
}

/// An app with a memory gateway whose clock starts at `start`, with the two clinics' people.
async fn world_at(backend: Backend, start: DateTime<Utc>) -> (TestApp, Arc<MemoryGateway>, World) {
    let gateway = Arc::new(MemoryGateway::default());
    let installed = gateway.clone();
    let app = TestApp::build(
        backend,
        &[("COMPANION_ACCESS_TOKEN_TTL", "86400")],
        move |a| a.push.fcm = installed,
    )
    .await;
    app.clock.set(start);
    let world = app.world().await;
    (app, gateway, world)
}

/// Alert-like pushes to `token`, with whether each was sent as urgent (time-sensitive).
fn pushes_with_urgency(gateway: &MemoryGateway, token: &str) -> Vec<(String, bool)> {
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

async fn an_urgent_signal_after_acknowledgement_reopens_the_alert_with_a_fresh_deadline(
    backend: Backend,
) {
    let (app, gateway, world) = app_with_gateway(backend).await;
    on_call(&app, &world.clinician_a).await;
    let on_call_phone = device(&app, &world.clinician_a).await;
    let colleague = app.join(&world.admin_a, &world.clinic_a, "clinician").await;
    let colleague_phone = device(&app, &colleague).await;
    submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
    )
    .await;
    app.run_jobs().await;
    let id = alerts_of(&app, &world.clinician_a).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    acknowledge(&app, &world.clinician_a, &id)
        .await
        .expect(StatusCode::OK);
    assert_eq!(alert_pushes(&gateway, &on_call_phone).len(), 1);

    // Three hours later the same patient answers item 9 "nearly every day".
    app.clock.advance(TimeDelta::hours(3));
    let second = submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 3]),
    )
    .await;
    let now = app.app.now();
    let alert = detail(&app, &world.clinician_a, &id).await;
    assert_eq!(alert["alert"]["status"], "open", "{alert}");
    assert_eq!(alert["alert"]["tier"], 0);
    assert_eq!(alert["alert"]["signal_count"], 2);
    assert_eq!(alert["alert"]["check_in_id"], second["id"]);
    assert_eq!(time(&alert["alert"]["received_at"]), now);
    assert_eq!(
        time(&alert["alert"]["ack_deadline"]),
        now + TimeDelta::minutes(15),
        "a fresh deadline from the new signal"
    );
    assert!(event_kinds(&alert).contains(&"reopened".to_owned()));
    app.run_jobs().await;
    assert_eq!(
        alert_pushes(&gateway, &on_call_phone),
        vec![id.clone(), id.clone()],
        "the first tier is told again"
    );
    // Nobody acknowledges: it escalates again, from the first tier.
    app.clock.advance(TimeDelta::minutes(15));
    app.run_jobs().await;
    assert_eq!(alert_pushes(&gateway, &colleague_phone), vec![id.clone()]);
    // Acknowledged again, then resolved: resolved is final.
    acknowledge(&app, &colleague, &id)
        .await
        .expect(StatusCode::OK);
    resolve(&app, &colleague, &id, "Seen in clinic today.")
        .await
        .expect(StatusCode::OK);
    submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 2]),
    )
    .await;
    let alerts = alerts_of(&app, &world.clinician_a).await;
    let item9 = of_rule(&alerts, "safety_item9", &world.patient_a);
    assert_eq!(
        item9.len(),
        2,
        "a resolved alert is not re-opened: a new one is"
    );
}

async fn a_routine_signal_after_acknowledgement_is_marked_and_moves_up_the_inbox(backend: Backend) {
    let (app, _gateway, world) = app_with_gateway(backend).await;
    // Two medium GAD-7 alerts, patient A's older than patient A2's.
    for patient in [&world.patient_a, &world.patient_a2] {
        submit(&app, patient, "gad7", gad7(2)).await;
        app.clock.advance(TimeDelta::minutes(1));
        submit(&app, patient, "gad7", gad7(12)).await;
        app.clock.advance(TimeDelta::minutes(1));
    }
    // And two urgent ones, the newest signals of all.
    submit(
        &app,
        &world.patient_b,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
    )
    .await;
    submit(
        &app,
        &world.patient_a2,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
    )
    .await;
    let order = |alerts: &[Value]| -> Vec<(String, String)> {
        alerts
            .iter()
            .map(|a| {
                (
                    a["severity"].as_str().unwrap().to_owned(),
                    a["patient_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let alerts = alerts_of(&app, &world.clinician_a).await;
    let a = world.patient_a.id.clone();
    let a2 = world.patient_a2.id.clone();
    let s = |v: &str| v.to_owned();
    assert_eq!(
        order(&alerts),
        vec![
            (s("urgent"), a2.clone()),
            (s("medium"), a2.clone()),
            (s("medium"), a.clone())
        ],
        "severity first, then the latest signal"
    );
    let older = of_rule(&alerts, "gad7_deterioration", &world.patient_a)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    acknowledge(&app, &world.clinician_a, &older)
        .await
        .expect(StatusCode::OK);
    app.clock.advance(TimeDelta::hours(1));
    submit(&app, &world.patient_a, "gad7", gad7(15)).await;
    let alerts = alerts_of(&app, &world.clinician_a).await;
    assert_eq!(
        order(&alerts),
        vec![
            (s("urgent"), a2.clone()),
            (s("medium"), a.clone()),
            (s("medium"), a2.clone())
        ],
        "the new signal moves it up"
    );
    // Paging one at a time walks the same order, and a made-up cursor is refused.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/alerts?limit=1&cursor={c}"),
            None => "/v1/alerts?limit=1".to_owned(),
        };
        let page = app
            .get(&path, &world.clinician_a.access)
            .await
            .expect(StatusCode::OK)
            .body;
        paged.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(order(&paged), order(&alerts));
    assert_error(
        &app.get(
            "/v1/alerts?cursor=bm90LWEtY3Vyc29y",
            &world.clinician_a.access,
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let folded = &alerts[1];
    assert_eq!(folded["status"], "acknowledged", "a medium signal folds in");
    assert_eq!(folded["new_signal_since_ack"], true);
    assert_eq!(folded["signal_count"], 2);
    let event = detail(&app, &world.clinician_a, &older).await;
    assert!(event_kinds(&event).contains(&"new_signal_since_ack".to_owned()));
}

async fn a_check_in_from_a_fast_or_long_offline_phone_is_stored_and_item_nine_still_alerts(
    backend: Backend,
) {
    let (app, _gateway, world) = app_with_gateway(backend).await;
    let now = app.app.now();
    // A phone clock two hours fast.
    let ahead = now + TimeDelta::hours(2);
    let id = uuid::Uuid::new_v4().to_string();
    let body = json!({"id": id, "instrument": "phq9", "answers": phq9([1, 1, 1, 1, 1, 1, 1, 1, 2]),
                      "completed_at": stamp(ahead)});
    let stored = app
        .post("/v1/check-ins", &world.patient_a.access, body.clone())
        .await
        .expect(StatusCode::CREATED)
        .body;
    assert_eq!(time(&stored["completed_at"]), now, "clamped to receipt");
    assert_eq!(time(&stored["received_at"]), now);
    assert_eq!(time(&stored["device_completed_at"]), ahead, "original kept");
    assert_eq!(stored["timing"], "clock_ahead");
    assert!(stored["safety"]["crisis_resources"]["lines"].is_array());
    let replay = app
        .post("/v1/check-ins", &world.patient_a.access, body)
        .await
        .expect(StatusCode::OK);
    assert_eq!(replay.body["completed_at"], stored["completed_at"]);
    let alerts = alerts_of(&app, &world.clinician_a).await;
    let item9 = of_rule(&alerts, "safety_item9", &world.patient_a);
    assert_eq!(item9.len(), 1);
    assert_eq!(item9[0]["severity"], "urgent");
    assert_eq!(item9[0]["check_in_id"], json!(id));
    assert!(
        item9[0]["explanation"]
            .as_str()
            .unwrap()
            .contains("device clock"),
        "{}",
        item9[0]["explanation"]
    );

    // A phone offline for 41 days.
    let old = now - TimeDelta::days(41);
    let late = submit_at(
        &app,
        &world.patient_a2,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 3]),
        old,
    )
    .await
    .expect(StatusCode::CREATED)
    .body;
    assert_eq!(late["timing"], "late");
    assert_eq!(time(&late["completed_at"]), old);
    assert!(late["safety"]["message"].is_string());
    let alerts = alerts_of(&app, &world.clinician_a).await;
    let item9 = of_rule(&alerts, "safety_item9", &world.patient_a2);
    assert_eq!(item9.len(), 1, "item 9 alerts whatever its age");
    let alert = item9[0];
    assert_eq!(alert["severity"], "urgent");
    assert_eq!(time(&alert["completed_at"]), old);
    assert_eq!(time(&alert["received_at"]), now);
    assert_eq!(time(&alert["ack_deadline"]), now + TimeDelta::minutes(15));
    assert!(
        alert["explanation"]
            .as_str()
            .unwrap()
            .contains("answered 41 days ago, received now"),
        "{}",
        alert["explanation"]
    );
    assert!(
        app.get("/v1/me/check-ins", &world.patient_a2.access)
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == late["id"]),
        "stored"
    );

    // A high rule alerts whatever the timestamp (only trend rules leave late data out): two
    // late days of mood 1 raise the mood floor, saying when they were answered, and the same
    // two days answered on time fold into it.
    for back in [40, 39] {
        submit_at(
            &app,
            &world.patient_a,
            "daily_mood",
            json!({"mood": 1}),
            now - TimeDelta::days(back),
        )
        .await
        .expect(StatusCode::CREATED);
    }
    let alerts = alerts_of(&app, &world.clinician_a).await;
    let floor = of_rule(&alerts, "mood_floor", &world.patient_a);
    assert_eq!(floor.len(), 1);
    assert!(
        floor[0]["explanation"]
            .as_str()
            .unwrap()
            .contains("answered 39 days ago, received now"),
        "{}",
        floor[0]
    );
    for back in [1, 0] {
        submit_at(
            &app,
            &world.patient_a,
            "daily_mood",
            json!({"mood": 1}),
            now - TimeDelta::days(back),
        )
        .await
        .expect(StatusCode::CREATED);
    }
    let alerts = alerts_of(&app, &world.clinician_a).await;
    assert_eq!(of_rule(&alerts, "mood_floor", &world.patient_a).len(), 1);
}

async fn crisis_resources_are_never_empty_and_a_clinic_can_replace_them(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    // Clinic A was created as the contract allows: a name and America/Chicago, no country.
    let reply = submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
    )
    .await;
    let notice = &reply["safety"]["crisis_resources"];
    assert_eq!(notice["country"], "US", "{notice}");
    assert_eq!(notice["emergency_number"], "911");
    assert!(
        notice["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["call"] == "988" && l["text"] == "988"),
        "{notice}"
    );
    let cached = app
        .get("/v1/me/crisis-resources", &world.patient_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        &cached.body, notice,
        "the app can fetch the same ahead of time"
    );
    let cache = cached
        .headers
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(cache.contains("max-age"), "cacheable: {cache:?}");
    assert_error(
        &app.get("/v1/me/crisis-resources", &world.clinician_a.access)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    // A clinic in a zone of a country without listed lines: its own number, the local
    // emergency number and the international directory.
    let paris = app
        .post(
            "/v1/clinics",
            &world.org_admin.access,
            json!({"name": "Clinique", "timezone": "Europe/Paris", "crisis_phone": "+33 1 23 45 67 89"}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let paris_admin = app.join(&world.org_admin, &paris, "clinic_admin").await;
    let paris_patient = app.join(&paris_admin, &paris, "patient").await;
    let fr = app
        .get("/v1/me/crisis-resources", &paris_patient.access)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(fr["country"], "FR");
    assert!(
        fr["message"]
            .as_str()
            .unwrap()
            .contains("local emergency number")
    );
    let lines = fr["lines"].as_array().unwrap();
    assert_eq!(lines[0]["call"], "+33 1 23 45 67 89");
    assert!(
        lines.iter().any(|l| l["url"]
            .as_str()
            .is_some_and(|u| u.contains("findahelpline"))),
        "{fr}"
    );

    // A zone without a country (UTC): the patient's own zone decides.
    let utc = app
        .post(
            "/v1/clinics",
            &world.org_admin.access,
            json!({"name": "Remote", "timezone": "UTC"}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let utc_admin = app.join(&world.org_admin, &utc, "clinic_admin").await;
    let londoner = app.join(&utc_admin, &utc, "patient").await;
    app.put(
        "/v1/me/preferences",
        &londoner.access,
        json!({"timezone": "Europe/London"}),
    )
    .await
    .expect(StatusCode::OK);
    let gb = app
        .get("/v1/me/crisis-resources", &londoner.access)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(gb["country"], "GB", "{gb}");
    assert_eq!(gb["emergency_number"], "999");

    // The clinic replaces the list.
    let patch = app
        .patch(
            &format!("/v1/clinics/{paris}"),
            &paris_admin.access,
            json!({"crisis_resources": {"emergency_number": "112",
                    "lines": [{"name": "SOS Amitié", "call": "09 72 39 40 50"}]}}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(patch.body["crisis_resources"]["emergency_number"], "112");
    let replaced = app
        .get("/v1/me/crisis-resources", &paris_patient.access)
        .await
        .body;
    assert_eq!(replaced["emergency_number"], "112");
    assert_eq!(
        replaced["lines"],
        json!([{"name": "SOS Amitié", "call": "09 72 39 40 50", "text": null, "url": null}])
    );
    // ... and the same reaches the check-in's notice.
    let reply = submit(
        &app,
        &paris_patient,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 2]),
    )
    .await;
    assert_eq!(reply["safety"]["crisis_resources"], replaced);
    // Country and name can change; the override can be cleared.
    let changed = app
        .patch(
            &format!("/v1/clinics/{paris}"),
            &paris_admin.access,
            json!({"country": "ie", "crisis_resources": null, "name": "Clinic Dublin"}),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(changed["country"], "IE");
    assert_eq!(changed["name"], "Clinic Dublin");
    // Crisis lines follow the patient: in Paris they stay French; with a zone of no country
    // the clinic's country decides.
    let still_fr = app
        .get("/v1/me/crisis-resources", &paris_patient.access)
        .await
        .body;
    assert_eq!(still_fr["country"], "FR");
    assert_eq!(still_fr["source"], "patient_timezone");
    app.put(
        "/v1/me/preferences",
        &paris_patient.access,
        json!({"timezone": "UTC"}),
    )
    .await
    .expect(StatusCode::OK);
    let ie = app
        .get("/v1/me/crisis-resources", &paris_patient.access)
        .await
        .body;
    assert_eq!(ie["emergency_number"], "112");
    assert_eq!(ie["country"], "IE");

    // Validated, and only the clinic's admin.
    for (body, field) in [
        (json!({"country": "France"}), "country"),
        (json!({"timezone": "Mars/Olympus"}), "timezone"),
        (json!({"name": ""}), "name"),
        (
            json!({"crisis_resources": {"emergency_number": "112", "lines": []}}),
            "crisis_resources.lines",
        ),
        (
            json!({"crisis_resources": {"emergency_number": "call us", "lines": [{"name": "x", "call": "1"}]}}),
            "crisis_resources.emergency_number",
        ),
        (
            json!({"crisis_resources": {"emergency_number": "112", "lines": [{"name": "No way to reach"}]}}),
            "crisis_resources.lines[0]",
        ),
    ] {
        let reply = app
            .patch(&format!("/v1/clinics/{paris}"), &paris_admin.access, body)
            .await;
        assert_error(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(
            reply.body["error"]["fields"][field].is_string(),
            "{field}: {}",
            reply.text
        );
    }
    assert_error(
        &app.patch(
            &format!("/v1/clinics/{}", world.clinic_a),
            &world.clinician_a.access,
            json!({"country": "US"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.patch(
            &format!("/v1/clinics/{paris}"),
            &world.admin_a.access,
            json!({"country": "US"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &app.patch(
            &format!("/v1/clinics/{paris}"),
            &paris_patient.access,
            json!({"country": "US"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // The organisation admin who set the clinic up may change it too.
    let by_org = app
        .patch(
            &format!("/v1/clinics/{utc}"),
            &world.org_admin.access,
            json!({"country": "NZ"}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(by_org.body["country"], "NZ");
    let nz = app
        .get("/v1/me/crisis-resources", &londoner.access)
        .await
        .body;
    assert_eq!(
        nz["country"], "GB",
        "the patient's zone comes before the clinic's country"
    );
    assert_eq!(nz["source"], "patient_timezone");
}

async fn scrape(app: &TestApp) -> String {
    app.call(Method::GET, "/metrics", None, None).await.text
}

async fn a_tier_nobody_can_receive_is_skipped_and_nobody_reachable_is_an_event(backend: Backend) {
    let (app, gateway, world) = app_with_gateway(backend).await;
    // Clinic A: the on-call clinician has no device; a colleague has one.
    on_call(&app, &world.clinician_a).await;
    let colleague = app.join(&world.admin_a, &world.clinic_a, "clinician").await;
    let colleague_phone = device(&app, &colleague).await;
    let readiness = app
        .get(
            &format!("/v1/clinics/{}/readiness", world.clinic_a),
            &world.clinician_a.access,
        )
        .await
        .expect(StatusCode::OK)
        .body;
    let problems = readiness["problems"].as_array().unwrap();
    let without = problems
        .iter()
        .find(|p| p["code"] == "staff_without_devices")
        .unwrap_or_else(|| panic!("{readiness}"));
    assert!(
        without["account_ids"]
            .as_array()
            .unwrap()
            .contains(&json!(world.clinician_a.id))
    );
    assert!(
        problems.iter().any(|p| p["code"] == "on_call_unreachable"),
        "{readiness}"
    );
    assert_eq!(readiness["reachable"], true);
    submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
    )
    .await;
    app.run_jobs().await;
    let alert = &alerts_of(&app, &world.clinician_a).await[0];
    assert_eq!(
        alert_pushes(&gateway, &colleague_phone),
        vec![alert["id"].as_str().unwrap().to_owned()],
        "the tier nobody could receive is skipped at once"
    );
    assert_eq!(alert["tier"], 1);
    assert_eq!(alert["unreachable"], false);

    // Clinic B: nobody has a device, and there is no webhook. The organisation admin has one.
    let org_phone = device(&app, &world.org_admin).await;
    let readiness = app
        .get(
            &format!("/v1/clinics/{}/readiness", world.clinic_b),
            &world.admin_b.access,
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(readiness["reachable"], false, "{readiness}");
    let codes: Vec<&str> = readiness["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"nobody_on_call"), "{codes:?}");
    assert!(codes.contains(&"nobody_reachable"), "{codes:?}");
    assert!(
        !codes.contains(&"no_country"),
        "Chicago is in the US: {codes:?}"
    );
    submit(
        &app,
        &world.patient_b,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 2]),
    )
    .await;
    app.run_jobs().await;
    let alert = alerts_of(&app, &world.clinician_b).await[0].clone();
    let id = alert["id"].as_str().unwrap().to_owned();
    assert_eq!(alert["unreachable"], true, "{alert}");
    let told: Vec<PushMessage> = gateway
        .sent()
        .into_iter()
        .filter(|(t, _)| *t == org_phone)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(
        told,
        vec![PushMessage::UnreachableAlert {
            care_team_id: world.clinic_b.clone()
        }],
        "the organisation admins are told"
    );
    let metrics = scrape(&app).await;
    assert!(
        metrics.contains("companion_alerts_unreachable_total{severity=\"urgent\"} 1"),
        "{metrics}"
    );
    let kinds = event_kinds(&detail(&app, &world.clinician_b, &id).await);
    assert!(kinds.contains(&"unreachable".to_owned()), "{kinds:?}");
    // The next deadline tries again, without telling the organisation admins twice.
    app.clock.advance(TimeDelta::minutes(15));
    app.run_jobs().await;
    assert_eq!(
        gateway
            .sent()
            .iter()
            .filter(|(t, _)| *t == org_phone)
            .count(),
        1
    );
    // Once someone can be reached, they are told and the mark goes.
    let phone_b = device(&app, &world.clinician_b).await;
    app.clock.advance(TimeDelta::minutes(15));
    app.run_jobs().await;
    assert_eq!(alert_pushes(&gateway, &phone_b), vec![id.clone()]);
    let alert = detail(&app, &world.clinician_b, &id).await;
    assert_eq!(alert["alert"]["unreachable"], false);
    // Readiness is the clinic's own business.
    assert_error(
        &app.get(
            &format!("/v1/clinics/{}/readiness", world.clinic_b),
            &world.clinician_a.access,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

async fn a_slow_policy_for_low_alerts_does_not_slow_item_nine_nor_tell_a_tier_twice(
    backend: Backend,
) {
    let (app, gateway, world) = app_with_gateway(backend).await;
    let clinician_phone = device(&app, &world.clinician_a).await;
    let admin_phone = device(&app, &world.admin_a).await;
    // A policy written with one delay per tier (the earlier form): 60 minutes everywhere.
    let policy = format!("/v1/clinics/{}/escalation-policy", world.clinic_a);
    let stored = app
        .put(
            &policy,
            &world.admin_a.access,
            json!({"tiers": [
                {"audience": "on_call", "delay_minutes": 60},
                {"audience": "clinicians", "delay_minutes": 60},
                {"audience": "clinic_admins", "delay_minutes": 60}]}),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(stored["tiers"][0]["delay_minutes"]["low"], 60, "{stored}");
    assert_eq!(
        stored["tiers"][0]["delay_minutes"]["urgent"], 15,
        "{stored}"
    );
    submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
    )
    .await;
    let alert = &alerts_of(&app, &world.clinician_a).await[0];
    assert_eq!(
        time(&alert["ack_deadline"]) - time(&alert["opened_at"]),
        TimeDelta::minutes(15),
        "item 9 keeps its pace"
    );
    // Nobody is on call: the clinicians are told at once, the admins 15 minutes later, and the
    // clinicians are not told a second time for the tier they already had.
    app.run_jobs().await;
    let count = |token: &str| alert_pushes(&gateway, token).len();
    assert_eq!((count(&clinician_phone), count(&admin_phone)), (1, 0));
    app.clock.advance(TimeDelta::minutes(15));
    app.run_jobs().await;
    assert_eq!((count(&clinician_phone), count(&admin_phone)), (1, 1));
    // Per-severity delays.
    let stored = app
        .put(
            &policy,
            &world.admin_a.access,
            json!({"tiers": [{"audience": "clinicians", "delay_minutes": {"urgent": 5, "low": 600}}]}),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(stored["tiers"][0]["delay_minutes"]["high"], 120);
    submit(
        &app,
        &world.patient_a2,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
    )
    .await;
    let alerts = alerts_of(&app, &world.clinician_a).await;
    let alert = of_rule(&alerts, "safety_item9", &world.patient_a2)[0];
    assert_eq!(
        time(&alert["ack_deadline"]) - time(&alert["opened_at"]),
        TimeDelta::minutes(5)
    );
    for bad in [
        json!({"tiers": [{"audience": "clinicians", "delay_minutes": {"urgent": 0}}]}),
        json!({"tiers": [{"audience": "clinicians", "delay_minutes": {"urgent": 61}}]}),
        json!({"tiers": [{"audience": "clinicians", "delay_minutes": {"low": 20000}}]}),
    ] {
        assert_error(
            &app.put(&policy, &world.admin_a.access, bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
    assert_error(
        &app.put(
            &policy,
            &world.admin_a.access,
            json!({"tiers": [{"audience": "clinicians", "delay_minutes": {"soon": 5}}]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

async fn routine_alerts_wait_for_working_hours_and_only_urgent_ones_break_through(
    backend: Backend,
) {
    // Wednesday 03:00 in Chicago, where the clinic's staff live.
    let (app, gateway, world) = world_at(backend, at("2026-06-03T08:00:00Z")).await;
    on_call(&app, &world.clinician_a).await;
    let on_call_phone = device(&app, &world.clinician_a).await;
    let hours = app
        .get("/v1/me/working-hours", &world.clinician_a.access)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(hours["start"], "08:00", "{hours}");
    assert_eq!(hours["end"], "18:00");
    assert_eq!(hours["timezone"], "America/Chicago");
    // A medium alert at night waits for the morning.
    submit(&app, &world.patient_a, "gad7", gad7(2)).await;
    app.clock.advance(TimeDelta::minutes(1));
    submit(&app, &world.patient_a, "gad7", gad7(12)).await;
    app.run_jobs().await;
    let alerts = alerts_of(&app, &world.clinician_a).await;
    assert_eq!(
        of_rule(&alerts, "gad7_deterioration", &world.patient_a).len(),
        1
    );
    assert!(pushes_with_urgency(&gateway, &on_call_phone).is_empty());
    // An item-9 answer breaks through at once, time-sensitive.
    submit(
        &app,
        &world.patient_a2,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
    )
    .await;
    app.run_jobs().await;
    let pushes = pushes_with_urgency(&gateway, &on_call_phone);
    assert_eq!(pushes.len(), 1);
    assert!(pushes[0].1, "urgent is time-sensitive");
    // A high alert reaches the on-call tier at once, time-sensitive too.
    submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([3, 3, 3, 3, 3, 3, 3, 3, 0]),
    )
    .await;
    app.run_jobs().await;
    let pushes = pushes_with_urgency(&gateway, &on_call_phone);
    assert_eq!(pushes.len(), 2, "{pushes:?}");
    assert!(pushes[1].1, "high is time-sensitive");
    // Both are acknowledged, so that only the medium one is left to arrive.
    for alert in alerts_of(&app, &world.clinician_a).await {
        if alert["severity"] != "medium" {
            acknowledge(&app, &world.clinician_a, alert["id"].as_str().unwrap())
                .await
                .expect(StatusCode::OK);
        }
    }
    // 08:00 local: the medium alert arrives, not time-sensitive.
    app.clock.set(at("2026-06-03T12:59:59Z"));
    app.run_jobs().await;
    assert_eq!(pushes_with_urgency(&gateway, &on_call_phone).len(), 2);
    app.clock.set(at("2026-06-03T13:00:00Z"));
    app.run_jobs().await;
    let pushes = pushes_with_urgency(&gateway, &on_call_phone);
    assert_eq!(pushes.len(), 3, "{pushes:?}");
    assert!(!pushes[2].1);
    // A routine push held for the morning is withdrawn when someone acknowledges first.
    app.clock.set(at("2026-06-04T03:00:00Z"));
    let patient = refreshed(&app, &world.patient_a2).await;
    let admin = refreshed(&app, &world.admin_a).await;
    submit(&app, &patient, "gad7", gad7(2)).await;
    app.clock.advance(TimeDelta::minutes(1));
    submit(&app, &patient, "gad7", gad7(13)).await;
    app.run_jobs().await;
    let alerts = alerts_of(&app, &admin).await;
    let held = of_rule(&alerts, "gad7_deterioration", &world.patient_a2)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    acknowledge(&app, &admin, &held)
        .await
        .expect(StatusCode::OK);
    app.clock.set(at("2026-06-04T13:00:00Z"));
    app.run_jobs().await;
    assert!(
        !pushes_with_urgency(&gateway, &on_call_phone)
            .iter()
            .any(|(id, _)| *id == held),
        "nobody is woken for what was already seen to"
    );
    // Working hours are the clinician's to set, and validated.
    let clinician = refreshed(&app, &world.clinician_a).await;
    let set = app
        .put(
            "/v1/me/working-hours",
            &clinician.access,
            json!({"timezone": "Europe/London", "days": ["mon", "sat"], "start": "07:30", "end": "12:00"}),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(set["days"], json!(["mon", "sat"]));
    for bad in [
        json!({"start": "25:00", "end": "12:00", "days": ["mon"]}),
        json!({"start": "12:00", "end": "12:00", "days": ["mon"]}),
        json!({"start": "08:00", "end": "12:00", "days": []}),
        json!({"start": "08:00", "end": "12:00", "days": ["someday"]}),
    ] {
        let reply = app
            .put("/v1/me/working-hours", &clinician.access, bad)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.text
        );
    }
    assert_error(
        &app.get("/v1/me/working-hours", &patient.access).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

/// `who` with a fresh access token, for tests that move the clock by days.
async fn refreshed(app: &TestApp, who: &Actor) -> Actor {
    Actor {
        access: app.token(who).await,
        ..who.clone()
    }
}

async fn run_at(app: &TestApp, when: &str) {
    app.clock.set(at(when));
    app.run_workers().await;
}

async fn the_missed_check_in_count_restarts_after_a_resolve_and_after_any_check_in(
    backend: Backend,
) {
    let (app, _gateway, world) = world_at(backend, at("2026-06-01T06:00:00Z")).await;
    let patient = &world.patient_a;
    app.put(
        &format!("/v1/patients/{}/care-plan", patient.id),
        &world.clinician_a.access,
        json!({"rules": [{"id": "mood", "instrument": "daily_mood", "anchor": {"kind": "daily"}}]}),
    )
    .await
    .expect(StatusCode::OK);
    app.put(
        "/v1/me/preferences",
        &patient.access,
        json!({"timezone": "UTC"}),
    )
    .await
    .expect(StatusCode::OK);
    let miss = |day: u32| {
        let app = &app;
        async move {
            run_at(app, &format!("2026-06-{day:02}T09:00:00Z")).await;
            run_at(app, &format!("2026-06-{day:02}T21:00:00Z")).await;
        }
    };
    let open_missed = || async {
        alerts_of(&app, &refreshed(&app, &world.clinician_a).await)
            .await
            .into_iter()
            .filter(|a| {
                a["rule"] == "missed_check_ins"
                    && a["patient_id"] == json!(patient.id)
                    && a["status"] != "resolved"
            })
            .collect::<Vec<Value>>()
    };
    for day in 1..=3 {
        miss(day).await;
    }
    let open = open_missed().await;
    assert_eq!(open.len(), 1, "three misses are a signal");
    resolve(
        &app,
        &refreshed(&app, &world.clinician_a).await,
        open[0]["id"].as_str().unwrap(),
        "Patient travelling.",
    )
    .await
    .expect(StatusCode::OK);
    // The count restarts: the fourth and fifth misses are one and two.
    for day in 4..=5 {
        miss(day).await;
        assert!(
            open_missed().await.is_empty(),
            "day {day}: the count restarted at the resolve"
        );
    }
    miss(6).await;
    let open = open_missed().await;
    assert_eq!(open.len(), 1, "three misses since the resolve");
    resolve(
        &app,
        &refreshed(&app, &world.clinician_a).await,
        open[0]["id"].as_str().unwrap(),
        "Called.",
    )
    .await
    .expect(StatusCode::OK);
    miss(7).await;
    miss(8).await;
    // A check-in answered on day 7 and synced late, on day 8 at 22:00, is engagement.
    app.clock.set(at("2026-06-08T22:00:00Z"));
    submit_at(
        &app,
        &refreshed(&app, patient).await,
        "daily_mood",
        json!({"mood": 6}),
        at("2026-06-07T23:00:00Z"),
    )
    .await
    .expect(StatusCode::CREATED);
    miss(9).await;
    miss(10).await;
    assert!(
        open_missed().await.is_empty(),
        "the count restarted at the late check-in"
    );
    miss(11).await;
    assert_eq!(open_missed().await.len(), 1);
}

async fn a_severe_phq9_reopens_after_a_resolve_only_on_a_rise_of_three_or_after_two_weeks(
    backend: Backend,
) {
    let (app, _gateway, world) = app_with_gateway(backend).await;
    let patient = &world.patient_a;
    let severe = |total: i64| {
        let mut values = [0i64; 9];
        let mut left = total;
        for v in values.iter_mut().take(8) {
            *v = left.min(3);
            left -= *v;
        }
        phq9(values)
    };
    let severe_alerts = || async {
        let alerts = alerts_of(&app, &refreshed(&app, &world.clinician_a).await).await;
        of_rule(&alerts, "phq9_severe", patient)
            .into_iter()
            .cloned()
            .collect::<Vec<Value>>()
    };
    let resolve_open = || async {
        for alert in severe_alerts().await {
            if alert["status"] != "resolved" {
                resolve(
                    &app,
                    &refreshed(&app, &world.clinician_a).await,
                    alert["id"].as_str().unwrap(),
                    "Reviewed.",
                )
                .await
                .expect(StatusCode::OK);
            }
        }
    };
    submit(&app, &refreshed(&app, patient).await, "phq9", severe(20)).await;
    assert_eq!(severe_alerts().await.len(), 1);
    resolve_open().await;
    app.clock.advance(TimeDelta::days(2));
    submit(&app, &refreshed(&app, patient).await, "phq9", severe(21)).await;
    assert_eq!(
        severe_alerts().await.len(),
        1,
        "21 is not a rise of 3 on 20"
    );
    app.clock.advance(TimeDelta::days(2));
    submit(&app, &refreshed(&app, patient).await, "phq9", severe(22)).await;
    assert_eq!(
        severe_alerts().await.len(),
        1,
        "22 is not a rise of 3 on 20"
    );
    let resolved = &severe_alerts().await[0];
    let events = event_kinds(
        &detail(
            &app,
            &refreshed(&app, &world.clinician_a).await,
            resolved["id"].as_str().unwrap(),
        )
        .await,
    );
    assert_eq!(
        events
            .iter()
            .filter(|k| *k == "signal_after_resolve")
            .count(),
        2,
        "the held-back signals are on record: {events:?}"
    );
    app.clock.advance(TimeDelta::days(1));
    submit(&app, &refreshed(&app, patient).await, "phq9", severe(23)).await;
    let alerts = severe_alerts().await;
    assert_eq!(alerts.len(), 2, "23 is");
    resolve_open().await;
    app.clock.advance(TimeDelta::days(13));
    submit(&app, &refreshed(&app, patient).await, "phq9", severe(23)).await;
    assert_eq!(severe_alerts().await.len(), 2, "13 days after the resolve");
    app.clock.advance(TimeDelta::days(2));
    submit(&app, &refreshed(&app, patient).await, "phq9", severe(22)).await;
    assert_eq!(severe_alerts().await.len(), 3, "after 14 days it re-opens");
}

async fn of_two_staff_resolving_at_once_one_succeeds_and_the_other_is_told(backend: Backend) {
    let (app, _gateway, world) = app_with_gateway(backend).await;
    for round in 0..6 {
        // Each round's answers differ (the same answers re-sent within minutes are one
        // check-in).
        submit(
            &app,
            &world.patient_a,
            "phq9",
            phq9([round % 4, round / 4, 0, 0, 0, 0, 0, 0, 1]),
        )
        .await;
        let alerts = alerts_of(&app, &world.clinician_a).await;
        let id = alerts.iter().find(|a| a["status"] == "open").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (first, second) = tokio::join!(
            resolve(&app, &world.clinician_a, &id, "Clinician's note."),
            resolve(&app, &world.admin_a, &id, "Admin's note."),
        );
        let mut statuses = [first.status, second.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "round {round}: {} / {}",
            first.text,
            second.text
        );
        let (winner, loser, who) = if first.status == StatusCode::OK {
            (first, second, &world.clinician_a)
        } else {
            (second, first, &world.admin_a)
        };
        assert_error(&loser, StatusCode::CONFLICT, "alert_resolved");
        let stored = detail(&app, &world.clinician_a, &id).await;
        assert_eq!(
            stored["alert"]["resolution_note"],
            winner.body["resolution_note"]
        );
        assert_eq!(stored["alert"]["resolved_by"], json!(who.id));
        let resolves = event_kinds(&stored)
            .iter()
            .filter(|k| *k == "resolved")
            .count();
        assert_eq!(resolves, 1, "one decision");
    }
}
