//! The database contract shared by both backends: the portable diesel schema, the embedded
//! migration trees (one per backend, same behaviour) and the typed ids used across the server.

pub mod ids;
pub mod schema;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};

/// Migrations for PostgreSQL (production, scale-out).
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Migrations for SQLite (the embedded default).
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
