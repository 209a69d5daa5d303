//! Typed jobs: the [`Job`] trait every job kind implements (its kind, its payload type and its
//! `run`), and the [`Registry`] the worker dispatches through. The queue knows no domain: each
//! domain implements [`Job`] for its own jobs and `worker::registry` lists them, one line each.
//!
//! Payloads are JSON objects carrying their version in `"v"` (absent means 1, the version every
//! payload had before versions were written). A worker reads the version it knows; an older one
//! goes through [`Job::upgrade`]; a newer one (written by a newer release during a rolling
//! deploy) is retried so that a newer worker takes it, and parked as dead after its last attempt.
//! An unknown kind or a payload that does not parse is parked as dead at once with a clear error.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::runner::JobResult;
use super::store::{Claimed, NewJob};

/// The payload key that holds the payload's version.
pub const VERSION_KEY: &str = "v";

/// One kind of job: its stored name, its payload and the payload's versions. What running it
/// takes is [`Job`], in the context the worker provides.
pub trait JobKind: Send + Sync + 'static {
    /// The stored kind name (never reused for another meaning).
    const KIND: &'static str;
    /// The payload version this code writes and reads.
    const VERSION: u64 = 1;
    /// The payload: opaque ids only, never health information.
    type Payload: Serialize + DeserializeOwned + Send + 'static;

    /// Turns a payload of an older `version` into the current shape. The default knows no older
    /// version.
    fn upgrade(version: u64, payload: Value) -> Result<Value, String> {
        let _ = payload;
        Err(format!(
            "no upgrade from payload version {version} to {}",
            Self::VERSION
        ))
    }
}

/// A job kind that runs in the context `C` (the process's `App` in the server).
#[async_trait::async_trait]
pub trait Job<C>: JobKind {
    /// Runs the job once. `job` is the claimed row (id, attempts), `worker` the lease holder.
    async fn run(&self, app: &C, job: &Claimed, worker: &str, payload: Self::Payload) -> JobResult;
}

/// A job to enqueue for `J`: its kind and its payload with the version written in.
pub fn new_job<J: JobKind>(
    payload: &J::Payload,
    dedupe_key: Option<String>,
    run_at: chrono::NaiveDateTime,
    max_attempts: i32,
) -> NewJob {
    NewJob {
        kind: J::KIND,
        payload: versioned::<J>(payload),
        dedupe_key,
        run_at,
        max_attempts,
        priority: super::store::Priority::Routine,
    }
}

/// `payload` as stored: its JSON object with `"v"` set to `J::VERSION`.
pub fn versioned<J: JobKind>(payload: &J::Payload) -> Value {
    let mut value = serde_json::to_value(payload).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert(VERSION_KEY.into(), Value::from(J::VERSION));
    }
    value
}

/// What reading a stored payload came to.
#[derive(Debug)]
pub enum Decoded<P> {
    /// Readable.
    Payload(P),
    /// Written by a newer release: leave it for a newer worker.
    Newer(u64),
    /// Never readable by this code.
    Unreadable(String),
}

/// Reads a stored payload of `J`, upgrading an older version.
pub fn decode<J: JobKind>(raw: &str) -> Decoded<J::Payload> {
    let mut value: Value = match serde_json::from_str(raw) {
        Ok(value) => value,
        Err(e) => return Decoded::Unreadable(format!("not JSON: {e}")),
    };
    let version = match value.get(VERSION_KEY) {
        None => 1,
        Some(v) => match v.as_u64() {
            Some(v) => v,
            None => return Decoded::Unreadable(format!("payload version {v} is not a number")),
        },
    };
    if version > J::VERSION {
        return Decoded::Newer(version);
    }
    if let Value::Object(map) = &mut value {
        map.remove(VERSION_KEY);
    }
    if version < J::VERSION {
        value = match J::upgrade(version, value) {
            Ok(value) => value,
            Err(e) => return Decoded::Unreadable(e),
        };
    }
    match serde_json::from_value(value) {
        Ok(payload) => Decoded::Payload(payload),
        Err(e) => Decoded::Unreadable(format!("version {version}: {e}")),
    }
}

/// A job with its payload type erased, as the registry holds it.
#[async_trait::async_trait]
trait Runnable<C>: Send + Sync {
    async fn run_raw(&self, app: &C, job: &Claimed, worker: &str) -> JobResult;
}

