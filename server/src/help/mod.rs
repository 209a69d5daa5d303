//! "Get help now": a patient's own request for help. It raises an urgent alert (rule
//! `patient_help_request`) on the same path as a safety answer, is never refused for its form,
//! and answers with the crisis resources and where the care team stands.

pub mod handlers;
pub mod request;
mod store;
pub mod use_cases;

// What other domains use of this one's tables: the rows it hands out and the operations
// that run inside another domain's transaction. Its store is private to it.
pub use store::{delete_of_patient, of_patient};
