//! The care team's alert inbox: list, read (with the explanation, history and recent check-ins),
//! acknowledge, assign, resolve (use cases in `escalation::inbox`). A clinic's alert thresholds and
//! escalation policy, its readiness, on call and working hours are in [`alerting`], webhook
//! endpoints in [`webhooks`].

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::auth::extract::Staff;
use crate::check_in::view as check_in_view;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::pagination::{PageParams, Paginated, parse_time_key, time_key};
use crate::time::utc;

use super::decide::CareTeam;
use super::inbox;
use super::store::{self, AlertRow};

pub mod alerting;
pub mod webhooks;

/// An alert.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    /// Id.
    pub id: String,
    /// The patient.
    pub patient_id: String,
    /// The rule that raised it (e.g. `safety_item9`, `phq9_deterioration`).
    #[schema(value_type = super::rules::Rule)]
    pub rule: String,
    /// `urgent`, `high`, `medium` or `low`.
    #[schema(value_type = super::rules::Severity)]
    pub severity: String,
    /// `open`, `acknowledged` or `resolved`.
    #[schema(value_type = AlertStatus)]
    pub status: String,
    /// Why, from the latest signal (e.g. "PHQ-9 17, baseline 9, +8 >= 5"); when the check-in
    /// was answered well before it arrived, it says so ("answered 41 days ago, received now").
    pub explanation: String,
    /// The numbers behind the explanation.
    #[schema(value_type = Object)]
    pub inputs: serde_json::Value,
    /// Signals folded into this alert.
    pub signal_count: i32,
    /// The check-in that raised it last (none for missed check-ins).
    pub check_in_id: Option<String>,
    /// When that check-in was answered (by the device's clock, or its receipt when the device's
    /// clock was ahead).
    pub completed_at: Option<DateTime<Utc>>,
    /// When the latest signal arrived; deadlines run from it.
    pub received_at: DateTime<Utc>,
    /// A medium or low signal arrived after the acknowledgement (the alert stays acknowledged
    /// and moves up the inbox). Urgent and high signals re-open it instead.
    pub new_signal_since_ack: bool,
    /// How often a new urgent or high signal re-opened it after an acknowledgement.
    pub reopen_count: i32,
    /// Nobody in the care team could be reached in this round: no tier had a working channel,
    /// or every delivery to them failed (a push accepted by APNs or FCM, a webhook's 2xx and an
    /// email accepted by the SMTP server count; held, logged-only, failed and retrying ones do
    /// not). The organisation's admins were told. See `GET /v1/clinics/{clinic_id}/readiness`.
    pub unreachable: bool,
    /// When something that counts first reached someone in this round; null until then.
    pub reached_at: Option<DateTime<Utc>>,
    /// Where the care team stands: `reached`, `trying` or `unreachable` (as the patient is told).
    pub care_team: CareTeam,
    /// The escalation tier last notified (0: on call, 1: clinicians, 2: clinic admins, with the
    /// default policy); tiers nobody could receive are skipped.
    pub tier: i32,
    /// Opened.
    pub opened_at: DateTime<Utc>,
    /// Latest signal.
    pub last_signal_at: DateTime<Utc>,
    /// Acknowledge by this time, or it escalates.
    pub ack_deadline: DateTime<Utc>,
    /// Acknowledged.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// By whom.
    pub acknowledged_by: Option<String>,
    /// Assigned clinician.
    pub assigned_to: Option<String>,
    /// Resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// By whom.
    pub resolved_by: Option<String>,
    /// Resolution note.
    pub resolution_note: Option<String>,
    /// The patient erased their account while this alert was unresolved: it stays until staff
    /// resolve it, shown as "erased patient", its details reduced to severity, rule and times
    /// (`patient_id` is an opaque id that no longer leads to any data).
    pub patient_erased: bool,
}

impl From<AlertRow> for Alert {
    fn from(row: AlertRow) -> Self {
        let care_team = crate::escalation::decide::care_team(
            &row.status,
            row.reached_at.is_some(),
            row.unreachable_at.is_some(),
        );
        Self {
            id: row.id,
            patient_id: row.patient_id,
            rule: row.rule,
            severity: row.severity,
            status: row.status,
            explanation: row.explanation,
            inputs: serde_json::from_str(&row.inputs).unwrap_or_default(),
            signal_count: row.signal_count,
            check_in_id: row.check_in_id,
            completed_at: row.signal_completed_at.map(utc),
            received_at: utc(row.signal_received_at.unwrap_or(row.last_signal_at)),
            new_signal_since_ack: row.new_signal_since_ack,
            reopen_count: row.round,
            unreachable: row.unreachable_at.is_some(),
            reached_at: row.reached_at.map(utc),
            care_team,
            tier: row.tier,
            opened_at: utc(row.opened_at),
            last_signal_at: utc(row.last_signal_at),
            ack_deadline: utc(row.ack_deadline),
            acknowledged_at: row.acknowledged_at.map(utc),
            acknowledged_by: row.acknowledged_by,
            assigned_to: row.assigned_to,
            resolved_at: row.resolved_at.map(utc),
            resolved_by: row.resolved_by,
            resolution_note: row.resolution_note,
            patient_erased: row.patient_erased_at.is_some(),
        }
    }
}

