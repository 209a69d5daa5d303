//! Check-in prompts: care plans, the pure planner and its local-time arithmetic, the stored
//! prompts and their lifecycle (scheduled -> sent -> reminded -> completed | expired |
//! cancelled), and adherence.

pub mod adherence;
pub mod handlers;
pub mod local_time;
pub mod passes;
pub mod plan;
pub mod planner;
mod store;
pub mod use_cases;

/// Job kinds.
pub mod kinds {
    /// Regenerate the prompts of a clinic's patients after its plan changed. Payload:
    /// `{"clinic_id": "..."}`.
    pub const REPLAN_CLINIC: &str = "prompt.replan_clinic";
}

// What other domains use of this one's tables: the rows it hands out and the operations
// that run inside another domain's transaction. Its store is private to it.
pub use store::{
    ExportedPreferences, ExportedPrompt, PromptRow, erase_patient, exported_preferences_of,
    exported_prompts_of, recent_finished_statuses,
};
