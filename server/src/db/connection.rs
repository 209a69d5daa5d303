//! The connection type over both backends.
//! It lives in a private module so the items the derive generates stay crate-internal.

/// A connection to either backend; queries written once against the portable schema run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL: production and scale-out.
    Pg(diesel::PgConnection),
    /// SQLite: the embedded default.
    Sqlite(diesel::SqliteConnection),
}
