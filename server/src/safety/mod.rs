//! Safety: what a patient is shown when an answer signals risk to their life.

pub mod crisis;
