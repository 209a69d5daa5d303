//! Devices and push delivery through a fake FCM server over real HTTP.

use axum::http::{Method, StatusCode};
use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Actor, Backend, TestApp, assert_error};

both!(
    devices_register_idempotently_by_token_and_move_between_accounts,
    a_test_notification_is_delivered_once_with_fixed_text_and_ids_only,
    an_unregistered_token_is_deactivated_at_once,
    repeated_invalid_argument_deactivates_the_device,
    rate_limits_and_server_errors_are_retried_after_their_delay,
    a_hanging_request_times_out_and_is_retried,
    the_app_reports_a_notification_opened,
    invalid_device_input_is_a_422_naming_the_field,
);

async fn register(app: &TestApp, who: &Actor, platform: &str, token: &str) -> String {
    let reply = app
        .post("/v1/devices", &who.access, json!({"platform": platform, "token": token, "app_version": "1.4.2", "locale": "en-US"}))
        .await;
    assert!(
        reply.status == StatusCode::CREATED || reply.status == StatusCode::OK,
        "{}",
        reply.text
    );
    reply.body["id"].as_str().unwrap().to_owned()
}

async fn test_push(app: &TestApp, who: &Actor, device: &str) -> String {
    let reply = app
        .call(
            Method::POST,
            &format!("/v1/devices/{device}/test"),
            Some(&who.access),
            None,
        )
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(reply.body["status"], "pending");
    reply.body["id"].as_str().unwrap().to_owned()
}

async fn status(app: &TestApp, who: &Actor, notification: &str) -> Value {
    app.get(&format!("/v1/notifications/{notification}"), &who.access)
        .await
        .expect(StatusCode::OK)
        .body
}

