//! The settings page's webhooks (clinic admins only): the clinic's endpoints, the form that adds
//! one (its signing secret shown once, on the page that answers the form) and the button that
//! deletes one, through the same use cases as `/v1/clinics/{id}/webhooks`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use crate::app::AppState;
use crate::console::form::{NoFields, SignedForm};
use crate::console::page;
use crate::escalation::webhooks::{self, EndpointRow};

use super::{own_clinic, settings_page};

/// Webhooks listed at most.
pub const LIMIT: i64 = 100;

/// A secret shown once, after an endpoint is created.
pub struct NewWebhook {
    url: String,
    secret: String,
}

/// The section: the endpoints, the form that adds one, and a new endpoint's secret.
pub(super) fn section(hooks: &[EndpointRow], created: Option<&NewWebhook>, csrf: &str) -> Markup {
    html! {
        section aria-labelledby="webhooks-h" {
            h2 id="webhooks-h" { "Webhooks" }
            @if let Some(new) = created {
                div class="readiness warn" role="status" id="new-webhook" {
                    h2 { "Webhook created" }
                    p { "Deliveries to " (new.url) " are signed with this secret. It is shown only now:" }
                    p { code class="webhook-secret" { (new.secret) } }
                }
            }
            form method="post" action="/console/settings/webhooks" class="inline-form" id="webhook-form" {
                input type="hidden" name="csrf" value=(csrf);
                label for="webhook-url" { "Endpoint URL (http or https)" }
                input id="webhook-url" name="url" type="url" required;
                button type="submit" class="primary" { "Add webhook" }
            }
            table class="list" id="webhooks" {
                thead { tr { th scope="col" { "URL" } th scope="col" { "Added" } th scope="col" { "Actions" } } }
                tbody {
                    @if hooks.is_empty() { tr { td colspan="3" { "No webhooks." } } }
                    @for hook in hooks {
                        tr data-webhook-id=(hook.id) {
                            td data-label="URL" { (hook.url) }
                            td data-label="Added" { (hook.created_at.format("%Y-%m-%d %H:%M UTC")) }
                            td data-label="Actions" {
                                form method="post" action={ "/console/settings/webhooks/" (hook.id) "/delete" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button type="submit" class="danger" { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The form that adds a webhook: its endpoint's URL.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WebhookForm {
    url: String,
}

/// Adds a webhook endpoint and shows its secret once.
pub async fn create_webhook(
    State(state): State<AppState>,
    SignedForm { user, secure, form }: SignedForm<WebhookForm>,
) -> Response {
    let url = form.url;
    let now = state.now();
    let policy = state.outbound.policy.clone();
    match state
        .write_as(user.bearer.clone(), move |conn, caller| {
            let id = own_clinic(caller);
            webhooks::create_endpoint(conn, caller, &policy, &id, &url, now)
        })
        .await
    {
        Ok(row) => {
            let created = NewWebhook {
                url: row.url,
                secret: row.secret,
            };
            settings_page(&state, secure, &user, Some(created), StatusCode::CREATED).await
        }
        Err(error) => page::failure(error, secure),
    }
}

/// Deletes (deactivates) a webhook endpoint.
pub async fn delete_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedForm { user, secure, .. }: SignedForm<NoFields>,
) -> Response {
    let now = state.now();
    match state
        .write_as(user.bearer, move |conn, caller| {
            webhooks::deactivate(conn, caller, &id, now)
        })
        .await
    {
        Ok(()) => page::done("/console/settings#webhooks-h"),
        Err(error) => page::failure(error, secure),
    }
}
