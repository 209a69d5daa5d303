//! The `push.deliver` job: send one notification to one device, record the attempt, and act on
//! the outcome (deactivate a dead token at once, a device after repeated malformed-request
//! answers, retry what the provider asks to retry).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::jobs::Job;
use crate::jobs::runner::JobResult;
use crate::jobs::store::Claimed;

use super::content::PushMessage;
use super::gateway::{Outcome, Target};
use super::store::{self, AttemptRecord};

/// Malformed-request answers in a row after which a device is deactivated.
pub const INVALID_ARGUMENT_LIMIT: i32 = 3;

/// What became of one attempt to push an alert to a device: written by the delivery, in its own
/// transaction, for the safety path to judge whether the alert reached someone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertPushOutcome {
    /// The notification.
    pub notification_id: String,
    /// The attempt's outcome name (`delivered`, `retry_later`, `token_dead`, `rejected`,
    /// `not_sent`, `device_inactive`).
    pub outcome: String,
    /// Whether no further attempt will be made.
    pub settled: bool,
    /// The provider's reason, if any.
    pub detail: Option<String>,
}

/// Enqueues the [`AlertPushOutcome`] of an attempt on `conn` (inside the attempt's transaction).
fn enqueue_alert_outcome(
    conn: &mut crate::db::DbConnection,
    outcome: &AlertPushOutcome,
    attempt: i32,
    now: chrono::NaiveDateTime,
) -> diesel::QueryResult<bool> {
    crate::jobs::enqueue(
        conn,
        &crate::jobs::NewJob {
            kind: super::kinds::ALERT_PUSH_OUTCOME,
            payload: serde_json::to_value(outcome).unwrap_or_default(),
            dedupe_key: Some(format!(
                "{}:{}:{attempt}",
                super::kinds::ALERT_PUSH_OUTCOME,
                outcome.notification_id
            )),
            run_at: now,
            max_attempts: 50,
            priority: crate::jobs::store::Priority::Safety,
        },
        now,
    )
}

pub use super::kinds::{DeliverPush, DeliverPushPayload as Payload};

#[async_trait::async_trait]
impl Job<App> for DeliverPush {
    async fn run(&self, app: &App, job: &Claimed, worker: &str, payload: Payload) -> JobResult {
        run(app, job, worker, payload).await
    }
}

