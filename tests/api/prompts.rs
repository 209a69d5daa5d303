//! Prompt scheduling through the API and the workers, with the test clock: local time across
//! daylight-saving changes, quiet hours, session moves, one reminder, one expiry, completion by
//! check-in, adherence, and the missed-check-in rule.

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Actor, Backend, TestApp, assert_error};

both!(
    a_patient_crossing_daylight_saving_gets_the_prompt_at_nine_local_on_both_sides,
    moving_a_session_replaces_its_prompts_and_cancelling_withdraws_them,
    the_reminder_and_the_expiry_happen_once,
    a_check_in_completes_its_prompt_and_counts_toward_adherence,
    three_missed_prompts_open_one_low_alert_for_the_care_team,
    nothing_is_sent_inside_quiet_hours_even_after_a_worker_outage,
    preferences_and_care_plans_are_validated_and_access_checked,
    a_clinic_plan_replans_its_patients_but_not_those_with_their_own,
    two_workers_side_by_side_send_each_prompt_and_reminder_once,
    disabling_a_patient_withdraws_their_prompts_and_enabling_plans_them_again,
);

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// The instant an answer's timestamp names: RFC 3339 writes one instant in more than one way
/// (`.326Z`, `.326000Z`), so answers are compared as instants, not as text.
fn instant(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a timestamp"))
        .expect("an RFC 3339 timestamp")
        .with_timezone(&Utc)
}

fn daily_mood_only() -> Value {
    json!({"rules": [{"id": "mood", "instrument": "daily_mood", "anchor": {"kind": "daily"}}]})
}

