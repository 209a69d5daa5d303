//! Sessions (refresh-token families) and their tokens. A family is one sign-in on one device;
//! each refresh spends the presented token and issues the next one in the same family. Also the
//! password hashes of accounts and the reset codes (`password_resets`) of `credentials`.

use chrono::NaiveDateTime;
use companion_schema::schema::{
    accounts, clinics, password_resets, refresh_families, refresh_tokens,
};
use diesel::prelude::*;

use crate::db::DbConnection;

/// Starts a session for `account_id` with its first refresh token.
pub fn start_session(
    conn: &mut DbConnection,
    session_id: &str,
    account_id: &str,
    token_hash: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(refresh_families::table)
        .values((
            refresh_families::id.eq(session_id),
            refresh_families::account_id.eq(account_id),
            refresh_families::created_at.eq(now),
        ))
        .execute(conn)?;
    insert_token(conn, session_id, token_hash, now, expires_at)
}

fn insert_token(
    conn: &mut DbConnection,
    session_id: &str,
    token_hash: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(token_hash),
            refresh_tokens::family_id.eq(session_id),
            refresh_tokens::issued_at.eq(now),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is spent and `next_hash` now continues the session.
    Rotated {
        /// The account.
        account_id: String,
        /// The session.
        session_id: String,
        /// The account's role (named in the new access token).
        role: String,
    },
    /// The token had already been spent: someone holds a copy. The whole session is revoked.
    Reused,
    /// Unknown, expired, or its session was revoked or its account disabled.
    Refused,
}

/// A presented refresh token with its session and account: (session id, token expiry, spent at,
/// session revoked at, account id, account disabled at, role).
type PresentedToken = (
    String,
    NaiveDateTime,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    String,
    Option<NaiveDateTime>,
    String,
);

/// Spends `presented_hash` and stores `next_hash` in its place, detecting reuse. Run inside a
/// write transaction: the revocation on reuse must commit even though the caller answers 401.
pub fn rotate(
    conn: &mut DbConnection,
    presented_hash: &str,
    next_hash: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<Rotation> {
    let found: Option<PresentedToken> = refresh_tokens::table
        .inner_join(refresh_families::table.inner_join(accounts::table))
        .filter(refresh_tokens::token_hash.eq(presented_hash))
        .select((
            refresh_tokens::family_id,
            refresh_tokens::expires_at,
            refresh_tokens::spent_at,
            refresh_families::revoked_at,
            refresh_families::account_id,
            accounts::disabled_at,
            accounts::role,
        ))
        .first(conn)
        .optional()?;
    let Some((session_id, token_expires, spent_at, revoked_at, account_id, disabled_at, role)) =
        found
    else {
        return Ok(Rotation::Refused);
    };
    if revoked_at.is_some() || disabled_at.is_some() {
        return Ok(Rotation::Refused);
    }
    if spent_at.is_some() {
        revoke_session(conn, &session_id, now, "refresh_token_reused")?;
        return Ok(Rotation::Reused);
    }
    if token_expires <= now {
        return Ok(Rotation::Refused);
    }
    // Conditional on still being unspent, so two concurrent refreshes cannot both win.
    let spend = SpendToken {
        token_hash: presented_hash,
        now,
    };
    let spent = crate::per_backend!(conn, |c| spend.execute(c))?;
    if spent == 0 {
        revoke_session(conn, &session_id, now, "refresh_token_reused")?;
        return Ok(Rotation::Reused);
    }
    insert_token(conn, &session_id, next_hash, now, expires_at)?;
    Ok(Rotation::Rotated {
        account_id,
        session_id,
        role,
    })
}

/// Revokes one session (logout, or reuse detected).
pub fn revoke_session(
    conn: &mut DbConnection,
    session_id: &str,
    now: NaiveDateTime,
    reason: &str,
) -> QueryResult<usize> {
    diesel::update(
        refresh_families::table
            .filter(refresh_families::id.eq(session_id))
            .filter(refresh_families::revoked_at.is_null()),
    )
    .set((
        refresh_families::revoked_at.eq(now),
        refresh_families::revoked_reason.eq(reason),
    ))
    .execute(conn)
}

/// Revokes every session of an account (disabling it).
pub fn revoke_all_sessions(
    conn: &mut DbConnection,
    account_id: &str,
    now: NaiveDateTime,
    reason: &str,
) -> QueryResult<usize> {
    diesel::update(
        refresh_families::table
            .filter(refresh_families::account_id.eq(account_id))
            .filter(refresh_families::revoked_at.is_null()),
    )
    .set((
        refresh_families::revoked_at.eq(now),
        refresh_families::revoked_reason.eq(reason),
    ))
    .execute(conn)
}

/// What a unit of work needs to know about a live session: whether it still stands, who the
/// caller is, and what a check-in's rules need of the caller's account and clinic (so that a
/// check-in reads them with the session instead of in a statement of its own, and no cache can
/// go stale across replicas).
#[derive(Debug, Clone, Queryable)]
pub struct SessionState {
    /// Role name.
    pub role: String,
    /// Clinic.
    pub clinic_id: Option<String>,
    /// Set if the account is disabled.
    pub disabled_at: Option<NaiveDateTime>,
    /// Set if the session was revoked.
    pub revoked_at: Option<NaiveDateTime>,
    /// The account's IANA time zone.
    pub timezone: String,
    /// The clinic's alert thresholds (JSON), if it set any.
    pub alert_thresholds: Option<String>,
}

/// Looks up the session behind an access token (one indexed join per request, and the clinic by
/// its key).
pub fn session_state(
    conn: &mut DbConnection,
    session_id: &str,
    account_id: &str,
) -> QueryResult<Option<SessionState>> {
    refresh_families::table
        .inner_join(accounts::table.left_join(clinics::table))
        .filter(refresh_families::id.eq(session_id))
        .filter(refresh_families::account_id.eq(account_id))
        .select((
            accounts::role,
            accounts::clinic_id,
            accounts::disabled_at,
            refresh_families::revoked_at,
            accounts::timezone,
            clinics::alert_thresholds.nullable(),
        ))
        .first(conn)
        .optional()
}

/// Deletes refresh tokens that expired before `before` (housekeeping).
pub fn purge_expired_tokens(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(refresh_tokens::table.filter(refresh_tokens::expires_at.lt(before)))
        .execute(conn)
}

/// Spends a refresh token if it is still unspent, written out by hand so that every refresh
/// uses one prepared statement (diesel keeps no `UPDATE` prepared).
#[derive(Debug, Clone, Copy)]
struct SpendToken<'a> {
    token_hash: &'a str,
    now: NaiveDateTime,
}

