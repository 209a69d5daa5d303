//! SMART Backend Services through HTTP: a clinic admin registers a system client with its public
//! JWKS; a good RS384 or ES384 assertion gets a short-lived token that reads FHIR within its
//! scopes and its clinic; forged, expired, long-lived, replayed and wrong-audience assertions
//! are refused with RFC 6749 errors.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::TimeDelta;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Actor, Backend, Reply, TestApp, assert_error};

both!(
    a_good_assertion_gets_a_token_that_reads_fhir_within_its_scope_and_clinic,
    forged_expired_replayed_and_wrong_audience_assertions_are_refused,
    only_a_clinic_admin_registers_public_keys_for_their_own_clinic,
);

pub(crate) const TOKEN_URL: &str = "http://localhost/oauth/token";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub(crate) struct Key {
    encoding: EncodingKey,
    alg: Algorithm,
    kid: &'static str,
}

pub(crate) fn rs384() -> Key {
    Key {
        encoding: EncodingKey::from_rsa_pem(&fixture("smart-rs384-key.pem")).unwrap(),
        alg: Algorithm::RS384,
        kid: "rsa-1",
    }
}

pub(crate) fn es384() -> Key {
    Key {
        encoding: EncodingKey::from_ec_pem(&fixture("smart-es384-key.pem")).unwrap(),
        alg: Algorithm::ES384,
        kid: "ec-1",
    }
}

/// Another RSA key claiming the registered key's id.
pub(crate) fn forger() -> Key {
    Key {
        encoding: EncodingKey::from_rsa_pem(&fixture("fcm-test-key.pem")).unwrap(),
        alg: Algorithm::RS384,
        kid: "rsa-1",
    }
}

pub(crate) fn jwks(keys: &[&Key]) -> Value {
    let set = JwkSet {
        keys: keys
            .iter()
            .map(|k| {
                let mut jwk = Jwk::from_encoding_key(&k.encoding, k.alg).unwrap();
                jwk.common.key_id = Some(k.kid.to_owned());
                jwk
            })
            .collect(),
    };
    serde_json::to_value(set).unwrap()
}

pub(crate) async fn register(app: &TestApp, admin: &Actor, clinic: &str, body: Value) -> Reply {
    app.post(
        &format!("/v1/clinics/{clinic}/system-clients"),
        &admin.access,
        body,
    )
    .await
}

pub(crate) fn assertion(
    app: &TestApp,
    key: &Key,
    client: &str,
    aud: &str,
    exp_in: i64,
    jti: &str,
) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.to_owned());
    let exp = (app.app.now() + TimeDelta::seconds(exp_in)).timestamp();
    jsonwebtoken::encode(
        &header,
        &json!({"iss": client, "sub": client, "aud": aud, "exp": exp, "jti": jti}),
        &key.encoding,
    )
    .unwrap()
}

async fn token_request(app: &TestApp, form: &[(&str, &str)]) -> Reply {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/oauth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(serde_urlencoded::to_string(form).unwrap()))
        .unwrap();
    app.send(request).await
}

pub(crate) async fn exchange(app: &TestApp, assertion: &str, scope: &str) -> Reply {
    token_request(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ],
    )
    .await
}

#[track_caller]
fn assert_oauth_error(reply: &Reply, status: StatusCode, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.body["error"], error, "{}", reply.text);
    assert!(reply.body["error_description"].is_string());
    assert!(reply.body.get("access_token").is_none());
}

