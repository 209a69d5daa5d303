//! What authenticating a request costs: access-token verification for the algorithm in use
//! (HS256) beside the asymmetric alternatives (EdDSA, ES256), and a whole authenticated request
//! (`GET /v1/me`: verify, session lookup, handler) served in-process on SQLite.
//!
//! Run with `cargo bench -p companion-server --bench token_verification`. Prints figures; asserts
//! nothing about speed.
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark: any failure should stop it loudly"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use chrono::Utc;
use companion::app::{App, AppState};
use companion::auth::tokens::TokenKeys;
use companion::clock::SystemClock;
use companion::config::{Config, Secret, SigningKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use tower::ServiceExt;

// Throwaway keys made for this benchmark only.
const ED25519_PKCS8: &str = "MC4CAQAwBQYDK2VwBCIEINImXAX/dwOlhF1/ZSQNjU63GyG4O5fNU56S/CZ/aqIP";
const ED25519_X: &str = "JkIaqBn6qdsf7gnst3_EROEhxzesf6rBLxw4nR-GcYk";
const P256_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyUBO3WYTYK1MjvkMadsdL4tJDXCuM9W6FIQrgTa/SAKhRANCAARi9XN4wvI25vPXaVaxGq3QQABgJ7qqJfnvShPJhfbxmsc0O2++EDlcK+x4sw9MmpBLko5bP1CvxrqNZiNAFxQt";

fn per_op(label: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let started = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let elapsed = started.elapsed();
    println!(
        "{label:<48} {:>10.2} µs/op  ({iterations} ops in {:.2?})",
        elapsed.as_secs_f64() * 1e6 / f64::from(iterations),
        elapsed
    );
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    sid: String,
    iat: i64,
    exp: i64,
}

fn library_verify(label: &str, alg: Algorithm, encoding: EncodingKey, decoding: DecodingKey) {
    let now = Utc::now().timestamp();
    let claims = Claims {
        iss: "companion".into(),
        aud: "companion-api".into(),
        sub: uuid::Uuid::now_v7().to_string(),
        sid: uuid::Uuid::now_v7().to_string(),
        iat: now,
        exp: now + 900,
    };
    let token = jsonwebtoken::encode(&Header::new(alg), &claims, &encoding).unwrap();
    let mut validation = Validation::new(alg);
    validation.set_issuer(&["companion"]);
    validation.set_audience(&["companion-api"]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    per_op(label, 5_000, || {
        jsonwebtoken::decode::<Claims>(&token, &decoding, &validation).unwrap();
    });
}

fn main() {
    let b64 = base64::engine::general_purpose::STANDARD;
    println!("access-token verification (one core, release build)");

    let secret = vec![7u8; 32];
    let keys = TokenKeys::new(
        &[SigningKey {
            id: "k1".into(),
            secret: Secret::new(secret.clone()),
        }],
        "companion",
        "companion-api",
    )
    .unwrap();
    let token = keys
        .issue(
            &uuid::Uuid::now_v7().to_string(),
            &uuid::Uuid::now_v7().to_string(),
            "patient",
            Utc::now(),
            900,
        )
        .unwrap();
    per_op(
        "HS256, TokenKeys::verify (what requests run)",
        50_000,
        || {
            keys.verify(&token, Utc::now()).unwrap();
        },
    );
    library_verify(
        "HS256, jsonwebtoken::decode",
        Algorithm::HS256,
        EncodingKey::from_secret(&secret),
        DecodingKey::from_secret(&secret),
    );
    library_verify(
        "EdDSA (Ed25519), jsonwebtoken::decode",
        Algorithm::EdDSA,
        EncodingKey::from_ed_der(&b64.decode(ED25519_PKCS8).unwrap()),
        DecodingKey::from_ed_components(ED25519_X).unwrap(),
    );
    let p256 = b64.decode(P256_PKCS8).unwrap();
    let point = &p256[p256.len() - 64..];
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    library_verify(
        "ES256 (P-256), jsonwebtoken::decode",
        Algorithm::ES256,
        EncodingKey::from_ec_der(&p256),
        DecodingKey::from_ec_components(&url.encode(&point[..32]), &url.encode(&point[32..]))
            .unwrap(),
    );

    whole_request();
}

/// `GET /v1/me` end to end in-process on SQLite: token check, session lookup, account read.
fn whole_request() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::from_source(&BTreeMap::from([
            (
                "DATABASE_URL".to_owned(),
                format!("sqlite://{}", dir.path().join("bench.db").display()),
            ),
            ("COMPANION_DATA_DIR".to_owned(), dir.path().display().to_string()),
            (
                "COMPANION_JWT_KEYS".to_owned(),
                format!("k1={}", base64::engine::general_purpose::STANDARD.encode([9u8; 32])),
            ),
            ("COMPANION_AUTH_RATE_LIMIT".to_owned(), "100000".to_owned()),
        ]))
        .unwrap();
        let app = Arc::new(App::new(config, Arc::new(SystemClock)).unwrap());
        app.db.migrate().await.unwrap();
        companion::account::use_cases::create_org_admin(&app.db, "b@example.org", "bench password 123", app.now())
            .await
            .unwrap();
        let router = companion::router::router(AppState(app));
        let login = router
            .clone()
            .oneshot(
                Request::post("/v1/auth/login")
                    .header("content-type", "application/json")
                    .body(Body::from(r#"{"email":"b@example.org","password":"bench password 123"}"#))
                    .unwrap(),
            )
            .await
            .unwrap();
        let bytes = axum::body::to_bytes(login.into_body(), 1 << 20).await.unwrap();
        let tokens: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
        let iterations = 5_000u32;
        let mut latencies = Vec::with_capacity(iterations as usize);
        let started = Instant::now();
        for _ in 0..iterations {
            let t = Instant::now();
            let response = router
                .clone()
                .oneshot(
                    Request::get("/v1/me")
                        .header("authorization", &bearer)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert!(response.status().is_success());
            latencies.push(t.elapsed());
        }
        let total = started.elapsed();
        latencies.sort();
        let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "GET /v1/me in-process, SQLite, sequential       {:>10.2} µs/op  (p50 {:.0} µs, p99 {:.0} µs, {} ops in {:.2?})",
            us(total) / f64::from(iterations),
            us(pct(0.50)),
            us(pct(0.99)),
            iterations,
            total
        );
    });
}
