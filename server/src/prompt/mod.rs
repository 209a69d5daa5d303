//! Check-in prompts: care plans, the pure planner and its local-time arithmetic, the stored
//! prompts and their lifecycle (scheduled -> sent -> reminded -> completed | expired |
//! cancelled), and adherence.

pub mod local_time;
pub mod plan;
pub mod planner;
