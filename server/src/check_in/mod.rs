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
    CheckInRow, HistoryFilter, INCOMPLETE, baseline_candidates, find as find_check_in,
    history as check_in_history, last_received_at, latest_completed, recent_moods,
};
