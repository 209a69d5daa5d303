//! Escalation: the rules that turn a patient's answers into alerts for the care team. So far the
//! pure rule evaluation; alerts, tiers and delivery build on it.

pub mod rules;
