//! Background work run by `companion work` (and by `companion serve` unless told otherwise): the
//! job queue's worker and periodic housekeeping. Both are safe to run in any number of replicas.

use std::sync::Arc;

use chrono::TimeDelta;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::auth::store as sessions;

/// Every job kind the worker runs, one line each. A kind missing here is parked as dead with
/// "unknown job kind" when it is claimed.
pub fn registry() -> crate::jobs::Registry {
    crate::jobs::Registry::new()
        .with(crate::push::deliver::DeliverPush)
        .with(crate::escalation::worker::NotifyTier)
        .with(crate::escalation::worker::Deadline)
        .with(crate::escalation::webhooks::DeliverWebhook)
        .with(crate::prompt::lifecycle::ReplanClinic)
        .with(crate::fhir::bulk::BulkExport)
}

/// Runs the job worker and housekeeping until `shutdown` is cancelled; work in progress is
/// finished first.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    let runner = crate::jobs::runner::Runner::new(app.clone());
    let jobs = tokio::spawn(runner.run(shutdown.clone()));
    let prompts = tokio::spawn(prompt_loop(app.clone(), shutdown.clone()));
    housekeeping_loop(app, shutdown).await;
    prompts.await.ok();
    jobs.await.ok();
}

/// Expires, sends, reminds and plans prompts every `COMPANION_PROMPT_INTERVAL`.
async fn prompt_loop(app: Arc<App>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(app.config.prompts.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {
                match crate::prompt::lifecycle::tick(&app).await {
                    Ok(report) if report != Default::default() => tracing::info!(
                        sent = report.sent,
                        reminded = report.reminded,
                        expired = report.expired,
                        postponed = report.postponed,
                        planned = report.planned,
                        "prompts"
                    ),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "prompt pass failed; will retry"),
                }
            }
        }
    }
}

async fn housekeeping_loop(app: Arc<App>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(app.config.worker_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {
                match housekeeping(&app).await {
                    Ok(purged) if purged > 0 => tracing::info!(purged, "expired tokens and finished jobs purged"),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "housekeeping failed; will retry"),
                }
            }
        }
    }
}

/// One housekeeping pass: deletes refresh tokens that expired more than a day ago (kept a day so
/// a late reuse of a just-expired token is still recognised) and finished jobs due more than
/// [`JOB_RETENTION_DAYS`] ago, in batches. Returns how many rows were deleted.
pub async fn housekeeping(app: &App) -> anyhow::Result<usize> {
    let cutoff = (app.now() - TimeDelta::days(1)).naive_utc();
    let mut purged = app
        .db
        .write(move |conn| sessions::purge_expired_tokens(conn, cutoff))
        .await?;
    let before = (app.now() - TimeDelta::days(JOB_RETENTION_DAYS)).naive_utc();
    loop {
        let n = app
            .db
            .write(move |conn| crate::jobs::store::purge_done(conn, before, 5000))
            .await?;
        purged += n;
        if n < 5000 {
            return Ok(purged);
        }
    }
}

/// Days a finished job is kept.
pub const JOB_RETENTION_DAYS: i64 = 7;
