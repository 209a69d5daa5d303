//! SQL of the lifecycle: consent documents and records, and the per-clinic lifecycle settings.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use companion_schema::schema::{clinic_lifecycle, consent_documents, consent_records};
use diesel::prelude::*;

use crate::db::DbConnection;

/// A published consent document.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = consent_documents)]
pub struct DocumentRow {
    /// Id.
    pub id: String,
    /// The clinic.
    pub clinic_id: String,
    /// 1, 2, ... per clinic.
    pub version: i32,
    /// Title.
    pub title: String,
    /// The text the patient agrees to.
    pub body: String,
    /// The clinic admin who published it.
    pub published_by: String,
    /// When.
    pub published_at: NaiveDateTime,
}

/// One acceptance or withdrawal.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = consent_records)]
pub struct RecordRow {
    /// Id.
    pub id: String,
    /// Who.
    pub patient_id: String,
    /// The patient's clinic.
    pub clinic_id: String,
    /// Which document.
    pub document_id: String,
    /// Which version of it.
    pub version: i32,
    /// `accept` or `withdraw`.
    pub action: String,
    /// When.
    pub at: NaiveDateTime,
}

/// A clinic's documents, newest version first.
pub fn documents(conn: &mut DbConnection, clinic_id: &str) -> QueryResult<Vec<DocumentRow>> {
    consent_documents::table
        .filter(consent_documents::clinic_id.eq(clinic_id))
        .order(consent_documents::version.desc())
        .select(DocumentRow::as_select())
        .load(conn)
}

/// A clinic's current (latest) document.
pub fn current_document(
    conn: &mut DbConnection,
    clinic_id: &str,
) -> QueryResult<Option<DocumentRow>> {
    consent_documents::table
        .filter(consent_documents::clinic_id.eq(clinic_id))
        .order(consent_documents::version.desc())
        .select(DocumentRow::as_select())
        .first(conn)
        .optional()
}

