//! The care team's alert inbox: list, read (with the explanation, history and recent check-ins),
//! acknowledge, assign, resolve; and staff marking themselves on call. Every action is audited.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use companion_schema::ids::{AccountId, AlertId};
use companion_schema::schema::{accounts, alert_events, alerts};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::audit::{self, AuditEntry};
use crate::auth::extract::{Caller, Staff};
use crate::check_in::store::{self as check_ins, HistoryFilter};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::pagination::{PageParams, Paginated, parse_time_key, time_key};
use crate::time::utc;

use super::store::{self, AlertRow, ClinicSetting};

/// An alert.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    /// Id.
    pub id: String,
    /// The patient.
    pub patient_id: String,
    /// The rule that raised it (e.g. `safety_item9`, `phq9_deterioration`).
    pub rule: String,
    /// `urgent`, `high`, `medium` or `low`.
    pub severity: String,
    /// `open`, `acknowledged` or `resolved`.
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
    /// Nobody in any tier could be told (nobody on call, no device, no webhook); the
    /// organisation's admins were told. See `GET /v1/clinics/{clinic_id}/readiness`.
    pub unreachable: bool,
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
}

impl From<AlertRow> for Alert {
    fn from(row: AlertRow) -> Self {
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
        }
    }
}

/// One step in an alert's history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// `opened`, `repeated`, `new_signal_since_ack`, `reopened`, `notified`, `tier_skipped`,
    /// `unreachable`, `still_unreachable`, `escalated`, `acknowledged`, `assigned`, `resolved`,
    /// `signal_after_resolve`.
    pub kind: String,
    /// Who, for staff actions.
    pub actor_id: Option<String>,
    /// Details.
    pub detail: String,
}

/// An alert with its history and the patient's recent check-ins.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertDetail {
    /// The alert.
    pub alert: Alert,
    /// Its history, oldest first.
    pub events: Vec<AlertEvent>,
    /// The patient's ten most recent check-ins.
    pub recent_check_ins: Vec<crate::check_in::handlers::CheckIn>,
}

/// Inbox filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertListParams {
    /// `open`, `acknowledged` or `resolved` (default: all).
    pub status: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The clinic's alert inbox
///
/// Most severe first (urgent, high, medium, low), then by the latest signal, newest first: an
/// acknowledged alert that receives a new signal moves up.
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
        (status = 422, description = "Invalid query parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_alerts(
    State(state): State<AppState>,
    Staff(caller): Staff,
    ApiQuery(params): ApiQuery<AlertListParams>,
) -> ApiResult<Json<Paginated<Alert>>> {
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .parse()?;
    let before = page
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
    if let Some(status) = &params.status
        && !["open", "acknowledged", "resolved"].contains(&status.as_str())
    {
        return Err(ApiError::invalid_field(
            "status",
            "must be open, acknowledged or resolved",
        ));
    }
    let clinic = caller
        .clinic_id
        .clone()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let limit = i64::from(page.limit) + 1;
    let status = params.status.clone();
    let entry = AuditEntry::by(&caller, "alerts.read", state.now().naive_utc());
    let rows: Vec<AlertRow> = state
        .db
        .write(move |conn| {
            audit::record(conn, &entry)?;
            let mut query = alerts::table
                .filter(alerts::clinic_id.eq(clinic))
                .select(AlertRow::as_select())
                .order((
                    alerts::severity_rank.desc(),
                    alerts::last_signal_at.desc(),
                    alerts::id.desc(),
                ))
                .limit(limit)
                .into_boxed();
            if let Some(status) = status {
                query = query.filter(alerts::status.eq(status));
            }
            if let Some((rank, (at, id))) = before {
                query = query.filter(
                    alerts::severity_rank
                        .lt(rank)
                        .or(alerts::severity_rank.eq(rank).and(
                            alerts::last_signal_at
                                .lt(at)
                                .or(alerts::last_signal_at.eq(at).and(alerts::id.lt(id))),
                        )),
                );
            }
            query.load(conn)
        })
        .await?;
    let items: Vec<Alert> = rows.into_iter().map(Alert::from).collect();
    Ok(Json(Paginated::from_rows(items, &page, |a| {
        let rank = store::severity_rank(store::parse_severity(&a.severity));
        format!("{rank}/{}", time_key(a.last_signal_at, &a.id))
    })))
}

