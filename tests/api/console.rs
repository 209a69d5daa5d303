//! The care-team console over HTTP: sign-in with a cookie session on the API's session
//! records, CSRF refusal, each form's validation messages, and cross-clinic denial on every
//! console route.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::TimeDelta;
use serde_json::json;

use crate::both;
use crate::escalation::{phq9, submit};
use crate::harness::{Actor, Backend, PASSWORD, Reply, TestApp};

both!(
    staff_sign_in_with_a_strict_http_only_cookie_and_land_on_the_inbox,
    sign_in_form_says_what_is_wrong_and_is_rate_limited,
    patients_and_organisation_admins_are_refused_the_console,
    a_form_posted_without_its_csrf_token_is_refused,
    an_item_nine_alert_is_worked_from_the_inbox,
    signing_out_revokes_the_session_the_cookie_carried,
    staff_of_another_clinic_are_denied_every_console_route,
    the_patient_page_charts_each_day_and_schedules_sessions,
    clinic_admins_create_list_and_revoke_invitations,
    the_roster_ranks_and_searches_only_the_clinics_own_patients,
    clinic_admins_change_clinic_details_with_validation_messages,
    staff_go_on_and_off_call_from_the_settings_page,
    escalation_policy_and_thresholds_are_edited_with_validation_messages,
    webhooks_are_listed_without_secrets_shown_once_and_deleted,
    settings_forms_need_a_session_and_its_csrf_token,
    the_care_plan_is_edited_row_by_row_with_validation_messages,
    every_console_form_is_refused_alike_without_a_session_a_token_or_a_form_body,
);

/// A browser: the cookies it holds and the CSRF token of the last page.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    pub(crate) cookies: Vec<(String, String)>,
}

fn form_body(fields: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(fields).unwrap()
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            cookies: Vec::new(),
        }
    }

    fn remember(&mut self, reply: &Reply) {
        for value in reply.headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) async fn get(&mut self, path: &str) -> Reply {
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::COOKIE, self.cookie_header())
            .body(Body::empty())
            .unwrap();
        let reply = self.app.send(request).await;
        self.remember(&reply);
        reply
    }

    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form_body(fields)))
            .unwrap();
        let reply = self.app.send(request).await;
        self.remember(&reply);
        reply
    }

    /// Posts `body` as it is, with the content type given.
    pub(crate) async fn post_raw(&mut self, path: &str, content_type: &str, body: &str) -> Reply {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let reply = self.app.send(request).await;
        self.remember(&reply);
        reply
    }

    /// Signs in through the form; the reply to the form's post.
    pub(crate) async fn sign_in(&mut self, email: &str, password: &str) -> Reply {
        let page = self.get("/console/login").await.expect(StatusCode::OK);
        let csrf = csrf_of(&page.text);
        self.post(
            "/console/login",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    /// Signs in and returns the CSRF token of the inbox page.
    pub(crate) async fn signed_in(app: &'a TestApp, who: &Actor) -> (Self, String) {
        let mut browser = Browser::new(app);
        browser
            .sign_in(&who.email, PASSWORD)
            .await
            .expect(StatusCode::SEE_OTHER);
        let page = browser.get("/console").await.expect(StatusCode::OK);
        let csrf = csrf_of(&page.text);
        (browser, csrf)
    }
}

pub(crate) fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..start + 64].to_owned()
}

trait ExpectOk: Sized {
    fn expect_ok(self) -> Result<Self, Self>;
}

impl ExpectOk for Reply {
    fn expect_ok(self) -> Result<Self, Self> {
        if self.status == StatusCode::OK {
            Ok(self)
        } else {
            Err(self)
        }
    }
}

fn location(reply: &Reply) -> &str {
    reply.headers[header::LOCATION].to_str().unwrap()
}

async fn staff_sign_in_with_a_strict_http_only_cookie_and_land_on_the_inbox(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    let mut browser = Browser::new(&app);
    let before = browser.get("/console").await.expect(StatusCode::SEE_OTHER);
    assert_eq!(location(&before), "/console/login");

    let reply = browser
        .sign_in(&w.clinician_a.email, PASSWORD)
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(location(&reply), "/console");
    let cookie = reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("companion_console="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/console"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");

    let sessions_before = app
        .count("SELECT COUNT(*) AS n FROM refresh_families WHERE revoked_at IS NULL")
        .await;
    let inbox = browser.get("/console").await.expect(StatusCode::OK);
    assert!(
        inbox.text.contains("<h1>Alert inbox</h1>"),
        "{}",
        inbox.text
    );
    assert!(inbox.text.contains("No open alerts."));
    assert_eq!(inbox.headers[header::CACHE_CONTROL], "no-store");
    // The console signed in through the same session records as the API (one per sign-in).
    let mut again = Browser::new(&app);
    again
        .sign_in(&w.admin_a.email, PASSWORD)
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM refresh_families WHERE revoked_at IS NULL")
            .await,
        sessions_before + 1
    );

    // Behind a TLS-terminating proxy the cookie is Secure.
    let mut proxied = Browser::new(&app);
    let page = proxied.get("/console/login").await;
    let csrf = csrf_of(&page.text);
    let request = Request::builder()
        .method(Method::POST)
        .uri("/console/login")
        .header(header::COOKIE, proxied.cookie_header())
        .header("x-forwarded-proto", "https")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form_body(&[
            ("csrf", &csrf),
            ("email", &w.clinician_a.email),
            ("password", PASSWORD),
        ])))
        .unwrap();
    let reply = app.send(request).await.expect(StatusCode::SEE_OTHER);
    assert!(
        reply.headers.get_all(header::SET_COOKIE).iter().any(|c| c
            .to_str()
            .unwrap()
            .starts_with("companion_console=")
            && c.to_str().unwrap().contains("; Secure"))
    );
}

async fn sign_in_form_says_what_is_wrong_and_is_rate_limited(backend: Backend) {
    let app = TestApp::with_settings(backend, &[("COMPANION_AUTH_RATE_LIMIT", "5")]).await;
    let org_admin = app.org_admin().await;
    let clinic = app.create_clinic(&org_admin, "Clinic A").await;
    let clinician = app.join(&org_admin, &clinic, "clinician").await;
    let mut browser = Browser::new(&app);
    let empty = browser
        .sign_in("", "")
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.text.contains("Enter your email address."));
    assert!(empty.text.contains("Enter your password."));
    let bad = browser
        .sign_in("not-an-email", "x")
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text.contains("Enter a valid email address"));
    let wrong = browser
        .sign_in(&clinician.email, "wrong password")
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert!(wrong.text.contains("The email or password is wrong."));
    assert!(
        !wrong.text.contains("wrong password"),
        "the password is never echoed"
    );
    // The API's per-account limiter counts console attempts too (5 a minute here).
    let mut last = wrong;
    for _ in 0..5 {
        last = browser.sign_in(&clinician.email, "wrong password").await;
    }
    let last = last.expect(StatusCode::TOO_MANY_REQUESTS);
    assert!(last.text.contains("Too many attempts"));
    app.login(&clinician.email, PASSWORD)
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
}

