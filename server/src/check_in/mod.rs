//! Check-ins: submission (idempotent by the client's id, scored on the server, crisis resources
//! on a safety signal; a safety answer kept whatever else is wrong with it, amended by a higher
//! one, and identical answers re-sent under a new id recognised), history, and trends.

pub mod handlers;
pub mod resend;
mod store;
pub mod submission;
pub mod timing;
pub mod trends;
pub mod use_cases;
pub mod view;

// What other domains use of this one's tables: the rows it hands out and the operations
// that run inside another domain's transaction. Its store is private to it.
pub use store::{
    CheckInRow, ExportedCheckIn, HistoryFilter, INCOMPLETE, answers_of_patient,
    baseline_candidates, delete_of_patient, exported_of_patient, find as find_check_in,
    forget_earlier_versions_of_patient, history as check_in_history, last_received_at,
    latest_completed, purge_completed_before, recent_moods, set_answers, unlink_prompts_of_patient,
};
