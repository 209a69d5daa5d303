//! Forms posted to the console, read by one extractor each: [`SignedForm`] for every form of a
//! signed-in page (the session, its CSRF token, the fields), and [`PreSessionForm`] for the forms
//! posted before a session exists (sign-in, password reset), which carry the token of a
//! double-submit cookie of their own instead. Both refuse alike, before a handler runs: a body
//! that is not a form is 400 "Unreadable form", a form without the right token 403 "Form
//! expired" (see [`super::session`] for the tokens).

use std::collections::BTreeMap;
use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde::de::value::{Error as ValueError, MapDeserializer};

use crate::app::AppState;

use super::page;
use super::session::{self, ConsoleUser, csrf_matches};

/// A form's fields by name (of a name sent twice, the last).
pub type Fields = BTreeMap<String, String>;

/// A form with no fields but its token: a button.
#[derive(Debug, Default, Deserialize)]
pub struct NoFields {}

/// A form posted from a page of a signed-in member of staff: who they are and the form's fields,
/// read into `T` (the fields by name when not said).
///
/// Refused, in this order, as every console form is: without a session cookie, to the sign-in
/// page; with a cookie that is no longer a session, to sign in again (the cookie forgotten); an
/// account that is not clinic staff, 403 (these three as [`ConsoleUser`] refuses a page); a body
/// that cannot be read, as axum's `Bytes` refuses it; a body that is not
/// `application/x-www-form-urlencoded`, 400 "Unreadable form"; a form without this session's
/// CSRF token, 403 "Form expired". The fields of `T` are all text with a default, so that a
/// missing field reads as empty and the handler's use case names what is wrong with it. It reads
/// the body, so it is a handler's last argument (after `State` and `Path`).
#[derive(Debug)]
pub struct SignedForm<T = Fields> {
    /// The signed-in member of staff.
    pub user: ConsoleUser,
    /// Whether cookies set in the answer must be Secure (see [`session::secure`]).
    pub secure: bool,
    /// The form's fields.
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for SignedForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let user = ConsoleUser::from_request_parts(&mut parts, state).await?;
        let secure = session::secure(state, &parts.headers);
        let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields = fields_of(content_type.as_ref(), &body).ok_or_else(unreadable)?;
        if !user.csrf_ok(fields.get("csrf").map(String::as_str)) {
            return Err(page::forged());
        }
        Ok(SignedForm {
            user,
            secure,
            form: read(fields).ok_or_else(unreadable)?,
        })
    }
}

/// The double-submit cookie a form posted before any session exists carries its token for.
pub trait FormCookie {
    /// The cookie's name.
    const NAME: &'static str;
}

/// A form posted before a session exists (signing in, setting a password with a reset code): its
/// fields, once the token it carries matches its double-submit cookie `C`. There is no session
/// to sign such a form with, hence no [`SignedForm`]; it is refused as one is from the body on (a
/// body that cannot be read, 400 "Unreadable form", 403 "Form expired").
#[derive(Debug)]
pub struct PreSessionForm<C, T = Fields> {
    /// The form's fields.
    pub form: T,
    cookie: PhantomData<C>,
}

impl<C: FormCookie, T: DeserializeOwned> FromRequest<AppState> for PreSessionForm<C, T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let cookie = session::cookie(request.headers(), C::NAME).map(str::to_owned);
        let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields = fields_of(content_type.as_ref(), &body).ok_or_else(unreadable)?;
        let presented = fields.get("csrf").map(String::as_str);
        if !cookie.is_some_and(|c| csrf_matches(&c, presented)) {
            return Err(page::forged());
        }
        Ok(PreSessionForm {
            form: read(fields).ok_or_else(unreadable)?,
            cookie: PhantomData,
        })
    }
}

/// A field's text, trimmed; `None` when that leaves nothing.
pub fn filled(value: &str) -> Option<&str> {
    Some(value.trim()).filter(|v| !v.is_empty())
}

fn unreadable() -> Response {
    page::error_page(
        StatusCode::BAD_REQUEST,
        "Unreadable form",
        html! { p { "The form could not be read." } },
    )
}

/// A submitted `application/x-www-form-urlencoded` body by field name; `None` for a body that is
/// not one.
fn fields_of(content_type: Option<&HeaderValue>, body: &[u8]) -> Option<Fields> {
    let is_form = content_type
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return None;
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    Some(pairs.into_iter().collect())
}

/// The fields read into `T`, by name; `None` when they do not fit it.
fn read<T: DeserializeOwned>(fields: Fields) -> Option<T> {
    T::deserialize(MapDeserializer::<_, ValueError>::new(fields.into_iter())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Example {
        name: String,
        note: String,
    }

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn typed_forms_read_missing_fields_as_empty_and_ignore_others() {
        let form: Example = read(fields(&[("csrf", "t"), ("name", "A b")])).unwrap_or_default();
        assert_eq!(form.name, "A b");
        assert_eq!(form.note, "");
        assert!(read::<NoFields>(fields(&[("csrf", "t")])).is_some());
        let all: Fields = read(fields(&[("a", "1"), ("b", "")])).unwrap_or_default();
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn only_url_encoded_bodies_are_forms() {
        let form = HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8");
        let text = HeaderValue::from_static("text/plain");
        let parsed = fields_of(Some(&form), b"a=1&b=x+y&a=2").unwrap_or_default();
        assert_eq!(parsed.get("a").map(String::as_str), Some("2"));
        assert_eq!(parsed.get("b").map(String::as_str), Some("x y"));
        assert!(fields_of(Some(&text), b"a=1").is_none());
        assert!(fields_of(None, b"a=1").is_none());
    }

    #[test]
    fn filled_trims_and_drops_empty_text() {
        assert_eq!(filled("  US "), Some("US"));
        assert_eq!(filled("   "), None);
        assert_eq!(filled(""), None);
    }
}