impl diesel::query_builder::QueryId for SpendToken<'_> {
    type QueryId = SpendToken<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Conn> RunQueryDsl<Conn> for SpendToken<'_> {}

impl<DB> diesel::query_builder::QueryFragment<DB> for SpendToken<'_>
where
    DB: diesel::backend::Backend,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
    NaiveDateTime: diesel::serialize::ToSql<diesel::sql_types::Timestamp, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        out.push_sql(r#"UPDATE "refresh_tokens" SET "spent_at" = "#);
        out.push_bind_param::<diesel::sql_types::Timestamp, _>(&self.now)?;
        out.push_sql(r#" WHERE "refresh_tokens"."token_hash" = "#);
        out.push_bind_param::<diesel::sql_types::Text, _>(self.token_hash)?;
        out.push_sql(r#" AND "refresh_tokens"."spent_at" IS NULL"#);
        Ok(())
    }
}

/// An account's email and stored password hash.
pub fn credentials_of(
    conn: &mut DbConnection,
    account_id: &str,
) -> QueryResult<Option<(String, String)>> {
    accounts::table
        .find(account_id)
        .select((accounts::email, accounts::password_hash))
        .first(conn)
        .optional()
}

/// Stores `new_hash` as the account's password hash if the stored one is still `expected`,
/// stamping `updated_at`; returns how many rows changed (0 when it was changed meanwhile).
pub fn replace_password_hash(
    conn: &mut DbConnection,
    account_id: &str,
    expected: &str,
    new_hash: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        accounts::table
            .find(account_id)
            .filter(accounts::password_hash.eq(expected)),
    )
    .set((
        accounts::password_hash.eq(new_hash),
        accounts::updated_at.eq(at),
    ))
    .execute(conn)
}

/// Stores `new_hash` as the account's password hash, stamping `updated_at`.
pub fn set_password_hash(
    conn: &mut DbConnection,
    account_id: &str,
    new_hash: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(accounts::table.find(account_id))
        .set((
            accounts::password_hash.eq(new_hash),
            accounts::updated_at.eq(at),
        ))
        .execute(conn)
        .map(drop)
}

/// Revokes every open session (refresh family) of the account except `keep`, for `reason`;
/// returns how many ended.
pub fn revoke_other_sessions(
    conn: &mut DbConnection,
    account_id: &str,
    keep: &str,
    at: NaiveDateTime,
    reason: &str,
) -> QueryResult<usize> {
    diesel::update(
        refresh_families::table
            .filter(refresh_families::account_id.eq(account_id))
            .filter(refresh_families::id.ne(keep))
            .filter(refresh_families::revoked_at.is_null()),
    )
    .set((
        refresh_families::revoked_at.eq(at),
        refresh_families::revoked_reason.eq(reason),
    ))
    .execute(conn)
}

