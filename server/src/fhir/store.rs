//! The clinic-wide queries that FHIR search needs and the domain stores do not have (the domain
//! stores list one patient's rows; a FHIR search may span a clinic). Single rows are read through
//! the domain stores. Also the SMART system clients, their tokens and spent assertion ids, and
//! the Bulk Data exports.

use chrono::NaiveDateTime;
use companion_schema::schema::{
    accounts, alerts, bulk_exports, check_ins, client_assertions, system_clients, system_tokens,
};
use diesel::prelude::*;

use crate::check_in::CheckInRow;
use crate::db::DbConnection;
use crate::escalation::AlertRow;
use crate::fhir::bulk::INVALIDATED;
use crate::fhir::search::Range;

/// A page of check-ins: filters and position.
#[derive(Debug, Clone, Default)]
pub struct CheckInQuery {
    /// Only this patient.
    pub patient_id: Option<String>,
    /// Only these instruments (`None`: all).
    pub instruments: Option<Vec<String>>,
    /// `completed_at` range.
    pub completed: Range,
    /// `received_at` range (the resources' `meta.lastUpdated`).
    pub received: Range,
    /// Start at this (completed_at, id), inclusive, newest first.
    pub from: Option<(NaiveDateTime, String)>,
}

/// Up to `limit` check-ins of `clinic_id`, newest first.
pub fn check_ins_of_clinic(
    conn: &mut DbConnection,
    clinic_id: &str,
    query: &CheckInQuery,
    limit: i64,
) -> QueryResult<Vec<CheckInRow>> {
    let mut q = check_ins::table
        .filter(check_ins::clinic_id.eq(clinic_id.to_owned()))
        .select(CheckInRow::as_select())
        .order((check_ins::completed_at.desc(), check_ins::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(patient) = &query.patient_id {
        q = q.filter(check_ins::patient_id.eq(patient.clone()));
    }
    if let Some(instruments) = &query.instruments {
        q = q.filter(check_ins::instrument.eq_any(instruments.clone()));
    }
    if let Some(from) = query.completed.from {
        q = q.filter(check_ins::completed_at.ge(from));
    }
    if let Some(to) = query.completed.to {
        q = q.filter(check_ins::completed_at.le(to));
    }
    if let Some(from) = query.received.from {
        q = q.filter(check_ins::received_at.ge(from));
    }
    if let Some(to) = query.received.to {
        q = q.filter(check_ins::received_at.le(to));
    }
    if let Some((at, id)) = &query.from {
        // The leading `<=` lets the (clinic, time, id) index seek to the position.
        q = q.filter(check_ins::completed_at.le(*at)).filter(
            check_ins::completed_at
                .lt(*at)
                .or(check_ins::id.le(id.clone())),
        );
    }
    q.load(conn)
}

/// Up to `limit` alerts of `clinic_id`, newest first, starting at (opened_at, id) inclusive.
pub fn alerts_of_clinic(
    conn: &mut DbConnection,
    clinic_id: &str,
    patient_id: Option<&str>,
    statuses: Option<&[&str]>,
    from: Option<&(NaiveDateTime, String)>,
    limit: i64,
) -> QueryResult<Vec<AlertRow>> {
    let mut q = alerts::table
        .filter(alerts::clinic_id.eq(clinic_id.to_owned()))
        .select(AlertRow::as_select())
        .order((alerts::opened_at.desc(), alerts::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(patient) = patient_id {
        q = q.filter(alerts::patient_id.eq(patient.to_owned()));
    }
    if let Some(statuses) = statuses {
        let statuses: Vec<String> = statuses.iter().map(|s| (*s).to_owned()).collect();
        q = q.filter(alerts::status.eq_any(statuses));
    }
    if let Some((at, id)) = from {
        // The leading `<=` lets the (clinic, opened, id) index seek to the position.
        q = q
            .filter(alerts::opened_at.le(*at))
            .filter(alerts::opened_at.lt(*at).or(alerts::id.le(id.clone())));
    }
    q.load(conn)
}

/// A patient account as FHIR shows it (never the email).
#[derive(Debug, Clone, Queryable)]
pub struct PatientRow {
    /// Id.
    pub id: String,
    /// Clinic.
    pub clinic_id: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Set while disabled.
    pub disabled_at: Option<NaiveDateTime>,
    /// Last change.
    pub updated_at: NaiveDateTime,
}

type PatientColumns = (
    accounts::id,
    accounts::clinic_id,
    accounts::display_name,
    accounts::disabled_at,
    accounts::updated_at,
);

const PATIENT_COLUMNS: PatientColumns = (
    accounts::id,
    accounts::clinic_id,
    accounts::display_name,
    accounts::disabled_at,
    accounts::updated_at,
);

/// One patient of `clinic_id`.
pub fn patient_of_clinic(
    conn: &mut DbConnection,
    clinic_id: &str,
    id: &str,
) -> QueryResult<Option<PatientRow>> {
    accounts::table
        .filter(accounts::id.eq(id))
        .filter(accounts::role.eq("patient"))
        .filter(accounts::clinic_id.eq(clinic_id))
        .filter(accounts::erased_at.is_null())
        .select(PATIENT_COLUMNS)
        .first(conn)
        .optional()
}

/// Up to `limit` patients of `clinic_id` by id, starting at `from` inclusive.
pub fn patients_of_clinic(
    conn: &mut DbConnection,
    clinic_id: &str,
    updated: Range,
    from: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<PatientRow>> {
    let mut q = accounts::table
        .filter(accounts::role.eq("patient"))
        .filter(accounts::clinic_id.eq(clinic_id.to_owned()))
        // An erased patient is nobody's to read any more (its empty mark stays for the audit).
        .filter(accounts::erased_at.is_null())
        .select(PATIENT_COLUMNS)
        .order(accounts::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(from) = updated.from {
        q = q.filter(accounts::updated_at.ge(from));
    }
    if let Some(to) = updated.to {
        q = q.filter(accounts::updated_at.le(to));
    }
    if let Some(from) = from {
        q = q.filter(accounts::id.ge(from.to_owned()));
    }
    q.load(conn)
}

/// A registered system client.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = system_clients)]
pub struct ClientRow {
    /// The client id (`iss` and `sub` of its assertions).
    pub id: String,
    /// Its clinic: the only one whose data it reads.
    pub clinic_id: String,
    /// A name for people.
    pub name: String,
    /// Its public keys (JWK Set JSON).
    pub jwks: String,
    /// The scopes it may ask for.
    pub scope: String,
    /// The admin who registered it.
    pub created_by: String,
    /// Registered.
    pub created_at: NaiveDateTime,
    /// Set once disabled.
    pub disabled_at: Option<NaiveDateTime>,
    /// When a token was last issued to it or used (to the minute).
    pub last_used_at: Option<NaiveDateTime>,
    /// When its keys were last replaced.
    pub keys_rotated_at: Option<NaiveDateTime>,
}

/// Inserts a system client.
pub fn insert_client(conn: &mut DbConnection, row: &ClientRow) -> QueryResult<()> {
    diesel::insert_into(system_clients::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The system client `id`, enabled or not.
pub fn find_client(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ClientRow>> {
    system_clients::table
        .find(id)
        .select(ClientRow::as_select())
        .first(conn)
        .optional()
}

/// Spends the assertion id `jti` of `client_id` (kept until `expires_at`), first dropping the
/// client's spent ids that expired before `at`. Returns 1 when it was spent now, 0 when it had
/// been used already.
pub fn spend_assertion(
    conn: &mut DbConnection,
    client_id: &str,
    jti: &str,
    expires_at: NaiveDateTime,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::delete(
        client_assertions::table
            .filter(client_assertions::client_id.eq(client_id))
            .filter(client_assertions::expires_at.lt(at)),
    )
    .execute(conn)?;
    Ok(crate::per_backend!(conn, |c| diesel::insert_into(
        client_assertions::table
    )
    .values((
        client_assertions::client_id.eq(client_id),
        client_assertions::jti.eq(jti),
        client_assertions::expires_at.eq(expires_at),
    ))
    .on_conflict_do_nothing()
    .execute(c)?))
}

/// Marks the client used at `at`.
pub fn touch_client(
    conn: &mut DbConnection,
    client_id: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(system_clients::table.find(client_id))
        .set(system_clients::last_used_at.eq(Some(at)))
        .execute(conn)
        .map(drop)
}

/// A system access token to store (by its hash).
#[derive(Debug, Clone, Copy)]
pub struct NewSystemToken<'a> {
    /// SHA-256 of the token, hex.
    pub token_hash: &'a str,
    /// The client it was issued to.
    pub client_id: &'a str,
    /// The client's clinic.
    pub clinic_id: &'a str,
    /// The scopes granted.
    pub scope: &'a str,
    /// Issued.
    pub issued_at: NaiveDateTime,
    /// Expires.
    pub expires_at: NaiveDateTime,
}

/// Stores an issued system access token.
pub fn insert_token(conn: &mut DbConnection, token: &NewSystemToken<'_>) -> QueryResult<()> {
    diesel::insert_into(system_tokens::table)
        .values((
            system_tokens::token_hash.eq(token.token_hash),
            system_tokens::client_id.eq(token.client_id),
            system_tokens::clinic_id.eq(token.clinic_id),
            system_tokens::scope.eq(token.scope),
            system_tokens::issued_at.eq(token.issued_at),
            system_tokens::expires_at.eq(token.expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// A token found by its hash with its client: client id, clinic, scope, expiry, and the
/// client's `disabled_at` and `last_used_at`.
pub type FoundToken = (
    String,
    String,
    String,
    NaiveDateTime,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
);

/// The token with hash `token_hash` and its client, when the client is still of the token's
/// clinic.
pub fn find_token(conn: &mut DbConnection, token_hash: &str) -> QueryResult<Option<FoundToken>> {
    system_tokens::table
        .inner_join(system_clients::table.on(system_clients::id.eq(system_tokens::client_id)))
        .filter(system_tokens::token_hash.eq(token_hash))
        .filter(system_clients::clinic_id.eq(system_tokens::clinic_id))
        .select((
            system_tokens::client_id,
            system_tokens::clinic_id,
            system_tokens::scope,
            system_tokens::expires_at,
            system_clients::disabled_at,
            system_clients::last_used_at,
        ))
        .first(conn)
        .optional()
}

/// A page of a clinic's system clients in id order after `after`, at most `limit`.
pub fn clients_page(
    conn: &mut DbConnection,
    clinic_id: &str,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ClientRow>> {
    let mut query = system_clients::table
        .filter(system_clients::clinic_id.eq(clinic_id))
        .select(ClientRow::as_select())
        .order(system_clients::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(system_clients::id.gt(after.to_owned()));
    }
    query.load(conn)
}

/// Deletes every token of a client; returns how many.
pub fn delete_client_tokens(conn: &mut DbConnection, client_id: &str) -> QueryResult<usize> {
    diesel::delete(system_tokens::table.filter(system_tokens::client_id.eq(client_id)))
        .execute(conn)
}

/// Marks a client disabled at `at`.
pub fn set_client_disabled(
    conn: &mut DbConnection,
    client_id: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(system_clients::table.find(client_id))
        .set(system_clients::disabled_at.eq(Some(at)))
        .execute(conn)
        .map(drop)
}

/// Replaces a client's keys (JWK Set JSON), stamping `keys_rotated_at`.
pub fn set_client_keys(
    conn: &mut DbConnection,
    client_id: &str,
    jwks: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(system_clients::table.find(client_id))
        .set((
            system_clients::jwks.eq(jwks),
            system_clients::keys_rotated_at.eq(Some(at)),
        ))
        .execute(conn)
        .map(drop)
}

/// The scopes of the token with hash `token_hash`, if it is stored.
pub fn token_scope(conn: &mut DbConnection, token_hash: &str) -> QueryResult<Option<String>> {
    system_tokens::table
        .find(token_hash)
        .select(system_tokens::scope)
        .first(conn)
        .optional()
}

/// Deletes expired system tokens (`expires_at <= now`) and spent assertion ids that expired
/// before `now`; returns how many rows went.
pub fn purge_expired_tokens(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    let tokens = diesel::delete(system_tokens::table.filter(system_tokens::expires_at.le(now)))
        .execute(conn)?;
    let assertions =
        diesel::delete(client_assertions::table.filter(client_assertions::expires_at.lt(now)))
            .execute(conn)?;
    Ok(tokens + assertions)
}

/// An export as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = bulk_exports)]
pub struct ExportRow {
    /// Id.
    pub id: String,
    /// The clinic exported.
    pub clinic_id: String,
    /// The account or system client that asked: the only one that polls, downloads or cancels
    /// it.
    pub requested_by: String,
    /// The kick-off URL.
    pub request: String,
    /// The installation's base URL at kick-off (for file URLs).
    pub base_url: String,
    /// Space-separated resource types.
    pub types: String,
    /// `_since`.
    pub since: Option<NaiveDateTime>,
    /// `queued`, `running`, `done`, `cancelled`, `failed` or `invalidated` (a patient of the
    /// clinic was erased after it was asked for).
    pub status: String,
    /// Types written so far.
    pub done_types: i32,
    /// The manifest's `output` (JSON), once done.
    pub output: Option<String>,
    /// Kicked off.
    pub created_at: NaiveDateTime,
    /// Finished.
    pub finished_at: Option<NaiveDateTime>,
    /// Files deleted after.
    pub expires_at: Option<NaiveDateTime>,
}

/// Stores a new export.
pub fn insert_export(conn: &mut DbConnection, row: &ExportRow) -> QueryResult<()> {
    diesel::insert_into(bulk_exports::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Finds an export.
pub fn find_export(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ExportRow>> {
    bulk_exports::table
        .find(id)
        .select(ExportRow::as_select())
        .first(conn)
        .optional()
}

/// Marks the export `id` cancelled.
pub fn cancel_export(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::update(bulk_exports::table.find(id))
        .set(bulk_exports::status.eq("cancelled"))
        .execute(conn)
        .map(drop)
}

/// Gives every export of `clinic_id` that is queued, running or done the status
/// [`INVALIDATED`]; returns how many.
pub fn invalidate_clinic_exports(conn: &mut DbConnection, clinic_id: &str) -> QueryResult<usize> {
    diesel::update(
        bulk_exports::table
            .filter(bulk_exports::clinic_id.eq(clinic_id))
            .filter(bulk_exports::status.eq_any(["queued", "running", "done"])),
    )
    .set(bulk_exports::status.eq(INVALIDATED))
    .execute(conn)
}

/// Of the exports `ids`, those still queued, running or downloadable (done and not expired at
/// `now`).
pub fn live_exports_among(
    conn: &mut DbConnection,
    ids: &[String],
    now: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    bulk_exports::table
        .filter(bulk_exports::id.eq_any(ids))
        .filter(
            bulk_exports::status
                .eq_any(["queued", "running"])
                .or(bulk_exports::status
                    .eq("done")
                    .and(bulk_exports::expires_at.gt(now))),
        )
        .select(bulk_exports::id)
        .load::<String>(conn)
}

/// Deletes the exports that stopped being downloadable before `before`: done ones expired, and
/// failed, cancelled or invalidated ones kicked off, before then. Returns how many.
pub fn delete_exports_finished_before(
    conn: &mut DbConnection,
    before: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::delete(
        bulk_exports::table.filter(
            bulk_exports::status
                .eq("done")
                .and(bulk_exports::expires_at.lt(before))
                .or(bulk_exports::status
                    .eq_any(["failed", "cancelled", INVALIDATED])
                    .and(bulk_exports::created_at.lt(before))),
        ),
    )
    .execute(conn)
}

/// Marks the export `id` failed, unless it is no longer queued or running.
pub fn fail_export(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::update(
        bulk_exports::table
            .find(id)
            .filter(bulk_exports::status.eq_any(["queued", "running"])),
    )
    .set(bulk_exports::status.eq("failed"))
    .execute(conn)
}

/// Records that the export `id` is running with `done_types` types written, unless it is no
/// longer queued or running (cancelled meanwhile). Returns how many rows changed.
pub fn export_progress(conn: &mut DbConnection, id: &str, done_types: i32) -> QueryResult<usize> {
    diesel::update(
        bulk_exports::table
            .find(id)
            .filter(bulk_exports::status.eq_any(["queued", "running"])),
    )
    .set((
        bulk_exports::status.eq("running"),
        bulk_exports::done_types.eq(done_types),
    ))
    .execute(conn)
}

/// Marks the running export `id` done at `now` with its manifest's `output`, its files kept
/// until `expires_at`. Returns how many rows changed (none when it was cancelled meanwhile).
pub fn finish_export(
    conn: &mut DbConnection,
    id: &str,
    done_types: i32,
    output: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        bulk_exports::table
            .find(id)
            .filter(bulk_exports::status.eq("running")),
    )
    .set((
        bulk_exports::status.eq("done"),
        bulk_exports::done_types.eq(done_types),
        bulk_exports::output.eq(Some(output)),
        bulk_exports::finished_at.eq(Some(now)),
        bulk_exports::expires_at.eq(Some(expires_at)),
    ))
    .execute(conn)
}
