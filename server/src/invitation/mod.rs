//! Invitations: how clinic staff and patients join. Single use, expiring, stored only as a
//! digest of a short human-typable code; the role and clinic are fixed by the invitation.

pub mod code;
pub mod handlers;
mod store;
pub mod use_cases;

// What other domains use of this one's tables: the rows it hands out and the operations
// that run inside another domain's transaction. Its store is private to it.
pub use store::{InvitationRow, forget_accepted_email, forget_email_in_clinic};
