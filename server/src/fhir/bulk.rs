//! FHIR Bulk Data export (the HL7 Bulk Data Access IG): a kick-off stores an export and enqueues
//! its job in one transaction; the job pages through the clinic's rows and writes one ndjson
//! file per resource type under `{data dir}/exports/{id}/`, a page at a time, so memory stays
//! constant however many patients there are; polling reports progress and then the manifest;
//! files are downloaded only by whoever asked for the export (a member of staff, or a system
//! client within the scopes of the token it presents), deleted on cancel, and expire.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, SubsecRound as _, TimeDelta, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::app::App;
use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};
use crate::fhir::resources::{self as res, Systems};
use crate::fhir::search::{Range, ResourceType};
pub use crate::fhir::store::ExportRow;
use crate::fhir::store::{self, CheckInQuery};
use crate::instrument::catalogue::Catalogue;
use crate::jobs::runner::JobResult;
use crate::jobs::store::Claimed;

/// The job kind (registered in `jobs::runner`).
pub const JOB: &str = "fhir.bulk_export";
/// How long files are kept after an export completes.
pub const FILES_LIVE: TimeDelta = TimeDelta::hours(1);
/// Rows read per page while writing files.
pub const PAGE: i64 = 500;
/// The status of an export made before one of its clinic's patients was erased.
pub const INVALIDATED: &str = "invalidated";
/// How long the row of a finished, failed or cancelled export is kept after its files are gone
/// (so that polling it says why), in days.
pub const ROW_RETENTION_DAYS: i64 = 7;
/// The types an export may hold, in the order they are written.
pub const EXPORTABLE: [ResourceType; 6] = [
    ResourceType::Organization,
    ResourceType::Patient,
    ResourceType::QuestionnaireResponse,
    ResourceType::Observation,
    ResourceType::Flag,
    ResourceType::Task,
];

/// Parses `_type` (comma-separated); `None` means every exportable type.
pub fn parse_types(raw: Option<&str>) -> Result<Vec<ResourceType>, String> {
    let Some(raw) = raw else {
        return Ok(EXPORTABLE.to_vec());
    };
    let mut out = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match ResourceType::parse(name).filter(|t| EXPORTABLE.contains(t)) {
            Some(t) if !out.contains(&t) => out.push(t),
            Some(_) => {}
            None => return Err(format!("_type: {name} is not exported here")),
        }
    }
    if out.is_empty() {
        return Err("_type names no resource type".to_owned());
    }
    Ok(out)
}

/// What a kick-off asks for.
#[derive(Debug, Clone)]
pub struct KickOff {
    /// `Some` for `Group/{id}/$export`: must be the caller's clinic.
    pub group: Option<String>,
    /// `_type`.
    pub types: Vec<ResourceType>,
    /// `_since`.
    pub since: Option<NaiveDateTime>,
    /// The request URL.
    pub request: String,
    /// The base URL.
    pub base_url: String,
}

/// Stores an export and enqueues its job in the same transaction.
pub fn kick_off(
    conn: &mut DbConnection,
    caller: &Caller,
    ask: KickOff,
    now: DateTime<Utc>,
) -> Outcome<ExportRow> {
    let clinic = caller.own_clinic()?.as_str().to_owned();
    if ask.group.as_deref().is_some_and(|g| g != clinic) {
        return Err(Refusal::not_found("Group").into());
    }
    let at = now.naive_utc().trunc_subsecs(6);
    let row = ExportRow {
        id: uuid::Uuid::now_v7().to_string(),
        clinic_id: clinic.clone(),
        requested_by: caller.account_id.to_string(),
        request: ask.request,
        base_url: ask.base_url,
        types: ask
            .types
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(" "),
        since: ask.since,
        status: "queued".to_owned(),
        done_types: 0,
        output: None,
        created_at: at,
        finished_at: None,
        expires_at: None,
    };
    store::insert_export(conn, &row)?;
    crate::jobs::store::enqueue(
        conn,
        &crate::jobs::new_job::<BulkExport>(
            &BulkExportPayload {
                export_id: row.id.clone(),
            },
            Some(format!("{JOB}:{}", row.id)),
            at,
            3,
        ),
        at,
    )?;
    audit::record(
        conn,
        &AuditEntry::by(caller, "fhir.export.start", at)
            .clinic(&clinic)
            .subject(&row.id),
    )?;
    Ok(row)
}

/// The folder of an export's files.
pub fn folder(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join("exports").join(id)
}

/// What polling finds.
#[derive(Debug)]
pub enum Status {
    /// Still working: types written, of how many.
    InProgress(i32, usize),
    /// The manifest.
    Done(Value),
    /// The job failed.
    Failed,
}

