//! The safety simulator: random clinics (staff with and without devices, on call or not, with
//! working hours or around the clock, push configured or not, webhooks healthy, failing or
//! absent, email or not, some addresses refused), random clocks (a weekday, a night, a weekend,
//! the two daylight-saving days of America/Chicago) and random signals (item 9, dangerous blood
//! pressure, a GAD-7 rise), acknowledgements, resolves and waits, through the API, with the
//! workers run to quiescence after every step. After every step it checks the invariants of
//! CLINICAL.md, part 2:
//!
//! 1. An alert counted as reached has an outcome that counts behind it: a push the gateway
//!    accepted for it, a webhook answered 2xx about it, or an email the SMTP server accepted for
//!    a member of its clinic; or a person acted on it.
//! 2. An open urgent or high alert is, once the workers are done, either reached or unreachable,
//!    and an unreachable one has told the organisation's admins where they can be told.
//! 3. No device receives one alert's push twice for one step (accepted pushes per device and
//!    alert never exceed the steps that told that device's tier or assignee), and no notification
//!    is accepted twice.
//! 4. The patient's words match `care_team`, and `reached` is never said before something
//!    counted, in the answer and when read again.
//!
//! Both backends; `COMPANION_TEST_SIMULATOR_CASES` sets the number of worlds per backend (default 4;
//! try 200 for a long run).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use companion::push::content::PushMessage;
use companion::push::gateway::{Attempt, Outcome, PushGateway, Target};
use companion_fake_push::smtp::SmtpSink;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::both;
use crate::escalation::phq9;
use crate::harness::{Actor, Backend, PASSWORD, TestApp};

both!(every_safety_signal_reaches_a_person_or_is_unreachable_and_nobody_is_told_otherwise);

/// A push service that accepts every token but those starting `dead-` (gone) or `flaky-`
/// (unavailable), and records what it accepted.
#[derive(Debug, Default)]
struct SimGateway {
    accepted: Mutex<Vec<(String, String, PushMessage)>>,
}

#[async_trait::async_trait]
impl PushGateway for SimGateway {
    async fn send(&self, target: &Target, message: &PushMessage) -> Attempt {
        let outcome = if target.token.starts_with("dead-") {
            Outcome::TokenDead {
                reason: "Unregistered".into(),
            }
        } else if target.token.starts_with("flaky-") {
            Outcome::RetryLater {
                reason: "unavailable".into(),
                after: None,
            }
        } else {
            if let Ok(mut accepted) = self.accepted.lock() {
                accepted.push((
                    target.token.clone(),
                    target.notification_id.clone(),
                    message.clone(),
                ));
            }
            Outcome::Delivered
        };
        Attempt {
            outcome,
            status: Some(200),
        }
    }
}

/// One member of staff as generated.
#[derive(Debug, Clone)]
struct StaffSpec {
    admin: bool,
    /// None, or a token prefix: "" (works), "dead-", "flaky-".
    device: Option<&'static str>,
    on_call: bool,
    around_the_clock: bool,
    email_refused: bool,
}

#[derive(Debug, Clone)]
struct WorldSpec {
    staff: Vec<StaffSpec>,
    push_configured: bool,
    /// None, or whether it answers 2xx.
    webhook: Option<bool>,
    smtp: bool,
    org_device: bool,
    start: &'static str,
}

#[derive(Debug, Clone)]
enum Op {
    Item9(usize, i64),
    BloodPressure(usize),
    Gad7Rise(usize),
    Acknowledge(usize),
    Resolve(usize),
    Wait(i64),
}

fn staff_spec() -> impl Strategy<Value = StaffSpec> {
    (
        any::<bool>(),
        prop_oneof![
            3 => Just(Some("")),
            1 => Just(Some("dead-")),
            1 => Just(Some("flaky-")),
            2 => Just(None),
        ],
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.3),
    )
        .prop_map(
            |(admin, device, on_call, around_the_clock, email_refused)| StaffSpec {
                admin,
                device,
                on_call,
                around_the_clock,
                email_refused,
            },
        )
}

