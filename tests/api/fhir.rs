//! FHIR R4 through HTTP: the CapabilityStatement, check-ins as QuestionnaireResponses and coded
//! Observations, alerts as a Flag and a Task, search with date ranges and `next` paging,
//! OperationOutcome errors, audit rows, and cross-clinic denial on every route.
//!
//! When `COMPANION_FHIR_DUMP_DIR` names a folder, every FHIR body these tests receive is written
//! there, one file per response, for `tests/fhir/validate.py` to validate against the R4 models.

use axum::http::{Method, StatusCode, header};
use chrono::{SecondsFormat, TimeDelta};
use serde_json::{Value, json};

use crate::both;
use crate::escalation::phq9;
use crate::harness::{Actor, Backend, Reply, TestApp, World};

both!(
    metadata_lists_exactly_the_types_and_search_parameters_served,
    check_ins_and_alerts_read_as_coded_fhir_resources,
    search_filters_by_date_and_code_and_pages_with_next_links,
    unknown_or_malformed_search_parameters_answer_an_operation_outcome,
    staff_of_another_clinic_are_told_nothing_exists_on_every_route,
);

/// GETs a FHIR path, checks the media type, and keeps the body for validation.
async fn fhir_get(app: &TestApp, path: &str, token: Option<&str>) -> Reply {
    let reply = app.call(Method::GET, path, token, None).await;
    assert_eq!(
        reply
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap()),
        Some("application/fhir+json; charset=utf-8"),
        "{path}: {}",
        reply.text
    );
    if let Ok(dir) = std::env::var("COMPANION_FHIR_DUMP_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        let file = std::path::Path::new(&dir).join(format!("{}.json", uuid::Uuid::new_v4()));
        std::fs::write(file, &reply.text).unwrap();
    }
    reply
}

async fn ok(app: &TestApp, path: &str, who: &Actor) -> Value {
    let reply = fhir_get(app, path, Some(&who.access)).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
    reply.body
}

#[track_caller]
fn assert_outcome(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(
        reply.body["resourceType"], "OperationOutcome",
        "{}",
        reply.text
    );
    assert_eq!(reply.body["issue"][0]["severity"], "error");
    assert_eq!(reply.body["issue"][0]["code"], code, "{}", reply.text);
}

fn entries(bundle: &Value) -> Vec<Value> {
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "searchset");
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

fn ids(resources: &[Value]) -> Vec<String> {
    resources
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .map(|l| l["url"].as_str().unwrap().to_owned())
}

async fn app_and_world(backend: Backend) -> (TestApp, World) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    (app, world)
}

async fn submit(app: &TestApp, patient: &Actor, instrument: &str, answers: Value) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let at = app.app.now().to_rfc3339_opts(SecondsFormat::Micros, true);
    app.post(
        "/v1/check-ins",
        &patient.access,
        json!({"id": id, "instrument": instrument, "answers": answers, "completed_at": at}),
    )
    .await
    .expect(StatusCode::CREATED);
    id
}

async fn metadata_lists_exactly_the_types_and_search_parameters_served(backend: Backend) {
    let app = TestApp::new(backend).await;
    let reply = fhir_get(&app, "/fhir/r4/metadata", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let cs = reply.body;
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    assert_eq!(cs["format"], json!(["application/fhir+json"]));
    let resources = cs["rest"][0]["resource"].as_array().unwrap();
    let types: Vec<&str> = resources
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "Questionnaire",
            "QuestionnaireResponse",
            "Observation",
            "Patient",
            "Organization",
            "Flag",
            "Task",
            "Group"
        ]
    );
    let observation = &resources[2];
    let params: Vec<&str> = observation["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        [
            "patient",
            "date",
            "code",
            "status",
            "_lastUpdated",
            "_count"
        ]
    );
}