async fn devices_register_idempotently_by_token_and_move_between_accounts(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let first = app
        .post(
            "/v1/devices",
            &world.patient_a.access,
            json!({"platform": "android", "token": "ok-phone"}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(first.body["active"], true);
    assert!(
        !first.text.contains("ok-phone"),
        "the token is never echoed"
    );
    let again = app
        .post(
            "/v1/devices",
            &world.patient_a.access,
            json!({"platform": "android", "token": "ok-phone", "app_version": "2.0"}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.body["app_version"], "2.0");
    // The phone changes hands: the token moves to the new account.
    let moved = app
        .post(
            "/v1/devices",
            &world.patient_a2.access,
            json!({"platform": "android", "token": "ok-phone"}),
        )
        .await
        .expect(StatusCode::OK);
    let id = moved.body["id"].as_str().unwrap();
    assert_eq!(id, first.body["id"].as_str().unwrap());
    let path = format!("/v1/devices/{id}");
    assert_error(
        &app.call(Method::DELETE, &path, Some(&world.patient_a.access), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &app.call(
            Method::POST,
            &format!("{path}/test"),
            Some(&world.patient_a.access),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(
        app.call(Method::DELETE, &path, Some(&world.patient_a2.access), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let inactive = app
        .call(
            Method::POST,
            &format!("{path}/test"),
            Some(&world.patient_a2.access),
            None,
        )
        .await;
    assert_error(&inactive, StatusCode::CONFLICT, "device_inactive");
    // Registering again reactivates it.
    app.post(
        "/v1/devices",
        &world.patient_a2.access,
        json!({"platform": "android", "token": "ok-phone"}),
    )
    .await
    .expect(StatusCode::OK);
    test_push(&app, &world.patient_a2, id).await;
    // Staff register devices too (they receive alerts).
    register(&app, &world.clinician_a, "ios", "clinician-phone").await;
}

async fn a_test_notification_is_delivered_once_with_fixed_text_and_ids_only(backend: Backend) {
    let (app, fcm) = TestApp::with_fake_fcm(backend, &[]).await;
    let world = app.world().await;
    let android = register(&app, &world.patient_a, "android", "ok-android-1").await;
    let ios = register(&app, &world.patient_a, "ios", "ios-token-1").await;
    let sent = test_push(&app, &world.patient_a, &android).await;
    let sent_ios = test_push(&app, &world.patient_a, &ios).await;
    assert_eq!(app.run_jobs().await, 2);
    assert_eq!(app.run_jobs().await, 0, "nothing left to run");
    let android_status = status(&app, &world.patient_a, &sent).await;
    assert_eq!(android_status["status"], "delivered");
    assert_eq!(android_status["attempts"], 1);
    assert!(android_status["delivered_at"].is_string());
    // No APNs credentials here: nothing was sent to iOS, and the notification says so.
    assert_eq!(
        status(&app, &world.patient_a, &sent_ios).await["status"],
        "failed"
    );
    let received = fcm.received();
    assert_eq!(received.len(), 1, "exactly one message reached FCM");
    let message = &received[0].body["message"];
    assert_eq!(message["token"], "ok-android-1");
    assert_eq!(
        message["notification"],
        json!({"title": "Notifications", "body": "Notifications are working"})
    );
    assert_eq!(
        message["data"],
        json!({"kind": "test", "notification_id": sent})
    );
    // A second push reuses the cached OAuth token.
    test_push(&app, &world.patient_a, &android).await;
    app.run_jobs().await;
    assert_eq!(fcm.delivered().len(), 2);
    assert_eq!(fcm.token_requests(), 1);
    // Someone else cannot read the notification.
    let other = app
        .get(
            &format!("/v1/notifications/{sent}"),
            &world.patient_a2.access,
        )
        .await;
    assert_error(&other, StatusCode::NOT_FOUND, "not_found");
}

async fn an_unregistered_token_is_deactivated_at_once(backend: Backend) {
    let (app, fcm) = TestApp::with_fake_fcm(backend, &[]).await;
    let world = app.world().await;
    let device = register(&app, &world.patient_a, "android", "unregistered-1").await;
    let sent = test_push(&app, &world.patient_a, &device).await;
    app.run_jobs().await;
    assert_eq!(
        status(&app, &world.patient_a, &sent).await["status"],
        "token_dead"
    );
    assert_eq!(fcm.received().len(), 1, "not retried");
    let again = app
        .call(
            Method::POST,
            &format!("/v1/devices/{device}/test"),
            Some(&world.patient_a.access),
            None,
        )
        .await;
    assert_error(&again, StatusCode::CONFLICT, "device_inactive");
}

async fn repeated_invalid_argument_deactivates_the_device(backend: Backend) {
    let (app, fcm) = TestApp::with_fake_fcm(backend, &[]).await;
    let world = app.world().await;
    let device = register(&app, &world.patient_a, "android", "invalid-1").await;
    for round in 1..=3 {
        let sent = test_push(&app, &world.patient_a, &device).await;
        app.run_jobs().await;
        assert_eq!(
            status(&app, &world.patient_a, &sent).await["status"],
            "rejected",
            "round {round}"
        );
    }
    assert_eq!(fcm.received().len(), 3, "a rejected message is not retried");
    let after = app
        .call(
            Method::POST,
            &format!("/v1/devices/{device}/test"),
            Some(&world.patient_a.access),
            None,
        )
        .await;
    assert_error(&after, StatusCode::CONFLICT, "device_inactive");
}

async fn rate_limits_and_server_errors_are_retried_after_their_delay(backend: Backend) {
    let (app, fcm) = TestApp::with_fake_fcm(backend, &[]).await;
    let world = app.world().await;
    let limited = register(&app, &world.patient_a, "android", "ratelimited-1").await;
    let flaky = register(&app, &world.patient_a, "android", "flaky-1").await;
    let limited_push = test_push(&app, &world.patient_a, &limited).await;
    let flaky_push = test_push(&app, &world.patient_a, &flaky).await;
    app.run_jobs().await;
    for id in [&limited_push, &flaky_push] {
        let s = status(&app, &world.patient_a, id).await;
        assert_eq!(
            (s["status"].as_str(), s["attempts"].as_i64()),
            (Some("pending"), Some(1))
        );
    }
    // Nothing is retried before its time.
    assert_eq!(app.run_jobs().await, 0);
    // Retry-After: 1 second for the 429.
    app.clock.advance(TimeDelta::seconds(1));
    app.run_jobs().await;
    let s = status(&app, &world.patient_a, &limited_push).await;
    assert_eq!(
        (s["status"].as_str(), s["attempts"].as_i64()),
        (Some("delivered"), Some(2))
    );
    // The 500 backs off 1 to 2 seconds (base 2 s, jitter down to half).
    app.clock.advance(TimeDelta::seconds(1));
    app.run_jobs().await;
    let s = status(&app, &world.patient_a, &flaky_push).await;
    assert_eq!(
        (s["status"].as_str(), s["attempts"].as_i64()),
        (Some("delivered"), Some(2))
    );
    let statuses: Vec<u16> = fcm.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2);
    assert_eq!(statuses.len(), 4);
}

async fn a_hanging_request_times_out_and_is_retried(backend: Backend) {
    let (app, fcm) = TestApp::with_fake_fcm(backend, &[("COMPANION_PUSH_TIMEOUT", "1")]).await;
    let world = app.world().await;
    let device = register(&app, &world.patient_a, "android", "hang-1").await;
    let sent = test_push(&app, &world.patient_a, &device).await;
    app.run_jobs().await;
    let s = status(&app, &world.patient_a, &sent).await;
    assert_eq!(
        (s["status"].as_str(), s["attempts"].as_i64()),
        (Some("pending"), Some(1))
    );
    app.clock.advance(TimeDelta::seconds(3));
    app.run_jobs().await;
    assert_eq!(
        status(&app, &world.patient_a, &sent).await["status"],
        "delivered"
    );
    assert_eq!(fcm.delivered().len(), 1);
}

async fn the_app_reports_a_notification_opened(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let device = register(&app, &world.patient_a, "android", "ok-open").await;
    let sent = test_push(&app, &world.patient_a, &device).await;
    app.run_jobs().await;
    let path = format!("/v1/notifications/{sent}/opened");
    let opened = app
        .call(Method::POST, &path, Some(&world.patient_a.access), None)
        .await
        .expect(StatusCode::OK);
    let first = opened.body["opened_at"].as_str().unwrap().to_owned();
    app.clock.advance(TimeDelta::minutes(5));
    let again = app
        .call(Method::POST, &path, Some(&world.patient_a.access), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        again.body["opened_at"],
        first.as_str(),
        "the first report counts"
    );
    let foreign = app
        .call(Method::POST, &path, Some(&world.patient_b.access), None)
        .await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "not_found");
}

async fn invalid_device_input_is_a_422_naming_the_field(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    for (body, field) in [
        (json!({"platform": "windows", "token": "x"}), "platform"),
        (json!({"platform": "ios", "token": ""}), "token"),
        (json!({"platform": "ios", "token": "has space"}), "token"),
        (json!({"platform": "ios"}), "token"),
        (
            json!({"platform": "ios", "token": "t", "locale": ""}),
            "locale",
        ),
        (
            json!({"platform": "ios", "token": "t", "app_version": "v".repeat(65)}),
            "app_version",
        ),
    ] {
        let reply = app.post("/v1/devices", &world.patient_a.access, body).await;
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
    let anonymous = app
        .call(
            Method::POST,
            "/v1/devices",
            None,
            Some(json!({"platform": "ios", "token": "t"})),
        )
        .await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "missing_token");
}

/// A lookup of notifications by a list of ids keeps using the primary key after the table has
/// grown, even on a connection that ran it first while the table was nearly empty (where a
/// cached generic plan would keep scanning the whole table). PostgreSQL only: SQLite plans each
/// statement as it prepares it.
#[tokio::test]
async fn a_batched_lookup_by_id_uses_the_index_after_the_table_grows_postgres() {
    use companion::db::DbConnection;
    use companion::push::content::PushMessage;
    use companion::push::store as push_store;
    use diesel::connection::SimpleConnection;
    use diesel::sql_types::BigInt;
    use diesel::{Connection, RunQueryDsl};

    #[derive(diesel::QueryableByName)]
    struct Scans {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    let app = TestApp::new(Backend::Postgres).await;
    let world = app.world().await;
    let device = app
        .post(
            "/v1/devices",
            &world.patient_a.access,
            json!({"platform": "android", "token": "plan-phone"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let device_id = device.body["id"].as_str().unwrap().to_owned();
    let target = app.app.config.database.clone();
    let now = app.app.now().naive_utc();
    tokio::task::spawn_blocking(move || {
        let mut conn = companion::db::establish(&target).unwrap();
        let device = push_store::find_device(&mut conn, &device_id)
            .unwrap()
            .unwrap();
        // As many as a worker looks up at once.
        let ids: Vec<String> = (0..64)
            .map(|_| {
                push_store::notify_device(
                    &mut conn,
                    &device,
                    |id| PushMessage::CheckInPrompt {
                        prompt_id: id.to_owned(),
                    },
                    now,
                )
                .unwrap()
            })
            .collect();
        // Warm up while the table holds 64 rows: past the five runs after which PostgreSQL
        // settles on a generic plan for a prepared statement.
        for _ in 0..10 {
            assert_eq!(push_store::find_notifications(&mut conn, &ids).unwrap().len(), 64);
        }
        conn.batch_execute(
            "INSERT INTO notifications (id, account_id, device_id, kind, ref_id, status, attempts, created_at) \
             SELECT n.id || '-' || g, n.account_id, n.device_id, n.kind, n.ref_id, n.status, \
               n.attempts, n.created_at \
             FROM notifications n, generate_series(1, 300) g",
        )
        .unwrap();
        // This transaction's own scan counts (the lookups' transactions nest in it).
        let scans = |conn: &mut DbConnection| {
            diesel::sql_query(
                "SELECT COALESCE(seq_scan, 0) AS n FROM pg_stat_xact_user_tables \
                 WHERE relname = 'notifications'",
            )
            .get_result::<Scans>(conn)
            .map(|s| s.n)
        };
        let (before, after) = conn
            .transaction::<_, diesel::result::Error, _>(|conn| {
                let before = scans(conn)?;
                for _ in 0..10 {
                    assert_eq!(push_store::find_notifications(conn, &ids)?.len(), 64);
                }
                Ok((before, scans(conn)?))
            })
            .unwrap();
        assert_eq!(
            after, before,
            "each lookup of 64 notifications scanned the whole table"
        );
    })
    .await
    .unwrap();
}
