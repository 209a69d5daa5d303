//! Signed webhooks: a clinic points endpoints at its EHR or paging tool, and every alert
//! notification is also POSTed there, retried with backoff until accepted.
//!
//! Signature scheme: `Companion-Timestamp: <unix seconds>` and
//! `Companion-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. During a secret
//! rotation the header carries a second `v1=` made with the previous secret, for 24 hours, so a
//! receiver can switch secrets without missing a delivery. Receivers should refuse timestamps
//! more than five minutes old. Bodies carry opaque ids and the severity, never clinical details;
//! `type` is `alert.opened`, `alert.reopened` (a new urgent or high signal after an
//! acknowledgement) or `alert.escalated`.

use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use companion_schema::ids::ClinicId;
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::app::App;
use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};
use crate::http::outbound::{OutboundPolicy, Refused};
use crate::jobs::runner::JobResult;
use crate::jobs::store::Claimed;
use crate::jobs::{self, NewJob};
use crate::time::utc;

/// The job kind.
pub const DELIVER: &str = "webhook.deliver";
const ATTEMPTS: i32 = 12;
const ROTATION_OVERLAP: TimeDelta = TimeDelta::hours(24);

/// The `v1` signature of `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The `Companion-Signature` header for the given secrets.
pub fn signature_header(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| format!("v1={}", sign(secret, timestamp, body)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a receiver does: true if any `v1` signature in `header` matches `secret`.
pub fn verify(header: &str, secret: &str, timestamp: i64, body: &[u8]) -> bool {
    let expected = sign(secret, timestamp, body);
    header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .any(|candidate| {
            subtle::ConstantTimeEq::ct_eq(candidate.as_bytes(), expected.as_bytes()).into()
        })
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub use super::store::EndpointRow;

/// The dedupe key of the delivery of step `step` of `alert_id` to `endpoint` (also its
/// reference in the alert's deliveries).
fn delivery_key(endpoint: &str, alert_id: &str, round: i32, escalation: i32) -> String {
    // Round 0 keeps the key deliveries had before alerts could re-open.
    let round = match round {
        0 => String::new(),
        r => format!("r{r}:"),
    };
    format!("{DELIVER}:{endpoint}:{alert_id}:{round}{escalation}")
}

/// Enqueues a delivery of `event` about `alert_id` to every active endpoint of the clinic, and
/// records each as a delivery of the step to `audience`, in the caller's transaction.
pub fn enqueue_for_alert(
    conn: &mut DbConnection,
    endpoints: &[String],
    alert_id: &str,
    event: &str,
    step: super::store::Step,
    audience: super::reach::Audience,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let now = now.naive_utc();
    let escalation = step.escalation;
    for endpoint in endpoints {
        let key = delivery_key(endpoint, alert_id, step.round, escalation);
        super::reach::record(
            conn,
            &super::reach::NewDelivery {
                alert_id,
                step,
                audience,
                channel: super::reach::Channel::Webhook,
                recipient: endpoint,
                ref_id: &key,
                status: super::decide::Delivery::Queued,
            },
            utc(now),
        )?;
        jobs::enqueue(
            conn,
            &NewJob {
                kind: DELIVER,
                payload: serde_json::json!({"endpoint_id": endpoint, "alert_id": alert_id, "event": event, "escalation": escalation, "round": step.round}),
                dedupe_key: Some(key),
                run_at: now,
                max_attempts: ATTEMPTS,
                priority: crate::jobs::store::Priority::Safety,
            },
            now,
        )?;
    }
    Ok(endpoints.len())
}

/// The `webhook.deliver` payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payload {
    /// The endpoint.
    pub endpoint_id: String,
    /// The alert.
    pub alert_id: String,
    /// The event name.
    pub event: String,
    /// The escalation step.
    pub escalation: i32,
    /// The alert's round (absent in deliveries queued before rounds: 0).
    #[serde(default)]
    pub round: i32,
}

/// The `webhook.deliver` job.
#[derive(Debug, Clone, Copy)]
pub struct DeliverWebhook;

impl crate::jobs::JobKind for DeliverWebhook {
    const KIND: &'static str = DELIVER;
    type Payload = Payload;
}

#[async_trait::async_trait]
impl crate::jobs::Job<App> for DeliverWebhook {
    async fn run(&self, app: &App, job: &Claimed, _worker: &str, payload: Payload) -> JobResult {
        let key = delivery_key(
            &payload.endpoint_id,
            &payload.alert_id,
            payload.round,
            payload.escalation,
        );
        let endpoint_id = payload.endpoint_id.clone();
        let (result, sent) = deliver(app, job, payload).await;
        // What the endpoint did: 2xx counts; a failure, retried or not, does not.
        let (status, detail) = match (&result, sent) {
            (_, false) => (
                super::decide::Delivery::Failed,
                Some("endpoint deleted".to_owned()),
            ),
            (JobResult::Done | JobResult::Completed, true) => {
                (super::decide::Delivery::Counted, None)
            }
            (JobResult::Retry { reason, .. }, true) if job.attempts < job.max_attempts => {
                (super::decide::Delivery::Retrying, Some(reason.clone()))
            }
            (JobResult::Retry { reason, .. } | JobResult::Dead(reason), true) => {
                (super::decide::Delivery::Failed, Some(reason.clone()))
            }
        };
        if sent {
            let now = app.now().naive_utc();
            let failure = detail.clone();
            let health = app
                .db
                .run(move |conn| record_health(conn, &endpoint_id, failure.as_deref(), now))
                .await;
            if let Err(e) = health {
                tracing::warn!(error = %e, "could not record a webhook endpoint's health");
            }
        }
        match super::worker::settle_outcome(app, key, status, detail).await {
            Ok(()) => result,
            // Sent already; the retry finds the delivery settled or sends it again (at least once).
            Err(reason) if matches!(result, JobResult::Done) => JobResult::retry(reason),
            Err(_) => result,
        }
    }
}

/// Records an endpoint's last outcome: a success clears its failure, a failure marks it failing
/// since the first one in a row.
fn record_health(
    conn: &mut DbConnection,
    endpoint_id: &str,
    failure: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    super::store::record_endpoint_health(conn, endpoint_id, failure, now)
}

/// The health of a clinic's active endpoints, for the readiness check.
pub fn health_of(
    conn: &mut DbConnection,
    clinic_id: &str,
) -> QueryResult<Vec<super::readiness::WebhookHealth>> {
    let rows = super::store::endpoint_health(conn, clinic_id)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, failing_since, last_failure)| super::readiness::WebhookHealth {
                id,
                failing_since,
                last_failure,
            },
        )
        .collect())
}

