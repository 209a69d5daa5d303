//! The worker: claims due jobs with a lease, runs them concurrently, and records each result
//! (done, retry with backoff and jitter, or dead). It wakes at once when this process enqueues a
//! job, within milliseconds when another process does on PostgreSQL (LISTEN/NOTIFY), and polls
//! as a fallback. On shutdown it finishes what it holds, then stops.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::backoff;
use super::context::Context;
use super::registry::Registry;
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

/// One worker, running the jobs of its context's registry.
#[derive(Debug)]
pub struct Runner<C> {
    app: Arc<C>,
    registry: Arc<Registry<C>>,
    id: String,
}

impl<C> Clone for Runner<C> {
    fn clone(&self) -> Self {
        Self {
            app: self.app.clone(),
            registry: self.registry.clone(),
            id: self.id.clone(),
        }
    }
}

impl<C: Context> Runner<C> {
    /// A worker with a fresh id.
    pub fn new(app: Arc<C>) -> Self {
        Self {
            app,
            registry: Arc::new(C::registry()),
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
        let lease_until = (now + TimeDelta::from_std(self.app.job_config().lease)?).naive_utc();
        let worker = self.id.clone();
        let now_db = now.naive_utc();
        let limit = limit as i64;
        Ok(self
            .app
            .db()
            .run(move |conn| store::claim(conn, &worker, now_db, lease_until, limit))
            .await?)
    }

    /// Claims one batch and runs it to the end; returns how many jobs were claimed.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let claimed = self.claim(self.app.job_config().concurrency).await?;
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
            self.registry.run(&*self.app, &job, &self.id).await
        };
        let now = self.app.now();
        let (id, worker) = (job.id.clone(), self.id.clone());
        let config = self.app.job_config();
        let saved = match result {
            JobResult::Completed => Ok(true),
            JobResult::Done => {
                let now = now.naive_utc();
                self.app
                    .db()
                    .run(move |conn| store::complete(conn, &id, &worker, now))
                    .await
            }
            JobResult::Retry { reason, after } if job.attempts < job.max_attempts => {
                self.app.job_failed(&job.kind, "retry");
                let delay = after.unwrap_or_else(|| {
                    backoff::delay(
                        job.attempts as u32,
                        config.retry_base,
                        config.retry_cap,
                        rand::thread_rng().r#gen::<f64>(),
                    )
                });
                let retry_at =
                    (now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::minutes(1))).naive_utc();
                let now = now.naive_utc();
                self.app
                    .db()
                    .run(move |conn| store::fail(conn, &id, &worker, &reason, Some(retry_at), now))
                    .await
            }
            JobResult::Retry { reason, .. } | JobResult::Dead(reason) => {
                self.app.job_failed(&job.kind, "dead");
                tracing::error!(job_id = %job.id, kind = %job.kind, %reason, "job is dead");
                let now = now.naive_utc();
                self.app
                    .db()
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
        let listening = shutdown.child_token();
        let listener = self.spawn_listener(listening.clone());
        let config = self.app.job_config().clone();
        let slots = Arc::new(tokio::sync::Semaphore::new(config.concurrency));
        let low_water = u32::try_from((config.concurrency / 4).max(1)).unwrap_or(1);
        tracing::info!(worker = %self.id, "worker started");
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            // Wait until a quarter of the slots are free, then claim as many jobs as there are
            // free slots: under a backlog each claim's round trip brings a batch, not one job,
            // and the jobs still running keep the gateway busy meanwhile.
            tokio::select! {
                () = shutdown.cancelled() => break,
                permits = slots.clone().acquire_many_owned(low_water) => drop(permits),
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
                    () = self.app.wake().notified() => {}
                    () = tokio::time::sleep(config.poll_interval) => {}
                }
            }
        }
        // Let running jobs finish, then hand back anything this worker still holds.
        let all = u32::try_from(config.concurrency).unwrap_or(u32::MAX);
        let _ = slots.acquire_many(all).await;
        let worker = self.id.clone();
        let now = self.app.now().naive_utc();
        if let Err(e) = self
            .app
            .db()
            .run(move |conn| store::release(conn, &worker, now))
            .await
        {
            tracing::warn!(error = %e, "could not release jobs at shutdown; their leases will lapse");
        }
        listening.cancel();
        if let Some(listener) = listener {
            listener.await.ok();
        }
        tracing::info!(worker = %self.id, "worker stopped");
    }

    /// On PostgreSQL, a task that LISTENs for jobs enqueued by other processes and wakes this
    /// worker (see [`super::listen`]); it stops when `shutdown` is cancelled.
    fn spawn_listener(&self, shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
        let url = self.app.listen_url()?;
        // The wake handle only: the task must not keep the whole App (and its pool) alive.
        let wake = self.app.wake().clone();
        Some(tokio::spawn(async move {
            // Reading the system's trust roots is file work: off the runtime, and off the path
            // of the worker's first claim.
            let target = tokio::task::spawn_blocking(move || super::listen::target(&url)).await;
            match target {
                Ok(Ok(target)) => super::listen::run(target, wake, shutdown).await,
                Ok(Err(reason)) => tracing::warn!(
                    %reason,
                    "no job listener: other processes' jobs are found by polling"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "no job listener: other processes' jobs are found by polling")
                }
            }
        }))
    }
}