fn world_spec() -> impl Strategy<Value = WorldSpec> {
    (
        prop::collection::vec(staff_spec(), 0..4),
        prop::bool::weighted(0.7),
        prop_oneof![2 => Just(None), 1 => Just(Some(true)), 1 => Just(Some(false))],
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![
            // A Wednesday at 10:00 and at 03:00 in Chicago, a Saturday night, and the
            // daylight-saving days (spring forward, fall back) at 01:30.
            "2026-06-03T15:00:00Z",
            "2026-06-03T08:00:00Z",
            "2026-06-07T03:00:00Z",
            "2026-03-08T07:30:00Z",
            "2026-11-01T06:30:00Z",
        ]),
    )
        .prop_map(
            |(staff, push_configured, webhook, smtp, org_device, start)| WorldSpec {
                staff,
                push_configured,
                webhook,
                smtp,
                org_device,
                start,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, 1..=3i64).prop_map(|(p, v)| Op::Item9(p, v)),
        2 => (0..2usize).prop_map(Op::BloodPressure),
        1 => (0..2usize).prop_map(Op::Gad7Rise),
        2 => (0..8usize).prop_map(Op::Acknowledge),
        1 => (0..8usize).prop_map(Op::Resolve),
        3 => (1..=40i64).prop_map(Op::Wait),
    ]
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

struct Sim {
    app: TestApp,
    gateway: Arc<SimGateway>,
    sink: Option<SmtpSink>,
    hook_hits: Arc<Mutex<Vec<(String, bool)>>>,
    admin: Actor,
    org_token: Option<String>,
    staff: Vec<(Actor, Option<String>)>,
    patients: Vec<Actor>,
    /// (patient index, check-in id) of every answer that got a safety notice.
    notices: Vec<(usize, String)>,
}