async fn clinic_alert(state: &AppState, caller: &Caller, raw_id: &str) -> ApiResult<AlertRow> {
    let id = AlertId::parse(raw_id).ok_or_else(|| ApiError::not_found("alert"))?;
    let lookup = id.to_string();
    state
        .db
        .run(move |conn| store::find(conn, &lookup))
        .await?
        .filter(|a| caller.clinic_id.as_ref().map(|c| c.as_str()) == Some(a.clinic_id.as_str()))
        .ok_or_else(|| ApiError::not_found("alert"))
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
    Staff(caller): Staff,
    Path(alert_id): Path<String>,
) -> ApiResult<Json<AlertDetail>> {
    let alert = clinic_alert(&state, &caller, &alert_id).await?;
    let entry = AuditEntry::by(&caller, "alert.read", state.now().naive_utc())
        .patient(&alert.patient_id)
        .subject(&alert.id);
    let (id, patient) = (alert.id.clone(), alert.patient_id.clone());
    let (events, recent) = state
        .db
        .write(move |conn| {
            audit::record(conn, &entry)?;
            let events: Vec<(chrono::NaiveDateTime, String, Option<String>, String)> =
                alert_events::table
                    .filter(alert_events::alert_id.eq(&id))
                    .select((
                        alert_events::at,
                        alert_events::kind,
                        alert_events::actor_id,
                        alert_events::detail,
                    ))
                    .order((alert_events::at.asc(), alert_events::id.asc()))
                    .load(conn)?;
            let recent = check_ins::history(conn, &patient, &HistoryFilter::default(), 10)?;
            Ok((events, recent))
        })
        .await?;
    Ok(Json(AlertDetail {
        alert: alert.into(),
        events: events
            .into_iter()
            .map(|(at, kind, actor_id, detail)| AlertEvent {
                at: utc(at),
                kind,
                actor_id,
                detail,
            })
            .collect(),
        recent_check_ins: recent
            .iter()
            .map(|r| crate::check_in::handlers::view(r, &state, None))
            .collect(),
    }))
}

/// What an action decided, inside its transaction.
enum Decision {
    /// Changed; the audit row is written.
    Changed,
    /// Nothing to change (acknowledging an acknowledged alert).
    Unchanged,
    /// Refused.
    Refused(ApiError),
}

/// Runs an action on an alert of the caller's clinic in one transaction: the alert is read, the
/// action decides on the state it reads there and changes it with a guard on that state, the
/// audit row is written, and the alert is read back for the answer. Of two staff acting at
/// once, the second sees what the first did.
async fn act(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
    action: &'static str,
    change: impl FnOnce(
        &mut crate::db::DbConnection,
        &AlertRow,
        chrono::NaiveDateTime,
    ) -> QueryResult<Decision>
    + Send
    + 'static,
) -> ApiResult<(Alert, bool)> {
    let id = AlertId::parse(raw_id)
        .ok_or_else(|| ApiError::not_found("alert"))?
        .to_string();
    let clinic = caller.clinic_id.as_ref().map(|c| c.to_string());
    let now = state.now().naive_utc();
    let entry = AuditEntry::by(caller, action, now);
    state
        .db
        .write(move |conn| {
            let Some(alert) =
                store::find(conn, &id)?.filter(|a| Some(&a.clinic_id) == clinic.as_ref())
            else {
                return Ok(Err(ApiError::not_found("alert")));
            };
            let changed = match change(conn, &alert, now)? {
                Decision::Refused(error) => return Ok(Err(error)),
                Decision::Changed => true,
                Decision::Unchanged => false,
            };
            if changed {
                audit::record(conn, &entry.patient(&alert.patient_id).subject(&alert.id))?;
            }
            Ok(store::find(conn, &id)?
                .map(|row| (Alert::from(row), changed))
                .ok_or_else(|| ApiError::not_found("alert")))
        })
        .await?
}

/// The alert's status now, read in the action's transaction after a guarded update changed
/// nothing.
fn status_now(conn: &mut crate::db::DbConnection, id: &str) -> QueryResult<String> {
    alerts::table.find(id).select(alerts::status).first(conn)
}

