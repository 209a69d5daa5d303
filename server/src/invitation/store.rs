//! Invitation rows.

use chrono::NaiveDateTime;
use companion_schema::schema::invitations;
use diesel::prelude::*;

use crate::db::DbConnection;

/// An invitation as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = invitations)]
pub struct InvitationRow {
    /// Id.
    pub id: String,
    /// The clinic joined.
    pub clinic_id: String,
    /// The role granted.
    pub role: String,
    /// Digest of the normalised code.
    pub code_hash: String,
    /// If set, only this email may accept.
    pub email: Option<String>,
    /// Who invited.
    pub created_by: String,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Lapses.
    pub expires_at: NaiveDateTime,
    /// Accepted.
    pub accepted_at: Option<NaiveDateTime>,
    /// The account it created.
    pub accepted_account_id: Option<String>,
    /// Revoked: it can no longer be accepted.
    pub revoked_at: Option<NaiveDateTime>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

/// Inserts an invitation.
pub fn insert(conn: &mut DbConnection, row: &InvitationRow) -> QueryResult<()> {
    diesel::insert_into(invitations::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Finds an invitation by code digest.
pub fn find_by_code(
    conn: &mut DbConnection,
    code_hash: &str,
) -> QueryResult<Option<InvitationRow>> {
    invitations::table
        .filter(invitations::code_hash.eq(code_hash))
        .select(InvitationRow::as_select())
        .first(conn)
        .optional()
}

/// Marks an invitation accepted if it is still open at `now`; returns whether it was.
pub fn claim(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<bool> {
    diesel::update(
        invitations::table
            .filter(invitations::id.eq(id))
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::revoked_at.is_null())
            .filter(invitations::expires_at.gt(now)),
    )
    .set(invitations::accepted_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

/// Records the account an invitation created.
pub fn set_account(conn: &mut DbConnection, id: &str, account_id: &str) -> QueryResult<()> {
    diesel::update(invitations::table.find(id))
        .set(invitations::accepted_account_id.eq(account_id))
        .execute(conn)
        .map(drop)
}

/// Finds an invitation by id.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<InvitationRow>> {
    invitations::table
        .find(id)
        .select(InvitationRow::as_select())
        .first(conn)
        .optional()
}

/// A page of a clinic's pending invitations (neither accepted, revoked nor expired at `now`),
/// in id (creation) order after `after`.
pub fn pending(
    conn: &mut DbConnection,
    clinic_id: &str,
    now: NaiveDateTime,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<InvitationRow>> {
    let mut query = invitations::table
        .filter(invitations::clinic_id.eq(clinic_id.to_owned()))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .filter(invitations::expires_at.gt(now))
        .select(InvitationRow::as_select())
        .order(invitations::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(invitations::id.gt(after.to_owned()));
    }
    query.load(conn)
}

/// Revokes an invitation that is neither accepted nor revoked; returns whether it was.
pub fn revoke(
    conn: &mut DbConnection,
    id: &str,
    by: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        invitations::table
            .filter(invitations::id.eq(id))
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::revoked_at.is_null()),
    )
    .set((
        invitations::revoked_at.eq(now),
        invitations::revoked_by.eq(by),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Removes the email from the invitation the account `account_id` accepted (the account is
/// being erased).
pub fn forget_accepted_email(conn: &mut DbConnection, account_id: &str) -> QueryResult<usize> {
    diesel::update(invitations::table.filter(invitations::accepted_account_id.eq(account_id)))
        .set(invitations::email.eq(None::<String>))
        .execute(conn)
}

/// Removes `email` from every invitation of `clinic_id` that names it, accepted or not (its
/// owner is being erased).
pub fn forget_email_in_clinic(
    conn: &mut DbConnection,
    clinic_id: &str,
    email: &str,
) -> QueryResult<usize> {
    diesel::update(
        invitations::table
            .filter(invitations::clinic_id.eq(clinic_id))
            .filter(invitations::email.eq(email)),
    )
    .set(invitations::email.eq(None::<String>))
    .execute(conn)
}
