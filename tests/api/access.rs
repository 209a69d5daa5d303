//! Authorization: roles, clinics and patients only ever see what is theirs.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, TestApp, World, assert_error};

both!(
    every_protected_route_refuses_a_missing_token,
    patients_are_refused_every_staff_route,
    staff_never_see_another_clinic,
    org_admins_read_no_patient_data,
    the_roster_lists_only_the_clinics_patients_with_pagination,
    every_roster_read_is_audited,
    clinics_are_listed_by_role,
);

/// Every staff-only operation: (method, path, body).
fn staff_routes(world: &World) -> Vec<(Method, String, Option<Value>)> {
    let a = &world.clinic_a;
    vec![
        (Method::GET, format!("/v1/clinics/{a}/patients"), None),
        (Method::GET, format!("/v1/clinics/{a}"), None),
        (Method::GET, "/v1/clinics".to_owned(), None),
        (
            Method::POST,
            format!("/v1/clinics/{a}/invitations"),
            Some(json!({"role": "patient"})),
        ),
        (
            Method::POST,
            format!("/v1/accounts/{}/disable", world.patient_a2.id),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/v1/accounts/{}/enable", world.patient_a2.id),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1/clinics".to_owned(),
            Some(json!({"name": "X", "timezone": "UTC"})),
        ),
    ]
}

async fn every_protected_route_refuses_a_missing_token(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let mut routes = staff_routes(&world);
    routes.push((Method::GET, "/v1/me".into(), None));
    routes.push((Method::POST, "/v1/auth/logout".into(), None));
    for (method, path, body) in routes {
        let reply = app.call(method.clone(), &path, None, body).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "missing_token");
    }
}

async fn patients_are_refused_every_staff_route(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    for (method, path, body) in staff_routes(&world) {
        let reply = app
            .call(method.clone(), &path, Some(&world.patient_a.access), body)
            .await;
        assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
    }
    // The patient's own account still works.
    app.get("/v1/me", &world.patient_a.access)
        .await
        .expect(StatusCode::OK);
}

async fn staff_never_see_another_clinic(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let b = &world.clinic_b;
    for staff in [&world.admin_a, &world.clinician_a] {
        for (method, path, body) in [
            (Method::GET, format!("/v1/clinics/{b}/patients"), None),
            (Method::GET, format!("/v1/clinics/{b}"), None),
            (
                Method::POST,
                format!("/v1/clinics/{b}/invitations"),
                Some(json!({"role": "patient"})),
            ),
        ] {
            let reply = app.call(method, &path, Some(&staff.access), body).await;
            assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
        }
    }
    // Another clinic's account is as invisible as one that does not exist.
    let foreign = app
        .post(
            &format!("/v1/accounts/{}/disable", world.patient_b.id),
            &world.admin_a.access,
            json!({}),
        )
        .await;
    let missing = app
        .post(
            &format!("/v1/accounts/{}/disable", uuid::Uuid::now_v7()),
            &world.admin_a.access,
            json!({}),
        )
        .await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(foreign.body, missing.body);
    // And the patient of clinic B is still enabled.
    app.get("/v1/me", &world.patient_b.access)
        .await
        .expect(StatusCode::OK);
}

async fn org_admins_read_no_patient_data(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let reply = app
        .get(
            &format!("/v1/clinics/{}/patients", world.clinic_a),
            &world.org_admin.access,
        )
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "forbidden");
}

async fn the_roster_lists_only_the_clinics_patients_with_pagination(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let path = format!("/v1/clinics/{}/patients", world.clinic_a);
    let all = app
        .get(&path, &world.clinician_a.access)
        .await
        .expect(StatusCode::OK);
    let ids: Vec<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![world.patient_a.id.as_str(), world.patient_a2.id.as_str()]
    );
    assert_eq!(all.body["next_cursor"], Value::Null);
    assert_eq!(all.body["items"][0]["display_name"], "Test Person");
    assert_eq!(all.body["items"][0]["disabled"], false);

    let first = app
        .get(&format!("{path}?limit=1"), &world.admin_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(first.body["items"][0]["id"], world.patient_a.id.as_str());
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("{path}?limit=1&cursor={cursor}"),
            &world.admin_a.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(second.body["items"][0]["id"], world.patient_a2.id.as_str());
    assert_eq!(second.body["next_cursor"], Value::Null);

    for bad in [
        "limit=0",
        "limit=201",
        "limit=ten",
        "cursor=nonsense",
        "colour=red",
    ] {
        let reply = app
            .get(&format!("{path}?{bad}"), &world.admin_a.access)
            .await;
        assert_error(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert_eq!(
            reply.body["error"]["fields"].as_object().unwrap().len(),
            1,
            "{bad}"
        );
    }
}

async fn every_roster_read_is_audited(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let path = format!("/v1/clinics/{}/patients", world.clinic_a);
    let before = app
        .count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'patient_roster.read'")
        .await;
    app.get(&path, &world.clinician_a.access)
        .await
        .expect(StatusCode::OK);
    app.get(&path, &world.admin_a.access)
        .await
        .expect(StatusCode::OK);
    // A refused read leaves no row.
    app.get(&path, &world.clinician_b.access)
        .await
        .expect(StatusCode::NOT_FOUND);
    let after = app
        .count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'patient_roster.read'")
        .await;
    assert_eq!(after - before, 2);
}

async fn clinics_are_listed_by_role(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let all = app
        .get("/v1/clinics", &world.org_admin.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(all.body["items"].as_array().unwrap().len(), 2);
    let own = app
        .get("/v1/clinics", &world.clinician_b.access)
        .await
        .expect(StatusCode::OK);
    let items = own.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], world.clinic_b.as_str());
    app.get(
        &format!("/v1/clinics/{}", world.clinic_b),
        &world.org_admin.access,
    )
    .await
    .expect(StatusCode::OK);
}
