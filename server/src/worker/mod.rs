//! Background work run by `companion work` (and by `companion serve` unless told otherwise): the
//! job queue's worker and periodic housekeeping. Both are safe to run in any number of replicas.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::auth as sessions;
use crate::lifecycle::retention::{self, Purged};

/// Every job kind the worker runs, one line each. A kind missing here is parked as dead with
/// "unknown job kind" when it is claimed.
pub fn registry() -> crate::jobs::Registry<App> {
    crate::jobs::Registry::new()
        .with(crate::push::deliver::DeliverPush)
        .with(crate::escalation::worker::NotifyTier)
        .with(crate::escalation::worker::Deadline)
        .with(crate::escalation::worker::PushOutcome)
        .with(crate::escalation::worker::AckLapse)
        .with(crate::escalation::mail::AlertEmail)
        .with(crate::escalation::webhooks::DeliverWebhook)
        .with(crate::prompt::passes::ReplanClinic)
        .with(crate::fhir::bulk::BulkExport)
}

/// The queue runs in the application's context; the job kinds are the ones listed above.
impl crate::jobs::Context for App {
    fn db(&self) -> &crate::db::Db {
        &self.db
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn job_config(&self) -> &crate::config::JobConfig {
        &self.config.jobs
    }

    fn registry() -> crate::jobs::Registry<App> {
        registry()
    }

    fn wake(&self) -> &Arc<tokio::sync::Notify> {
        &self.job_wake
    }

    fn job_failed(&self, kind: &str, outcome: &'static str) {
        self.metrics.job_failed(kind, outcome);
    }

    fn listen_url(&self) -> Option<String> {
        match &self.config.database {
            crate::config::DatabaseTarget::Postgres(url) => Some(url.expose().clone()),
            crate::config::DatabaseTarget::Sqlite(_) => None,
        }
    }
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
                match crate::prompt::passes::tick(&app).await {
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
/// [`JOB_RETENTION_DAYS`] ago, in batches; then the [`retention_purge`]; then expired system
/// access tokens and spent assertion ids, export files that can no longer be downloaded (and
/// folders no export owns), and audit rows of no clinic older than
/// `COMPANION_ORG_AUDIT_RETENTION_DAYS`. Returns how many rows (and folders) were deleted.
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
            break;
        }
    }
    purged += retention_purge(app, app.now()).await?.total();
    let now = app.now();
    purged += app
        .db
        .write(move |conn| crate::fhir::clients::purge_expired(conn, now))
        .await?;
    let swept = crate::fhir::bulk::sweep(app, now).await?;
    purged += swept.folders + swept.rows;
    let before = now.naive_utc() - TimeDelta::days(i64::from(app.config.org_audit_retention_days));
    loop {
        let n = app
            .db
            .write(move |conn| crate::audit::purge_organisation_rows(conn, before, 5000))
            .await?;
        purged += n;
        if n < 5000 {
            break;
        }
    }
    Ok(purged)
}

/// The retention pass: for each clinic with retention periods set, deletes check-ins completed,
/// alerts resolved (with their events) and audit rows written longer ago than its periods
/// allow, as of `now`. Unresolved alerts are never purged, nor the check-ins they name. Alerts
/// an erasure kept while they were unresolved go once resolved (unless the clinic
/// de-identifies). One transaction per clinic. Returns what was deleted in all.
pub async fn retention_purge(app: &App, now: DateTime<Utc>) -> anyhow::Result<Purged> {
    let clinics = app.db.run(crate::lifecycle::all_lifecycles).await?;
    let mut total = Purged {
        alerts: app.db.write(retention::purge_erased_alerts).await?,
        ..Purged::default()
    };
    for clinic in clinics.into_iter().filter(|c| {
        c.check_in_retention_days.is_some()
            || c.alert_retention_days.is_some()
            || c.audit_retention_days.is_some()
    }) {
        let purged = app
            .db
            .write(move |conn| retention::purge_clinic(conn, &clinic, now))
            .await?;
        total.check_ins += purged.check_ins;
        total.alerts += purged.alerts;
        total.audit_rows += purged.audit_rows;
    }
    if total.total() > 0 {
        tracing::info!(
            check_ins = total.check_ins,
            alerts = total.alerts,
            audit_rows = total.audit_rows,
            "records past their clinic's retention purged"
        );
    }
    Ok(total)
}

/// Days a finished job is kept.
pub const JOB_RETENTION_DAYS: i64 = 7;
