//! The security review's findings, each driven through the public interface: where webhooks may
//! go, system clients' lifecycle, bulk exports bound to their requester, audit rows that stay in
//! their clinic, invitations that reveal nothing, names without invisible characters, response
//! headers, absolute URLs from configuration, console sessions, export files, erasure and
//! passwords.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use serde_json::json;

use crate::both;
use crate::escalation::{phq9, submit};
use crate::harness::{Backend, TestApp, World, assert_error};

/// A receiver that records every request (method, path) and answers 200, or a redirect to
/// `/internal` on `/redirect`.
#[derive(Default)]
struct Receiver {
    requests: Mutex<Vec<(String, String)>>,
}

impl Receiver {
    fn seen(&self) -> Vec<(String, String)> {
        self.requests.lock().unwrap().clone()
    }
}

async fn start_receiver(ip: &str) -> (SocketAddr, Arc<Receiver>) {
    let receiver = Arc::new(Receiver::default());
    let state = receiver.clone();
    let router = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let state = state.clone();
        async move {
            let path = request.uri().path().to_owned();
            state
                .requests
                .lock()
                .unwrap()
                .push((request.method().to_string(), path.clone()));
            if path == "/redirect" {
                (
                    StatusCode::FOUND,
                    [(axum::http::header::LOCATION, "/internal")],
                )
                    .into_response()
            } else {
                StatusCode::OK.into_response()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.ok() });
    (addr, receiver)
}

use axum::response::IntoResponse as _;

/// DNS as the test says: each name answers with the addresses given.
#[derive(Debug, Default)]
struct FakeDns(BTreeMap<String, Vec<std::net::IpAddr>>);

#[async_trait::async_trait]
impl companion::http::outbound::Resolver for FakeDns {
    async fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        self.0
            .get(host)
            .map(|ips| ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such host"))
    }
}

async fn app_with_dns(
    backend: Backend,
    settings: &[(&str, &str)],
    dns: &[(&str, &str)],
) -> TestApp {
    let names: BTreeMap<String, Vec<std::net::IpAddr>> = dns
        .iter()
        .map(|(name, ips)| {
            (
                (*name).to_owned(),
                ips.split(',').map(|ip| ip.parse().unwrap()).collect(),
            )
        })
        .collect();
    TestApp::build(backend, settings, move |app| {
        app.outbound.resolver = Arc::new(FakeDns(names));
    })
    .await
}

async fn add_webhook(app: &TestApp, world: &World, url: &str) -> crate::harness::Reply {
    app.post(
        &format!("/v1/clinics/{}/webhooks", world.clinic_a),
        &world.admin_a.access,
        json!({ "url": url }),
    )
    .await
}

/// The last error of every webhook delivery job, with its status.
async fn webhook_jobs(app: &TestApp) -> Vec<(String, Option<String>)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        last_error: Option<String>,
    }
    app.app
        .db
        .run(|conn| {
            diesel::RunQueryDsl::load::<Row>(
                diesel::sql_query(
                    "SELECT status, last_error FROM jobs WHERE kind = 'webhook.deliver' ORDER BY created_at",
                ),
                conn,
            )
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.status, r.last_error))
        .collect()
}

async fn raise_alert(app: &TestApp, world: &World) {
    submit(
        app,
        &world.patient_a,
        "phq9",
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 1]),
    )
    .await;
    app.run_jobs().await;
}

mod ssrf {
    use super::*;

    both!(
        webhooks_to_internal_hosts_are_refused_at_registration,
        production_webhooks_must_use_https,
        a_name_that_resolves_inside_is_refused_at_delivery_with_its_reason,
        deliveries_go_to_the_checked_address_and_follow_no_redirect,
    );

    async fn webhooks_to_internal_hosts_are_refused_at_registration(backend: Backend) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        for url in [
            "http://127.0.0.1/hook",
            "http://localhost/hook",
            "http://localhost:8080/hook",
            "http://2130706433/hook",
            "http://0x7f000001/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://metadata.google.internal/computeMetadata/v1",
            "http://10.0.0.7:8080/in",
            "http://172.16.5.4/in",
            "http://192.168.1.1/in",
            "http://100.64.0.1/in",
            "http://0.0.0.0/in",
            "http://224.0.0.1/in",
            "https://ehr/in",
        ] {
            let reply = add_webhook(&app, &world, url).await;
            assert_error(
                &reply,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            );
            assert!(
                reply.body["error"]["fields"]["url"]
                    .as_str()
                    .is_some_and(|m| m.contains("may not reach")),
                "{url}: {}",
                reply.text
            );
        }
        add_webhook(&app, &world, "https://hooks.example.org/companion")
            .await
            .expect(StatusCode::CREATED);

        // The operator admits a named internal host.
        let allowed = TestApp::with_settings(
            backend,
            &[("COMPANION_WEBHOOK_ALLOW", "ehr.internal, 10.0.0.0/8")],
        )
        .await;
        let world = allowed.world().await;
        add_webhook(&allowed, &world, "http://ehr.internal/in")
            .await
            .expect(StatusCode::CREATED);
        add_webhook(&allowed, &world, "http://10.0.0.7:8080/in")
            .await
            .expect(StatusCode::CREATED);
        let other = add_webhook(&allowed, &world, "http://192.168.1.1/in").await;
        assert_error(
            &other,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }

    async fn production_webhooks_must_use_https(backend: Backend) {
        let app = TestApp::with_settings(
            backend,
            &[
                ("COMPANION_ENV", "production"),
                ("COMPANION_PUBLIC_URL", "https://companion.example.org"),
                ("COMPANION_ACCEPT_PUSH_NOT_CONFIGURED", "true"),
            ],
        )
        .await;
        let world = app.world().await;
        let plain = add_webhook(&app, &world, "http://hooks.example.org/in").await;
        assert_error(
            &plain,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(plain.text.contains("https"), "{}", plain.text);
        add_webhook(&app, &world, "https://hooks.example.org/in")
            .await
            .expect(StatusCode::CREATED);
    }

    async fn a_name_that_resolves_inside_is_refused_at_delivery_with_its_reason(backend: Backend) {
        let (addr, receiver) = start_receiver("127.0.0.1").await;
        let app = app_with_dns(
            backend,
            &[],
            &[
                ("rebound.example.org", "127.0.0.1"),
                ("mixed.example.org", "93.184.216.34,169.254.169.254"),
            ],
        )
        .await;
        let world = app.world().await;
        for host in ["rebound.example.org", "mixed.example.org"] {
            add_webhook(&app, &world, &format!("http://{host}:{}/hook", addr.port()))
                .await
                .expect(StatusCode::CREATED);
        }
        raise_alert(&app, &world).await;
        assert!(receiver.seen().is_empty(), "{:?}", receiver.seen());
        let jobs = webhook_jobs(&app).await;
        // One delivery per endpoint for each tier told: refused each time, so each tier reaches
        // nobody and the next is told at once.
        assert!(jobs.len() >= 2, "{jobs:?}");
        let errors: Vec<String> = jobs
            .iter()
            .map(|(status, error)| {
                assert_eq!(status, "dead", "a refusal is not retried: {jobs:?}");
                error.clone().unwrap()
            })
            .collect();
        assert!(
            errors.iter().any(|e| e.contains("127.0.0.1 is loopback")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("169.254.169.254 is a cloud metadata address")),
            "{errors:?}"
        );
    }

    async fn deliveries_go_to_the_checked_address_and_follow_no_redirect(backend: Backend) {
        let (addr, receiver) = start_receiver("127.0.0.1").await;
        // Only the checked lookup knows this name: the system resolver would fail, so the
        // delivery arrives only if it connects to the address that was checked.
        let app = app_with_dns(
            backend,
            &[("COMPANION_WEBHOOK_ALLOW", "hooks.clinic-a.example")],
            &[("hooks.clinic-a.example", "127.0.0.1")],
        )
        .await;
        let world = app.world().await;
        for path in ["hook", "redirect"] {
            add_webhook(
                &app,
                &world,
                &format!("http://hooks.clinic-a.example:{}/{path}", addr.port()),
            )
            .await
            .expect(StatusCode::CREATED);
        }
        raise_alert(&app, &world).await;
        let mut seen = receiver.seen();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("POST".to_owned(), "/hook".to_owned()),
                ("POST".to_owned(), "/redirect".to_owned())
            ],
            "the redirect to /internal is not followed"
        );
        let jobs = webhook_jobs(&app).await;
        assert!(
            jobs.iter().any(|(status, error)| status == "queued"
                && error
                    .as_deref()
                    .is_some_and(|e| e.contains("302 (redirects are not followed)"))),
            "{jobs:?}"
        );
        assert!(jobs.iter().any(|(status, _)| status == "done"), "{jobs:?}");
    }
}

mod system_clients {
    use super::*;
    use crate::harness::{Actor, Reply};
    use crate::smart::{TOKEN_URL, assertion, es384, exchange, jti, jwks, register, rs384};
    use axum::http::Method;

    both!(
        any_clinic_admin_lists_disables_and_rekeys_a_system_client_whoever_registered_it,
        a_system_clients_reads_are_audited_and_shown_under_its_own_name,
    );

    async fn post_empty(app: &TestApp, path: &str, who: &Actor) -> Reply {
        app.call(Method::POST, path, Some(&who.access), None).await
    }

    async fn any_clinic_admin_lists_disables_and_rekeys_a_system_client_whoever_registered_it(
        backend: Backend,
    ) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        let second_admin = app
            .join(&world.org_admin, &world.clinic_a, "clinic_admin")
            .await;
        let (ec, rsa) = (es384(), rs384());
        let client = register(
            &app,
            &world.admin_a,
            &world.clinic_a,
            json!({"name": "EHR feed", "jwks": jwks(&[&ec])}),
        )
        .await
        .expect(StatusCode::CREATED);
        let id = client.body["client_id"].as_str().unwrap().to_owned();
        assert_eq!(client.body["active"], true);
        assert!(client.body["last_used_at"].is_null());

