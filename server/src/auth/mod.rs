//! Authentication: password hashing, access tokens (JWT), rotating refresh tokens with reuse
//! detection, the extractors that identify and authorise the caller, password changes and reset
//! codes, and the `/v1/auth` endpoints.

pub mod credentials;
pub mod extract;
pub mod handlers;
pub mod password;
pub mod refresh;
pub mod session;
mod store;
pub mod tokens;
pub mod work;

// What other domains use of this one's tables: the rows it hands out and the operations
// that run inside another domain's transaction. Its store is private to it.
pub use store::{
    ExportedSignIn, delete_reset_codes_of, delete_sessions_of, exported_sign_ins_of,
    purge_expired_tokens, revoke_all_sessions, revoke_session, start_session,
};