fn resolved_conflict() -> ApiError {
    ApiError::conflict("alert_resolved", "This alert is resolved.")
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
    Staff(caller): Staff,
    Path(alert_id): Path<String>,
) -> ApiResult<Json<Alert>> {
    let who = caller.account_id.to_string();
    let (reply, changed) = act(
        &state,
        &caller,
        &alert_id,
        "alert.acknowledge",
        move |conn, alert, now| {
            let changed = diesel::update(
                alerts::table
                    .filter(alerts::id.eq(&alert.id))
                    .filter(alerts::status.eq("open")),
            )
            .set((
                alerts::status.eq("acknowledged"),
                alerts::acknowledged_at.eq(now),
                alerts::acknowledged_by.eq(&who),
                alerts::new_signal_since_ack.eq(false),
            ))
            .execute(conn)?
                == 1;
            if !changed {
                return Ok(match status_now(conn, &alert.id)?.as_str() {
                    "resolved" => Decision::Refused(resolved_conflict()),
                    _ => Decision::Unchanged,
                });
            }
            // A routine push held for someone's working hours is no longer needed.
            let withdrawn =
                crate::push::store::withdraw_waiting(conn, "care_alert_routine", &alert.id, now)?;
            let detail = match withdrawn {
                0 => String::new(),
                n => format!("{n} held push(es) withdrawn"),
            };
            store::event(conn, &alert.id, "acknowledged", Some(&who), &detail, now)?;
            Ok(Decision::Changed)
        },
    )
    .await?;
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
    Staff(caller): Staff,
    Path(alert_id): Path<String>,
    ApiJson(body): ApiJson<AssignAlert>,
) -> ApiResult<Json<Alert>> {
    let assignee = AccountId::parse(&body.assignee_id)
        .ok_or_else(|| ApiError::invalid_field("assignee_id", "is not staff of this clinic"))?
        .to_string();
    let who = caller.account_id.to_string();
    let (reply, _) = act(
        &state,
        &caller,
        &alert_id,
        "alert.assign",
        move |conn, alert, now| {
            let staff: i64 = accounts::table
                .filter(accounts::id.eq(&assignee))
                .filter(accounts::clinic_id.eq(&alert.clinic_id))
                .filter(accounts::role.eq_any(["clinician", "clinic_admin"]))
                .filter(accounts::disabled_at.is_null())
                .count()
                .get_result(conn)?;
            if staff == 0 {
                return Ok(Decision::Refused(ApiError::invalid_field(
                    "assignee_id",
                    "is not staff of this clinic",
                )));
            }
            let changed = diesel::update(
                alerts::table
                    .filter(alerts::id.eq(&alert.id))
                    .filter(alerts::status.ne("resolved")),
            )
            .set(alerts::assigned_to.eq(&assignee))
            .execute(conn)?;
            if changed == 0 {
                return Ok(Decision::Refused(resolved_conflict()));
            }
            store::event(conn, &alert.id, "assigned", Some(&who), &assignee, now)?;
            Ok(Decision::Changed)
        },
    )
    .await?;
    Ok(Json(reply))
}

/// How it was resolved.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveAlert {
    /// What was done, 1 to 2000 characters.
    pub note: String,
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
        (status = 409, description = "Already resolved (`alert_resolved`)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid note", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn resolve_alert(
    State(state): State<AppState>,
    Staff(caller): Staff,
    Path(alert_id): Path<String>,
    ApiJson(body): ApiJson<ResolveAlert>,
) -> ApiResult<Json<Alert>> {
    let note = body.note.trim().to_owned();
    if note.is_empty() || note.chars().count() > 2000 {
        return Err(ApiError::invalid_field(
            "note",
            "must be 1 to 2000 characters",
        ));
    }
    let who = caller.account_id.to_string();
    let (reply, _) = act(
        &state,
        &caller,
        &alert_id,
        "alert.resolve",
        move |conn, alert, now| {
            // Guarded: of two resolves at once, the second finds the alert resolved.
            let changed = diesel::update(
                alerts::table
                    .filter(alerts::id.eq(&alert.id))
                    .filter(alerts::status.ne("resolved")),
            )
            .set((
                alerts::status.eq("resolved"),
                alerts::resolved_at.eq(now),
                alerts::resolved_by.eq(&who),
                alerts::resolution_note.eq(&note),
                alerts::new_signal_since_ack.eq(false),
            ))
            .execute(conn)?;
            if changed == 0 {
                return Ok(Decision::Refused(resolved_conflict()));
            }
            // Resolving acknowledges, unless someone already had.
            diesel::update(
                alerts::table
                    .filter(alerts::id.eq(&alert.id))
                    .filter(alerts::acknowledged_at.is_null()),
            )
            .set((
                alerts::acknowledged_at.eq(now),
                alerts::acknowledged_by.eq(&who),
            ))
            .execute(conn)?;
            crate::push::store::withdraw_waiting(conn, "care_alert_routine", &alert.id, now)?;
            store::event(conn, &alert.id, "resolved", Some(&who), &note, now)?;
            Ok(Decision::Changed)
        },
    )
    .await?;
    Ok(Json(reply))
}

/// On-call status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnCall {
    /// Whether the caller is on call (first tier of escalation).
    pub on_call: bool,
}