        // The registrar leaves; the client is the clinic's, and still works.
        post_empty(
            &app,
            &format!("/v1/accounts/{}/disable", world.admin_a.id),
            &second_admin,
        )
        .await
        .expect(StatusCode::OK);
        let token = exchange(
            &app,
            &assertion(&app, &ec, &id, TOKEN_URL, 60, &jti()),
            "system/*.read",
        )
        .await
        .expect(StatusCode::OK)
        .body["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        app.get("/fhir/r4/Patient", &token)
            .await
            .expect(StatusCode::OK);

        // Another admin of the clinic sees it, with its last use; nobody else does.
        let list_path = format!("/v1/clinics/{}/system-clients", world.clinic_a);
        let listed = app
            .get(&list_path, &second_admin.access)
            .await
            .expect(StatusCode::OK);
        let items = listed.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["client_id"], id.as_str());
        assert_eq!(items[0]["name"], "EHR feed");
        assert!(items[0]["last_used_at"].is_string(), "{}", listed.text);
        assert!(items[0].get("jwks").is_none());
        assert_error(
            &app.get(&list_path, &world.clinician_a.access).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        assert_error(
            &app.get(&list_path, &world.admin_b.access).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        let disable_path = format!("/v1/system-clients/{id}/disable");
        assert_error(
            &post_empty(&app, &disable_path, &world.admin_b).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        assert_error(
            &post_empty(&app, &disable_path, &world.clinician_a).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        assert_error(
            &post_empty(&app, "/v1/system-clients/not-an-id/disable", &second_admin).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );

        // Disabled: the token in hand stops working at once, and no new one is issued.
        let disabled = post_empty(&app, &disable_path, &second_admin)
            .await
            .expect(StatusCode::OK);
        assert_eq!(disabled.body["active"], false);
        assert!(disabled.body["disabled_at"].is_string());
        let refused = app.get("/fhir/r4/Patient", &token).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
        let again = exchange(
            &app,
            &assertion(&app, &ec, &id, TOKEN_URL, 60, &jti()),
            "system/*.read",
        )
        .await;
        assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.text);
        assert_eq!(again.body["error"], "invalid_client");
        // Disabling twice is harmless.
        post_empty(&app, &disable_path, &second_admin)
            .await
            .expect(StatusCode::OK);

        // Key rotation: the old key and the tokens it earned are refused, the new key works.
        let other = register(
            &app,
            &second_admin,
            &world.clinic_a,
            json!({"name": "Research", "jwks": jwks(&[&ec])}),
        )
        .await
        .expect(StatusCode::CREATED);
        let other_id = other.body["client_id"].as_str().unwrap().to_owned();
        let old_token = exchange(
            &app,
            &assertion(&app, &ec, &other_id, TOKEN_URL, 60, &jti()),
            "system/*.read",
        )
        .await
        .expect(StatusCode::OK)
        .body["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let keys_path = format!("/v1/system-clients/{other_id}/jwks");
        let bad = app
            .put(
                &keys_path,
                &second_admin.access,
                json!({"jwks": {"keys": []}}),
            )
            .await;
        assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_error(
            &app.put(
                &keys_path,
                &world.admin_b.access,
                json!({"jwks": jwks(&[&rsa])}),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        let rotated = app
            .put(
                &keys_path,
                &second_admin.access,
                json!({"jwks": jwks(&[&rsa])}),
            )
            .await
            .expect(StatusCode::OK);
        assert!(rotated.body["keys_rotated_at"].is_string());
        let stale = app.get("/fhir/r4/Patient", &old_token).await;
        assert_eq!(stale.status, StatusCode::UNAUTHORIZED, "{}", stale.text);
        let old_key = exchange(
            &app,
            &assertion(&app, &ec, &other_id, TOKEN_URL, 60, &jti()),
            "system/*.read",
        )
        .await;
        assert_eq!(old_key.body["error"], "invalid_client", "{}", old_key.text);
        exchange(
            &app,
            &assertion(&app, &rsa, &other_id, TOKEN_URL, 60, &jti()),
            "system/*.read",
        )
        .await
        .expect(StatusCode::OK);
    }

    async fn a_system_clients_reads_are_audited_and_shown_under_its_own_name(backend: Backend) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        let ec = es384();
        let client = register(
            &app,
            &world.admin_a,
            &world.clinic_a,
            json!({"name": "EHR feed", "jwks": jwks(&[&ec])}),
        )
        .await
        .expect(StatusCode::CREATED);
        let id = client.body["client_id"].as_str().unwrap().to_owned();
        let token = exchange(
            &app,
            &assertion(&app, &ec, &id, TOKEN_URL, 60, &jti()),
            "system/*.read",
        )
        .await
        .expect(StatusCode::OK)
        .body["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        app.get(&format!("/fhir/r4/Patient/{}", world.patient_a.id), &token)
            .await
            .expect(StatusCode::OK);
        let log = app
            .get("/v1/me/access-log", &world.patient_a.access)
            .await
            .expect(StatusCode::OK);
        let items = log.body["items"].as_array().unwrap();
        let by_client: Vec<&serde_json::Value> = items
            .iter()
            .filter(|e| e["actor"]["role"] == "system_client")
            .collect();
        assert_eq!(by_client.len(), 1, "{}", log.text);
        assert_eq!(by_client[0]["actor"]["id"], id.as_str());
        assert_eq!(by_client[0]["actor"]["display_name"], "EHR feed");
        assert!(
            !log.text.contains(&world.admin_a.id),
            "the registrar is not named: {}",
            log.text
        );
    }
}

mod console_system_clients {
    use super::*;
    use crate::console::Browser;
    use crate::smart::{TOKEN_URL, assertion, es384, exchange, jti, jwks, rs384};

    both!(clinic_admins_register_disable_and_rekey_system_clients_in_the_console);

    async fn clinic_admins_register_disable_and_rekey_system_clients_in_the_console(
        backend: Backend,
    ) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        let (ec, rsa) = (es384(), rs384());
        let (mut admin, csrf) = Browser::signed_in(&app, &world.admin_a).await;
        let empty = admin.get("/console/settings").await.expect(StatusCode::OK);
        assert!(empty.text.contains("No system clients."), "{}", empty.text);
        let bad = admin
            .post(
                "/console/settings/system-clients",
                &[("csrf", &csrf), ("name", "Feed"), ("jwks", "not json")],
            )
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.text.contains("JWK Set"), "{}", bad.text);
        let keys = jwks(&[&ec]).to_string();
        admin
            .post(
                "/console/settings/system-clients",
                &[
                    ("csrf", &csrf),
                    ("name", "EHR feed"),
                    ("scope", "system/*.read"),
                    ("jwks", &keys),
                ],
            )
            .await
            .expect(StatusCode::SEE_OTHER);
        let listed = admin.get("/console/settings").await.expect(StatusCode::OK);
        let id = {
            let marker = "data-client-id=\"";
            let start = listed.text.find(marker).unwrap() + marker.len();
            listed.text[start..start + 36].to_owned()
        };
        assert!(listed.text.contains("EHR feed") && listed.text.contains("Enabled"));
        assert!(listed.text.contains("never"), "not used yet");

        // Clinicians see none of it and may not act.
        let (mut clinician, clinician_csrf) = Browser::signed_in(&app, &world.clinician_a).await;
        let read = clinician
            .get("/console/settings")
            .await
            .expect(StatusCode::OK);
        assert!(!read.text.contains(&id));
        clinician
            .post(
                &format!("/console/settings/system-clients/{id}/disable"),
                &[("csrf", &clinician_csrf)],
            )
            .await
            .expect(StatusCode::NOT_FOUND);

        // New keys: the old key is refused, the new one accepted.
        let new_keys = jwks(&[&rsa]).to_string();
        admin
            .post(
                &format!("/console/settings/system-clients/{id}/keys"),
                &[("csrf", &csrf), ("jwks", &new_keys)],
            )
            .await
            .expect(StatusCode::SEE_OTHER);
        let old = exchange(
            &app,
            &assertion(&app, &ec, &id, TOKEN_URL, 60, &jti()),
            "system/*.read",
        )
        .await;
        assert_eq!(old.body["error"], "invalid_client", "{}", old.text);
        let token = exchange(
            &app,
            &assertion(&app, &rsa, &id, TOKEN_URL, 60, &jti()),
            "system/*.read",
        )
        .await
        .expect(StatusCode::OK)
        .body["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let used = admin.get("/console/settings").await.expect(StatusCode::OK);
        assert!(
            !used.text.contains(">never<"),
            "last use shown: {}",
            used.text
        );

        // Disabled from the console: its token stops at once.
        admin
            .post(
                &format!("/console/settings/system-clients/{id}/disable"),
                &[("csrf", &csrf)],
            )
            .await
            .expect(StatusCode::SEE_OTHER);
        assert_eq!(
            app.get("/fhir/r4/Patient", &token).await.status,
            StatusCode::UNAUTHORIZED
        );
        let after = admin.get("/console/settings").await.expect(StatusCode::OK);
        assert!(after.text.contains("Disabled "), "{}", after.text);
        // A form without the session's CSRF token does nothing.
        admin
            .post(
                &format!("/console/settings/system-clients/{id}/disable"),
                &[],
            )
            .await
            .expect(StatusCode::FORBIDDEN);
    }
}

mod bulk_binding {
    use super::*;
    use crate::smart::{TOKEN_URL, assertion, es384, exchange, jti, jwks, register};
    use axum::body::Body;
    use axum::http::{Method, Request, header};

    both!(an_export_is_read_and_cancelled_only_by_whoever_asked_and_within_its_scopes);

    async fn kick_off(app: &TestApp, token: &str) -> String {
        let request = Request::builder()
            .method(Method::GET)
            .uri("/fhir/r4/Patient/$export")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header("prefer", "respond-async")
            .body(Body::empty())
            .unwrap();
        let reply = app.send(request).await.expect(StatusCode::ACCEPTED);
        let location = reply.headers[header::CONTENT_LOCATION].to_str().unwrap();
        url::Url::parse(location).unwrap().path().to_owned()
    }

    async fn system_token(app: &TestApp, client: &str, scope: &str) -> String {
        exchange(
            app,
            &assertion(app, &es384(), client, TOKEN_URL, 60, &jti()),
            scope,
        )
        .await
        .expect(StatusCode::OK)
        .body["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn an_export_is_read_and_cancelled_only_by_whoever_asked_and_within_its_scopes(
        backend: Backend,
    ) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        submit(
            &app,
            &world.patient_a,
            "phq9",
            phq9([1, 1, 1, 1, 1, 1, 1, 1, 0]),
        )
        .await;
        let mut clients = Vec::new();
        for (name, scope) in [
            ("Wide", "system/*.read"),
            ("Observations", "system/Observation.read"),
        ] {
            let client = register(
                &app,
                &world.admin_a,
                &world.clinic_a,
                json!({"name": name, "jwks": jwks(&[&es384()]), "scope": scope}),
            )
            .await
            .expect(StatusCode::CREATED);
            clients.push(client.body["client_id"].as_str().unwrap().to_owned());
        }
        let observations_only = system_token(&app, &clients[1], "system/Observation.read").await;

        // A clinician's export.
        let status = kick_off(&app, &world.clinician_a.access).await;
        app.run_jobs().await;
        app.get(&status, &world.clinician_a.access)
            .await
            .expect(StatusCode::OK);
        let observation_file = format!("{status}/Observation.ndjson");
        let patient_file = format!("{status}/Patient.ndjson");
        app.get(&observation_file, &world.clinician_a.access)
            .await
            .expect(StatusCode::OK);
        // Nobody else of the clinic reads or cancels it: not the clinic admin, not a system
        // client (even one whose scopes cover the file).
        for token in [&world.admin_a.access, &observations_only] {
            for path in [&status, &observation_file, &patient_file] {
                let reply = app.get(path, token).await;
                // A file its token's scopes do not cover is refused before any export is looked
                // at; everything else of another's export is not found.
                let expected = if token == &observations_only && path == &patient_file {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::NOT_FOUND
                };
                assert_eq!(reply.status, expected, "{path}: {}", reply.text);
                assert_eq!(reply.body["resourceType"], "OperationOutcome");
            }
            let cancel = app.call(Method::DELETE, &status, Some(token), None).await;
            assert_eq!(cancel.status, StatusCode::NOT_FOUND, "{}", cancel.text);
        }
        app.get(&patient_file, &world.clinician_a.access)
            .await
            .expect(StatusCode::OK);

        // A system client's export: a later token of the same client reads only what its own
        // scopes cover; another client reads nothing.
        let wide = system_token(&app, &clients[0], "system/*.read").await;
        let status = kick_off(&app, &wide).await;
        app.run_jobs().await;
        app.get(&status, &wide).await.expect(StatusCode::OK);
        app.get(&format!("{status}/Patient.ndjson"), &wide)
            .await
            .expect(StatusCode::OK);
        let narrowed = system_token(&app, &clients[0], "system/Observation.read").await;
        app.get(&format!("{status}/Observation.ndjson"), &narrowed)
            .await
            .expect(StatusCode::OK);
        let refused = app
            .get(&format!("{status}/Patient.ndjson"), &narrowed)
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
        for path in [status.clone(), format!("{status}/Observation.ndjson")] {
            assert_eq!(
                app.get(&path, &observations_only).await.status,
                StatusCode::NOT_FOUND
            );
            assert_eq!(
                app.get(&path, &world.clinician_a.access).await.status,
                StatusCode::NOT_FOUND
            );
        }
        // The clinician cannot cancel the client's export; the client can.
        assert_eq!(
            app.call(
                Method::DELETE,
                &status,
                Some(&world.clinician_a.access),
                None
            )
            .await
            .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.call(Method::DELETE, &status, Some(&wide), None)
                .await
                .status,
            StatusCode::ACCEPTED
        );
    }
}

mod audit_clinic {
    use super::*;

    both!(another_clinics_patient_is_not_found_and_never_sees_that_clinics_staff);

    async fn another_clinics_patient_is_not_found_and_never_sees_that_clinics_staff(
        backend: Backend,
    ) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        raise_alert(&app, &world).await;
        // Clinic A's staff ask about clinic B's patient: not found, and nothing is recorded
        // against that patient.
        let probe = app
            .get(
                &format!("/v1/alerts?patient_id={}", world.patient_b.id),
                &world.clinician_a.access,
            )
            .await;
        assert_error(&probe, StatusCode::NOT_FOUND, "not_found");
        let malformed = app
            .get("/v1/alerts?patient_id=nobody", &world.clinician_a.access)
            .await;
        assert_error(
            &malformed,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        // Their own patient's alerts are listed as before.
        let own = app
            .get(
                &format!("/v1/alerts?patient_id={}", world.patient_a.id),
                &world.clinician_a.access,
            )
            .await
            .expect(StatusCode::OK);
        assert_eq!(own.body["items"].as_array().unwrap().len(), 1);
        // Clinic B's own staff read their patient.
        app.get(
            &format!("/v1/patients/{}/check-ins", world.patient_b.id),
            &world.clinician_b.access,
        )
        .await
        .expect(StatusCode::OK);

        let log = app
            .get("/v1/me/access-log", &world.patient_b.access)
            .await
            .expect(StatusCode::OK);
        let actors: Vec<&str> = log.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["actor"]["id"].as_str().unwrap())
            .collect();
        assert!(!actors.is_empty(), "{}", log.text);
        assert!(
            actors.iter().all(|a| *a == world.clinician_b.id),
            "only clinic B's staff: {}",
            log.text
        );
        // Every audit row about a patient carries that patient's clinic.
        let misfiled = app
            .count(
                "SELECT COUNT(*) AS n FROM audit_events e JOIN accounts p ON p.id = e.patient_id \
                 WHERE e.clinic_id IS NULL OR e.clinic_id <> p.clinic_id",
            )
            .await;
        assert_eq!(misfiled, 0);
        let about_patients = app
            .count("SELECT COUNT(*) AS n FROM audit_events WHERE patient_id IS NOT NULL")
            .await;
        assert!(about_patients >= 2, "{about_patients}");
    }
}

mod invitation_emails {
    use super::*;

    both!(accepting_with_an_email_that_has_an_account_tells_nothing_and_keeps_the_code);

    async fn accepting_with_an_email_that_has_an_account_tells_nothing_and_keeps_the_code(
        backend: Backend,
    ) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        // An email with an account in another clinic, and one this addressed invitation was not
        // sent to: the same answer, which names neither reason.
        let code = app.invite(&world.admin_b, &world.clinic_b, "patient").await;
        let taken = app.accept(&code, &world.patient_a.email).await;
        let addressed = app
            .post(
                &format!("/v1/clinics/{}/invitations", world.clinic_b),
                &world.admin_b.access,
                json!({"role": "patient", "email": "invited@example.org"}),
            )
            .await
            .expect(StatusCode::CREATED);
        let other = app
            .accept(
                addressed.body["code"].as_str().unwrap(),
                "someone-else@example.org",
            )
            .await;
        for reply in [&taken, &other] {
            assert_error(reply, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            let text = reply.text.to_lowercase();
            for telling in ["taken", "exist", "already", "account"] {
                assert!(!text.contains(telling), "{telling}: {}", reply.text);
            }
        }
        assert_eq!(taken.body["error"], other.body["error"]);
        // The code is not spent by the refusal.
        app.accept(&code, "new-person@example.org")
            .await
            .expect(StatusCode::CREATED);
        let spent = app.accept(&code, "third@example.org").await;
        assert_error(&spent, StatusCode::CONFLICT, "invitation_used");
    }
}

mod names {
    use super::*;
    use crate::smart::{es384, jwks, register};

    both!(names_with_hidden_or_direction_changing_characters_are_refused_everywhere);

    const HIDDEN: [&str; 5] = [
        "Dr \u{202E}ynnaJ",
        "Ann\u{200B}a",
        "\u{2066}Anna\u{2069}",
        "Anna\u{FEFF}",
        "Anna\u{0008}",
    ];

    #[track_caller]
    fn refused(reply: &crate::harness::Reply, field: &str) {
        assert_error(reply, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            reply.body["error"]["fields"][field]
                .as_str()
                .is_some_and(|m| m.contains("invisible")),
            "{field}: {}",
            reply.text
        );
    }

    async fn names_with_hidden_or_direction_changing_characters_are_refused_everywhere(
        backend: Backend,
    ) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        for name in HIDDEN {
            let code = app
                .invite(&world.clinician_a, &world.clinic_a, "patient")
                .await;
            let accept = app
                .post_anonymous(
                    "/v1/invitations/accept",
                    json!({"code": code, "email": format!("{}@example.org", uuid::Uuid::new_v4()),
                           "password": crate::harness::PASSWORD, "display_name": name}),
                )
                .await;
            refused(&accept, "display_name");
            let profile = app
                .patch(
                    &format!("/v1/patients/{}", world.patient_a.id),
                    &world.clinician_a.access,
                    json!({"display_name": name}),
                )
                .await;
            refused(&profile, "display_name");
            let clinic = app
                .post(
                    "/v1/clinics",
                    &world.org_admin.access,
                    json!({"name": name, "timezone": "Europe/London"}),
                )
                .await;
            refused(&clinic, "name");
            let rename = app
                .patch(
                    &format!("/v1/clinics/{}", world.clinic_a),
                    &world.admin_a.access,
                    json!({"name": name}),
                )
                .await;
            refused(&rename, "name");
            let client = register(
                &app,
                &world.admin_a,
                &world.clinic_a,
                json!({"name": name, "jwks": jwks(&[&es384()])}),
            )
            .await;
            refused(&client, "name");
            let consent = app
                .post(
                    &format!("/v1/clinics/{}/consent-documents", world.clinic_a),
                    &world.admin_a.access,
                    json!({"title": name, "body": "I agree."}),
                )
                .await;
            refused(&consent, "title");
        }
        // Names in any script, with accents and emoji, are welcome.
        app.patch(
            &format!("/v1/patients/{}", world.patient_a.id),
            &world.clinician_a.access,
            json!({"display_name": "José Núñez 王小明 محمد ❤️"}),
        )
        .await
        .expect(StatusCode::OK);
    }
}

mod headers {
    use super::*;
    use axum::http::{Method, header};

    both!(every_answer_carries_security_headers_and_patient_data_is_never_cached);

    async fn every_answer_carries_security_headers_and_patient_data_is_never_cached(
        backend: Backend,
    ) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        let get = |path: String, token: Option<String>| {
            let app = &app;
            async move { app.call(Method::GET, &path, token.as_deref(), None).await }
        };
        let staff = Some(world.clinician_a.access.clone());
        let patient_data = [
            get(
                format!("/v1/patients/{}/check-ins", world.patient_a.id),
                staff.clone(),
            )
            .await,
            get("/v1/me".into(), Some(world.patient_a.access.clone())).await,
            get(
                format!("/fhir/r4/Patient/{}", world.patient_a.id),
                staff.clone(),
            )
            .await,
            get("/v1/alerts".into(), staff.clone()).await,
            get("/v1/no-such-route".into(), None).await,
            get("/v1/me".into(), None).await,
        ];
        for reply in &patient_data {
            assert_eq!(
                reply.headers[header::CACHE_CONTROL],
                "no-store",
                "{reply:?}"
            );
        }
        let others = [
            get("/openapi.json".into(), None).await,
            get("/health/live".into(), None).await,
            get("/docs/".into(), None).await,
        ];
        for reply in patient_data.iter().chain(&others) {
            assert_eq!(reply.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(reply.headers[header::REFERRER_POLICY], "no-referrer");
            assert_eq!(reply.headers[header::X_FRAME_OPTIONS], "DENY");
            let csp = reply.headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        }
        let docs_csp = others[2].headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(docs_csp.contains("script-src 'self'"), "{docs_csp}");
        assert!(!docs_csp.contains("unsafe-eval"), "{docs_csp}");
        let api_csp = patient_data[0].headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(api_csp.starts_with("default-src 'none'"), "{api_csp}");
        // Crisis resources are meant to be kept on the phone for offline use.
        let crisis = get(
            "/v1/me/crisis-resources".into(),
            Some(world.patient_a.access.clone()),
        )
        .await
        .expect(StatusCode::OK);
        assert!(
            crisis.headers[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .starts_with("private"),
        );
    }
}

mod public_url {
    use super::*;
    use crate::smart::{assertion, es384, jwks, register};
    use axum::body::Body;
    use axum::http::{Method, Request, header};

    both!(absolute_urls_come_from_the_configured_public_url_never_the_host_header);

    const PUBLIC: &str = "https://companion.example.org";

    fn forged(method: Method, path: &str, token: Option<&str>) -> axum::http::request::Builder {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "evil.example")
            .header("x-forwarded-proto", "http")
            .header("x-forwarded-host", "evil.example");
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder
    }

    async fn token_with_audience(app: &TestApp, client: &str, aud: &str) -> crate::harness::Reply {
        let form = serde_urlencoded::to_string([
            ("grant_type", "client_credentials"),
            ("scope", "system/*.read"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            (
                "client_assertion",
                &assertion(
                    app,
                    &es384(),
                    client,
                    aud,
                    60,
                    &uuid::Uuid::new_v4().to_string(),
                ),
            ),
        ])
        .unwrap();
        let request = forged(Method::POST, "/oauth/token", None)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        app.send(request).await
    }

    async fn absolute_urls_come_from_the_configured_public_url_never_the_host_header(
        backend: Backend,
    ) {
        let app = TestApp::with_settings(backend, &[("COMPANION_PUBLIC_URL", PUBLIC)]).await;
        let world = app.world().await;
        let config = app
            .send(
                forged(Method::GET, "/.well-known/smart-configuration", None)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .expect(StatusCode::OK);
        assert_eq!(
            config.body["token_endpoint"],
            format!("{PUBLIC}/oauth/token")
        );
        assert!(
            config.headers[header::STRICT_TRANSPORT_SECURITY]
                .to_str()
                .unwrap()
                .starts_with("max-age=")
        );

        // An assertion made out to the forged host is refused; one for the real endpoint works.
        let client = register(
            &app,
            &world.admin_a,
            &world.clinic_a,
            json!({"name": "EHR", "jwks": jwks(&[&es384()])}),
        )
        .await
        .expect(StatusCode::CREATED);
        let id = client.body["client_id"].as_str().unwrap();
        let evil = token_with_audience(&app, id, "http://evil.example/oauth/token").await;
        assert_eq!(evil.status, StatusCode::UNAUTHORIZED, "{}", evil.text);
        assert_eq!(evil.body["error"], "invalid_client");
        token_with_audience(&app, id, &format!("{PUBLIC}/oauth/token"))
            .await
            .expect(StatusCode::OK);

        // FHIR links and Bulk Data URLs name the public URL.
        submit(
            &app,
            &world.patient_a,
            "phq9",
            phq9([1, 1, 1, 1, 1, 1, 1, 1, 0]),
        )
        .await;
        let staff = world.clinician_a.access.as_str();
        let bundle = app
            .send(
                forged(Method::GET, "/fhir/r4/QuestionnaireResponse", Some(staff))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .expect(StatusCode::OK);
        assert!(!bundle.text.contains("evil.example"), "{}", bundle.text);
        assert!(
            bundle.body["link"][0]["url"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{PUBLIC}/fhir/r4/")),
            "{}",
            bundle.text
        );
        let kicked = app
            .send(
                forged(Method::GET, "/fhir/r4/Patient/$export", Some(staff))
                    .header("prefer", "respond-async")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .expect(StatusCode::ACCEPTED);
        let location = kicked.headers[header::CONTENT_LOCATION].to_str().unwrap();
        assert!(
            location.starts_with(&format!("{PUBLIC}/fhir/bulk/")),
            "{location}"
        );
        app.run_jobs().await;
        let path = location.strip_prefix(PUBLIC).unwrap();
        let manifest = app
            .send(
                forged(Method::GET, path, Some(staff))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .expect(StatusCode::OK);
        assert!(!manifest.text.contains("evil.example"), "{}", manifest.text);
        let files = manifest.body["output"].as_array().unwrap();
        assert!(!files.is_empty());
        for file in files {
            assert!(
                file["url"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{PUBLIC}/fhir/bulk/")),
                "{file}"
            );
        }
        assert!(
            manifest.body["request"]
                .as_str()
                .unwrap()
                .starts_with(PUBLIC)
        );
    }
}

mod housekeeping_and_limits {
    use super::*;
    use crate::escalation::{alert_pushes, app_with_gateway, device, on_call};
    use crate::smart::{TOKEN_URL, assertion, es384, exchange, jti, jwks, register};
    use axum::body::Body;
    use axum::http::{Method, Request, header};
    use chrono::TimeDelta;

    both!(
        the_token_endpoint_is_rate_limited_per_address_and_per_client,
        expired_system_tokens_and_old_organisation_audit_rows_are_purged,
        a_device_token_taken_over_by_another_account_does_not_carry_the_first_accounts_pushes,
        a_client_request_id_reaches_the_audit_trail_only_when_short_and_plain,
    );

    async fn the_token_endpoint_is_rate_limited_per_address_and_per_client(backend: Backend) {
        // Two token requests a minute per client and twenty per address (the limits of
        // COMPANION_AUTH_RATE_LIMIT=2), set after the people of the test have signed up.
        let app = TestApp::build(backend, &[], |app| {
            use companion::http::rate_limit::RateLimiter;
            app.limits.token_per_system_client = RateLimiter::new(2);
            app.limits.token_per_client = RateLimiter::new(20);
        })
        .await;
        let world = app.world().await;
        let client = register(
            &app,
            &world.admin_a,
            &world.clinic_a,
            json!({"name": "EHR", "jwks": jwks(&[&es384()])}),
        )
        .await
        .expect(StatusCode::CREATED);
        let id = client.body["client_id"].as_str().unwrap().to_owned();
        for _ in 0..2 {
            exchange(
                &app,
                &assertion(&app, &es384(), &id, TOKEN_URL, 60, &jti()),
                "system/*.read",
            )
            .await
            .expect(StatusCode::OK);
        }
        let limited = exchange(
            &app,
            &assertion(&app, &es384(), &id, TOKEN_URL, 60, &jti()),
            "system/*.read",
        )
        .await;
        assert_eq!(
            limited.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            limited.text
        );
        assert!(limited.headers.contains_key(header::RETRY_AFTER));
        assert_eq!(limited.body["error"], "temporarily_unavailable");
        // Whatever the body, one address gets ten times the per-client limit.
        let mut statuses = Vec::new();
        for _ in 0..25 {
            let request = Request::builder()
                .method(Method::POST)
                .uri("/oauth/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("grant_type=password"))
                .unwrap();
            statuses.push(app.send(request).await.status);
        }
        assert!(statuses.contains(&StatusCode::BAD_REQUEST), "{statuses:?}");
        assert_eq!(
            statuses.last(),
            Some(&StatusCode::TOO_MANY_REQUESTS),
            "{statuses:?}"
        );
        // A minute later the client is served again.
        app.clock.advance(TimeDelta::seconds(61));
        exchange(
            &app,
            &assertion(&app, &es384(), &id, TOKEN_URL, 60, &jti()),
            "system/*.read",
        )
        .await
        .expect(StatusCode::OK);
    }

    async fn expired_system_tokens_and_old_organisation_audit_rows_are_purged(backend: Backend) {
        let app = TestApp::with_settings(
            backend,
            &[
                ("COMPANION_ORG_AUDIT_RETENTION_DAYS", "30"),
                ("COMPANION_ACCESS_TOKEN_TTL", "86400"),
            ],
        )
        .await;
        let world = app.world().await;
        let client = register(
            &app,
            &world.admin_a,
            &world.clinic_a,
            json!({"name": "EHR", "jwks": jwks(&[&es384()])}),
        )
        .await
        .expect(StatusCode::CREATED);
        let id = client.body["client_id"].as_str().unwrap().to_owned();
        exchange(
            &app,
            &assertion(&app, &es384(), &id, TOKEN_URL, 60, &jti()),
            "system/*.read",
        )
        .await
        .expect(StatusCode::OK);
        // An organisation-level action: one organisation admin disables another.
        let other = app.org_admin().await;
        app.call(
            Method::POST,
            &format!("/v1/accounts/{}/disable", other.id),
            Some(&world.org_admin.access),
            None,
        )
        .await
        .expect(StatusCode::OK);
        let org_rows = "SELECT COUNT(*) AS n FROM audit_events WHERE clinic_id IS NULL";
        let clinic_rows = "SELECT COUNT(*) AS n FROM audit_events WHERE clinic_id IS NOT NULL";
        assert!(app.count(org_rows).await >= 1);
        let kept = app.count(clinic_rows).await;
        assert!(kept > 0);
        assert_eq!(
            app.count("SELECT COUNT(*) AS n FROM system_tokens").await,
            1
        );

        // Within their lifetimes nothing goes.
        companion::worker::housekeeping(&app.app).await.unwrap();
        assert_eq!(
            app.count("SELECT COUNT(*) AS n FROM system_tokens").await,
            1
        );
        assert!(app.count(org_rows).await >= 1);
        // Past them: the token, its assertion id and the organisation's rows.
        app.clock.advance(TimeDelta::days(31));
        companion::worker::housekeeping(&app.app).await.unwrap();
        assert_eq!(
            app.count("SELECT COUNT(*) AS n FROM system_tokens").await,
            0
        );
        assert_eq!(
            app.count("SELECT COUNT(*) AS n FROM client_assertions")
                .await,
            0
        );
        assert_eq!(app.count(org_rows).await, 0);
        // A clinic's rows follow the clinic's own retention policy (none set here).
        assert_eq!(app.count(clinic_rows).await, kept);
    }

    async fn a_device_token_taken_over_by_another_account_does_not_carry_the_first_accounts_pushes(
        backend: Backend,
    ) {
        let (app, gateway, world) = app_with_gateway(backend).await;
        on_call(&app, &world.clinician_a).await;
        let token = device(&app, &world.clinician_a).await;
        submit(
            &app,
            &world.patient_a,
            "phq9",
            phq9([0, 0, 0, 0, 0, 0, 0, 0, 2]),
        )
        .await;
        // The care team is told: the clinician's push is queued, not yet sent.
        companion::jobs::runner::Runner::new(app.app.clone())
            .run_once()
            .await
            .unwrap();
        assert!(alert_pushes(&gateway, &token).is_empty());
        // Someone else signs in on that phone and registers the same token.
        app.post(
            "/v1/devices",
            &world.patient_a2.access,
            json!({"platform": "android", "token": token}),
        )
        .await
        .expect(StatusCode::OK);
        app.run_jobs().await;
        assert!(
            alert_pushes(&gateway, &token).is_empty(),
            "the clinician's alert push is not delivered to the new owner"
        );
        let theirs = app
            .get("/v1/me/devices", &world.clinician_a.access)
            .await
            .expect(StatusCode::OK);
        assert!(
            theirs.body["items"].as_array().unwrap().is_empty(),
            "{}",
            theirs.text
        );
        // The new owner's own pushes reach the phone.
        let mine = app
            .get("/v1/me/devices", &world.patient_a2.access)
            .await
            .expect(StatusCode::OK);
        assert_eq!(mine.body["items"].as_array().unwrap().len(), 1);
    }

    async fn a_client_request_id_reaches_the_audit_trail_only_when_short_and_plain(
        backend: Backend,
    ) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        let long = "a".repeat(65);
        for (sent, kept) in [
            ("trace-7f3a:span.01_b", true),
            (long.as_str(), false),
            ("x'); DROP TABLE audit_events; --", false),
            ("caf\u{e9}", false),
        ] {
            let request = Request::builder()
                .method(Method::GET)
                .uri(format!("/v1/patients/{}/check-ins", world.patient_a.id))
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", world.clinician_a.access),
                )
                .header(
                    "x-request-id",
                    axum::http::HeaderValue::from_bytes(sent.as_bytes()).unwrap(),
                )
                .body(Body::empty())
                .unwrap();
            let reply = app.send(request).await.expect(StatusCode::OK);
            let echoed = reply.headers["x-request-id"].to_str().unwrap().to_owned();
            let latest: &'static str = Box::leak(
                format!(
                    "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'check_ins.read' AND request_id = '{echoed}'"
                )
                .into_boxed_str(),
            );
            assert_eq!(app.count(latest).await, 1, "{sent:?}");
            if kept {
                assert_eq!(echoed, sent);
            } else {
                assert_ne!(echoed, sent);
                assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "{echoed}");
            }
        }
    }
}

mod console_sessions {
    use super::*;
    use crate::console::Browser;
    use axum::http::Method;

    both!(a_console_session_is_no_bearer_token_and_ends_on_sign_out_and_disable);

    fn session_cookie(browser: &Browser<'_>) -> String {
        browser
            .cookies
            .iter()
            .find(|(name, _)| name == "companion_console")
            .map(|(_, value)| value.clone())
            .unwrap()
    }

    async fn a_console_session_is_no_bearer_token_and_ends_on_sign_out_and_disable(
        backend: Backend,
    ) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        let (browser, _csrf) = Browser::signed_in(&app, &world.clinician_a).await;
        let cookie = session_cookie(&browser);
        // The cookie's token opens no API route.
        for path in ["/v1/me", "/v1/alerts", "/fhir/r4/Patient"] {
            let reply = app.get(path, &cookie).await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{path}: {}",
                reply.text
            );
        }
        app.get("/v1/me", &world.clinician_a.access)
            .await
            .expect(StatusCode::OK);

        // Disabling the account ends its console session at once.
        let (mut admin_browser, _) = Browser::signed_in(&app, &world.admin_a).await;
        let mut clinician = Browser::signed_in(&app, &world.clinician_a).await.0;
        clinician.get("/console").await.expect(StatusCode::OK);
        app.call(
            Method::POST,
            &format!("/v1/accounts/{}/disable", world.clinician_a.id),
            Some(&world.admin_a.access),
            None,
        )
        .await
        .expect(StatusCode::OK);
        let ended = clinician
            .get("/console")
            .await
            .expect(StatusCode::SEE_OTHER);
        assert_eq!(
            ended.headers[axum::http::header::LOCATION],
            "/console/login?ended=1"
        );
        // Signing out ends it too, and its cookie then opens nothing.
        let page = admin_browser.get("/console").await.expect(StatusCode::OK);
        let csrf = crate::console::csrf_of(&page.text);
        let stolen = session_cookie(&admin_browser);
        admin_browser
            .post("/console/logout", &[("csrf", &csrf)])
            .await
            .expect(StatusCode::SEE_OTHER);
        let mut replay = Browser::new(&app);
        replay.cookies = vec![("companion_console".to_owned(), stolen)];
        replay.get("/console").await.expect(StatusCode::SEE_OTHER);
    }
}

mod export_files {
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request, header};
    use chrono::TimeDelta;
    use std::path::{Path, PathBuf};

    both!(
        export_files_and_the_database_are_readable_by_the_server_alone,
        housekeeping_deletes_expired_failed_and_orphaned_export_files,
        erasing_a_patient_invalidates_the_exports_made_before,
    );

    async fn kick_off(app: &TestApp, token: &str) -> String {
        let request = Request::builder()
            .method(Method::GET)
            .uri("/fhir/r4/Patient/$export")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header("prefer", "respond-async")
            .body(Body::empty())
            .unwrap();
        let reply = app.send(request).await.expect(StatusCode::ACCEPTED);
        let location = reply.headers[header::CONTENT_LOCATION].to_str().unwrap();
        url::Url::parse(location).unwrap().path().to_owned()
    }

    fn exports(app: &TestApp) -> PathBuf {
        app.app.config.data_dir.join("exports")
    }

    fn folder_of(app: &TestApp, status: &str) -> PathBuf {
        exports(app).join(status.rsplit('/').next().unwrap())
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    async fn export_files_and_the_database_are_readable_by_the_server_alone(backend: Backend) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        submit(
            &app,
            &world.patient_a,
            "phq9",
            phq9([1, 1, 1, 1, 1, 1, 1, 1, 0]),
        )
        .await;
        let status = kick_off(&app, &world.clinician_a.access).await;
        app.run_jobs().await;
        app.get(&status, &world.clinician_a.access)
            .await
            .expect(StatusCode::OK);
        let folder = folder_of(&app, &status);
        let files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!files.is_empty());
        #[cfg(unix)]
        {
            assert_eq!(mode(&exports(&app)), 0o700);
            assert_eq!(mode(&folder), 0o700);
            for file in &files {
                assert_eq!(mode(file), 0o600, "{}", file.display());
            }
            if let companion::config::DatabaseTarget::Sqlite(db) = &app.app.config.database {
                assert_eq!(mode(db), 0o600);
                let wal = PathBuf::from(format!("{}-wal", db.display()));
                assert!(wal.exists());
                assert_eq!(mode(&wal), 0o600);
            }
        }
    }

    async fn housekeeping_deletes_expired_failed_and_orphaned_export_files(backend: Backend) {
        let app = TestApp::with_settings(backend, &[("COMPANION_ACCESS_TOKEN_TTL", "86400")]).await;
        let world = app.world().await;
        submit(
            &app,
            &world.patient_a,
            "phq9",
            phq9([1, 1, 1, 1, 1, 1, 1, 1, 0]),
        )
        .await;
        let done = kick_off(&app, &world.clinician_a.access).await;
        app.run_jobs().await;
        assert!(folder_of(&app, &done).is_dir());
        // A folder no export owns (a crash between writing and recording, a restored backup).
        let orphan = exports(&app).join(uuid::Uuid::now_v7().to_string());
        std::fs::create_dir_all(&orphan).unwrap();
        std::fs::write(orphan.join("Patient.ndjson"), b"{}\n").unwrap();
        // An export that fails part-way: a check-in of an instrument version nobody knows.
        app.app
            .db
            .run(|conn| {
                diesel::RunQueryDsl::execute(
                    diesel::sql_query("UPDATE check_ins SET instrument_version = 99"),
                    conn,
                )
            })
            .await
            .unwrap();
        let failed = kick_off(&app, &world.clinician_a.access).await;
        app.run_jobs().await;
        assert!(
            !folder_of(&app, &failed).exists(),
            "a failed export keeps no files"
        );

        // Within the hour, housekeeping keeps the downloadable export and drops the orphan.
        companion::worker::housekeeping(&app.app).await.unwrap();
        assert!(folder_of(&app, &done).is_dir());
        assert!(!orphan.exists());
        // Past it, the expired export's files go even though nobody polled it again.
        app.clock.advance(TimeDelta::minutes(61));
        companion::worker::housekeeping(&app.app).await.unwrap();
        assert!(!folder_of(&app, &done).exists());
        let expired = app.get(&done, &world.clinician_a.access).await;
        assert_eq!(expired.status, StatusCode::NOT_FOUND, "{}", expired.text);
    }

    async fn erasing_a_patient_invalidates_the_exports_made_before(backend: Backend) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        submit(
            &app,
            &world.patient_a,
            "phq9",
            phq9([1, 1, 1, 1, 1, 1, 1, 1, 0]),
        )
        .await;
        submit(
            &app,
            &world.patient_b,
            "phq9",
            phq9([1, 1, 1, 1, 1, 1, 1, 1, 0]),
        )
        .await;
        let clinic_a = kick_off(&app, &world.clinician_a.access).await;
        let clinic_b = kick_off(&app, &world.clinician_b.access).await;
        app.run_jobs().await;
        app.post(
            &format!("/v1/patients/{}/erasure", world.patient_a.id),
            &world.admin_a.access,
            json!({}),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
        // The export that holds the erased patient is gone, files and all, at once.
        let polled = app.get(&clinic_a, &world.clinician_a.access).await;
        assert_eq!(polled.status, StatusCode::NOT_FOUND, "{}", polled.text);
        assert!(polled.text.contains("erased"), "{}", polled.text);
        let file = app
            .get(
                &format!("{clinic_a}/Patient.ndjson"),
                &world.clinician_a.access,
            )
            .await;
        assert_eq!(file.status, StatusCode::NOT_FOUND);
        assert!(!folder_of(&app, &clinic_a).exists());
        // Another clinic's export is untouched.
        app.get(&clinic_b, &world.clinician_b.access)
            .await
            .expect(StatusCode::OK);
        assert!(folder_of(&app, &clinic_b).is_dir());
        // A new export of the clinic no longer holds the patient.
        let fresh = kick_off(&app, &world.clinician_a.access).await;
        app.run_jobs().await;
        let patients = app
            .get(
                &format!("{fresh}/Patient.ndjson"),
                &world.clinician_a.access,
            )
            .await
            .expect(StatusCode::OK);
        assert!(!patients.text.contains(&world.patient_a.id));
    }
}

mod erasure {
    use super::*;
    use crate::escalation::{device, on_call};
    use axum::http::Method;
    use chrono::{SecondsFormat, TimeDelta};

    both!(
        erasure_frees_the_record_number_and_the_email_on_other_invitations,
        deidentified_check_ins_keep_no_free_text,
        every_column_of_every_table_is_accounted_for_by_erasure,
    );

    async fn erase(app: &TestApp, world: &World, patient: &str) {
        app.call(
            Method::POST,
            &format!("/v1/patients/{patient}/erasure"),
            Some(&world.admin_a.access),
            None,
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    }

    async fn erasure_frees_the_record_number_and_the_email_on_other_invitations(backend: Backend) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        app.patch(
            &format!("/v1/patients/{}", world.patient_a.id),
            &world.clinician_a.access,
            json!({"external_id": "MRN-0042"}),
        )
        .await
        .expect(StatusCode::OK);
        let taken = app
            .patch(
                &format!("/v1/patients/{}", world.patient_a2.id),
                &world.clinician_a.access,
                json!({"external_id": "MRN-0042"}),
            )
            .await;
        assert_error(&taken, StatusCode::CONFLICT, "external_id_taken");
        // Another invitation of the clinic addressed to the patient's email, never accepted.
        app.post(
            &format!("/v1/clinics/{}/invitations", world.clinic_a),
            &world.admin_a.access,
            json!({"role": "patient", "email": world.patient_a.email}),
        )
        .await
        .expect(StatusCode::CREATED);

        erase(&app, &world, &world.patient_a.id).await;

        app.patch(
            &format!("/v1/patients/{}", world.patient_a2.id),
            &world.clinician_a.access,
            json!({"external_id": "MRN-0042"}),
        )
        .await
        .expect(StatusCode::OK);
        let pending = app
            .get(
                &format!("/v1/clinics/{}/invitations", world.clinic_a),
                &world.admin_a.access,
            )
            .await
            .expect(StatusCode::OK);
        assert!(
            !pending.text.contains(&world.patient_a.email),
            "{}",
            pending.text
        );
        let left = app
            .count(Box::leak(
                format!(
                    "SELECT COUNT(*) AS n FROM invitations WHERE email = '{}'",
                    world.patient_a.email
                )
                .into_boxed_str(),
            ))
            .await;
        assert_eq!(left, 0);
    }

    async fn deidentified_check_ins_keep_no_free_text(backend: Backend) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        app.put(
            &format!("/v1/clinics/{}/retention", world.clinic_a),
            &world.admin_a.access,
            json!({"erasure_mode": "deidentify"}),
        )
        .await
        .expect(StatusCode::OK);
        let at = app.app.now().to_rfc3339_opts(SecondsFormat::Micros, true);
        app.post(
            "/v1/check-ins",
            &world.patient_a.access,
            json!({"id": uuid::Uuid::new_v4().to_string(), "instrument": "daily_mood",
                   "answers": {"mood": 3, "note": "Ring my sister Annabel Quist on 0161 496 0000"},
                   "completed_at": at}),
        )
        .await
        .expect(StatusCode::CREATED);
        let before = app
            .get("/fhir/r4/QuestionnaireResponse", &world.clinician_a.access)
            .await
            .expect(StatusCode::OK);
        assert!(before.text.contains("Annabel Quist"));

        erase(&app, &world, &world.patient_a.id).await;

        let after = app
            .get("/fhir/r4/QuestionnaireResponse", &world.clinician_a.access)
            .await
            .expect(StatusCode::OK);
        assert_eq!(
            after.body["entry"].as_array().map(Vec::len),
            Some(1),
            "the check-in is kept, de-identified: {}",
            after.text
        );
        assert!(!after.text.contains("Annabel"), "{}", after.text);
        assert!(!after.text.contains("0161"), "{}", after.text);
        let observations = app
            .get("/fhir/r4/Observation", &world.clinician_a.access)
            .await
            .expect(StatusCode::OK);
        assert!(!observations.text.contains("Annabel"));
    }

    /// What erasure does to a table's rows.
    #[derive(Clone, Copy)]
    enum Rows {
        /// The table holds no patient data.
        NoPatientData,
        /// The patient's rows (found by this column) are deleted.
        Deleted(&'static str),
        /// Deleted under the clinic's `delete` mode; kept de-identified under `deidentify`
        /// (found by this column, which keeps only the opaque id).
        ByMode(&'static str),
        /// Kept, with only what the column list says.
        Kept,
    }

    /// Every table, what erasure does with its rows, and every column with what erasure does
    /// with it. A column added to the schema fails the test below until it is listed here (and
    /// erasure handles it).
    /// A table: its name, what erasure does with its rows, and each column with what erasure
    /// does with it.
    type Table = (&'static str, Rows, &'static [(&'static str, &'static str)]);

    const INVENTORY: &[Table] = &[
        (
            "accounts",
            Rows::Kept,
            &[
                ("id", "kept: the opaque id audit rows point at"),
                ("email", "replaced with erased-<id>@invalid"),
                ("password_hash", "replaced with an unusable hash"),
                ("role", "kept"),
                ("clinic_id", "kept"),
                ("display_name", "cleared"),
                ("timezone", "replaced with UTC"),
                ("disabled_at", "set: the mark cannot sign in"),
                ("created_at", "kept"),
                ("updated_at", "set to the erasure time"),
                ("on_call", "kept (staff only)"),
                ("working_hours", "cleared"),
                (
                    "external_id",
                    "cleared: the clinic may give the MRN to someone else",
                ),
                ("erased_at", "set"),
            ],
        ),
        (
            "invitations",
            Rows::Kept,
            &[
                ("id", "kept"),
                ("clinic_id", "kept"),
                ("role", "kept"),
                ("code_hash", "kept: the digest of a spent code"),
                (
                    "email",
                    "cleared on the accepted invitation and on every invitation of the clinic that named the email",
                ),
                ("created_by", "kept: a member of staff"),
                ("created_at", "kept"),
                ("expires_at", "kept"),
                ("accepted_at", "kept"),
                ("accepted_account_id", "kept: the opaque id"),
                ("revoked_at", "kept"),
                ("revoked_by", "kept: a member of staff"),
            ],
        ),
        (
            "refresh_families",
            Rows::Deleted("account_id"),
            &[
                ("id", "deleted"),
                ("account_id", "deleted"),
                ("created_at", "deleted"),
                ("revoked_at", "deleted"),
                ("revoked_reason", "deleted"),
            ],
        ),
        (
            "refresh_tokens",
            Rows::NoPatientData,
            &[
                ("token_hash", "deleted with the patient's sessions"),
                ("family_id", "deleted with the patient's sessions"),
                ("issued_at", "deleted with the patient's sessions"),
                ("expires_at", "deleted with the patient's sessions"),
                ("spent_at", "deleted with the patient's sessions"),
            ],
        ),
        (
            "audit_events",
            Rows::Kept,
            &[
                ("id", "kept"),
                ("at", "kept"),
                ("actor_id", "kept: an account id"),
                ("actor_client_id", "kept: a system client id"),
                ("action", "kept: a verb, never data"),
                ("clinic_id", "kept"),
                ("patient_id", "kept: the opaque id"),
                ("subject_id", "kept: an opaque record id"),
                ("request_id", "kept"),
            ],
        ),
        (
            "check_ins",
            Rows::ByMode("patient_id"),
            &[
                ("id", "delete: deleted; deidentify: kept"),
                (
                    "patient_id",
                    "delete: deleted; deidentify: kept (the opaque id)",
                ),
                ("clinic_id", "delete: deleted; deidentify: kept"),
                ("instrument", "delete: deleted; deidentify: kept"),
                ("instrument_version", "delete: deleted; deidentify: kept"),
                (
                    "answers",
                    "delete: deleted; deidentify: kept without free-text answers",
                ),
                ("total", "delete: deleted; deidentify: kept"),
                ("severity", "delete: deleted; deidentify: kept"),
                ("item9", "delete: deleted; deidentify: kept"),
                ("completed_at", "delete: deleted; deidentify: kept"),
                ("received_at", "delete: deleted; deidentify: kept"),
                (
                    "prompt_id",
                    "delete: deleted; deidentify: cleared (the prompts are deleted)",
                ),
                (
                    "content_hash",
                    "delete: deleted; deidentify: kept (a digest)",
                ),
                ("device_completed_at", "delete: deleted; deidentify: kept"),
                ("timing", "delete: deleted; deidentify: kept"),
                ("mood", "delete: deleted; deidentify: kept"),
                ("status", "delete: deleted; deidentify: kept"),
                (
                    "problems",
                    "delete: deleted; deidentify: kept (validation messages, no answers)",
                ),
                (
                    "answers_hash",
                    "delete: deleted; deidentify: kept (a digest)",
                ),
                ("amended_at", "delete: deleted; deidentify: kept"),
                (
                    "earlier_versions",
                    "delete: deleted; deidentify: cleared (earlier answers may hold free text)",
                ),
                (
                    "safety_alert_id",
                    "delete: deleted; deidentify: kept (the alert's opaque id)",
                ),
            ],
        ),
        (
            "treatment_sessions",
            Rows::Deleted("patient_id"),
            &[
                ("id", "deleted"),
                ("patient_id", "deleted"),
                ("clinic_id", "deleted"),
                ("modality", "deleted"),
                ("status", "deleted"),
                ("scheduled_at", "deleted"),
                ("observations", "deleted"),
                ("created_by", "deleted"),
                ("created_at", "deleted"),
                ("updated_at", "deleted"),
            ],
        ),
        (
            "jobs",
            Rows::NoPatientData,
            &[
                (
                    "id",
                    "the patient's queued jobs are deleted; payloads hold opaque ids only",
                ),
                ("kind", "as id"),
                ("payload", "as id"),
                ("dedupe_key", "as id"),
                ("status", "as id"),
                ("attempts", "as id"),
                ("max_attempts", "as id"),
                ("run_at", "as id"),
                ("locked_by", "as id"),
                ("locked_until", "as id"),
                ("last_error", "as id"),
                ("created_at", "as id"),
                ("updated_at", "as id"),
                ("finished_at", "as id"),
                ("priority", "as id"),
            ],
        ),
        (
            "devices",
            Rows::Deleted("account_id"),
            &[
                ("id", "deleted"),
                ("account_id", "deleted"),
                ("platform", "deleted"),
                ("token", "deleted"),
                ("app_version", "deleted"),
                ("locale", "deleted"),
                ("active", "deleted"),
                ("invalid_argument_count", "deleted"),
                ("deactivated_reason", "deleted"),
                ("created_at", "deleted"),
                ("last_seen_at", "deleted"),
                ("web_p256dh", "deleted"),
                ("web_auth", "deleted"),
            ],
        ),
        (
            "notifications",
            Rows::Deleted("account_id"),
            &[
                ("id", "deleted"),
                ("account_id", "deleted"),
                ("device_id", "deleted"),
                ("kind", "deleted"),
                ("ref_id", "deleted"),
                ("status", "deleted"),
                ("attempts", "deleted"),
                ("created_at", "deleted"),
                ("delivered_at", "deleted"),
                ("opened_at", "deleted"),
            ],
        ),
        (
            "notification_attempts",
            Rows::NoPatientData,
            &[
                ("id", "deleted with the patient's notifications"),
                (
                    "notification_id",
                    "deleted with the patient's notifications",
                ),
                ("attempt", "deleted with the patient's notifications"),
                ("at", "deleted with the patient's notifications"),
                ("outcome", "deleted with the patient's notifications"),
                (
                    "provider_status",
                    "deleted with the patient's notifications",
                ),
                (
                    "provider_reason",
                    "deleted with the patient's notifications",
                ),
                ("latency_ms", "deleted with the patient's notifications"),
            ],
        ),
        (
            "alerts",
            Rows::ByMode("patient_id"),
            &[
                (
                    "id",
                    "resolved if open, then delete: deleted; deidentify: kept",
                ),
                ("clinic_id", "as id"),
                ("patient_id", "as id (deidentify: the opaque id)"),
                ("rule", "as id"),
                ("severity", "as id"),
                ("status", "resolved, then as id"),
                ("explanation", "as id (scores and rules, no identifier)"),
                ("inputs", "as id (numbers)"),
                ("check_in_id", "as id"),
                ("signal_count", "as id"),
                ("tier", "as id"),
                ("escalations", "as id"),
                ("opened_at", "as id"),
                ("last_signal_at", "as id"),
                ("ack_deadline", "as id"),
                ("acknowledged_at", "as id"),
                ("acknowledged_by", "as id (staff)"),
                ("assigned_to", "as id (staff)"),
                ("resolved_at", "as id"),
                ("resolved_by", "as id (staff)"),
                (
                    "resolution_note",
                    "delete: deleted; deidentify: replaced with \"patient erased\"",
                ),
                ("round", "as id"),
                ("new_signal_since_ack", "as id"),
                ("unreachable_at", "as id"),
                ("severity_rank", "as id"),
                ("signal_completed_at", "as id"),
                ("signal_received_at", "as id"),
                (
                    "patient_erased_at",
                    "set on an alert left unresolved (kept minimal until resolved)",
                ),
                ("reached_at", "as id"),
            ],
        ),
        (
            "help_requests",
            Rows::Deleted("patient_id"),
            &[
                ("id", "deleted (the alert it raised stays until resolved)"),
                ("patient_id", "deleted"),
                ("clinic_id", "deleted"),
                ("note", "deleted"),
                ("received_at", "deleted"),
                ("alert_id", "deleted"),
            ],
        ),
        (
            "alert_deliveries",
            Rows::NoPatientData,
            &[
                (
                    "id",
                    "deleted with its alert (what each channel did; staff and endpoints only)",
                ),
                ("alert_id", "as id"),
                ("round", "as id"),
                ("escalation", "as id"),
                ("tier", "as id"),
                ("audience", "as id"),
                ("channel", "as id"),
                ("recipient", "as id (staff account or webhook endpoint)"),
                ("ref_id", "as id (notification id or delivery key)"),
                ("status", "as id"),
                (
                    "detail",
                    "as id (provider and server reasons, no patient data)",
                ),
                ("created_at", "as id"),
                ("updated_at", "as id"),
            ],
        ),
        (
            "alert_events",
            Rows::NoPatientData,
            &[
                ("id", "delete: deleted with the alert; deidentify: kept"),
                ("alert_id", "as id"),
                ("at", "as id"),
                ("kind", "as id"),
                ("actor_id", "as id (staff)"),
                (
                    "detail",
                    "delete: deleted; deidentify: blanked (free text staff wrote)",
                ),
                (
                    "check_in_id",
                    "as id (removed from an alert kept after erasure)",
                ),
            ],
        ),
        (
            "webhook_endpoints",
            Rows::NoPatientData,
            &[
                ("id", "-"),
                ("clinic_id", "-"),
                ("url", "-"),
                ("secret", "-"),
                ("previous_secret", "-"),
                ("previous_expires_at", "-"),
                ("active", "-"),
                ("created_at", "-"),
                ("last_success_at", "-"),
                ("failing_since", "-"),
                ("last_failure", "-"),
            ],
        ),
        (
            "patient_schedules",
            Rows::Deleted("patient_id"),
            &[
                ("patient_id", "deleted"),
                ("clinic_id", "deleted"),
                ("window_start", "deleted"),
                ("window_end", "deleted"),
                ("quiet_start", "deleted"),
                ("quiet_end", "deleted"),
                ("care_plan", "deleted"),
                ("planned_until", "deleted"),
                ("updated_at", "deleted"),
            ],
        ),
        (
            "prompts",
            Rows::Deleted("patient_id"),
            &[
                ("id", "deleted"),
                ("patient_id", "deleted"),
                ("clinic_id", "deleted"),
                ("slot", "deleted"),
                ("rule", "deleted"),
                ("instrument", "deleted"),
                ("session_id", "deleted"),
                ("status", "deleted"),
                ("local_time", "deleted"),
                ("due_at", "deleted"),
                ("remind_at", "deleted"),
                ("expires_at", "deleted"),
                ("sent_at", "deleted"),
                ("reminded_at", "deleted"),
                ("closed_at", "deleted"),
                ("check_in_id", "deleted"),
                ("created_at", "deleted"),
                ("updated_at", "deleted"),
            ],
        ),
        (
            "system_clients",
            Rows::NoPatientData,
            &[
                ("id", "-"),
                ("clinic_id", "-"),
                ("name", "-"),
                ("jwks", "-"),
                ("scope", "-"),
                ("created_by", "-"),
                ("created_at", "-"),
                ("disabled_at", "-"),
                ("last_used_at", "-"),
                ("keys_rotated_at", "-"),
            ],
        ),
        (
            "client_assertions",
            Rows::NoPatientData,
            &[("client_id", "-"), ("jti", "-"), ("expires_at", "-")],
        ),
        (
            "system_tokens",
            Rows::NoPatientData,
            &[
                ("token_hash", "-"),
                ("client_id", "-"),
                ("clinic_id", "-"),
                ("scope", "-"),
                ("issued_at", "-"),
                ("expires_at", "-"),
            ],
        ),
        (
            "bulk_exports",
            Rows::NoPatientData,
            &[
                (
                    "id",
                    "the clinic's exports made before are invalidated and their files deleted",
                ),
                ("clinic_id", "as id"),
                ("requested_by", "as id"),
                ("request", "as id"),
                ("base_url", "as id"),
                ("types", "as id"),
                ("since", "as id"),
                ("status", "set to invalidated"),
                ("done_types", "as id"),
                ("output", "as id"),
                ("created_at", "as id"),
                ("finished_at", "as id"),
                ("expires_at", "as id"),
            ],
        ),
        (
            "consent_documents",
            Rows::NoPatientData,
            &[
                ("id", "-"),
                ("clinic_id", "-"),
                ("version", "-"),
                ("title", "-"),
                ("body", "-"),
                ("published_by", "-"),
                ("published_at", "-"),
            ],
        ),
        (
            "consent_records",
            Rows::Deleted("patient_id"),
            &[
                ("id", "deleted"),
                ("patient_id", "deleted"),
                ("clinic_id", "deleted"),
                ("document_id", "deleted"),
                ("version", "deleted"),
                ("action", "deleted"),
                ("at", "deleted"),
            ],
        ),
        (
            "clinic_lifecycle",
            Rows::NoPatientData,
            &[
                ("clinic_id", "-"),
                ("consent_version", "-"),
                ("erasure_mode", "-"),
                ("check_in_retention_days", "-"),
                ("alert_retention_days", "-"),
                ("audit_retention_days", "-"),
                ("updated_at", "-"),
            ],
        ),
        (
            "password_resets",
            Rows::Deleted("account_id"),
            &[
                ("id", "deleted"),
                ("account_id", "deleted"),
                ("code_hash", "deleted"),
                ("issued_by", "deleted (a member of staff)"),
                ("issued_at", "deleted"),
                ("expires_at", "deleted"),
                ("used_at", "deleted"),
            ],
        ),
        (
            "clinics",
            Rows::NoPatientData,
            &[
                ("id", "-"),
                ("name", "-"),
                ("timezone", "-"),
                ("created_at", "-"),
                ("country", "-"),
                ("crisis_phone", "-"),
                ("alert_thresholds", "-"),
                ("escalation_policy", "-"),
                ("care_plan", "-"),
                ("crisis_resources", "-"),
            ],
        ),
    ];

    async fn columns_in_the_database(app: &TestApp, backend: Backend) -> Vec<(String, String)> {
        #[derive(diesel::QueryableByName)]
        struct Column {
            #[diesel(sql_type = diesel::sql_types::Text)]
            table_name: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            column_name: String,
        }
        let sql = match backend {
            Backend::Sqlite => {
                "SELECT m.name AS table_name, p.name AS column_name FROM sqlite_master m \
                 JOIN pragma_table_info(m.name) p WHERE m.type = 'table' \
                 AND m.name NOT LIKE 'sqlite_%' AND m.name <> '__diesel_schema_migrations'"
            }
            Backend::Postgres => {
                "SELECT CAST(table_name AS TEXT) AS table_name, CAST(column_name AS TEXT) AS column_name \
                 FROM information_schema.columns WHERE table_schema = 'public' \
                 AND table_name <> '__diesel_schema_migrations'"
            }
        };
        let mut columns: Vec<(String, String)> = app
            .app
            .db
            .run(move |conn| diesel::RunQueryDsl::load::<Column>(diesel::sql_query(sql), conn))
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.table_name, c.column_name))
            .collect();
        columns.sort();
        columns
    }

    async fn every_column_of_every_table_is_accounted_for_by_erasure(backend: Backend) {
        let app = TestApp::with_settings(backend, &[("COMPANION_ACCESS_TOKEN_TTL", "86400")]).await;
        let world = app.world().await;

        // The inventory names exactly the columns the schema has.
        let mut listed: Vec<(String, String)> = INVENTORY
            .iter()
            .flat_map(|(table, _, columns)| {
                columns
                    .iter()
                    .map(move |(column, _)| ((*table).to_owned(), (*column).to_owned()))
            })
            .collect();
        listed.sort();
        let actual = columns_in_the_database(&app, backend).await;
        let missing: Vec<_> = actual.iter().filter(|c| !listed.contains(c)).collect();
        let stale: Vec<_> = listed.iter().filter(|c| !actual.contains(c)).collect();
        assert!(
            missing.is_empty(),
            "columns erasure does not account for (add them to INVENTORY, and handle them in \
             the owning domain's store, called from lifecycle/erasure.rs): {missing:?}"
        );
        assert!(
            stale.is_empty(),
            "listed columns the schema does not have: {stale:?}"
        );
        for (_, _, columns) in INVENTORY {
            for (column, what) in *columns {
                assert!(!what.is_empty(), "{column} says nothing");
            }
        }

        // The patient leaves data in every table the inventory says erasure empties.
        let patient = &world.patient_a;
        on_call(&app, &world.clinician_a).await;
        device(&app, &world.clinician_a).await;
        device(&app, patient).await;
        submit(&app, patient, "phq9", phq9([1, 1, 1, 1, 1, 1, 1, 1, 2])).await;
        app.post(
            "/v1/me/help-requests",
            &patient.access,
            json!({"note": "please call me"}),
        )
        .await
        .expect(StatusCode::CREATED);
        let at = (app.app.now() + TimeDelta::days(2)).to_rfc3339();
        app.post(
            &format!("/v1/patients/{}/sessions", patient.id),
            &world.clinician_a.access,
            json!({"modality": "iv_infusion", "scheduled_at": at}),
        )
        .await
        .expect(StatusCode::CREATED);
        app.post(
            &format!("/v1/clinics/{}/consent-documents", world.clinic_a),
            &world.admin_a.access,
            json!({"title": "Consent", "body": "I agree."}),
        )
        .await
        .expect(StatusCode::CREATED);
        app.post(
            "/v1/me/consent",
            &patient.access,
            json!({"version": 1, "action": "accept"}),
        )
        .await
        .expect(StatusCode::OK);
        let phone = app
            .post(
                "/v1/devices",
                &patient.access,
                json!({"platform": "ios", "token": format!("ios-{}", uuid::Uuid::new_v4())}),
            )
            .await
            .expect(StatusCode::CREATED);
        app.call(
            Method::POST,
            &format!("/v1/devices/{}/test", phone.body["id"].as_str().unwrap()),
            Some(&patient.access),
            None,
        )
        .await;
        app.run_workers().await;
        app.call(
            Method::POST,
            &format!("/v1/accounts/{}/password-reset", patient.id),
            Some(&world.admin_a.access),
            None,
        )
        .await
        .expect(StatusCode::CREATED);
        let count_of = |table: &str, column: &str| {
            Box::leak(
                format!(
                    "SELECT COUNT(*) AS n FROM {table} WHERE {column} = '{}'",
                    patient.id
                )
                .into_boxed_str(),
            ) as &'static str
        };
        for (table, rows, _) in INVENTORY {
            if let Rows::Deleted(key) | Rows::ByMode(key) = rows {
                assert!(
                    app.count(count_of(table, key)).await > 0,
                    "the patient has no {table} row before erasure: the check below would prove nothing"
                );
            }
        }

        // An unresolved alert outlives erasure until staff resolve it (tested with the safety
        // answers); resolved here, so that everything of the patient's goes.
        let open = app
            .get(
                &format!("/v1/alerts?patient_id={}", patient.id),
                &world.clinician_a.access,
            )
            .await
            .expect(StatusCode::OK);
        for alert in open.body["items"].as_array().unwrap() {
            if alert["status"] != "resolved" {
                app.post(
                    &format!("/v1/alerts/{}/resolve", alert["id"].as_str().unwrap()),
                    &world.clinician_a.access,
                    json!({"note": "seen"}),
                )
                .await
                .expect(StatusCode::OK);
            }
        }
        erase(&app, &world, &patient.id).await;

        for (table, rows, _) in INVENTORY {
            if let Rows::Deleted(key) | Rows::ByMode(key) = rows {
                assert_eq!(
                    app.count(count_of(table, key)).await,
                    0,
                    "{table}: the erased patient's rows (the clinic's mode is delete)"
                );
            }
        }
        let identifiers = app
            .count(Box::leak(
                format!(
                    "SELECT COUNT(*) AS n FROM accounts WHERE id = '{}' AND display_name IS NULL \
                     AND external_id IS NULL AND working_hours IS NULL AND erased_at IS NOT NULL \
                     AND disabled_at IS NOT NULL AND email = 'erased-{}@invalid'",
                    patient.id, patient.id
                )
                .into_boxed_str(),
            ))
            .await;
        assert_eq!(identifiers, 1);
    }
}

mod passwords {
    use super::*;
    use crate::console::{Browser, csrf_of};
    use crate::harness::PASSWORD;
    use axum::http::Method;
    use chrono::TimeDelta;

