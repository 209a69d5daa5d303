//! The OpenAPI document. Routes are registered only here, through `OpenApiRouter` and `routes!`,
//! so no endpoint can exist without being documented; `openapi/openapi.json` is this document,
//! committed, and a test fails when the two differ.

use axum::Router;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub mod exact;

use crate::app::AppState;
use crate::{
    account, auth, check_in, clinic, escalation, fhir, health, help, instrument, invitation,
    prompt, push, treatment,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Companion API",
        version = "1.0.0",
        description = "Keeps patients with treatment-resistant depression connected to their \
            ketamine or esketamine clinic between treatment sessions.\n\n\
            JSON in and out, snake_case fields, RFC 3339 UTC timestamps, opaque string ids. \
            Errors are `{\"error\": {\"code\", \"message\", \"fields\"}}`. Lists take `limit` \
            (default 50, at most 200) and `cursor`, and answer `{\"items\", \"next_cursor\"}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    servers((url = "/", description = "This server")),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign in, refresh and sign out"),
        (name = "accounts", description = "The signed-in account and account administration"),
        (name = "clinics", description = "Clinics and their patient rosters"),
        (name = "invitations", description = "How staff and patients join a clinic"),
        (name = "check-ins", description = "Instruments, check-in submission, history and trends"),
        (name = "sessions", description = "Treatment sessions"),
        (name = "prompts", description = "Check-in prompts, preferences, care plans and adherence"),
        (name = "devices", description = "Push devices and notification delivery"),
        (name = "alerts", description = "The care team's alert inbox and on-call status"),
        (name = "operations", description = "Health probes and metrics"),
        (name = "lifecycle", description = "Consent, access log, export, erasure and retention of patient data"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from /v1/auth/login, /v1/auth/refresh or \
                         /v1/invitations/accept.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every API route, with its documentation.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::handlers::login))
        .routes(routes!(auth::handlers::refresh))
        .routes(routes!(auth::handlers::logout))
        .routes(routes!(auth::handlers::change_my_password))
        .routes(routes!(auth::handlers::issue_password_reset))
        .routes(routes!(auth::handlers::request_password_reset))
        .routes(routes!(auth::handlers::reset_password))
        .routes(routes!(account::handlers::get_me))
        .routes(routes!(account::handlers::disable_account))
        .routes(routes!(account::handlers::enable_account))
        .routes(routes!(
            clinic::handlers::create_clinic,
            clinic::handlers::list_clinics
        ))
        .routes(routes!(
            clinic::handlers::get_clinic,
            clinic::handlers::update_clinic
        ))
        .routes(routes!(clinic::handlers::list_clinic_patients))
        .routes(routes!(
            invitation::handlers::create_invitation,
            invitation::handlers::list_invitations
        ))
        .routes(routes!(invitation::handlers::accept_invitation))
        .routes(routes!(instrument::handlers::list_instruments))
        .routes(routes!(account::handlers::list_time_zones))
        .routes(routes!(check_in::handlers::create_check_in))
        .routes(routes!(check_in::handlers::list_my_check_ins))
        .routes(routes!(check_in::handlers::get_my_check_in))
        .routes(routes!(check_in::handlers::list_patient_check_ins))
        .routes(routes!(check_in::handlers::get_patient_trends))
        .routes(routes!(help::handlers::create_help_request))
        .routes(routes!(help::handlers::get_my_help_request))
        .routes(routes!(
            treatment::handlers::create_session,
            treatment::handlers::list_patient_sessions
        ))
        .routes(routes!(
            treatment::handlers::update_session,
            treatment::handlers::cancel_session
        ))
        .routes(routes!(treatment::handlers::list_my_sessions))
        .routes(routes!(prompt::handlers::list_my_prompts))
        .routes(routes!(
            prompt::handlers::get_my_preferences,
            prompt::handlers::set_my_preferences
        ))
        .routes(routes!(prompt::handlers::list_patient_prompts))
        .routes(routes!(
            prompt::handlers::get_patient_care_plan,
            prompt::handlers::set_patient_care_plan,
            prompt::handlers::reset_patient_care_plan
        ))
        .routes(routes!(
            prompt::handlers::get_clinic_care_plan,
            prompt::handlers::set_clinic_care_plan
        ))
        .routes(routes!(prompt::handlers::get_patient_adherence))
        .routes(routes!(push::handlers::register_device))
        .routes(routes!(push::handlers::get_web_push_key))
        .routes(routes!(push::handlers::delete_device))
        .routes(routes!(push::handlers::test_device))
        .routes(routes!(push::handlers::get_notification))
        .routes(routes!(push::handlers::open_notification))
        .routes(routes!(escalation::handlers::list_alerts))
        .routes(routes!(escalation::handlers::get_alert))
        .routes(routes!(escalation::handlers::acknowledge_alert))
        .routes(routes!(escalation::handlers::assign_alert))
        .routes(routes!(escalation::handlers::resolve_alert))
        .routes(routes!(escalation::handlers::alerting::set_on_call))
        .routes(routes!(
            escalation::handlers::alerting::get_my_working_hours,
            escalation::handlers::alerting::set_my_working_hours
        ))
        .routes(routes!(
            escalation::handlers::alerting::get_clinic_readiness
        ))
        .routes(routes!(crate::safety::handlers::get_my_crisis_resources))
        .routes(routes!(
            escalation::handlers::alerting::get_escalation_policy,
            escalation::handlers::alerting::set_escalation_policy
        ))
        .routes(routes!(
            escalation::handlers::webhooks::create_webhook,
            escalation::handlers::webhooks::list_webhooks
        ))
        .routes(routes!(
            escalation::handlers::webhooks::rotate_webhook_secret
        ))
        .routes(routes!(escalation::handlers::webhooks::delete_webhook))
        .routes(routes!(
            escalation::handlers::alerting::get_alert_thresholds,
            escalation::handlers::alerting::set_alert_thresholds
        ))
        .routes(routes!(
            crate::lifecycle::handlers::list_consent_documents,
            crate::lifecycle::handlers::publish_consent_document
        ))
        .routes(routes!(
            crate::lifecycle::handlers::get_my_consent,
            crate::lifecycle::handlers::decide_my_consent
        ))
        .routes(routes!(crate::lifecycle::handlers::list_my_access_log))
        .routes(routes!(crate::lifecycle::handlers::export_my_data))
        .routes(routes!(crate::lifecycle::handlers::export_patient_data))
        .routes(routes!(crate::lifecycle::handlers::erase_me))
        .routes(routes!(crate::lifecycle::handlers::erase_patient))
        .routes(routes!(
            crate::lifecycle::handlers::get_retention_policy,
            crate::lifecycle::handlers::set_retention_policy
        ))
        .routes(routes!(health::get_liveness))
        .routes(routes!(health::get_readiness))
        .routes(routes!(crate::health::get_metrics))
        .routes(routes!(
            fhir::handlers::create_system_client,
            fhir::handlers::list_system_clients
        ))
        .routes(routes!(fhir::handlers::disable_system_client))
        .routes(routes!(fhir::handlers::rotate_system_client_keys))
        .routes(routes!(clinic::handlers::list_clinic_staff))
        .routes(routes!(invitation::handlers::revoke_invitation))
        .routes(routes!(
            crate::patient::handlers::get_patient,
            crate::patient::handlers::update_patient
        ))
        .routes(routes!(push::handlers::list_my_devices))
}

/// The document as served.
pub fn document() -> Document {
    exact(api_router().into_openapi())
}

/// `generated` (what the routes declare) completed by the rewrites of [`exact`]. A document
/// that would not survive the rewrite is returned as generated; a test checks that it does.
pub fn exact(generated: Document) -> Document {
    let Ok(mut json) = serde_json::to_value(&generated) else {
        return generated;
    };
    exact::apply(&mut json);
    serde_json::from_value(json).unwrap_or(generated)
}

/// The document as pretty JSON with a final newline (the committed file's form).
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// `/openapi.json` and the offline documentation page at `/docs` (Swagger UI, vendored into
/// the binary: no network access needed).
pub fn docs_router(document: Document) -> Router<AppState> {
    Router::from(SwaggerUi::new("/docs").url("/openapi.json", document))
}
