//! Sign-in, token rotation, reuse detection, logout, disabling, and forged tokens.

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use chrono::TimeDelta;
use serde_json::json;

use crate::both;
use crate::harness::{Backend, PASSWORD, TEST_KEY_B64, TEST_KID, TestApp, assert_error};

both!(
    login_returns_a_bearer_token_pair_that_opens_me,
    wrong_password_and_unknown_email_get_the_same_401,
    refresh_rotates_the_pair_and_spends_the_old_refresh_token,
    presenting_a_spent_refresh_token_revokes_the_whole_family,
    logout_ends_refresh_and_access_tokens_at_once,
    disabling_an_account_invalidates_its_tokens_at_once,
    access_tokens_expire_by_the_application_clock,
    refresh_tokens_expire_by_the_application_clock,
    forged_and_broken_tokens_all_answer_401,
    login_is_rate_limited_with_retry_after,
    emails_are_matched_case_insensitively,
);

async fn login_returns_a_bearer_token_pair_that_opens_me(backend: Backend) {
    let app = TestApp::new(backend).await;
    let admin = app.org_admin().await;
    let reply = app
        .login(&admin.email, PASSWORD)
        .await
        .expect(StatusCode::OK);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 900);
    assert!(reply.body["refresh_token"].as_str().unwrap().len() >= 43);
    let me = app
        .get("/v1/me", reply.body["access_token"].as_str().unwrap())
        .await
        .expect(StatusCode::OK);
    assert_eq!(me.body["id"], admin.id.as_str());
    assert_eq!(me.body["role"], "org_admin");
    assert_eq!(me.body["clinic_id"], serde_json::Value::Null);
    assert_eq!(me.body["email"], admin.email.as_str());
    assert!(me.body.get("password_hash").is_none());
}

