//! The management endpoints third-party apps and the console build on: a clinic's staff and
//! pending invitations (and revoking one), a patient's profile, my devices, a clinic's webhooks,
//! alert inbox filters and roster search. Each with its roles and tenancy.

use axum::http::{Method, StatusCode};
use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::both;
use crate::escalation::{phq9, submit};
use crate::harness::{Backend, TestApp, assert_error};

both!(
    a_clinics_staff_are_listed_to_its_admins_only,
    pending_invitations_are_listed_and_a_revoked_code_cannot_be_accepted,
    a_patients_profile_is_read_and_changed_by_staff_of_its_clinic,
    only_a_clinic_admin_changes_a_patients_status,
    my_devices_are_mine_only_and_never_show_tokens,
    webhook_lists_never_show_secrets,
    alert_inbox_filters_combine_with_each_other,
    roster_search_matches_name_or_external_id_in_any_case,
);

fn ids(reply: &Value) -> Vec<String> {
    reply["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_clinics_staff_are_listed_to_its_admins_only(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let path = format!("/v1/clinics/{}/staff", world.clinic_a);
    let reply = app
        .get(&path, &world.admin_a.access)
        .await
        .expect(StatusCode::OK);
    let mut listed = ids(&reply.body);
    listed.sort();
    let mut expected = vec![world.admin_a.id.clone(), world.clinician_a.id.clone()];
    expected.sort();
    assert_eq!(listed, expected, "staff only, no patients, no other clinic");
    let me = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == world.clinician_a.id.as_str())
        .unwrap();
    assert_eq!(me["role"], "clinician");
    assert_eq!(me["disabled"], false);
    // Paging.
    let first = app
        .get(&format!("{path}?limit=1"), &world.admin_a.access)
        .await
        .expect(StatusCode::OK);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get(
            &format!("{path}?limit=1&cursor={cursor}"),
            &world.admin_a.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(second.body["next_cursor"], Value::Null);
    assert_ne!(ids(&first.body), ids(&second.body));
    // The organisation admin may; clinicians and patients may not; other clinics do not exist.
    app.get(&path, &world.org_admin.access)
        .await
        .expect(StatusCode::OK);
    assert_error(
        &app.get(&path, &world.clinician_a.access).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.get(&path, &world.patient_a.access).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.get(&path, &world.admin_b.access).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let bad = app
        .get(&format!("{path}?limit=0"), &world.admin_a.access)
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(bad.body["error"]["fields"]["limit"].is_string());
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'clinic_staff.read'")
            .await,
        4
    );
}

async fn pending_invitations_are_listed_and_a_revoked_code_cannot_be_accepted(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let path = format!("/v1/clinics/{}/invitations", world.clinic_a);
    let invite = |role: &'static str| {
        let (app, path, token) = (&app, path.clone(), world.admin_a.access.clone());
        async move {
            app.post(&path, &token, json!({"role": role, "expires_in_hours": 2}))
                .await
                .expect(StatusCode::CREATED)
                .body
        }
    };
    // Every invitation of the world was accepted: none is pending.
    let empty = app
        .get(&path, &world.admin_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(empty.body["items"], json!([]));
    let to_revoke = invite("patient").await;
    let to_keep = invite("clinician").await;
    let listed = app
        .get(&path, &world.admin_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        ids(&listed.body),
        vec![
            to_revoke["id"].as_str().unwrap().to_owned(),
            to_keep["id"].as_str().unwrap().to_owned()
        ]
    );
    assert_eq!(listed.body["items"][1]["role"], "clinician");
    assert!(
        !listed.text.contains(to_revoke["code"].as_str().unwrap()),
        "codes are never shown again"
    );
    // Tenancy and roles, for listing and revoking.
    let revoke_path = format!("/v1/invitations/{}", to_revoke["id"].as_str().unwrap());
    assert_error(
        &app.get(&path, &world.admin_b.access).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &app.get(&path, &world.clinician_a.access).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.call(
            Method::DELETE,
            &revoke_path,
            Some(&world.admin_b.access),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &app.call(
            Method::DELETE,
            &revoke_path,
            Some(&world.clinician_a.access),
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.call(
            Method::DELETE,
            "/v1/invitations/not-an-id",
            Some(&world.admin_a.access),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Revoked: no longer listed, the code refused, revoking again changes nothing.
    app.call(
        Method::DELETE,
        &revoke_path,
        Some(&world.admin_a.access),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let listed = app
        .get(&path, &world.admin_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        ids(&listed.body),
        vec![to_keep["id"].as_str().unwrap().to_owned()]
    );
    assert_error(
        &app.accept(to_revoke["code"].as_str().unwrap(), "late@example.org")
            .await,
        StatusCode::CONFLICT,
        "invitation_revoked",
    );
    app.call(
        Method::DELETE,
        &revoke_path,
        Some(&world.admin_a.access),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    // An accepted invitation cannot be revoked.
    app.accept(to_keep["code"].as_str().unwrap(), "kept@example.org")
        .await
        .expect(StatusCode::CREATED);
    assert_error(
        &app.call(
            Method::DELETE,
            &format!("/v1/invitations/{}", to_keep["id"].as_str().unwrap()),
            Some(&world.admin_a.access),
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "invitation_used",
    );
    // Expired invitations are not pending.
    invite("patient").await;
    app.clock.advance(TimeDelta::hours(3));
    let admin = app.token(&world.admin_a).await;
    let listed = app.get(&path, &admin).await.expect(StatusCode::OK);
    assert_eq!(listed.body["items"], json!([]));
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'invitation.revoke'")
            .await,
        1
    );
}

async fn a_patients_profile_is_read_and_changed_by_staff_of_its_clinic(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let path = format!("/v1/patients/{}", world.patient_a.id);
    let profile = app
        .get(&path, &world.clinician_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(profile.body["id"], world.patient_a.id.as_str());
    assert_eq!(profile.body["clinic_id"], world.clinic_a.as_str());
    assert_eq!(profile.body["display_name"], "Test Person");
    assert_eq!(profile.body["external_id"], Value::Null);
    assert_eq!(profile.body["status"], "active");
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'patient_profile.read'")
            .await,
        1
    );
    // Other clinics, patients and organisation admins.
    for (token, status) in [
        (&world.clinician_b.access, StatusCode::NOT_FOUND),
        (&world.admin_b.access, StatusCode::NOT_FOUND),
        (&world.patient_a.access, StatusCode::FORBIDDEN),
        (&world.org_admin.access, StatusCode::FORBIDDEN),
    ] {
        assert_eq!(app.get(&path, token).await.status, status);
        assert_eq!(
            app.patch(&path, token, json!({"display_name": "X"}))
                .await
                .status,
            status
        );
    }
    assert_error(
        &app.get(
            &format!("/v1/patients/{}", world.clinician_a.id),
            &world.admin_a.access,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Changes.
    let changed = app
        .patch(
            &path,
            &world.clinician_a.access,
            json!({"display_name": " Alex R. ", "external_id": "MRN-0042", "timezone": "Europe/London"}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(changed.body["display_name"], "Alex R.");
    assert_eq!(changed.body["external_id"], "MRN-0042");
    assert_eq!(changed.body["timezone"], "Europe/London");
    let me = app
        .get("/v1/me", &world.patient_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(me.body["timezone"], "Europe/London");
    // The external id is unique within the clinic, not across clinics.
    assert_error(
        &app.patch(
            &format!("/v1/patients/{}", world.patient_a2.id),
            &world.admin_a.access,
            json!({"external_id": "MRN-0042"}),
        )
        .await,
        StatusCode::CONFLICT,
        "external_id_taken",
    );
    app.patch(
        &format!("/v1/patients/{}", world.patient_b.id),
        &world.clinician_b.access,
        json!({"external_id": "MRN-0042"}),
    )
    .await
    .expect(StatusCode::OK);
    // Setting the same id again is no clash; null clears.
    app.patch(
        &path,
        &world.clinician_a.access,
        json!({"external_id": "MRN-0042"}),
    )
    .await
    .expect(StatusCode::OK);
    let cleared = app
        .patch(
            &path,
            &world.clinician_a.access,
            json!({"external_id": null, "display_name": null}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(cleared.body["external_id"], Value::Null);
    assert_eq!(cleared.body["display_name"], Value::Null);
    // Invalid values are each named.
    let bad = app
        .patch(
            &path,
            &world.clinician_a.access,
            json!({"display_name": "", "external_id": "has space", "timezone": "+05:00"}),
        )
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields = bad.body["error"]["fields"].as_object().unwrap();
    for field in ["display_name", "external_id", "timezone"] {
        assert!(fields.contains_key(field), "{field}: {}", bad.text);
    }
    let wrong_type = app
        .patch(
            &path,
            &world.clinician_a.access,
            json!({"status": "paused"}),
        )
        .await;
    assert_eq!(
        wrong_type.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        wrong_type.text
    );
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'patient_profile.update'")
            .await,
        4
    );
}

async fn only_a_clinic_admin_changes_a_patients_status(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let path = format!("/v1/patients/{}", world.patient_a.id);
    assert_error(
        &app.patch(
            &path,
            &world.clinician_a.access,
            json!({"status": "disabled"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let disabled = app
        .patch(&path, &world.admin_a.access, json!({"status": "disabled"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(disabled.body["status"], "disabled");
    // Signed out everywhere, and cannot sign in again.
    assert_error(
        &app.get("/v1/me", &world.patient_a.access).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    );
    assert_eq!(
        app.login(&world.patient_a.email, crate::harness::PASSWORD)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let active = app
        .patch(&path, &world.admin_a.access, json!({"status": "active"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(active.body["status"], "active");
    app.login(&world.patient_a.email, crate::harness::PASSWORD)
        .await
        .expect(StatusCode::OK);
}

async fn my_devices_are_mine_only_and_never_show_tokens(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let register = |token: &'static str, who: String| {
        let app = &app;
        async move {
            app.post(
                "/v1/devices",
                &who,
                json!({"platform": "ios", "token": token}),
            )
            .await
            .expect(StatusCode::CREATED)
            .body["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let first = register("secret-token-one", world.patient_a.access.clone()).await;
    let second = register("secret-token-two", world.patient_a.access.clone()).await;
    register("secret-token-three", world.patient_a2.access.clone()).await;
    app.call(
        Method::DELETE,
        &format!("/v1/devices/{first}"),
        Some(&world.patient_a.access),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let mine = app
        .get("/v1/me/devices", &world.patient_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(ids(&mine.body), vec![first.clone(), second.clone()]);
    assert_eq!(mine.body["items"][0]["active"], false);
    assert_eq!(mine.body["items"][1]["active"], true);
    assert!(!mine.text.contains("secret-token"), "{}", mine.text);
    let page = app
        .get("/v1/me/devices?limit=1", &world.patient_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(ids(&page.body), vec![first]);
    assert!(page.body["next_cursor"].is_string());
    // Staff have devices too; nobody sees another's.
    let staff = app
        .get("/v1/me/devices", &world.clinician_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(staff.body["items"], json!([]));
    let bad = app
        .get("/v1/me/devices?cursor=nonsense", &world.patient_a.access)
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(bad.body["error"]["fields"]["cursor"].is_string());
}

async fn webhook_lists_never_show_secrets(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let path = format!("/v1/clinics/{}/webhooks", world.clinic_a);
    let created = app
        .post(
            &path,
            &world.admin_a.access,
            json!({"url": "https://hooks.example.org/a"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let removed = app
        .post(
            &path,
            &world.admin_a.access,
            json!({"url": "https://hooks.example.org/b"}),
        )
        .await
        .expect(StatusCode::CREATED);
    app.call(
        Method::DELETE,
        &format!("/v1/webhooks/{}", removed.body["id"].as_str().unwrap()),
        Some(&world.admin_a.access),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let listed = app
        .get(&path, &world.admin_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        ids(&listed.body),
        vec![created.body["id"].as_str().unwrap().to_owned()]
    );
    assert_eq!(
        listed.body["items"][0]["url"],
        "https://hooks.example.org/a"
    );
    assert!(listed.body["items"][0].get("secret").is_none());
    assert!(!listed.text.contains(&secret));
    assert!(!listed.text.contains("whsec_"));
    assert_error(
        &app.get(&path, &world.clinician_a.access).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.get(&path, &world.admin_b.access).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let other = app
        .get(
            &format!("/v1/clinics/{}/webhooks", world.clinic_b),
            &world.admin_b.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(other.body["items"], json!([]));
}

async fn alert_inbox_filters_combine_with_each_other(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    submit(
        &app,
        &world.patient_a,
        "phq9",
        phq9([1, 1, 1, 1, 1, 1, 1, 1, 1]),
    )
    .await;
    submit(
        &app,
        &world.patient_a2,
        "phq9",
        phq9([3, 3, 3, 3, 3, 3, 2, 0, 0]),
    )
    .await;
    submit(
        &app,
        &world.patient_b,
        "phq9",
        phq9([1, 1, 1, 1, 1, 1, 1, 1, 2]),
    )
    .await;
    let token = &world.clinician_a.access;
    let list = |query: String| {
        let app = &app;
        async move {
            app.get(&format!("/v1/alerts?{query}"), token)
                .await
                .expect(StatusCode::OK)
                .body["items"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let all = list(String::new()).await;
    assert!(all.len() >= 2);
    let of_a = list(format!("patient_id={}", world.patient_a.id)).await;
    assert!(!of_a.is_empty());
    assert!(
        of_a.iter()
            .all(|a| a["patient_id"] == world.patient_a.id.as_str())
    );
    let urgent = list("severity=urgent".into()).await;
    assert_eq!(urgent.len(), 1, "{urgent:?}");
    assert_eq!(urgent[0]["patient_id"], world.patient_a.id.as_str());
    assert_eq!(urgent[0]["rule"], "safety_item9");
    let severe = list("rule=phq9_severe&status=open".into()).await;
    assert_eq!(severe.len(), 1, "{severe:?}");
    assert_eq!(severe[0]["patient_id"], world.patient_a2.id.as_str());
    let none = list(format!(
        "severity=urgent&patient_id={}",
        world.patient_a2.id
    ))
    .await;
    assert_eq!(none, Vec::<Value>::new());
    let resolved = list("rule=safety_item9&status=resolved".into()).await;
    assert_eq!(resolved, Vec::<Value>::new());
    // Another clinic's patient is not found, exactly as a patient that does not exist.
    for patient in [world.patient_b.id.clone(), uuid::Uuid::now_v7().to_string()] {
        let other = app
            .get(&format!("/v1/alerts?patient_id={patient}"), token)
            .await;
        assert_error(&other, StatusCode::NOT_FOUND, "not_found");
    }
    // Paging keeps the filter.
    let first = app
        .get(
            &format!("/v1/alerts?limit=1&patient_id={}", world.patient_a.id),
            token,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(first.body["items"].as_array().unwrap().len(), 1);
    for (query, field) in [
        ("severity=dire", "severity"),
        ("rule=gut_feeling", "rule"),
        ("patient_id=nobody", "patient_id"),
        ("status=closed", "status"),
    ] {
        let bad = app.get(&format!("/v1/alerts?{query}"), token).await;
        assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            bad.body["error"]["fields"][field].is_string(),
            "{}",
            bad.text
        );
    }
    assert_error(
        &app.get("/v1/alerts?severity=urgent", &world.patient_a.access)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

async fn roster_search_matches_name_or_external_id_in_any_case(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    app.patch(
        &format!("/v1/patients/{}", world.patient_a.id),
        &world.clinician_a.access,
        json!({"display_name": "Émile Zola"}),
    )
    .await
    .expect(StatusCode::OK);
    app.patch(
        &format!("/v1/patients/{}", world.patient_a2.id),
        &world.clinician_a.access,
        json!({"external_id": "MRN-77"}),
    )
    .await
    .expect(StatusCode::OK);
    let path = format!("/v1/clinics/{}/patients", world.clinic_a);
    let search = |q: &'static str| {
        let (app, path, token) = (&app, path.clone(), world.clinician_a.access.clone());
        async move {
            let reply = app
                .get(&format!("{path}?q={}", urlencode(q)), &token)
                .await
                .expect(StatusCode::OK);
            ids(&reply.body)
        }
    };
    assert_eq!(search("émile").await, vec![world.patient_a.id.clone()]);
    assert_eq!(search("ÉMILE zo").await, vec![world.patient_a.id.clone()]);
    assert_eq!(search("mrn-7").await, vec![world.patient_a2.id.clone()]);
    assert_eq!(search("nobody").await, Vec::<String>::new());
    assert_eq!(
        search("test PERSON").await,
        vec![world.patient_a2.id.clone()]
    );
    let listed = app
        .get(&path, &world.clinician_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
    let bad = app
        .get(&format!("{path}?q="), &world.clinician_a.access)
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(bad.body["error"]["fields"]["q"].is_string());
    assert_error(
        &app.get(&format!("{path}?q=mrn"), &world.clinician_b.access)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
