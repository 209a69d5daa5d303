//! FHIR read and search as use cases over the caller's connection: clinic staff only, every
//! result scoped to the caller's clinic (anything else is "not found"), every read of patient
//! data audited like the JSON API's.

use chrono::NaiveDateTime;
use serde_json::Value;

use crate::audit::{self, AuditEntry};
use crate::auth::extract::Caller;
use crate::check_in::CheckInRow;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};
use crate::fhir::resources::{self as res, Systems};
use crate::fhir::search::{ResourceType, Search};
use crate::fhir::store::{self, CheckInQuery};
use crate::http::pagination::parse_time_key;
use crate::instrument::catalogue::{Catalogue, Instrument};
use crate::patient::SelfAccess;

/// What every FHIR use case needs besides the connection and the caller.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The installation's code systems and URLs.
    pub systems: &'a Systems,
    /// The instrument definitions.
    pub catalogue: &'a Catalogue,
    /// Now, for audit rows.
    pub now: NaiveDateTime,
}

/// One page of a search.
#[derive(Debug)]
pub struct Found {
    /// The resources of this page.
    pub resources: Vec<Value>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<String>,
}

fn not_found(resource: ResourceType) -> Refusal {
    Refusal::not_found(resource.name())
}

fn bad_cursor() -> Refusal {
    Refusal::bad_request(
        "invalid_cursor",
        "_cursor is not one returned by this server.",
    )
}

fn audit_read(
    conn: &mut DbConnection,
    caller: &Caller,
    ctx: Context<'_>,
    action: &'static str,
    clinic_id: &str,
    patient_id: Option<&str>,
    subject_id: Option<&str>,
) -> diesel::QueryResult<()> {
    let mut entry = AuditEntry::by(caller, action, ctx.now).clinic(clinic_id);
    if let Some(patient) = patient_id {
        entry = entry.patient(patient);
    }
    if let Some(subject) = subject_id {
        entry = entry.subject(subject);
    }
    audit::record(conn, &entry)
}

fn instrument_of<'c>(ctx: Context<'c>, row: &CheckInRow) -> Result<&'c Instrument, Refusal> {
    ctx.catalogue
        .find(&row.instrument, Some(row.instrument_version))
        .ok_or_else(|| Refusal::broken(&"check-in of an instrument version not in the catalogue"))
}

/// Reads one resource by id.
pub fn read(
    conn: &mut DbConnection,
    caller: &Caller,
    ctx: Context<'_>,
    resource: ResourceType,
    id: &str,
) -> Outcome<Value> {
    let clinic = caller.own_clinic()?.as_str().to_owned();
    let missing = || Err(not_found(resource).into());
    match resource {
        ResourceType::Questionnaire => {
            let found = res::parse_questionnaire_id(id)
                .and_then(|(key, version)| ctx.catalogue.find(&key, Some(version)));
            match found {
                Some(instrument) => Ok(res::questionnaire(ctx.systems, instrument)),
                None => missing(),
            }
        }
        ResourceType::Organization => {
            if id != clinic {
                return missing();
            }
            let Some(row) = crate::clinic::find_clinic(conn, &clinic)? else {
                return missing();
            };
            audit_read(
                conn,
                caller,
                ctx,
                "fhir.organization.read",
                &clinic,
                None,
                None,
            )?;
            Ok(res::organization(&row))
        }
        ResourceType::Patient => {
            let Some(row) = store::patient_of_clinic(conn, &clinic, id)? else {
                return missing();
            };
            audit_read(
                conn,
                caller,
                ctx,
                "fhir.patient.read",
                &clinic,
                Some(&row.id),
                None,
            )?;
            Ok(patient_resource(&row, &clinic))
        }
        ResourceType::QuestionnaireResponse | ResourceType::Observation => {
            let (check_in_id, kind) = if resource == ResourceType::Observation {
                match res::parse_observation_id(id) {
                    Some((check_in, kind)) => (check_in, Some(kind)),
                    None => return missing(),
                }
            } else {
                (id.to_owned(), None)
            };
            let Some(row) = crate::check_in::find_check_in(conn, &check_in_id)? else {
                return missing();
            };
            if row.clinic_id != clinic {
                return missing();
            }
            let instrument = instrument_of(ctx, &row)?;
            let found = match kind {
                None => Some(res::questionnaire_response(ctx.systems, instrument, &row)),
                Some(kind) => res::observations(ctx.systems, instrument, &row)
                    .into_iter()
                    .find(|o| res::kind_of(o) == Some(kind)),
            };
            let Some(found) = found else {
                return missing();
            };
            let action = if kind.is_some() {
                "fhir.observation.read"
            } else {
                "fhir.questionnaire_response.read"
            };
            audit_read(
                conn,
                caller,
                ctx,
                action,
                &clinic,
                Some(&row.patient_id),
                Some(&row.id),
            )?;
            Ok(found)
        }
        ResourceType::Flag | ResourceType::Task => {
            let Some(alert) = crate::escalation::find_alert(conn, id)? else {
                return missing();
            };
            if alert.clinic_id != clinic {
                return missing();
            }
            let (action, out) = if resource == ResourceType::Flag {
                ("fhir.flag.read", res::flag(ctx.systems, &alert))
            } else {
                ("fhir.task.read", res::task(ctx.systems, &alert))
            };
            audit_read(
                conn,
                caller,
                ctx,
                action,
                &clinic,
                Some(&alert.patient_id),
                Some(&alert.id),
            )?;
            Ok(out)
        }
    }
}

