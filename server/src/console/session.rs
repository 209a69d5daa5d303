//! The console's cookie session and CSRF protection.
//!
//! Signing in starts the same session record (refresh family) the JSON API starts, and the
//! cookie carries a console session token for it: signed like an access token but for the
//! console's own audience, so it is never accepted as a bearer token by the API (nor an API token
//! as a console session). Every request then checks the session inside its unit of work
//! ([`crate::app::App::read_as`] / `write_as`), so signing out, a password change, or disabling
//! the account ends the console session at once. The cookie is
//! HttpOnly, SameSite=Strict, scoped to `/console`, and Secure when the request came over TLS
//! (directly or through a proxy that says so) or in production.
//!
//! CSRF: every form of a signed-in page carries a token derived from the session cookie (a
//! SHA-256 digest of it under a fixed label, so the page never reveals the cookie); an unsafe
//! request without the matching token is refused 403. The sign-in form, before any session
//! exists, uses a double-submit cookie of its own.

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::auth::extract::Bearer;
use crate::http::extract::request_id_of;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "companion_console";
/// The sign-in form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "companion_console_login";
/// How long a console session's cookie token lasts (a working shift).
pub const SESSION_HOURS: i64 = 12;

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Whether cookies must be marked Secure: the request came over TLS (or a proxy says it did),
/// or the server runs in production.
pub fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    forwarded_https
        || state.config.public_url.is_https()
        || state.config.environment == crate::config::Environment::Production
}

/// A `Set-Cookie` value. `max_age` zero deletes the cookie.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    secure: bool,
    max_age: Option<i64>,
) -> String {
    let mut cookie = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The CSRF token that belongs to a session cookie (or to a sign-in form's cookie).
pub fn csrf_token_for(cookie_value: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"companion-console-csrf\0");
    hasher.update(cookie_value.as_bytes());
    hex::encode(hasher.finalize())
}

/// Whether `presented` is the CSRF token of `cookie_value` (constant time).
pub fn csrf_matches(cookie_value: &str, presented: Option<&str>) -> bool {
    let expected = csrf_token_for(cookie_value);
    presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())))
}

/// A signed-in staff member of the console: the verified token (its session is checked in the
/// unit of work) and the CSRF token for the page's forms.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    /// The token, admitting clinic staff only.
    pub bearer: Bearer,
    /// The CSRF token to put in every form.
    pub csrf: String,
    cookie: String,
}

impl ConsoleUser {
    /// Whether a submitted form carries this session's CSRF token.
    pub fn csrf_ok(&self, presented: Option<&str>) -> bool {
        csrf_matches(&self.cookie, presented)
    }
}

/// Where an unauthenticated browser is sent.
pub fn to_sign_in() -> Response {
    Redirect::to("/console/login").into_response()
}

/// Sends the browser to sign in again and forgets its (ended) session cookie.
pub fn session_ended(secure: bool) -> Response {
    let mut response = Redirect::to("/console/login?ended=1").into_response();
    if let Ok(value) =
        HeaderValue::from_str(&set_cookie(SESSION_COOKIE, "", "/console", secure, Some(0)))
    {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

impl FromRequestParts<AppState> for ConsoleUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_sign_in());
        };
        let bearer = match Bearer::from_console_token(state, token, request_id_of(parts)) {
            Ok(bearer) => bearer,
            Err(_) => return Err(session_ended(secure(state, &parts.headers))),
        };
        let bearer = match bearer.admitting_staff() {
            Ok(bearer) => bearer,
            Err(_) => {
                return Err((StatusCode::FORBIDDEN, super::page::refusal_page()).into_response());
            }
        };
        Ok(ConsoleUser {
            bearer,
            csrf: csrf_token_for(token),
            cookie: token.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_token_is_tied_to_the_cookie_and_never_equals_it() {
        let token = csrf_token_for("abc");
        assert!(csrf_matches("abc", Some(&token)));
        assert!(!csrf_matches("abd", Some(&token)));
        assert!(!csrf_matches("abc", None));
        assert!(!csrf_matches("abc", Some("")));
        assert_ne!(token, "abc");
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("companion_console_login=x; companion_console=tok"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), Some("x"));
        assert_eq!(cookie(&headers, "other"), None);
    }

    #[test]
    fn session_cookie_is_http_only_and_strict() {
        let c = set_cookie(SESSION_COOKIE, "t", "/console", true, None);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!set_cookie(SESSION_COOKIE, "t", "/console", false, None).contains("Secure"));
    }
}
