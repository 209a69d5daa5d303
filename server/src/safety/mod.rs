//! Safety: what a patient is shown when an answer signals risk to their life, and how the
//! clinic's country is found for it.

pub mod crisis;
pub mod handlers;
pub mod store;
pub mod zones;
