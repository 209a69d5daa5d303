//! Accounts: who someone is (role, clinic), the input types that describe them, the `/v1/me`
//! endpoint and enabling or disabling an account (`use_cases`, called by `handlers` and the CLI).

pub mod handlers;
pub mod model;
pub mod store;
pub mod use_cases;