/// One step in an alert's history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// `opened`, `repeated`, `new_signal_since_ack`, `reopened`, `notified` (deliveries queued),
    /// `reached` (one was accepted), `tier_reached_nobody`, `nobody_further_reachable`,
    /// `tier_skipped`, `unreachable`, `still_unreachable`, `escalated`, `acknowledged`,
    /// `assigned`, `resolved`,
    /// `signal_after_resolve`, `merged` (another unresolved alert of the same patient and rule
    /// was merged into this one), `patient_erased` (the patient erased their account; the
    /// alert stays until resolved).
    pub kind: String,
    /// Who, for staff actions.
    pub actor_id: Option<String>,
    /// Details.
    pub detail: String,
    /// The check-in whose signal this event records (`opened`, `repeated`,
    /// `new_signal_since_ack`, `reopened`, `signal_after_resolve`), if one raised it.
    pub check_in_id: Option<String>,
}

/// An alert with its history and the patient's recent check-ins.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertDetail {
    /// The alert.
    pub alert: Alert,
    /// Its history, oldest first.
    pub events: Vec<AlertEvent>,
    /// The patient's ten most recent check-ins.
    pub recent_check_ins: Vec<check_in_view::CheckIn>,
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Waiting for acknowledgement; escalates at its deadline.
    Open,
    /// Someone is on it.
    Acknowledged,
    /// Closed with a note.
    Resolved,
}

/// Inbox filters, combined (all must hold).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertListParams {
    /// `open`, `acknowledged` or `resolved` (default: all).
    #[param(value_type = Option<AlertStatus>)]
    pub status: Option<String>,
    /// Only this patient's alerts.
    #[param(format = "uuid")]
    pub patient_id: Option<String>,
    /// Only alerts of this severity.
    pub severity: Option<super::rules::Severity>,
    /// Only alerts raised by this rule.
    pub rule: Option<super::rules::Rule>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// The clinic's alert inbox
///
/// Most severe first (urgent, high, medium, low), then by the latest signal, newest first: an
/// acknowledged alert that receives a new signal moves up. Narrowed by `status`, `patient_id`,
/// `severity` and `rule`, all of those given.
#[utoipa::path(
    get,
    path = "/v1/alerts",
    tag = "alerts",
    operation_id = "list_alerts",
    security(("bearer" = [])),
    params(AlertListParams),
    responses(
        (status = 200, description = "A page of alerts, most severe first, then by latest signal", body = Paginated<Alert>),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "`patient_id` names no patient of the caller's clinic", body = ErrorBody),
        (status = 422, description = "Invalid query parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_alerts(
    State(state): State<AppState>,
    staff: Staff,
    ApiQuery(params): ApiQuery<AlertListParams>,
) -> ApiResult<Json<Paginated<Alert>>> {
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .parse()?;
    let after = page
        .after
        .as_deref()
        .map(|key| {
            let (rank, rest) = key.split_once('/')?;
            Some((rank.parse::<i32>().ok()?, parse_time_key(rest)?))
        })
        .map(|k| {
            k.ok_or_else(|| ApiError::invalid_field("cursor", "not a cursor returned by this list"))
        })
        .transpose()?;
    let limit = i64::from(page.limit) + 1;
    let now = state.now();
    let filter = store::InboxFilter {
        status: params.status,
        patient_id: params.patient_id,
        severity: params.severity,
        rule: params.rule,
    };
    let rows = state
        .read_as(staff, move |conn, caller| {
            inbox::list(conn, caller, filter, after.as_ref(), limit, now)
        })
        .await?;
    let items: Vec<Alert> = rows.into_iter().map(Alert::from).collect();
    Ok(Json(Paginated::from_rows(items, &page, |a| {
        let rank = store::severity_rank(store::parse_severity(&a.severity));
        format!("{rank}/{}", time_key(a.last_signal_at, &a.id))
    })))
}

/// An alert with its explanation, history and the patient's recent check-ins
#[utoipa::path(
    get,
    path = "/v1/alerts/{alert_id}",
    tag = "alerts",
    operation_id = "get_alert",
    security(("bearer" = [])),
    params(("alert_id" = String, Path, description = "The alert")),
    responses(
        (status = 200, description = "The alert", body = AlertDetail),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such alert in the caller's clinic", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_alert(
    State(state): State<AppState>,
    staff: Staff,
    Path(alert_id): Path<String>,
) -> ApiResult<Json<AlertDetail>> {
    let now = state.now();
    let detail = state
        .read_as(staff, move |conn, caller| {
            inbox::detail(conn, caller, &alert_id, now)
        })
        .await?;
    Ok(Json(AlertDetail {
        alert: detail.alert.into(),
        events: detail
            .events
            .into_iter()
            .map(|(at, kind, actor_id, detail, check_in_id)| AlertEvent {
                at: utc(at),
                kind,
                actor_id,
                detail,
                check_in_id,
            })
            .collect(),
        recent_check_ins: detail
            .recent
            .iter()
            .map(|r| check_in_view::view(r, &state.catalogue, None))
            .collect(),
    }))
}

