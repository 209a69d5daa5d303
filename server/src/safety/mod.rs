//! Safety: what a patient is shown when an answer signals risk to their life, and how the
//! clinic's country is found for it.

pub mod crisis;
pub mod handlers;
mod store;
pub mod zones;

// What other domains use of this one's tables: the rows it hands out and the operations
// that run inside another domain's transaction. Its store is private to it.
pub use store::for_patient;
