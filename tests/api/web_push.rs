//! Web Push through the API, against a fake push service that checks each request as a push
//! service and a browser would (VAPID signature with the served key, audience, expiry, subject;
//! the payload decrypted with the subscription's private key): subscriptions are devices of
//! platform `web`, registered idempotently by endpoint and never shown back; prompts reach a
//! patient's browser and alerts a clinician's, PHI-free, with the replacing `Topic` and the right
//! `Urgency`; a subscription the service says is gone is deactivated and never pushed again; a
//! push the service accepted counts as reaching a person on the safety path, and one it failed
//! does not.

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use companion_fake_push::web_push::{FakeWebPush, PushRequest, Subscription};
use serde_json::{Value, json};

use crate::both;
use crate::escalation::{alerts_of, on_call, phq9};
use crate::harness::{Actor, Backend, Reply, TestApp, World, assert_error};

both!(
    web_subscriptions_register_idempotently_by_endpoint_and_never_show_their_secrets,
    invalid_web_subscriptions_are_a_422_naming_the_field,
    a_prompt_reaches_the_patients_browser_encrypted_signed_and_free_of_health_information,
    an_item_nine_alert_reaches_a_clinician_who_has_only_a_browser_and_counts_as_reached,
    a_failing_push_service_counts_for_nothing_until_it_accepts,
    a_gone_subscription_is_deactivated_and_never_pushed_again,
    staff_turn_on_browser_notifications_from_the_console_and_alerts_reach_them,
    without_a_vapid_key_browsers_cannot_subscribe_and_never_count,
    an_endpoint_whose_name_resolves_inside_is_refused_at_delivery,
);

/// Words that would reveal health information on a lock screen or to the push service.
const FORBIDDEN: &[&str] = &[
    "phq",
    "gad",
    "mood",
    "score",
    "depress",
    "anxi",
    "suicid",
    "self-harm",
    "ketamine",
    "dose",
    "clinic",
    "severe",
    "item",
    "risk",
    "crisis",
    "988",
    "answer",
    "q9",
];

/// An app whose outbound policy admits the fake push service on loopback (as an operator's
/// `COMPANION_WEBHOOK_ALLOW` would for an internal host), with the fake trusting the key the
/// server serves.
async fn app_with_push_service(backend: Backend) -> (TestApp, FakeWebPush, World) {
    let fake = FakeWebPush::start().await.unwrap();
    let app = TestApp::with_settings(
        backend,
        &[
            ("COMPANION_WEBHOOK_ALLOW", "127.0.0.1"),
            ("COMPANION_ACCESS_TOKEN_TTL", "86400"),
        ],
    )
    .await;
    let key = app
        .call(Method::GET, "/v1/push/web-push-key", None, None)
        .await
        .expect(StatusCode::OK);
    fake.trust_server_key(key.body["public_key"].as_str().unwrap());
    let world = app.world().await;
    (app, fake, world)
}

fn registration(subscription: &Subscription) -> Value {
    json!({
        "platform": "web",
        "endpoint": subscription.endpoint,
        "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
        "locale": "en-US",
    })
}

/// The browser of `who` subscribes; returns the subscription and the device id.
async fn browser(app: &TestApp, fake: &FakeWebPush, who: &Actor) -> (Subscription, String) {
    let subscription = fake.subscribe();
    let reply = app
        .post("/v1/devices", &who.access, registration(&subscription))
        .await
        .expect(StatusCode::CREATED);
    (subscription, reply.body["id"].as_str().unwrap().to_owned())
}

/// Asserts the request passed every check of the push service and carries no health
/// information; returns its payload.
#[track_caller]
fn clean(request: &PushRequest) -> Value {
    assert!(request.problems.is_empty(), "{:?}", request.problems);
    let text = without_ids(&request.plaintext.as_deref().unwrap().to_lowercase());
    for word in FORBIDDEN {
        assert!(!text.contains(word), "{word} in {text}");
    }
    request.payload.clone().unwrap()
}

/// `text` with every UUID replaced by `<id>`: a random id may hold any digits (a prompt id with
/// `9883` in it is not a crisis line).
fn without_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(ch) = rest.chars().next() {
        match rest.get(..36) {
            Some(window) if uuid::Uuid::try_parse(window).is_ok() => {
                out.push_str("<id>");
                rest = &rest[36..];
            }
            _ => {
                out.push(ch);
                rest = &rest[ch.len_utf8()..];
            }
        }
    }
    out
}

