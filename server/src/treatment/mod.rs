//! Treatment sessions: staff schedule, move, complete and cancel a patient's ketamine or
//! esketamine sessions, with optional in-clinic observations; patients see their own.

pub mod handlers;
pub mod model;
mod store;
pub mod use_cases;

// What other domains use of this one's tables: the rows it hands out and the operations
// that run inside another domain's transaction. Its store is private to it.
pub use store::{
    ExportedSession, SessionRow, When, delete_of_patient, exported_of_patient,
    last_completed_at as last_completed_session_at,
};