pub(crate) fn jti() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn a_good_assertion_gets_a_token_that_reads_fhir_within_its_scope_and_clinic(
    backend: Backend,
) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let config = app
        .call(Method::GET, "/.well-known/smart-configuration", None, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(config.body["token_endpoint"], TOKEN_URL);
    assert_eq!(
        config.body["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS384", "ES384"])
    );

    let (ec, rsa) = (es384(), rs384());
    let wide = register(
        &app,
        &world.admin_a,
        &world.clinic_a,
        json!({"name": "EHR bulk reader", "jwks": jwks(&[&ec])}),
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(wide.body["scope"], "system/*.read");
    let wide_id = wide.body["client_id"].as_str().unwrap().to_owned();
    let narrow = register(
        &app,
        &world.admin_a,
        &world.clinic_a,
        json!({"name": "Research feed", "jwks": jwks(&[&rsa]), "scope": "system/Observation.read"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let narrow_id = narrow.body["client_id"].as_str().unwrap().to_owned();

    // ES384, every type.
    let granted = exchange(
        &app,
        &assertion(&app, &ec, &wide_id, TOKEN_URL, 240, &jti()),
        "system/*.read",
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(granted.body["token_type"], "bearer");
    assert_eq!(granted.body["expires_in"], 300);
    assert_eq!(
        granted.headers.get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    let token = granted.body["access_token"].as_str().unwrap().to_owned();
    let patients = app
        .get("/fhir/r4/Patient", &token)
        .await
        .expect(StatusCode::OK);
    assert_eq!(patients.body["entry"].as_array().unwrap().len(), 2);
    assert!(!patients.text.contains(&token));
    let own = app
        .get(&format!("/fhir/r4/Patient/{}", world.patient_a.id), &token)
        .await
        .expect(StatusCode::OK);
    assert_eq!(own.body["id"], world.patient_a.id.as_str());
    // Another clinic's patient does not exist for it.
    let other = app
        .get(&format!("/fhir/r4/Patient/{}", world.patient_b.id), &token)
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(other.body["resourceType"], "OperationOutcome");
    // Its reads are audited under its own name, not the admin who registered it.
    let audited = app
        .count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'fhir.patient.read'")
        .await;
    assert_eq!(audited, 1);
    let by_client: &'static str = Box::leak(
        format!(
            "SELECT COUNT(*) AS n FROM audit_events WHERE action LIKE 'fhir.patient.%' AND actor_client_id = '{wide_id}' AND actor_id IS NULL"
        )
        .into_boxed_str(),
    );
    assert_eq!(app.count(by_client).await, 2);
    // Not a token for the JSON API.
    let me = app.get("/v1/me", &token).await;
    assert_error(&me, StatusCode::UNAUTHORIZED, "invalid_token");

    // RS384, Observations only.
    let granted = exchange(
        &app,
        &assertion(&app, &rsa, &narrow_id, TOKEN_URL, 60, &jti()),
        "system/Observation.read",
    )
    .await
    .expect(StatusCode::OK);
    let token = granted.body["access_token"].as_str().unwrap().to_owned();
    app.get("/fhir/r4/Observation", &token)
        .await
        .expect(StatusCode::OK);
    let refused = app.get("/fhir/r4/Patient", &token).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(refused.body["issue"][0]["code"], "forbidden");
    // A scope wider than the registration is refused.
    let wider = exchange(
        &app,
        &assertion(&app, &rsa, &narrow_id, TOKEN_URL, 60, &jti()),
        "system/*.read",
    )
    .await;
    assert_oauth_error(&wider, StatusCode::BAD_REQUEST, "invalid_scope");

    // Short-lived: five minutes later the token is refused.
    app.clock.advance(TimeDelta::seconds(301));
    let expired = app.get("/fhir/r4/Observation", &token).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.body["issue"][0]["code"], "login");
    assert_eq!(
        expired.headers.get(header::WWW_AUTHENTICATE).unwrap(),
        "Bearer"
    );
}

async fn forged_expired_replayed_and_wrong_audience_assertions_are_refused(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let rsa = rs384();
    let client = register(
        &app,
        &world.admin_a,
        &world.clinic_a,
        json!({"name": "EHR", "jwks": jwks(&[&rsa])}),
    )
    .await
    .expect(StatusCode::CREATED)
    .body["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let scope = "system/*.read";

    let forged = assertion(&app, &forger(), &client, TOKEN_URL, 60, &jti());
    let expired = assertion(&app, &rsa, &client, TOKEN_URL, -10, &jti());
    let too_long = assertion(&app, &rsa, &client, TOKEN_URL, 600, &jti());
    let wrong_audience = assertion(
        &app,
        &rsa,
        &client,
        "https://elsewhere.example/token",
        60,
        &jti(),
    );
    let unknown_client = assertion(
        &app,
        &rsa,
        &uuid::Uuid::now_v7().to_string(),
        TOKEN_URL,
        60,
        &jti(),
    );
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"iss": client, "sub": client, "aud": TOKEN_URL,
                "exp": (app.app.now() + TimeDelta::seconds(60)).timestamp(), "jti": jti()}),
        &EncodingKey::from_secret(b"a shared secret is not a client key"),
    )
    .unwrap();
    for (what, bad) in [
        ("forged signature", &forged),
        ("expired", &expired),
        ("exp beyond five minutes", &too_long),
        ("wrong audience", &wrong_audience),
        ("unknown client", &unknown_client),
        ("symmetric algorithm", &hs256),
    ] {
        let reply = exchange(&app, bad, scope).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            reply.text
        );
        assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    }

    // A jti is good once.
    let once = assertion(&app, &rsa, &client, TOKEN_URL, 60, &jti());
    exchange(&app, &once, scope).await.expect(StatusCode::OK);
    let replayed = exchange(&app, &once, scope).await;
    assert_oauth_error(&replayed, StatusCode::BAD_REQUEST, "invalid_grant");

    // Malformed requests.
    let good = assertion(&app, &rsa, &client, TOKEN_URL, 60, &jti());
    let reply = token_request(
        &app,
        &[("grant_type", "password"), ("client_assertion", &good)],
    )
    .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    let reply = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_assertion", &good),
        ],
    )
    .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    let reply = exchange(&app, &good, "patient/*.read").await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_scope");
    let reply = exchange(&app, "not a jwt", scope).await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    // None of the refusals issued a token.
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM system_tokens").await,
        1
    );
}

async fn only_a_clinic_admin_registers_public_keys_for_their_own_clinic(backend: Backend) {
    let app = TestApp::new(backend).await;
    let world = app.world().await;
    let keys = jwks(&[&rs384()]);
    let body = json!({"name": "EHR", "jwks": keys});
    let reply = register(&app, &world.clinician_a, &world.clinic_a, body.clone()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    let reply = register(&app, &world.admin_b, &world.clinic_a, body.clone()).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    let mut private = keys.clone();
    private["keys"][0]["d"] = json!("AQAB");
    let reply = register(
        &app,
        &world.admin_a,
        &world.clinic_a,
        json!({"name": "EHR", "jwks": private}),
    )
    .await;
    assert_error(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(reply.body["error"]["fields"]["jwks"].is_string());
    let reply = register(
        &app,
        &world.admin_a,
        &world.clinic_a,
        json!({"name": "EHR", "jwks": keys, "scope": "system/*.write"}),
    )
    .await;
    assert_error(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(reply.body["error"]["fields"]["scope"].is_string());
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM system_clients").await,
        0
    );
}
