//! Clinics and their patient roster.

pub mod handlers;
pub mod input;
mod store;
pub mod use_cases;

// What other domains use of this one's tables: the rows it hands out and the operations
// that run inside another domain's transaction. Its store is private to it.
pub use store::{ClinicChanges, ClinicRow, find as find_clinic, roster};