/// Acknowledge an alert
///
/// Stops its escalation. Acknowledging again is harmless. Acknowledged is not resolved: a new
/// urgent or high signal for the same patient and rule re-opens it (a fresh deadline, the first
/// tier told again); a medium or low one marks it `new_signal_since_ack`.
#[utoipa::path(
    post,
    path = "/v1/alerts/{alert_id}/acknowledge",
    tag = "alerts",
    operation_id = "acknowledge_alert",
    security(("bearer" = [])),
    params(("alert_id" = String, Path, description = "The alert")),
    responses(
        (status = 200, description = "Acknowledged", body = Alert),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such alert in the caller's clinic", body = ErrorBody),
        (status = 409, description = "Already resolved (`alert_resolved`)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn acknowledge_alert(
    State(state): State<AppState>,
    staff: Staff,
    Path(alert_id): Path<String>,
) -> ApiResult<Json<Alert>> {
    let now = state.now();
    let (row, changed) = state
        .write_as(staff, move |conn, caller| {
            inbox::acknowledge(conn, caller, &alert_id, now)
        })
        .await?;
    let reply = Alert::from(row);
    if changed && let Some(at) = reply.acknowledged_at {
        let waited = (at - reply.received_at).num_milliseconds().max(0) as f64 / 1000.0;
        state.metrics.acknowledged(&reply.severity, waited);
    }
    Ok(Json(reply))
}

/// Who to assign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignAlert {
    /// A clinician or clinic admin of the clinic.
    #[schema(format = "uuid")]
    pub assignee_id: String,
}

/// Assign an alert to a member of the care team
#[utoipa::path(
    post,
    path = "/v1/alerts/{alert_id}/assign",
    tag = "alerts",
    operation_id = "assign_alert",
    security(("bearer" = [])),
    params(("alert_id" = String, Path, description = "The alert")),
    request_body = AssignAlert,
    responses(
        (status = 200, description = "Assigned", body = Alert),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such alert in the caller's clinic", body = ErrorBody),
        (status = 409, description = "Already resolved (`alert_resolved`)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "The assignee is not staff of this clinic", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn assign_alert(
    State(state): State<AppState>,
    staff: Staff,
    Path(alert_id): Path<String>,
    ApiJson(body): ApiJson<AssignAlert>,
) -> ApiResult<Json<Alert>> {
    let now = state.now();
    let channels = state.channels();
    let row = state
        .write_as(staff, move |conn, caller| {
            inbox::assign(conn, caller, &alert_id, &body.assignee_id, channels, now)
        })
        .await?;
    state.jobs_enqueued();
    Ok(Json(row.into()))
}

/// How it was resolved.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveAlert {
    /// What was done, 1 to 2000 characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"\S",
        example = "Called the patient; safety plan reviewed."
    )]
    pub note: String,
    /// The alert's `signal_count` when the resolver read it. When given and the alert has
    /// received more signals since, it is not resolved (409 `alert_new_signal`): a new signal is
    /// never closed unseen.
    #[schema(minimum = 1)]
    pub signal_count: Option<i32>,
}

/// Resolve an alert with a note
#[utoipa::path(
    post,
    path = "/v1/alerts/{alert_id}/resolve",
    tag = "alerts",
    operation_id = "resolve_alert",
    security(("bearer" = [])),
    params(("alert_id" = String, Path, description = "The alert")),
    request_body = ResolveAlert,
    responses(
        (status = 200, description = "Resolved", body = Alert),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such alert in the caller's clinic", body = ErrorBody),
        (status = 409, description = "Already resolved (`alert_resolved`), or a new signal arrived since the resolver read it (`alert_new_signal`)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid note", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn resolve_alert(
    State(state): State<AppState>,
    staff: Staff,
    Path(alert_id): Path<String>,
    ApiJson(body): ApiJson<ResolveAlert>,
) -> ApiResult<Json<Alert>> {
    let now = state.now();
    let row = state
        .write_as(staff, move |conn, caller| {
            inbox::resolve(conn, caller, &alert_id, &body.note, body.signal_count, now)
        })
        .await?;
    Ok(Json(row.into()))
}

#[cfg(test)]
mod tests {
    use super::super::rules::Severity;
    use super::*;

    /// An alert's `severity` and `status` are stored as text and shown as stored; the document
    /// states them as the enums of `Severity` and `AlertStatus`, so each stored name is one of
    /// their values (the rule is stored by its serde name, `store::rule_name`).
    #[test]
    fn the_stored_names_are_the_documented_values() {
        for severity in [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Urgent,
        ] {
            assert_eq!(
                serde_json::to_value(severity).unwrap(),
                serde_json::json!(store::severity_name(severity))
            );
            assert_eq!(
                store::parse_severity(store::severity_name(severity)),
                severity
            );
        }
        for status in ["open", "acknowledged", "resolved"] {
            let parsed: AlertStatus = serde_json::from_value(serde_json::json!(status)).unwrap();
            assert_eq!(serde_json::to_value(parsed).unwrap(), status);
        }
    }
}
