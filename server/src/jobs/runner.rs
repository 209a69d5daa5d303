//! The worker: claims due jobs with a lease, runs them concurrently, and records each result
//! (done, retry with backoff and jitter, or dead). It wakes at once when this process enqueues a
//! job, within milliseconds when another process does on PostgreSQL (LISTEN/NOTIFY), and polls
//! as a fallback. On shutdown it finishes what it holds, then stops.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::DatabaseTarget;

use super::backoff;
use super::kinds;
use super::store::{self, Claimed};

/// What running a job came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    /// Finished.
    Done,
    /// Try again later (after the given delay, or by backoff).
    Retry {
        /// Why.
        reason: String,
        /// The delay asked for, if any.
        after: Option<Duration>,
    },
    /// Never try again.
    Dead(String),
    /// Finished, and already marked done by the handler in its own transaction.
    Completed,
}

impl JobResult {
    /// A retry with the default backoff.
    pub fn retry(reason: String) -> Self {
        JobResult::Retry {
            reason,
            after: None,
        }
    }
}

/// One worker.
#[derive(Debug, Clone)]
pub struct Runner {
    app: Arc<App>,
    id: String,
}

impl Runner {
    /// A worker with a fresh id.
    pub fn new(app: Arc<App>) -> Self {
        Self {
            app,
            id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// This worker's id (the `locked_by` of the jobs it holds).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Claims up to `limit` due jobs.
    async fn claim(&self, limit: usize) -> anyhow::Result<Vec<Claimed>> {
        let now = self.app.now();
        let lease_until = (now + TimeDelta::from_std(self.app.config.jobs.lease)?).naive_utc();
        let worker = self.id.clone();
        let now_db = now.naive_utc();
        let limit = limit as i64;
        Ok(self
            .app
            .db
            .run(move |conn| store::claim(conn, &worker, now_db, lease_until, limit))
            .await?)
    }

    /// Claims one batch and runs it to the end; returns how many jobs were claimed.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let claimed = self.claim(self.app.config.jobs.concurrency).await?;
        let count = claimed.len();
        let mut tasks = tokio::task::JoinSet::new();
        for job in claimed {
            let runner = self.clone();
            tasks.spawn(async move { runner.execute(job).await });
        }
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined {
                tracing::error!(error = %e, "job task panicked; its lease will lapse and it will be retried");
            }
        }
        Ok(count)
    }