/// An export the caller asked for, or not found: another clinic's, another staff member's or
/// another system client's export does not exist for the caller, and neither does one cancelled
/// or expired (expired files are deleted here).
fn visible(
    conn: &mut DbConnection,
    caller: &Caller,
    id: &str,
    now: NaiveDateTime,
    data_dir: &Path,
) -> Outcome<ExportRow> {
    let Some(row) = store::find_export(conn, id)? else {
        return Err(Refusal::not_found("export").into());
    };
    if caller.clinic_id.as_ref().map(|c| c.as_str()) != Some(row.clinic_id.as_str())
        || row.requested_by != caller.account_id.as_str()
        || row.status == "cancelled"
    {
        return Err(Refusal::not_found("export").into());
    }
    if row.status == INVALIDATED {
        return Err(Refusal::not_found_because(
            "export_invalidated",
            "A patient's data was erased after this export was asked for; start a new one.",
        )
        .into());
    }
    if row.expires_at.is_some_and(|e| e <= now) {
        let _ = std::fs::remove_dir_all(folder(data_dir, &row.id));
        return Err(Refusal::not_found_because(
            "expired",
            "This export has expired; start a new one.",
        )
        .into());
    }
    Ok(row)
}

/// Polls an export.
pub fn status(
    conn: &mut DbConnection,
    caller: &Caller,
    id: &str,
    now: DateTime<Utc>,
    data_dir: &Path,
) -> Outcome<Status> {
    let row = visible(conn, caller, id, now.naive_utc(), data_dir)?;
    let total = row.types.split_whitespace().count();
    Ok(match row.status.as_str() {
        "done" => {
            let output: Value = row
                .output
                .as_deref()
                .and_then(|o| serde_json::from_str(o).ok())
                .unwrap_or_else(|| json!([]));
            Status::Done(json!({
                "transactionTime": res::instant(row.created_at),
                "request": row.request,
                "requiresAccessToken": true,
                "output": output,
                "error": [],
            }))
        }
        "failed" => Status::Failed,
        _ => Status::InProgress(row.done_types, total),
    })
}

/// Cancels an export and deletes its files.
pub fn cancel(
    conn: &mut DbConnection,
    caller: &Caller,
    id: &str,
    now: DateTime<Utc>,
    data_dir: &Path,
) -> Outcome<()> {
    let row = visible(conn, caller, id, now.naive_utc(), data_dir)?;
    store::cancel_export(conn, &row.id)?;
    let _ = std::fs::remove_dir_all(folder(data_dir, &row.id));
    audit::record(
        conn,
        &AuditEntry::by(caller, "fhir.export.cancel", now.naive_utc())
            .clinic(&row.clinic_id)
            .subject(&row.id),
    )?;
    Ok(())
}

/// The file of one type of a completed export, audited as a read of the clinic's data.
pub fn file(
    conn: &mut DbConnection,
    caller: &Caller,
    id: &str,
    resource: ResourceType,
    now: DateTime<Utc>,
    data_dir: &Path,
) -> Outcome<PathBuf> {
    let row = visible(conn, caller, id, now.naive_utc(), data_dir)?;
    let path = folder(data_dir, &row.id).join(format!("{}.ndjson", resource.name()));
    if row.status != "done" || !path.exists() {
        return Err(Refusal::not_found("file").into());
    }
    audit::record(
        conn,
        &AuditEntry::by(caller, "fhir.export.download", now.naive_utc())
            .clinic(&row.clinic_id)
            .subject(&row.id),
    )?;
    Ok(path)
}

