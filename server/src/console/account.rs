//! My account in the console: a signed-in member of staff changes their own password (the current
//! one required; their other sessions end) and turns on browser notifications for alerts (a Web
//! Push subscription registered as one of their devices, through the same use case as
//! `POST /v1/devices`); a clinic admin issues a reset code to a member of their clinic (shown
//! once), and anyone with a code sets a new password from the sign-in page. Each form calls the
//! same use case as the API (`auth::credentials`, `push::use_cases`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::credentials;
use crate::http::extract::ClientAddr;

use super::form::{FormCookie, NoFields, PreSessionForm, SignedForm};
use super::page::{self, Nav};
use super::session::{self, ConsoleUser, csrf_token_for};

/// The reset form's double-submit cookie (as the sign-in form's, before any session exists).
const RESET_COOKIE: &str = "companion_console_reset";

/// The reset page's forms carry the token of [`RESET_COOKIE`].
#[derive(Debug)]
pub struct ResetCookie;

impl FormCookie for ResetCookie {
    const NAME: &'static str = RESET_COOKIE;
}

fn problems_list(problems: &[String]) -> Markup {
    html! {
        @if !problems.is_empty() {
            ul class="problems" role="alert" id="password-problems" {
                @for p in problems { li { (p) } }
            }
        }
    }
}

/// The browser-notifications section: a button the console's script shows in browsers that can
/// subscribe (service workers and the Push API), the key to subscribe with, and a status line.
fn notifications_section(csrf: &str, web_push_key: Option<&str>) -> Markup {
    html! {
        section aria-labelledby="web-push-h" id="web-push" data-csrf=(csrf) data-key=[web_push_key] {
            h2 id="web-push-h" { "Browser notifications" }
            @if web_push_key.is_some() {
                p { "Get alert notifications in this browser, even with the console closed. The notification says only that an alert needs your attention; open the console to see it. A browser with notifications on counts as a device that can reach you." }
                button type="button" class="primary" id="web-push-enable" hidden { "Turn on notifications in this browser" }
                p role="status" id="web-push-status" {}
            } @else {
                p id="web-push-status" { "Browser notifications are not available on this server." }
            }
        }
    }
}

fn account_body(csrf: &str, problems: &[String], done: bool, web_push_key: Option<&str>) -> Markup {
    html! {
        h1 { "My account" }
        @if done {
            p class="note" role="status" id="password-changed" { "Your password is changed. Your other sessions, in the apps and in other browsers, have ended." }
        }
        section aria-labelledby="password-h" {
            h2 id="password-h" { "Change my password" }
            (problems_list(problems))
            form method="post" action="/console/account/password" id="password-form" {
                input type="hidden" name="csrf" value=(csrf);
                label for="current-password" { "Current password" }
                input id="current-password" name="current_password" type="password" autocomplete="current-password" required;
                label for="new-password" { "New password (at least 10 characters)" }
                input id="new-password" name="new_password" type="password" autocomplete="new-password" minlength="10" required;
                label for="confirm-password" { "New password again" }
                input id="confirm-password" name="confirm_password" type="password" autocomplete="new-password" minlength="10" required;
                button type="submit" class="primary" { "Change password" }
            }
        }
        (notifications_section(csrf, web_push_key))
    }
}

fn account_page(
    state: &AppState,
    user: &ConsoleUser,
    status: StatusCode,
    problems: &[String],
    done: bool,
) -> Response {
    (
        status,
        page::frame(
            "My account",
            Nav::Account,
            Some(&user.csrf),
            account_body(
                &user.csrf,
                problems,
                done,
                state.push.web_public_key.as_deref(),
            ),
        ),
    )
        .into_response()
}

/// My account: the password form and browser notifications.
pub async fn page(State(state): State<AppState>, user: ConsoleUser) -> Response {
    account_page(&state, &user, StatusCode::OK, &[], false)
}

