//! A property over random check-in submissions through the API, on both databases: complete,
//! incomplete (item 9 with other answers missing or out of range), late (a phone weeks
//! behind), clock-skewed (a phone ahead), duplicated (the same answers under a new id),
//! replayed, amended (the same id with another item 9 answer) and concurrent ones, mixed with
//! acknowledgements, resolves (some racing a new signal) and clock steps. After every step:
//!
//! - every safety answer (PHQ-9 item 9 answered 1 or more) sits on an open or acknowledged
//!   alert, named in its history, until a person resolves that alert having seen it;
//! - one unresolved alert per patient and rule;
//! - a safety answer is never refused, and its answer carries crisis resources.
//!
//! The normal suite runs a few cases; set `COMPANION_TEST_SAFETY_ANSWERS_CASES` (e.g. 200) for more.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Actor, Backend, Reply, TestApp};

both!(every_safety_answer_sits_on_an_unresolved_alert_until_a_person_resolves_it);

#[derive(Debug, Clone)]
enum Op {
    /// A complete PHQ-9: items 1 to 8, then item 9.
    Complete(usize, [i64; 8], i64),
    /// Item 9 (1 to 3) with other items missing and one out of range.
    Incomplete(usize, i64, i64),
    /// A complete PHQ-9 whose device clock is this many days behind.
    Late(usize, i64, i64),
    /// A complete PHQ-9 whose device clock is this many hours ahead.
    Ahead(usize, i64, i64),
    /// The patient's last stored check-in again, under a new id.
    Duplicate(usize),
    /// The patient's last stored check-in again, under its id.
    Replay(usize),
    /// The patient's last stored check-in under its id with item 9 changed to this.
    Amend(usize, i64),
    /// Several item-9 check-ins at once.
    Concurrent(usize, Vec<i64>),
    /// Staff acknowledge the patient's unresolved item-9 alert.
    Acknowledge(usize),
    /// Staff resolve it (saying how many signals they saw).
    Resolve(usize),
    /// Staff resolve it while a new item-9 answer arrives.
    ResolveRacing(usize, i64),
    /// The clock moves on by this many minutes.
    Wait(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let patient = 0..2usize;
    prop_oneof![
        3 => (patient.clone(), prop::array::uniform8(0..=3i64), 0..=3i64)
            .prop_map(|(p, items, q9)| Op::Complete(p, items, q9)),
        2 => (patient.clone(), 1..=3i64, 0..=3i64).prop_map(|(p, q9, q1)| Op::Incomplete(p, q9, q1)),
        1 => (patient.clone(), 0..=3i64, 31..=60i64).prop_map(|(p, q9, d)| Op::Late(p, q9, d)),
        1 => (patient.clone(), 1..=3i64, 1..=48i64).prop_map(|(p, q9, h)| Op::Ahead(p, q9, h)),
        2 => patient.clone().prop_map(Op::Duplicate),
        1 => patient.clone().prop_map(Op::Replay),
        2 => (patient.clone(), 0..=3i64).prop_map(|(p, q9)| Op::Amend(p, q9)),
        2 => (patient.clone(), prop::collection::vec(1..=3i64, 2..=4))
            .prop_map(|(p, v)| Op::Concurrent(p, v)),
        2 => patient.clone().prop_map(Op::Acknowledge),
        2 => patient.clone().prop_map(Op::Resolve),
        2 => (patient, 1..=3i64).prop_map(|(p, q9)| Op::ResolveRacing(p, q9)),
        2 => (1..=20i64).prop_map(Op::Wait),
    ]
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn phq9(items: [i64; 8], q9: i64) -> Value {
    let mut answers = serde_json::Map::new();
    for (i, v) in items.iter().enumerate() {
        answers.insert(format!("q{}", i + 1), json!(v));
    }
    answers.insert("q9".into(), json!(q9));
    Value::Object(answers)
}

fn body(answers: Value, completed_at: DateTime<Utc>) -> Value {
    json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "phq9",
           "answers": answers, "completed_at": stamp(completed_at)})
}

fn item9_of(body: &Value) -> i64 {
    body["answers"]["q9"].as_i64().unwrap_or(0)
}

struct Scenario {
    app: TestApp,
    staff: Actor,
    patients: Vec<Actor>,
    /// Safety answers (check-in ids) per patient not yet resolved by a person who saw them.
    pending: Vec<BTreeSet<String>>,
    /// The last check-in stored under its own id, per patient: its body as sent last.
    last: Vec<Option<Value>>,
    /// Every check-in id stored per patient.
    stored: Vec<BTreeSet<String>>,
}

