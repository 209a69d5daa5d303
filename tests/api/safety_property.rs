//! A property over random sequences of safety signals, routine signals, acknowledgements,
//! resolves and clock steps, through the API with the workers running after each step: every
//! item-9 answer is stored and counted on an alert, every one that finds its alert not open
//! (new, or acknowledged) reaches a reachable tier before its deadline, an open urgent alert is
//! pushed again at every deadline until someone acknowledges it, and no push goes twice to a
//! device for the same step.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, TimeDelta, Utc};
use companion::push::content::PushMessage;
use companion::push::gateway::MemoryGateway;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::both;
use crate::escalation::{device, on_call, phq9};
use crate::harness::{Actor, Backend, TestApp};

both!(no_safety_signal_is_dropped_and_every_one_reaches_a_reachable_tier_in_time);

#[derive(Debug, Clone)]
enum Op {
    /// Patient `0` or `1` answers item 9 with 1 to 3.
    Item9(usize, i64),
    /// A routine (medium) signal: GAD-7 well above the patient's baseline.
    Routine(usize),
    /// Someone acknowledges the patient's newest unresolved alert.
    Acknowledge(usize),
    /// Someone resolves it.
    Resolve(usize),
    /// The clock moves on by this many minutes (never past a deadline unseen).
    Wait(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, 1..=3i64).prop_map(|(p, v)| Op::Item9(p, v)),
        1 => (0..2usize).prop_map(Op::Routine),
        2 => (0..2usize).prop_map(Op::Acknowledge),
        1 => (0..2usize).prop_map(Op::Resolve),
        3 => (1..=20i64).prop_map(Op::Wait),
    ]
}

/// Pushes per alert and device seen so far.
fn pushes(gateway: &MemoryGateway) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for (token, message) in gateway.sent() {
        if let PushMessage::ClinicianAlert { alert_id, .. } = message {
            *out.entry((alert_id, token)).or_default() += 1;
        }
    }
    out
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

struct Scenario {
    app: TestApp,
    gateway: Arc<MemoryGateway>,
    staff: Actor,
    patients: Vec<Actor>,
    phones: Vec<String>,
    /// Item-9 answers per patient.
    item9_sent: [i64; 2],
    /// Alert id -> when a push for it last went out.
    last_push: HashMap<String, DateTime<Utc>>,
    seen: BTreeMap<(String, String), usize>,
    /// Check-ins submitted so far.
    submitted: i64,
    /// When the scenario started.
    started: DateTime<Utc>,
}

impl Scenario {
    async fn alerts(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/alerts?limit=200&cursor={c}"),
                None => "/v1/alerts?limit=200".to_owned(),
            };
            let page = self
                .app
                .get(&path, &self.staff.access)
                .await
                .expect(StatusCode::OK)
                .body;
            out.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    async fn item9_alert(&self, patient: usize) -> Option<Value> {
        let id = &self.patients[patient].id;
        self.alerts().await.into_iter().find(|a| {
            a["rule"] == "safety_item9" && a["patient_id"] == json!(id) && a["status"] != "resolved"
        })
    }

    /// Runs the workers and records which alerts were pushed now.
    async fn work(&mut self) {
        self.app.run_jobs().await;
        let now = self.app.app.now();
        let current = pushes(&self.gateway);
        for (key, count) in &current {
            if self.seen.get(key).copied().unwrap_or(0) < *count {
                self.last_push.insert(key.0.clone(), now);
            }
        }
        self.seen = current;
    }

