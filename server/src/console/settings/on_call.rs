//! The settings page's on-call roster: who of the clinic's staff is on call (the first tier of
//! escalation), and the button a staff member goes on or off call with (the
//! `PUT /v1/me/on-call` use case).

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use crate::app::AppState;
use crate::clinic::use_cases::StaffMember;
use crate::console::form::SignedForm;
use crate::console::page;
use crate::error::Refusal;
use crate::escalation::alerting;

/// The section: each member of staff, whether they are on call, and `me`'s own switch.
pub(super) fn section(staff: &[StaffMember], me: &str, csrf: &str) -> Markup {
    html! {
        section aria-labelledby="oncall-h" {
            h2 id="oncall-h" { "On call" }
            p class="note" { "Staff on call are the first tier of escalation. Each staff member sets their own status." }
            table class="list" id="on-call" {
                thead { tr { th scope="col" { "Name" } th scope="col" { "On call" } th scope="col" { "Action" } } }
                tbody {
                    @for m in staff {
                        tr {
                            td data-label="Name" { (m.display_name.as_deref().unwrap_or("Unnamed staff member")) }
                            td data-label="On call" { @if m.on_call { strong { "on call" } } @else { "no" } }
                            td data-label="Action" {
                                @if m.id == me {
                                    form method="post" action="/console/settings/on-call" {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="on_call" value=(if m.on_call { "false" } else { "true" });
                                        button type="submit" { @if m.on_call { "Go off call" } @else { "Go on call" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The on-call switch: `true` or `false`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OnCallForm {
    on_call: String,
}

/// Marks the signed-in staff member on or off call (the `PUT /v1/me/on-call` use case).
pub async fn set_on_call(
    State(state): State<AppState>,
    SignedForm { user, secure, form }: SignedForm<OnCallForm>,
) -> Response {
    let on_call = match form.on_call.as_str() {
        "true" => true,
        "false" => false,
        _ => {
            return page::failure(
                Refusal::invalid_field("on_call", "must be true or false").into(),
                secure,
            );
        }
    };
    match state
        .write_as(user.bearer, move |conn, caller| {
            alerting::set_on_call(conn, caller, on_call)
        })
        .await
    {
        Ok(_) => page::done("/console/settings#oncall-h"),
        Err(error) => page::failure(error, secure),
    }
}
