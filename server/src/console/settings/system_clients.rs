//! The settings page's FHIR system clients (clinic admins only): each client with its scopes,
//! whether it is enabled and when it was last used; register one, disable one (its tokens end at
//! once), or replace its keys. The forms call the JSON API's use cases in `fhir::clients`.

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::NaiveDateTime;
use maud::{Markup, html};
use serde::Deserialize;

use crate::app::AppState;
use crate::console::form::{NoFields, SignedForm, filled};
use crate::console::page;
use crate::fhir::clients::{self, ClientRow};

/// System clients listed at most.
pub const LIMIT: i64 = 100;

fn when(at: Option<NaiveDateTime>) -> String {
    at.map_or_else(
        || "never".to_owned(),
        |at| at.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// The section of the settings page.
pub fn section(rows: &[ClientRow], csrf: &str) -> Markup {
    html! {
        section aria-labelledby="system-clients-h" {
            h2 id="system-clients-h" { "FHIR system clients" }
            p class="note" { "Integrations that read this clinic's FHIR data with SMART Backend Services. A client belongs to the clinic: any clinic admin may disable it or replace its keys." }
            table class="list" id="system-clients" {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Client id" } th scope="col" { "Scopes" }
                    th scope="col" { "Status" } th scope="col" { "Last used" } th scope="col" { "Actions" }
                } }
                tbody {
                    @if rows.is_empty() { tr { td colspan="6" { "No system clients." } } }
                    @for row in rows {
                        tr data-client-id=(row.id) {
                            td data-label="Name" { (row.name) }
                            td data-label="Client id" { code { (row.id) } }
                            td data-label="Scopes" { (row.scope) }
                            td data-label="Status" {
                                @match row.disabled_at {
                                    Some(at) => { "Disabled " (at.format("%Y-%m-%d %H:%M UTC")) },
                                    None => "Enabled",
                                }
                            }
                            td data-label="Last used" { (when(row.last_used_at)) }
                            td data-label="Actions" {
                                @if row.disabled_at.is_none() {
                                    form method="post" action={ "/console/settings/system-clients/" (row.id) "/disable" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button type="submit" class="danger" { "Disable" }
                                    }
                                    details {
                                        summary { "Replace keys" }
                                        form method="post" action={ "/console/settings/system-clients/" (row.id) "/keys" } {
                                            input type="hidden" name="csrf" value=(csrf);
                                            label for={ "jwks-" (row.id) } { "New public keys (JWK Set)" }
                                            textarea id={ "jwks-" (row.id) } name="jwks" rows="4" required {}
                                            button type="submit" { "Replace keys" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            details {
                summary { "Register a system client" }
                form method="post" action="/console/settings/system-clients" id="system-client-form" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="client-name" { "Name" }
                    input id="client-name" name="name" type="text" maxlength="100" required;
                    label for="client-scope" { "Scopes" }
                    input id="client-scope" name="scope" type="text" value="system/*.read";
                    label for="client-jwks" { "Public keys (JWK Set)" }
                    textarea id="client-jwks" name="jwks" rows="4" required {}
                    button type="submit" class="primary" { "Register" }
                }
            }
        }
    }
}

/// The form's JWK Set; text that is not JSON is passed on as `null`, which the use case refuses
/// (after its role check) as not a JWK Set.
fn jwks_of(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

/// The form that registers a system client: its name, scopes (empty for the default) and
/// public keys.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ClientForm {
    name: String,
    scope: String,
    jwks: String,
}

/// The form that replaces a client's public keys.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KeysForm {
    jwks: String,
}

/// Registers a system client from the form.
pub async fn register(
    State(state): State<AppState>,
    SignedForm { user, secure, form }: SignedForm<ClientForm>,
) -> Response {
    let scope = filled(&form.scope).map(str::to_owned);
    let jwks = jwks_of(&form.jwks);
    let name = form.name;
    let now = state.now();
    match state
        .write_as(user.bearer, move |conn, caller| {
            let clinic = caller
                .own_clinic()
                .map(ToString::to_string)
                .unwrap_or_default();
            clients::register(conn, caller, &clinic, &name, &jwks, scope.as_deref(), now)
        })
        .await
    {
        Ok(_) => page::done("/console/settings#system-clients-h"),
        Err(error) => page::failure(error, secure),
    }
}

/// Disables a system client; its tokens end at once.
pub async fn disable(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedForm { user, secure, .. }: SignedForm<NoFields>,
) -> Response {
    let now = state.now();
    match state
        .write_as(user.bearer, move |conn, caller| {
            clients::disable(conn, caller, &id, now)
        })
        .await
    {
        Ok(_) => page::done("/console/settings#system-clients-h"),
        Err(error) => page::failure(error, secure),
    }
}

/// Replaces a system client's keys.
pub async fn rotate_keys(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedForm { user, secure, form }: SignedForm<KeysForm>,
) -> Response {
    let jwks = jwks_of(&form.jwks);
    let now = state.now();
    match state
        .write_as(user.bearer, move |conn, caller| {
            clients::rotate_keys(conn, caller, &id, &jwks, now)
        })
        .await
    {
        Ok(_) => page::done("/console/settings#system-clients-h"),
        Err(error) => page::failure(error, secure),
    }
}
