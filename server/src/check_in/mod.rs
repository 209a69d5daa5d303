//! Check-ins: submission (idempotent by the client's id, scored on the server, crisis resources
//! on a safety signal; a safety answer kept whatever else is wrong with it, amended by a higher
//! one, and identical answers re-sent under a new id recognised), history, and trends.

pub mod handlers;
pub mod resend;
pub mod store;
pub mod submission;
pub mod timing;
pub mod trends;
pub mod use_cases;
pub mod view;
