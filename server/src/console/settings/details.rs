//! The settings page's clinic details: the clinic's name, time zone, country and crisis number,
//! and the form a clinic admin changes them with (the `PATCH /v1/clinics/{id}` use case).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use crate::account::model::parse_timezone;
use crate::app::AppState;
use crate::clinic::input::{checked as check_field, parse_country, parse_name, parse_phone};
use crate::clinic::use_cases as clinics;
use crate::clinic::{ClinicChanges, ClinicRow};
use crate::console::form::{SignedForm, filled};
use crate::console::page;

use super::own_clinic;

/// The section: the details as they are, and for clinic admins the form that changes them.
pub(super) fn section(c: &ClinicRow, admin: bool, csrf: &str) -> Markup {
    html! {
        section aria-labelledby="details-h" {
            h2 id="details-h" { "Clinic details" }
            dl class="facts" id="clinic-details" {
                dt { "Name" } dd { (c.name) }
                dt { "Time zone" } dd { (c.timezone) }
                dt { "Country" } dd { (c.country.as_deref().unwrap_or("from the time zone")) }
                dt { "Crisis phone" } dd id="crisis-phone" { (c.crisis_phone.as_deref().unwrap_or("none")) }
            }
            @if admin {
                details {
                    summary { "Change clinic details" }
                    form method="post" action="/console/settings/clinic" class="stacked" id="clinic-form" {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="name" { "Name" }
                        input id="name" name="name" value=(c.name) required maxlength="200";
                        label for="timezone" { "Time zone (IANA name, such as America/Chicago)" }
                        input id="timezone" name="timezone" value=(c.timezone) required;
                        label for="country" { "Country (two letters, such as US; empty to use the time zone's)" }
                        input id="country" name="country" value=(c.country.as_deref().unwrap_or("")) maxlength="2";
                        label for="crisis_phone" { "Crisis phone (empty for none)" }
                        input id="crisis_phone" name="crisis_phone" type="tel" value=(c.crisis_phone.as_deref().unwrap_or("")) maxlength="32";
                        button type="submit" class="primary" { "Save clinic details" }
                    }
                }
            }
        }
    }
}

/// The clinic details form: an empty country or crisis phone clears it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ClinicForm {
    name: String,
    timezone: String,
    country: String,
    crisis_phone: String,
}

/// Changes the clinic's details (the `PATCH /v1/clinics/{id}` use case).
pub async fn update_clinic(
    State(state): State<AppState>,
    SignedForm { user, secure, form }: SignedForm<ClinicForm>,
) -> Response {
    let mut problems = BTreeMap::new();
    let mut changes = ClinicChanges {
        name: check_field(&mut problems, "name", parse_name(&form.name)),
        timezone: check_field(&mut problems, "timezone", parse_timezone(&form.timezone))
            .map(|tz| tz.name().to_owned()),
        ..ClinicChanges::default()
    };
    changes.country = Some(
        filled(&form.country)
            .and_then(|c| check_field(&mut problems, "country", parse_country(c, &state.zones))),
    );
    changes.crisis_phone = Some(
        filled(&form.crisis_phone)
            .and_then(|p| check_field(&mut problems, "crisis_phone", parse_phone(p))),
    );
    let now = state.now();
    match state
        .write_as(user.bearer, move |conn, caller| {
            let id = own_clinic(caller);
            clinics::update(conn, caller, &id, changes, problems, now)
        })
        .await
    {
        Ok(_) => page::done("/console/settings#details-h"),
        Err(error) => page::failure(error, secure),
    }
}
