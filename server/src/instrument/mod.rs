//! Instruments: the versioned questionnaire definitions served to the app (so it renders what the
//! server scores), and the pure validation and scoring of an answer set.

pub mod catalogue;
pub mod handlers;
pub mod scoring;