/// Marks every unused reset code of the account used at `at`; returns how many.
pub fn void_reset_codes(
    conn: &mut DbConnection,
    account_id: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        password_resets::table
            .filter(password_resets::account_id.eq(account_id))
            .filter(password_resets::used_at.is_null()),
    )
    .set(password_resets::used_at.eq(Some(at)))
    .execute(conn)
}

/// Stores a reset code (its digest) for the account, issued by `issued_by` at `at`.
pub fn insert_reset_code(
    conn: &mut DbConnection,
    account_id: &str,
    code_hash: &str,
    issued_by: &str,
    at: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(password_resets::table)
        .values((
            password_resets::id.eq(uuid::Uuid::now_v7().to_string()),
            password_resets::account_id.eq(account_id),
            password_resets::code_hash.eq(code_hash),
            password_resets::issued_by.eq(issued_by),
            password_resets::issued_at.eq(at),
            password_resets::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// The id and clinic of the enabled account that uses `email`.
pub fn enabled_account_by_email(
    conn: &mut DbConnection,
    email: &str,
) -> QueryResult<Option<(String, Option<String>)>> {
    accounts::table
        .filter(accounts::email.eq(email))
        .filter(accounts::disabled_at.is_null())
        .select((accounts::id, accounts::clinic_id))
        .first(conn)
        .optional()
}

/// A current reset code as found: the code's id, and its account's id, clinic and `disabled_at`.
pub type ResetMatch = (String, String, Option<String>, Option<NaiveDateTime>);

/// The unused reset code with digest `code_hash`, unexpired at `at`, of the account that uses
/// `email`: the code's id, and the account's id, clinic and `disabled_at`.
pub fn current_reset_code(
    conn: &mut DbConnection,
    code_hash: &str,
    email: &str,
    at: NaiveDateTime,
) -> QueryResult<Option<ResetMatch>> {
    password_resets::table
        .inner_join(accounts::table.on(accounts::id.eq(password_resets::account_id)))
        .filter(password_resets::code_hash.eq(code_hash))
        .filter(password_resets::used_at.is_null())
        .filter(password_resets::expires_at.gt(at))
        .filter(accounts::email.eq(email))
        .select((
            password_resets::id,
            accounts::id,
            accounts::clinic_id,
            accounts::disabled_at,
        ))
        .first(conn)
        .optional()
}

/// Spends the reset code `reset_id` at `at` if it is still unused; returns how many rows changed.
pub fn spend_reset_code(
    conn: &mut DbConnection,
    reset_id: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        password_resets::table
            .find(reset_id)
            .filter(password_resets::used_at.is_null()),
    )
    .set(password_resets::used_at.eq(Some(at)))
    .execute(conn)
}

/// Deletes every session of `account_id` with its refresh tokens (the account is being erased).
pub fn delete_sessions_of(conn: &mut DbConnection, account_id: &str) -> QueryResult<()> {
    let families = refresh_families::table
        .filter(refresh_families::account_id.eq(account_id))
        .select(refresh_families::id);
    diesel::delete(refresh_tokens::table.filter(refresh_tokens::family_id.eq_any(families)))
        .execute(conn)?;
    diesel::delete(refresh_families::table.filter(refresh_families::account_id.eq(account_id)))
        .execute(conn)?;
    Ok(())
}

/// Deletes every password reset code of `account_id`, used or not (the account is being erased).
pub fn delete_reset_codes_of(conn: &mut DbConnection, account_id: &str) -> QueryResult<usize> {
    diesel::delete(password_resets::table.filter(password_resets::account_id.eq(account_id)))
        .execute(conn)
}

/// A sign-in (a session) as its account's export shows it.
#[derive(Debug, Clone, Queryable)]
pub struct ExportedSignIn {
    /// Id.
    pub id: String,
    /// Signed in.
    pub created_at: NaiveDateTime,
    /// Signed out or revoked.
    pub revoked_at: Option<NaiveDateTime>,
}

/// Every sign-in of `account_id`, oldest first, for its owner's export.
pub fn exported_sign_ins_of(
    conn: &mut DbConnection,
    account_id: &str,
) -> QueryResult<Vec<ExportedSignIn>> {
    refresh_families::table
        .filter(refresh_families::account_id.eq(account_id))
        .order(refresh_families::created_at)
        .select((
            refresh_families::id,
            refresh_families::created_at,
            refresh_families::revoked_at,
        ))
        .load(conn)
}
