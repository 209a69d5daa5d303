//! Black-box tests of the HTTP API and the command line. Every API test runs twice, on SQLite
//! (`sqlite::` in its name) and on PostgreSQL (`postgres::`).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers should fail loudly at the point of failure"
)]

mod harness;

mod access;
mod auth;
mod bulk;
mod check_ins;
mod cli;
mod console;
mod escalation;
mod fhir;
mod hardening;
mod help_requests;
mod http;
mod invitations;
mod jobs;
mod lifecycle;
mod management;
mod metrics;
mod openapi;
mod outage;
mod patient_app;
mod process;
mod prompts;
mod push;
mod reachability;
mod safety;
mod safety_answers;
mod safety_answers_property;
mod safety_property;
mod safety_simulator;
mod scale_out;
mod schema;
mod security;
mod sessions;
mod smart;
mod statements;
mod web_push;
