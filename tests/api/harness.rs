//! The test harness: a `TestApp` per test on a fresh database (a temp SQLite file, or a new
//! PostgreSQL database cloned from a migrated template), requests sent in-process, and fixtures
//! for the people of two clinics.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::Utc;
use companion::app::{App, AppState};
use companion::clock::ManualClock;
use companion::config::Config;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The signing key every test app uses (so tests can forge tokens with other keys).
pub const TEST_KEY_B64: &str = "dGVzdC1zaWduaW5nLWtleS1mb3ItY29tcGFuaW9uLXRlc3Rz";
pub const TEST_KID: &str = "test";
pub const PASSWORD: &str = "correct horse battery staple";

/// Runs each named `async fn(Backend)` as two tests: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Postgres).await
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Databases

fn pg_server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("COMPANION_TEST_PG_URL") {
            return url;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/start-postgres.sh");
        let output = std::process::Command::new("bash")
            .arg(script)
            .output()
            .expect("run tests/start-postgres.sh");
        assert!(
            output.status.success(),
            "PostgreSQL is required for the postgres half of the suite and could not be started: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    })
}

fn with_database(server_url: &str, database: &str) -> String {
    let mut url = url::Url::parse(server_url).unwrap();
    url.set_path(&format!("/{database}"));
    url.to_string()
}

fn migrations_fingerprint() -> String {
    use sha2::Digest;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/migrations/postgres");
    let mut files: Vec<_> = walk(std::path::Path::new(dir));
    files.sort();
    let mut hasher = sha2::Sha256::new();
    for file in files {
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&file).unwrap());
    }
    hex::encode(hasher.finalize())[..12].to_owned()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A migrated template database, built once per fingerprint of the migration files (and
/// shared by concurrent test processes through an advisory lock).
fn pg_template() -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let server = pg_server_url();
        let name = format!("companion_tmpl_{}", migrations_fingerprint());
        let mut admin = PgConnection::establish(server)
            .unwrap_or_else(|e| panic!("PostgreSQL at {server} is required: {e}"));
        admin
            .batch_execute("SELECT pg_advisory_lock(4242001)")
            .unwrap();
        let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"
        )))
        .get_result(&mut admin)
        .unwrap();
        if !exists {
            let building = format!("{name}_building");
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {building}"))
                .unwrap();
            {
                use diesel_migrations::MigrationHarness;
                let mut conn = PgConnection::establish(&with_database(server, &building)).unwrap();
                conn.run_pending_migrations(companion_schema::POSTGRES_MIGRATIONS)
                    .unwrap();
            }
            admin
                .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                .unwrap();
        }
        admin
            .batch_execute("SELECT pg_advisory_unlock(4242001)")
            .unwrap();
        name
    })
}

/// A database that exists for one test.
pub enum TestDb {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { name: String },
}