async fn check_ins_and_alerts_read_as_coded_fhir_resources(backend: Backend) {
    let (app, world) = app_and_world(backend).await;
    let staff = &world.clinician_a;
    let patient = &world.patient_a;
    let phq = submit(&app, patient, "phq9", phq9([3, 3, 2, 2, 2, 2, 2, 2, 1])).await;
    app.clock.advance(TimeDelta::minutes(5));
    let mood = submit(
        &app,
        patient,
        "daily_mood",
        json!({"mood": 4, "sleep_hours": 6.5, "bp_systolic": 150, "bp_diastolic": 95}),
    )
    .await;

    // Questionnaires per instrument version, with LOINC item and answer codes.
    let questionnaires = entries(&ok(&app, "/fhir/r4/Questionnaire", staff).await);
    assert_eq!(
        ids(&questionnaires),
        ["phq9-1", "phq2-1", "gad7-1", "daily-mood-1"]
    );
    let q = ok(&app, "/fhir/r4/Questionnaire/phq9-1", staff).await;
    assert_eq!(q["item"][8]["code"][0]["code"], "44260-8");
    assert_eq!(
        q["item"][8]["answerOption"][1]["valueCoding"]["code"],
        "LA6569-3"
    );
    let daily = ok(&app, "/fhir/r4/Questionnaire/daily-mood-1", staff).await;
    assert_eq!(
        daily["item"][0]["code"][0]["system"],
        "http://localhost/fhir/r4/CodeSystem/companion-items"
    );

    // The check-ins, newest first.
    let responses = entries(
        &ok(
            &app,
            &format!(
                "/fhir/r4/QuestionnaireResponse?patient=Patient/{}",
                patient.id
            ),
            staff,
        )
        .await,
    );
    assert_eq!(ids(&responses), [mood.clone(), phq.clone()]);
    let qr = ok(
        &app,
        &format!("/fhir/r4/QuestionnaireResponse/{phq}"),
        staff,
    )
    .await;
    assert_eq!(
        qr["subject"]["reference"],
        format!("Patient/{}", patient.id)
    );
    assert_eq!(qr["item"][8]["linkId"], "q9");
    assert_eq!(
        qr["item"][8]["answer"][0]["valueCoding"]["code"],
        "LA6569-3"
    );

    // Observations: total with its band, item 9 on its own, BP panel, sleep, mood.
    let all = entries(
        &ok(
            &app,
            &format!("/fhir/r4/Observation?patient={}", patient.id),
            staff,
        )
        .await,
    );
    assert_eq!(
        ids(&all),
        [
            format!("{mood}-bp"),
            format!("{mood}-sleep"),
            format!("{mood}-mood"),
            format!("{phq}-total"),
            format!("{phq}-item9"),
        ]
    );
    let item9 = entries(&ok(&app, "/fhir/r4/Observation?code=44260-8", staff).await);
    assert_eq!(ids(&item9), [format!("{phq}-item9")]);
    assert_eq!(
        item9[0]["valueCodeableConcept"]["coding"][0]["code"],
        "LA6569-3"
    );
    assert_eq!(
        item9[0]["derivedFrom"][0]["reference"],
        format!("QuestionnaireResponse/{phq}")
    );
    let total = ok(&app, &format!("/fhir/r4/Observation/{phq}-total"), staff).await;
    assert_eq!(total["code"]["coding"][0]["code"], "44261-6");
    assert_eq!(total["valueInteger"], 19);
    assert_eq!(total["interpretation"][0]["text"], "Moderately severe");
    assert_eq!(total["category"][0]["coding"][0]["code"], "survey");
    let bp = ok(&app, &format!("/fhir/r4/Observation/{mood}-bp"), staff).await;
    assert_eq!(bp["code"]["coding"][0]["code"], "85354-9");
    assert_eq!(bp["component"][0]["valueQuantity"]["value"], 150.0);
    assert_eq!(bp["component"][1]["code"]["coding"][0]["code"], "8462-4");
    let no_bp = fhir_get(
        &app,
        &format!("/fhir/r4/Observation/{phq}-bp"),
        Some(&staff.access),
    )
    .await;
    assert_outcome(&no_bp, StatusCode::NOT_FOUND, "not-found");

    // The item-9 alert: an active Flag and a requested Task with the acknowledgement deadline.
    let alerts = app
        .get("/v1/alerts", &staff.access)
        .await
        .expect(StatusCode::OK)
        .body["items"]
        .clone();
    let alert = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "safety_item9")
        .unwrap()
        .clone();
    let alert_id = alert["id"].as_str().unwrap().to_owned();
    let flags = entries(&ok(&app, "/fhir/r4/Flag?status=active", staff).await);
    assert!(ids(&flags).contains(&alert_id));
    let task = ok(&app, &format!("/fhir/r4/Task/{alert_id}"), staff).await;
    assert_eq!(task["status"], "requested");
    assert_eq!(task["priority"], "stat");
    let deadline: chrono::DateTime<chrono::Utc> =
        alert["ack_deadline"].as_str().unwrap().parse().unwrap();
    let restriction: chrono::DateTime<chrono::Utc> = task["restriction"]["period"]["end"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(restriction, deadline);
    assert_eq!(task["for"]["reference"], format!("Patient/{}", patient.id));
    app.call(
        Method::POST,
        &format!("/v1/alerts/{alert_id}/acknowledge"),
        Some(&staff.access),
        None,
    )
    .await
    .expect(StatusCode::OK);
    let task = ok(&app, &format!("/fhir/r4/Task/{alert_id}"), staff).await;
    assert_eq!(task["status"], "accepted");
    assert_eq!(
        task["owner"]["reference"],
        format!("Practitioner/{}", staff.id)
    );
    let flag = ok(&app, &format!("/fhir/r4/Flag/{alert_id}"), staff).await;
    assert_eq!(flag["status"], "active", "active until resolved");
    app.post(
        &format!("/v1/alerts/{alert_id}/resolve"),
        &staff.access,
        json!({"note": "called the patient"}),
    )
    .await
    .expect(StatusCode::OK);
    let flag = ok(&app, &format!("/fhir/r4/Flag/{alert_id}"), staff).await;
    assert_eq!(flag["status"], "inactive");
    assert!(flag["period"]["end"].is_string());
    let completed = entries(&ok(&app, "/fhir/r4/Task?status=completed", staff).await);
    assert!(ids(&completed).contains(&alert_id));
    let active = entries(&ok(&app, "/fhir/r4/Flag?status=active", staff).await);
    assert!(!ids(&active).contains(&alert_id));

    // Patient and Organization: no email, no token, anywhere.
    let person = fhir_get(
        &app,
        &format!("/fhir/r4/Patient/{}", patient.id),
        Some(&staff.access),
    )
    .await;
    assert_eq!(person.status, StatusCode::OK);
    assert_eq!(person.body["name"][0]["text"], "Test Person");
    assert_eq!(
        person.body["managingOrganization"]["reference"],
        format!("Organization/{}", world.clinic_a)
    );
    let patients = fhir_get(&app, "/fhir/r4/Patient", Some(&staff.access)).await;
    assert_eq!(entries(&patients.body).len(), 2);
    for text in [&person.text, &patients.text] {
        assert!(!text.contains('@'), "no email: {text}");
        assert!(!text.contains(&staff.access) && !text.contains(&patient.access));
    }
    let org = ok(
        &app,
        &format!("/fhir/r4/Organization/{}", world.clinic_a),
        staff,
    )
    .await;
    assert_eq!(org["name"], "Clinic A");

    // Each read and search of patient data left an audit row naming the reader.
    let audited = app
        .count("SELECT COUNT(*) AS n FROM audit_events WHERE action LIKE 'fhir.%'")
        .await;
    assert!(audited >= 15, "{audited} audit rows");
    let reads = app
        .count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'fhir.questionnaire_response.read'")
        .await;
    assert_eq!(reads, 1);
}