#[async_trait::async_trait]
impl<C: Sync, J: Job<C>> Runnable<C> for J {
    async fn run_raw(&self, app: &C, job: &Claimed, worker: &str) -> JobResult {
        match decode::<J>(&job.payload) {
            Decoded::Payload(payload) => self.run(app, job, worker, payload).await,
            Decoded::Newer(version) => JobResult::Retry {
                reason: format!(
                    "{} payload version {version} is newer than this worker reads ({}); left for a newer worker",
                    J::KIND,
                    J::VERSION
                ),
                after: Some(Duration::from_secs(60)),
            },
            Decoded::Unreadable(why) => {
                JobResult::Dead(format!("unreadable {} payload: {why}", J::KIND))
            }
        }
    }
}

/// The job kinds a worker runs, each run in the context `C`.
pub struct Registry<C> {
    jobs: BTreeMap<&'static str, Box<dyn Runnable<C>>>,
}

impl<C> Default for Registry<C> {
    fn default() -> Self {
        Self {
            jobs: BTreeMap::new(),
        }
    }
}

impl<C> std::fmt::Debug for Registry<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.jobs.keys()).finish()
    }
}

impl<C: Sync + 'static> Registry<C> {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `job` under its kind (a later registration of the same kind replaces it).
    #[must_use]
    pub fn with<J: Job<C>>(mut self, job: J) -> Self {
        self.jobs.insert(J::KIND, Box::new(job));
        self
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.jobs.keys().copied().collect()
    }

    /// Runs a claimed job through the job of its kind; an unknown kind is dead at once.
    pub async fn run(&self, app: &C, job: &Claimed, worker: &str) -> JobResult {
        match self.jobs.get(job.kind.as_str()) {
            Some(runnable) => runnable.run_raw(app, job, worker).await,
            None => JobResult::Dead(format!(
                "unknown job kind {:?}: no job of that kind is registered in this worker",
                job.kind
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Ids {
        id: String,
    }

    struct V1;
    impl JobKind for V1 {
        const KIND: &'static str = "test.v1";
        type Payload = Ids;
    }
    #[async_trait::async_trait]
    impl Job<()> for V1 {
        async fn run(&self, _: &(), _: &Claimed, _: &str, _: Ids) -> JobResult {
            JobResult::Done
        }
    }

    struct V2;
    impl JobKind for V2 {
        const KIND: &'static str = "test.v2";
        const VERSION: u64 = 2;
        type Payload = Ids;
        fn upgrade(version: u64, payload: Value) -> Result<Value, String> {
            match version {
                1 => Ok(serde_json::json!({"id": payload["old_id"]})),
                _ => Err(format!("no upgrade from {version}")),
            }
        }
    }
    #[async_trait::async_trait]
    impl Job<()> for V2 {
        async fn run(&self, _: &(), _: &Claimed, _: &str, _: Ids) -> JobResult {
            JobResult::Done
        }
    }

    #[test]
    fn payloads_round_trip_with_their_version() {
        let stored = versioned::<V2>(&Ids { id: "a".into() });
        assert_eq!(stored, serde_json::json!({"id": "a", "v": 2}));
        assert!(
            matches!(decode::<V2>(&stored.to_string()), Decoded::Payload(p) if p == Ids { id: "a".into() })
        );
    }

    #[test]
    fn unversioned_payloads_are_version_one_and_older_ones_are_upgraded() {
        assert!(matches!(
            decode::<V1>(r#"{"id": "a"}"#),
            Decoded::Payload(_)
        ));
        assert!(matches!(decode::<V2>(r#"{"old_id": "b"}"#), Decoded::Payload(p) if p.id == "b"));
        assert!(matches!(
            decode::<V1>(r#"{"id": "a", "v": 3}"#),
            Decoded::Newer(3)
        ));
    }

    #[test]
    fn unreadable_payloads_say_why() {
        for raw in [
            "not json",
            r#"{"id": 5}"#,
            r#"{"other": "x"}"#,
            r#"{"id": "a", "v": "one"}"#,
            "null",
        ] {
            assert!(
                matches!(decode::<V1>(raw), Decoded::Unreadable(ref why) if !why.is_empty()),
                "{raw}"
            );
        }
    }
}
