//! `companion demo`: a demo clinic to look at on day one. It drives the JSON API in-process
//! (the same routes and use cases a phone app and the console use), on a clock that starts
//! three weeks ago and moves a day at a time, so check-ins, sessions and alerts carry
//! realistic times. Refused in production.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::app::{App, AppState};
use crate::clock::ManualClock;
use crate::config::{Config, Environment};

/// The demo accounts' shared password (demo data only).
pub const DEMO_PASSWORD: &str = "demo passphrase";
/// The demo clinician's email.
pub const DEMO_CLINICIAN: &str = "clinician@demo.companion.example";
/// Days of history the demo creates.
const DAYS: i64 = 21;

const PATIENTS: [&str; 12] = [
    "Avery Demo",
    "Blake Demo",
    "Casey Demo",
    "Devon Demo",
    "Emery Demo",
    "Finley Demo",
    "Gray Demo",
    "Harper Demo",
    "Indy Demo",
    "Jules Demo",
    "Kai Demo",
    "Logan Demo",
];

struct Api {
    router: Router,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Value> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Body::from(body.to_string()))?;
        let response = self.router.clone().oneshot(request).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{path} answered {status} ({})", value["error"]["code"]);
        }
        Ok(value)
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, token, body).await
    }
}

/// A signed-in demo account.
struct Person {
    access: String,
    refresh: String,
}

impl Person {
    fn of(tokens: &Value) -> anyhow::Result<Self> {
        Ok(Person {
            access: tokens["access_token"]
                .as_str()
                .context("no access token")?
                .to_owned(),
            refresh: tokens["refresh_token"]
                .as_str()
                .context("no refresh token")?
                .to_owned(),
        })
    }

    async fn refresh(&mut self, api: &Api) -> anyhow::Result<()> {
        let tokens = api
            .post(
                "/v1/auth/refresh",
                None,
                json!({"refresh_token": self.refresh}),
            )
            .await?;
        *self = Person::of(&tokens)?;
        Ok(())
    }
}

async fn join(
    api: &Api,
    inviter: &Person,
    clinic: &str,
    role: &str,
    email: &str,
    name: &str,
) -> anyhow::Result<Person> {
    let invitation = api
        .post(
            &format!("/v1/clinics/{clinic}/invitations"),
            Some(&inviter.access),
            json!({"role": role}),
        )
        .await?;
    let tokens = api
        .post(
            "/v1/invitations/accept",
            None,
            json!({"code": invitation["code"], "email": email, "password": DEMO_PASSWORD,
                   "display_name": name, "timezone": "America/Chicago"}),
        )
        .await?;
    Person::of(&tokens)
}

fn phq9(level: i64, item9: i64) -> Value {
    let mut answers = serde_json::Map::new();
    for i in 1..=8 {
        answers.insert(format!("q{i}"), json!(level.clamp(0, 3)));
    }
    answers.insert("q9".into(), json!(item9));
    Value::Object(answers)
}

fn gad7(level: i64) -> Value {
    let mut answers = serde_json::Map::new();
    for i in 1..=7 {
        answers.insert(format!("q{i}"), json!(level.clamp(0, 3)));
    }
    Value::Object(answers)
}

/// Creates the demo clinic and prints how to sign in.
pub async fn run(config: Config) -> anyhow::Result<()> {
    if config.environment == Environment::Production {
        bail!(
            "`companion demo` creates made-up patients and is refused when COMPANION_ENV=production"
        );
    }
    let addr = config.addr;
    let start = Utc::now() - TimeDelta::days(DAYS);
    let clock = Arc::new(ManualClock::new(start));
    let app = Arc::new(App::new(config, clock.clone())?);
    let exists = app
        .db
        .run(|conn| crate::account::find_by_email(conn, DEMO_CLINICIAN))
        .await?;
    if exists.is_none() {
        seed(&app, &clock).await?;
    } else {
        eprintln!("The demo clinic already exists.");
    }
    let invitation = patient_invitation(&app, &clock).await?;
    println!("Demo clinic ready. Start the server with `companion serve` and open");
    println!("  http://{addr}/console");
    println!(
        "Sign in as {DEMO_CLINICIAN} (or admin@demo.companion.example) with the password \"{DEMO_PASSWORD}\"."
    );
    println!(
        "A new patient can enrol in the patient app (single use, open it in a phone-sized window):"
    );
    println!("  {invitation}");
    Ok(())
}

/// A fresh patient invitation from the demo clinic's admin, as the app link the console shows.
async fn patient_invitation(app: &Arc<App>, clock: &ManualClock) -> anyhow::Result<String> {
    // Dated now, so it is open for the usual week whatever the demo's clock was left at.
    clock.set(Utc::now());
    let api = Api {
        router: crate::router::router(AppState(app.clone())),
    };
    let admin = Person::of(
        &api.post(
            "/v1/auth/login",
            None,
            json!({"email": "admin@demo.companion.example", "password": DEMO_PASSWORD}),
        )
        .await?,
    )?;
    let clinic = api
        .call(Method::GET, "/v1/me", Some(&admin.access), Value::Null)
        .await?;
    let clinic = clinic["clinic_id"].as_str().context("no clinic id")?;
    let invitation = api
        .post(
            &format!("/v1/clinics/{clinic}/invitations"),
            Some(&admin.access),
            json!({"role": "patient"}),
        )
        .await?;
    let code = invitation["code"].as_str().context("no invitation code")?;
    Ok(crate::patient_app::qr::join_link(
        app.config.public_url.as_str(),
        code,
    ))
}

