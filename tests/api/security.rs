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
        let app = TestApp::with_settings(backend, &[("COMPANION_ENV", "production")]).await;
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
        assert_eq!(jobs.len(), 2, "{jobs:?}");
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