async fn wrong_password_and_unknown_email_get_the_same_401(backend: Backend) {
    let app = TestApp::new(backend).await;
    let admin = app.org_admin().await;
    let wrong = app.login(&admin.email, "not the password at all").await;
    let unknown = app.login("nobody@example.org", PASSWORD).await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_error(&unknown, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(wrong.body, unknown.body);
}

async fn refresh_rotates_the_pair_and_spends_the_old_refresh_token(backend: Backend) {
    let app = TestApp::new(backend).await;
    let admin = app.org_admin().await;
    let first = app
        .post_anonymous("/v1/auth/refresh", json!({"refresh_token": admin.refresh}))
        .await
        .expect(StatusCode::OK);
    let new_refresh = first.body["refresh_token"].as_str().unwrap();
    assert_ne!(new_refresh, admin.refresh);
    app.get("/v1/me", first.body["access_token"].as_str().unwrap())
        .await
        .expect(StatusCode::OK);
    let second = app
        .post_anonymous("/v1/auth/refresh", json!({"refresh_token": new_refresh}))
        .await
        .expect(StatusCode::OK);
    assert_ne!(second.body["refresh_token"], first.body["refresh_token"]);
    let unknown = app
        .post_anonymous("/v1/auth/refresh", json!({"refresh_token": "never-issued"}))
        .await;
    assert_error(&unknown, StatusCode::UNAUTHORIZED, "invalid_refresh_token");
}

async fn presenting_a_spent_refresh_token_revokes_the_whole_family(backend: Backend) {
    let app = TestApp::new(backend).await;
    let admin = app.org_admin().await;
    // The legitimate client rotates once; an attacker then replays the stolen original.
    let rotated = app
        .post_anonymous("/v1/auth/refresh", json!({"refresh_token": admin.refresh}))
        .await
        .expect(StatusCode::OK);
    let replay = app
        .post_anonymous("/v1/auth/refresh", json!({"refresh_token": admin.refresh}))
        .await;
    assert_error(&replay, StatusCode::UNAUTHORIZED, "refresh_token_reused");
    // Every token of the family is now dead: the newest refresh token and the access tokens.
    let newest = app
        .post_anonymous(
            "/v1/auth/refresh",
            json!({"refresh_token": rotated.body["refresh_token"]}),
        )
        .await;
    assert_error(&newest, StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    let me = app
        .get("/v1/me", rotated.body["access_token"].as_str().unwrap())
        .await;
    assert_error(&me, StatusCode::UNAUTHORIZED, "session_revoked");
    // Other sessions of the same account are untouched.
    let other = app
        .login(&admin.email, PASSWORD)
        .await
        .expect(StatusCode::OK);
    app.get("/v1/me", other.body["access_token"].as_str().unwrap())
        .await
        .expect(StatusCode::OK);
}

async fn logout_ends_refresh_and_access_tokens_at_once(backend: Backend) {
    let app = TestApp::new(backend).await;
    let admin = app.org_admin().await;
    let reply = app
        .call(Method::POST, "/v1/auth/logout", Some(&admin.access), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_error(
        &app.get("/v1/me", &admin.access).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    );
    let refresh = app
        .post_anonymous("/v1/auth/refresh", json!({"refresh_token": admin.refresh}))
        .await;
    assert_error(&refresh, StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    let again = app.call(Method::POST, "/v1/auth/logout", None, None).await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "missing_token");
}

async fn disabling_an_account_invalidates_its_tokens_at_once(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let patient = &world.patient_a;
    let path = format!("/v1/accounts/{}/disable", patient.id);
    let reply = app
        .post(&path, &world.admin_a.access, json!({}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(reply.body["disabled"], true);
    assert_error(
        &app.get("/v1/me", &patient.access).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    );
    let refresh = app
        .post_anonymous(
            "/v1/auth/refresh",
            json!({"refresh_token": patient.refresh}),
        )
        .await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    let login = app.login(&patient.email, PASSWORD).await;
    assert_error(&login, StatusCode::FORBIDDEN, "account_disabled");
    // A clinic admin of another clinic cannot see the account at all.
    let other = app
        .post(
            &format!("/v1/accounts/{}/enable", patient.id),
            &world.admin_b.access,
            json!({}),
        )
        .await;
    assert_error(&other, StatusCode::NOT_FOUND, "not_found");
    app.post(
        &format!("/v1/accounts/{}/enable", patient.id),
        &world.admin_a.access,
        json!({}),
    )
    .await
    .expect(StatusCode::OK);
    app.login(&patient.email, PASSWORD)
        .await
        .expect(StatusCode::OK);
    let own = app
        .post(
            &format!("/v1/accounts/{}/disable", world.admin_a.id),
            &world.admin_a.access,
            json!({}),
        )
        .await;
    assert_error(&own, StatusCode::CONFLICT, "cannot_change_self");
}

async fn access_tokens_expire_by_the_application_clock(backend: Backend) {
    let app = TestApp::new(backend).await;
    let admin = app.org_admin().await;
    app.clock.advance(TimeDelta::seconds(890));
    app.get("/v1/me", &admin.access)
        .await
        .expect(StatusCode::OK);
    app.clock.advance(TimeDelta::seconds(60));
    assert_error(
        &app.get("/v1/me", &admin.access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    // The refresh token still works and yields a valid access token.
    let fresh = app
        .post_anonymous("/v1/auth/refresh", json!({"refresh_token": admin.refresh}))
        .await
        .expect(StatusCode::OK);
    app.get("/v1/me", fresh.body["access_token"].as_str().unwrap())
        .await
        .expect(StatusCode::OK);
}

async fn refresh_tokens_expire_by_the_application_clock(backend: Backend) {
    let app = TestApp::new(backend).await;
    let admin = app.org_admin().await;
    app.clock.advance(TimeDelta::days(31));
    let reply = app
        .post_anonymous("/v1/auth/refresh", json!({"refresh_token": admin.refresh}))
        .await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "invalid_refresh_token");
}

fn b64(value: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

fn sign(header: &serde_json::Value, claims: &serde_json::Value, key: &[u8]) -> String {
    use hmac::Mac;
    let message = format!("{}.{}", b64(header), b64(claims));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(message.as_bytes());
    let signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{message}.{signature}")
}

async fn forged_and_broken_tokens_all_answer_401(backend: Backend) {
    let app = TestApp::new(backend).await;
    let admin = app.org_admin().await;
    let key = base64::engine::general_purpose::STANDARD
        .decode(TEST_KEY_B64)
        .unwrap();
    let now = app.app.now().timestamp();
    let me: serde_json::Value = app.get("/v1/me", &admin.access).await.body;
    // The real session id, so that only the property under test is wrong.
    let parts: Vec<&str> = admin.access.split('.').collect();
    let real_claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    let sid = real_claims["sid"].clone();
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": TEST_KID});
    let claims = json!({
        "iss": "companion", "aud": "companion-api", "sub": me["id"], "sid": sid,
        "iat": now, "exp": now + 600,
    });
    // Sanity: a token built this way with the right key is accepted.
    let good = sign(&header, &claims, &key);
    app.get("/v1/me", &good).await.expect(StatusCode::OK);

    let with = |field: &str, value: serde_json::Value| {
        let mut c = claims.clone();
        c[field] = value;
        c
    };
    let mut without_exp = claims.clone();
    without_exp.as_object_mut().unwrap().remove("exp");
    let mut tampered_parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    tampered_parts[1] = b64(&with("sub", json!(uuid::Uuid::now_v7().to_string())));
    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT", "kid": TEST_KID})),
                b64(&claims)
            ),
        ),
        (
            "wrong key",
            sign(&header, &claims, b"another key that is long enough!!"),
        ),
        (
            "expired",
            sign(&header, &with("exp", json!(now - 120)), &key),
        ),
        ("missing exp", sign(&header, &without_exp, &key)),
        (
            "wrong audience",
            sign(&header, &with("aud", json!("another-api")), &key),
        ),
        (
            "wrong issuer",
            sign(&header, &with("iss", json!("someone-else")), &key),
        ),
        ("tampered payload", tampered_parts.join(".")),
        (
            "unknown kid",
            sign(&json!({"alg": "HS256", "kid": "nope"}), &claims, &key),
        ),
        ("no kid", sign(&json!({"alg": "HS256"}), &claims, &key)),
        (
            "HS512",
            sign(&json!({"alg": "HS512", "kid": TEST_KID}), &claims, &key),
        ),
        (
            "unknown session",
            sign(
                &header,
                &with("sid", json!(uuid::Uuid::now_v7().to_string())),
                &key,
            ),
        ),
        ("garbage", "not.a.token".to_owned()),
        ("empty", String::new()),
    ];
    for (name, token) in cases {
        let reply = app.get("/v1/me", &token).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{name}: {}",
            reply.text
        );
        assert!(
            matches!(reply.code(), "invalid_token" | "missing_token"),
            "{name}: {}",
            reply.text
        );
        assert_error(&reply, StatusCode::UNAUTHORIZED, reply.code());
    }
    // Other schemes and a missing header.
    let basic = app
        .send(
            axum::http::Request::get("/v1/me")
                .header("authorization", format!("Basic {}", admin.access))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_error(&basic, StatusCode::UNAUTHORIZED, "missing_token");
    let none = app.call(Method::GET, "/v1/me", None, None).await;
    assert_error(&none, StatusCode::UNAUTHORIZED, "missing_token");
}

async fn login_is_rate_limited_with_retry_after(backend: Backend) {
    let app = TestApp::with_settings(backend, &[("COMPANION_AUTH_RATE_LIMIT", "3")]).await;
    let admin = app.org_admin().await; // one login
    for _ in 0..2 {
        app.login(&admin.email, "wrong password here")
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }
    let limited = app.login(&admin.email, PASSWORD).await;
    assert_error(&limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    app.clock.advance(TimeDelta::seconds(retry_after as i64));
    app.login(&admin.email, PASSWORD)
        .await
        .expect(StatusCode::OK);
}

async fn emails_are_matched_case_insensitively(backend: Backend) {
    let app = TestApp::new(backend).await;
    let admin = app.org_admin().await;
    app.login(&admin.email.to_uppercase(), PASSWORD)
        .await
        .expect(StatusCode::OK);
}
