//! The clinic settings page (`/console/settings`): what its sections share. One read loads
//! every section's data and the sections are laid out in order, each from its own file with the
//! forms that change it: clinic details (`details`), who is on call (`on_call`), the escalation
//! policy (`policy`), the alert thresholds (`thresholds`), webhooks (`webhooks`), FHIR system
//! clients (`system_clients`) and the clinic's default care plan (`care_plan`). Clinicians read
//! them (webhooks and system clients are the admins' alone); clinic admins change them. Every form
//! calls the JSON API's own use case, so roles, validation and audit rows are the same.

pub mod care_plan;
pub mod details;
pub mod on_call;
pub mod policy;
pub mod system_clients;
pub mod thresholds;
pub mod webhooks;

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use crate::account::model::Role;
use crate::app::AppState;
use crate::clinic::ClinicRow;
use crate::clinic::use_cases::{self as clinics, StaffMember};
use crate::escalation::AlertingSetting;
use crate::escalation::alerting::{self, AlertingChange};
use crate::escalation::policy::EscalationPolicy;
use crate::escalation::rules::Thresholds;
use crate::escalation::webhooks::EndpointRow;
use crate::prompt::plan::CarePlan;

use super::form::filled;
use super::page::{self, Nav};
use super::session::{self, ConsoleUser};
use webhooks::NewWebhook;

fn own_clinic(caller: &crate::auth::extract::Caller) -> String {
    caller
        .own_clinic()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// What the page shows: every section's data, read in one unit of work.
struct SettingsPage {
    clinic: ClinicRow,
    staff: Vec<StaffMember>,
    policy: EscalationPolicy,
    thresholds: Thresholds,
    care_plan: CarePlan,
    /// The catalogue's instruments a rule may prompt for: key and title.
    instruments: Vec<(String, String)>,
    /// None for clinicians, who may not see webhooks.
    webhooks: Option<Vec<EndpointRow>>,
    /// None for clinicians, who may not see system clients.
    system_clients: Option<Vec<crate::fhir::clients::ClientRow>>,
    me: String,
    admin: bool,
}

/// The page, answered with `status`; `created` is a webhook just added, whose secret it shows once.
async fn settings_page(
    state: &AppState,
    secure: bool,
    user: &ConsoleUser,
    created: Option<NewWebhook>,
    status: StatusCode,
) -> Response {
    let now = state.now();
    let instruments: Vec<(String, String)> = state
        .catalogue
        .current()
        .into_iter()
        .map(|i| (i.key.clone(), i.title.clone()))
        .collect();
    let loaded = state
        .read_as(user.bearer.clone(), move |conn, caller| {
            let id = own_clinic(caller);
            let clinic = clinics::get(conn, caller, &id)?;
            let staff = clinics::list_staff(conn, caller)?;
            let policy =
                alerting::read_setting(conn, caller, &id, AlertingSetting::EscalationPolicy)?;
            let thresholds =
                alerting::read_setting(conn, caller, &id, AlertingSetting::AlertThresholds)?;
            let care_plan = crate::prompt::use_cases::clinic_care_plan(conn, caller, &id)?;
            let admin = caller.role == Role::ClinicAdmin;
            let webhooks = if admin {
                Some(crate::escalation::webhooks::list_endpoints(
                    conn,
                    caller,
                    &id,
                    None,
                    webhooks::LIMIT,
                    now,
                )?)
            } else {
                None
            };
            let system_clients = if admin {
                Some(crate::fhir::clients::list(
                    conn,
                    caller,
                    &id,
                    None,
                    system_clients::LIMIT,
                    now,
                )?)
            } else {
                None
            };
            Ok(SettingsPage {
                clinic,
                staff,
                policy,
                thresholds,
                care_plan,
                instruments,
                webhooks,
                system_clients,
                me: caller.account_id.to_string(),
                admin,
            })
        })
        .await;
    match loaded {
        Ok(data) => (
            status,
            page::frame(
                "Clinic settings",
                Nav::Settings,
                Some(&user.csrf),
                settings_body(&data, created.as_ref(), &user.csrf),
            ),
        )
            .into_response(),
        Err(error) => page::failure(error, secure),
    }
}

fn settings_body(data: &SettingsPage, created: Option<&NewWebhook>, csrf: &str) -> Markup {
    html! {
        h1 { "Clinic settings" }
        @if !data.admin {
            p class="note" { "You can read these settings; a clinic admin changes them." }
        }
        (details::section(&data.clinic, data.admin, csrf))
        (on_call::section(&data.staff, &data.me, csrf))
        (policy::section(&data.policy, data.admin, csrf))
        (thresholds::section(&data.thresholds, data.admin, csrf))
        @if let Some(hooks) = &data.webhooks {
            (webhooks::section(hooks, created, csrf))
        }
        @if let Some(rows) = &data.system_clients {
            (system_clients::section(rows, csrf))
        }
        (care_plan::section(&data.care_plan, &data.instruments, data.admin, csrf))
    }
}

/// How a settings form's field is named in a validation message: a threshold by its meaning, a
/// care plan rule's or a tier's field by its row's number as shown.
pub fn field_label(field: &str) -> Option<String> {
    thresholds::field_label(field)
        .or_else(|| care_plan::field_label(field))
        .or_else(|| policy::field_label(field))
}

/// The settings page.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: ConsoleUser,
) -> Response {
    let secure = session::secure(&state, &headers);
    settings_page(&state, secure, &user, None, StatusCode::OK).await
}

/// Non-empty trimmed text of a field.
fn text<'f>(form: &'f BTreeMap<String, String>, field: &str) -> Option<&'f str> {
    form.get(field).and_then(|v| filled(v))
}

/// Saves one of the clinic's alerting settings through the API's use case, then back to its
/// section of the page.
async fn save_setting<T>(
    state: &AppState,
    user: ConsoleUser,
    change: AlertingChange<T>,
    secure: bool,
    section: &'static str,
) -> Response
where
    T: serde::Serialize + Send + 'static,
{
    let now = state.now();
    let saved = state
        .write_as(user.bearer, move |conn, caller| {
            let id = own_clinic(caller);
            alerting::update_setting(conn, caller, &id, change, now)
        })
        .await;
    match saved {
        Ok(_) => page::done(section),
        Err(error) => page::failure(error, secure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_fields_are_named_as_the_form_shows_them() {
        assert_eq!(
            field_label("tiers[0].delay_minutes.urgent").as_deref(),
            Some("Tier 1 urgent delay")
        );
        assert_eq!(
            field_label("tiers[4].audience").as_deref(),
            Some("Tier 5 (who is told)")
        );
        assert_eq!(
            field_label("cusum_h").as_deref(),
            Some("CUSUM decision interval (robust SDs)")
        );
        assert_eq!(field_label("tiers"), None);
        assert_eq!(field_label("tiers[x].audience"), None);
    }
}
