//! The prompt passes run by the workers: expire what was missed, send what is due, remind once,
//! and plan ahead (a prompt's lifecycle; a patient's data lifecycle is `crate::lifecycle`). Each
//! step takes a batch of rows in one transaction and makes its state
//! change together with the push jobs it causes, so a prompt is sent (or reminded) once whatever
//! the number of workers: PostgreSQL workers skip rows another holds, SQLite runs one writer.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use diesel::QueryResult;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::db::DbConnection;
use crate::jobs::runner::JobResult;
use crate::jobs::store::Claimed;
use crate::push::content::PushMessage;
use crate::push::{self as push_store, DeviceRow};

use super::local_time::{self, DailySpan};
use super::store::{self, Due, PromptRow, status};

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Prompts expired (missed).
    pub expired: usize,
    /// Prompts sent.
    pub sent: usize,
    /// Prompts reminded.
    pub reminded: usize,
    /// Prompts held back by quiet hours.
    pub postponed: usize,
    /// Patients planned ahead.
    pub planned: usize,
}

/// One pass over everything that is due at the app's current time: expiry first (so nothing
/// expired is sent), then sending, reminders and planning ahead, batch after batch until each
/// step runs dry.
pub async fn tick(app: &App) -> anyhow::Result<TickReport> {
    let config = app.config.prompts.clone();
    let batch = config.batch;
    let mut report = TickReport::default();
    loop {
        let now = app.now();
        let n = app
            .db
            .write(move |conn| expire_due(conn, now, batch))
            .await?;
        report.expired += n;
        if n < batch as usize {
            break;
        }
    }
    for step in [Step::Send, Step::Remind] {
        loop {
            let now = app.now();
            let sent = app
                .db
                .write(move |conn| send_due(conn, now, batch, step))
                .await?;
            match step {
                Step::Send => report.sent += sent.done,
                Step::Remind => report.reminded += sent.done,
            }
            report.postponed += sent.postponed;
            if sent.done > 0 {
                app.jobs_enqueued();
            }
            if sent.taken < batch as usize {
                break;
            }
        }
    }
    // Planning is computed here and inserted there: on PostgreSQL two batches go side by side
    // (each skips the schedules the other holds), so one batch's planning overlaps the other's
    // insert. SQLite writes one at a time anyway.
    let (first, second) = if app.db.backend() == crate::db::Backend::Postgres {
        tokio::join!(plan_lane(app, batch), plan_lane(app, batch))
    } else {
        (plan_lane(app, batch).await, Ok(0))
    };
    report.planned += first? + second?;
    Ok(report)
}

/// Plans ahead batch after batch until a batch comes back short; returns how many patients.
async fn plan_lane(app: &App, batch: i64) -> anyhow::Result<usize> {
    let horizon = app.config.prompts.horizon;
    let mut planned = 0;
    loop {
        let now = app.now();
        let n = app
            .db
            .write(move |conn| store::plan_ahead(conn, now, horizon, batch))
            .await?;
        planned += n;
        if n < batch as usize {
            return Ok(planned);
        }
    }
}

/// Expires open prompts whose window closed, and runs the missed-check-in rule for their
/// patients. Returns how many expired.
pub fn expire_due(conn: &mut DbConnection, now: DateTime<Utc>, batch: i64) -> QueryResult<usize> {
    let stamp = now.naive_utc();
    let rows = store::take_expired(conn, stamp, batch)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&String> = rows.iter().map(|(id, _, _)| id).collect();
    store::close_prompts(conn, &ids, status::EXPIRED, stamp)?;
    let patients: BTreeSet<(&String, &String)> = rows.iter().map(|(_, p, c)| (p, c)).collect();
    for (patient, clinic) in patients {
        crate::escalation::intake::on_prompts_expired(conn, patient, clinic, now)?;
    }
    Ok(rows.len())
}

/// Which push a sending pass makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The first push of a scheduled prompt.
    Send,
    /// The one reminder of a sent prompt.
    Remind,
}

impl Step {
    /// The push of the prompt's stored lifecycle this step makes.
    fn due(self) -> Due {
        match self {
            Step::Send => Due::Send,
            Step::Remind => Due::Remind,
        }
    }
}

/// What a sending pass did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    /// Rows taken.
    pub taken: usize,
    /// Rows pushed.
    pub done: usize,
    /// Rows held back by quiet hours.
    pub postponed: usize,
}