/// The clinic's active webhook endpoints.
pub fn active_endpoints(conn: &mut DbConnection, clinic_id: &str) -> QueryResult<Vec<String>> {
    super::store::active_endpoints(conn, clinic_id)
}

/// The `webhook.deliver` job: the job's result, and whether anything was sent (false when the
/// endpoint or alert is gone or the endpoint was deleted).
pub async fn deliver(app: &App, job: &Claimed, payload: Payload) -> (JobResult, bool) {
    let (endpoint_id, alert_id) = (payload.endpoint_id.clone(), payload.alert_id.clone());
    let found = app
        .db
        .run(move |conn| {
            let endpoint = super::store::find_endpoint(conn, &endpoint_id)?;
            let alert = super::store::find(conn, &alert_id)?;
            Ok((endpoint, alert))
        })
        .await;
    let (endpoint, alert) = match found {
        Ok((Some(endpoint), Some(alert))) => (endpoint, alert),
        Ok(_) => return (JobResult::Done, false),
        Err(e) => return (JobResult::retry(format!("database: {e}")), true),
    };
    if !endpoint.active {
        return (JobResult::Done, false);
    }
    let now = app.now();
    let body = serde_json::json!({
        "type": payload.event,
        "alert_id": alert.id,
        "clinic_id": alert.clinic_id,
        "patient_id": alert.patient_id,
        "severity": alert.severity,
        "escalation": payload.escalation,
        "occurred_at": now,
    })
    .to_string();
    let mut secrets = vec![endpoint.secret.as_str()];
    if let (Some(previous), Some(until)) = (&endpoint.previous_secret, endpoint.previous_expires_at)
        && now.naive_utc() < until
    {
        secrets.push(previous);
    }
    let timestamp = now.timestamp();
    // Where the URL leads is decided now, not at registration: its host is resolved and every
    // address checked, and the request goes to the address that was checked.
    let pinned = match url::Url::parse(&endpoint.url) {
        Ok(url) => app.outbound.pin(&url).await,
        Err(_) => Err(Refused::BadUrl),
    };
    let pinned = match pinned {
        Ok(pinned) => pinned,
        Err(refused) if refused.is_transient() => {
            return (JobResult::retry(format!("refused: {refused}")), true);
        }
        Err(refused) => {
            tracing::warn!(endpoint_id = %endpoint.id, %refused, "webhook delivery refused");
            return (JobResult::Dead(format!("refused: {refused}")), true);
        }
    };
    let result = pinned
        .client
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header("companion-webhook-id", &job.id)
        .header("companion-timestamp", timestamp.to_string())
        .header(
            "companion-signature",
            signature_header(&secrets, timestamp, body.as_bytes()),
        )
        .body(body)
        .send()
        .await;
    let result = match result {
        Ok(response) if response.status().is_success() => JobResult::Done,
        Ok(response) if response.status().is_redirection() => JobResult::retry(format!(
            "endpoint answered {} (redirects are not followed)",
            response.status().as_u16()
        )),
        Ok(response) => {
            JobResult::retry(format!("endpoint answered {}", response.status().as_u16()))
        }
        Err(e) if e.is_timeout() => JobResult::retry("endpoint timed out".into()),
        Err(_) => JobResult::retry("endpoint unreachable".into()),
    };
    (result, true)
}

