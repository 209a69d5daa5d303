//! Account rows.

use chrono::NaiveDateTime;
use companion_schema::schema::accounts;
use diesel::prelude::*;

use crate::db::DbConnection;

/// An account as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = accounts)]
pub struct AccountRow {
    /// Id.
    pub id: String,
    /// Normalised email.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Role name.
    pub role: String,
    /// Clinic (none for organisation admins).
    pub clinic_id: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// IANA zone.
    pub timezone: String,
    /// Set while the account is disabled.
    pub disabled_at: Option<NaiveDateTime>,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Last changed.
    pub updated_at: NaiveDateTime,
}

/// A new account.
#[derive(Debug, Insertable)]
#[diesel(table_name = accounts)]
pub struct NewAccount<'a> {
    /// Id.
    pub id: &'a str,
    /// Normalised email.
    pub email: &'a str,
    /// argon2id PHC string.
    pub password_hash: &'a str,
    /// Role name.
    pub role: &'a str,
    /// Clinic.
    pub clinic_id: Option<&'a str>,
    /// Display name.
    pub display_name: Option<&'a str>,
    /// IANA zone.
    pub timezone: &'a str,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Last changed.
    pub updated_at: NaiveDateTime,
}

/// Inserts an account; a duplicate email is a unique violation.
pub fn insert(conn: &mut DbConnection, account: &NewAccount<'_>) -> QueryResult<()> {
    diesel::insert_into(accounts::table)
        .values(account)
        .execute(conn)
        .map(drop)
}

/// Finds an account by normalised email.
pub fn find_by_email(conn: &mut DbConnection, email: &str) -> QueryResult<Option<AccountRow>> {
    accounts::table
        .filter(accounts::email.eq(email))
        .select(AccountRow::as_select())
        .first(conn)
        .optional()
}

/// Finds an account by id.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<AccountRow>> {
    accounts::table
        .find(id)
        .select(AccountRow::as_select())
        .first(conn)
        .optional()
}

/// Sets or clears `disabled_at`.
pub fn set_disabled(
    conn: &mut DbConnection,
    id: &str,
    disabled_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(accounts::table.find(id))
        .set((
            accounts::disabled_at.eq(disabled_at),
            accounts::updated_at.eq(now),
        ))
        .execute(conn)
}
