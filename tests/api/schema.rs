//! The two migration trees give the same behaviour: the same constraints hold on both.

use diesel::RunQueryDsl;

use crate::both;
use crate::harness::{Backend, TestApp};

both!(
    constraints_behave_the_same_on_both_backends,
    text_compares_byte_by_byte_on_both_backends
);

async fn constraints_behave_the_same_on_both_backends(backend: Backend) {
    let app = TestApp::new(backend).await;
    let run = |sql: &'static str| {
        let db = app.app.db.clone();
        async move {
            db.run(move |conn| diesel::sql_query(sql).execute(conn))
                .await
        }
    };
    run("INSERT INTO clinics (id, name, timezone, created_at) VALUES ('c1', 'C', 'UTC', '2026-01-01 00:00:00')")
        .await
        .expect("a valid clinic");
    run("INSERT INTO accounts (id, email, password_hash, role, clinic_id, timezone, created_at, updated_at) \
         VALUES ('a1', 'a@x.org', 'h', 'patient', 'c1', 'UTC', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
        .await
        .expect("a valid account");
    let refused = [
        // duplicate email
        "INSERT INTO accounts (id, email, password_hash, role, clinic_id, timezone, created_at, updated_at) \
         VALUES ('a2', 'a@x.org', 'h', 'patient', 'c1', 'UTC', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        // unknown role
        "INSERT INTO accounts (id, email, password_hash, role, clinic_id, timezone, created_at, updated_at) \
         VALUES ('a3', 'b@x.org', 'h', 'root', 'c1', 'UTC', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        // clinic that does not exist
        "INSERT INTO accounts (id, email, password_hash, role, clinic_id, timezone, created_at, updated_at) \
         VALUES ('a4', 'c@x.org', 'h', 'patient', 'nope', 'UTC', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        // a patient without a clinic
        "INSERT INTO accounts (id, email, password_hash, role, clinic_id, timezone, created_at, updated_at) \
         VALUES ('a5', 'd@x.org', 'h', 'patient', NULL, 'UTC', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        // an org admin inside a clinic
        "INSERT INTO accounts (id, email, password_hash, role, clinic_id, timezone, created_at, updated_at) \
         VALUES ('a6', 'e@x.org', 'h', 'org_admin', 'c1', 'UTC', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        // a session for an account that does not exist
        "INSERT INTO refresh_families (id, account_id, created_at) VALUES ('f1', 'ghost', '2026-01-01 00:00:00')",
        // an audit row that names no actor
        "INSERT INTO audit_events (id, at, action) VALUES ('e1', '2026-01-01 00:00:00', 'x.read')",
        // an audit row that names an account and a system client at once
        "INSERT INTO audit_events (id, at, actor_id, actor_client_id, action) \
         VALUES ('e2', '2026-01-01 00:00:00', 'a1', 'a1', 'x.read')",
        // an invitation granting org_admin
        "INSERT INTO invitations (id, clinic_id, role, code_hash, created_by, created_at, expires_at) \
         VALUES ('i1', 'c1', 'org_admin', 'h1', 'a1', '2026-01-01 00:00:00', '2026-01-02 00:00:00')",
        // a browser subscription without its keys, a phone with a subscription's keys, and a
        // platform nobody pushes to
        "INSERT INTO devices (id, account_id, platform, token, active, created_at, last_seen_at) \
         VALUES ('d1', 'a1', 'web', 'https://push.example.net/1', TRUE, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        "INSERT INTO devices (id, account_id, platform, token, active, created_at, last_seen_at, web_p256dh, web_auth) \
         VALUES ('d2', 'a1', 'ios', 'tok', TRUE, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 'k', 'a')",
        "INSERT INTO devices (id, account_id, platform, token, active, created_at, last_seen_at) \
         VALUES ('d3', 'a1', 'windows', 'tok3', TRUE, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
    ];
    run("INSERT INTO devices (id, account_id, platform, token, active, created_at, last_seen_at, web_p256dh, web_auth) \
         VALUES ('d4', 'a1', 'web', 'https://push.example.net/4', TRUE, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 'k', 'a')")
        .await
        .expect("a browser subscription with its keys");
    for sql in refused {
        assert!(run(sql).await.is_err(), "{backend:?} accepted: {sql}");
    }
}

#[derive(diesel::QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    v: String,
}

/// Text sorts and compares by its bytes on both backends, whatever locale the PostgreSQL
/// database was created with: ORDER BY and the keyset cursors give Rust's own order of the
/// strings, and PostgreSQL's btrees on ids compare with memcmp rather than strcoll.
async fn text_compares_byte_by_byte_on_both_backends(backend: Backend) {
    let app = TestApp::new(backend).await;
    let ids = ["b", "B", "\u{e9}", "Z", "_x", "a-1", "a1", "A", "a"];
    let stored: Vec<String> = {
        let db = app.app.db.clone();
        db.run(move |conn| {
            for id in ids {
                diesel::sql_query(format!(
                    "INSERT INTO clinics (id, name, timezone, created_at) \
                     VALUES ('{id}', 'C', 'UTC', '2026-01-01 00:00:00')"
                ))
                .execute(conn)?;
            }
            diesel::sql_query("SELECT id AS v FROM clinics ORDER BY id").load::<Text>(conn)
        })
        .await
        .expect("clinics in order")
        .into_iter()
        .map(|t| t.v)
        .collect()
    };
    let mut expected: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(
        stored, expected,
        "{backend:?} orders text by something else than its bytes"
    );

    // No column compares otherwise: on PostgreSQL each text column is declared COLLATE "C"
    // (the database's default collation is the locale's); SQLite compares bytes unless a
    // column asks for another collation.
    let sql = match backend {
        Backend::Postgres => {
            "SELECT CAST(c.table_name || '.' || c.column_name AS TEXT) AS v \
             FROM information_schema.columns c \
             JOIN information_schema.tables t \
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
               AND c.table_name <> '__diesel_schema_migrations' \
               AND c.collation_name IS DISTINCT FROM 'C' \
               AND c.data_type IN ('text', 'character varying', 'character')"
        }
        Backend::Sqlite => {
            "SELECT name AS v FROM sqlite_master \
             WHERE sql LIKE '%COLLATE%' AND name <> '__diesel_schema_migrations'"
        }
    };
    let db = app.app.db.clone();
    let other: Vec<String> = db
        .run(move |conn| diesel::sql_query(sql).load::<Text>(conn))
        .await
        .expect("the schema's columns")
        .into_iter()
        .map(|t| t.v)
        .collect();
    assert!(
        other.is_empty(),
        "{backend:?}: these text columns do not compare byte by byte (declare them TEXT COLLATE \"C\"): {other:?}"
    );
}