impl Scenario {
    async fn alerts(&self, patient: usize) -> Vec<Value> {
        let path = format!(
            "/v1/alerts?limit=200&rule=safety_item9&patient_id={}",
            self.patients[patient].id
        );
        self.app
            .get(&path, &self.staff.access)
            .await
            .expect(StatusCode::OK)
            .body["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn unresolved(&self, patient: usize) -> Option<Value> {
        let alerts: Vec<Value> = self
            .alerts(patient)
            .await
            .into_iter()
            .filter(|a| a["status"] != "resolved")
            .collect();
        assert!(
            alerts.len() <= 1,
            "one unresolved alert per patient and rule: {alerts:?}"
        );
        alerts.into_iter().next()
    }

    async fn signals_of(&self, alert_id: &str) -> BTreeSet<String> {
        self.app
            .get(&format!("/v1/alerts/{alert_id}"), &self.staff.access)
            .await
            .expect(StatusCode::OK)
            .body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["check_in_id"].as_str().map(str::to_owned))
            .collect()
    }

    /// Sends a check-in and records what it means for the invariant.
    async fn send(&mut self, patient: usize, body: Value) -> Reply {
        let reply = self
            .app
            .post(
                "/v1/check-ins",
                &self.patients[patient].access,
                body.clone(),
            )
            .await;
        self.record(patient, &body, &reply);
        reply
    }

    fn record(&mut self, patient: usize, body: &Value, reply: &Reply) {
        let safety = item9_of(body) >= 1;
        match reply.status {
            StatusCode::CREATED | StatusCode::OK => {
                let id = reply.body["id"].as_str().unwrap().to_owned();
                if reply.body["safety_signal"] == true {
                    assert!(
                        !reply.body["safety"]["crisis_resources"]["lines"]
                            .as_array()
                            .unwrap()
                            .is_empty(),
                        "crisis resources with every safety answer: {}",
                        reply.text
                    );
                }
                let new_signal = reply.status == StatusCode::CREATED
                    || (reply.status == StatusCode::OK
                        && !reply.body["amended_at"].is_null()
                        && body["id"] == json!(id)
                        && reply.body["answers"]["q9"] == body["answers"]["q9"]
                        && !self.stored[patient].contains(&format!("{id}@{}", item9_of(body))));
                if new_signal && safety {
                    self.pending[patient].insert(id.clone());
                }
                if body["id"] == json!(id) {
                    self.stored[patient].insert(id.clone());
                    self.stored[patient].insert(format!("{id}@{}", item9_of(body)));
                    self.last[patient] = Some(body.clone());
                } else if reply.status == StatusCode::CREATED {
                    // A malformed id replaced by the server: never in these bodies.
                    panic!("a new id for a well-formed one: {}", reply.text);
                } else {
                    assert!(
                        self.stored[patient].contains(&id),
                        "the same answers answer with a check-in of the same patient: {}",
                        reply.text
                    );
                }
            }
            StatusCode::CONFLICT => {
                assert_eq!(reply.code(), "check_in_conflict", "{}", reply.text);
                assert!(
                    self.stored[patient].contains(body["id"].as_str().unwrap()),
                    "a conflict only for a stored id: {}",
                    reply.text
                );
            }
            // Without a safety answer an invalid form is refused as before (an incomplete
            // check-in re-sent with item 9 changed to 0).
            StatusCode::UNPROCESSABLE_ENTITY if !safety => {}
            other => panic!(
                "a check-in{} was refused with {other}: {}",
                if safety { " with a safety answer" } else { "" },
                reply.text
            ),
        }
    }

    async fn resolve(&self, alert: &Value) -> Reply {
        self.app
            .post(
                &format!("/v1/alerts/{}/resolve", alert["id"].as_str().unwrap()),
                &self.staff.access,
                json!({"note": "Spoke with the patient.", "signal_count": alert["signal_count"]}),
            )
            .await
    }

    /// After a person resolved `alert`: the signals it held were seen and dealt with.
    async fn resolved(&mut self, patient: usize, alert: &Value) {
        let seen = self.signals_of(alert["id"].as_str().unwrap()).await;
        self.pending[patient].retain(|id| !seen.contains(id));
    }