/// Sends due prompts (or due reminders): each moves on one state and gets one notification per
/// active device of its patient, in this transaction. One inside the patient's quiet hours (a
/// worker that was down, say) waits for their end; a reminder that would then come after the
/// expiry is dropped.
pub fn send_due(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    batch: i64,
    step: Step,
) -> QueryResult<Sent> {
    let stamp = now.naive_utc();
    let rows = store::take_due(conn, stamp, batch, step.due())?;
    let mut out = Sent {
        taken: rows.len(),
        ..Sent::default()
    };
    if rows.is_empty() {
        return Ok(out);
    }
    // Consent gates prompting: a prompt of a patient who has not accepted their clinic's consent
    // document in force (a new version since, or a withdrawal) is withdrawn, not sent.
    let pairs: Vec<(&str, &str)> = rows
        .iter()
        .map(|p| (p.patient_id.as_str(), p.clinic_id.as_str()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let gated = crate::lifecycle::unconsented(conn, &pairs)?;
    let rows: Vec<PromptRow> = if gated.is_empty() {
        rows
    } else {
        let (withheld, rows): (Vec<PromptRow>, Vec<PromptRow>) = rows
            .into_iter()
            .partition(|p| gated.contains(&p.patient_id));
        let ids: Vec<&String> = withheld.iter().map(|p| &p.id).collect();
        store::close_prompts(conn, &ids, status::CANCELLED, stamp)?;
        rows
    };
    let patients: Vec<String> = rows
        .iter()
        .map(|p| p.patient_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let quiet = quiet_hours(conn, &patients)?;
    let mut devices: HashMap<String, Vec<DeviceRow>> = HashMap::new();
    for device in push_store::active_devices_of(conn, &patients)? {
        devices
            .entry(device.account_id.clone())
            .or_default()
            .push(device);
    }
    let mut pushed = Vec::new();
    let mut messages = Vec::new();
    for prompt in rows {
        let expires = crate::time::utc(prompt.expires_at);
        if let Some((tz, span)) = quiet.get(&prompt.patient_id)
            && local_time::is_quiet(*tz, now, *span)
        {
            let later = local_time::next_allowed(*tz, now, *span);
            postpone(conn, &prompt, step, later, expires, stamp)?;
            out.postponed += 1;
            continue;
        }
        for device in devices.get(&prompt.patient_id).into_iter().flatten() {
            let prompt_id = prompt.id.clone();
            let message = match step {
                Step::Send => PushMessage::CheckInPrompt { prompt_id },
                Step::Remind => PushMessage::CheckInReminder { prompt_id },
            };
            messages.push((device, message));
        }
        pushed.push(prompt.id);
    }
    push_store::notify_devices(conn, messages, stamp)?;
    if !pushed.is_empty() {
        store::mark_pushed(conn, &pushed, step.due(), stamp)?;
    }
    out.done = pushed.len();
    Ok(out)
}

fn postpone(
    conn: &mut DbConnection,
    prompt: &PromptRow,
    step: Step,
    later: DateTime<Utc>,
    expires: DateTime<Utc>,
    stamp: NaiveDateTime,
) -> QueryResult<()> {
    match step {
        // A prompt not sent before it expires is left to expire (and counts as missed).
        Step::Send => store::postpone_send(conn, &prompt.id, later.min(expires).naive_utc(), stamp),
        Step::Remind => store::postpone_reminder(
            conn,
            &prompt.id,
            (later < expires).then(|| later.naive_utc()),
            stamp,
        ),
    }
}

fn quiet_hours(
    conn: &mut DbConnection,
    patients: &[String],
) -> QueryResult<HashMap<String, (Tz, DailySpan)>> {
    let rows = store::schedules_with_zones(conn, patients)?;
    Ok(rows
        .into_iter()
        .map(|(schedule, zone)| {
            let tz = zone.parse::<Tz>().unwrap_or(chrono_tz::UTC);
            (schedule.patient_id.clone(), (tz, schedule.quiet()))
        })
        .collect())
}

/// The `prompt.replan_clinic` payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplanClinicPayload {
    /// The clinic whose plan changed.
    pub clinic_id: String,
}

/// The `prompt.replan_clinic` job.
#[derive(Debug, Clone, Copy)]
pub struct ReplanClinic;

impl crate::jobs::JobKind for ReplanClinic {
    const KIND: &'static str = super::kinds::REPLAN_CLINIC;
    type Payload = ReplanClinicPayload;
}

#[async_trait::async_trait]
impl crate::jobs::Job<App> for ReplanClinic {
    async fn run(
        &self,
        app: &App,
        job: &Claimed,
        _worker: &str,
        payload: ReplanClinicPayload,
    ) -> JobResult {
        replan_clinic(app, job, payload).await
    }
}

/// `prompt.replan_clinic`: regenerate the prompts of every patient who follows the clinic's
/// plan, a batch per transaction.
pub async fn replan_clinic(app: &App, _job: &Claimed, payload: ReplanClinicPayload) -> JobResult {
    let horizon = app.config.prompts.horizon;
    let mut after = String::new();
    loop {
        let (clinic, start, now) = (payload.clinic_id.clone(), after.clone(), app.now());
        let result = app
            .db
            .write(move |conn| {
                let patients = store::clinic_plan_followers(conn, &clinic, &start, 200)?;
                for patient in &patients {
                    store::replan(conn, patient, now, horizon)?;
                }
                Ok(patients.last().cloned())
            })
            .await;
        match result {
            Ok(Some(last)) => after = last,
            Ok(None) => return JobResult::Done,
            Err(e) => return JobResult::retry(format!("database: {e}")),
        }
    }
}
