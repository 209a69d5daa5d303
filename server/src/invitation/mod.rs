//! Invitations: how clinic staff and patients join. Single use, expiring, stored only as a
//! digest of a short human-typable code; the role and clinic are fixed by the invitation.

pub mod code;
pub mod handlers;
pub mod store;
pub mod use_cases;