async fn search_filters_by_date_and_code_and_pages_with_next_links(backend: Backend) {
    let (app, world) = app_and_world(backend).await;
    let start = app.app.now();
    let mut moods = Vec::new();
    let mut patient = world.patient_a.clone();
    for day in 0..5 {
        // A fresh access token each day: the clock moves past their lifetime.
        patient.access = app.token(&patient).await;
        moods.push(submit(&app, &patient, "daily_mood", json!({"mood": day + 3})).await);
        app.clock.advance(TimeDelta::days(1));
    }
    // Another patient's check-in, not asked for.
    let mut other = world.patient_a2.clone();
    other.access = app.token(&other).await;
    submit(&app, &other, "daily_mood", json!({"mood": 5})).await;
    let mut staff = world.clinician_a.clone();
    staff.access = app.token(&staff).await;
    let staff = &staff;
    moods.reverse();

    // Paging through mood Observations two at a time, following the next links.
    let mut path = format!(
        "/fhir/r4/Observation?patient={}&code=mood&_count=2",
        world.patient_a.id
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let bundle = ok(&app, &path, staff).await;
        let page = entries(&bundle);
        assert!(page.len() <= 2);
        seen.extend(ids(&page));
        pages += 1;
        match next_link(&bundle) {
            Some(next) => path = next.strip_prefix("http://localhost").unwrap().to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = moods.iter().map(|m| format!("{m}-mood")).collect();
    assert_eq!(seen, expected);

    // QuestionnaireResponse by authored range: days 1 to 3 inclusive.
    let day = |n: i64| (start + TimeDelta::days(n)).format("%Y-%m-%d").to_string();
    let bundle = ok(
        &app,
        &format!(
            "/fhir/r4/QuestionnaireResponse?patient={}&authored=ge{}&authored=le{}",
            world.patient_a.id,
            day(1),
            day(3)
        ),
        staff,
    )
    .await;
    assert_eq!(
        ids(&entries(&bundle)),
        [moods[1].clone(), moods[2].clone(), moods[3].clone()]
    );
    assert_eq!(
        bundle["link"][0]["url"],
        format!(
            "http://localhost/fhir/r4/QuestionnaireResponse?patient={}&authored=ge{}&authored=le{}",
            world.patient_a.id,
            day(1),
            day(3)
        )
    );

    // The same range as Observation dates, paged one at a time across check-ins.
    let mut path = format!(
        "/fhir/r4/Observation?patient={}&date=ge{}&date=le{}&_count=1",
        world.patient_a.id,
        day(1),
        day(3)
    );
    let mut seen = Vec::new();
    loop {
        let bundle = ok(&app, &path, staff).await;
        seen.extend(ids(&entries(&bundle)));
        match next_link(&bundle) {
            Some(next) => path = next.strip_prefix("http://localhost").unwrap().to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3);

    // _lastUpdated: only what arrived in the last day and a half.
    let since = (app.app.now() - TimeDelta::hours(36)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let recent = entries(
        &ok(
            &app,
            &format!(
                "/fhir/r4/QuestionnaireResponse?_lastUpdated=ge{}",
                since.replace('+', "%2B")
            ),
            staff,
        )
        .await,
    );
    assert_eq!(recent.len(), 2, "the last of patient A's and patient A2's");

    // Codes no Observation has, and statuses no resource has, find nothing.
    assert!(
        entries(
            &ok(
                &app,
                "/fhir/r4/Observation?code=http://loinc.org|mood",
                staff
            )
            .await
        )
        .is_empty()
    );
    assert!(
        entries(
            &ok(
                &app,
                "/fhir/r4/QuestionnaireResponse?status=in-progress",
                staff
            )
            .await
        )
        .is_empty()
    );
    assert_eq!(
        entries(
            &ok(
                &app,
                "/fhir/r4/QuestionnaireResponse?status=completed",
                staff
            )
            .await
        )
        .len(),
        6
    );
}

async fn unknown_or_malformed_search_parameters_answer_an_operation_outcome(backend: Backend) {
    let (app, world) = app_and_world(backend).await;
    let token = Some(world.clinician_a.access.as_str());
    for (path, code) in [
        ("/fhir/r4/Observation?subject=Patient/x", "not-supported"),
        ("/fhir/r4/Flag?authored=ge2026-01-01", "not-supported"),
        ("/fhir/r4/Observation?date=2026-01-01", "invalid"),
        ("/fhir/r4/Observation?_count=0", "invalid"),
        ("/fhir/r4/Observation?_count=abc", "invalid"),
        ("/fhir/r4/Task?status=requested&status=accepted", "invalid"),
        ("/fhir/r4/Observation?_cursor=nonsense", "invalid"),
        (
            "/fhir/r4/QuestionnaireResponse?_cursor=1%7Cnot-a-uuid",
            "invalid",
        ),
    ] {
        let reply = fhir_get(&app, path, token).await;
        assert_outcome(&reply, StatusCode::BAD_REQUEST, code);
    }
    let reply = fhir_get(&app, "/fhir/r4/Medication", token).await;
    assert_outcome(&reply, StatusCode::NOT_FOUND, "not-supported");
    let reply = fhir_get(&app, "/fhir/r4/Observation/not-an-id", token).await;
    assert_outcome(&reply, StatusCode::NOT_FOUND, "not-found");
    let reply = fhir_get(&app, "/fhir/r4/Questionnaire/bdi-1", token).await;
    assert_outcome(&reply, StatusCode::NOT_FOUND, "not-found");
}

async fn staff_of_another_clinic_are_told_nothing_exists_on_every_route(backend: Backend) {
    let (app, world) = app_and_world(backend).await;
    let check_in = submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([1, 1, 1, 1, 1, 1, 1, 1, 1]),
    )
    .await;
    let alert_id = app
        .get("/v1/alerts", &world.clinician_a.access)
        .await
        .expect(StatusCode::OK)
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reads = [
        format!("/fhir/r4/QuestionnaireResponse/{check_in}"),
        format!("/fhir/r4/Observation/{check_in}-total"),
        format!("/fhir/r4/Observation/{check_in}-item9"),
        format!("/fhir/r4/Patient/{}", world.patient_a.id),
        format!("/fhir/r4/Organization/{}", world.clinic_a),
        format!("/fhir/r4/Flag/{alert_id}"),
        format!("/fhir/r4/Task/{alert_id}"),
    ];
    let patient_searches: Vec<String> = ["QuestionnaireResponse", "Observation", "Flag", "Task"]
        .iter()
        .map(|t| format!("/fhir/r4/{t}?patient={}", world.patient_a.id))
        .collect();
    for path in reads.iter().chain(&patient_searches) {
        // Their own staff see it...
        ok(&app, path, &world.clinician_a).await;
        // ...another clinic's staff are told it does not exist.
        for other in [&world.clinician_b, &world.admin_b] {
            let reply = fhir_get(&app, path, Some(&other.access)).await;
            assert_outcome(&reply, StatusCode::NOT_FOUND, "not-found");
        }
        // Patients and organisation admins read no FHIR; no token is a 401.
        for who in [&world.patient_a, &world.org_admin] {
            let reply = fhir_get(&app, path, Some(&who.access)).await;
            assert_outcome(&reply, StatusCode::FORBIDDEN, "forbidden");
        }
        let reply = fhir_get(&app, path, None).await;
        assert_outcome(&reply, StatusCode::UNAUTHORIZED, "login");
        assert_eq!(
            reply.headers.get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer"
        );
    }
    // Clinic-wide searches by the other clinic's staff hold none of clinic A's resources.
    for t in [
        "QuestionnaireResponse",
        "Observation",
        "Flag",
        "Task",
        "Patient",
        "Organization",
    ] {
        let bundle = ok(&app, &format!("/fhir/r4/{t}"), &world.clinician_b).await;
        let text = bundle.to_string();
        assert!(!text.contains(&world.patient_a.id), "{t}: {text}");
        assert!(!text.contains(&world.clinic_a), "{t}: {text}");
    }
}
