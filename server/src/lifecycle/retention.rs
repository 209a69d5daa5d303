//! A clinic's retention policy: what erasure does to a patient's clinical records (delete them
//! at once, or keep them de-identified), and how many days check-ins, resolved alerts and audit
//! rows are kept before the housekeeping purge deletes them. Clinic admins of the clinic read
//! and set it; every change is audited.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use companion_schema::ids::ClinicId;
use diesel::QueryResult;

use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};

use super::store::{self, LifecycleRow};

/// Fewest days a retention period may be.
pub const MIN_DAYS: i64 = 1;
/// Most days a retention period may be (about a hundred years).
pub const MAX_DAYS: i64 = 36_500;

/// What erasure does to a patient's check-ins and alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureMode {
    /// Deleted with everything else, at once.
    Delete,
    /// Kept without anything that names the patient, until their retention period ends.
    Deidentify,
}

impl ErasureMode {
    /// As the API spells it.
    pub fn as_api(self) -> &'static str {
        match self {
            ErasureMode::Delete => "delete",
            ErasureMode::Deidentify => "deidentify",
        }
    }

    /// As stored.
    pub fn as_stored(self) -> &'static str {
        match self {
            ErasureMode::Delete => "delete",
            ErasureMode::Deidentify => "retain_deidentified",
        }
    }

    /// From the API's spelling.
    pub fn from_api(text: &str) -> Option<Self> {
        match text {
            "delete" => Some(ErasureMode::Delete),
            "deidentify" => Some(ErasureMode::Deidentify),
            _ => None,
        }
    }

    /// From the stored value (anything unknown erases by deleting).
    pub fn from_stored(text: &str) -> Self {
        if text == "retain_deidentified" {
            ErasureMode::Deidentify
        } else {
            ErasureMode::Delete
        }
    }
}

/// A retention policy as asked for (already checked by [`validate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// What erasure does.
    pub erasure_mode: ErasureMode,
    /// Days check-ins are kept; none: no limit.
    pub check_in_days: Option<i32>,
    /// Days resolved alerts are kept; none: no limit.
    pub alert_days: Option<i32>,
    /// Days audit rows are kept; none: no limit.
    pub audit_days: Option<i32>,
}

/// Checks a requested policy; problems are named by field.
pub fn validate(
    erasure_mode: &str,
    check_in_days: Option<i64>,
    alert_days: Option<i64>,
    audit_days: Option<i64>,
) -> Result<Policy, BTreeMap<String, String>> {
    let mut problems = BTreeMap::new();
    let mode = ErasureMode::from_api(erasure_mode);
    if mode.is_none() {
        problems.insert(
            "erasure_mode".to_owned(),
            "must be \"delete\" or \"deidentify\"".to_owned(),
        );
    }
    let mut days = |field: &str, value: Option<i64>| -> Option<i32> {
        match value {
            None => None,
            Some(n) if (MIN_DAYS..=MAX_DAYS).contains(&n) => i32::try_from(n).ok(),
            Some(_) => {
                problems.insert(
                    field.to_owned(),
                    format!("must be null (no limit) or {MIN_DAYS} to {MAX_DAYS} days"),
                );
                None
            }
        }
    };
    let check_in_days = days("check_in_retention_days", check_in_days);
    let alert_days = days("alert_retention_days", alert_days);
    let audit_days = days("audit_retention_days", audit_days);
    match mode {
        Some(erasure_mode) if problems.is_empty() => Ok(Policy {
            erasure_mode,
            check_in_days,
            alert_days,
            audit_days,
        }),
        _ => Err(problems),
    }
}

/// The clinic's retention settings (clinic admins of the clinic).
pub fn get(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
    now: DateTime<Utc>,
) -> Outcome<LifecycleRow> {
    let Some(clinic) = ClinicId::parse(raw_clinic) else {
        return Err(Refusal::not_found("clinic").into());
    };
    caller.ensure_admin_of(&clinic, "read the retention policy")?;
    Ok(store::lifecycle_of(conn, clinic.as_str(), now.naive_utc())?)
}

/// Sets the clinic's retention settings (clinic admins of the clinic); `policy` is the
/// request's own validation, answered after the role check. Audited.
pub fn set(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_clinic: &str,
    policy: Result<Policy, BTreeMap<String, String>>,
    now: DateTime<Utc>,
) -> Outcome<LifecycleRow> {
    let Some(clinic) = ClinicId::parse(raw_clinic) else {
        return Err(Refusal::not_found("clinic").into());
    };
    caller.ensure_admin_of(&clinic, "set the retention policy")?;
    let policy = match policy {
        Ok(policy) => policy,
        Err(problems) => return Err(Refusal::validation(problems).into()),
    };
    let stamp = now.naive_utc();
    let mut row = store::lifecycle_of(conn, clinic.as_str(), stamp)?;
    row.erasure_mode = policy.erasure_mode.as_stored().to_owned();
    row.check_in_retention_days = policy.check_in_days;
    row.alert_retention_days = policy.alert_days;
    row.audit_retention_days = policy.audit_days;
    row.updated_at = stamp;
    store::save_lifecycle(conn, &row)?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "retention.update", stamp).clinic(clinic.as_str()),
    )?;
    Ok(row)
}

/// What one purge pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Check-ins.
    pub check_ins: usize,
    /// Resolved alerts (with their events).
    pub alerts: usize,
    /// Audit rows.
    pub audit_rows: usize,
}

impl Purged {
    /// Rows deleted in all.
    pub fn total(&self) -> usize {
        self.check_ins + self.alerts + self.audit_rows
    }
}

fn cutoff(now: NaiveDateTime, days: Option<i32>) -> Option<NaiveDateTime> {
    days.map(|d| now - TimeDelta::days(i64::from(d)))
}

/// Deletes, for one clinic, check-ins completed, alerts resolved and audit rows written longer
/// ago than the clinic's retention periods allow. Unresolved alerts are never purged, however
/// old, and neither is a check-in one of them names (the check-in behind a signal, an item 9
/// synced late): it goes once a person has resolved the alert. Run inside a write transaction.
pub fn purge_clinic(
    conn: &mut DbConnection,
    row: &LifecycleRow,
    now: DateTime<Utc>,
) -> QueryResult<Purged> {
    let now = now.naive_utc();
    let mut purged = Purged::default();
    let clinic = row.clinic_id.as_str();
    if let Some(before) = cutoff(now, row.check_in_retention_days) {
        purged.check_ins = crate::check_in::purge_completed_before(conn, clinic, before)?;
    }
    if let Some(before) = cutoff(now, row.alert_retention_days) {
        purged.alerts += crate::escalation::purge_resolved_before(conn, clinic, before)?;
    }
    if let Some(before) = cutoff(now, row.audit_retention_days) {
        purged.audit_rows = audit::purge_clinic_rows(conn, clinic, before)?;
    }
    Ok(purged)
}

/// Deletes the alerts an erasure kept because they were unresolved, once staff have resolved
/// them, in every clinic whose erasure deletes records (the default); a de-identifying clinic
/// keeps them until their retention period ends. Returns how many went. Run inside a write
/// transaction.
pub fn purge_erased_alerts(conn: &mut DbConnection) -> QueryResult<usize> {
    crate::escalation::purge_resolved_of_erased(conn, ErasureMode::Deidentify.as_stored())
}