/// A browser's Web Push subscription, as the console's script posts it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WebPushForm {
    endpoint: String,
    p256dh: String,
    auth: String,
}

/// Registers this browser's Web Push subscription (posted by the console's script as a signed
/// form: `endpoint`, `p256dh`, `auth`) as one of the signed-in member's devices, so that alert
/// pushes reach them here. Answers 201 (or 200 when already registered) with a short text, or
/// 422 naming what is wrong.
pub async fn register_web_push(
    State(state): State<AppState>,
    SignedForm { user, secure, form }: SignedForm<WebPushForm>,
) -> Response {
    let registration = serde_json::json!({
        "platform": "web",
        "endpoint": form.endpoint,
        "keys": {"p256dh": form.p256dh, "auth": form.auth},
    });
    match crate::push::use_cases::register_from(&state, user.bearer.clone(), registration).await {
        Ok((_, created)) => (
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            "Browser notifications are on: alerts for you will show in this browser.",
        )
            .into_response(),
        Err(error) if error.status() == StatusCode::UNPROCESSABLE_ENTITY => (
            StatusCode::UNPROCESSABLE_ENTITY,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            "This browser's subscription could not be used; try again, or use another browser.",
        )
            .into_response(),
        Err(error) => page::failure(error, secure),
    }
}

/// The console's service worker: shows the alert pushes this browser receives and opens the
/// inbox when one is clicked.
pub async fn push_worker() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        super::page::PUSH_WORKER,
    )
        .into_response()
}

/// The password form: the current password and the new one, twice.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
    confirm_password: String,
}

/// Changes the signed-in member's password.
pub async fn change_password(
    State(state): State<AppState>,
    SignedForm { user, secure, form }: SignedForm<PasswordForm>,
) -> Response {
    let (current, new) = (form.current_password, form.new_password);
    if new != form.confirm_password {
        return account_page(
            &state,
            &user,
            StatusCode::UNPROCESSABLE_ENTITY,
            &["The two new passwords differ.".to_owned()],
            false,
        );
    }
    match credentials::change_password(&state, user.bearer.clone(), current, &new).await {
        Ok(_) => account_page(&state, &user, StatusCode::OK, &[], true),
        Err(error) if error.status() == StatusCode::FORBIDDEN => account_page(
            &state,
            &user,
            StatusCode::FORBIDDEN,
            &["The current password is wrong.".to_owned()],
            false,
        ),
        Err(error) if error.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            let problems: Vec<String> = error
                .fields()
                .iter()
                .map(|(field, problem)| {
                    let label = match field.as_str() {
                        "new_password" => "The new password",
                        "current_password" => "The current password",
                        _ => "A field",
                    };
                    format!("{label} {problem}.")
                })
                .collect();
            account_page(
                &state,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                &problems,
                false,
            )
        }
        Err(error) => page::failure(error, secure),
    }
}

/// Issues a reset code for a member of the admin's clinic and shows it once.
pub async fn issue_reset(
    State(state): State<AppState>,
    Path(account_id): Path<String>,
    SignedForm { user, secure, .. }: SignedForm<NoFields>,
) -> Response {
    let now = state.now();
    match state
        .write_as(user.bearer.clone(), move |conn, caller| {
            credentials::issue_reset(conn, caller, &account_id, now)
        })
        .await
    {
        Ok(issued) => (
            StatusCode::CREATED,
            page::frame(
                "Reset code",
                Nav::Clinic,
                Some(&user.csrf),
                html! {
                    h1 { "Password reset code" }
                    div class="readiness warn" role="status" id="reset-code" {
                        p { "Give this code to the account's owner, in person or by phone. It works once, until " (issued.expires_at.format("%H:%M UTC")) ", and is shown only now:" }
                        p { code class="reset-code" { (issued.code) } }
                        p { "They set a new password with it and their email on the sign-in page (\"I have a reset code\") or in the app." }
                    }
                    p { a href="/console/admin" { "Back to the clinic" } }
                },
            ),
        )
            .into_response(),
        Err(error) => page::failure(error, secure),
    }
}

