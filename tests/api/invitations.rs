//! Invitations: single use, expiring, role and clinic fixed by the invitation.

use axum::http::StatusCode;
use chrono::TimeDelta;
use serde_json::json;

use crate::both;
use crate::harness::{Backend, PASSWORD, TestApp, assert_error};

both!(
    an_accepted_invitation_fixes_role_and_clinic,
    an_invitation_code_works_once,
    an_invitation_expires,
    an_invitation_bound_to_an_email_refuses_any_other,
    accepting_names_every_invalid_field,
    clinicians_invite_patients_only_and_patients_invite_nobody,
    an_email_can_hold_only_one_account,
    codes_are_forgiving_of_case_and_separators,
    invitation_acceptance_is_rate_limited,
    unknown_clinics_and_bad_roles_are_refused,
);

async fn an_accepted_invitation_fixes_role_and_clinic(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let code = app
        .invite(&world.admin_a, &world.clinic_a, "clinician")
        .await;
    let reply = app
        .post_anonymous(
            "/v1/invitations/accept",
            json!({"code": code, "email": "new@example.org", "password": PASSWORD,
                   "display_name": "  Dr New  ", "timezone": "Europe/London"}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(reply.body["token_type"], "Bearer");
    let me = app
        .get("/v1/me", reply.body["access_token"].as_str().unwrap())
        .await
        .expect(StatusCode::OK);
    assert_eq!(me.body["role"], "clinician");
    assert_eq!(me.body["clinic_id"], world.clinic_a.as_str());
    assert_eq!(me.body["display_name"], "Dr New");
    assert_eq!(me.body["timezone"], "Europe/London");
    // Without a time zone the clinic's is used.
    let code = app
        .invite(&world.clinician_a, &world.clinic_a, "patient")
        .await;
    let reply = app
        .accept(&code, "p@example.org")
        .await
        .expect(StatusCode::CREATED);
    let me = app
        .get("/v1/me", reply.body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.body["timezone"], "America/Chicago");
    assert_eq!(me.body["role"], "patient");
}

async fn an_invitation_code_works_once(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let code = app
        .invite(&world.clinician_a, &world.clinic_a, "patient")
        .await;
    app.accept(&code, "first@example.org")
        .await
        .expect(StatusCode::CREATED);
    let second = app.accept(&code, "second@example.org").await;
    assert_error(&second, StatusCode::CONFLICT, "invitation_used");
    assert_eq!(
        app.login("second@example.org", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn an_invitation_expires(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let reply = app
        .post(
            &format!("/v1/clinics/{}/invitations", world.clinic_a),
            &world.admin_a.access,
            json!({"role": "patient", "expires_in_hours": 2}),
        )
        .await
        .expect(StatusCode::CREATED);
    let code = reply.body["code"].as_str().unwrap().to_owned();
    let expires_at: chrono::DateTime<chrono::Utc> =
        reply.body["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires_at, app.app.now() + TimeDelta::hours(2));
    // The default lifetime is seven days.
    let week = app.invite(&world.admin_a, &world.clinic_a, "patient").await;
    app.clock.advance(TimeDelta::hours(2));
    let late = app.accept(&code, "late@example.org").await;
    assert_error(&late, StatusCode::CONFLICT, "invitation_expired");
    app.clock
        .advance(TimeDelta::days(7) - TimeDelta::hours(2) - TimeDelta::seconds(1));
    app.accept(&week, "in-time@example.org")
        .await
        .expect(StatusCode::CREATED);
}

async fn an_invitation_bound_to_an_email_refuses_any_other(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let reply = app
        .post(
            &format!("/v1/clinics/{}/invitations", world.clinic_a),
            &world.admin_a.access,
            json!({"role": "patient", "email": "Only@Example.org"}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(reply.body["email"], "only@example.org");
    let code = reply.body["code"].as_str().unwrap().to_owned();
    let wrong = app.accept(&code, "other@example.org").await;
    assert_error(
        &wrong,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(wrong.body["error"]["fields"]["email"].is_string());
    // The refusal did not spend the invitation.
    app.accept(&code, "only@example.org")
        .await
        .expect(StatusCode::CREATED);
}

async fn accepting_names_every_invalid_field(backend: Backend) {
    let app = TestApp::new(backend).await;
    let reply = app
        .post_anonymous(
            "/v1/invitations/accept",
            json!({"code": "short", "email": "not-an-email", "password": "short",
                   "display_name": "", "timezone": "Mars/Base"}),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let fields = reply.body["error"]["fields"].as_object().unwrap();
    let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        ["code", "display_name", "email", "password", "timezone"]
    );
    let unknown = app.accept("ZZZZZ-ZZZZZ", "x@example.org").await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "invitation_not_found");
    let missing = app
        .post_anonymous("/v1/invitations/accept", json!({"code": "ZZZZZ-ZZZZZ"}))
        .await;
    assert_error(
        &missing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(
        missing.body["error"]["fields"]["email"].is_string(),
        "{}",
        missing.text
    );
}

async fn clinicians_invite_patients_only_and_patients_invite_nobody(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let path = format!("/v1/clinics/{}/invitations", world.clinic_a);
    for role in ["clinician", "clinic_admin"] {
        let reply = app
            .post(&path, &world.clinician_a.access, json!({"role": role}))
            .await;
        assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
    }
    let reply = app
        .post(&path, &world.patient_a.access, json!({"role": "patient"}))
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
    let reply = app
        .post(&path, &world.admin_a.access, json!({"role": "org_admin"}))
        .await;
    assert_error(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let reply = app
        .post(&path, &world.admin_a.access, json!({"role": "superuser"}))
        .await;
    assert_error(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(
        reply.body["error"]["fields"]["role"].is_string(),
        "{}",
        reply.text
    );
}

async fn an_email_can_hold_only_one_account(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let code = app.invite(&world.admin_b, &world.clinic_b, "patient").await;
    let reply = app
        .accept(&code, &world.patient_a.email.to_uppercase())
        .await;
    assert_error(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    // The failed attempt did not spend the code.
    app.accept(&code, "fresh@example.org")
        .await
        .expect(StatusCode::CREATED);
}

async fn codes_are_forgiving_of_case_and_separators(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let code = app.invite(&world.admin_a, &world.clinic_a, "patient").await;
    let typed = format!(" {} ", code.to_lowercase().replace('-', " "));
    app.accept(&typed, "typed@example.org")
        .await
        .expect(StatusCode::CREATED);
}

async fn invitation_acceptance_is_rate_limited(backend: Backend) {
    let app = TestApp::with_settings(backend, &[("COMPANION_AUTH_RATE_LIMIT", "2")]).await;
    for _ in 0..2 {
        app.accept("ZZZZZ-ZZZZZ", "x@example.org")
            .await
            .expect(StatusCode::NOT_FOUND);
    }
    let limited = app.accept("ZZZZZ-ZZZZZ", "x@example.org").await;
    assert_error(&limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
}

async fn unknown_clinics_and_bad_roles_are_refused(backend: Backend) {
    let app = TestApp::new(backend).await;
    let admin = app.org_admin().await;
    let reply = app
        .post(
            &format!("/v1/clinics/{}/invitations", uuid::Uuid::now_v7()),
            &admin.access,
            json!({"role": "clinic_admin"}),
        )
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    let reply = app
        .post(
            "/v1/clinics/not-an-id/invitations",
            &admin.access,
            json!({"role": "clinic_admin"}),
        )
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
}