/// Mark myself on or off call
#[utoipa::path(
    put,
    path = "/v1/me/on-call",
    tag = "alerts",
    operation_id = "set_on_call",
    security(("bearer" = [])),
    request_body = OnCall,
    responses(
        (status = 200, description = "Updated", body = OnCall),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn set_on_call(
    State(state): State<AppState>,
    Staff(caller): Staff,
    ApiJson(body): ApiJson<OnCall>,
) -> ApiResult<Json<OnCall>> {
    let id = caller.account_id.to_string();
    let on_call = body.on_call;
    state
        .db
        .write(move |conn| {
            diesel::update(accounts::table.find(&id))
                .set(accounts::on_call.eq(on_call))
                .execute(conn)
        })
        .await?;
    Ok(Json(OnCall { on_call }))
}

/// A clinic's alert thresholds
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}/alert-thresholds",
    tag = "alerts",
    operation_id = "get_alert_thresholds",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    responses(
        (status = 200, description = "The thresholds in force", body = super::rules::Thresholds),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_alert_thresholds(
    State(state): State<AppState>,
    Staff(caller): Staff,
    Path(clinic_id): Path<String>,
) -> ApiResult<Json<super::rules::Thresholds>> {
    read_clinic_setting(&state, &caller, &clinic_id, ClinicSetting::AlertThresholds).await
}

/// Change a clinic's alert thresholds
///
/// Clinic admins only. Fields left out return to their defaults. Each value is range-checked.
#[utoipa::path(
    put,
    path = "/v1/clinics/{clinic_id}/alert-thresholds",
    tag = "alerts",
    operation_id = "set_alert_thresholds",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    request_body = super::rules::Thresholds,
    responses(
        (status = 200, description = "The thresholds now in force", body = super::rules::Thresholds),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a clinic admin", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Values out of range, each named", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn set_alert_thresholds(
    State(state): State<AppState>,
    Staff(caller): Staff,
    Path(clinic_id): Path<String>,
    ApiJson(body): ApiJson<super::rules::Thresholds>,
) -> ApiResult<Json<super::rules::Thresholds>> {
    let problems = body.problems();
    update_clinic_setting(
        &state,
        &caller,
        &clinic_id,
        ClinicSetting::AlertThresholds,
        "change alert thresholds",
        problems,
        body,
    )
    .await
}

/// A clinic's escalation policy
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}/escalation-policy",
    tag = "alerts",
    operation_id = "get_escalation_policy",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    responses(
        (status = 200, description = "The policy in force", body = super::policy::EscalationPolicy),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_escalation_policy(
    State(state): State<AppState>,
    Staff(caller): Staff,
    Path(clinic_id): Path<String>,
) -> ApiResult<Json<super::policy::EscalationPolicy>> {
    read_clinic_setting(&state, &caller, &clinic_id, ClinicSetting::EscalationPolicy).await
}

/// Change a clinic's escalation policy
///
/// Clinic admins only. The tiers an unacknowledged alert climbs, each with an optional delay.
#[utoipa::path(
    put,
    path = "/v1/clinics/{clinic_id}/escalation-policy",
    tag = "alerts",
    operation_id = "set_escalation_policy",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    request_body = super::policy::EscalationPolicy,
    responses(
        (status = 200, description = "The policy now in force", body = super::policy::EscalationPolicy),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not a clinic admin", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid tiers, each named", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn set_escalation_policy(
    State(state): State<AppState>,
    Staff(caller): Staff,
    Path(clinic_id): Path<String>,
    ApiJson(body): ApiJson<super::policy::EscalationPolicy>,
) -> ApiResult<Json<super::policy::EscalationPolicy>> {
    let problems = body.problems();
    update_clinic_setting(
        &state,
        &caller,
        &clinic_id,
        ClinicSetting::EscalationPolicy,
        "change the escalation policy",
        problems,
        body,
    )
    .await
}

pub(crate) async fn read_clinic_setting<T>(
    state: &AppState,
    caller: &Caller,
    clinic_id: &str,
    setting: ClinicSetting,
) -> ApiResult<Json<T>>
where
    T: serde::de::DeserializeOwned + Default + Send + 'static,
{
    let clinic = companion_schema::ids::ClinicId::parse(clinic_id)
        .ok_or_else(|| ApiError::not_found("clinic"))?;
    caller.ensure_staff_of(&clinic)?;
    let id = clinic.to_string();
    Ok(Json(
        state
            .db
            .run(move |conn| store::read_setting(conn, &id, setting))
            .await?,
    ))
}

pub(crate) async fn update_clinic_setting<T: Serialize>(
    state: &AppState,
    caller: &Caller,
    clinic_id: &str,
    setting: ClinicSetting,
    what: &str,
    problems: std::collections::BTreeMap<String, String>,
    value: T,
) -> ApiResult<Json<T>> {
    let clinic = companion_schema::ids::ClinicId::parse(clinic_id)
        .ok_or_else(|| ApiError::not_found("clinic"))?;
    caller.ensure_admin_of(&clinic, what)?;
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let json = serde_json::to_string(&value).map_err(|e| ApiError::internal(&e))?;
    let action = match setting {
        ClinicSetting::AlertThresholds => "alert_thresholds.update",
        ClinicSetting::EscalationPolicy => "escalation_policy.update",
        ClinicSetting::CarePlan => "care_plan.update",
    };
    let entry = AuditEntry::by(caller, action, state.now().naive_utc()).clinic(clinic.as_str());
    let id = clinic.to_string();
    state
        .db
        .write(move |conn| {
            store::write_setting(conn, &id, setting, json)?;
            if setting == ClinicSetting::CarePlan {
                crate::prompt::store::enqueue_clinic_replan(conn, &id, entry.at)?;
            }
            audit::record(conn, &entry)
        })
        .await?;
    Ok(Json(value))
}

/// What would leave a clinic's alerts unreachable
///
/// Nobody on call, tiers with nobody in them or nobody with an active device, staff without
/// devices, no country for the crisis resources: what the clinic can fix before an alert finds
/// nobody. Staff of the clinic and organisation admins.
#[utoipa::path(
    get,
    path = "/v1/clinics/{clinic_id}/readiness",
    tag = "alerts",
    operation_id = "get_clinic_readiness",
    security(("bearer" = [])),
    params(("clinic_id" = String, Path, description = "The clinic")),
    responses(
        (status = 200, description = "The clinic's readiness", body = super::readiness::Readiness),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Patients cannot read it", body = ErrorBody),
        (status = 404, description = "No such clinic, or not the caller's", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_clinic_readiness(
    State(state): State<AppState>,
    caller: Caller,
    Path(clinic_id): Path<String>,
) -> ApiResult<Json<super::readiness::Readiness>> {
    let clinic = companion_schema::ids::ClinicId::parse(&clinic_id)
        .ok_or_else(|| ApiError::not_found("clinic"))?;
    match caller.role {
        crate::account::model::Role::OrgAdmin => {}
        crate::account::model::Role::Patient => {
            return Err(ApiError::forbidden(
                "Patients cannot read a clinic's readiness.",
            ));
        }
        _ => caller.ensure_staff_of(&clinic)?,
    }
    let id = clinic.to_string();
    let zones = state.zones.clone();
    state
        .db
        .run(move |conn| {
            let Some(row) = crate::clinic::store::find(conn, &id)? else {
                return Ok(None);
            };
            let (policy, tiers, webhook) = super::worker::reach_of(conn, &id)?;
            let (country, source) = crate::safety::crisis::country_for(
                &crate::safety::crisis::CrisisInputs {
                    clinic_country: row.country.as_deref(),
                    clinic_timezone: &row.timezone,
                    patient_timezone: "",
                    ..Default::default()
                },
                &zones,
            );
            Ok(Some(super::readiness::assess(
                &id,
                &policy,
                &tiers,
                webhook,
                (country, source),
            )))
        })
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("clinic"))
}

/// Working hours as shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkingHoursView {
    /// The zone they are in (the account's).
    pub timezone: String,
    /// The days a shift starts on.
    pub days: Vec<super::working_hours::Day>,
    /// Start, `HH:MM` local.
    #[schema(example = "08:00")]
    pub start: String,
    /// End, `HH:MM` local (before `start` for a shift past midnight).
    #[schema(example = "18:00")]
    pub end: String,
}

/// New working hours.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetWorkingHours {
    /// The account's IANA zone, if it changes.
    #[schema(example = "America/Chicago")]
    pub timezone: Option<String>,
    /// The hours.
    #[serde(flatten)]
    pub hours: super::working_hours::WorkingHours,
}

fn hours_view(timezone: String, hours: &super::working_hours::WorkingHours) -> WorkingHoursView {
    WorkingHoursView {
        timezone,
        days: hours.days.clone(),
        start: hours.start.to_string(),
        end: hours.end.to_string(),
    }
}

/// My working hours
///
/// When routine alerts reach my phone: medium and low alerts (and high ones while I am not on
/// call) wait for the start of my next shift; urgent alerts reach me at any hour. Unset: Monday
/// to Friday, 08:00 to 18:00 in my zone.
#[utoipa::path(
    get,
    path = "/v1/me/working-hours",
    tag = "alerts",
    operation_id = "get_my_working_hours",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The hours in force", body = WorkingHoursView),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_my_working_hours(
    State(state): State<AppState>,
    Staff(caller): Staff,
) -> ApiResult<Json<WorkingHoursView>> {
    let id = caller.account_id.to_string();
    let (timezone, stored): (String, Option<String>) = state
        .db
        .run(move |conn| {
            accounts::table
                .find(&id)
                .select((accounts::timezone, accounts::working_hours))
                .first(conn)
        })
        .await?;
    let hours: super::working_hours::WorkingHours = stored
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    Ok(Json(hours_view(timezone, &hours)))
}

/// Set my working hours
#[utoipa::path(
    put,
    path = "/v1/me/working-hours",
    tag = "alerts",
    operation_id = "set_my_working_hours",
    security(("bearer" = [])),
    request_body = SetWorkingHours,
    responses(
        (status = 200, description = "The hours now in force", body = WorkingHoursView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "Not clinic staff", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields, each named", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn set_my_working_hours(
    State(state): State<AppState>,
    Staff(caller): Staff,
    ApiJson(body): ApiJson<SetWorkingHours>,
) -> ApiResult<Json<WorkingHoursView>> {
    let mut problems = body.hours.problems();
    let timezone = match body
        .timezone
        .as_deref()
        .map(crate::account::model::parse_timezone)
        .transpose()
    {
        Ok(tz) => tz.map(|tz| tz.name().to_owned()),
        Err(problem) => {
            problems.insert("timezone".into(), problem.into());
            None
        }
    };
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let json = serde_json::to_string(&body.hours).map_err(|e| ApiError::internal(&e))?;
    let id = caller.account_id.to_string();
    let now = state.now().naive_utc();
    let zone: String = state
        .db
        .write(move |conn| {
            if let Some(tz) = &timezone {
                diesel::update(accounts::table.find(&id))
                    .set((accounts::timezone.eq(tz), accounts::updated_at.eq(now)))
                    .execute(conn)?;
            }
            diesel::update(accounts::table.find(&id))
                .set(accounts::working_hours.eq(Some(json)))
                .execute(conn)?;
            accounts::table
                .find(&id)
                .select(accounts::timezone)
                .first(conn)
        })
        .await?;
    Ok(Json(hours_view(zone, &body.hours)))
}