impl Sim {
    async fn build(backend: Backend, spec: &WorldSpec) -> Self {
        let gateway = Arc::new(SimGateway::default());
        let installed = gateway.clone();
        let sink = if spec.smtp {
            Some(SmtpSink::start().await.unwrap())
        } else {
            None
        };
        let url = sink.as_ref().map(SmtpSink::url).unwrap_or_default();
        // The clinic's receiver listens on loopback, which webhooks reach only when allowed.
        let mut settings = vec![
            ("COMPANION_ACCESS_TOKEN_TTL", "86400"),
            ("COMPANION_WEBHOOK_ALLOW", "127.0.0.1"),
        ];
        if spec.smtp {
            settings.push(("COMPANION_SMTP_URL", &url));
            settings.push(("COMPANION_SMTP_FROM", "alerts@care.example.org"));
        }
        let push = spec.push_configured;
        let app = TestApp::build(backend, &settings, move |a| {
            if push {
                a.push.fcm = installed;
            }
        })
        .await;
        app.clock.set(spec.start.parse().unwrap());
        let org = app.org_admin().await;
        let clinic = app.create_clinic(&org, "Simulated clinic").await;
        let admin = app.join(&org, &clinic, "clinic_admin").await;
        let mut staff = Vec::new();
        for (i, s) in spec.staff.iter().enumerate() {
            let role = if s.admin { "clinic_admin" } else { "clinician" };
            let local = if s.email_refused { "refused" } else { "staff" };
            let email = format!("{local}-{i}-{}@example.org", uuid::Uuid::new_v4().simple());
            let code = app.invite(&admin, &clinic, role).await;
            app.accept(&code, &email).await.expect(StatusCode::CREATED);
            let tokens = app.login(&email, PASSWORD).await.expect(StatusCode::OK);
            let access = tokens.body["access_token"].as_str().unwrap().to_owned();
            let id = app.get("/v1/me", &access).await.body["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let actor = Actor {
                id,
                email,
                access,
                refresh: tokens.body["refresh_token"].as_str().unwrap().to_owned(),
            };
            if s.on_call {
                app.put("/v1/me/on-call", &actor.access, json!({"on_call": true}))
                    .await
                    .expect(StatusCode::OK);
            }
            if s.around_the_clock {
                app.put(
                    "/v1/me/working-hours",
                    &actor.access,
                    json!({"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "23:59"}),
                )
                .await
                .expect(StatusCode::OK);
            }
            let token = match s.device {
                Some(prefix) => {
                    let token = format!("{prefix}tok-{}", uuid::Uuid::new_v4());
                    app.post(
                        "/v1/devices",
                        &actor.access,
                        json!({"platform": "android", "token": token}),
                    )
                    .await
                    .expect(StatusCode::CREATED);
                    Some(token)
                }
                None => None,
            };
            staff.push((actor, token));
        }
        let org_token = if spec.org_device {
            let token = format!("org-{}", uuid::Uuid::new_v4());
            app.post(
                "/v1/devices",
                &org.access,
                json!({"platform": "android", "token": token}),
            )
            .await
            .expect(StatusCode::CREATED);
            Some(token)
        } else {
            None
        };
        let hook_hits: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
        if let Some(healthy) = spec.webhook {
            let url = receiver(healthy, hook_hits.clone()).await;
            app.post(
                &format!("/v1/clinics/{clinic}/webhooks"),
                &admin.access,
                json!({"url": url}),
            )
            .await
            .expect(StatusCode::CREATED);
        }
        let mut patients = Vec::new();
        for _ in 0..2 {
            patients.push(app.join(&admin, &clinic, "patient").await);
        }
        Sim {
            app,
            gateway,
            sink,
            hook_hits,
            admin,
            org_token,
            staff,
            patients,
            notices: Vec::new(),
        }
    }

    async fn check_in(&mut self, patient: usize, instrument: &str, answers: Value) -> Value {
        let reply = self
            .app
            .post(
                "/v1/check-ins",
                &self.patients[patient].access,
                json!({
                    "id": uuid::Uuid::new_v4().to_string(),
                    "instrument": instrument,
                    "answers": answers,
                    "completed_at": stamp(self.app.app.now()),
                }),
            )
            .await;
        // 201, or 200 with the first check-in when the same answers come again within minutes.
        assert!(
            reply.status == StatusCode::CREATED || reply.status == StatusCode::OK,
            "{}",
            reply.text
        );
        let reply = reply.body;
        if !reply["safety"].is_null() {
            // Said at once, before any worker ran: `reached` only if an outcome had already
            // counted (a signal joining an alert someone was reached about).
            self.check_words(&reply["safety"]);
            if reply["safety"]["care_team"] == "reached" {
                let alerts = self.alerts().await;
                let own = &self.patients[patient].id;
                assert!(
                    alerts
                        .iter()
                        .any(|a| a["care_team"] == "reached" && a["patient_id"] == own.as_str()),
                    "told reached before anything counted: {reply}"
                );
            }
            self.notices
                .push((patient, reply["id"].as_str().unwrap().to_owned()));
        }
        reply
    }

    async fn alerts(&self) -> Vec<Value> {
        self.app
            .get("/v1/alerts?limit=200", &self.admin.access)
            .await
            .expect(StatusCode::OK)
            .body["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn events(&self, alert: &str) -> Vec<(String, String)> {
        self.app
            .get(&format!("/v1/alerts/{alert}"), &self.admin.access)
            .await
            .expect(StatusCode::OK)
            .body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_owned(),
                    e["detail"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    #[track_caller]
    fn check_words(&self, safety: &Value) {
        let message = safety["message"].as_str().unwrap();
        let told = message.contains("Your care team has been told");
        match safety["care_team"].as_str().unwrap() {
            "reached" => assert!(told, "{safety}"),
            "trying" => assert!(
                !told && message.contains("We are contacting your care team now"),
                "{safety}"
            ),
            "unreachable" => assert!(
                !told && message.contains("We could not reach your care team right now"),
                "{safety}"
            ),
            other => panic!("unknown care_team {other}"),
        }
    }

    async fn step(&mut self, op: &Op) {
        match op {
            Op::Item9(p, v) => {
                let reply = self
                    .check_in(*p, "phq9", phq9([0, 0, 0, 0, 0, 0, 0, 0, *v]))
                    .await;
                assert!(
                    reply["safety"].is_object(),
                    "item 9 always answers with help"
                );
            }
            Op::BloodPressure(p) => {
                let reply = self
                    .check_in(
                        *p,
                        "daily_mood",
                        json!({"mood": 5, "bp_systolic": 210, "bp_diastolic": 125}),
                    )
                    .await;
                assert!(reply["safety"]["advice"].is_string(), "{reply}");
            }
            Op::Gad7Rise(p) => {
                self.check_in(
                    *p,
                    "gad7",
                    json!({"q1": 0, "q2": 0, "q3": 0, "q4": 0, "q5": 0, "q6": 0, "q7": 1}),
                )
                .await;
                self.app.clock.advance(TimeDelta::minutes(1));
                self.check_in(
                    *p,
                    "gad7",
                    json!({"q1": 3, "q2": 3, "q3": 3, "q4": 3, "q5": 1, "q6": 0, "q7": 0}),
                )
                .await;
            }
            Op::Acknowledge(i) | Op::Resolve(i) => {
                let alerts = self.alerts().await;
                let open: Vec<&Value> = alerts
                    .iter()
                    .filter(|a| a["status"] != "resolved")
                    .collect();
                if let Some(alert) = open.get(i % open.len().max(1)) {
                    let id = alert["id"].as_str().unwrap();
                    let reply = match op {
                        Op::Acknowledge(_) => {
                            self.app
                                .call(
                                    Method::POST,
                                    &format!("/v1/alerts/{id}/acknowledge"),
                                    Some(&self.admin.access),
                                    None,
                                )
                                .await
                        }
                        _ => {
                            self.app
                                .post(
                                    &format!("/v1/alerts/{id}/resolve"),
                                    &self.admin.access,
                                    json!({"note": "seen"}),
                                )
                                .await
                        }
                    };
                    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
                }
            }
            Op::Wait(minutes) => self.app.clock.advance(TimeDelta::minutes(*minutes)),
        }
        // The workers run to quiescence at this instant (retries come back as time moves on).
        for _ in 0..8 {
            if self.app.run_jobs().await == 0 {
                break;
            }
        }
        self.check().await;
    }

    /// Accepted alert pushes per (token, alert), and every accepted notification id.
    fn accepted(&self) -> (BTreeMap<(String, String), usize>, Vec<String>) {
        let mut per = BTreeMap::new();
        let mut ids = Vec::new();
        if let Ok(accepted) = self.gateway.accepted.lock() {
            for (token, notification, message) in accepted.iter() {
                ids.push(notification.clone());
                if let PushMessage::ClinicianAlert { alert_id, .. } = message {
                    *per.entry((token.clone(), alert_id.clone())).or_default() += 1;
                }
            }
        }
        (per, ids)
    }

    async fn check(&mut self) {
        let alerts = self.alerts().await;
        let (per_device, ids) = self.accepted();
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "a notification was accepted twice");
        let staff_tokens: Vec<&String> =
            self.staff.iter().filter_map(|(_, t)| t.as_ref()).collect();
        let staff_mail = self.sink.as_ref().is_some_and(|sink| {
            self.staff
                .iter()
                .map(|(a, _)| a)
                .chain([&self.admin])
                .any(|a| !sink.mails_to(&a.email).is_empty())
        });
        for alert in &alerts {
            let id = alert["id"].as_str().unwrap();
            let events = self.events(id).await;
            let pushed = staff_tokens
                .iter()
                .any(|t| per_device.contains_key(&((*t).clone(), id.to_owned())));
            let hooked = self
                .hook_hits
                .lock()
                .unwrap()
                .iter()
                .any(|(alert_id, ok)| alert_id == id && *ok);
            // 1. Reached means something counted.
            if !alert["reached_at"].is_null() {
                assert!(
                    pushed || hooked || staff_mail,
                    "reached without an outcome that counts: {alert} {events:?}"
                );
            }
            // 2. An open urgent or high alert is reached or unreachable, and then the
            //    organisation's admins were told where they can be.
            let severe = alert["severity"] == "urgent" || alert["severity"] == "high";
            if severe && alert["status"] == "open" {
                assert_ne!(
                    alert["care_team"], "trying",
                    "left trying with nothing to wait for: {alert} {events:?}"
                );
                if alert["care_team"] == "unreachable"
                    && let Some(token) = &self.org_token
                    && self.gateway_counts()
                {
                    let told = self
                        .gateway
                        .accepted
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|(t, _, m)| {
                            t == token && matches!(m, PushMessage::UnreachableAlert { .. })
                        });
                    assert!(told, "unreachable and the organisation not told: {alert}");
                }
            }
            // 3. Never more accepted pushes of one alert to one device than steps that told it.
            let steps = events
                .iter()
                .filter(|(kind, _)| kind == "notified" || kind == "assigned")
                .count();
            for token in &staff_tokens {
                let n = per_device
                    .get(&((*token).clone(), id.to_owned()))
                    .copied()
                    .unwrap_or(0);
                assert!(
                    n <= steps,
                    "{n} pushes of {id} to one device in {steps} steps"
                );
            }
        }
        // 4. What each patient reads now matches, and `reached` stands on something that
        //    counted.
        let mut reached_patients = HashSet::new();
        for alert in &alerts {
            if alert["care_team"] == "reached" {
                reached_patients.insert(alert["patient_id"].as_str().unwrap().to_owned());
            }
        }
        for (patient, id) in self.notices.clone() {
            let read = self
                .app
                .get(
                    &format!("/v1/me/check-ins/{id}"),
                    &self.patients[patient].access,
                )
                .await
                .expect(StatusCode::OK)
                .body;
            self.check_words(&read["safety"]);
            if read["safety"]["care_team"] == "reached" {
                assert!(
                    reached_patients.contains(&self.patients[patient].id),
                    "the patient reads reached and none of their alerts was: {read}"
                );
            }
        }
    }

    fn gateway_counts(&self) -> bool {
        // Without push configured the organisation admin's phone cannot be told either.
        self.app.app.push.fcm.reaches_devices()
    }
}

/// A clinic's receiver that records the alert of every delivery and whether it accepted it.
async fn receiver(healthy: bool, hits: Arc<Mutex<Vec<(String, bool)>>>) -> String {
    let flag = Arc::new(AtomicBool::new(healthy));
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let (flag, hits) = (flag.clone(), hits.clone());
            async move {
                let body: Value = serde_json::from_str(&body).unwrap_or_default();
                let ok = flag.load(Ordering::SeqCst);
                hits.lock()
                    .unwrap()
                    .push((body["alert_id"].as_str().unwrap_or_default().to_owned(), ok));
                if ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.ok() });
    url
}

async fn every_safety_signal_reaches_a_person_or_is_unreachable_and_nobody_is_told_otherwise(
    backend: Backend,
) {
    let cases = std::env::var("COMPANION_TEST_SIMULATOR_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let strategy = (world_spec(), prop::collection::vec(op(), 3..14));
    let result = runner.run(&strategy, |(spec, ops)| {
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                let mut sim = Sim::build(backend, &spec).await;
                for op in &ops {
                    sim.step(op).await;
                }
            })
        });
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