async fn prompts_of(app: &TestApp, staff: &Actor, patient: &Actor) -> Vec<Value> {
    app.get(
        &format!("/v1/patients/{}/prompts", patient.id),
        &app.token(staff).await,
    )
    .await
    .expect(StatusCode::OK)
    .body["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn open_prompts(app: &TestApp, patient: &Actor) -> Vec<Value> {
    app.get("/v1/me/prompts", &app.token(patient).await)
        .await
        .expect(StatusCode::OK)
        .body["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn device(app: &TestApp, who: &Actor, token: &str) {
    let reply = app
        .post(
            "/v1/devices",
            &app.token(who).await,
            json!({"platform": "android", "token": token}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

async fn set_plan(app: &TestApp, staff: &Actor, patient: &Actor, plan: Value) {
    app.put(
        &format!("/v1/patients/{}/care-plan", patient.id),
        &app.token(staff).await,
        plan,
    )
    .await
    .expect(StatusCode::OK);
}

async fn preferences(app: &TestApp, patient: &Actor, body: Value) -> Value {
    app.put("/v1/me/preferences", &app.token(patient).await, body)
        .await
        .expect(StatusCode::OK)
        .body
}

/// Moves the clock to `when` and runs the workers once.
async fn run_at(app: &TestApp, when: &str) {
    app.clock.set(at(when));
    app.run_workers().await;
}

async fn a_patient_crossing_daylight_saving_gets_the_prompt_at_nine_local_on_both_sides(
    backend: Backend,
) {
    let (app, fcm) = TestApp::with_fake_fcm(backend, &[]).await;
    // Friday 6 March 2026, 12:00 in New York; clocks spring forward on Sunday the 8th.
    app.clock.set(at("2026-03-06T17:00:00Z"));
    let world = app.world().await;
    let patient = &world.patient_a;
    device(&app, patient, "ok-dst-phone").await;
    set_plan(&app, &world.clinician_a, patient, daily_mood_only()).await;
    let saved = preferences(
        &app,
        patient,
        json!({"timezone": "America/New_York", "check_in_window": {"start": "09:00", "end": "10:00"}}),
    )
    .await;
    assert_eq!(saved["timezone"], "America/New_York");
    assert_eq!(
        saved["quiet_hours"],
        json!({"start": "21:00", "end": "08:00"})
    );

    // Saturday, one minute before 09:00 EST (14:00 UTC): nothing yet.
    run_at(&app, "2026-03-07T13:59:00Z").await;
    assert_eq!(fcm.delivered_count(), 0);
    run_at(&app, "2026-03-07T14:00:00Z").await;
    assert_eq!(fcm.delivered_count(), 1);
    let open = open_prompts(&app, patient).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["local_time"], "2026-03-07T09:00");
    assert_eq!(open[0]["status"], "sent");
    // Sunday after the change: 09:00 EDT is 13:00 UTC.
    run_at(&app, "2026-03-08T12:59:00Z").await;
    assert_eq!(fcm.delivered_count(), 1, "nothing before 09:00 EDT");
    run_at(&app, "2026-03-08T13:00:00Z").await;
    assert_eq!(fcm.delivered_count(), 2);
    run_at(&app, "2026-03-09T13:00:00Z").await;
    assert_eq!(fcm.delivered_count(), 3);

    let all = prompts_of(&app, &world.clinician_a, patient).await;
    let sent: Vec<(&str, DateTime<Utc>)> = all
        .iter()
        .filter(|p| {
            ["sent", "reminded", "expired", "completed"].contains(&p["status"].as_str().unwrap())
        })
        .map(|p| (p["local_time"].as_str().unwrap(), instant(&p["due_at"])))
        .collect();
    assert_eq!(
        sent,
        [
            ("2026-03-07T09:00", at("2026-03-07T14:00:00Z")),
            ("2026-03-08T09:00", at("2026-03-08T13:00:00Z")),
            ("2026-03-09T09:00", at("2026-03-09T13:00:00Z")),
        ]
    );
    // Each push names the prompt by id and says nothing about health.
    for message in fcm.delivered() {
        let text = message.body.to_string();
        assert!(text.contains("prompt_id"), "{text}");
        assert!(!text.contains("mood") && !text.contains("phq"), "{text}");
    }
}

async fn moving_a_session_replaces_its_prompts_and_cancelling_withdraws_them(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.clock.set(at("2026-06-01T10:00:00Z"));
    let world = app.world().await;
    let (staff, patient) = (&world.clinician_a, &world.patient_a);
    preferences(&app, patient, json!({"timezone": "UTC"})).await;
    let session = app
        .post(
            &format!("/v1/patients/{}/sessions", patient.id),
            &app.token(staff).await,
            json!({"modality": "intranasal_esketamine", "scheduled_at": "2026-06-02T15:00:00Z"}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before_session = |prompts: &[Value]| -> Vec<(String, DateTime<Utc>)> {
        prompts
            .iter()
            .filter(|p| p["session_id"] == json!(session))
            .map(|p| {
                (
                    p["status"].as_str().unwrap().to_owned(),
                    instant(&p["due_at"]),
                )
            })
            .collect()
    };
    let prompts = prompts_of(&app, staff, patient).await;
    assert_eq!(
        before_session(&prompts),
        [("scheduled".to_owned(), at("2026-06-01T15:00:00Z"))]
    );
    assert!(
        prompts
            .iter()
            .any(|p| p["session_id"] == json!(session) && p["instrument"] == "phq9")
    );

    // Moved a day later, twice (the second move is a no-op for prompts).
    for _ in 0..2 {
        app.call(
            Method::PATCH,
            &format!("/v1/sessions/{session}"),
            Some(&app.token(staff).await),
            Some(json!({"scheduled_at": "2026-06-03T15:00:00Z"})),
        )
        .await
        .expect(StatusCode::OK);
    }
    let prompts = prompts_of(&app, staff, patient).await;
    assert_eq!(
        before_session(&prompts),
        [
            ("cancelled".to_owned(), at("2026-06-01T15:00:00Z")),
            ("scheduled".to_owned(), at("2026-06-02T15:00:00Z")),
        ]
    );
    assert_no_duplicates(&prompts);

    app.call(
        Method::DELETE,
        &format!("/v1/sessions/{session}"),
        Some(&app.token(staff).await),
        None,
    )
    .await
    .expect(StatusCode::OK);
    let prompts = prompts_of(&app, staff, patient).await;
    assert!(
        before_session(&prompts)
            .iter()
            .all(|(status, _)| status == "cancelled"),
        "no orphan prompt survives a cancelled session"
    );
    assert_no_duplicates(&prompts);
}

/// At most one prompt that is not cancelled per instrument and local day or session.
fn assert_no_duplicates(prompts: &[Value]) {
    let mut seen = std::collections::BTreeSet::new();
    for p in prompts.iter().filter(|p| p["status"] != "cancelled") {
        let key = match p["session_id"].as_str() {
            Some(session) => format!("{}|{session}", p["instrument"]),
            None => format!(
                "{}|{}",
                p["instrument"],
                &p["local_time"].as_str().unwrap()[..10]
            ),
        };
        assert!(seen.insert(key.clone()), "duplicate prompt {key}");
    }
}

async fn the_reminder_and_the_expiry_happen_once(backend: Backend) {
    let (app, fcm) = TestApp::with_fake_fcm(backend, &[]).await;
    app.clock.set(at("2026-06-01T06:00:00Z"));
    let world = app.world().await;
    let patient = &world.patient_a;
    device(&app, patient, "ok-remind-phone").await;
    set_plan(&app, &world.clinician_a, patient, daily_mood_only()).await;
    preferences(&app, patient, json!({"timezone": "UTC"})).await;

    run_at(&app, "2026-06-01T09:00:00Z").await;
    run_at(&app, "2026-06-01T09:00:00Z").await;
    assert_eq!(fcm.delivered_count(), 1, "sent once");
    run_at(&app, "2026-06-01T12:59:00Z").await;
    assert_eq!(fcm.delivered_count(), 1);
    run_at(&app, "2026-06-01T13:00:00Z").await;
    run_at(&app, "2026-06-01T13:05:00Z").await;
    assert_eq!(fcm.delivered_count(), 2, "reminded once, four hours later");
    let reminder = &fcm.delivered()[1].body;
    assert_eq!(
        reminder["message"]["data"]["kind"], "check_in_reminder",
        "{reminder}"
    );
    let open = open_prompts(&app, patient).await;
    assert_eq!(open[0]["status"], "reminded");

    run_at(&app, "2026-06-01T20:59:00Z").await;
    assert_eq!(open_prompts(&app, patient).await.len(), 1);
    run_at(&app, "2026-06-01T21:00:00Z").await;
    run_at(&app, "2026-06-01T21:30:00Z").await;
    assert!(open_prompts(&app, patient).await.is_empty(), "expired");
    let prompts = prompts_of(&app, &world.clinician_a, patient).await;
    let expired: Vec<&Value> = prompts
        .iter()
        .filter(|p| p["status"] == "expired")
        .collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(
        instant(&expired[0]["closed_at"]),
        at("2026-06-01T21:00:00Z")
    );
    assert_eq!(fcm.delivered_count(), 2, "nothing more was sent");
    let adherence = app
        .get(
            &format!("/v1/patients/{}/adherence", patient.id),
            &app.token(patient).await,
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(adherence["expired"], 1);
    assert_eq!(adherence["consecutive_misses"], 1);
}

async fn a_check_in_completes_its_prompt_and_counts_toward_adherence(backend: Backend) {
    let (app, fcm) = TestApp::with_fake_fcm(backend, &[]).await;
    app.clock.set(at("2026-06-01T06:00:00Z"));
    let world = app.world().await;
    let patient = &world.patient_a;
    device(&app, patient, "ok-answer-phone").await;
    set_plan(&app, &world.clinician_a, patient, daily_mood_only()).await;
    preferences(&app, patient, json!({"timezone": "UTC"})).await;

    run_at(&app, "2026-06-01T09:00:00Z").await;
    let open = open_prompts(&app, patient).await;
    let prompt_id = open[0]["id"].as_str().unwrap().to_owned();
    app.clock.set(at("2026-06-01T09:05:00Z"));
    // Another patient naming this prompt is stored, but completes nothing of someone else's.
    app.post(
        "/v1/check-ins",
        &app.token(&world.patient_a2).await,
        json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "daily_mood", "answers": {"mood": 4},
               "completed_at": "2026-06-01T09:05:00Z", "prompt_id": prompt_id}),
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(open_prompts(&app, patient).await.len(), 1, "still open");
    app.clock.set(at("2026-06-01T09:10:00Z"));
    let check_in = uuid::Uuid::new_v4().to_string();
    app.post(
        "/v1/check-ins",
        &app.token(patient).await,
        json!({"id": check_in, "instrument": "daily_mood", "answers": {"mood": 6},
               "completed_at": "2026-06-01T09:10:00Z", "prompt_id": prompt_id}),
    )
    .await
    .expect(StatusCode::CREATED);
    assert!(open_prompts(&app, patient).await.is_empty());
    run_at(&app, "2026-06-01T13:00:00Z").await;
    assert_eq!(
        fcm.delivered_count(),
        1,
        "no reminder for an answered prompt"
    );

    // The next day's prompt is answered without naming it: same instrument, inside its window.
    run_at(&app, "2026-06-02T09:00:00Z").await;
    app.clock.set(at("2026-06-02T10:00:00Z"));
    app.post(
        "/v1/check-ins",
        &app.token(patient).await,
        json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "daily_mood",
               "answers": {"mood": 7}, "completed_at": "2026-06-02T10:00:00Z"}),
    )
    .await
    .expect(StatusCode::CREATED);
    // The third day's check-in was made in time on a phone that was offline, and arrives after
    // the prompt expired: it still counts as answered.
    run_at(&app, "2026-06-03T09:00:00Z").await;
    run_at(&app, "2026-06-03T22:00:00Z").await;
    let third = open_prompts(&app, patient).await;
    assert!(third.is_empty(), "expired at 21:00");
    app.post(
        "/v1/check-ins",
        &app.token(patient).await,
        json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "daily_mood",
               "answers": {"mood": 7}, "completed_at": "2026-06-03T09:30:00Z"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let prompts = prompts_of(&app, &world.clinician_a, patient).await;
    let completed: Vec<&Value> = prompts
        .iter()
        .filter(|p| p["status"] == "completed")
        .collect();
    assert_eq!(completed.len(), 3);
    assert_eq!(completed[0]["check_in_id"], json!(check_in));
    let adherence = app
        .get(
            &format!("/v1/patients/{}/adherence", patient.id),
            &app.token(&world.clinician_a).await,
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(adherence["completed"], 3);
    assert_eq!(adherence["expired"], 0);
    assert_eq!(adherence["completion_rate"], 1.0);
    assert_eq!(adherence["current_streak"], 3);
    assert_eq!(
        instant(&adherence["last_check_in_at"]),
        at("2026-06-03T09:30:00Z")
    );
}

async fn three_missed_prompts_open_one_low_alert_for_the_care_team(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.clock.set(at("2026-06-01T06:00:00Z"));
    let world = app.world().await;
    let patient = &world.patient_a;
    set_plan(&app, &world.clinician_a, patient, daily_mood_only()).await;
    preferences(&app, patient, json!({"timezone": "UTC"})).await;
    let missed_alerts = |alerts: &Value| -> Vec<Value> {
        alerts["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["rule"] == "missed_check_ins" && a["patient_id"] == json!(patient.id))
            .cloned()
            .collect()
    };
    for day in 1..=2 {
        run_at(&app, &format!("2026-06-0{day}T09:00:00Z")).await;
        run_at(&app, &format!("2026-06-0{day}T21:00:00Z")).await;
    }
    let alerts = app
        .get("/v1/alerts", &app.token(&world.clinician_a).await)
        .await
        .body;
    assert!(
        missed_alerts(&alerts).is_empty(),
        "two misses are not yet a signal"
    );
    run_at(&app, "2026-06-03T09:00:00Z").await;
    run_at(&app, "2026-06-03T21:00:00Z").await;
    let alerts = app
        .get("/v1/alerts", &app.token(&world.clinician_a).await)
        .await
        .body;
    let missed = missed_alerts(&alerts);
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0]["severity"], "low");
    assert_eq!(missed[0]["patient_id"], json!(patient.id));
    // A fourth miss adds to the same alert.
    run_at(&app, "2026-06-04T09:00:00Z").await;
    run_at(&app, "2026-06-04T21:00:00Z").await;
    let alerts = app
        .get("/v1/alerts", &app.token(&world.clinician_a).await)
        .await
        .body;
    let missed = missed_alerts(&alerts);
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0]["signal_count"], 2);
    // The roster shows it too.
    let roster = app
        .get(
            &format!("/v1/clinics/{}/patients", world.clinic_a),
            &app.token(&world.clinician_a).await,
        )
        .await
        .expect(StatusCode::OK)
        .body;
    let row = roster["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == json!(patient.id))
        .unwrap();
    assert_eq!(row["adherence"]["consecutive_misses"], 4);
    assert_eq!(row["risk"], "low");
}

async fn nothing_is_sent_inside_quiet_hours_even_after_a_worker_outage(backend: Backend) {
    let (app, fcm) = TestApp::with_fake_fcm(backend, &[]).await;
    app.clock.set(at("2026-06-01T06:00:00Z"));
    let world = app.world().await;
    let patient = &world.patient_a;
    device(&app, patient, "ok-quiet-phone").await;
    set_plan(
        &app,
        &world.clinician_a,
        patient,
        json!({"rules": [{"id": "mood", "instrument": "daily_mood", "anchor": {"kind": "daily"},
                          "expires_after_hours": 24, "remind_after_hours": 0}]}),
    )
    .await;
    preferences(
        &app,
        patient,
        json!({"timezone": "Europe/London", "check_in_window": {"start": "20:30", "end": "21:00"},
               "quiet_hours": {"start": "21:00", "end": "08:00"}}),
    )
    .await;
    // Due at 20:30 BST (19:30 UTC), but no worker runs until 21:30 BST: too late tonight.
    run_at(&app, "2026-06-01T20:30:00Z").await;
    assert_eq!(fcm.delivered_count(), 0, "not inside quiet hours");
    // A replan meanwhile (a session is booked) keeps the held-back prompt.
    app.post(
        &format!("/v1/patients/{}/sessions", patient.id),
        &app.token(&world.clinician_a).await,
        json!({"modality": "intranasal_esketamine", "scheduled_at": "2026-06-10T15:00:00Z"}),
    )
    .await
    .expect(StatusCode::CREATED);
    run_at(&app, "2026-06-02T06:59:00Z").await;
    assert_eq!(fcm.delivered_count(), 0, "07:59 BST is still quiet");
    run_at(&app, "2026-06-02T07:00:00Z").await;
    assert_eq!(
        fcm.delivered_count(),
        1,
        "sent when the quiet hours end, 08:00 BST"
    );
}

async fn preferences_and_care_plans_are_validated_and_access_checked(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let patient = &world.patient_a;
    let bad = app
        .put(
            "/v1/me/preferences",
            &app.token(patient).await,
            json!({"timezone": "Mars/Olympus", "check_in_window": {"start": "09:00", "end": "09:05"}}),
        )
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(
        bad.body["error"]["fields"]["timezone"].is_string(),
        "{}",
        bad.text
    );
    assert!(
        bad.body["error"]["fields"]["check_in_window"].is_string(),
        "{}",
        bad.text
    );
    let malformed = app
        .put(
            "/v1/me/preferences",
            &app.token(patient).await,
            json!({"quiet_hours": {"start": "25:00", "end": "08:00"}}),
        )
        .await;
    assert_eq!(
        malformed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        malformed.text
    );
    let inside = app
        .put(
            "/v1/me/preferences",
            &app.token(patient).await,
            json!({"check_in_window": {"start": "22:00", "end": "23:00"}}),
        )
        .await;
    assert_error(
        &inside,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let got = app
        .get("/v1/me/preferences", &app.token(patient).await)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        got.body["check_in_window"],
        json!({"start": "09:00", "end": "11:00"})
    );

    let plan = app
        .put(
            &format!("/v1/patients/{}/care-plan", patient.id),
            &app.token(&world.clinician_a).await,
            json!({"rules": [{"id": "x", "instrument": "tarot", "anchor": {"kind": "daily"}}]}),
        )
        .await;
    assert_error(&plan, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(
        plan.body["error"]["fields"]["rules[0].instrument"].is_string(),
        "{}",
        plan.text
    );
    let by_patient = app
        .put(
            &format!("/v1/patients/{}/care-plan", patient.id),
            &app.token(patient).await,
            daily_mood_only(),
        )
        .await;
    assert_eq!(by_patient.status, StatusCode::FORBIDDEN);
    let other_clinic = app
        .get(
            &format!("/v1/patients/{}/care-plan", patient.id),
            &app.token(&world.clinician_b).await,
        )
        .await;
    assert_eq!(other_clinic.status, StatusCode::NOT_FOUND);
    let other_prompts = app
        .get(
            &format!("/v1/patients/{}/prompts", patient.id),
            &app.token(&world.patient_a2).await,
        )
        .await;
    assert_eq!(other_prompts.status, StatusCode::NOT_FOUND);
    let staff_prefs = app
        .get("/v1/me/preferences", &app.token(&world.clinician_a).await)
        .await;
    assert_eq!(staff_prefs.status, StatusCode::FORBIDDEN);
    let clinic_plan = app
        .put(
            &format!("/v1/clinics/{}/care-plan", world.clinic_a),
            &app.token(&world.clinician_a).await,
            daily_mood_only(),
        )
        .await;
    assert_eq!(
        clinic_plan.status,
        StatusCode::FORBIDDEN,
        "clinic admins only"
    );
}

async fn a_clinic_plan_replans_its_patients_but_not_those_with_their_own(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.clock.set(at("2026-06-01T06:00:00Z"));
    let world = app.world().await;
    let (follower, own) = (&world.patient_a, &world.patient_a2);
    set_plan(&app, &world.clinician_a, own, daily_mood_only()).await;
    let gad7_daily = json!({"rules": [{"id": "anx", "instrument": "gad7", "anchor": {"kind": "daily"},
                                       "random_offset": false}]});
    app.put(
        &format!("/v1/clinics/{}/care-plan", world.clinic_a),
        &app.token(&world.admin_a).await,
        gad7_daily.clone(),
    )
    .await
    .expect(StatusCode::OK);
    app.run_jobs().await;
    let plan = app
        .get(
            &format!("/v1/patients/{}/care-plan", follower.id),
            &app.token(&world.clinician_a).await,
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(plan["source"], "clinic");
    assert_eq!(plan["plan"], gad7_daily);
    let live = |prompts: Vec<Value>| -> Vec<String> {
        let mut instruments: Vec<String> = prompts
            .iter()
            .filter(|p| p["status"] == "scheduled")
            .map(|p| p["instrument"].as_str().unwrap().to_owned())
            .collect();
        instruments.dedup();
        instruments
    };
    assert_eq!(
        live(prompts_of(&app, &world.clinician_a, follower).await),
        ["gad7"]
    );
    assert_eq!(
        live(prompts_of(&app, &world.clinician_a, own).await),
        ["daily_mood"]
    );
    // Back to the clinic's plan.
    let reset = app
        .call(
            Method::DELETE,
            &format!("/v1/patients/{}/care-plan", own.id),
            Some(&app.token(&world.clinician_a).await),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(reset.body["source"], "clinic");
    assert_eq!(
        live(prompts_of(&app, &world.clinician_a, own).await),
        ["gad7"]
    );
}

async fn two_workers_side_by_side_send_each_prompt_and_reminder_once(backend: Backend) {
    let (app, fcm) = TestApp::with_fake_fcm(backend, &[]).await;
    app.clock.set(at("2026-06-01T06:00:00Z"));
    let world = app.world().await;
    let mut patients = vec![world.patient_a.clone(), world.patient_a2.clone()];
    for _ in 0..6 {
        patients.push(
            app.join(&world.clinician_a, &world.clinic_a, "patient")
                .await,
        );
    }
    for (i, patient) in patients.iter().enumerate() {
        device(&app, patient, &format!("ok-twin-{i}")).await;
        set_plan(&app, &world.clinician_a, patient, daily_mood_only()).await;
        preferences(&app, patient, json!({"timezone": "UTC"})).await;
    }
    let other = app.another_process(|_| {});
    for when in ["2026-06-01T09:00:00Z", "2026-06-01T13:00:00Z"] {
        app.clock.set(at(when));
        let (a, b) = tokio::join!(
            companion::prompt::passes::tick(&app.app),
            companion::prompt::passes::tick(&other)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.sent + b.sent, if when.contains("T09") { 8 } else { 0 });
        assert_eq!(
            a.reminded + b.reminded,
            if when.contains("T13") { 8 } else { 0 }
        );
        app.run_jobs().await;
    }
    assert_eq!(
        fcm.delivered_count(),
        16,
        "one prompt and one reminder per device"
    );
    let mut seen = std::collections::BTreeSet::new();
    for message in fcm.delivered() {
        let data = &message.body["message"]["data"];
        assert!(
            seen.insert((message.token.clone(), data["kind"].to_string())),
            "sent twice: {data}"
        );
    }
}

async fn disabling_a_patient_withdraws_their_prompts_and_enabling_plans_them_again(
    backend: Backend,
) {
    let app = TestApp::new(backend).await;
    app.clock.set(at("2026-06-01T06:00:00Z"));
    let world = app.world().await;
    let patient = &world.patient_a;
    let live = |prompts: &[Value]| {
        prompts
            .iter()
            .filter(|p| p["status"] == "scheduled")
            .count()
    };
    assert!(live(&prompts_of(&app, &world.clinician_a, patient).await) > 0);
    app.call(
        Method::POST,
        &format!("/v1/accounts/{}/disable", patient.id),
        Some(&world.admin_a.access),
        None,
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(
        live(&prompts_of(&app, &world.clinician_a, patient).await),
        0
    );
    // Nor does a worker pass plan any for a disabled patient.
    run_at(&app, "2026-06-02T10:00:00Z").await;
    assert_eq!(
        live(&prompts_of(&app, &world.clinician_a, patient).await),
        0
    );
    app.call(
        Method::POST,
        &format!("/v1/accounts/{}/enable", patient.id),
        Some(&app.token(&world.admin_a).await),
        None,
    )
    .await
    .expect(StatusCode::OK);
    assert!(live(&prompts_of(&app, &world.clinician_a, patient).await) > 0);
}