#[test]
fn ids_are_no_health_information_but_the_words_around_them_are() {
    let text = r#"{"prompt_id":"01a2471e-aff6-719d-9883-e45aa69ea42d","body":"call 988"}"#;
    assert_eq!(
        without_ids(text),
        r#"{"prompt_id":"<id>","body":"call 988"}"#
    );
}

fn undashed(id: &str) -> String {
    id.replace('-', "")
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn item9(app: &TestApp, patient: &Actor) -> Reply {
    app.post(
        "/v1/check-ins",
        &patient.access,
        json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "instrument": "phq9",
            "answers": phq9([0, 0, 0, 0, 0, 0, 0, 0, 2]),
            "completed_at": stamp(app.app.now()),
        }),
    )
    .await
    .expect(StatusCode::CREATED)
}

/// The patient's `care_team` as read back later.
async fn care_team(app: &TestApp, patient: &Actor, reply: &Reply) -> String {
    let id = reply.body["id"].as_str().unwrap();
    app.get(&format!("/v1/me/check-ins/{id}"), &patient.access)
        .await
        .expect(StatusCode::OK)
        .body["safety"]["care_team"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn my_devices(app: &TestApp, who: &Actor) -> Reply {
    app.get("/v1/me/devices", &who.access)
        .await
        .expect(StatusCode::OK)
}

async fn web_subscriptions_register_idempotently_by_endpoint_and_never_show_their_secrets(
    backend: Backend,
) {
    let (app, fake, world) = app_with_push_service(backend).await;
    // The key is public: a browser needs it before anyone signs in.
    let key = app
        .call(Method::GET, "/v1/push/web-push-key", None, None)
        .await
        .expect(StatusCode::OK);
    let point = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key.body["public_key"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        (point.len(), point[0]),
        (65, 4),
        "an uncompressed P-256 point"
    );

    let subscription = fake.subscribe();
    let first = app
        .post(
            "/v1/devices",
            &world.patient_a.access,
            registration(&subscription),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(first.body["platform"], "web");
    assert_eq!(first.body["active"], true);
    // The same subscription again (the app re-registers on every start) is the same device.
    let again = app
        .post(
            "/v1/devices",
            &world.patient_a.access,
            registration(&subscription),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(again.body["id"], first.body["id"]);
    // Staff register browsers too.
    browser(&app, &fake, &world.clinician_a).await;
    let listed = my_devices(&app, &world.patient_a).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["items"][0]["platform"], "web");
    for reply in [&first, &again, &listed] {
        for secret in [&subscription.endpoint, &subscription.auth, &subscription.id] {
            assert!(!reply.text.contains(secret.as_str()), "{}", reply.text);
        }
    }
    // A test notification reaches the browser, decrypted as the browser would.
    let device = first.body["id"].as_str().unwrap();
    app.call(
        Method::POST,
        &format!("/v1/devices/{device}/test"),
        Some(&world.patient_a.access),
        None,
    )
    .await
    .expect(StatusCode::ACCEPTED);
    app.run_jobs().await;
    let received = fake.received_by(&subscription);
    assert_eq!(received.len(), 1);
    let payload = clean(&received[0]);
    assert_eq!(payload["body"], "Notifications are working");
    assert_eq!(received[0].claims.as_ref().unwrap()["aud"], fake.origin());
}

async fn invalid_web_subscriptions_are_a_422_naming_the_field(backend: Backend) {
    let (app, fake, world) = app_with_push_service(backend).await;
    let good = fake.subscribe();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut off_curve = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&good.p256dh)
        .unwrap();
    off_curve[64] ^= 1;
    let with = |endpoint: &str, p256dh: &str, auth: &str| json!({"platform": "web", "endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}});
    let (endpoint, p256dh, auth) = (
        good.endpoint.as_str(),
        good.p256dh.as_str(),
        good.auth.as_str(),
    );
    for (body, field) in [
        (with("not a url", p256dh, auth), "endpoint"),
        (with("ftp://push.example.net/x", p256dh, auth), "endpoint"),
        // Loopback names and private networks not on the allow-list, as for webhooks.
        (with("http://localhost:9/push/x", p256dh, auth), "endpoint"),
        (with("https://10.1.2.3/push/x", p256dh, auth), "endpoint"),
        (
            with("https://user:pw@push.example.net/x", p256dh, auth),
            "endpoint",
        ),
        (with(endpoint, &b64(&[4; 33]), auth), "keys.p256dh"),
        (with(endpoint, &b64(&off_curve), auth), "keys.p256dh"),
        (with(endpoint, "not base64!", auth), "keys.p256dh"),
        (with(endpoint, p256dh, &b64(&[1; 15])), "keys.auth"),
        (json!({"platform": "web", "endpoint": endpoint}), "keys"),
        (
            json!({"platform": "web", "endpoint": endpoint, "keys": {"p256dh": p256dh}}),
            "keys.auth",
        ),
        (
            json!({"platform": "web", "keys": {"p256dh": p256dh, "auth": auth}}),
            "endpoint",
        ),
        (json!({"platform": "windows", "token": "x"}), "platform"),
        (json!({"token": "x"}), "platform"),
    ] {
        let reply = app
            .post("/v1/devices", &world.patient_a.access, body.clone())
            .await;
        assert_error(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(
            reply.body["error"]["fields"][field].is_string(),
            "{field} for {body}: {}",
            reply.text
        );
    }
    assert_eq!(
        my_devices(&app, &world.patient_a).await.body["items"],
        json!([])
    );
}

async fn a_prompt_reaches_the_patients_browser_encrypted_signed_and_free_of_health_information(
    backend: Backend,
) {
    let (app, fake, world) = app_with_push_service(backend).await;
    // Friday 6 March 2026, 12:00 in New York.
    app.clock.set("2026-03-06T17:00:00Z".parse().unwrap());
    let patient = app.token(&world.patient_a).await;
    let patient_actor = Actor {
        access: patient.clone(),
        ..world.patient_a.clone()
    };
    let (subscription, _) = browser(&app, &fake, &patient_actor).await;
    app.put(
        &format!("/v1/patients/{}/care-plan", world.patient_a.id),
        &app.token(&world.clinician_a).await,
        json!({"rules": [{"id": "mood", "instrument": "daily_mood", "anchor": {"kind": "daily"}}]}),
    )
    .await
    .expect(StatusCode::OK);
    app.put(
        "/v1/me/preferences",
        &patient,
        json!({"timezone": "America/New_York", "check_in_window": {"start": "09:00", "end": "10:00"}}),
    )
    .await
    .expect(StatusCode::OK);
    // Saturday 09:00 in New York.
    app.clock.set("2026-03-07T14:00:00Z".parse().unwrap());
    app.run_workers().await;
    let received = fake.received_by(&subscription);
    assert_eq!(received.len(), 1, "{received:?}");
    let prompts = app
        .get("/v1/me/prompts", &app.token(&world.patient_a).await)
        .await
        .expect(StatusCode::OK)
        .body;
    let prompt_id = prompts["items"][0]["id"].as_str().unwrap().to_owned();
    let payload = clean(&received[0]);
    assert_eq!(
        payload,
        json!({
            "title": "Check-in",
            "body": "Time for your check-in",
            "kind": "check_in_prompt",
            "prompt_id": prompt_id,
            "url": format!("/app/#/check-in/{prompt_id}"),
        })
    );
    assert_eq!(received[0].urgency.as_deref(), Some("normal"));
    assert_eq!(
        received[0].topic.as_deref(),
        Some(undashed(&prompt_id).as_str())
    );
    assert_eq!(received[0].ttl.as_deref(), Some("14400"));
    let claims = received[0].claims.as_ref().unwrap();
    assert_eq!(claims["aud"], fake.origin());
    assert!(claims["sub"].as_str().unwrap().starts_with("mailto:"));
}

async fn an_item_nine_alert_reaches_a_clinician_who_has_only_a_browser_and_counts_as_reached(
    backend: Backend,
) {
    let (app, fake, world) = app_with_push_service(backend).await;
    on_call(&app, &world.clinician_a).await;
    let (subscription, _) = browser(&app, &fake, &world.clinician_a).await;
    // A browser is a device that can be reached: the clinic is ready before anything happens.
    let ready = app
        .get(
            &format!("/v1/clinics/{}/readiness", world.clinic_a),
            &world.admin_a.access,
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(ready["reachable"], true, "{ready}");
    let reply = item9(&app, &world.patient_a).await;
    assert_eq!(reply.body["safety"]["care_team"], "trying");
    app.run_jobs().await;
    let alert_id = alerts_of(&app, &world.clinician_a).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let received = fake.received_by(&subscription);
    assert_eq!(received.len(), 1, "{received:?}");
    let payload = clean(&received[0]);
    assert_eq!(payload["kind"], "care_alert");
    assert_eq!(payload["alert_id"], alert_id);
    assert_eq!(payload["body"], "A patient alert needs your attention");
    assert_eq!(received[0].urgency.as_deref(), Some("high"));
    assert_eq!(
        received[0].topic.as_deref(),
        Some(undashed(&alert_id).as_str())
    );
    // The push service took it: that counts as reaching a person.
    assert_eq!(care_team(&app, &world.patient_a, &reply).await, "reached");
}

async fn a_failing_push_service_counts_for_nothing_until_it_accepts(backend: Backend) {
    let (app, fake, world) = app_with_push_service(backend).await;
    on_call(&app, &world.clinician_a).await;
    let (subscription, _) = browser(&app, &fake, &world.clinician_a).await;
    fake.answer(&subscription, 500);
    let reply = item9(&app, &world.patient_a).await;
    app.run_jobs().await;
    assert!(!fake.received_by(&subscription).is_empty());
    let now = care_team(&app, &world.patient_a, &reply).await;
    assert!(
        now == "unreachable" || now == "trying",
        "a push the service failed counts for nothing: {now}"
    );
    // The service recovers; the retried push is accepted, which counts.
    fake.answer(&subscription, 201);
    for _ in 0..6 {
        app.clock.advance(TimeDelta::seconds(30));
        app.run_jobs().await;
    }
    assert!(
        fake.received_by(&subscription)
            .iter()
            .any(|r| r.status == 201)
    );
    assert_eq!(care_team(&app, &world.patient_a, &reply).await, "reached");
}

async fn a_gone_subscription_is_deactivated_and_never_pushed_again(backend: Backend) {
    let (app, fake, world) = app_with_push_service(backend).await;
    on_call(&app, &world.clinician_a).await;
    let (subscription, device) = browser(&app, &fake, &world.clinician_a).await;
    // The user turned notifications off in the browser: the service says the subscription is
    // gone.
    fake.answer(&subscription, 410);
    let reply = item9(&app, &world.patient_a).await;
    app.run_jobs().await;
    assert_eq!(fake.received_by(&subscription).len(), 1);
    let listed = my_devices(&app, &world.clinician_a).await;
    assert_eq!(listed.body["items"][0]["id"], device.as_str());
    assert_eq!(listed.body["items"][0]["active"], false, "{}", listed.text);
    let now = care_team(&app, &world.patient_a, &reply).await;
    assert!(now == "unreachable" || now == "trying", "{now}");
    // Nothing more goes to it: not the next alert, not a test.
    let other = item9(&app, &world.patient_a2).await;
    app.run_jobs().await;
    assert_eq!(fake.received_by(&subscription).len(), 1);
    assert_ne!(care_team(&app, &world.patient_a2, &other).await, "reached");
    let test = app
        .call(
            Method::POST,
            &format!("/v1/devices/{device}/test"),
            Some(&world.clinician_a.access),
            None,
        )
        .await;
    assert_error(&test, StatusCode::CONFLICT, "device_inactive");
}

async fn staff_turn_on_browser_notifications_from_the_console_and_alerts_reach_them(
    backend: Backend,
) {
    use crate::console::Browser;
    let (app, fake, world) = app_with_push_service(backend).await;
    on_call(&app, &world.clinician_a).await;
    let key = app
        .call(Method::GET, "/v1/push/web-push-key", None, None)
        .await
        .body["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut console, _) = Browser::signed_in(&app, &world.clinician_a).await;
    let page = console.get("/console/account").await.expect(StatusCode::OK);
    assert!(
        page.text.contains(&format!("data-key=\"{key}\"")),
        "{}",
        page.text
    );
    assert!(page.text.contains("id=\"web-push-enable\""));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let csrf = crate::console::csrf_of(&page.text);
    let worker = console
        .get("/console/push-worker.js")
        .await
        .expect(StatusCode::OK);
    assert!(
        worker.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript"),
        "{:?}",
        worker.headers
    );
    assert!(worker.text.contains("showNotification"));

    // The script posts the subscription as a signed form; without the token it is refused.
    let subscription = fake.subscribe();
    let fields = [
        ("endpoint", subscription.endpoint.as_str()),
        ("p256dh", subscription.p256dh.as_str()),
        ("auth", subscription.auth.as_str()),
    ];
    let forged = console.post("/console/account/web-push", &fields).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let mut signed = vec![("csrf", csrf.as_str())];
    signed.extend_from_slice(&fields);
    console
        .post("/console/account/web-push", &signed)
        .await
        .expect(StatusCode::CREATED);
    let bad = console
        .post(
            "/console/account/web-push",
            &[
                ("csrf", csrf.as_str()),
                ("endpoint", "nope"),
                ("p256dh", "x"),
                ("auth", "y"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let devices = my_devices(&app, &world.clinician_a).await;
    assert_eq!(
        devices.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        devices.text
    );
    assert_eq!(devices.body["items"][0]["platform"], "web");

    // An urgent alert now rings in that browser, and counts.
    let reply = item9(&app, &world.patient_a).await;
    app.run_jobs().await;
    let received = fake.received_by(&subscription);
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(clean(&received[0])["kind"], "care_alert");
    assert_eq!(received[0].urgency.as_deref(), Some("high"));
    assert_eq!(care_team(&app, &world.patient_a, &reply).await, "reached");
}

async fn without_a_vapid_key_browsers_cannot_subscribe_and_never_count(backend: Backend) {
    // Production with push accepted as not configured: no development key is made.
    let app = TestApp::with_settings(
        backend,
        &[
            ("COMPANION_ENV", "production"),
            ("COMPANION_PUBLIC_URL", "https://companion.example.org"),
            ("COMPANION_ACCEPT_PUSH_NOT_CONFIGURED", "true"),
            ("COMPANION_ACCESS_TOKEN_TTL", "86400"),
        ],
    )
    .await;
    let key = app
        .call(Method::GET, "/v1/push/web-push-key", None, None)
        .await;
    assert_error(&key, StatusCode::NOT_FOUND, "web_push_not_configured");
    let world = app.world().await;
    on_call(&app, &world.clinician_a).await;
    let fake = FakeWebPush::start().await.unwrap();
    let subscription = fake.subscribe();
    // Production takes https endpoints only.
    let plain = app
        .post(
            "/v1/devices",
            &world.clinician_a.access,
            registration(&subscription),
        )
        .await;
    assert_error(
        &plain,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(plain.body["error"]["fields"]["endpoint"].is_string());
    let mut body = registration(&subscription);
    body["endpoint"] = json!("https://push.example.net/send/abc");
    app.post("/v1/devices", &world.clinician_a.access, body)
        .await
        .expect(StatusCode::CREATED);
    let ready = app
        .get(
            &format!("/v1/clinics/{}/readiness", world.clinic_a),
            &world.admin_a.access,
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(ready["reachable"], false, "{ready}");
    let push = ready["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "push_not_configured")
        .unwrap();
    assert!(
        push["message"]
            .as_str()
            .unwrap()
            .contains("browsers (Web Push)"),
        "{push}"
    );
    assert_eq!(push["account_ids"], json!([world.clinician_a.id]), "{push}");
    let reply = item9(&app, &world.patient_a).await;
    app.run_jobs().await;
    assert_eq!(
        care_team(&app, &world.patient_a, &reply).await,
        "unreachable"
    );
    assert!(fake.received().is_empty());
}

/// Answers every name with one address (as a hostile DNS server would).
#[derive(Debug)]
struct Rebinding(std::net::IpAddr);

#[async_trait::async_trait]
impl companion::http::outbound::Resolver for Rebinding {
    async fn lookup(&self, _host: &str, port: u16) -> std::io::Result<Vec<std::net::SocketAddr>> {
        Ok(vec![std::net::SocketAddr::new(self.0, port)])
    }
}

async fn an_endpoint_whose_name_resolves_inside_is_refused_at_delivery(backend: Backend) {
    use companion::push::web_push::{VapidKey, WebPushGateway};
    // Endpoints come from users: a public-looking name that resolves to this machine is refused
    // when the push is sent, as a webhook's would be, and nothing reaches the address.
    let fake = FakeWebPush::start().await.unwrap();
    let app = TestApp::build(backend, &[("COMPANION_ACCESS_TOKEN_TTL", "86400")], |a| {
        let outbound = companion::http::outbound::Outbound {
            resolver: std::sync::Arc::new(Rebinding("127.0.0.1".parse().unwrap())),
            ..a.outbound.clone()
        };
        a.outbound = outbound.clone();
        a.push.web = std::sync::Arc::new(WebPushGateway::new(
            VapidKey::generate(),
            "mailto:ops@example.org".into(),
            outbound,
        ));
    })
    .await;
    let world = app.world().await;
    on_call(&app, &world.clinician_a).await;
    let subscription = fake.subscribe();
    let mut body = registration(&subscription);
    body["endpoint"] = json!(format!(
        "http://push.rebound.example:{}/push/{}",
        fake.addr.port(),
        subscription.id
    ));
    app.post("/v1/devices", &world.clinician_a.access, body)
        .await
        .expect(StatusCode::CREATED);
    let reply = item9(&app, &world.patient_a).await;
    app.run_jobs().await;
    assert!(fake.received().is_empty(), "{:?}", fake.received());
    assert!(
        app.count(
            "SELECT COUNT(*) AS n FROM notification_attempts \
             WHERE provider_reason LIKE '%127.0.0.1 is loopback%'"
        )
        .await
            >= 1
    );
    assert_ne!(care_team(&app, &world.patient_a, &reply).await, "reached");
}