async fn patients_and_organisation_admins_are_refused_the_console(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    for who in [&w.patient_a, &w.org_admin] {
        let mut browser = Browser::new(&app);
        let reply = browser
            .sign_in(&who.email, PASSWORD)
            .await
            .expect(StatusCode::FORBIDDEN);
        assert!(reply.text.contains("The console is for clinic staff"));
        assert!(
            !reply
                .headers
                .get_all(header::SET_COOKIE)
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("companion_console=")),
            "no session cookie"
        );
    }
    // An API token put in the cookie by hand is no console session, whoever it belongs to.
    for token in [&w.patient_a.access, &w.clinician_a.access] {
        let mut forged = Browser::new(&app);
        forged
            .cookies
            .push(("companion_console".into(), token.clone()));
        let reply = forged.get("/console").await.expect(StatusCode::SEE_OTHER);
        assert_eq!(location(&reply), "/console/login?ended=1");
    }
}

async fn a_form_posted_without_its_csrf_token_is_refused(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    submit(
        &app,
        &w.patient_a,
        "phq9",
        phq9([1, 1, 1, 1, 1, 1, 1, 1, 2]),
    )
    .await;
    let alerts = app
        .get("/v1/alerts?status=open", &w.clinician_a.access)
        .await
        .expect(StatusCode::OK);
    let alert_id = alerts.body["items"][0]["id"].as_str().unwrap().to_owned();
    let (mut browser, csrf) = Browser::signed_in(&app, &w.clinician_a).await;

    let path = format!("/console/alerts/{alert_id}/acknowledge");
    let missing = browser.post(&path, &[]).await.expect(StatusCode::FORBIDDEN);
    assert!(missing.text.contains("Form expired"));
    let wrong = "0".repeat(64);
    browser
        .post(&path, &[("csrf", &wrong)])
        .await
        .expect(StatusCode::FORBIDDEN);
    // Another session's token does not fit this one.
    let (_, other_csrf) = Browser::signed_in(&app, &w.admin_a).await;
    browser
        .post(&path, &[("csrf", &other_csrf)])
        .await
        .expect(StatusCode::FORBIDDEN);
    browser
        .post("/console/logout", &[])
        .await
        .expect(StatusCode::FORBIDDEN);
    let still = app
        .get(&format!("/v1/alerts/{alert_id}"), &w.clinician_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(still.body["alert"]["status"], "open");
    // A sign-in form posted without its own cookie's token is refused as well.
    let mut fresh = Browser::new(&app);
    fresh
        .post(
            "/console/login",
            &[("email", &w.clinician_a.email), ("password", PASSWORD)],
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    // With the token, the same post works.
    browser
        .post(&path, &[("csrf", &csrf)])
        .await
        .expect(StatusCode::SEE_OTHER);
}

async fn an_item_nine_alert_is_worked_from_the_inbox(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    let (mut browser, csrf) = Browser::signed_in(&app, &w.clinician_a).await;
    submit(
        &app,
        &w.patient_a,
        "phq9",
        phq9([1, 1, 1, 1, 1, 1, 1, 1, 2]),
    )
    .await;

    let rows = browser
        .get("/console/alerts/rows?status=open")
        .await
        .expect(StatusCode::OK);
    assert!(
        rows.text.contains("data-severity=\"urgent\""),
        "{}",
        rows.text
    );
    assert!(rows.text.contains("Safety answer (PHQ-9 item 9)"));
    assert!(rows.text.contains("PHQ-9 item 9 answered 2 of 3"));
    assert!(
        rows.text.contains("Test Person"),
        "the patient's display name"
    );
    assert!(rows.text.contains("in 15 min"), "{}", rows.text);
    let alert_id = {
        let marker = "data-alert-id=\"";
        let start = rows.text.find(marker).unwrap() + marker.len();
        rows.text[start..start + 36].to_owned()
    };
    let audits_before = app
        .count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'alerts.read'")
        .await;
    assert!(audits_before >= 2, "every inbox read is audited");

    // Assign: an account that is not staff of the clinic is refused with a message.
    let assign = format!("/console/alerts/{alert_id}/assign");
    let bad = browser
        .post(
            &assign,
            &[("csrf", &csrf), ("assignee_id", &w.patient_a.id)],
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text.contains("Assignee"), "{}", bad.text);
    assert!(bad.text.contains("is not staff of this clinic"));
    browser
        .post(&assign, &[("csrf", &csrf), ("assignee_id", &w.admin_a.id)])
        .await
        .expect(StatusCode::SEE_OTHER);

    let ack = browser
        .post(
            &format!("/console/alerts/{alert_id}/acknowledge"),
            &[("csrf", &csrf), ("back", "open")],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(location(&ack), "/console/alerts?status=open");
    let tab = browser
        .get("/console/alerts?status=acknowledged")
        .await
        .expect(StatusCode::OK);
    assert!(tab.text.contains(&alert_id));

    let resolve = format!("/console/alerts/{alert_id}/resolve");
    let empty = browser
        .post(&resolve, &[("csrf", &csrf), ("note", "  ")])
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.text.contains("Note"));
    assert!(empty.text.contains("must be 1 to 2000 characters"));
    browser
        .post(
            &resolve,
            &[
                ("csrf", &csrf),
                ("note", "Called the patient; safety plan reviewed."),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let again = browser
        .post(&resolve, &[("csrf", &csrf), ("note", "again")])
        .await
        .expect(StatusCode::CONFLICT);
    assert!(again.text.contains("This alert is resolved."));
    let resolved = browser
        .get("/console/alerts?status=resolved")
        .await
        .expect(StatusCode::OK);
    assert!(resolved.text.contains("safety plan reviewed"));
    let api = app
        .get(&format!("/v1/alerts/{alert_id}"), &w.clinician_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(api.body["alert"]["status"], "resolved");
    assert_eq!(api.body["alert"]["assigned_to"], w.admin_a.id.as_str());
    // Titles carry no patient data.
    assert!(!resolved.text.contains("<title>Test Person"));
}

async fn signing_out_revokes_the_session_the_cookie_carried(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    let (mut browser, csrf) = Browser::signed_in(&app, &w.clinician_a).await;
    let stolen = browser.cookies.clone();
    let out = browser
        .post("/console/logout", &[("csrf", &csrf)])
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/console/login?out=1");
    assert!(
        browser
            .cookies
            .iter()
            .all(|(n, _)| n != "companion_console")
    );
    let page = browser
        .get("/console/login?out=1")
        .await
        .expect(StatusCode::OK);
    assert!(page.text.contains("You are signed out."));
    // The old cookie no longer works: the session record is revoked.
    let mut replay = Browser::new(&app);
    replay.cookies = stolen;
    let reply = replay.get("/console").await.expect(StatusCode::SEE_OTHER);
    assert_eq!(location(&reply), "/console/login?ended=1");
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM refresh_families WHERE revoked_reason = 'logout'")
            .await,
        1
    );
}

async fn staff_of_another_clinic_are_denied_every_console_route(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    submit(
        &app,
        &w.patient_a,
        "phq9",
        phq9([1, 1, 1, 1, 1, 1, 1, 1, 2]),
    )
    .await;
    let alerts = app
        .get("/v1/alerts?status=open", &w.clinician_a.access)
        .await
        .expect(StatusCode::OK);
    let alert_id = alerts.body["items"][0]["id"].as_str().unwrap().to_owned();
    let at = (app.app.now() + TimeDelta::days(2)).to_rfc3339();
    let session = app
        .post(
            &format!("/v1/patients/{}/sessions", w.patient_a.id),
            &w.clinician_a.access,
            json!({"modality": "iv_infusion", "scheduled_at": at}),
        )
        .await
        .expect(StatusCode::CREATED);
    let session_id = session.body["id"].as_str().unwrap().to_owned();

    let invitation = app
        .post(
            &format!("/v1/clinics/{}/invitations", w.clinic_a),
            &w.admin_a.access,
            json!({"role": "patient"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let invitation_id = invitation.body["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!invitation_id.is_empty(), "{}", invitation.text);
    let webhook = app
        .post(
            &format!("/v1/clinics/{}/webhooks", w.clinic_a),
            &w.admin_a.access,
            json!({"url": "https://hooks.example.org/clinic-a"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let webhook_id = webhook.body["id"].as_str().unwrap_or_default().to_owned();
    assert!(!webhook_id.is_empty(), "{}", webhook.text);

    for outsider in [&w.clinician_b, &w.admin_b] {
        let (mut browser, csrf) = Browser::signed_in(&app, outsider).await;
        let roster = browser
            .get("/console/patients")
            .await
            .expect(StatusCode::OK);
        assert!(!roster.text.contains(&w.patient_a.id));
        let found = browser
            .post(
                "/console/patients/search",
                &[("csrf", &csrf), ("q", &w.patient_a.email)],
            )
            .await
            .expect(StatusCode::OK);
        assert!(found.text.contains("No patients found."));
        if let Ok(admin) = browser.get("/console/admin").await.expect_ok() {
            assert!(!admin.text.contains(&invitation_id));
        }
        let settings = browser
            .get("/console/settings")
            .await
            .expect(StatusCode::OK);
        assert!(!settings.text.contains("hooks.example.org/clinic-a"));
        assert!(!settings.text.contains(&webhook_id));
        let inbox = browser.get("/console").await.expect(StatusCode::OK);
        assert!(!inbox.text.contains(&alert_id));
        let rows = browser.get("/console/alerts/rows?status=open").await;
        assert!(!rows.text.contains(&alert_id));
        let page = browser
            .get(&format!("/console/patients/{}", w.patient_a.id))
            .await
            .expect(StatusCode::NOT_FOUND);
        assert!(!page.text.contains("Test Person"));
        for (path, fields) in [
            (format!("/console/alerts/{alert_id}/acknowledge"), vec![]),
            (
                format!("/console/alerts/{alert_id}/assign"),
                vec![("assignee_id", outsider.id.as_str())],
            ),
            (
                format!("/console/alerts/{alert_id}/resolve"),
                vec![("note", "not mine")],
            ),
            (
                format!("/console/patients/{}/sessions", w.patient_a.id),
                vec![
                    ("modality", "iv_infusion"),
                    ("scheduled_at", "2030-01-01T09:00"),
                ],
            ),
            (
                format!("/console/sessions/{session_id}/move"),
                vec![("scheduled_at", "2030-01-01T09:00")],
            ),
            (format!("/console/sessions/{session_id}/complete"), vec![]),
            (format!("/console/sessions/{session_id}/cancel"), vec![]),
            (
                format!("/console/admin/invitations/{invitation_id}/revoke"),
                vec![],
            ),
            (
                format!("/console/settings/webhooks/{webhook_id}/delete"),
                vec![],
            ),
        ] {
            let mut all = vec![("csrf", csrf.as_str())];
            all.extend(fields);
            let reply = browser.post(&path, &all).await;
            // Another clinic's records are not found, whatever the outsider's role.
            assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{path}: {}",
                reply.text
            );
        }
    }
    let still = app
        .get(&format!("/v1/alerts/{alert_id}"), &w.clinician_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(still.body["alert"]["status"], "open");
    let (mut owner, _) = Browser::signed_in(&app, &w.admin_a).await;
    let settings = owner.get("/console/settings").await.expect(StatusCode::OK);
    assert!(
        settings.text.contains(&webhook_id),
        "the webhook is still there"
    );
}

async fn the_patient_page_charts_each_day_and_schedules_sessions(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    for day in 0..5 {
        let patient = Actor {
            access: app.token(&w.patient_a).await,
            ..w.patient_a.clone()
        };
        submit(&app, &patient, "daily_mood", json!({"mood": 4 + day % 3})).await;
        if day == 2 {
            submit(&app, &patient, "phq9", phq9([1, 1, 1, 1, 1, 1, 1, 1, 0])).await;
        }
        app.clock.advance(TimeDelta::days(1));
    }
    let w = crate::harness::World {
        clinician_a: Actor {
            access: app.token(&w.clinician_a).await,
            ..w.clinician_a.clone()
        },
        ..w
    };
    // The worker plans the patient's coming prompts.
    app.run_workers().await;
    let (mut browser, csrf) = Browser::signed_in(&app, &w.clinician_a).await;
    let path = format!("/console/patients/{}", w.patient_a.id);
    let page = browser.get(&path).await.expect(StatusCode::OK);
    // Prompts, adherence and the plan in force (the built-in default: the clinic set none).
    let planned = &page.text[page.text.find("id=\"prompts\"").unwrap()..];
    let planned = &planned[..planned.find("</table>").unwrap()];
    assert!(
        planned.contains(
            "<td data-label=\"Check-in\">Daily mood</td><td data-label=\"Status\">scheduled</td>"
        ),
        "{planned}"
    );
    assert!(
        page.text
            .contains("<dt>Care plan</dt><dd>the built-in default</dd>"),
        "{}",
        page.text
    );
    assert!(
        page.text
            .contains("<td data-label=\"When\">every Mon, skipped within 7 days of a session</td>")
    );
    assert!(page.text.contains("<dt>In a row</dt><dd>"));
    let mood = &page.text[page.text.find("id=\"mood-chart\"").unwrap()..];
    let mood = &mood[..mood.find("</svg>").unwrap()];
    assert_eq!(mood.matches("<circle class=\"point\"").count(), 5, "{mood}");
    assert!(page.text.contains("5 days with a mood answer"));
    assert!(page.text.contains("1 PHQ-9 totals"), "{}", page.text);
    assert!(
        page.text
            .contains("<title>Patient · Companion console</title>")
    );
    assert!(
        app.count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'trends.read'")
            .await
            >= 1
    );

    let schedule = format!("{path}/sessions");
    let missing = browser
        .post(
            &schedule,
            &[
                ("csrf", &csrf),
                ("modality", "teleport"),
                ("scheduled_at", ""),
            ],
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(missing.text.contains("choose a treatment"));
    assert!(missing.text.contains("Date and time"));
    assert!(missing.text.contains("enter a date and time"));
    let far = browser
        .post(
            &schedule,
            &[
                ("csrf", &csrf),
                ("modality", "iv_infusion"),
                ("scheduled_at", "2099-01-01T09:00"),
            ],
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(far.text.contains("must be within two years of today"));
    let when = (app.app.now() + TimeDelta::days(3))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let done = browser
        .post(
            &schedule,
            &[
                ("csrf", &csrf),
                ("modality", "intranasal_esketamine"),
                ("scheduled_at", &when),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    assert!(location(&done).starts_with(&path));
    let page = browser.get(&path).await.expect(StatusCode::OK);
    assert!(page.text.contains("Esketamine nasal spray"));
    let sessions = app
        .get(
            &format!("/v1/patients/{}/sessions", w.patient_a.id),
            &w.clinician_a.access,
        )
        .await
        .expect(StatusCode::OK);
    let session_id = sessions.body["items"][0]["id"].as_str().unwrap().to_owned();
    let patient = w.patient_a.id.as_str();
    let bad_move = browser
        .post(
            &format!("/console/sessions/{session_id}/move"),
            &[
                ("csrf", &csrf),
                ("patient", patient),
                ("scheduled_at", "tomorrow"),
            ],
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_move.text.contains("enter a date and time"));
    browser
        .post(
            &format!("/console/sessions/{session_id}/cancel"),
            &[("csrf", &csrf), ("patient", patient)],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let after = app
        .get(
            &format!("/v1/patients/{}/sessions", w.patient_a.id),
            &w.clinician_a.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(after.body["items"][0]["status"], "cancelled");
}

async fn clinic_admins_create_list_and_revoke_invitations(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    let (mut browser, csrf) = Browser::signed_in(&app, &w.admin_a).await;
    let bad = browser
        .post(
            "/console/admin/invitations",
            &[
                ("csrf", &csrf),
                ("role", "patient"),
                ("email", "not an email"),
            ],
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text.contains("Email"), "{}", bad.text);
    let no_role = browser
        .post(
            "/console/admin/invitations",
            &[("csrf", &csrf), ("role", "")],
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        no_role
            .text
            .contains("must be patient, clinician or clinic_admin")
    );

    let created = browser
        .post(
            "/console/admin/invitations",
            &[("csrf", &csrf), ("role", "clinician"), ("email", "")],
        )
        .await
        .expect(StatusCode::CREATED);
    assert!(created.text.contains("Invitation created"));
    let code = {
        let marker = "<code class=\"invitation-code\">";
        let start = created.text.find(marker).unwrap() + marker.len();
        let end = created.text[start..].find('<').unwrap() + start;
        created.text[start..end].to_owned()
    };
    let page = browser.get("/console/admin").await.expect(StatusCode::OK);
    assert!(!page.text.contains(&code), "the code is shown only once");
    let id = {
        let marker = "data-invitation-id=\"";
        let start = page.text.find(marker).unwrap() + marker.len();
        page.text[start..start + 36].to_owned()
    };
    assert!(page.text.contains("Test Person"), "the staff list");

    // Clinicians may not manage invitations.
    let (mut clinician, clinician_csrf) = Browser::signed_in(&app, &w.clinician_a).await;
    let refused = clinician
        .get("/console/admin")
        .await
        .expect(StatusCode::FORBIDDEN);
    assert!(
        refused
            .text
            .contains("Only a clinic admin may manage the clinic")
    );
    clinician
        .post(
            &format!("/console/admin/invitations/{id}/revoke"),
            &[("csrf", &clinician_csrf)],
        )
        .await
        .expect(StatusCode::FORBIDDEN);

    browser
        .post(
            &format!("/console/admin/invitations/{id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let after = browser.get("/console/admin").await.expect(StatusCode::OK);
    assert!(!after.text.contains(&id));
    // The revoked code no longer works.
    let accept = app.accept(&code, "late@example.org").await;
    assert_ne!(accept.status, StatusCode::CREATED, "{}", accept.text);
    // Revoking it again changes nothing and is harmless, as through the API.
    browser
        .post(
            &format!("/console/admin/invitations/{id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
}

async fn the_roster_ranks_and_searches_only_the_clinics_own_patients(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    submit(
        &app,
        &w.patient_a2,
        "phq9",
        phq9([1, 1, 1, 1, 1, 1, 1, 1, 1]),
    )
    .await;
    let (mut browser, csrf) = Browser::signed_in(&app, &w.clinician_a).await;
    let roster = browser
        .get("/console/patients")
        .await
        .expect(StatusCode::OK);
    let first = roster.text.find(&w.patient_a2.id).unwrap();
    let second = roster.text.find(&w.patient_a.id).unwrap();
    assert!(
        first < second,
        "the patient with an urgent alert is listed first"
    );
    assert!(!roster.text.contains(&w.patient_b.id));
    // Search by external id (MRN), case-insensitively.
    let mrn = app
        .patch(
            &format!("/v1/patients/{}", w.patient_a.id),
            &w.clinician_a.access,
            json!({"external_id": "MRN-Search-7"}),
        )
        .await;
    assert_eq!(mrn.status, StatusCode::OK, "{}", mrn.body);
    let found = browser
        .post(
            "/console/patients/search",
            &[("csrf", &csrf), ("q", "mrn-search-7")],
        )
        .await
        .expect(StatusCode::OK);
    assert!(found.text.contains(&w.patient_a.id));
    assert!(!found.text.contains(&w.patient_a2.id));
    let long = "x".repeat(101);
    let too_long = browser
        .post("/console/patients/search", &[("csrf", &csrf), ("q", &long)])
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(too_long.text.contains("must be 1 to 100 characters"));
    browser
        .post("/console/patients/search", &[("q", "anyone")])
        .await
        .expect(StatusCode::FORBIDDEN);
}

/// The benchmark of the issue: the inbox and the patient page for a clinic of 500 patients with
/// 200 open alerts and a year of daily check-ins for the patient shown. Ignored by default (it
/// seeds for a minute); run with
/// `cargo test -p companion-server --test api console_pages_at_clinic_scale -- --ignored --nocapture`.
async fn console_pages_at_clinic_scale(backend: Backend) {
    let app = TestApp::new(backend).await;
    let start = app.app.now();
    app.clock.set(start - TimeDelta::days(366));
    let org_admin = app.org_admin().await;
    let clinic = app.create_clinic(&org_admin, "Big clinic").await;
    let admin = app.join(&org_admin, &clinic, "clinic_admin").await;
    let clinician = app.join(&admin, &clinic, "clinician").await;
    let mut patients = Vec::new();
    for _ in 0..500 {
        patients.push(app.join(&clinician, &clinic, "patient").await);
    }
    let shown = patients[0].clone();
    for day in 0..365 {
        let patient = Actor {
            access: app.token(&shown).await,
            ..shown.clone()
        };
        submit(
            &app,
            &patient,
            "daily_mood",
            json!({"mood": 3 + day % 6, "bp_systolic": 120, "bp_diastolic": 80}),
        )
        .await;
        if day % 7 == 0 {
            submit(&app, &patient, "phq9", phq9([1, 1, 1, 1, 1, 1, 1, 1, 0])).await;
            submit(
                &app,
                &patient,
                "gad7",
                json!({"q1": 1, "q2": 1, "q3": 1, "q4": 1, "q5": 1, "q6": 1, "q7": 1}),
            )
            .await;
        }
        app.clock.advance(TimeDelta::days(1));
    }
    app.clock.set(start);
    for patient in patients.iter().skip(1).take(200) {
        let patient = Actor {
            access: app.token(patient).await,
            ..patient.clone()
        };
        submit(&app, &patient, "phq9", phq9([1, 1, 1, 1, 1, 1, 1, 1, 1])).await;
    }
    let clinician = Actor {
        access: app.token(&clinician).await,
        ..clinician
    };
    let open = app
        .get("/v1/alerts?status=open&limit=200", &clinician.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(open.body["items"].as_array().unwrap().len(), 200);

    let (mut browser, _) = Browser::signed_in(&app, &clinician).await;
    for (name, path) in [
        ("inbox (200 open alerts)", "/console".to_owned()),
        (
            "inbox rows partial",
            "/console/alerts/rows?status=open".to_owned(),
        ),
        (
            "patient page (a year of check-ins)",
            format!("/console/patients/{}", shown.id),
        ),
        ("roster (500 patients)", "/console/patients".to_owned()),
    ] {
        let mut times = Vec::new();
        for _ in 0..100 {
            let started = std::time::Instant::now();
            let reply = browser.get(&path).await;
            times.push(started.elapsed());
            assert_eq!(reply.status, StatusCode::OK);
        }
        times.sort();
        let p50 = times[49].as_secs_f64() * 1000.0;
        let p99 = times[98].as_secs_f64() * 1000.0;
        println!("{backend:?} {name}: p50 {p50:.1} ms, p99 {p99:.1} ms (100 requests)");
    }
}

mod scale {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a benchmark: seeds a clinic of 500 patients"]
    async fn console_pages_at_clinic_scale_sqlite() {
        super::console_pages_at_clinic_scale(crate::harness::Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a benchmark: seeds a clinic of 500 patients"]
    async fn console_pages_at_clinic_scale_postgres() {
        super::console_pages_at_clinic_scale(crate::harness::Backend::Postgres).await
    }
}

async fn clinic_admins_change_clinic_details_with_validation_messages(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    let (mut admin, csrf) = Browser::signed_in(&app, &w.admin_a).await;
    let page = admin.get("/console/settings").await.expect(StatusCode::OK);
    assert!(page.text.contains("id=\"clinic-form\""), "{}", page.text);

    let bad = admin
        .post(
            "/console/settings/clinic",
            &[
                ("csrf", &csrf),
                ("name", " "),
                ("timezone", "Mars/Base"),
                ("country", "ZZ"),
                ("crisis_phone", "call us"),
            ],
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    for expected in [
        "Name</strong> must be 1 to 200 characters",
        "Time zone</strong> must be an IANA time zone name",
        "Country</strong> must be an ISO 3166-1 alpha-2 code",
        "Crisis phone</strong> must be a phone number",
    ] {
        assert!(bad.text.contains(expected), "{expected}: {}", bad.text);
    }
    let unchanged = app
        .get(&format!("/v1/clinics/{}", w.clinic_a), &w.admin_a.access)
        .await
        .expect(StatusCode::OK);
    assert!(unchanged.body["crisis_phone"].is_null());

    admin
        .post(
            "/console/settings/clinic",
            &[
                ("csrf", &csrf),
                ("name", "Lakeside Ketamine Clinic"),
                ("timezone", "America/Chicago"),
                ("country", "us"),
                ("crisis_phone", "+1 312 555 0100"),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let shown = admin.get("/console/settings").await.expect(StatusCode::OK);
    assert!(shown.text.contains("+1 312 555 0100"));
    assert!(shown.text.contains("Lakeside Ketamine Clinic"));
    let changed = app
        .get(&format!("/v1/clinics/{}", w.clinic_a), &w.admin_a.access)
        .await
        .expect(StatusCode::OK);
    assert_eq!(changed.body["crisis_phone"], "+1 312 555 0100");
    assert_eq!(changed.body["country"], "US");
    assert_eq!(changed.body["timezone"], "America/Chicago");

    // Clearing the optional fields.
    admin
        .post(
            "/console/settings/clinic",
            &[
                ("csrf", &csrf),
                ("name", "Lakeside Ketamine Clinic"),
                ("timezone", "America/Chicago"),
                ("country", ""),
                ("crisis_phone", "+1 312 555 0199"),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let cleared = app
        .get(&format!("/v1/clinics/{}", w.clinic_a), &w.admin_a.access)
        .await
        .expect(StatusCode::OK);
    assert!(cleared.body["country"].is_null());

    // Clinicians read the details but may not change them.
    let (mut clinician, clinician_csrf) = Browser::signed_in(&app, &w.clinician_a).await;
    let read = clinician
        .get("/console/settings")
        .await
        .expect(StatusCode::OK);
    assert!(read.text.contains("+1 312 555 0199"));
    assert!(!read.text.contains("id=\"clinic-form\""));
    let refused = clinician
        .post(
            "/console/settings/clinic",
            &[
                ("csrf", &clinician_csrf),
                ("name", "Taken Over"),
                ("timezone", "America/Chicago"),
            ],
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    assert!(
        refused
            .text
            .contains("Only a clinic admin may change the clinic.")
    );

    // Another clinic's staff never see it.
    for outsider in [&w.clinician_b, &w.admin_b] {
        let (mut browser, _) = Browser::signed_in(&app, outsider).await;
        let theirs = browser
            .get("/console/settings")
            .await
            .expect(StatusCode::OK);
        assert!(!theirs.text.contains("+1 312 555 0199"));
        assert!(!theirs.text.contains("Lakeside Ketamine Clinic"));
    }
    // A form without its token changes nothing.
    admin
        .post(
            "/console/settings/clinic",
            &[("name", "Forged"), ("timezone", "America/Chicago")],
        )
        .await
        .expect(StatusCode::FORBIDDEN);
}

async fn staff_go_on_and_off_call_from_the_settings_page(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    let (mut clinician, csrf) = Browser::signed_in(&app, &w.clinician_a).await;
    let before = clinician
        .get("/console/settings")
        .await
        .expect(StatusCode::OK);
    assert!(before.text.contains("Go on call"), "{}", before.text);
    let nobody = app
        .get(
            &format!("/v1/clinics/{}/readiness", w.clinic_a),
            &w.admin_a.access,
        )
        .await
        .expect(StatusCode::OK);
    assert!(
        nobody.text.contains("\"nobody_on_call\""),
        "{}",
        nobody.text
    );
    let bad = clinician
        .post(
            "/console/settings/on-call",
            &[("csrf", &csrf), ("on_call", "maybe")],
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text.contains("On call</strong> must be true or false"));
    clinician
        .post(
            "/console/settings/on-call",
            &[("csrf", &csrf), ("on_call", "true")],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let after = clinician
        .get("/console/settings")
        .await
        .expect(StatusCode::OK);
    assert!(after.text.contains("Go off call"));
    // The admin sees who is on call, on the roster and in the readiness the API reports.
    let (mut admin, _) = Browser::signed_in(&app, &w.admin_a).await;
    let roster = admin.get("/console/settings").await.expect(StatusCode::OK);
    assert!(roster.text.contains("<strong>on call</strong>"));
    let readiness = app
        .get(
            &format!("/v1/clinics/{}/readiness", w.clinic_a),
            &w.admin_a.access,
        )
        .await
        .expect(StatusCode::OK);
    assert!(
        !readiness.text.contains("\"nobody_on_call\""),
        "{}",
        readiness.text
    );
    clinician
        .post(
            "/console/settings/on-call",
            &[("csrf", &csrf), ("on_call", "false")],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let off = admin.get("/console/settings").await.expect(StatusCode::OK);
    assert!(!off.text.contains("<strong>on call</strong>"));
    // Another clinic's admin does not see this clinic's staff.
    let (mut outsider, _) = Browser::signed_in(&app, &w.admin_b).await;
    let theirs = outsider
        .get("/console/settings")
        .await
        .expect(StatusCode::OK);
    assert!(!theirs.text.contains(&w.clinician_a.id));
}

async fn escalation_policy_and_thresholds_are_edited_with_validation_messages(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    let (mut admin, csrf) = Browser::signed_in(&app, &w.admin_a).await;
    let page = admin.get("/console/settings").await.expect(StatusCode::OK);
    assert!(page.text.contains("Save escalation policy"));
    assert!(page.text.contains("name=\"phq9_rise\""));
    // The clinic's default care plan, read-only, each rule's timing in words.
    assert!(
        page.text.contains(
            "<td data-label=\"Instrument\">daily_mood</td><td data-label=\"When\">every day</td>"
        ),
        "{}",
        page.text
    );
    assert!(page.text.contains("before each session"));

    let none = admin
        .post("/console/settings/escalation-policy", &[("csrf", &csrf)])
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        none.text.contains("must have 1 to 5 tiers"),
        "{}",
        none.text
    );
    let bad = admin
        .post(
            "/console/settings/escalation-policy",
            &[
                ("csrf", &csrf),
                ("tier0_audience", "on_call"),
                ("tier0_urgent", "90"),
                ("tier0_high", "soon"),
                ("tier1_audience", "everyone"),
            ],
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.text
            .contains("Tier 1 urgent delay</strong> must be 1 to 60"),
        "{}",
        bad.text
    );
    assert!(
        bad.text
            .contains("Tier 1 high delay</strong> must be a whole number of minutes")
    );
    assert!(
        bad.text
            .contains("Tier 2 (who is told)</strong> must be on_call, clinicians or clinic_admins")
    );

    admin
        .post(
            "/console/settings/escalation-policy",
            &[
                ("csrf", &csrf),
                ("tier0_audience", "on_call"),
                ("tier0_urgent", "10"),
                ("tier0_high", ""),
                ("tier1_audience", ""),
                ("tier2_audience", "clinic_admins"),
                ("tier2_low", "600"),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let policy = app
        .get(
            &format!("/v1/clinics/{}/escalation-policy", w.clinic_a),
            &w.clinician_a.access,
        )
        .await
        .expect(StatusCode::OK);
    let tiers = policy.body["tiers"].as_array().unwrap();
    assert_eq!(tiers.len(), 2, "{}", policy.text);
    assert_eq!(tiers[0]["audience"], "on_call");
    assert_eq!(tiers[0]["delay_minutes"]["urgent"], 10);
    assert_eq!(tiers[0]["delay_minutes"]["high"], 120);
    assert_eq!(tiers[1]["audience"], "clinic_admins");
    assert_eq!(tiers[1]["delay_minutes"]["low"], 600);
    let shown = admin.get("/console/settings").await.expect(StatusCode::OK);
    assert!(
        shown.text.contains(
            "name=\"tier1_low\" inputmode=\"numeric\" size=\"5\" placeholder=\"4320\" value=\"600\""
        ),
        "{}",
        shown.text
    );

    let bad = admin
        .post(
            "/console/settings/alert-thresholds",
            &[
                ("csrf", &csrf),
                ("phq9_rise", "99"),
                ("mood_floor", "low"),
                ("missed_prompts", "-1"),
            ],
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.text.contains(
            "PHQ-9 points above baseline for reliable deterioration</strong> must be 1 to 27"
        ),
        "{}",
        bad.text
    );
    assert!(
        bad.text
            .contains("Mood at or below this is the floor</strong> must be a number")
    );
    assert!(
        bad.text
            .contains("Consecutive expired prompts</strong> must be a whole number")
    );
    admin
        .post(
            "/console/settings/alert-thresholds",
            &[
                ("csrf", &csrf),
                ("phq9_rise", "6"),
                ("mood_floor", "2.5"),
                ("systolic", ""),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let thresholds = app
        .get(
            &format!("/v1/clinics/{}/alert-thresholds", w.clinic_a),
            &w.clinician_a.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(thresholds.body["phq9_rise"], 6);
    assert_eq!(thresholds.body["mood_floor"], 2.5);
    assert_eq!(thresholds.body["systolic"], 180);

    // Clinicians read both but change neither.
    let (mut clinician, clinician_csrf) = Browser::signed_in(&app, &w.clinician_a).await;
    let read = clinician
        .get("/console/settings")
        .await
        .expect(StatusCode::OK);
    assert!(read.text.contains("value=\"2.5\""));
    assert!(!read.text.contains("Save alert thresholds"));
    let refused = clinician
        .post(
            "/console/settings/alert-thresholds",
            &[("csrf", &clinician_csrf), ("phq9_rise", "7")],
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    assert!(
        refused
            .text
            .contains("Only a clinic admin may change alert thresholds.")
    );
    clinician
        .post(
            "/console/settings/escalation-policy",
            &[("csrf", &clinician_csrf), ("tier0_audience", "clinicians")],
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    // Another clinic's settings are its own.
    let (mut outsider, outsider_csrf) = Browser::signed_in(&app, &w.admin_b).await;
    let theirs = outsider
        .get("/console/settings")
        .await
        .expect(StatusCode::OK);
    assert!(!theirs.text.contains("value=\"2.5\""));
    outsider
        .post(
            "/console/settings/alert-thresholds",
            &[("csrf", &outsider_csrf), ("phq9_rise", "8")],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let still = app
        .get(
            &format!("/v1/clinics/{}/alert-thresholds", w.clinic_a),
            &w.admin_a.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(still.body["phq9_rise"], 6);
}

async fn webhooks_are_listed_without_secrets_shown_once_and_deleted(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    let (mut admin, csrf) = Browser::signed_in(&app, &w.admin_a).await;
    let empty = admin.get("/console/settings").await.expect(StatusCode::OK);
    assert!(empty.text.contains("No webhooks."));
    let bad = admin
        .post(
            "/console/settings/webhooks",
            &[("csrf", &csrf), ("url", "not a url")],
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.text
            .contains("URL</strong> must be an http or https URL"),
        "{}",
        bad.text
    );

    let url = "https://hooks.example.org/companion";
    let created = admin
        .post(
            "/console/settings/webhooks",
            &[("csrf", &csrf), ("url", url)],
        )
        .await
        .expect(StatusCode::CREATED);
    assert!(created.text.contains("Webhook created"));
    let secret = {
        let marker = "<code class=\"webhook-secret\">";
        let start = created.text.find(marker).unwrap() + marker.len();
        let end = created.text[start..].find('<').unwrap() + start;
        created.text[start..end].to_owned()
    };
    assert!(secret.len() >= 16, "{secret}");
    let listed = admin.get("/console/settings").await.expect(StatusCode::OK);
    assert!(listed.text.contains(url));
    assert!(
        !listed.text.contains(&secret),
        "the secret is shown only once"
    );
    let id = {
        let marker = "data-webhook-id=\"";
        let start = listed.text.find(marker).unwrap() + marker.len();
        listed.text[start..start + 36].to_owned()
    };

    // Clinicians see no webhooks and may not add one.
    let (mut clinician, clinician_csrf) = Browser::signed_in(&app, &w.clinician_a).await;
    let read = clinician
        .get("/console/settings")
        .await
        .expect(StatusCode::OK);
    assert!(!read.text.contains(url));
    assert!(!read.text.contains("webhook-form"));
    let refused = clinician
        .post(
            "/console/settings/webhooks",
            &[
                ("csrf", &clinician_csrf),
                ("url", "https://evil.example.org/"),
            ],
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    assert!(
        refused
            .text
            .contains("Only a clinic admin may manage webhooks.")
    );
    clinician
        .post(
            &format!("/console/settings/webhooks/{id}/delete"),
            &[("csrf", &clinician_csrf)],
        )
        .await
        .expect(StatusCode::NOT_FOUND);

    // Another clinic's admin neither sees nor deletes it.
    let (mut outsider, outsider_csrf) = Browser::signed_in(&app, &w.admin_b).await;
    let theirs = outsider
        .get("/console/settings")
        .await
        .expect(StatusCode::OK);
    assert!(!theirs.text.contains(url));
    assert!(!theirs.text.contains(&id));
    outsider
        .post(
            &format!("/console/settings/webhooks/{id}/delete"),
            &[("csrf", &outsider_csrf)],
        )
        .await
        .expect(StatusCode::NOT_FOUND);

    admin
        .post(
            &format!("/console/settings/webhooks/{id}/delete"),
            &[("csrf", &csrf)],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let after = admin.get("/console/settings").await.expect(StatusCode::OK);
    assert!(!after.text.contains(url));
    assert!(after.text.contains("No webhooks."));
    // Deleting again changes nothing (as through the API).
    admin
        .post(
            &format!("/console/settings/webhooks/{id}/delete"),
            &[("csrf", &csrf)],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let again = admin.get("/console/settings").await.expect(StatusCode::OK);
    assert!(again.text.contains("No webhooks."));
}

async fn settings_forms_need_a_session_and_its_csrf_token(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    let mut anonymous = Browser::new(&app);
    let sent = anonymous
        .get("/console/settings")
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(location(&sent), "/console/login");

    let (mut admin, _) = Browser::signed_in(&app, &w.admin_a).await;
    let wrong = "0".repeat(64);
    let zero_id = "00000000-0000-0000-0000-000000000000";
    for (path, fields) in [
        (
            "/console/settings/clinic".to_owned(),
            vec![
                ("name", "Forged"),
                ("timezone", "UTC"),
                ("crisis_phone", "911"),
            ],
        ),
        (
            "/console/settings/on-call".to_owned(),
            vec![("on_call", "true")],
        ),
        (
            "/console/settings/escalation-policy".to_owned(),
            vec![("tier0_audience", "clinic_admins")],
        ),
        (
            "/console/settings/alert-thresholds".to_owned(),
            vec![("phq9_rise", "9")],
        ),
        (
            "/console/settings/webhooks".to_owned(),
            vec![("url", "https://forged.example.org/")],
        ),
        (
            "/console/settings/care-plan".to_owned(),
            vec![("rule0_id", "forged"), ("rule0_instrument", "gad7")],
        ),
        (
            format!("/console/settings/webhooks/{zero_id}/delete"),
            vec![],
        ),
    ] {
        let missing = admin.post(&path, &fields).await;
        assert_eq!(missing.status, StatusCode::FORBIDDEN, "{path}");
        assert!(missing.text.contains("Form expired"), "{path}");
        let mut with_wrong = vec![("csrf", wrong.as_str())];
        with_wrong.extend(fields.iter().copied());
        let reply = admin.post(&path, &with_wrong).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        let reply = anonymous.post(&path, &with_wrong).await;
        assert_ne!(reply.status, StatusCode::OK, "{path}");
        assert_ne!(reply.status, StatusCode::CREATED, "{path}");
    }
    let page = admin.get("/console/settings").await.expect(StatusCode::OK);
    assert!(!page.text.contains("Forged"));
    assert!(!page.text.contains("forged.example.org"));
    assert!(page.text.contains("No webhooks."));
    assert!(page.text.contains("Go on call"));
    let thresholds = app
        .get(
            &format!("/v1/clinics/{}/alert-thresholds", w.clinic_a),
            &w.admin_a.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(thresholds.body["phq9_rise"], 5);
    let policy = app
        .get(
            &format!("/v1/clinics/{}/escalation-policy", w.clinic_a),
            &w.admin_a.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(policy.body["tiers"].as_array().unwrap().len(), 3);
}

async fn the_care_plan_is_edited_row_by_row_with_validation_messages(backend: Backend) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    let (mut admin, csrf) = Browser::signed_in(&app, &w.admin_a).await;
    let page = admin.get("/console/settings").await.expect(StatusCode::OK);
    // The default plan's four rules fill the first rows; three rows are left for new ones.
    assert!(page.text.contains("Save care plan"), "{}", page.text);
    assert!(
        page.text
            .contains("name=\"rule2_days\" size=\"10\" placeholder=\"1, 3, 7\" value=\"1, 3, 7\"")
    );
    assert!(page.text.contains("name=\"rule6_id\""));
    assert!(!page.text.contains("name=\"rule7_id\""));

    let bad = admin
        .post(
            "/console/settings/care-plan",
            &[
                ("csrf", &csrf),
                ("rule0_id", "daily_mood"),
                ("rule0_instrument", "daily_mood"),
                ("rule0_when", "daily"),
                ("rule0_expires", "soon"),
                ("rule1_id", "daily_mood"),
                ("rule1_instrument", "gad7"),
                ("rule1_when", "after_session"),
                ("rule1_days", "1, two"),
                ("rule2_id", "pre"),
                ("rule2_instrument", "phq9"),
                ("rule2_when", "before_session"),
                ("rule2_hours_before", "100"),
            ],
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    for message in [
        "Rule 1 (hours open)</strong> must be a whole number",
        "Rule 2 (name)</strong> is used by another rule",
        "Rule 2 (days after each session)</strong> must be whole numbers separated by commas",
        "Rule 3 (hours before each session)</strong> must be 1 to 72",
    ] {
        assert!(bad.text.contains(message), "{message}: {}", bad.text);
    }
    // A problem is named by the row it is on, whatever rows before it were left out.
    let skipped = admin
        .post(
            "/console/settings/care-plan",
            &[
                ("csrf", &csrf),
                ("rule0_id", "daily_mood"),
                ("rule0_instrument", "daily_mood"),
                ("rule1_id", "before_session"),
                ("rule1_instrument", "phq9"),
                ("rule1_remove", "on"),
                ("rule5_id", "x"),
                ("rule5_instrument", "nonesuch"),
            ],
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        skipped
            .text
            .contains("Rule 6 (instrument)</strong> is not in the catalogue"),
        "{}",
        skipped.text
    );
    // Nothing was saved.
    let plan = app
        .get(
            &format!("/v1/clinics/{}/care-plan", w.clinic_a),
            &w.clinician_a.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(plan.body["rules"].as_array().unwrap().len(), 4);

    // Keep the daily mood (shorter window), drop the other three, add a weekly GAD-7.
    admin
        .post(
            "/console/settings/care-plan",
            &[
                ("csrf", &csrf),
                ("rule0_id", "daily_mood"),
                ("rule0_instrument", "daily_mood"),
                ("rule0_when", "daily"),
                ("rule0_random", "on"),
                ("rule0_expires", "8"),
                ("rule0_remind", "0"),
                ("rule1_id", "before_session"),
                ("rule1_instrument", "phq9"),
                ("rule1_when", "before_session"),
                ("rule1_hours_before", "24"),
                ("rule1_remove", "on"),
                ("rule4_id", "weekly_gad7"),
                ("rule4_instrument", "gad7"),
                ("rule4_when", "weekly"),
                ("rule4_weekday", "thu"),
                ("rule4_skip", "3"),
                ("rule5_id", ""),
                ("rule5_instrument", ""),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let plan = app
        .get(
            &format!("/v1/clinics/{}/care-plan", w.clinic_a),
            &w.clinician_a.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        plan.body,
        json!({"rules": [
            {"id": "daily_mood", "instrument": "daily_mood", "anchor": {"kind": "daily"},
             "random_offset": true, "expires_after_hours": 8, "remind_after_hours": 0},
            {"id": "weekly_gad7", "instrument": "gad7",
             "anchor": {"kind": "weekly", "weekday": "thu", "skip_near_session_days": 3},
             "random_offset": false},
        ]}),
        "{}",
        plan.text
    );
    let shown = admin.get("/console/settings").await.expect(StatusCode::OK);
    assert!(
        shown
            .text
            .contains("every Thu, skipped within 3 days of a session"),
        "{}",
        shown.text
    );
    // Who changed it is on the record, as through the API.
    assert_eq!(
        app.count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'care_plan.update'")
            .await,
        1
    );

    // Clinicians read the plan but get no form, and a post is refused.
    let (mut clinician, clinician_csrf) = Browser::signed_in(&app, &w.clinician_a).await;
    let read = clinician
        .get("/console/settings")
        .await
        .expect(StatusCode::OK);
    assert!(read.text.contains("weekly_gad7"));
    assert!(!read.text.contains("Save care plan"));
    clinician
        .post(
            "/console/settings/care-plan",
            &[
                ("csrf", &clinician_csrf),
                ("rule0_id", "mine"),
                ("rule0_instrument", "phq9"),
            ],
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    // Another clinic's admin changes only their own clinic's plan.
    let (mut outsider, outsider_csrf) = Browser::signed_in(&app, &w.admin_b).await;
    outsider
        .post(
            "/console/settings/care-plan",
            &[
                ("csrf", &outsider_csrf),
                ("rule0_id", "theirs"),
                ("rule0_instrument", "gad7"),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let still = app
        .get(
            &format!("/v1/clinics/{}/care-plan", w.clinic_a),
            &w.admin_a.access,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(still.body["rules"].as_array().unwrap().len(), 2);
}

async fn every_console_form_is_refused_alike_without_a_session_a_token_or_a_form_body(
    backend: Backend,
) {
    let app = TestApp::new(backend).await;
    let w = app.world().await;
    let id = "00000000-0000-0000-0000-000000000000";
    let signed = [
        "/console/logout".to_owned(),
        "/console/account/password".to_owned(),
        "/console/account/web-push".to_owned(),
        format!("/console/accounts/{id}/password-reset"),
        format!("/console/alerts/{id}/acknowledge"),
        format!("/console/alerts/{id}/assign"),
        format!("/console/alerts/{id}/resolve"),
        "/console/patients/search".to_owned(),
        "/console/admin/invitations".to_owned(),
        format!("/console/admin/invitations/{id}/revoke"),
        format!("/console/patients/{id}/sessions"),
        format!("/console/sessions/{id}/move"),
        format!("/console/sessions/{id}/complete"),
        format!("/console/sessions/{id}/cancel"),
        "/console/settings/clinic".to_owned(),
        "/console/settings/on-call".to_owned(),
        "/console/settings/escalation-policy".to_owned(),
        "/console/settings/alert-thresholds".to_owned(),
        "/console/settings/care-plan".to_owned(),
        "/console/settings/webhooks".to_owned(),
        format!("/console/settings/webhooks/{id}/delete"),
        "/console/settings/system-clients".to_owned(),
        format!("/console/settings/system-clients/{id}/disable"),
        format!("/console/settings/system-clients/{id}/keys"),
    ];
    let (mut admin, csrf) = Browser::signed_in(&app, &w.admin_a).await;
    let mut anonymous = Browser::new(&app);
    let mut ended = Browser::new(&app);
    let with_token = form_body(&[("csrf", &csrf)]);
    for path in &signed {
        // Without a session the browser is sent to sign in, whatever the body.
        for reply in [
            anonymous.post(path, &[("csrf", &csrf)]).await,
            anonymous.post_raw(path, "text/plain", &with_token).await,
        ] {
            let reply = reply.expect(StatusCode::SEE_OTHER);
            assert_eq!(location(&reply), "/console/login", "{path}");
        }
        // A cookie that carries no session is forgotten and the browser signs in again.
        ended.cookies = vec![("companion_console".to_owned(), "not-a-token".to_owned())];
        let reply = ended
            .post(path, &[("csrf", &csrf)])
            .await
            .expect(StatusCode::SEE_OTHER);
        assert_eq!(location(&reply), "/console/login?ended=1", "{path}");
        assert!(ended.cookies.is_empty(), "{path}");
        // Signed in: a body that is not a form is unreadable, even with the token in it.
        let reply = admin.post_raw(path, "text/plain", &with_token).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(reply.text.contains("Unreadable form"), "{path}");
        // Signed in: a form without this session's token has expired.
        for fields in [vec![], vec![("csrf", "0".repeat(64))]] {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let reply = admin.post(path, &fields).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
            assert!(reply.text.contains("Form expired"), "{path}");
        }
    }
    // The forms posted before any session exists check their own double-submit cookie.
    for path in [
        "/console/login",
        "/console/password-reset",
        "/console/password-reset/email",
    ] {
        let reply = anonymous.post(path, &[("csrf", &csrf)]).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        assert!(reply.text.contains("Form expired"), "{path}");
        let reply = anonymous.post_raw(path, "text/plain", &with_token).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(reply.text.contains("Unreadable form"), "{path}");
    }
    // Nothing was changed, and the session still works.
    admin.get("/console/settings").await.expect(StatusCode::OK);
}
