//! Accounts: who someone is (role, clinic), the input types that describe them, the `/v1/me`
//! endpoint and enabling or disabling an account (`use_cases`, called by `handlers` and the CLI).

pub mod handlers;
pub mod model;
mod store;
pub mod use_cases;

// What other domains use of this one's tables: the rows it hands out and the operations
// that run inside another domain's transaction. Its store is private to it.
pub use store::{
    ExportedProfile, NewAccount, blank_erased, clear_external_id, clinic_of, email_of,
    enabled_email, enabled_org_admins, exported_profile, find_by_email, insert as insert_account,
    set_on_call, set_timezone, set_working_hours, timezone_of, working_hours_of,
};
