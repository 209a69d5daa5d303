//! Clinics and their patient roster.

pub mod handlers;
pub mod store;
pub mod use_cases;
