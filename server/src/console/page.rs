//! The console's page frame (head, navigation, embedded assets), its error pages, and how a
//! refused request or a submitted form is answered in HTML. Titles never name a patient.

use std::collections::BTreeMap;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, TimeDelta, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::error::ApiError;

/// The stylesheet, embedded so the console works offline.
pub const CSS: &str = include_str!("assets/console.css");
/// The small script (live inbox, countdowns), embedded.
pub const JS: &str = include_str!("assets/console.js");
/// The console's service worker (browser notifications for alerts).
pub const PUSH_WORKER: &str = include_str!("assets/push-worker.js");

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The alert inbox.
    Inbox,
    /// A patient page.
    Patient,
    /// The roster.
    Patients,
    /// The clinic admin page.
    Clinic,
    /// The clinic settings page.
    Settings,
    /// My account (password).
    Account,
    /// No navigation (sign-in, errors).
    None,
}

/// A whole page. `title` must carry no PHI.
pub fn frame(title: &str, nav: Nav, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · Companion console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    span class="brand" { "Companion" }
                    @if nav != Nav::None {
                        nav aria-label="Main" {
                            a href="/console" aria-current=[(nav == Nav::Inbox).then_some("page")] { "Alert inbox" }
                            " "
                            a href="/console/patients" aria-current=[(nav == Nav::Patients).then_some("page")] { "Patients" }
                            " "
                            a href="/console/admin" aria-current=[(nav == Nav::Clinic).then_some("page")] { "Clinic" }
                            " "
                            a href="/console/settings" aria-current=[(nav == Nav::Settings).then_some("page")] { "Settings" }
                            " "
                            a href="/console/account" aria-current=[(nav == Nav::Account).then_some("page")] { "My account" }
                        }
                    }
                    @if let Some(csrf) = csrf {
                        form method="post" action="/console/logout" class="signout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// The page for patients and organisation admins, who have no console.
pub fn refusal_page() -> Markup {
    frame(
        "Not for this account",
        Nav::None,
        None,
        html! {
            h1 { "The console is for clinic staff" }
            p { "This account cannot use the care-team console. Patients use the phone app; organisation admins manage clinics through the API." }
            p { a href="/console/login" { "Sign in with another account" } }
        },
    )
}

/// An error page with a status.
pub fn error_page(status: StatusCode, heading: &str, detail: Markup) -> Response {
    (
        status,
        frame(
            heading,
            Nav::None,
            None,
            html! {
                h1 { (heading) }
                (detail)
                p { a href="/console" { "Back to the inbox" } }
            },
        ),
    )
        .into_response()
}

/// The form's fields with the messages of what is wrong with them.
pub fn field_problems(fields: &BTreeMap<String, String>) -> Markup {
    html! {
        ul class="problems" role="alert" {
            @for (field, problem) in fields {
                li { strong { (field_label(field)) } " " (problem) }
            }
        }
    }
}

fn field_label(field: &str) -> String {
    match field {
        "scheduled_at" => "Date and time".into(),
        "assignee_id" => "Assignee".into(),
        "timezone" => "Time zone".into(),
        "url" => "URL".into(),
        other => {
            if let Some(label) = super::settings::field_label(other) {
                return label;
            }
            let mut label = other.replace('_', " ");
            if let Some(first) = label.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            label
        }
    }
}

/// Answers a refused or failed request as a page: sign-in again for an ended session, a page
/// for the rest (never the cause of an internal failure).
pub fn failure(error: ApiError, secure: bool) -> Response {
    let status = error.status();
    match status {
        StatusCode::UNAUTHORIZED => super::session::session_ended(secure),
        StatusCode::FORBIDDEN => {
            error_page(status, "Not allowed", html! { p { (error.message()) } })
        }
        StatusCode::NOT_FOUND => error_page(
            status,
            "Not found",
            html! { p { "There is nothing here, or it is not visible to your clinic." } },
        ),
        StatusCode::UNPROCESSABLE_ENTITY => error_page(
            status,
            "Please check the form",
            html! {
                p { (error.message()) }
                (field_problems(error.fields()))
                p { "Go back, correct the form and send it again." }
            },
        ),
        StatusCode::CONFLICT => {
            error_page(status, "Already changed", html! { p { (error.message()) } })
        }
        StatusCode::TOO_MANY_REQUESTS => {
            let mut response = error_page(
                status,
                "Too many attempts",
                html! { p { "Wait a minute and try again." } },
            );
            if let Some(secs) = error.retry_after_secs() {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
            }
            response
        }
        _ => error_page(
            status,
            "Something went wrong",
            html! { p { "Try again in a moment. If it keeps happening, tell your administrator." } },
        ),
    }
}

/// 403 for a form posted without this session's CSRF token.
pub fn forged() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Form expired",
        html! { p { "This form was not sent from a current console page (its security token is missing or wrong). Reload the page and try again." } },
    )
}

/// See-other redirect after a successful form.
pub fn done(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// "4 min ago", "3 h ago", "2 d ago".
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = now - then;
    if d < TimeDelta::minutes(1) {
        "just now".into()
    } else {
        format!("{} ago", span(d))
    }
}

/// A positive duration in words: "4 min", "3 h 5 min", "2 d".
pub fn span(d: TimeDelta) -> String {
    let mins = d.num_minutes().abs();
    if mins < 60 {
        format!("{mins} min")
    } else if mins < 48 * 60 {
        let (h, m) = (mins / 60, mins % 60);
        if m == 0 {
            format!("{h} h")
        } else {
            format!("{h} h {m} min")
        }
    } else {
        format!("{} d", mins / (24 * 60))
    }
}

/// The deadline in words: "in 12 min" or "overdue by 3 min".
pub fn countdown(deadline: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if deadline >= now {
        format!("in {}", span(deadline - now))
    } else {
        format!("overdue by {}", span(now - deadline))
    }
}

/// Raw markup (the embedded assets are trusted, compiled-in text).
pub fn raw(text: &'static str) -> PreEscaped<&'static str> {
    PreEscaped(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdown_reads_both_ways() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        assert_eq!(countdown(now + TimeDelta::minutes(12), now), "in 12 min");
        assert_eq!(
            countdown(now - TimeDelta::minutes(90), now),
            "overdue by 1 h 30 min"
        );
        assert_eq!(ago(now - TimeDelta::days(3), now), "3 d ago");
        assert_eq!(ago(now, now), "just now");
    }
}
