//! The patient data lifecycle: versioned consent documents and each patient's acceptance or
//! withdrawal (which gate prompting), the patient's view of who on the staff read their data,
//! a full export of a patient's data, erasure, and per-clinic retention purged by housekeeping.

pub mod access_log;
pub mod consent;
pub mod erasure;
pub mod erasure_traces;
pub mod export;
pub mod handlers;
pub mod retention;
mod store;

// What other domains use of this one's tables: the rows it hands out and the operations
// that run inside another domain's transaction. Its store is private to it.
pub use store::{all_lifecycles, standings, unconsented};