    both!(
        changing_my_password_needs_the_current_one_and_ends_my_other_sessions,
        a_clinic_admin_issues_a_single_use_reset_code_to_a_member_of_their_clinic,
        passwords_are_changed_and_reset_in_the_console,
        a_reset_link_is_emailed_to_the_account_alone_and_the_answer_tells_nothing,
    );

    const NEW: &str = "a brand new long passphrase";

    /// The mails the sink holds for `address`, waiting a little for one sent after the answer.
    async fn mails_for(
        sink: &companion_fake_push::smtp::SmtpSink,
        address: &str,
        at_least: usize,
    ) -> Vec<companion_fake_push::smtp::Mail> {
        for _ in 0..100 {
            if sink.mails_to(address).len() >= at_least {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        sink.mails_to(address)
    }

    /// The code in a reset email's link, checking the link's form on the way.
    fn code_in(mail: &companion_fake_push::smtp::Mail, email: &str) -> String {
        let body = mail.body();
        let start = body
            .find("https://care.example.org/console/password-reset#")
            .unwrap_or_else(|| panic!("no reset link in {body}"));
        let link: String = body[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        let fragment = link.split_once('#').unwrap().1;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(fragment).unwrap();
        assert_eq!(pairs[0], ("email".to_owned(), email.to_owned()));
        assert_eq!(pairs[1].0, "code");
        let code = pairs[1].1.clone();
        assert!(body.contains(&format!(
            "this code with your email on the reset page: {code}"
        )));
        code
    }

    async fn a_reset_link_is_emailed_to_the_account_alone_and_the_answer_tells_nothing(
        backend: Backend,
    ) {
        // Without a mail server there is no link to send: said plainly.
        let plain = TestApp::new(backend).await;
        let refused = plain
            .post_anonymous(
                "/v1/auth/password-reset-request",
                json!({"email": "ann@example.org"}),
            )
            .await;
        assert_error(&refused, StatusCode::NOT_FOUND, "email_not_configured");
        drop(plain);

        let sink = companion_fake_push::smtp::SmtpSink::start().await.unwrap();
        let url = sink.url();
        let app = TestApp::with_settings(
            backend,
            &[
                ("COMPANION_SMTP_URL", &url),
                ("COMPANION_SMTP_FROM", "Companion <care@care.example.org>"),
                ("COMPANION_PUBLIC_URL", "https://care.example.org"),
            ],
        )
        .await;
        let world = app.world().await;
        let member = &world.clinician_a;
        let ask = |email: &str| {
            app.post_anonymous("/v1/auth/password-reset-request", json!({"email": email}))
        };
        let known = ask(&member.email).await.expect(StatusCode::ACCEPTED);
        let unknown = ask("nobody-here@example.org")
            .await
            .expect(StatusCode::ACCEPTED);
        assert_eq!(known.body, unknown.body, "the answer tells nothing");
        assert_error(
            &ask("not an address").await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );

        let mails = mails_for(&sink, &member.email, 1).await;
        assert_eq!(mails.len(), 1, "{mails:?}");
        assert_eq!(
            mails[0].header("Subject").as_deref(),
            Some("Reset your Companion password")
        );
        let first = code_in(&mails[0], &member.email);
        assert!(sink.mails_to("nobody-here@example.org").is_empty());
        assert_eq!(sink.mails().len(), 1, "one mail, to the account alone");

        // A second request makes the first link stop working; the second works once and ends
        // every session of the account.
        ask(&member.email).await.expect(StatusCode::ACCEPTED);
        let mails = mails_for(&sink, &member.email, 2).await;
        assert_eq!(mails.len(), 2);
        let code = code_in(&mails[1], &member.email);
        assert_ne!(code, first);
        assert_error(
            &redeem(&app, &member.email, &first, NEW).await,
            StatusCode::NOT_FOUND,
            "reset_code_not_found",
        );
        redeem(&app, &member.email, &code, NEW)
            .await
            .expect(StatusCode::NO_CONTENT);
        assert_error(
            &app.get("/v1/me", &member.access).await,
            StatusCode::UNAUTHORIZED,
            "session_revoked",
        );
        app.login(&member.email, NEW).await.expect(StatusCode::OK);
        assert_error(
            &redeem(&app, &member.email, &code, "yet another passphrase").await,
            StatusCode::NOT_FOUND,
            "reset_code_not_found",
        );

        // A link lasts 30 minutes.
        ask(&world.patient_a.email)
            .await
            .expect(StatusCode::ACCEPTED);
        let mails = mails_for(&sink, &world.patient_a.email, 1).await;
        let late = code_in(&mails[0], &world.patient_a.email);
        app.clock.advance(TimeDelta::minutes(31));
        assert_error(
            &redeem(&app, &world.patient_a.email, &late, NEW).await,
            StatusCode::NOT_FOUND,
            "reset_code_not_found",
        );

        // A disabled account is answered alike and sent nothing.
        let disabled = &world.patient_a2;
        let admin = app.token(&world.admin_a).await;
        app.call(
            Method::POST,
            &format!("/v1/accounts/{}/disable", disabled.id),
            Some(&admin),
            Some(json!({})),
        )
        .await
        .expect(StatusCode::OK);
        let quiet = ask(&disabled.email).await.expect(StatusCode::ACCEPTED);
        assert_eq!(quiet.body, unknown.body);

        // The console's reset page offers the link and sends it through the same path.
        let mut browser = Browser::new(&app);
        let form = browser
            .get("/console/password-reset")
            .await
            .expect(StatusCode::OK);
        assert!(form.text.contains("Email me a reset link"), "{}", form.text);
        let sent = browser
            .post(
                "/console/password-reset/email",
                &[
                    ("csrf", &csrf_of(&form.text)),
                    ("email", &world.clinician_b.email),
                ],
            )
            .await
            .expect(StatusCode::OK);
        assert!(
            sent.text.contains("a reset link is on its way"),
            "{}",
            sent.text
        );
        let mails = mails_for(&sink, &world.clinician_b.email, 1).await;
        code_in(&mails[0], &world.clinician_b.email);
        assert!(
            sink.mails_to(&disabled.email).is_empty(),
            "a disabled account is sent no link"
        );
        assert_eq!(
            app.count(
                "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'password_reset.email'"
            )
            .await,
            4
        );
    }

    async fn changing_my_password_needs_the_current_one_and_ends_my_other_sessions(
        backend: Backend,
    ) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        let me = &world.patient_a;
        let other = app.login(&me.email, PASSWORD).await.expect(StatusCode::OK);
        let other_access = other.body["access_token"].as_str().unwrap().to_owned();
        let other_refresh = other.body["refresh_token"].as_str().unwrap().to_owned();

        let wrong = app
            .post(
                "/v1/me/password",
                &me.access,
                json!({"current_password": "not my password at all", "new_password": NEW}),
            )
            .await;
        assert_error(&wrong, StatusCode::FORBIDDEN, "wrong_password");
        let weak = app
            .post(
                "/v1/me/password",
                &me.access,
                json!({"current_password": PASSWORD, "new_password": "short"}),
            )
            .await;
        assert_error(&weak, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(weak.body["error"]["fields"]["new_password"].is_string());
        assert_error(
            &app.call(Method::POST, "/v1/me/password", None, Some(json!({})))
                .await,
            StatusCode::UNAUTHORIZED,
            "missing_token",
        );
        app.post(
            "/v1/me/password",
            &me.access,
            json!({"current_password": PASSWORD, "new_password": NEW}),
        )
        .await
        .expect(StatusCode::NO_CONTENT);

        // This session goes on; the other one has ended, access and refresh alike.
        app.get("/v1/me", &me.access).await.expect(StatusCode::OK);
        assert_error(
            &app.get("/v1/me", &other_access).await,
            StatusCode::UNAUTHORIZED,
            "session_revoked",
        );
        let refreshed = app
            .post_anonymous("/v1/auth/refresh", json!({"refresh_token": other_refresh}))
            .await;
        assert_eq!(refreshed.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            app.login(&me.email, PASSWORD).await.status,
            StatusCode::UNAUTHORIZED
        );
        app.login(&me.email, NEW).await.expect(StatusCode::OK);
        assert_eq!(
            app.count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'password.change'")
                .await,
            1
        );
    }

    async fn redeem(
        app: &TestApp,
        email: &str,
        code: &str,
        password: &str,
    ) -> crate::harness::Reply {
        app.post_anonymous(
            "/v1/auth/password-reset",
            json!({"email": email, "code": code, "new_password": password}),
        )
        .await
    }

    async fn issue(
        app: &TestApp,
        admin: &crate::harness::Actor,
        account: &str,
    ) -> crate::harness::Reply {
        app.call(
            Method::POST,
            &format!("/v1/accounts/{account}/password-reset"),
            Some(&admin.access),
            None,
        )
        .await
    }

    async fn a_clinic_admin_issues_a_single_use_reset_code_to_a_member_of_their_clinic(
        backend: Backend,
    ) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        let member = &world.clinician_a;
        // Who may issue one.
        assert_error(
            &issue(&app, &world.admin_b, &member.id).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        assert_error(
            &issue(&app, &world.clinician_b, &world.patient_b.id).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        assert_error(
            &issue(&app, &world.admin_a, &world.admin_a.id).await,
            StatusCode::CONFLICT,
            "cannot_change_self",
        );
        assert_error(
            &issue(&app, &world.admin_a, &world.org_admin.id).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        let first = issue(&app, &world.admin_a, &member.id)
            .await
            .expect(StatusCode::CREATED);
        let first_code = first.body["code"].as_str().unwrap().to_owned();
        let issued = issue(&app, &world.admin_a, &member.id)
            .await
            .expect(StatusCode::CREATED);
        let code = issued.body["code"].as_str().unwrap().to_owned();
        assert_eq!(issued.body["account_id"], member.id.as_str());
        assert!(issued.body["expires_at"].is_string());

        // An older code stops working once a newer one is issued; a code works only with its
        // account's email; wrong, spent and unknown codes are refused alike.
        let refusals = [
            redeem(&app, &member.email, &first_code, NEW).await,
            redeem(&app, &world.clinician_b.email, &code, NEW).await,
            redeem(&app, &member.email, "AAAAA-AAAAA", NEW).await,
        ];
        for reply in &refusals {
            assert_error(reply, StatusCode::NOT_FOUND, "reset_code_not_found");
        }
        assert_eq!(refusals[0].body, refusals[1].body);
        assert_eq!(refusals[1].body, refusals[2].body);
        let weak = redeem(&app, &member.email, &code, "short").await;
        assert_error(&weak, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

        redeem(
            &app,
            &member.email,
            &code.to_lowercase().replace('-', " "),
            NEW,
        )
        .await
        .expect(StatusCode::NO_CONTENT);
        assert_error(
            &app.get("/v1/me", &member.access).await,
            StatusCode::UNAUTHORIZED,
            "session_revoked",
        );
        app.login(&member.email, NEW).await.expect(StatusCode::OK);
        assert_error(
            &redeem(&app, &member.email, &code, "yet another passphrase").await,
            StatusCode::NOT_FOUND,
            "reset_code_not_found",
        );

        // A code lasts an hour; an organisation admin may issue one to a clinic's admin.
        let late = issue(&app, &world.org_admin, &world.admin_b.id)
            .await
            .expect(StatusCode::CREATED);
        app.clock.advance(TimeDelta::minutes(61));
        assert_error(
            &redeem(
                &app,
                &world.admin_b.email,
                late.body["code"].as_str().unwrap(),
                NEW,
            )
            .await,
            StatusCode::NOT_FOUND,
            "reset_code_not_found",
        );
        assert_eq!(
            app.count(
                "SELECT COUNT(*) AS n FROM audit_events WHERE action IN ('password_reset.issue', 'password_reset.redeem')"
            )
            .await,
            4
        );
    }

    async fn passwords_are_changed_and_reset_in_the_console(backend: Backend) {
        let app = TestApp::new(backend).await;
        let world = app.world().await;
        let (mut clinician, csrf) = Browser::signed_in(&app, &world.clinician_a).await;
        let page = clinician
            .get("/console/account")
            .await
            .expect(StatusCode::OK);
        assert!(page.text.contains("Change my password"));
        let wrong = clinician
            .post(
                "/console/account/password",
                &[
                    ("csrf", &csrf),
                    ("current_password", "wrong wrong wrong"),
                    ("new_password", NEW),
                    ("confirm_password", NEW),
                ],
            )
            .await
            .expect(StatusCode::FORBIDDEN);
        assert!(wrong.text.contains("The current password is wrong."));
        let differ = clinician
            .post(
                "/console/account/password",
                &[
                    ("csrf", &csrf),
                    ("current_password", PASSWORD),
                    ("new_password", NEW),
                    ("confirm_password", "something else entirely"),
                ],
            )
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(differ.text.contains("differ"));
        let changed = clinician
            .post(
                "/console/account/password",
                &[
                    ("csrf", &csrf),
                    ("current_password", PASSWORD),
                    ("new_password", NEW),
                    ("confirm_password", NEW),
                ],
            )
            .await
            .expect(StatusCode::OK);
        assert!(changed.text.contains("Your password is changed"));
        // The console session goes on; the API session from before has ended.
        clinician.get("/console").await.expect(StatusCode::OK);
        assert_eq!(
            app.get("/v1/me", &world.clinician_a.access).await.status,
            StatusCode::UNAUTHORIZED
        );

        // A clinic admin issues a reset code from the clinic page; the member sets a new
        // password with it from the sign-in page.
        let (mut admin, _) = Browser::signed_in(&app, &world.admin_a).await;
        let clinic = admin.get("/console/admin").await.expect(StatusCode::OK);
        let admin_csrf = csrf_of(&clinic.text);
        assert!(clinic.text.contains(&format!(
            "/console/accounts/{}/password-reset",
            world.clinician_a.id
        )));
        let shown = admin
            .post(
                &format!("/console/accounts/{}/password-reset", world.clinician_a.id),
                &[("csrf", &admin_csrf)],
            )
            .await
            .expect(StatusCode::CREATED);
        let code = {
            let marker = "<code class=\"reset-code\">";
            let start = shown.text.find(marker).unwrap() + marker.len();
            let end = shown.text[start..].find('<').unwrap() + start;
            shown.text[start..end].to_owned()
        };
        let mut locked_out = Browser::new(&app);
        let login = locked_out
            .get("/console/login")
            .await
            .expect(StatusCode::OK);
        assert!(login.text.contains("/console/password-reset"));
        let form = locked_out
            .get("/console/password-reset")
            .await
            .expect(StatusCode::OK);
        let reset_csrf = csrf_of(&form.text);
        let bad = locked_out
            .post(
                "/console/password-reset",
                &[
                    ("csrf", &reset_csrf),
                    ("email", &world.clinician_a.email),
                    ("code", "AAAAA-AAAAA"),
                    ("new_password", "the third passphrase"),
                ],
            )
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.text.contains("The code does not match"), "{}", bad.text);
        let reset_csrf = csrf_of(&bad.text);
        let done = locked_out
            .post(
                "/console/password-reset",
                &[
                    ("csrf", &reset_csrf),
                    ("email", &world.clinician_a.email),
                    ("code", &code),
                    ("new_password", "the third passphrase"),
                ],
            )
            .await
            .expect(StatusCode::SEE_OTHER);
        assert_eq!(
            done.headers[axum::http::header::LOCATION],
            "/console/login?reset=1"
        );
        // Every session of the account ended, the console's included.
        let ended = clinician
            .get("/console")
            .await
            .expect(StatusCode::SEE_OTHER);
        assert_eq!(
            ended.headers[axum::http::header::LOCATION],
            "/console/login?ended=1"
        );
        locked_out
            .sign_in(&world.clinician_a.email, "the third passphrase")
            .await
            .expect(StatusCode::SEE_OTHER);
        // Without the form's own token nothing is reset.
        let mut forger = Browser::new(&app);
        forger
            .post(
                "/console/password-reset",
                &[
                    ("email", &world.clinician_a.email),
                    ("code", &code),
                    ("new_password", NEW),
                ],
            )
            .await
            .expect(StatusCode::FORBIDDEN);
    }
}
