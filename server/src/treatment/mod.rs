//! Treatment sessions: staff schedule, move, complete and cancel a patient's ketamine or
//! esketamine sessions, with optional in-clinic observations; patients see their own.

pub mod handlers;
pub mod model;
pub mod store;
pub mod use_cases;
