//! The escalation jobs: notify the current tier about an alert, and at each missed deadline climb
//! a tier. Each job's effects and its completion commit in one transaction, so a worker that dies
//! midway leaves the job to be run again whole, and a notification is never sent twice for the
//! same step (dedupe keys per alert and step).

use serde::Deserialize;

use crate::app::App;
use crate::db::DbConnection;
use crate::jobs::runner::JobResult;
use crate::jobs::store::{self as job_store, Claimed};
use crate::push::content::PushMessage;
use crate::push::store as push_store;

use super::store;

#[derive(Deserialize)]
struct Payload {
    alert_id: String,
    escalation: i32,
}

enum Step {
    Done,
    Missing,
}

async fn in_transaction(
    app: &App,
    job: &Claimed,
    worker: &str,
    step: impl FnOnce(&mut DbConnection, &Payload, chrono::NaiveDateTime) -> diesel::QueryResult<Step>
    + Send
    + 'static,
) -> JobResult {
    let Ok(payload) = serde_json::from_str::<Payload>(&job.payload) else {
        return JobResult::Dead("payload is not an escalation payload".into());
    };
    let (job_id, worker, now) = (job.id.clone(), worker.to_owned(), app.now().naive_utc());
    let result = app
        .db
        .write(move |conn| {
            let step = step(conn, &payload, now)?;
            job_store::complete(conn, &job_id, &worker, now)?;
            Ok(step)
        })
        .await;
    match result {
        Ok(Step::Done) => {
            app.jobs_enqueued();
            JobResult::Completed
        }
        Ok(Step::Missing) => JobResult::Dead("alert not found".into()),
        Err(e) => JobResult::retry(format!("database: {e}")),
    }
}

/// `alert.notify`: push to every active device of the current tier's staff (the next tier with
/// anyone in it, if the current one is empty).
pub async fn notify(app: &App, job: &Claimed, worker: &str) -> JobResult {
    in_transaction(app, job, worker, |conn, payload, now| {
        let Some(alert) = store::find(conn, &payload.alert_id)? else {
            return Ok(Step::Missing);
        };
        if alert.status != "open" {
            return Ok(Step::Done);
        }
        let policy = store::clinic_policy(conn, &alert.clinic_id)?;
        let first = policy.tier_index(payload.escalation.max(0) as usize);
        let mut reached = None;
        for (tier, step) in policy.tiers.iter().enumerate().skip(first) {
            let staff = store::audience(conn, &alert.clinic_id, step.audience)?;
            if staff.is_empty() {
                store::event(
                    conn,
                    &alert.id,
                    "tier_empty",
                    None,
                    &format!("tier {tier} has nobody"),
                    now,
                )?;
                continue;
            }
            reached = Some((tier, staff));
            break;
        }
        let Some((tier, staff)) = reached else {
            store::event(
                conn,
                &alert.id,
                "nobody_notified",
                None,
                "no staff to notify in any tier",
                now,
            )?;
            return Ok(Step::Done);
        };
        let mut devices = 0;
        for account in &staff {
            for device in push_store::active_devices(conn, account)? {
                push_store::notify_device(
                    conn,
                    &device,
                    |_| PushMessage::ClinicianAlert {
                        alert_id: alert.id.clone(),
                    },
                    now,
                )?;
                devices += 1;
            }
        }
        let hooks = super::webhooks::enqueue_for_alert(
            conn,
            &alert.clinic_id,
            &alert.id,
            if payload.escalation == 0 {
                "alert.opened"
            } else {
                "alert.escalated"
            },
            payload.escalation,
            now,
        )?;
        store::event(
            conn,
            &alert.id,
            "notified",
            None,
            &format!(
                "tier {tier}: {} staff, {devices} devices, {hooks} webhooks",
                staff.len()
            ),
            now,
        )?;
        Ok(Step::Done)
    })
    .await
}

/// `alert.deadline`: if the alert is still open, escalate it.
pub async fn deadline(app: &App, job: &Claimed, worker: &str) -> JobResult {
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(-1));
    let record = reached.clone();
    let result = in_transaction(app, job, worker, move |conn, payload, now| {
        let Some(alert) = store::find(conn, &payload.alert_id)? else {
            return Ok(Step::Missing);
        };
        if alert.status == "open"
            && let Some(tier) = store::escalate(conn, &alert, payload.escalation, now)?
        {
            record.store(tier, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(Step::Done)
    })
    .await;
    let tier = reached.load(std::sync::atomic::Ordering::Relaxed);
    if result == JobResult::Completed && tier >= 0 {
        app.metrics.escalated(tier);
    }
    result
}