fn reset_form(csrf: &str, email: &str, problems: &[String], emails: bool) -> Markup {
    page::frame(
        "Set a new password",
        Nav::None,
        None,
        html! {
            div class="signin" {
                h1 { "Set a new password" }
                p class="note" { "With the reset code your clinic admin gave you, or the one in your reset email." }
                (problems_list(problems))
                form method="post" action="/console/password-reset" id="reset-form" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="email" { "Email" }
                    input id="email" name="email" type="email" autocomplete="username" required value=(email);
                    label for="code" { "Reset code" }
                    input id="code" name="code" type="text" autocomplete="one-time-code" required;
                    label for="new-password" { "New password (at least 10 characters)" }
                    input id="new-password" name="new_password" type="password" autocomplete="new-password" minlength="10" required;
                    button type="submit" class="primary" { "Set password" }
                }
                @if emails {
                    h2 { "No code?" }
                    form method="post" action="/console/password-reset/email" id="reset-request-form" {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="request-email" { "Email me a reset link" }
                        input id="request-email" name="email" type="email" autocomplete="username" required;
                        button type="submit" { "Send the link" }
                    }
                }
                p { a href="/console/login" { "Back to sign in" } }
            }
        },
    )
}

fn reset_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    problems: &[String],
) -> Response {
    let value = crate::auth::refresh::new_refresh_token();
    let mut response = (
        status,
        reset_form(
            &csrf_token_for(&value),
            email,
            problems,
            state.mailer.is_some(),
        ),
    )
        .into_response();
    let cookie = session::set_cookie(
        RESET_COOKIE,
        &value,
        "/console/password-reset",
        session::secure(state, headers),
        Some(3600),
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// The form to set a new password with a reset code (no session needed).
pub async fn reset_form_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    reset_page(&state, &headers, StatusCode::OK, "", &[])
}

/// The form that sets a new password with a reset code.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResetForm {
    email: String,
    code: String,
    new_password: String,
}

/// Sets a new password with a reset code, then sends the browser to sign in.
pub async fn reset(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    PreSessionForm { form, .. }: PreSessionForm<ResetCookie, ResetForm>,
) -> Response {
    let email = form.email;
    match credentials::reset_password(
        &state,
        &client.key(),
        &email,
        &form.code,
        &form.new_password,
    )
    .await
    {
        Ok(()) => page::done("/console/login?reset=1"),
        Err(error) if error.status() == StatusCode::NOT_FOUND => reset_page(
            &state,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            &email,
            &["The code does not match this email, or it is spent or expired; ask your clinic admin for a new one.".to_owned()],
        ),
        Err(error) if error.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            let problems: Vec<String> = error
                .fields()
                .iter()
                .map(|(field, problem)| {
                    let label = match field.as_str() {
                        "email" => "The email",
                        "code" => "The code",
                        "new_password" => "The new password",
                        _ => "A field",
                    };
                    format!("{label} {problem}.")
                })
                .collect();
            reset_page(
                &state,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                &email,
                &problems,
            )
        }
        Err(error) => page::failure(error, false),
    }
}

/// The form that asks for a reset link: the account's email.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EmailForm {
    email: String,
}

/// Emails a reset link (when the server sends email) and says so, whether or not an account
/// uses the address.
pub async fn request_reset_email(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    PreSessionForm { form, .. }: PreSessionForm<ResetCookie, EmailForm>,
) -> Response {
    let email = form.email;
    let problem = match credentials::request_reset_email(&state, &client.key(), &email).await {
        Ok(()) => {
            "If an account uses this email, a reset link is on its way; it works for 30 minutes."
                .to_owned()
        }
        Err(error) if error.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            "The email is not an email address.".to_owned()
        }
        Err(error) => return page::failure(error, false),
    };
    reset_page(&state, &headers, StatusCode::OK, &email, &[problem])
}
