//! Check-ins: submission (idempotent by the client's id, scored on the server, crisis resources
//! on a safety signal), history, and trends.

pub mod handlers;
pub mod store;
pub mod timing;
pub mod trends;
pub mod use_cases;
pub mod view;
