//! The patient data lifecycle through the API: consent gating prompts (never the patient's own
//! check-ins), the patient's access log, exports, erasure and retention.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Actor, Backend, TestApp, World, assert_error};

both!(
    a_patient_who_never_consented_receives_no_prompt_but_may_still_check_in,
    a_new_version_asks_again_and_withdrawal_stops_prompts,
    consent_documents_are_for_the_clinic_admin_to_publish_and_its_staff_to_read,
    a_clinicians_read_of_my_check_ins_appears_in_my_access_log,
    an_export_holds_what_was_created_without_push_tokens_and_is_audited,
    after_erasure_nothing_of_the_patient_is_left_to_find,
    the_retention_policy_is_for_the_clinic_admin_to_read_and_set,
    erasure_keeps_open_alerts_and_the_jobs_of_deleted_ones_stand_down,
    a_deidentifying_clinic_keeps_check_ins_and_alerts_without_the_person,
    the_purge_pass_deletes_what_is_past_the_clinics_retention,
);

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// The instant an answer's timestamp names: RFC 3339 text does not order as its instants do
/// (`.326Z` and `.3261Z`), so answers are compared as instants.
fn instant(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a timestamp"))
        .expect("an RFC 3339 timestamp")
        .with_timezone(&Utc)
}

async fn run_at(app: &TestApp, when: &str) {
    app.clock.set(at(when));
    app.run_workers().await;
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

/// Prompts planned or sent and not closed.
async fn live(app: &TestApp, staff: &Actor, patient: &Actor) -> usize {
    prompts_of(app, staff, patient)
        .await
        .iter()
        .filter(|p| ["scheduled", "sent", "reminded"].contains(&p["status"].as_str().unwrap()))
        .count()
}

/// Prompts ever pushed to the patient (the API shows a sent prompt that later expired only as
/// expired, so this reads the stored send time).
async fn sent(app: &TestApp, _staff: &Actor, patient: &Actor) -> usize {
    let sql = format!(
        "SELECT COUNT(*) AS n FROM prompts WHERE patient_id = '{}' AND sent_at IS NOT NULL",
        patient.id
    );
    usize::try_from(app.count(Box::leak(sql.into_boxed_str())).await).unwrap()
}

async fn publish(app: &TestApp, world: &World, title: &str) -> Value {
    app.post(
        &format!("/v1/clinics/{}/consent-documents", world.clinic_a),
        &app.token(&world.admin_a).await,
        json!({"title": title, "body": "I agree that my clinic may send me check-in reminders."}),
    )
    .await
    .expect(StatusCode::CREATED)
    .body
}

async fn decide(app: &TestApp, patient: &Actor, body: Value) -> crate::harness::Reply {
    app.post("/v1/me/consent", &app.token(patient).await, body)
        .await
}

async fn a_patient_who_never_consented_receives_no_prompt_but_may_still_check_in(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.clock.set(at("2026-06-01T06:00:00Z"));
    let world = app.world().await;
    // Before any document: today's behaviour, prompts are planned.
    assert!(live(&app, &world.clinician_a, &world.patient_a).await > 0);
    let mine = app
        .get("/v1/me/consent", &world.patient_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(mine.body["current"], Value::Null);
    assert_eq!(mine.body["accepted"], true);

    let doc = publish(&app, &world, "Consent to remote monitoring").await;
    assert_eq!(doc["version"], 1);
    // Published: nobody has accepted yet, so nothing stays planned.
    assert_eq!(live(&app, &world.clinician_a, &world.patient_a).await, 0);
    let newcomer = app
        .join(&world.clinician_a, &world.clinic_a, "patient")
        .await;
    assert_eq!(live(&app, &world.clinician_a, &newcomer).await, 0);
    let mine = app
        .get("/v1/me/consent", &newcomer.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(mine.body["current"]["version"], 1);
    assert_eq!(mine.body["accepted"], false);
    assert_eq!(mine.body["prompting"], false);

    // A whole day of worker passes sends them nothing.
    for hour in [
        "2026-06-01T14:05:00Z",
        "2026-06-01T18:00:00Z",
        "2026-06-02T14:05:00Z",
    ] {
        run_at(&app, hour).await;
    }
    assert_eq!(sent(&app, &world.clinician_a, &newcomer).await, 0);
    assert_eq!(sent(&app, &world.clinician_a, &world.patient_a).await, 0);
    assert!(
        app.get("/v1/me/prompts", &app.token(&newcomer).await)
            .await
            .expect(StatusCode::OK)
            .body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The clinic B patient, whose clinic has no document, was prompted as before.
    assert!(sent(&app, &world.clinician_b, &world.patient_b).await > 0);

    // Consent gates prompting, never the patient's own check-ins.
    let check_in = app
        .post(
            "/v1/check-ins",
            &app.token(&newcomer).await,
            json!({"id": uuid::Uuid::now_v7().to_string(), "instrument": "daily_mood",
                   "answers": {"mood": 4}, "completed_at": app.app.now().to_rfc3339()}),
        )
        .await;
    assert_eq!(check_in.status, StatusCode::CREATED, "{}", check_in.text);

    // Accepting plans prompts at once, and the next pass sends them.
    let mine = decide(
        &app,
        &newcomer,
        json!({"document_id": doc["id"], "action": "accept"}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(mine.body["accepted"], true);
    assert_eq!(mine.body["history"][0]["action"], "accept");
    assert_eq!(mine.body["history"][0]["version"], 1);
    assert!(live(&app, &world.clinician_a, &newcomer).await > 0);
    run_at(&app, "2026-06-03T14:05:00Z").await;
    assert!(sent(&app, &world.clinician_a, &newcomer).await > 0);
    // patient_a never accepted: still nothing.
    assert_eq!(sent(&app, &world.clinician_a, &world.patient_a).await, 0);
}

async fn a_new_version_asks_again_and_withdrawal_stops_prompts(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.clock.set(at("2026-06-01T06:00:00Z"));
    let world = app.world().await;
    let patient = &world.patient_a;
    let v1 = publish(&app, &world, "Consent v1").await;
    decide(&app, patient, json!({"version": 1, "action": "accept"}))
        .await
        .expect(StatusCode::OK);
    assert!(live(&app, &world.clinician_a, patient).await > 0);

    let v2 = publish(&app, &world, "Consent v2").await;
    assert_eq!(v2["version"], 2);
    // Monitoring goes on under version 1 until the patient answers version 2.
    assert!(live(&app, &world.clinician_a, patient).await > 0);
    let mine = app
        .get("/v1/me/consent", &app.token(patient).await)
        .await
        .expect(StatusCode::OK);
    assert_eq!(mine.body["current"]["version"], 2);
    assert_eq!(mine.body["accepted"], false);
    // The old version can no longer be accepted.
    let stale = decide(
        &app,
        patient,
        json!({"document_id": v1["id"], "action": "accept"}),
    )
    .await;
    assert_error(&stale, StatusCode::CONFLICT, "consent_version_not_current");
    run_at(&app, "2026-06-01T14:05:00Z").await;
    assert!(sent(&app, &world.clinician_a, patient).await > 0);

    // Re-consent to the new version: prompted again.
    decide(&app, patient, json!({"version": 2, "action": "accept"}))
        .await
        .expect(StatusCode::OK);
    assert!(live(&app, &world.clinician_a, patient).await > 0);
    run_at(&app, "2026-06-02T14:05:00Z").await;
    let sent_before = sent(&app, &world.clinician_a, patient).await;
    assert!(sent_before > 0);

    // Withdrawal: every open prompt goes, and no pass sends another.
    let mine = decide(&app, patient, json!({"version": 2, "action": "withdraw"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(mine.body["accepted"], false);
    let actions: Vec<(&str, i64)> = mine.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(actions, [("accept", 1), ("accept", 2), ("withdraw", 2)]);
    assert!(mine.body["history"][2]["at"].is_string());
    assert_eq!(live(&app, &world.clinician_a, patient).await, 0);
    run_at(&app, "2026-06-03T14:05:00Z").await;
    run_at(&app, "2026-06-04T14:05:00Z").await;
    assert_eq!(live(&app, &world.clinician_a, patient).await, 0);
    // Withdrawing twice is a conflict, not a second record.
    let again = decide(&app, patient, json!({"version": 2, "action": "withdraw"})).await;
    assert_error(&again, StatusCode::CONFLICT, "consent_not_given");
    // A version that does not exist, and a body naming none.
    let missing = decide(&app, patient, json!({"version": 9, "action": "accept"})).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    let neither = decide(&app, patient, json!({"action": "accept"})).await;
    assert_error(
        &neither,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let bad_action = decide(&app, patient, json!({"version": 2, "action": "maybe"})).await;
    assert!(bad_action.status.is_client_error(), "{}", bad_action.text);
}

async fn consent_documents_are_for_the_clinic_admin_to_publish_and_its_staff_to_read(
    backend: Backend,
) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let path = format!("/v1/clinics/{}/consent-documents", world.clinic_a);
    let body = json!({"title": "Consent", "body": "Text"});
    let by_clinician = app
        .post(&path, &world.clinician_a.access, body.clone())
        .await;
    assert_error(&by_clinician, StatusCode::FORBIDDEN, "forbidden");
    let other_clinic = app.post(&path, &world.admin_b.access, body.clone()).await;
    assert_error(&other_clinic, StatusCode::NOT_FOUND, "not_found");
    let by_patient = app.post(&path, &world.patient_a.access, body.clone()).await;
    assert_error(&by_patient, StatusCode::FORBIDDEN, "forbidden");
    let empty = app
        .post(
            &path,
            &world.admin_a.access,
            json!({"title": " ", "body": ""}),
        )
        .await;
    assert_error(
        &empty,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(empty.body["error"]["fields"]["title"].is_string());
    assert!(empty.body["error"]["fields"]["body"].is_string());
    app.post(&path, &world.admin_a.access, body.clone())
        .await
        .expect(StatusCode::CREATED);
    app.post(
        &path,
        &world.admin_a.access,
        json!({"title": "Consent, revised", "body": "More text"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let list = app
        .get(&path, &world.clinician_a.access)
        .await
        .expect(StatusCode::OK);
    let versions: Vec<i64> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);
    assert_eq!(list.body["items"][0]["title"], "Consent, revised");
    let hidden = app.get(&path, &world.clinician_b.access).await;
    assert_error(&hidden, StatusCode::NOT_FOUND, "not_found");
    let not_an_id = app
        .get(
            "/v1/clinics/nope/consent-documents",
            &world.clinician_a.access,
        )
        .await;
    assert_error(&not_an_id, StatusCode::NOT_FOUND, "not_found");
    // Clinic B's patients see no document of clinic A.
    let b = app
        .get("/v1/me/consent", &world.patient_b.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(b.body["current"], Value::Null);
}

async fn a_clinicians_read_of_my_check_ins_appears_in_my_access_log(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let patient = &world.patient_a;
    // The patient's own reads are not part of the log.
    app.get(
        &format!("/v1/patients/{}/prompts", patient.id),
        &patient.access,
    )
    .await
    .expect(StatusCode::OK);
    app.clock.advance(chrono::TimeDelta::seconds(1));
    app.get(
        &format!("/v1/patients/{}/check-ins", patient.id),
        &world.clinician_a.access,
    )
    .await
    .expect(StatusCode::OK);
    app.clock.advance(chrono::TimeDelta::seconds(1));
    app.get(
        &format!("/v1/patients/{}/prompts", patient.id),
        &world.admin_a.access,
    )
    .await
    .expect(StatusCode::OK);
    let log = app
        .get("/v1/me/access-log", &patient.access)
        .await
        .expect(StatusCode::OK);
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{}", log.text);
    // Newest first.
    assert_eq!(items[0]["action"], "prompts.read");
    assert_eq!(items[0]["actor"]["id"], world.admin_a.id.as_str());
    assert_eq!(items[0]["actor"]["role"], "clinic_admin");
    assert_eq!(items[1]["action"], "check_ins.read");
    assert_eq!(items[1]["actor"]["id"], world.clinician_a.id.as_str());
    assert_eq!(items[1]["actor"]["role"], "clinician");
    assert_eq!(items[1]["actor"]["display_name"], "Test Person");
    assert!(instant(&items[1]["at"]) < instant(&items[0]["at"]));
    // Paged.
    let first = app
        .get("/v1/me/access-log?limit=1", &patient.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(first.body["items"][0]["action"], "prompts.read");
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get(
            &format!("/v1/me/access-log?limit=1&cursor={cursor}"),
            &patient.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(second.body["items"][0]["action"], "check_ins.read");
    assert_eq!(second.body["next_cursor"], Value::Null);
    let bad = app.get("/v1/me/access-log?limit=0", &patient.access).await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    // Another patient's log holds nothing of it; staff have no access log of their own.
    let other = app
        .get("/v1/me/access-log", &world.patient_a2.access)
        .await
        .expect(StatusCode::OK);
    assert!(other.body["items"].as_array().unwrap().is_empty());
    let staff = app
        .get("/v1/me/access-log", &world.clinician_a.access)
        .await;
    assert_error(&staff, StatusCode::FORBIDDEN, "forbidden");
}

async fn an_export_holds_what_was_created_without_push_tokens_and_is_audited(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let patient = &world.patient_a;
    let push_token = "device-token-that-must-never-be-exported";
    app.post(
        "/v1/devices",
        &patient.access,
        json!({"platform": "android", "token": push_token}),
    )
    .await
    .expect(StatusCode::CREATED);
    let check_in_id = uuid::Uuid::now_v7().to_string();
    app.post(
        "/v1/check-ins",
        &patient.access,
        json!({"id": check_in_id, "instrument": "daily_mood",
               "answers": {"mood": 4}, "completed_at": app.app.now().to_rfc3339()}),
    )
    .await
    .expect(StatusCode::CREATED);
    let session = app
        .post(
            &format!("/v1/patients/{}/sessions", patient.id),
            &world.clinician_a.access,
            json!({"modality": "iv_infusion", "scheduled_at": (app.app.now() + chrono::TimeDelta::days(3)).to_rfc3339()}),
        )
        .await
        .expect(StatusCode::CREATED);
    let doc = publish(&app, &world, "Consent").await;
    decide(
        &app,
        patient,
        json!({"document_id": doc["id"], "action": "accept"}),
    )
    .await
    .expect(StatusCode::OK);

    let staff = app
        .get(
            &format!("/v1/patients/{}/export", patient.id),
            &world.clinician_a.access,
        )
        .await
        .expect(StatusCode::OK);
    let mine = app
        .get("/v1/me/export", &patient.access)
        .await
        .expect(StatusCode::OK);
    for export in [&staff, &mine] {
        let body = &export.body;
        assert_eq!(body["profile"]["id"], patient.id.as_str());
        assert_eq!(body["profile"]["email"], patient.email.as_str());
        assert_eq!(body["profile"]["display_name"], "Test Person");
        assert_eq!(body["preferences"]["quiet_hours"]["start"], "21:00");
        assert_eq!(body["devices"].as_array().unwrap().len(), 1);
        assert_eq!(body["devices"][0]["platform"], "android");
        assert!(body["devices"][0].get("token").is_none());
        assert!(!export.text.contains(push_token));
        assert!(!body["sign_in_sessions"].as_array().unwrap().is_empty());
        assert_eq!(body["check_ins"][0]["id"], check_in_id.as_str());
        assert_eq!(body["check_ins"][0]["answers"]["mood"], 4);
        assert_eq!(body["treatment_sessions"][0]["id"], session.body["id"]);
        assert_eq!(body["treatment_sessions"][0]["modality"], "iv_infusion");
        assert!(!body["prompts"].as_array().unwrap().is_empty());
        assert_eq!(body["consent"][0]["action"], "accept");
        assert_eq!(body["consent"][0]["version"], 1);
        assert!(body["alerts"].as_array().unwrap().is_empty());
    }
    // Audited: the staff export shows in the patient's access log.
    let log = app
        .get("/v1/me/access-log", &patient.access)
        .await
        .expect(StatusCode::OK);
    let exported_by: Vec<&str> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "patient.export")
        .map(|e| e["actor"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(exported_by, [world.clinician_a.id.as_str()]);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'patient.export'")
            .await,
        2
    );
    // Another clinic's staff are told the patient does not exist.
    let hidden = app
        .get(
            &format!("/v1/patients/{}/export", patient.id),
            &world.clinician_b.access,
        )
        .await;
    assert_error(&hidden, StatusCode::NOT_FOUND, "not_found");
    let by_patient = app
        .get(
            &format!("/v1/patients/{}/export", patient.id),
            &patient.access,
        )
        .await;
    assert_error(&by_patient, StatusCode::FORBIDDEN, "forbidden");
}

async fn after_erasure_nothing_of_the_patient_is_left_to_find(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let patient = &world.patient_a;
    app.post(
        "/v1/devices",
        &patient.access,
        json!({"platform": "android", "token": "tok-erase-me"}),
    )
    .await
    .expect(StatusCode::CREATED);
    app.post(
        "/v1/check-ins",
        &patient.access,
        json!({"id": uuid::Uuid::now_v7().to_string(), "instrument": "phq9",
               "answers": crate::escalation::phq9([1, 1, 0, 0, 0, 0, 0, 0, 1]),
               "completed_at": app.app.now().to_rfc3339()}),
    )
    .await
    .expect(StatusCode::CREATED);
    let by_clinician = app
        .post(
            &format!("/v1/patients/{}/erasure", patient.id),
            &world.clinician_a.access,
            json!({}),
        )
        .await;
    assert_error(&by_clinician, StatusCode::FORBIDDEN, "forbidden");
    let other_clinic = app
        .post(
            &format!("/v1/patients/{}/erasure", patient.id),
            &world.admin_b.access,
            json!({}),
        )
        .await;
    assert_error(&other_clinic, StatusCode::NOT_FOUND, "not_found");
    app.post("/v1/me/erasure", &patient.access, json!({}))
        .await
        .expect(StatusCode::NO_CONTENT);

    // The former patient's token is refused, and the login with it.
    let me = app.get("/v1/me", &patient.access).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.text);
    let login = app.login(&patient.email, crate::harness::PASSWORD).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{}", login.text);
    // Staff: the patient's routes answer 404, the roster and the inbox hold nothing of them.
    let staff = app.token(&world.admin_a).await;
    for route in [
        "check-ins",
        "prompts",
        "sessions",
        "export",
        "trends",
        "care-plan",
        "adherence",
    ] {
        let reply = app
            .get(&format!("/v1/patients/{}/{route}", patient.id), &staff)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{route}: {}",
            reply.text
        );
    }
    for path in [
        format!("/v1/clinics/{}/patients", world.clinic_a),
        "/v1/alerts?status=resolved".to_owned(),
        format!("/v1/clinics/{}/consent-documents", world.clinic_a),
    ] {
        let reply = app.get(&path, &staff).await.expect(StatusCode::OK);
        assert!(!reply.text.contains(&patient.id), "{path}: {}", reply.text);
        assert!(
            !reply.text.contains(&patient.email),
            "{path}: {}",
            reply.text
        );
    }
    // The item-9 alert was open: it stays until staff resolve it, as an erased patient's, with
    // nothing but its severity, rule and times.
    let inbox = app.get("/v1/alerts", &staff).await.expect(StatusCode::OK);
    assert!(!inbox.text.contains(&patient.email), "{}", inbox.text);
    let kept = inbox.body["items"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{}", inbox.text);
    assert_eq!(kept[0]["patient_erased"], true);
    assert_eq!(kept[0]["inputs"], json!({}));
    assert_eq!(kept[0]["check_in_id"], Value::Null);
    assert!(!kept[0]["explanation"].as_str().unwrap().contains("item 9"));
    let sql = format!(
        "SELECT COUNT(*) AS n FROM alerts WHERE patient_id = '{}' AND patient_erased_at IS NULL",
        patient.id
    );
    assert_eq!(app.count(Box::leak(sql.into_boxed_str())).await, 0);
    for table in ["check_ins", "prompts", "devices", "patient_schedules"] {
        let column = if table == "devices" {
            "account_id"
        } else {
            "patient_id"
        };
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE {column} = '{}'",
            patient.id
        );
        assert_eq!(
            app.count(Box::leak(sql.into_boxed_str())).await,
            0,
            "{table}"
        );
    }
    let sql = format!(
        "SELECT COUNT(*) AS n FROM accounts WHERE email = '{}' OR display_name IS NOT NULL AND id = '{}'",
        patient.email, patient.id
    );
    assert_eq!(app.count(Box::leak(sql.into_boxed_str())).await, 0);
    // The audit keeps that it happened.
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'patient.erase'")
            .await,
        1
    );
    // The other patient is untouched.
    app.get(
        &format!("/v1/patients/{}/check-ins", world.patient_a2.id),
        &staff,
    )
    .await
    .expect(StatusCode::OK);
}

/// Runs a statement the API offers no way to make (to set up a case).
async fn exec(app: &TestApp, sql: String) {
    use diesel::RunQueryDsl;
    app.app
        .db
        .run(move |conn| diesel::sql_query(sql).execute(conn))
        .await
        .unwrap();
}

async fn count_of(app: &TestApp, sql: String) -> i64 {
    app.count(Box::leak(sql.into_boxed_str())).await
}

/// A PHQ-9 with a positive item 9 (opens an urgent alert) or a benign one.
async fn check_in(app: &TestApp, patient: &Actor, item9: i64) {
    app.post(
        "/v1/check-ins",
        &patient.access,
        json!({"id": uuid::Uuid::now_v7().to_string(), "instrument": "phq9",
               "answers": crate::escalation::phq9([1, 1, 0, 0, 0, 0, 0, 0, item9]),
               "completed_at": app.app.now().to_rfc3339()}),
    )
    .await
    .expect(StatusCode::CREATED);
}

async fn the_retention_policy_is_for_the_clinic_admin_to_read_and_set(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let path = format!("/v1/clinics/{}/retention", world.clinic_a);
    let defaults = app
        .get(&path, &world.admin_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(defaults.body["erasure_mode"], "delete");
    assert_eq!(defaults.body["check_in_retention_days"], Value::Null);
    assert_eq!(defaults.body["audit_retention_days"], Value::Null);

    let bad = app
        .put(
            &path,
            &world.admin_a.access,
            json!({"erasure_mode": "shred", "check_in_retention_days": 0,
                   "alert_retention_days": 40000, "audit_retention_days": 365}),
        )
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    for field in [
        "erasure_mode",
        "check_in_retention_days",
        "alert_retention_days",
    ] {
        assert!(bad.text.contains(field), "{field}: {}", bad.text);
    }
    assert!(!bad.text.contains("audit_retention_days"), "{}", bad.text);
    let unknown = app
        .put(
            &path,
            &world.admin_a.access,
            json!({"erasure_mode": "delete", "forever": true}),
        )
        .await;
    assert!(unknown.status.is_client_error(), "{}", unknown.text);

    let body = json!({"erasure_mode": "deidentify", "check_in_retention_days": 730,
                      "alert_retention_days": 365, "audit_retention_days": 2190});
    let by_clinician = app
        .put(&path, &world.clinician_a.access, body.clone())
        .await;
    assert_error(&by_clinician, StatusCode::FORBIDDEN, "forbidden");
    let read_by_clinician = app.get(&path, &world.clinician_a.access).await;
    assert_error(&read_by_clinician, StatusCode::FORBIDDEN, "forbidden");
    let other_clinic = app.put(&path, &world.admin_b.access, body.clone()).await;
    assert_error(&other_clinic, StatusCode::NOT_FOUND, "not_found");
    let other_read = app.get(&path, &world.admin_b.access).await;
    assert_error(&other_read, StatusCode::NOT_FOUND, "not_found");
    let by_patient = app.get(&path, &world.patient_a.access).await;
    assert!(by_patient.status.is_client_error(), "{}", by_patient.text);

    let set = app
        .put(&path, &world.admin_a.access, body)
        .await
        .expect(StatusCode::OK);
    assert_eq!(set.body["erasure_mode"], "deidentify");
    let read = app
        .get(&path, &world.admin_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(read.body["erasure_mode"], "deidentify");
    assert_eq!(read.body["check_in_retention_days"], 730);
    assert_eq!(read.body["alert_retention_days"], 365);
    assert_eq!(read.body["audit_retention_days"], 2190);
    // Setting it again without periods means no limit; the other clinic is untouched.
    let cleared = app
        .put(
            &path,
            &world.admin_a.access,
            json!({"erasure_mode": "delete"}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(cleared.body["check_in_retention_days"], Value::Null);
    let b = app
        .get(
            &format!("/v1/clinics/{}/retention", world.clinic_b),
            &world.admin_b.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(b.body["erasure_mode"], "delete");
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'retention.update'")
            .await,
        2
    );
}

async fn erasure_keeps_open_alerts_and_the_jobs_of_deleted_ones_stand_down(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let patient = &world.patient_a;
    // A resolved alert (deleted by the erasure) and an open one (kept).
    check_in(&app, patient, 2).await;
    let alerts = crate::escalation::alerts_of(&app, &world.admin_a).await;
    assert_eq!(alerts.len(), 1);
    let resolved_id = alerts[0]["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/v1/alerts/{resolved_id}/resolve"),
        &world.clinician_a.access,
        json!({"note": "Called back; safe."}),
    )
    .await
    .expect(StatusCode::OK);
    check_in(&app, patient, 3).await;
    let open_id = crate::escalation::alerts_of(&app, &world.admin_a)
        .await
        .into_iter()
        .find(|a| a["status"] == "open")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let waiting = |alert: &str| {
        format!(
            "SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued' AND dedupe_key LIKE '%{alert}%'"
        )
    };
    assert!(count_of(&app, waiting(&resolved_id)).await > 0);
    assert!(count_of(&app, waiting(&open_id)).await > 0);
    // A job for the resolved alert that erasure cannot recognise by its key: when it runs, the
    // alert row is gone.
    exec(
        &app,
        format!(
            "INSERT INTO jobs (id, kind, payload, dedupe_key, status, attempts, max_attempts, run_at, created_at, updated_at) \
             SELECT 'orphan-job', kind, payload, NULL, status, attempts, max_attempts, run_at, created_at, updated_at \
             FROM jobs WHERE status = 'queued' AND kind = 'alert.notify' AND dedupe_key LIKE '%{resolved_id}%'"
        ),
    )
    .await;
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM jobs WHERE id = 'orphan-job'")
            .await,
        1
    );

    app.post(
        &format!("/v1/patients/{}/erasure", patient.id),
        &world.admin_a.access,
        json!({}),
    )
    .await
    .expect(StatusCode::NO_CONTENT);

    // The resolved alert went with its waiting jobs; the open one stays, still escalating.
    assert_eq!(
        count_of(
            &app,
            format!("SELECT COUNT(*) AS n FROM alerts WHERE id = '{resolved_id}'")
        )
        .await,
        0
    );
    assert_eq!(count_of(&app, waiting(&resolved_id)).await, 0);
    assert!(count_of(&app, waiting(&open_id)).await > 0);
    let run = app.run_jobs().await;
    assert!(run >= 1, "the orphan job ran");
    // It stood down: done, never dead, never queued again.
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM jobs WHERE id = 'orphan-job' AND status = 'done'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM jobs WHERE status IN ('dead', 'running')")
            .await,
        0
    );
    // Nor was it counted as a failure.
    let metrics = app
        .send(
            axum::http::Request::builder()
                .uri("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        !metrics
            .text
            .lines()
            .any(|l| l.starts_with("companion_job_failures_total{")),
        "{}",
        metrics.text
    );
    let left = crate::escalation::alerts_of(&app, &world.admin_a).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], json!(open_id));
    assert_eq!(left[0]["status"], "open");
    assert_eq!(left[0]["patient_erased"], true);
}

async fn a_deidentifying_clinic_keeps_check_ins_and_alerts_without_the_person(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let patient = &world.patient_a;
    app.put(
        &format!("/v1/clinics/{}/retention", world.clinic_a),
        &world.admin_a.access,
        json!({"erasure_mode": "deidentify", "check_in_retention_days": 365}),
    )
    .await
    .expect(StatusCode::OK);
    app.post(
        "/v1/devices",
        &patient.access,
        json!({"platform": "android", "token": "tok-deidentify"}),
    )
    .await
    .expect(StatusCode::CREATED);
    check_in(&app, patient, 2).await;
    check_in(&app, patient, 0).await;
    let alert_id = crate::escalation::alerts_of(&app, &world.admin_a).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    app.post("/v1/me/erasure", &patient.access, json!({}))
        .await
        .expect(StatusCode::NO_CONTENT);

    // Identifiers went at once.
    let me = app.get("/v1/me", &patient.access).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.text);
    let id = &patient.id;
    for sql in [
        format!(
            "SELECT COUNT(*) AS n FROM accounts WHERE id = '{id}' AND (email = '{}' OR display_name IS NOT NULL)",
            patient.email
        ),
        format!("SELECT COUNT(*) AS n FROM devices WHERE account_id = '{id}'"),
        format!("SELECT COUNT(*) AS n FROM refresh_families WHERE account_id = '{id}'"),
        format!("SELECT COUNT(*) AS n FROM prompts WHERE patient_id = '{id}'"),
    ] {
        assert_eq!(count_of(&app, sql.clone()).await, 0, "{sql}");
    }
    // The clinical records stay under the opaque id only; the open alert stays open (still
    // escalating), its details reduced to severity, rule and times.
    assert_eq!(
        count_of(
            &app,
            format!("SELECT COUNT(*) AS n FROM check_ins WHERE patient_id = '{id}'")
        )
        .await,
        2
    );
    assert!(
        count_of(
            &app,
            format!(
                "SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued' AND dedupe_key LIKE '%{alert_id}%'"
            )
        )
        .await
            > 0
    );
    assert_eq!(
        count_of(
            &app,
            format!(
                "SELECT COUNT(*) AS n FROM alerts WHERE id = '{alert_id}' AND status = 'open' AND patient_erased_at IS NOT NULL AND check_in_id IS NULL AND inputs = '{{}}'"
            )
        )
        .await,
        1
    );
    assert_eq!(
        count_of(
            &app,
            format!(
                "SELECT COUNT(*) AS n FROM alert_events WHERE alert_id = '{alert_id}' AND (check_in_id IS NOT NULL OR (detail <> '' AND kind <> 'patient_erased'))"
            )
        )
        .await,
        0
    );
    // Staff find nothing of the person: the patient's routes answer 404, no email anywhere.
    let staff = app.token(&world.admin_a).await;
    let check_ins = app
        .get(&format!("/v1/patients/{id}/check-ins"), &staff)
        .await;
    assert_eq!(
        check_ins.status,
        StatusCode::NOT_FOUND,
        "{}",
        check_ins.text
    );
    let roster = app
        .get(&format!("/v1/clinics/{}/patients", world.clinic_a), &staff)
        .await
        .expect(StatusCode::OK);
    assert!(!roster.text.contains(id.as_str()), "{}", roster.text);
    let resolved = app
        .get("/v1/alerts?status=resolved", &staff)
        .await
        .expect(StatusCode::OK);
    assert!(!resolved.text.contains(&patient.email), "{}", resolved.text);
    // Jobs run clean afterwards.
    app.run_jobs().await;
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM jobs WHERE status = 'dead'")
            .await,
        0
    );
    // When the retention period ends, the purge takes the kept check-ins.
    let later = app.app.now() + chrono::TimeDelta::days(366);
    let purged = companion::worker::retention_purge(&app.app, later)
        .await
        .unwrap();
    assert_eq!(purged.check_ins, 2);
    assert_eq!(
        count_of(
            &app,
            format!("SELECT COUNT(*) AS n FROM check_ins WHERE patient_id = '{id}'")
        )
        .await,
        0
    );
}

async fn the_purge_pass_deletes_what_is_past_the_clinics_retention(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    app.put(
        &format!("/v1/clinics/{}/retention", world.clinic_a),
        &world.admin_a.access,
        json!({"erasure_mode": "delete", "check_in_retention_days": 30,
               "alert_retention_days": 60, "audit_retention_days": 90}),
    )
    .await
    .expect(StatusCode::OK);
    // Clinic A: a resolved alert (patient A) and an open one (patient A2); clinic B has no
    // policy and keeps everything.
    check_in(&app, &world.patient_a, 2).await;
    let resolved_id = crate::escalation::alerts_of(&app, &world.admin_a).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        &format!("/v1/alerts/{resolved_id}/resolve"),
        &world.clinician_a.access,
        json!({"note": "Called back; safe."}),
    )
    .await
    .expect(StatusCode::OK);
    check_in(&app, &world.patient_a2, 2).await;
    check_in(&app, &world.patient_b, 2).await;
    let clinic_a = &world.clinic_a;
    let clinic_b = &world.clinic_b;
    let counts = |clinic: &str| {
        [
            format!("SELECT COUNT(*) AS n FROM check_ins WHERE clinic_id = '{clinic}'"),
            format!("SELECT COUNT(*) AS n FROM alerts WHERE clinic_id = '{clinic}'"),
            format!(
                "SELECT COUNT(*) AS n FROM alert_events WHERE alert_id IN (SELECT id FROM alerts WHERE clinic_id = '{clinic}')"
            ),
            format!("SELECT COUNT(*) AS n FROM audit_events WHERE clinic_id = '{clinic}'"),
        ]
    };
    async fn all(app: &TestApp, sqls: [String; 4]) -> Vec<i64> {
        let mut out = Vec::new();
        for sql in sqls {
            out.push(count_of(app, sql).await);
        }
        out
    }
    let before_a = all(&app, counts(clinic_a)).await;
    let before_b = all(&app, counts(clinic_b)).await;
    assert_eq!(before_a[0], 2);
    assert_eq!(before_a[1], 2);
    assert!(before_a[2] >= 2 && before_a[3] >= 1, "{before_a:?}");
    let resolved_events = count_of(
        &app,
        format!("SELECT COUNT(*) AS n FROM alert_events WHERE alert_id = '{resolved_id}'"),
    )
    .await;

    let now = app.app.now();
    // Inside every period: nothing goes.
    let none = companion::worker::retention_purge(&app.app, now + chrono::TimeDelta::days(29))
        .await
        .unwrap();
    assert_eq!(none.total(), 0);
    assert_eq!(all(&app, counts(clinic_a)).await, before_a);

    // Past the check-in period only.
    let first = companion::worker::retention_purge(&app.app, now + chrono::TimeDelta::days(31))
        .await
        .unwrap();
    // The check-in behind patient A2's open alert stays while the alert is open.
    assert_eq!((first.check_ins, first.alerts, first.audit_rows), (1, 0, 0));
    let after_first = all(&app, counts(clinic_a)).await;
    assert_eq!(after_first[0], 1);
    assert_eq!(after_first[1..], before_a[1..]);
    // Alerts whose check-in was purged still read cleanly.
    for alert in crate::escalation::alerts_of(&app, &world.admin_a).await {
        app.get(
            &format!("/v1/alerts/{}", alert["id"].as_str().unwrap()),
            &world.admin_a.access,
        )
        .await
        .expect(StatusCode::OK);
    }

    // Past every period: the resolved alert and its events, and the audit rows; the open
    // alert stays, however old.
    let audit_before = all(&app, counts(clinic_a)).await[3];
    let second = companion::worker::retention_purge(&app.app, now + chrono::TimeDelta::days(91))
        .await
        .unwrap();
    assert_eq!(second.alerts, 1);
    assert_eq!(second.audit_rows as i64, audit_before);
    let after = all(&app, counts(clinic_a)).await;
    assert_eq!(after[1], 1);
    assert_eq!(after[2], before_a[2] - resolved_events);
    assert_eq!(after[3], 0);
    assert_eq!(
        count_of(
            &app,
            format!("SELECT COUNT(*) AS n FROM alerts WHERE id = '{resolved_id}'")
        )
        .await,
        0
    );
    assert_eq!(
        count_of(
            &app,
            format!(
                "SELECT COUNT(*) AS n FROM alerts WHERE clinic_id = '{clinic_a}' AND status <> 'resolved'"
            )
        )
        .await,
        1
    );
    // Clinic B set no periods: untouched.
    assert_eq!(all(&app, counts(clinic_b)).await, before_b);
}