fn patient_resource(row: &store::PatientRow, clinic: &str) -> Value {
    res::patient(
        &row.id,
        row.clinic_id.as_deref().unwrap_or(clinic),
        row.display_name.as_deref(),
        row.disabled_at.is_none(),
        row.updated_at,
    )
}

fn time_cursor(at: NaiveDateTime, id: &str) -> String {
    crate::http::pagination::time_key(at.and_utc(), id)
}

/// Runs a search.
pub fn search(
    conn: &mut DbConnection,
    caller: &Caller,
    ctx: Context<'_>,
    resource: ResourceType,
    search: &Search,
) -> Outcome<Found> {
    let clinic = caller.own_clinic()?.as_str().to_owned();
    // A patient of another clinic (or none) is "not found", as everywhere else.
    let patient = match &search.patient {
        Some(raw) => {
            let patient = crate::patient::resolve(conn, caller, raw, SelfAccess::StaffOnly)?;
            Some(patient.id.as_str().to_owned())
        }
        None => None,
    };
    let count = search.count;
    let found = match resource {
        ResourceType::Questionnaire => {
            let start: usize = match search.cursor.as_deref().map(str::parse) {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => return Err(bad_cursor().into()),
            };
            let all: Vec<&Instrument> = ctx.catalogue.all().collect();
            let end = (start + count as usize).min(all.len());
            return Ok(Found {
                resources: all
                    .get(start..end)
                    .unwrap_or_default()
                    .iter()
                    .map(|i| res::questionnaire(ctx.systems, i))
                    .collect(),
                next_cursor: (end < all.len()).then(|| end.to_string()),
            });
        }
        ResourceType::Organization => {
            let rows = match (&search.cursor, crate::clinic::find_clinic(conn, &clinic)?) {
                (None, Some(row)) => vec![res::organization(&row)],
                _ => Vec::new(),
            };
            Found {
                resources: rows,
                next_cursor: None,
            }
        }
        ResourceType::Patient => {
            let mut rows = store::patients_of_clinic(
                conn,
                &clinic,
                search.last_updated,
                search.cursor.as_deref(),
                count + 1,
            )?;
            let next_cursor = (rows.len() as i64 > count).then(|| rows.remove(count as usize).id);
            Found {
                resources: rows.iter().map(|r| patient_resource(r, &clinic)).collect(),
                next_cursor,
            }
        }
        ResourceType::QuestionnaireResponse => {
            if search.status.as_deref().is_some_and(|s| s != "completed") {
                return found_and_audit(
                    conn,
                    caller,
                    ctx,
                    resource,
                    &clinic,
                    patient,
                    Found::empty(),
                );
            }
            let from = match search.cursor.as_deref().map(parse_time_key) {
                None => None,
                Some(Some(key)) => Some(key),
                Some(None) => return Err(bad_cursor().into()),
            };
            let query = CheckInQuery {
                patient_id: patient.clone(),
                instruments: None,
                completed: search.date,
                received: search.last_updated,
                from,
            };
            let mut rows = store::check_ins_of_clinic(conn, &clinic, &query, count + 1)?;
            let next_cursor = (rows.len() as i64 > count).then(|| {
                let next = rows.remove(count as usize);
                time_cursor(next.completed_at, &next.id)
            });
            let mut resources = Vec::with_capacity(rows.len());
            for row in &rows {
                let instrument = instrument_of(ctx, row)?;
                resources.push(res::questionnaire_response(ctx.systems, instrument, row));
            }
            Found {
                resources,
                next_cursor,
            }
        }
        ResourceType::Observation => observation_page(conn, &clinic, ctx, patient.clone(), search)?,
        ResourceType::Flag | ResourceType::Task => {
            let statuses = match search.status.as_deref() {
                None => None,
                Some(status) => {
                    let mapped = if resource == ResourceType::Flag {
                        res::alert_statuses_of_flag_status(status)
                    } else {
                        res::alert_statuses_of_task_status(status)
                    };
                    match mapped {
                        Some(mapped) => Some(mapped),
                        None => {
                            return found_and_audit(
                                conn,
                                caller,
                                ctx,
                                resource,
                                &clinic,
                                patient,
                                Found::empty(),
                            );
                        }
                    }
                }
            };
            let from = match search.cursor.as_deref().map(parse_time_key) {
                None => None,
                Some(Some(key)) => Some(key),
                Some(None) => return Err(bad_cursor().into()),
            };
            let mut rows = store::alerts_of_clinic(
                conn,
                &clinic,
                patient.as_deref(),
                statuses,
                from.as_ref(),
                count + 1,
            )?;
            let next_cursor = (rows.len() as i64 > count).then(|| {
                let next = rows.remove(count as usize);
                time_cursor(next.opened_at, &next.id)
            });
            Found {
                resources: rows
                    .iter()
                    .map(|alert| {
                        if resource == ResourceType::Flag {
                            res::flag(ctx.systems, alert)
                        } else {
                            res::task(ctx.systems, alert)
                        }
                    })
                    .collect(),
                next_cursor,
            }
        }
    };
    found_and_audit(conn, caller, ctx, resource, &clinic, patient, found)
}