/// Runs one delivery attempt for `worker`. A settled attempt is recorded and the job marked done
/// in one transaction.
pub async fn run(app: &App, job: &Claimed, worker: &str, payload: Payload) -> JobResult {
    let found = match app
        .push
        .settler
        .find(&app.db, payload.notification_id.clone())
        .await
    {
        Ok(found) => found,
        Err(reason) => return JobResult::retry(reason),
    };
    let Some((notification, device)) = found else {
        // The notification went with an erased account: nothing to send.
        tracing::info!(job_id = %job.id, "notification no longer exists; job stands down");
        return JobResult::Done;
    };
    if notification.status != "pending" {
        // Already settled by an earlier run (a redelivered job): nothing to send twice.
        return JobResult::Done;
    }
    let Some(message) = PushMessage::from_stored(
        &notification.kind,
        notification.ref_id.as_deref().unwrap_or_default(),
    ) else {
        return JobResult::Dead(format!("unknown notification kind {}", notification.kind));
    };
    if !device.active {
        let record = record(
            &notification.id,
            job.attempts,
            app,
            "device_inactive",
            None,
            None,
            0,
        );
        let alert = message.is_about_an_alert().then(|| AlertPushOutcome {
            notification_id: notification.id.clone(),
            outcome: "device_inactive".into(),
            settled: true,
            detail: None,
        });
        let (attempt, now) = (job.attempts, app.now().naive_utc());
        let result = app
            .db
            .write(move |conn| {
                store::record_attempt(conn, &record, "failed")?;
                if let Some(outcome) = &alert {
                    enqueue_alert_outcome(conn, outcome, attempt, now)?;
                }
                Ok(())
            })
            .await;
        app.jobs_enqueued();
        return match result {
            Ok(()) => JobResult::Done,
            Err(e) => JobResult::retry(format!("database: {e}")),
        };
    }
    let (gateway, gateway_name) = match device.platform.as_str() {
        "ios" => (app.push.apns.clone(), "apns"),
        "web" => (app.push.web.clone(), "web"),
        _ => (app.push.fcm.clone(), "fcm"),
    };
    let target = Target {
        notification_id: notification.id.clone(),
        token: device.token.clone(),
        web: device.web_keys(),
    };
    let started = Instant::now();
    let attempt =
        match tokio::time::timeout(app.push.timeout, gateway.send(&target, &message)).await {
            Ok(attempt) => attempt,
            Err(_) => super::gateway::Attempt {
                outcome: Outcome::RetryLater {
                    reason: "timed out".into(),
                    after: None,
                },
                status: None,
            },
        };
    let latency_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    app.metrics
        .push_outcome(gateway_name, attempt.outcome.name());
    let last_attempt = job.attempts >= job.max_attempts;
    let (status, result) = match &attempt.outcome {
        Outcome::Delivered => ("delivered", JobResult::Completed),
        Outcome::TokenDead { .. } => ("token_dead", JobResult::Completed),
        Outcome::Rejected { .. } => ("rejected", JobResult::Completed),
        Outcome::NotSent { .. } => ("failed", JobResult::Completed),
        Outcome::RetryLater { reason, .. } if last_attempt => (
            "failed",
            JobResult::Dead(format!("gave up after {} attempts: {reason}", job.attempts)),
        ),
        Outcome::RetryLater { reason, after } => (
            "pending",
            JobResult::Retry {
                reason: reason.clone(),
                after: *after,
            },
        ),
    };
    let reason = match &attempt.outcome {
        Outcome::Delivered => None,
        Outcome::TokenDead { reason }
        | Outcome::RetryLater { reason, .. }
        | Outcome::NotSent { reason }
        | Outcome::Rejected { reason, .. } => Some(reason.clone()),
    };
    tracing::info!(
        notification_id = %notification.id,
        attempt = job.attempts,
        outcome = attempt.outcome.name(),
        latency_ms,
        "push attempt"
    );
    let alert_outcome = message.is_about_an_alert().then(|| AlertPushOutcome {
        notification_id: notification.id.clone(),
        outcome: attempt.outcome.name().to_owned(),
        settled: status != "pending",
        detail: reason.clone(),
    });
    let record = record(
        &notification.id,
        job.attempts,
        app,
        attempt.outcome.name(),
        attempt.status.map(i32::from),
        reason,
        latency_ms,
    );
    let outcome = attempt.outcome.clone();
    let attempt_number = job.attempts;
    let alert_outcome_enqueued = alert_outcome.is_some();
    let device_id = device.id.clone();
    let had_invalid_arguments = device.invalid_argument_count > 0;
    let settled = result == JobResult::Completed;
    let (job_id, worker, now) = (job.id.clone(), worker.to_owned(), app.now().naive_utc());
    // The common case, delivered with nothing to adjust on the device: settled with the other
    // deliveries that finished meanwhile (`settle.rs`). Alert pushes are written one by one,
    // with their outcome for the safety path in the same transaction.
    if settled
        && matches!(attempt.outcome, Outcome::Delivered)
        && !had_invalid_arguments
        && alert_outcome.is_none()
    {
        let delivered = store::Delivered {
            record,
            job_id,
            worker,
            now,
        };
        return match app.push.settler.settle(&app.db, delivered).await {
            Ok(_) => result,
            Err(reason) => JobResult::retry(reason),
        };
    }
    let saved = app
        .db
        .write(move |conn| {
            store::record_attempt(conn, &record, status)?;
            if settled {
                crate::jobs::store::complete(conn, &job_id, &worker, now)?;
            }
            if let Some(outcome) = &alert_outcome {
                enqueue_alert_outcome(conn, outcome, attempt_number, now)?;
            }
            match outcome {
                Outcome::TokenDead { .. } => {
                    store::deactivate(conn, &device_id, "token_dead")?;
                }
                Outcome::Rejected {
                    invalid_argument: true,
                    ..
                } => {
                    let count = store::count_invalid_argument(conn, &device_id)?;
                    if count >= INVALID_ARGUMENT_LIMIT {
                        store::deactivate(conn, &device_id, "invalid_argument")?;
                    }
                }
                Outcome::Delivered if had_invalid_arguments => {
                    store::reset_invalid_argument(conn, &device_id)?;
                }
                _ => {}
            }
            Ok(())
        })
        .await;
    if alert_outcome_enqueued {
        app.jobs_enqueued();
    }
    match saved {
        Ok(()) => result,
        // The provider already has the message; the retry sees the notification still pending
        // only if this write was lost, which is the at-least-once edge of any push system.
        Err(e) => JobResult::retry(format!("database: {e}")),
    }
}

fn record(
    notification_id: &str,
    attempt: i32,
    app: &App,
    outcome: &'static str,
    provider_status: Option<i32>,
    provider_reason: Option<String>,
    latency_ms: i32,
) -> AttemptRecord {
    AttemptRecord {
        notification_id: notification_id.to_owned(),
        attempt,
        at: app.now().naive_utc(),
        outcome,
        provider_status,
        provider_reason,
        latency_ms,
    }
}