    async fn submit(&mut self, patient: usize, instrument: &str, answers: Value) {
        // Each submission completed 11 minutes before the last by the device's clock: the same
        // answers completed within 10 minutes of each other would be one check-in.
        self.submitted += 1;
        let at = (self.started - TimeDelta::minutes(11 * self.submitted)).to_rfc3339();
        self.app
            .post(
                "/v1/check-ins",
                &self.patients[patient].access,
                json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": instrument,
                       "answers": answers, "completed_at": at}),
            )
            .await
            .expect(StatusCode::CREATED);
    }

    async fn step(&mut self, op: &Op) {
        let now = self.app.app.now();
        match *op {
            Op::Item9(p, value) => {
                let before = self.item9_alert(p).await;
                let was_open = before.as_ref().is_some_and(|a| a["status"] == "open");
                self.submit(p, "phq9", phq9([0, 0, 0, 0, 0, 0, 0, 0, value]))
                    .await;
                self.item9_sent[p] += 1;
                self.work().await;
                let alert = self
                    .item9_alert(p)
                    .await
                    .expect("an item-9 answer always leaves an unresolved alert");
                assert_eq!(alert["status"], "open", "never left acknowledged: {alert}");
                if !was_open {
                    assert_eq!(
                        time(&alert["ack_deadline"]),
                        now + TimeDelta::minutes(15),
                        "a fresh deadline: {alert}"
                    );
                    let id = alert["id"].as_str().unwrap();
                    assert_eq!(
                        self.last_push.get(id),
                        Some(&now),
                        "the signal reached a tier at once: {alert}"
                    );
                }
            }
            Op::Routine(p) => {
                self.submit(
                    p,
                    "gad7",
                    json!({"q1": 0, "q2": 0, "q3": 0, "q4": 0, "q5": 0, "q6": 0, "q7": 0}),
                )
                .await;
                self.app.clock.advance(TimeDelta::seconds(1));
                self.submit(
                    p,
                    "gad7",
                    json!({"q1": 3, "q2": 3, "q3": 3, "q4": 3, "q5": 0, "q6": 0, "q7": 0}),
                )
                .await;
                self.work().await;
            }
            Op::Acknowledge(p) | Op::Resolve(p) => {
                let id = &self.patients[p].id;
                let target = self
                    .alerts()
                    .await
                    .into_iter()
                    .find(|a| a["patient_id"] == json!(id) && a["status"] != "resolved");
                if let Some(alert) = target {
                    let path = format!("/v1/alerts/{}", alert["id"].as_str().unwrap());
                    let reply = match op {
                        Op::Acknowledge(_) => {
                            self.app
                                .call(
                                    Method::POST,
                                    &format!("{path}/acknowledge"),
                                    Some(&self.staff.access),
                                    None,
                                )
                                .await
                        }
                        _ => {
                            self.app
                                .post(
                                    &format!("{path}/resolve"),
                                    &self.staff.access,
                                    json!({"note": "Checked in with the patient."}),
                                )
                                .await
                        }
                    };
                    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
                }
            }
            Op::Wait(minutes) => {
                // Never jump past a deadline: stop at the earliest one, run the workers there.
                let mut until = now + TimeDelta::minutes(minutes);
                for alert in self.alerts().await {
                    if alert["status"] == "open" {
                        until = until.min(time(&alert["ack_deadline"]).max(now));
                    }
                }
                self.app.clock.set(until.max(now + TimeDelta::seconds(1)));
                self.work().await;
            }
        }
        self.check().await;
    }

    /// What must hold after every step.
    async fn check(&self) {
        let now = self.app.app.now();
        let alerts = self.alerts().await;
        for (p, patient) in self.patients.iter().enumerate() {
            let counted: i64 = alerts
                .iter()
                .filter(|a| a["rule"] == "safety_item9" && a["patient_id"] == json!(patient.id))
                .map(|a| a["signal_count"].as_i64().unwrap())
                .sum();
            assert_eq!(
                counted, self.item9_sent[p],
                "every item-9 answer is on an alert"
            );
        }
        for alert in &alerts {
            if alert["severity"] == "urgent" && alert["status"] == "open" {
                let id = alert["id"].as_str().unwrap();
                let last = self.last_push.get(id).copied();
                assert!(
                    last.is_some_and(|t| now - t <= TimeDelta::minutes(15)),
                    "an open urgent alert is pushed at least every 15 minutes: {alert}, last push {last:?}, now {now}"
                );
                assert!(
                    time(&alert["ack_deadline"]) >= now,
                    "no deadline left behind: {alert}"
                );
            }
        }
        // One push per device per notification step, never two.
        let notified: usize = self.seen.values().sum();
        let mut steps = 0usize;
        for alert in &alerts {
            let detail = self
                .app
                .get(
                    &format!("/v1/alerts/{}", alert["id"].as_str().unwrap()),
                    &self.staff.access,
                )
                .await
                .body;
            steps += detail["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "notified")
                .count()
                * self.phones.len();
        }
        assert!(
            notified <= steps,
            "{notified} pushes for {steps} device-steps"
        );
    }
}

async fn no_safety_signal_is_dropped_and_every_one_reaches_a_reachable_tier_in_time(
    backend: Backend,
) {
    let cases = std::env::var("COMPANION_TEST_PROPERTY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let strategy = (any::<bool>(), prop::collection::vec(op(), 4..24));
    let result = runner.run(&strategy, |(someone_on_call, ops)| {
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                let gateway = Arc::new(MemoryGateway::default());
                let installed = gateway.clone();
                let app = TestApp::build(
                    backend,
                    &[("COMPANION_ACCESS_TOKEN_TTL", "86400")],
                    move |a| a.push.fcm = installed,
                )
                .await;
                let world = app.world().await;
                let colleague = app.join(&world.admin_a, &world.clinic_a, "clinician").await;
                if someone_on_call {
                    on_call(&app, &world.clinician_a).await;
                }
                let app_start = app.app.now();
                let mut phones = Vec::new();
                for who in [&world.clinician_a, &colleague, &world.admin_a] {
                    phones.push(device(&app, who).await);
                }
                let mut scenario = Scenario {
                    app,
                    gateway,
                    staff: world.clinician_a.clone(),
                    patients: vec![world.patient_a.clone(), world.patient_a2.clone()],
                    phones,
                    item9_sent: [0, 0],
                    last_push: HashMap::new(),
                    seen: BTreeMap::new(),
                    submitted: 0,
                    started: app_start,
                };
                for op in &ops {
                    scenario.step(op).await;
                }
            })
        });
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
