//! The care-team console: server-rendered HTML pages under `/console` for clinic staff (the
//! alert inbox, patient pages with charts, treatment sessions), served by the same binary with
//! its stylesheet and script embedded, so it works offline with no separate toolchain.
//!
//! These pages are not JSON API operations: they are merged into the router beside the
//! documented API (not registered through `openapi.rs`) and are absent from the OpenAPI
//! document. They call the same use cases as the JSON API, inside the same units of work
//! (`App::read_as` / `App::write_as`), so every read is audited and every rule holds alike.

pub mod account;
pub mod admin;
pub mod charts;
pub mod demo;
pub mod form;
pub mod inbox;
pub mod page;
pub mod patient;
pub mod session;
pub mod settings;
pub mod sign_in;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::app::AppState;

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// Adds the headers every console page carries: no caching of patient data, no framing, a
/// content security policy that admits only the console's own assets.
async fn page_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let is_asset = request.uri().path().starts_with("/console/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The console's routes, merged into the service by `router::router`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(inbox::inbox_page))
        .route("/console/", get(inbox::inbox_page))
        .route(
            "/console/login",
            get(sign_in::login_page).post(sign_in::login),
        )
        .route("/console/logout", post(sign_in::logout))
        .route("/console/account", get(account::page))
        .route("/console/account/password", post(account::change_password))
        .route(
            "/console/account/web-push",
            post(account::register_web_push),
        )
        .route("/console/push-worker.js", get(account::push_worker))
        .route(
            "/console/accounts/{account_id}/password-reset",
            post(account::issue_reset),
        )
        .route(
            "/console/password-reset",
            get(account::reset_form_page).post(account::reset),
        )
        .route(
            "/console/password-reset/email",
            post(account::request_reset_email),
        )
        .route("/console/alerts", get(inbox::inbox_page))
        .route("/console/alerts/rows", get(inbox::inbox_rows))
        .route(
            "/console/alerts/{alert_id}/acknowledge",
            post(inbox::acknowledge),
        )
        .route("/console/alerts/{alert_id}/assign", post(inbox::assign))
        .route("/console/alerts/{alert_id}/resolve", post(inbox::resolve))
        .route("/console/patients", get(admin::roster_page))
        .route("/console/patients/search", post(admin::search))
        .route("/console/admin", get(admin::admin_page))
        .route("/console/admin/invitations", post(admin::create_invitation))
        .route(
            "/console/admin/invitations/{invitation_id}/revoke",
            post(admin::revoke_invitation),
        )
        .route("/console/patients/{patient_id}", get(patient::patient_page))
        .route(
            "/console/patients/{patient_id}/sessions",
            post(patient::schedule),
        )
        .route(
            "/console/sessions/{session_id}/move",
            post(patient::move_session),
        )
        .route(
            "/console/sessions/{session_id}/complete",
            post(patient::complete_session),
        )
        .route(
            "/console/sessions/{session_id}/cancel",
            post(patient::cancel_session),
        )
        .route("/console/settings", get(settings::page))
        .route(
            "/console/settings/clinic",
            post(settings::details::update_clinic),
        )
        .route(
            "/console/settings/on-call",
            post(settings::on_call::set_on_call),
        )
        .route(
            "/console/settings/escalation-policy",
            post(settings::policy::set_policy),
        )
        .route(
            "/console/settings/alert-thresholds",
            post(settings::thresholds::set_thresholds),
        )
        .route(
            "/console/settings/care-plan",
            post(settings::care_plan::set_care_plan),
        )
        .route(
            "/console/settings/webhooks",
            post(settings::webhooks::create_webhook),
        )
        .route(
            "/console/settings/webhooks/{webhook_id}/delete",
            post(settings::webhooks::delete_webhook),
        )
        .route(
            "/console/settings/system-clients",
            post(settings::system_clients::register),
        )
        .route(
            "/console/settings/system-clients/{client_id}/disable",
            post(settings::system_clients::disable),
        )
        .route(
            "/console/settings/system-clients/{client_id}/keys",
            post(settings::system_clients::rotate_keys),
        )
        .route(
            "/console/assets/console.css",
            get(|| async { asset("text/css; charset=utf-8", page::CSS) }),
        )
        .route(
            "/console/assets/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", page::JS) }),
        )
        .layer(axum::middleware::from_fn(page_headers))
}