/// Adds an endpoint to a clinic (its admins only): an http(s) URL (https in production) whose
/// host `policy` does not refuse already (an internal address, a local name), a fresh secret.
/// Audited.
pub fn create_endpoint(
    conn: &mut DbConnection,
    caller: &Caller,
    policy: &OutboundPolicy,
    raw_clinic: &str,
    raw_url: &str,
    now: DateTime<Utc>,
) -> Outcome<EndpointRow> {
    let now = now.naive_utc();
    let Some(clinic) = ClinicId::parse(raw_clinic) else {
        return Err(Refusal::not_found("clinic").into());
    };
    caller.ensure_admin_of(&clinic, "manage webhooks")?;
    let Some(url) = endpoint_url(raw_url) else {
        return Err(Refusal::invalid_field(
            "url",
            "must be an http or https URL with a host name, an optional port and path, and no \
             query, fragment or credentials",
        )
        .into());
    };
    if let Err(refused) = policy.check_url(&url) {
        return Err(Refusal::invalid_field("url", refused.to_string()).into());
    }
    let row = EndpointRow {
        id: uuid::Uuid::now_v7().to_string(),
        clinic_id: clinic.to_string(),
        url: url.to_string(),
        secret: new_secret(),
        previous_secret: None,
        previous_expires_at: None,
        active: true,
        created_at: now,
    };
    super::store::insert_endpoint(conn, &row)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "webhook.create", now)
            .clinic(clinic.as_str())
            .subject(&row.id),
    )?;
    Ok(row)
}

/// The longest endpoint URL accepted.
pub const MAX_URL_LENGTH: usize = 2048;

/// `raw` as an endpoint URL, if it has the documented shape (`CreateWebhook::url`'s pattern):
/// `http` or `https`, a host of letters, digits and inner hyphens in dot-separated labels, an
/// optional port from 1 to 65535, an optional path of URL characters; nothing else.
pub fn endpoint_url(raw: &str) -> Option<url::Url> {
    if raw.len() > MAX_URL_LENGTH {
        return None;
    }
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !host.split('.').all(label) {
        return None;
    }
    if let Some(port) = port {
        let digits =
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        if !digits || port.starts_with('0') || port.parse::<u32>().ok()? > 65535 {
            return None;
        }
    }
    let path_char = |b: u8| b.is_ascii_alphanumeric() || b"._~%!$&'()*+,;=:@/-".contains(&b);
    if !path.bytes().all(path_char) {
        return None;
    }
    url::Url::parse(raw).ok()
}

