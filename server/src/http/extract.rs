//! Extractors that turn framework rejections into our error body: a JSON body whose problems name
//! the field at fault, a query string likewise, and the client's address for rate limiting.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Refusal};

/// A JSON request body. Malformed JSON is a 400 `malformed_json`; a wrong type, a missing field or
/// an unknown field is a 422 naming the field; a body over the size limit is a 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| {
                let v = v.trim().to_ascii_lowercase();
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::with_status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the body as JSON with Content-Type: application/json.",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::with_status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "The request body is too large.",
                )
            } else {
                ApiError::bad_request("unreadable_body", "The request body could not be read.")
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON document into `T`, with the error mapping of [`ApiJson`].
/// Every request body of this API is an object; serde would otherwise also fill a struct from
/// an array of its fields in order, which no client means to send.
///
/// A number with no fractional part is an integer wherever one is expected (`1782.0` is
/// `1782`), as JSON Schema and the OpenAPI document count it: many JSON encoders write every
/// number as a float.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::invalid_field("body", "must be a JSON object"));
    }
    let mut document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| malformed(&e))?;
    integral_floats_to_integers(&mut document);
    from_value(document)
}

/// Reads `T` from a JSON value already read by [`ApiJson`], with the same error mapping (a wrong
/// type, a missing field or an unknown field is a 422 naming the field).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    read_value(value).map_err(ApiError::from)
}

/// [`from_value`] for a use case that reads a body itself (a check-in, a device registration):
/// the problem is a [`Refusal`] naming the field, answered as [`from_value`]'s 422.
pub fn read_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Refusal> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        field_error(&path, &inner.to_string())
    })
}

/// Rewrites every float with no fractional part (within the 64-bit integer range) as an integer.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    // 2^63 as a float: the first value past i64's range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    match value {
        Value::Number(number) => {
            if let Some(float) = number.as_f64().filter(|_| number.is_f64())
                && float.fract() == 0.0
                && (-LIMIT..LIMIT).contains(&float)
            {
                // Integral and inside the i64 range (checked above): the cast is exact.
                let integer = float as i64;
                *number = serde_json::Number::from(integer);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_to_integers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

fn malformed(error: &serde_json::Error) -> ApiError {
    ApiError::bad_request(
        "malformed_json",
        format!(
            "The body is not valid JSON (line {}, column {}).",
            error.line(),
            error.column()
        ),
    )
}

/// Names the field of a serde data error (a 422). serde reports missing and unknown fields
/// against the enclosing object, so the field name is recovered from the message.
fn field_error(path: &str, message: &str) -> Refusal {
    // serde's own messages carry the position ("at line 1 column 9"): drop it.
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .to_owned();
    let quoted = message.split('`').nth(1).map(str::to_owned);
    // A missing field is reported at its parent's path; an unknown one at its own.
    let field = if message.starts_with("missing field") {
        match (path, quoted) {
            (".", Some(name)) => name,
            (parent, Some(name)) => format!("{parent}.{name}"),
            (parent, None) => parent.to_owned(),
        }
    } else if path == "." {
        "body".to_owned()
    } else {
        path.to_owned()
    };
    Refusal::validation(BTreeMap::from([(field, message)]))
}

/// A query string; problems are a 422 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded_parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|error| {
                let path = error.path().to_string();
                let message = error.into_inner().to_string();
                ApiError::from(field_error(&path, &message))
            })
    }
}

fn form_urlencoded_parse(input: &[u8]) -> url::form_urlencoded::Parse<'_> {
    url::form_urlencoded::parse(input)
}

/// The client's address as seen by this server (a proxy's when behind one). Absent when the
/// server is driven in-process, where all requests share one rate-limit bucket.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// A rate-limit key for this client.
    pub fn key(&self) -> String {
        match self.0 {
            Some(ip) => ip.to_string(),
            None => "local".to_owned(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

/// The request id set by the middleware (`x-request-id`), for audit rows.
#[derive(Debug, Clone)]
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId(request_id_of(parts)))
    }
}

/// Reads the request id header.
pub fn request_id_of(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(super::middleware::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialised")]
    struct Body {
        email: String,
        nested: Option<Nested>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialised")]
    struct Nested {
        count: u32,
    }

    #[test]
    fn syntax_errors_are_400_and_data_errors_are_422() {
        for bad in ["{", "nope", "{\"email\": \"a\"} trailing", ""] {
            let error = parse_json::<Body>(bad.as_bytes()).unwrap_err();
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(error.code(), "malformed_json");
        }
    }

    #[test]
    fn integral_floats_count_as_integers_and_fractions_do_not() {
        for json in [
            r#"{"email": "a", "nested": {"count": 1782.0}}"#,
            r#"{"email": "a", "nested": {"count": 1.782e3}}"#,
        ] {
            assert!(parse_json::<Body>(json.as_bytes()).is_ok(), "{json}");
        }
        for json in [
            r#"{"email": "a", "nested": {"count": 1782.5}}"#,
            r#"{"email": "a", "nested": {"count": 1e30}}"#,
            r#"{"email": "a", "nested": {"count": -1.0}}"#,
        ] {
            let error = parse_json::<Body>(json.as_bytes()).unwrap_err();
            assert!(
                error.fields().contains_key("nested.count"),
                "{json}: {error:?}"
            );
        }
    }

    #[test]
    fn data_errors_name_the_field() {
        let cases = [
            (r#"{"email": 5}"#, "email"),
            (r#"{}"#, "email"),
            (r#"{"email": "a", "extra": 1}"#, "extra"),
            (r#"{"email": "a", "nested": {"count": -1}}"#, "nested.count"),
            (r#"{"email": "a", "nested": {}}"#, "nested.count"),
            (r#"[1]"#, "body"),
        ];
        for (json, field) in cases {
            let error = parse_json::<Body>(json.as_bytes()).unwrap_err();
            assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY, "{json}");
            assert!(error.fields().contains_key(field), "{json}: {error:?}");
        }
    }
}