/// Stores a document.
pub fn insert_document(conn: &mut DbConnection, row: &DocumentRow) -> QueryResult<()> {
    diesel::insert_into(consent_documents::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// A patient's consent history, oldest first.
pub fn records(conn: &mut DbConnection, patient_id: &str) -> QueryResult<Vec<RecordRow>> {
    consent_records::table
        .filter(consent_records::patient_id.eq(patient_id))
        .order((consent_records::at, consent_records::id))
        .select(RecordRow::as_select())
        .load(conn)
}

/// Deletes a patient's consent history (the patient is being erased).
pub fn delete_records_of(conn: &mut DbConnection, patient_id: &str) -> QueryResult<usize> {
    diesel::delete(consent_records::table.filter(consent_records::patient_id.eq(patient_id)))
        .execute(conn)
}

/// Stores an acceptance or withdrawal.
pub fn insert_record(conn: &mut DbConnection, row: &RecordRow) -> QueryResult<()> {
    diesel::insert_into(consent_records::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// A clinic's lifecycle settings.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = clinic_lifecycle, treat_none_as_null = true)]
pub struct LifecycleRow {
    /// The clinic.
    pub clinic_id: String,
    /// The consent version in force; none while the clinic has published no document.
    pub consent_version: Option<i32>,
    /// `delete` or `retain_deidentified`.
    pub erasure_mode: String,
    /// Days check-ins are kept; none: no limit.
    pub check_in_retention_days: Option<i32>,
    /// Days resolved alerts are kept; none: no limit.
    pub alert_retention_days: Option<i32>,
    /// Days audit rows are kept; none: no limit.
    pub audit_retention_days: Option<i32>,
    /// Last changed.
    pub updated_at: NaiveDateTime,
}

impl LifecycleRow {
    /// The settings of a clinic that never changed them.
    pub fn defaults(clinic_id: &str, now: NaiveDateTime) -> Self {
        Self {
            clinic_id: clinic_id.to_owned(),
            consent_version: None,
            erasure_mode: "delete".into(),
            check_in_retention_days: None,
            alert_retention_days: None,
            audit_retention_days: None,
            updated_at: now,
        }
    }
}

/// A clinic's lifecycle settings, or the defaults.
pub fn lifecycle_of(
    conn: &mut DbConnection,
    clinic_id: &str,
    now: NaiveDateTime,
) -> QueryResult<LifecycleRow> {
    Ok(clinic_lifecycle::table
        .find(clinic_id)
        .select(LifecycleRow::as_select())
        .first(conn)
        .optional()?
        .unwrap_or_else(|| LifecycleRow::defaults(clinic_id, now)))
}

/// Stores a clinic's lifecycle settings (insert or replace; run inside a write transaction).
pub fn save_lifecycle(conn: &mut DbConnection, row: &LifecycleRow) -> QueryResult<()> {
    let updated = diesel::update(clinic_lifecycle::table.find(&row.clinic_id))
        .set(row)
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(clinic_lifecycle::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// Every clinic's stored lifecycle settings.
pub fn all_lifecycles(conn: &mut DbConnection) -> QueryResult<Vec<LifecycleRow>> {
    clinic_lifecycle::table
        .select(LifecycleRow::as_select())
        .load(conn)
}

/// Of `patients` (patient id, clinic id), those whose clinic has a consent document in force
/// and who have no acceptance in force (never accepted, declined the version in force, or
/// withdrew). An acceptance of an earlier version keeps them prompted until they decline the new
/// one. Clinics without a document gate nobody, and cost one indexed read.
pub fn unconsented(
    conn: &mut DbConnection,
    patients: &[(&str, &str)],
) -> QueryResult<HashSet<String>> {
    if patients.is_empty() {
        return Ok(HashSet::new());
    }
    let clinics: HashSet<&str> = patients.iter().map(|(_, c)| *c).collect();
    let versions: HashMap<String, i32> = clinic_lifecycle::table
        .filter(clinic_lifecycle::clinic_id.eq_any(clinics))
        .filter(clinic_lifecycle::consent_version.is_not_null())
        .select((
            clinic_lifecycle::clinic_id,
            clinic_lifecycle::consent_version,
        ))
        .load::<(String, Option<i32>)>(conn)?
        .into_iter()
        .filter_map(|(clinic, version)| Some((clinic, version?)))
        .collect();
    if versions.is_empty() {
        return Ok(HashSet::new());
    }
    let gated: Vec<&str> = patients
        .iter()
        .filter(|(_, clinic)| versions.contains_key(*clinic))
        .map(|(patient, _)| *patient)
        .collect();
    let mut latest: HashMap<String, (String, i32)> = HashMap::new();
    for (patient, action, version) in consent_records::table
        .filter(consent_records::patient_id.eq_any(&gated))
        .order((consent_records::at, consent_records::id))
        .select((
            consent_records::patient_id,
            consent_records::action,
            consent_records::version,
        ))
        .load::<(String, String, i32)>(conn)?
    {
        latest.insert(patient, (action, version));
    }
    Ok(patients
        .iter()
        .filter(|(patient, clinic)| {
            let current = versions.get(*clinic).copied();
            let decided = latest.get(*patient).map(|(a, v)| (a.as_str(), *v));
            !super::consent::Standing::of(current, decided).prompted()
        })
        .map(|(patient, _)| (*patient).to_owned())
        .collect())
}

/// Where each patient of a clinic stands with its consent document, by patient id.
pub fn standings(
    conn: &mut DbConnection,
    clinic_id: &str,
    patient_ids: &[String],
) -> QueryResult<HashMap<String, super::consent::Standing>> {
    let current: Option<i32> = clinic_lifecycle::table
        .find(clinic_id)
        .select(clinic_lifecycle::consent_version)
        .first::<Option<i32>>(conn)
        .optional()?
        .flatten();
    let mut latest: HashMap<String, (String, i32)> = HashMap::new();
    if current.is_some() {
        for chunk in patient_ids.chunks(500) {
            for (patient, action, version) in consent_records::table
                .filter(consent_records::patient_id.eq_any(chunk))
                .order((consent_records::at, consent_records::id))
                .select((
                    consent_records::patient_id,
                    consent_records::action,
                    consent_records::version,
                ))
                .load::<(String, String, i32)>(conn)?
            {
                latest.insert(patient, (action, version));
            }
        }
    }
    Ok(patient_ids
        .iter()
        .map(|id| {
            let decided = latest.get(id).map(|(a, v)| (a.as_str(), *v));
            (id.clone(), super::consent::Standing::of(current, decided))
        })
        .collect())
}

/// One staff action on a patient's data, as the patient's access log shows it.
#[derive(Debug, Clone)]
pub struct AccessRow {
    /// The audit row.
    pub id: String,
    /// When.
    pub at: NaiveDateTime,
    /// What, e.g. `check_ins.read`.
    pub action: String,
    /// The record concerned.
    pub subject_id: Option<String>,
    /// Who: an account id, or a system client's id.
    pub actor_id: String,
    /// Their role (`system_client` for a system client).
    pub actor_role: String,
    /// Their display name (a system client's name).
    pub actor_name: Option<String>,
}

/// Actions on `patient_id`'s data by the staff and system clients of `clinic_id` (the
/// patient's clinic: nobody of another clinic is ever shown), newest first, before the
/// `(at, id)` position `before`.
pub fn staff_access(
    conn: &mut DbConnection,
    patient_id: &str,
    clinic_id: &str,
    before: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> QueryResult<Vec<AccessRow>> {
    use companion_schema::schema::{accounts, audit_events, system_clients};
    type Row = (
        String,
        NaiveDateTime,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let mut query = audit_events::table
        .left_join(accounts::table.on(audit_events::actor_id.eq(accounts::id.nullable())))
        .left_join(
            system_clients::table
                .on(audit_events::actor_client_id.eq(system_clients::id.nullable())),
        )
        .filter(audit_events::patient_id.eq(patient_id.to_owned()))
        .filter(audit_events::clinic_id.eq(clinic_id.to_owned()))
        .filter(
            accounts::role
                .nullable()
                .eq_any(["clinician", "clinic_admin"])
                .and(accounts::clinic_id.eq(clinic_id.to_owned()))
                .or(system_clients::clinic_id
                    .nullable()
                    .eq(clinic_id.to_owned())),
        )
        .select((
            audit_events::id,
            audit_events::at,
            audit_events::action,
            audit_events::subject_id,
            audit_events::actor_id,
            accounts::role.nullable(),
            accounts::display_name.nullable(),
            audit_events::actor_client_id,
            system_clients::name.nullable(),
        ))
        .order((audit_events::at.desc(), audit_events::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some((at, id)) = before {
        query = query.filter(
            audit_events::at
                .lt(at)
                .or(audit_events::at.eq(at).and(audit_events::id.lt(id))),
        );
    }
    let rows: Vec<Row> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, at, action, subject_id, account, role, name, client, client_name)| match client {
                Some(client) => AccessRow {
                    id,
                    at,
                    action,
                    subject_id,
                    actor_id: client,
                    actor_role: "system_client".to_owned(),
                    actor_name: client_name,
                },
                None => AccessRow {
                    id,
                    at,
                    action,
                    subject_id,
                    actor_id: account.unwrap_or_default(),
                    actor_role: role.unwrap_or_default(),
                    actor_name: name,
                },
            },
        )
        .collect())
}
