//! The durable job queue, one implementation over both backends. Jobs are enqueued inside the
//! caller's transaction (they commit with the write that causes them or not at all), claimed with
//! a lease (a worker that dies lets its jobs be reclaimed when the lease lapses), retried with
//! exponential backoff and jitter, and parked as `dead` after their last attempt.

pub mod backoff;
pub mod context;
pub mod listen;
pub mod registry;
pub mod runner;
pub mod store;

pub use context::Context;
pub use registry::{Job, JobKind, Registry, new_job};
pub use store::{Claimed, NewJob, enqueue};
