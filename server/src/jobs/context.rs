//! What the queue needs from the process it runs in: a database, the time, its configuration, the
//! registry of job kinds, a wake signal and a place to count failures. The process's `App`
//! implements [`Context`] (in `worker`, beside the list of job kinds); the queue itself knows nothing else of it, so that `jobs/` sits below
//! the domains and the application state rather than beside them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::config::JobConfig;
use crate::db::Db;

use super::registry::Registry;

/// The context every job runs in.
pub trait Context: Send + Sync + Sized + 'static {
    /// The database the queue lives in.
    fn db(&self) -> &Db;
    /// The current time (from the process's clock, never the wall clock directly).
    fn now(&self) -> DateTime<Utc>;
    /// Lease, concurrency, retry and polling configuration.
    fn job_config(&self) -> &JobConfig;
    /// The job kinds this process runs (built once per worker).
    fn registry() -> Registry<Self>;
    /// Notified when this process enqueued jobs.
    fn wake(&self) -> &Arc<Notify>;
    /// Counts a failed run of a job of `kind` (`outcome` is `retry` or `dead`).
    fn job_failed(&self, kind: &str, outcome: &'static str);
    /// On PostgreSQL, the URL to LISTEN on for jobs enqueued by other processes.
    fn listen_url(&self) -> Option<String>;
}
