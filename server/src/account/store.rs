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

/// Marks a staff account on or off call.
pub fn set_on_call(conn: &mut DbConnection, id: &str, on_call: bool) -> QueryResult<()> {
    diesel::update(accounts::table.find(id))
        .set(accounts::on_call.eq(on_call))
        .execute(conn)
        .map(drop)
}

/// An account's zone and stored working hours (JSON).
pub fn working_hours_of(
    conn: &mut DbConnection,
    id: &str,
) -> QueryResult<(String, Option<String>)> {
    accounts::table
        .find(id)
        .select((accounts::timezone, accounts::working_hours))
        .first(conn)
}

/// Stores an account's working hours (JSON) and, if given, its new zone; returns the zone now.
pub fn set_working_hours(
    conn: &mut DbConnection,
    id: &str,
    hours: &str,
    timezone: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<String> {
    if let Some(tz) = timezone {
        diesel::update(accounts::table.find(id))
            .set((accounts::timezone.eq(tz), accounts::updated_at.eq(now)))
            .execute(conn)?;
    }
    diesel::update(accounts::table.find(id))
        .set(accounts::working_hours.eq(Some(hours)))
        .execute(conn)?;
    accounts::table
        .find(id)
        .select(accounts::timezone)
        .first(conn)
}

/// An account's IANA zone.
pub fn timezone_of(conn: &mut DbConnection, id: &str) -> QueryResult<String> {
    accounts::table
        .find(id)
        .select(accounts::timezone)
        .first(conn)
}

/// Changes an account's IANA zone.
pub fn set_timezone(
    conn: &mut DbConnection,
    id: &str,
    timezone: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(accounts::table.find(id))
        .set((
            accounts::timezone.eq(timezone),
            accounts::updated_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// The clinic an account belongs to: `None` when there is no such account or it belongs to no
/// clinic (an organisation admin).
pub fn clinic_of(conn: &mut DbConnection, id: &str) -> QueryResult<Option<String>> {
    Ok(accounts::table
        .find(id)
        .select(accounts::clinic_id)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten())
}

/// The email of the account `id` while it is enabled; `None` when it is disabled or gone.
pub fn enabled_email(conn: &mut DbConnection, id: &str) -> QueryResult<Option<String>> {
    accounts::table
        .find(id)
        .filter(accounts::disabled_at.is_null())
        .select(accounts::email)
        .first::<String>(conn)
        .optional()
}

/// The ids of the enabled organisation admins, in id order.
pub fn enabled_org_admins(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    accounts::table
        .filter(accounts::role.eq("org_admin"))
        .filter(accounts::disabled_at.is_null())
        .select(accounts::id)
        .order(accounts::id.asc())
        .load(conn)
}

/// The email of the account `id`, enabled or not; `None` when there is no such account.
pub fn email_of(conn: &mut DbConnection, id: &str) -> QueryResult<Option<String>> {
    accounts::table
        .find(id)
        .select(accounts::email)
        .first(conn)
        .optional()
}

/// Clears the record number (`external_id`) of the account `id`, so that the clinic may give it
/// to someone else.
pub fn clear_external_id(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(accounts::table.find(id))
        .set((
            accounts::external_id.eq(None::<String>),
            accounts::updated_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// Leaves the erased account `id` as an empty, disabled mark: no email (a placeholder that
/// cannot receive mail), password, name, zone or working hours; disabled and erased at `stamp`.
pub fn blank_erased(conn: &mut DbConnection, id: &str, stamp: NaiveDateTime) -> QueryResult<()> {
    diesel::update(accounts::table.find(id))
        .set((
            accounts::email.eq(format!("erased-{id}@invalid")),
            accounts::password_hash.eq("!"),
            accounts::display_name.eq(None::<String>),
            accounts::timezone.eq("UTC"),
            accounts::working_hours.eq(None::<String>),
            accounts::disabled_at.eq(Some(stamp)),
            accounts::erased_at.eq(Some(stamp)),
            accounts::updated_at.eq(stamp),
        ))
        .execute(conn)
        .map(drop)
}

/// An account as its owner's export shows it.
#[derive(Debug, Clone, Queryable)]
pub struct ExportedProfile {
    /// Id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Name.
    pub display_name: Option<String>,
    /// IANA zone.
    pub timezone: String,
    /// Clinic.
    pub clinic_id: Option<String>,
    /// Created.
    pub created_at: NaiveDateTime,
}

/// The profile of the account `id` for its owner's export.
pub fn exported_profile(conn: &mut DbConnection, id: &str) -> QueryResult<ExportedProfile> {
    accounts::table
        .find(id)
        .select((
            accounts::id,
            accounts::email,
            accounts::display_name,
            accounts::timezone,
            accounts::clinic_id,
            accounts::created_at,
        ))
        .first(conn)
}
