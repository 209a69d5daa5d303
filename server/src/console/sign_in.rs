//! Signing in to and out of the console: the email and password form (limited like the API's
//! sign-in, by the same limiters), refusal for accounts that are not clinic staff, and signing
//! out, which revokes the session record exactly as `POST /v1/auth/logout` does.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::TimeDelta;
use maud::{Markup, html};
use serde::Deserialize;

use crate::account::model::Role;
use crate::app::AppState;
use crate::auth;
use crate::auth::refresh::new_refresh_token;
use crate::auth::session::sign_in;
use crate::http::extract::ClientAddr;

use super::form::{FormCookie, NoFields, PreSessionForm, SignedForm};
use super::page::{self, Nav};
use super::session::{self, LOGIN_COOKIE, SESSION_COOKIE, SESSION_HOURS, csrf_token_for};

/// The sign-in form carries the token of [`LOGIN_COOKIE`].
#[derive(Debug)]
pub struct LoginCookie;

impl FormCookie for LoginCookie {
    const NAME: &'static str = LOGIN_COOKIE;
}

/// The sign-in form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    email: String,
    password: String,
}

/// Query of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    /// Set after a session ended.
    ended: Option<String>,
    /// Set after signing out.
    out: Option<String>,
    /// Set after a new password was set with a reset code.
    reset: Option<String>,
}

fn login_form(csrf: &str, email: &str, problem: Option<&str>, note: Option<&str>) -> Markup {
    page::frame(
        "Sign in",
        Nav::None,
        None,
        html! {
            div class="signin" {
                h1 { "Care-team console" }
                @if let Some(note) = note { p class="note" role="status" { (note) } }
                @if let Some(problem) = problem { p class="problem" role="alert" id="signin-problem" { (problem) } }
                form method="post" action="/console/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="email" { "Email" }
                    input id="email" name="email" type="email" autocomplete="username" required value=(email);
                    label for="password" { "Password" }
                    input id="password" name="password" type="password" autocomplete="current-password" required;
                    button type="submit" class="primary" { "Sign in" }
                }
                p { a href="/console/password-reset" { "I have a reset code" } }
            }
        },
    )
}

fn with_login_cookie(mut response: Response, value: &str, secure: bool) -> Response {
    let cookie = session::set_cookie(LOGIN_COOKIE, value, "/console/login", secure, Some(3600));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

fn form_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    problem: Option<&str>,
    note: Option<&str>,
) -> Response {
    let value = new_refresh_token();
    let body = login_form(&csrf_token_for(&value), email, problem, note);
    with_login_cookie(
        (status, body).into_response(),
        &value,
        session::secure(state, headers),
    )
}

/// The sign-in page.
pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let note = if query.reset.is_some() {
        Some("Your new password is set; sign in with it.")
    } else if query.out.is_some() {
        Some("You are signed out.")
    } else if query.ended.is_some() {
        Some("Your session has ended; sign in again.")
    } else {
        None
    };
    form_page(&state, &headers, StatusCode::OK, "", None, note)
}

/// Signs in: checks the form's token, the credentials (rate limited) and the role, starts a
/// session and sets its cookie.
pub async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    PreSessionForm { form, .. }: PreSessionForm<LoginCookie, LoginForm>,
) -> Response {
    let LoginForm { email, password } = form;
    let mut problems = Vec::new();
    if email.trim().is_empty() {
        problems.push("Enter your email address.");
    }
    if password.is_empty() {
        problems.push("Enter your password.");
    }
    if !problems.is_empty() {
        return form_page(
            &state,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            &email,
            Some(&problems.join(" ")),
            None,
        );
    }
    let now = state.now();
    let signed_in = match sign_in(&state, &client.key(), &email, password, now).await {
        Ok(signed_in) => signed_in,
        Err(error) => {
            let (status, problem) = match error.status() {
                StatusCode::UNAUTHORIZED => {
                    (StatusCode::UNAUTHORIZED, "The email or password is wrong.")
                }
                StatusCode::UNPROCESSABLE_ENTITY => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Enter a valid email address and your password.",
                ),
                StatusCode::FORBIDDEN => (StatusCode::FORBIDDEN, "This account is disabled."),
                StatusCode::TOO_MANY_REQUESTS => return page::failure(error, false),
                _ => return page::failure(error, false),
            };
            return form_page(&state, &headers, status, &email, Some(problem), None);
        }
    };
    let staff = Role::parse(&signed_in.role).is_some_and(Role::is_staff);
    if !staff {
        // Not a console user: the session just started is ended at once.
        let (sid, at) = (signed_in.session_id.to_string(), now.naive_utc());
        if let Err(error) = state
            .db
            .write(move |conn| auth::revoke_session(conn, &sid, at, "console_refused"))
            .await
        {
            return page::failure(error.into(), false);
        }
        return (StatusCode::FORBIDDEN, page::refusal_page()).into_response();
    }
    let token = match state.tokens.issue_kind(
        crate::auth::tokens::TokenKind::Console,
        &signed_in.account_id,
        signed_in.session_id.as_str(),
        &signed_in.role,
        now,
        TimeDelta::hours(SESSION_HOURS).num_seconds(),
    ) {
        Ok(token) => token,
        Err(e) => return page::failure(crate::error::ApiError::internal(&e), false),
    };
    let secure = session::secure(&state, &headers);
    let mut response = page::done("/console");
    for cookie in [
        session::set_cookie(SESSION_COOKIE, &token, "/console", secure, None),
        session::set_cookie(LOGIN_COOKIE, "", "/console/login", secure, Some(0)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// Signs out: revokes the session (as the API's logout does) and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    SignedForm { user, secure, .. }: SignedForm<NoFields>,
) -> Response {
    let now = state.now().naive_utc();
    let ended = state
        .write_as(user.bearer, move |conn, caller| {
            auth::revoke_session(conn, caller.session_id.as_str(), now, "logout")?;
            Ok(())
        })
        .await;
    if let Err(error) = ended
        && error.status() != StatusCode::UNAUTHORIZED
    {
        return page::failure(error, secure);
    }
    let mut response = page::done("/console/login?out=1");
    let cookie = session::set_cookie(SESSION_COOKIE, "", "/console", secure, Some(0));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}