    async fn step(&mut self, op: &Op) {
        let now = self.app.app.now();
        match op.clone() {
            Op::Complete(p, items, q9) => {
                self.send(p, body(phq9(items, q9), now)).await;
            }
            Op::Incomplete(p, q9, q1) => {
                let reply = self
                    .send(p, body(json!({"q1": q1, "q4": 7, "q9": q9}), now))
                    .await;
                if reply.status == StatusCode::CREATED {
                    assert_eq!(reply.body["status"], "incomplete", "{}", reply.text);
                }
            }
            Op::Late(p, q9, days) => {
                let items = [1, 0, 0, 0, 0, 0, 0, days % 4];
                self.send(p, body(phq9(items, q9), now - TimeDelta::days(days)))
                    .await;
            }
            Op::Ahead(p, q9, hours) => {
                let items = [0, 1, 0, 0, 0, 0, 0, hours % 4];
                self.send(p, body(phq9(items, q9), now + TimeDelta::hours(hours)))
                    .await;
            }
            Op::Duplicate(p) => {
                if let Some(mut again) = self.last[p].clone() {
                    again["id"] = json!(uuid::Uuid::new_v4().to_string());
                    self.send(p, again).await;
                }
            }
            Op::Replay(p) => {
                if let Some(again) = self.last[p].clone() {
                    let reply = self.send(p, again).await;
                    assert_ne!(reply.status, StatusCode::CREATED, "{}", reply.text);
                }
            }
            Op::Amend(p, q9) => {
                if let Some(mut amended) = self.last[p].clone() {
                    amended["answers"]["q9"] = json!(q9);
                    self.send(p, amended).await;
                }
            }
            Op::Concurrent(p, values) => {
                let bodies: Vec<Value> = values
                    .iter()
                    .enumerate()
                    .map(|(i, q9)| body(phq9([i as i64 % 4, 2, 1, 0, 0, 0, 0, 0], *q9), now))
                    .collect();
                let access = self.patients[p].access.clone();
                let replies = at_once(&self.app, &access, &bodies).await;
                for (body, reply) in bodies.iter().zip(&replies) {
                    self.record(p, body, reply);
                }
            }
            Op::Acknowledge(p) => {
                if let Some(alert) = self.unresolved(p).await {
                    let reply = self
                        .app
                        .call(
                            Method::POST,
                            &format!("/v1/alerts/{}/acknowledge", alert["id"].as_str().unwrap()),
                            Some(&self.staff.access),
                            None,
                        )
                        .await;
                    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
                }
            }
            Op::Resolve(p) => {
                if let Some(alert) = self.unresolved(p).await {
                    let reply = self.resolve(&alert).await;
                    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
                    self.resolved(p, &alert).await;
                }
            }
            Op::ResolveRacing(p, q9) => {
                let signal = body(phq9([3, 3, 0, 0, 0, 0, 0, q9], q9), now);
                match self.unresolved(p).await {
                    Some(alert) => {
                        let access = self.patients[p].access.clone();
                        let (resolved, reply) = tokio::join!(
                            self.resolve(&alert),
                            self.app.post("/v1/check-ins", &access, signal.clone()),
                        );
                        match resolved.status {
                            StatusCode::OK => self.resolved(p, &alert).await,
                            StatusCode::CONFLICT => {
                                assert_eq!(
                                    resolved.code(),
                                    "alert_new_signal",
                                    "{}",
                                    resolved.text
                                );
                            }
                            other => panic!("resolve answered {other}: {}", resolved.text),
                        }
                        self.record(p, &signal, &reply);
                    }
                    None => {
                        self.send(p, signal).await;
                    }
                }
            }
            Op::Wait(minutes) => {
                self.app.clock.advance(TimeDelta::minutes(minutes));
                self.app.run_jobs().await;
            }
        }
        self.check().await;
    }

    /// What must hold after every step.
    async fn check(&self) {
        for p in 0..self.patients.len() {
            let unresolved = self.unresolved(p).await;
            if self.pending[p].is_empty() {
                continue;
            }
            let alert = unresolved.unwrap_or_else(|| {
                panic!(
                    "safety answers {:?} of patient {p} are on no unresolved alert",
                    self.pending[p]
                )
            });
            let held = self.signals_of(alert["id"].as_str().unwrap()).await;
            let missing: Vec<&String> = self.pending[p].difference(&held).collect();
            assert!(
                missing.is_empty(),
                "safety answers {missing:?} are not on the unresolved alert {alert}"
            );
        }
        let duplicates = self
            .app
            .count(
                "SELECT COUNT(*) AS n FROM (SELECT patient_id, rule FROM alerts WHERE status <> 'resolved' \
                 GROUP BY patient_id, rule HAVING COUNT(*) > 1) AS d",
            )
            .await;
        assert_eq!(duplicates, 0, "one unresolved alert per patient and rule");
    }
}

/// Sends up to four bodies at once.
async fn at_once(app: &TestApp, access: &str, bodies: &[Value]) -> Vec<Reply> {
    let send = |i: usize| {
        let body = bodies.get(i).cloned();
        async move {
            match body {
                Some(body) => Some(app.post("/v1/check-ins", access, body).await),
                None => None,
            }
        }
    };
    let (a, b, c, d) = tokio::join!(send(0), send(1), send(2), send(3));
    [a, b, c, d].into_iter().flatten().collect()
}

async fn every_safety_answer_sits_on_an_unresolved_alert_until_a_person_resolves_it(
    backend: Backend,
) {
    let cases = std::env::var("COMPANION_TEST_SAFETY_ANSWERS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let result = runner.run(&prop::collection::vec(op(), 4..20), |ops| {
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                let app =
                    TestApp::with_settings(backend, &[("COMPANION_ACCESS_TOKEN_TTL", "86400")])
                        .await;
                let world = app.world().await;
                let mut scenario = Scenario {
                    app,
                    staff: world.clinician_a.clone(),
                    patients: vec![world.patient_a.clone(), world.patient_a2.clone()],
                    pending: vec![BTreeSet::new(), BTreeSet::new()],
                    last: vec![None, None],
                    stored: vec![BTreeSet::new(), BTreeSet::new()],
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