    /// Runs batches until none is due (tests and tools; the service uses [`Runner::run`]).
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let n = self.run_once().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    async fn execute(&self, job: Claimed) {
        let result = if job.attempts > job.max_attempts {
            JobResult::Dead("lease lapsed on every attempt".into())
        } else {
            match job.kind.as_str() {
                kinds::PUSH_DELIVER => crate::push::deliver::run(&self.app, &job, &self.id).await,
                crate::escalation::store::kinds::NOTIFY => {
                    crate::escalation::worker::notify(&self.app, &job, &self.id).await
                }
                crate::escalation::webhooks::DELIVER => {
                    crate::escalation::webhooks::deliver(&self.app, &job).await
                }
                crate::escalation::store::kinds::DEADLINE => {
                    crate::escalation::worker::deadline(&self.app, &job, &self.id).await
                }
                crate::prompt::kinds::REPLAN_CLINIC => {
                    crate::prompt::lifecycle::replan_clinic(&self.app, &job).await
                }
                crate::fhir::bulk::JOB => crate::fhir::bulk::run(&self.app, &job).await,
                other => JobResult::Dead(format!("unknown job kind {other}")),
            }
        };
        let now = self.app.now();
        let (id, worker) = (job.id.clone(), self.id.clone());
        let settings = &self.app.config.jobs;
        let saved = match result {
            JobResult::Completed => Ok(true),
            JobResult::Done => {
                let now = now.naive_utc();
                self.app
                    .db
                    .run(move |conn| store::complete(conn, &id, &worker, now))
                    .await
            }
            JobResult::Retry { reason, after } if job.attempts < job.max_attempts => {
                self.app.metrics.job_failed(&job.kind, "retry");
                let delay = after.unwrap_or_else(|| {
                    backoff::delay(
                        job.attempts as u32,
                        settings.retry_base,
                        settings.retry_cap,
                        rand::thread_rng().r#gen::<f64>(),
                    )
                });
                let retry_at =
                    (now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::minutes(1))).naive_utc();
                let now = now.naive_utc();
                self.app
                    .db
                    .run(move |conn| store::fail(conn, &id, &worker, &reason, Some(retry_at), now))
                    .await
            }
            JobResult::Retry { reason, .. } | JobResult::Dead(reason) => {
                self.app.metrics.job_failed(&job.kind, "dead");
                tracing::error!(job_id = %job.id, kind = %job.kind, %reason, "job is dead");
                let now = now.naive_utc();
                self.app
                    .db
                    .run(move |conn| store::fail(conn, &id, &worker, &reason, None, now))
                    .await
            }
        };
        match saved {
            Ok(true) => {}
            Ok(false) => tracing::warn!(job_id = %job.id, "lease lost before the result was saved"),
            Err(e) => {
                tracing::warn!(job_id = %job.id, error = %e, "could not save a job result; the lease will lapse")
            }
        }
    }

    /// Runs until `shutdown`, then lets running jobs finish and returns anything still held to
    /// the queue. Jobs run side by side up to the configured concurrency, and a free slot is
    /// refilled at once, so one slow delivery never holds up the others.
    pub async fn run(self, shutdown: CancellationToken) {
        let listener = self.spawn_listener(shutdown.clone());
        let settings = self.app.config.jobs.clone();
        let slots = Arc::new(tokio::sync::Semaphore::new(settings.concurrency));
        tracing::info!(worker = %self.id, "worker started");
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            // Wait for a free slot, then claim as many jobs as there are free slots.
            tokio::select! {
                () = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => drop(permit),
            }
            let free = slots.available_permits();
            let claimed = match self.claim(free).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming jobs failed; will retry");
                    Vec::new()
                }
            };
            let full = claimed.len() == free;
            for job in claimed {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    break;
                };
                let runner = self.clone();
                tokio::spawn(async move {
                    runner.execute(job).await;
                    drop(permit);
                });
            }
            if !full {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = self.app.job_wake.notified() => {}
                    () = tokio::time::sleep(settings.poll_interval) => {}
                }
            }
        }
        // Let running jobs finish, then hand back anything this worker still holds.
        let all = u32::try_from(settings.concurrency).unwrap_or(u32::MAX);
        let _ = slots.acquire_many(all).await;
        let worker = self.id.clone();
        let now = self.app.now().naive_utc();
        if let Err(e) = self
            .app
            .db
            .run(move |conn| store::release(conn, &worker, now))
            .await
        {
            tracing::warn!(error = %e, "could not release jobs at shutdown; their leases will lapse");
        }
        drop(listener);
        tracing::info!(worker = %self.id, "worker stopped");
    }

    /// On PostgreSQL, a thread that LISTENs for enqueued jobs and wakes this worker.
    fn spawn_listener(&self, shutdown: CancellationToken) -> Option<std::thread::JoinHandle<()>> {
        let DatabaseTarget::Postgres(url) = &self.app.config.database else {
            return None;
        };
        let url = url.expose().clone();
        // The wake handle only: the thread must not keep the whole App (and its pool) alive.
        let wake = self.app.job_wake.clone();
        std::thread::Builder::new()
            .name("job-listener".into())
            .spawn(move || listen(&url, &wake, &shutdown))
            .ok()
    }
}

fn listen(url: &str, wake: &tokio::sync::Notify, shutdown: &CancellationToken) {
    use diesel::{Connection, RunQueryDsl};
    while !shutdown.is_cancelled() {
        let mut conn = match diesel::PgConnection::establish(url) {
            Ok(conn) => conn,
            Err(_) => {
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if diesel::sql_query("LISTEN companion_jobs")
            .execute(&mut conn)
            .is_err()
        {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        'connected: while !shutdown.is_cancelled() {
            let mut woke = false;
            for notification in conn.notifications_iter() {
                match notification {
                    Ok(_) => woke = true,
                    Err(_) => break 'connected,
                }
            }
            if woke {
                wake.notify_one();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