/// A page of a clinic's active endpoints in id (creation) order after `after` (`limit` + 1 rows
/// when there is a next page). Its clinic admins, as for adding one. Audited.
pub fn list_endpoints(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
    after: Option<&str>,
    limit: i64,
    now: DateTime<Utc>,
) -> Outcome<Vec<EndpointRow>> {
    let now = now.naive_utc();
    let Some(clinic) = ClinicId::parse(raw_clinic) else {
        return Err(Refusal::not_found("clinic").into());
    };
    caller.ensure_admin_of(&clinic, "manage webhooks")?;
    if crate::clinic::find_clinic(conn, clinic.as_str())?.is_none() {
        return Err(Refusal::not_found("clinic").into());
    }
    let rows = super::store::endpoints_page(conn, clinic.as_str(), after, limit)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "webhooks.read", now).clinic(clinic.as_str()),
    )?;
    Ok(rows)
}

/// An endpoint of a clinic the caller administers, or not found.
fn own_endpoint(conn: &mut DbConnection, caller: &Caller, raw_id: &str) -> Outcome<EndpointRow> {
    let Ok(id) = uuid::Uuid::try_parse(raw_id) else {
        return Err(Refusal::not_found("webhook").into());
    };
    let row = super::store::find_endpoint(conn, &id.to_string())?;
    Ok(row
        .filter(|row| {
            caller
                .ensure_admin_of(&ClinicId::from_db(row.clinic_id.clone()), "manage webhooks")
                .is_ok()
        })
        .ok_or_else(|| Refusal::not_found("webhook"))?)
}

/// Gives an endpoint a new secret; the old one still signs for 24 hours. Audited.
pub fn rotate_secret(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    now: DateTime<Utc>,
) -> Outcome<EndpointRow> {
    let now = now.naive_utc();
    let row = own_endpoint(conn, caller, raw_id)?;
    let secret = new_secret();
    super::store::rotate_endpoint_secret(
        conn,
        &row.id,
        &secret,
        &row.secret,
        now + ROTATION_OVERLAP,
    )?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "webhook.rotate", now)
            .clinic(&row.clinic_id)
            .subject(&row.id),
    )?;
    Ok(EndpointRow {
        previous_secret: Some(row.secret.clone()),
        secret,
        ..row
    })
}

/// Stops deliveries to an endpoint. Audited.
pub fn deactivate(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    now: DateTime<Utc>,
) -> Outcome<()> {
    let now = now.naive_utc();
    let row = own_endpoint(conn, caller, raw_id)?;
    super::store::deactivate_endpoint(conn, &row.id)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "webhook.delete", now)
            .clinic(&row.clinic_id)
            .subject(&row.id),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoint_urls_have_the_documented_shape() {
        for good in [
            "https://hooks.example.org/companion",
            "http://10.0.0.7:8080/in",
            "https://a.b-c.example:65535",
            "https://example.org/p/a%20b/(x);y=1:@z",
        ] {
            assert!(endpoint_url(good).is_some(), "{good}");
        }
        for bad in [
            "https://then.example.net*",
            " https://example.org",
            "https://example.org/a b",
            "https://example.org/?q=1",
            "https://example.org/#f",
            "https://user:pw@example.org/",
            "https://-a.example.org/",
            "https://a..example.org/",
            "https://example.org:0/",
            "https://example.org:65536/",
            "https://example.org:/",
            "https://[::1]/",
            "ftp://example.org/",
            "https://",
        ] {
            assert!(endpoint_url(bad).is_none(), "{bad}");
        }
        let long = format!("https://example.org/{}", "a".repeat(MAX_URL_LENGTH));
        assert!(endpoint_url(&long).is_none());
    }

    use super::*;

    #[test]
    fn signatures_verify_with_their_secret_only() {
        let body = br#"{"type":"alert.notified"}"#;
        let header = signature_header(&["new", "old"], 1_800_000_000, body);
        assert!(verify(&header, "new", 1_800_000_000, body));
        assert!(verify(&header, "old", 1_800_000_000, body));
        assert!(!verify(&header, "other", 1_800_000_000, body));
        assert!(
            !verify(&header, "new", 1_800_000_001, body),
            "the timestamp is signed"
        );
        assert!(
            !verify(&header, "new", 1_800_000_000, b"{}"),
            "the body is signed"
        );
        // A known vector: HMAC-SHA256("key", "1.x").
        assert_eq!(sign("key", 1, b"x").len(), 64);
    }
}