async fn seed(app: &Arc<App>, clock: &ManualClock) -> anyhow::Result<()> {
    let api = Api {
        router: crate::router::router(AppState(app.clone())),
    };
    let org_email = "org-admin@demo.companion.example";
    crate::account::use_cases::create_org_admin(&app.db, org_email, DEMO_PASSWORD, app.now())
        .await?;
    let org = Person::of(
        &api.post(
            "/v1/auth/login",
            None,
            json!({"email": org_email, "password": DEMO_PASSWORD}),
        )
        .await?,
    )?;
    let clinic = api
        .post(
            "/v1/clinics",
            Some(&org.access),
            json!({"name": "Demo Ketamine Clinic", "timezone": "America/Chicago"}),
        )
        .await?;
    let clinic = clinic["id"].as_str().context("no clinic id")?.to_owned();
    let admin = join(
        &api,
        &org,
        &clinic,
        "clinic_admin",
        "admin@demo.companion.example",
        "Dr. Admin Demo",
    )
    .await?;
    let clinician = join(
        &api,
        &admin,
        &clinic,
        "clinician",
        DEMO_CLINICIAN,
        "Dr. Clinician Demo",
    )
    .await?;
    api.call(
        Method::PUT,
        "/v1/me/on-call",
        Some(&clinician.access),
        json!({"on_call": true}),
    )
    .await?;
    let mut patients = Vec::new();
    for (i, name) in PATIENTS.iter().enumerate() {
        // Invitation acceptance is rate limited per client; the demo clock lets a minute pass.
        clock.advance(TimeDelta::seconds(61));
        let email = format!("patient{}@demo.companion.example", i + 1);
        let person = join(&api, &clinician, &clinic, "patient", &email, name).await?;
        let me = api
            .call(Method::GET, "/v1/me", Some(&person.access), Value::Null)
            .await?;
        let id = me["id"].as_str().context("no patient id")?.to_owned();
        patients.push((id, person));
    }
    let mut clinician = clinician;
    let mut pending_sessions: Vec<String> = Vec::new();
    for day in 0..DAYS {
        clinician.refresh(&api).await?;
        for (i, (id, person)) in patients.iter_mut().enumerate() {
            person.refresh(&api).await?;
            let i = i as i64;
            // Most patients improve over the series; two decline; one stops answering.
            let trend = match i {
                1 | 4 => -day / 4,
                _ => day / 5,
            };
            if i == 11 && day > DAYS - 5 {
                continue;
            }
            let mood = (4 + trend + (day + i) % 3).clamp(0, 10);
            let mut answers = json!({"mood": mood, "sleep_hours": 6 + (day + i) % 3});
            if i % 3 == 0 {
                answers["bp_systolic"] = json!(118 + (day * 3 + i) % 20);
                answers["bp_diastolic"] = json!(76 + (day + i) % 10);
            }
            let now = app.now().to_rfc3339();
            api.post(
                "/v1/check-ins",
                Some(&person.access),
                json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "daily_mood", "answers": answers, "completed_at": now}),
            )
            .await?;
            if day % 7 == 3 {
                let level = (2 - trend / 2).clamp(0, 3);
                let item9 = i64::from(i == 0 && day == DAYS - 4);
                for (instrument, answers) in [("phq9", phq9(level, item9)), ("gad7", gad7(level))] {
                    api.post(
                        "/v1/check-ins",
                        Some(&person.access),
                        json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": instrument, "answers": answers, "completed_at": now}),
                    )
                    .await?;
                }
            }
            if day % 7 == 0 && i < 8 {
                let at = (app.now() + TimeDelta::hours(2)).to_rfc3339();
                let session = api
                    .post(
                        &format!("/v1/patients/{id}/sessions"),
                        Some(&clinician.access),
                        json!({"modality": if i % 2 == 0 { "iv_infusion" } else { "intranasal_esketamine" }, "scheduled_at": at}),
                    )
                    .await?;
                pending_sessions.push(session["id"].as_str().unwrap_or_default().to_owned());
            }
        }
        clock.advance(TimeDelta::days(1));
        // Yesterday's sessions took place.
        clinician.refresh(&api).await?;
        for session in pending_sessions.drain(..) {
            api.call(
                Method::PATCH,
                &format!("/v1/sessions/{session}"),
                Some(&clinician.access),
                json!({"status": "completed"}),
            )
            .await?;
        }
    }
    // An upcoming session for the first patients, and a fresh safety answer to work on.
    clinician.refresh(&api).await?;
    for (id, _) in patients.iter().take(4) {
        let at = (app.now() + TimeDelta::days(2)).to_rfc3339();
        api.post(
            &format!("/v1/patients/{id}/sessions"),
            Some(&clinician.access),
            json!({"modality": "iv_infusion", "scheduled_at": at}),
        )
        .await?;
    }
    if let Some((_, person)) = patients.get_mut(2) {
        person.refresh(&api).await?;
        let now = app.now().to_rfc3339();
        api.post(
            "/v1/check-ins",
            Some(&person.access),
            json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "phq9", "answers": phq9(2, 1), "completed_at": now}),
        )
        .await?;
    }
    Ok(())
}