impl Found {
    fn empty() -> Self {
        Found {
            resources: Vec::new(),
            next_cursor: None,
        }
    }
}

fn found_and_audit(
    conn: &mut DbConnection,
    caller: &Caller,
    ctx: Context<'_>,
    resource: ResourceType,
    clinic: &str,
    patient: Option<String>,
    found: Found,
) -> Outcome<Found> {
    let action = match resource {
        ResourceType::Questionnaire => return Ok(found),
        ResourceType::Organization => "fhir.organization.search",
        ResourceType::Patient => "fhir.patient.search",
        ResourceType::QuestionnaireResponse => "fhir.questionnaire_response.search",
        ResourceType::Observation => "fhir.observation.search",
        ResourceType::Flag => "fhir.flag.search",
        ResourceType::Task => "fhir.task.search",
    };
    audit_read(conn, caller, ctx, action, clinic, patient.as_deref(), None)?;
    Ok(found)
}

/// Observations page over check-ins: the cursor is the position of the first Observation of the
/// next page, `micros|check-in id|index among that check-in's matching Observations`.
fn observation_page(
    conn: &mut DbConnection,
    clinic: &str,
    ctx: Context<'_>,
    patient: Option<String>,
    search: &Search,
) -> Outcome<Found> {
    let count = search.count as usize;
    if search.status.as_deref().is_some_and(|s| s != "final") {
        return Ok(Found::empty());
    }
    let (mut from, skip) = match search.cursor.as_deref() {
        None => (None, 0),
        Some(raw) => {
            let parsed = raw
                .rsplit_once('|')
                .and_then(|(key, skip)| Some((parse_time_key(key)?, skip.parse::<usize>().ok()?)));
            match parsed {
                Some((key, skip)) => (Some(key), skip),
                None => return Err(bad_cursor().into()),
            }
        }
    };
    let instruments = search.code.as_ref().map(|token| {
        res::instruments_for_code(ctx.systems, token.system.as_deref(), &token.code)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    if instruments.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Found::empty());
    }
    let cursor_row = from.as_ref().map(|(_, id)| id.clone());
    let batch = (count as i64 + 1).max(16);
    let mut out: Vec<Value> = Vec::with_capacity(count + 1);
    let mut next_cursor = None;
    let mut last_seen: Option<String> = None;
    'pages: loop {
        let query = CheckInQuery {
            patient_id: patient.clone(),
            instruments: instruments.clone(),
            completed: search.date,
            received: search.last_updated,
            from: from.clone(),
        };
        let rows = store::check_ins_of_clinic(conn, clinic, &query, batch)?;
        let exhausted = (rows.len() as i64) < batch;
        for row in &rows {
            if last_seen.as_deref() == Some(row.id.as_str()) {
                continue;
            }
            let instrument = instrument_of(ctx, row)?;
            let matching = res::observations(ctx.systems, instrument, row)
                .into_iter()
                .filter(|o| match (&search.code, res::kind_of(o)) {
                    (None, _) => true,
                    (Some(token), Some(kind)) => res::observation_code_matches(
                        ctx.systems,
                        kind,
                        &row.instrument,
                        token.system.as_deref(),
                        &token.code,
                    ),
                    (Some(_), None) => false,
                });
            let first = if cursor_row.as_deref() == Some(row.id.as_str()) {
                skip
            } else {
                0
            };
            for (index, observation) in matching.enumerate().skip(first) {
                if out.len() == count {
                    next_cursor = Some(format!(
                        "{}|{index}",
                        time_cursor(row.completed_at, &row.id)
                    ));
                    break 'pages;
                }
                out.push(observation);
            }
        }
        match rows.last() {
            Some(last) if !exhausted => {
                from = Some((last.completed_at, last.id.clone()));
                last_seen = Some(last.id.clone());
            }
            _ => break,
        }
    }
    Ok(Found {
        resources: out,
        next_cursor,
    })
}