/// Invalidates every export of `clinic_id` not yet finished with or expired, in the caller's
/// transaction (a patient of the clinic is being erased, and those exports hold them): polling
/// them answers 404 `export_invalidated`, a job still writing stops, and housekeeping deletes
/// their files ([`sweep`], also run right after the erasure). Returns how many.
pub fn invalidate_clinic_exports(conn: &mut DbConnection, clinic_id: &str) -> QueryResult<usize> {
    store::invalidate_clinic_exports(conn, clinic_id)
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Folders deleted (expired, failed, cancelled or invalidated exports, and folders no export
    /// row accounts for).
    pub folders: usize,
    /// Export rows deleted ([`ROW_RETENTION_DAYS`] after they stopped being downloadable).
    pub rows: usize,
}

/// Housekeeping of export files at `now`: deletes the folder of every export that can no longer
/// be downloaded (expired, failed, cancelled, invalidated) and every folder under `exports/`
/// that no queued, running or downloadable export owns; then deletes rows that stopped being
/// downloadable more than [`ROW_RETENTION_DAYS`] ago.
pub async fn sweep(app: &App, now: DateTime<Utc>) -> anyhow::Result<Swept> {
    let now = now.naive_utc();
    let root = app.config.data_dir.join("exports");
    let mut swept = Swept::default();
    let names: Vec<String> = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    if !names.is_empty() {
        let lookup = names.clone();
        let live: std::collections::HashSet<String> = app
            .db
            .run(move |conn| store::live_exports_among(conn, &lookup, now))
            .await?
            .into_iter()
            .collect();
        for name in names.iter().filter(|n| !live.contains(*n)) {
            let path = root.join(name);
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removed {
                Ok(()) => swept.folders += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let before = now - TimeDelta::days(ROW_RETENTION_DAYS);
    swept.rows = app
        .db
        .write(move |conn| store::delete_exports_finished_before(conn, before))
        .await?;
    Ok(swept)
}

/// The payload of a bulk export job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BulkExportPayload {
    /// The export to write.
    pub export_id: String,
}

/// The `fhir.bulk_export` job.
#[derive(Debug, Clone, Copy)]
pub struct BulkExport;

impl crate::jobs::JobKind for BulkExport {
    const KIND: &'static str = JOB;
    type Payload = BulkExportPayload;
}

#[async_trait::async_trait]
impl crate::jobs::Job<App> for BulkExport {
    async fn run(
        &self,
        app: &App,
        _job: &Claimed,
        _worker: &str,
        payload: BulkExportPayload,
    ) -> JobResult {
        run(app, payload.export_id).await
    }
}

/// The job: writes every type's file a page at a time, then the manifest. Idempotent: a retried
/// job rewrites the files from the start.
async fn run(app: &App, id: String) -> JobResult {
    match write_export(app, &id).await {
        Ok(()) => JobResult::Done,
        Err(error) => {
            let reason = format!("{error:#}");
            // What was written before the failure goes now; nobody can download it.
            let _ = std::fs::remove_dir_all(folder(&app.config.data_dir, &id));
            let failed = id.clone();
            let _ = app
                .db
                .run(move |conn| store::fail_export(conn, &failed))
                .await;
            JobResult::Dead(reason)
        }
    }
}

async fn current(app: &App, id: &str) -> anyhow::Result<Option<ExportRow>> {
    let id = id.to_owned();
    Ok(app
        .db
        .run(move |conn| store::find_export(conn, &id))
        .await?)
}

async fn write_export(app: &App, id: &str) -> anyhow::Result<()> {
    let Some(row) = current(app, id).await? else {
        return Ok(());
    };
    if matches!(row.status.as_str(), "cancelled" | "done") {
        return Ok(());
    }
    let dir = folder(&app.config.data_dir, id);
    crate::private_files::create_dir(&dir)?;
    let types: Vec<ResourceType> = row
        .types
        .split_whitespace()
        .filter_map(ResourceType::parse)
        .collect();
    let mut output = Vec::new();
    for (done, resource) in types.iter().enumerate() {
        let status = current(app, id).await?.map(|r| r.status);
        if status.as_deref() != Some("queued") && status.as_deref() != Some("running") {
            // Cancelled meanwhile: its files are gone already.
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(());
        }
        let progress = (id.to_owned(), done as i32);
        app.db
            // Never over a cancel that landed since the check above.
            .run(move |conn| store::export_progress(conn, &progress.0, progress.1))
            .await?;
        let path = dir.join(format!("{}.ndjson", resource.name()));
        let count = write_type(app, &row, *resource, &path).await?;
        if count > 0 {
            output.push(json!({
                "type": resource.name(),
                "url": format!("{}/fhir/bulk/{}/{}.ndjson", row.base_url, row.id, resource.name()),
                "count": count,
            }));
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
    let now = app.now().naive_utc().trunc_subsecs(6);
    let finished = (
        id.to_owned(),
        Value::Array(output).to_string(),
        types.len() as i32,
    );
    let updated = app
        .db
        .run(move |conn| {
            store::finish_export(
                conn,
                &finished.0,
                finished.2,
                &finished.1,
                now,
                now + FILES_LIVE,
            )
        })
        .await?;
    if updated == 0 {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Where a page of one type starts (inclusive), and how many rows there were.
#[derive(Debug, Clone)]
enum Position {
    Start,
    Time(NaiveDateTime, String),
    Id(String),
    End,
}

/// Writes every resource of one type, one page per hand-off to the blocking pool; returns how
/// many were written.
async fn write_type(
    app: &App,
    export: &ExportRow,
    resource: ResourceType,
    path: &Path,
) -> anyhow::Result<u64> {
    let file = crate::private_files::create_file(path)?;
    let shared = std::sync::Arc::new(std::sync::Mutex::new(std::io::BufWriter::new(file)));
    let mut position = Position::Start;
    let mut count = 0u64;
    let catalogue = std::sync::Arc::new(app.catalogue.clone());
    loop {
        let (export, writer, catalogue) = (export.clone(), shared.clone(), catalogue.clone());
        let at = position.clone();
        let (written, next) = app
            .db
            .run(move |conn| {
                let mut writer = writer
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                write_page(conn, &export, resource, &catalogue, at, &mut *writer)
            })
            .await??;
        count += written;
        position = next;
        if matches!(position, Position::End) {
            break;
        }
    }
    let mut writer = shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    writer.flush()?;
    Ok(count)
}

fn line(out: &mut impl std::io::Write, resource: &Value) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, resource)?;
    out.write_all(b"\n")
}

fn write_page(
    conn: &mut DbConnection,
    export: &ExportRow,
    resource: ResourceType,
    catalogue: &Catalogue,
    at: Position,
    out: &mut impl std::io::Write,
) -> QueryResult<anyhow::Result<(u64, Position)>> {
    let systems = Systems::new(&export.base_url);
    let since = Range {
        from: export.since,
        to: None,
    };
    let mut written = 0u64;
    let mut io = |value: &Value| -> anyhow::Result<()> {
        line(out, value)?;
        written += 1;
        Ok(())
    };
    let result: anyhow::Result<Position> = (|| match resource {
        ResourceType::Organization => {
            if let (Position::Start, Some(row)) =
                (&at, crate::clinic::find_clinic(conn, &export.clinic_id)?)
            {
                io(&res::organization(&row))?;
            }
            Ok(Position::End)
        }
        ResourceType::Patient => {
            let from = match &at {
                Position::Id(id) => Some(id.as_str()),
                _ => None,
            };
            let mut rows =
                store::patients_of_clinic(conn, &export.clinic_id, since, from, PAGE + 1)?;
            let next = if rows.len() as i64 > PAGE {
                rows.pop().map_or(Position::End, |r| Position::Id(r.id))
            } else {
                Position::End
            };
            for row in &rows {
                io(&res::patient(
                    &row.id,
                    &export.clinic_id,
                    row.display_name.as_deref(),
                    row.disabled_at.is_none(),
                    row.updated_at,
                ))?;
            }
            Ok(next)
        }
        ResourceType::QuestionnaireResponse | ResourceType::Observation => {
            let query = CheckInQuery {
                received: since,
                from: match &at {
                    Position::Time(t, id) => Some((*t, id.clone())),
                    _ => None,
                },
                ..CheckInQuery::default()
            };
            let mut rows = store::check_ins_of_clinic(conn, &export.clinic_id, &query, PAGE + 1)?;
            let next = if rows.len() as i64 > PAGE {
                rows.pop()
                    .map_or(Position::End, |r| Position::Time(r.completed_at, r.id))
            } else {
                Position::End
            };
            for row in &rows {
                let Some(instrument) =
                    catalogue.find(&row.instrument, Some(row.instrument_version))
                else {
                    anyhow::bail!("check-in of an instrument version not in the catalogue");
                };
                if resource == ResourceType::QuestionnaireResponse {
                    io(&res::questionnaire_response(&systems, instrument, row))?;
                } else {
                    for observation in res::observations(&systems, instrument, row) {
                        io(&observation)?;
                    }
                }
            }
            Ok(next)
        }
        ResourceType::Flag | ResourceType::Task => {
            let from = match &at {
                Position::Time(t, id) => Some((*t, id.clone())),
                _ => None,
            };
            let mut rows = crate::escalation::changed_alerts_page(
                conn,
                &export.clinic_id,
                export.since,
                from.as_ref(),
                PAGE + 1,
            )?;
            let next = if rows.len() as i64 > PAGE {
                rows.pop()
                    .map_or(Position::End, |r| Position::Time(r.opened_at, r.id))
            } else {
                Position::End
            };
            for alert in &rows {
                if resource == ResourceType::Flag {
                    io(&res::flag(&systems, alert))?;
                } else {
                    io(&res::task(&systems, alert))?;
                }
            }
            Ok(next)
        }
        ResourceType::Questionnaire => Ok(Position::End),
    })();
    Ok(result.map(|next| (written, next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_default_to_everything_exportable_and_refuse_the_rest() {
        assert_eq!(parse_types(None).unwrap().len(), 6);
        assert_eq!(
            parse_types(Some("Patient,Observation,Patient")).unwrap(),
            [ResourceType::Patient, ResourceType::Observation]
        );
        assert!(parse_types(Some("Medication")).is_err());
        assert!(parse_types(Some("Questionnaire")).is_err());
        assert!(parse_types(Some(",")).is_err());
    }
}
