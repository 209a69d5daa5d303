//! Companion: the backend for a phone app that keeps patients with treatment-resistant
//! depression connected to their ketamine or esketamine clinic between treatment sessions.
//!
//! Each domain has a folder (handlers for HTTP, a store for the database, pure rules beside
//! them); `app` holds the one shared state, `openapi` registers every route.

pub mod account;
pub mod app;
pub mod audit;
pub mod auth;
pub mod check_in;
pub mod cli;
pub mod clinic;
pub mod clock;
pub mod config;
pub mod console;
pub mod db;
pub mod email;
pub mod error;
pub mod escalation;
pub mod fhir;
pub mod health;
pub mod help;
pub mod http;
pub mod instrument;
pub mod invitation;
pub mod jobs;
pub mod lifecycle;
pub mod log_summary;
pub mod metrics;
pub mod openapi;
pub mod patient;
pub mod patient_app;
pub mod private_files;
pub mod prompt;
pub mod push;
pub mod router;
pub mod safety;
pub mod text;
pub mod time;
pub mod treatment;
pub mod worker;