impl TestDb {
    fn create(backend: Backend) -> (Self, String, tempfile::TempDir) {
        let data_dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                (TestDb::Sqlite { _dir: dir }, url, data_dir)
            }
            Backend::Postgres => {
                let template = pg_template();
                let name = format!("companion_t_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::establish(pg_server_url()).unwrap();
                admin
                    .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
                    .unwrap();
                let url = with_database(pg_server_url(), &name);
                (TestDb::Postgres { name }, url, data_dir)
            }
        }
    }

    /// A fresh, empty, unmigrated PostgreSQL database (for the command-line tests).
    pub fn empty_postgres() -> (Self, String) {
        let name = format!("companion_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(pg_server_url()).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let url = with_database(pg_server_url(), &name);
        (TestDb::Postgres { name }, url)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { name } = self
            && let Ok(mut admin) = PgConnection::establish(pg_server_url())
        {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The application under test

pub struct TestApp {
    pub app: Arc<App>,
    pub clock: Arc<ManualClock>,
    router: Router,
    source: BTreeMap<String, String>,
    _data_dir: tempfile::TempDir,
    _db: TestDb,
}

/// A response as a client sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }

    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }
}

impl TestApp {
    pub async fn new(backend: Backend) -> Self {
        Self::with_settings(backend, &[]).await
    }

    /// An app with extra configuration settings (environment-variable names and values).
    pub async fn with_settings(backend: Backend, settings: &[(&str, &str)]) -> Self {
        Self::build(backend, settings, |_| {}).await
    }

    /// An app with extra settings, adjusted by `customize` before it starts (e.g. to put a
    /// scripted push gateway in place).
    pub async fn build(
        backend: Backend,
        settings: &[(&str, &str)],
        customize: impl FnOnce(&mut App),
    ) -> Self {
        let (db, url, data_dir) = TestDb::create(backend);
        let mut source: BTreeMap<String, String> = BTreeMap::from([
            ("DATABASE_URL".into(), url),
            (
                "COMPANION_DATA_DIR".into(),
                data_dir.path().display().to_string(),
            ),
            (
                "COMPANION_JWT_KEYS".into(),
                format!("{TEST_KID}={TEST_KEY_B64}"),
            ),
            ("COMPANION_DB_POOL_SIZE".into(), "4".into()),
            ("COMPANION_AUTH_RATE_LIMIT".into(), "1000".into()),
            // No worker runs beside a request here: tests drive the jobs themselves.
            ("COMPANION_SAFETY_ANSWER_WAIT_MS".into(), "0".into()),
            ("COMPANION_PUBLIC_URL".into(), "http://localhost".into()),
        ]);
        for (key, value) in settings {
            source.insert((*key).into(), (*value).into());
        }
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let app = Self::app_on(&source, clock.clone(), customize);
        if backend == Backend::Sqlite {
            app.db.migrate().await.expect("migrations");
        }
        let router = companion::router::router(AppState(app.clone()));
        TestApp {
            app,
            clock,
            router,
            source,
            _data_dir: data_dir,
            _db: db,
        }
    }

    fn app_on(
        source: &BTreeMap<String, String>,
        clock: Arc<ManualClock>,
        customize: impl FnOnce(&mut App),
    ) -> Arc<App> {
        let config = Config::from_source(source).expect("test configuration");
        let mut app = App::new(config, clock).expect("app");
        customize(&mut app);
        Arc::new(app)
    }

    /// Another application on the same database and clock: a second process, as far as the
    /// database can tell (its own pool, its own workers).
    pub fn another_process(&self, customize: impl FnOnce(&mut App)) -> Arc<App> {
        Self::app_on(&self.source, self.clock.clone(), customize)
    }

    /// An app whose FCM gateway talks to a fake FCM server over HTTP.
    pub async fn with_fake_fcm(
        backend: Backend,
        settings: &[(&str, &str)],
    ) -> (Self, companion_fake_push::FakeFcm) {
        let fake = companion_fake_push::FakeFcm::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap().keep();
        let key_file = dir.join("service-account.json");
        let account = json!({
            "type": "service_account",
            "project_id": "fake-project",
            "client_email": "push@fake-project.iam.example",
            "private_key": std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/fcm-test-key.pem")).unwrap(),
            "token_uri": fake.token_url(),
        });
        std::fs::write(&key_file, account.to_string()).unwrap();
        let key_path = key_file.display().to_string();
        let base = fake.base_url();
        let mut all: Vec<(&str, &str)> = vec![
            ("COMPANION_FCM_SERVICE_ACCOUNT_FILE", &key_path),
            ("COMPANION_FCM_BASE_URL", &base),
        ];
        all.extend_from_slice(settings);
        (Self::with_settings(backend, &all).await, fake)
    }

    /// Runs the job worker until nothing is due (at the test clock's time); returns the number of
    /// jobs run.
    pub async fn run_jobs(&self) -> usize {
        companion::jobs::runner::Runner::new(self.app.clone())
            .drain()
            .await
            .expect("worker")
    }

    /// One pass of the workers at the test clock's time, as `companion work` makes every
    /// `COMPANION_PROMPT_INTERVAL`: prompts (expire, send, remind, plan ahead), then jobs until
    /// none is due.
    pub async fn run_workers(&self) -> companion::prompt::passes::TickReport {
        let report = companion::prompt::passes::tick(&self.app)
            .await
            .expect("prompt pass");
        self.run_jobs().await;
        report
    }

    /// Sends a request built by the caller and answers the body's bytes as they came (for
    /// compressed or binary answers).
    pub async fn send_bytes(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, bytes.to_vec())
    }

    /// Sends a request built by the caller.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => builder.body(Body::empty()).unwrap(),
        };
        self.send(request).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn post_anonymous(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, None, Some(body)).await
    }

    // -----------------------------------------------------------------------------------------
    // Fixtures

    /// Creates an organisation admin the way the command line does, and signs it in.
    pub async fn org_admin(&self) -> Actor {
        let email = format!("admin-{}@example.org", uuid::Uuid::new_v4().simple());
        let id = companion::account::use_cases::create_org_admin(
            &self.app.db,
            &email,
            PASSWORD,
            self.app.now(),
        )
        .await
        .unwrap();
        let tokens = self.login(&email, PASSWORD).await.expect(StatusCode::OK);
        Actor::from_tokens(id, email, &tokens.body)
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post_anonymous(
            "/v1/auth/login",
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// A fresh access token for `who` (signs in again): for tests that move the clock past
    /// the access-token lifetime.
    pub async fn token(&self, who: &Actor) -> String {
        let reply = self
            .login(&who.email, PASSWORD)
            .await
            .expect(StatusCode::OK);
        reply.body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn create_clinic(&self, admin: &Actor, name: &str) -> String {
        let reply = self
            .post(
                "/v1/clinics",
                &admin.access,
                json!({"name": name, "timezone": "America/Chicago"}),
            )
            .await
            .expect(StatusCode::CREATED);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    pub async fn invite(&self, inviter: &Actor, clinic_id: &str, role: &str) -> String {
        let reply = self
            .post(
                &format!("/v1/clinics/{clinic_id}/invitations"),
                &inviter.access,
                json!({"role": role}),
            )
            .await
            .expect(StatusCode::CREATED);
        reply.body["code"].as_str().unwrap().to_owned()
    }

    pub async fn accept(&self, code: &str, email: &str) -> Reply {
        self.post_anonymous(
            "/v1/invitations/accept",
            json!({"code": code, "email": email, "password": PASSWORD, "display_name": "Test Person"}),
        )
        .await
    }

    /// Invites someone into `clinic_id` with `role` and has them accept.
    pub async fn join(&self, inviter: &Actor, clinic_id: &str, role: &str) -> Actor {
        let code = self.invite(inviter, clinic_id, role).await;
        let email = format!("{role}-{}@example.org", uuid::Uuid::new_v4().simple());
        let reply = self.accept(&code, &email).await.expect(StatusCode::CREATED);
        let me = self
            .get("/v1/me", reply.body["access_token"].as_str().unwrap())
            .await;
        Actor::from_tokens(
            me.body["id"].as_str().unwrap().to_owned(),
            email,
            &reply.body,
        )
    }

    /// Two clinics, each with an admin, a clinician and a patient (and a second patient in A).
    pub async fn world(&self) -> World {
        let org_admin = self.org_admin().await;
        let clinic_a = self.create_clinic(&org_admin, "Clinic A").await;
        let clinic_b = self.create_clinic(&org_admin, "Clinic B").await;
        let admin_a = self.join(&org_admin, &clinic_a, "clinic_admin").await;
        let admin_b = self.join(&org_admin, &clinic_b, "clinic_admin").await;
        let clinician_a = self.join(&admin_a, &clinic_a, "clinician").await;
        let clinician_b = self.join(&admin_b, &clinic_b, "clinician").await;
        let patient_a = self.join(&clinician_a, &clinic_a, "patient").await;
        let patient_a2 = self.join(&clinician_a, &clinic_a, "patient").await;
        let patient_b = self.join(&clinician_b, &clinic_b, "patient").await;
        World {
            org_admin,
            clinic_a,
            clinic_b,
            admin_a,
            admin_b,
            clinician_a,
            clinician_b,
            patient_a,
            patient_a2,
            patient_b,
        }
    }

    /// Counts rows of a table (for checks the API does not expose, such as audit rows).
    pub async fn count(&self, sql: &'static str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        self.app
            .db
            .run(move |conn| diesel::sql_query(sql).get_result::<Count>(conn))
            .await
            .unwrap()
            .n
    }
}

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: String,
    pub email: String,
    pub access: String,
    pub refresh: String,
}

impl Actor {
    fn from_tokens(id: String, email: String, tokens: &Value) -> Self {
        Actor {
            id,
            email,
            access: tokens["access_token"].as_str().unwrap().to_owned(),
            refresh: tokens["refresh_token"].as_str().unwrap().to_owned(),
        }
    }
}

pub struct World {
    pub org_admin: Actor,
    pub clinic_a: String,
    pub clinic_b: String,
    pub admin_a: Actor,
    pub admin_b: Actor,
    pub clinician_a: Actor,
    pub clinician_b: Actor,
    pub patient_a: Actor,
    pub patient_a2: Actor,
    pub patient_b: Actor,
}

/// Asserts an error reply has our error shape with `status` and `code`.
#[track_caller]
pub fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text);
    assert_eq!(reply.code(), code, "body: {}", reply.text);
    assert!(
        reply.body["error"]["message"].is_string(),
        "body: {}",
        reply.text
    );
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(
            reply
                .headers
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.to_str().unwrap()),
            Some("Bearer")
        );
    }
}
