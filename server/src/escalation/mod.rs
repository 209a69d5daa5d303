//! Escalation: the rules that turn a patient's answers into alerts for the care team, the alerts
//! themselves, and the jobs that notify the care team and climb tiers until someone acknowledges.

pub mod alerting;
pub mod decide;
pub mod erased;
pub mod handlers;
pub mod inbox;
pub mod intake;
pub mod mail;
pub mod policy;
pub mod reach;
pub mod readiness;
pub mod rules;
mod store;
pub mod wait;
pub mod webhooks;
pub mod worker;
pub mod working_hours;

// What other domains use of this one's tables: the rows it hands out and the operations
// that run inside another domain's transaction. Its store is private to it.
pub use store::{
    AlertRow, AlertingSetting, ExportedAlert, ExportedEvent, InboxFilter, Raised, Signal, audience,
    changed_alerts_page, event, exported_alerts_of_patient, exported_events, find as find_alert,
    open_by_severity, purge_resolved_before, purge_resolved_of_erased, raise,
};
