//! The database: one diesel connection type over PostgreSQL and SQLite, a pool that runs queries
//! on the blocking threads, transactions that behave the same on both backends, and migrations.
//!
//! The backend is chosen from the URL scheme here (not by `MultiConnection::establish`, which
//! tries each backend in turn and reports only a generic error), so a bad URL or an unreachable
//! server is reported with its real cause.

use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_sync::SyncWrapper;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel_migrations::MigrationHarness;

use crate::config::DatabaseTarget;

pub mod batch;
mod connection;
mod writer;

pub use connection::DbConnection;

/// Which backend a pool talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

/// Why a query could not run.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had (server down, pool exhausted past its wait timeout).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The query itself failed.
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// Seconds libpq may spend connecting (unless the URL sets its own `connect_timeout`). Its
/// default waits as long as TCP does, which for a host that drops packets is minutes: a blocking
/// thread held and a request hanging, where a 503 is the right answer.
const CONNECT_TIMEOUT_SECS: u32 = 5;

/// `url` with libpq's `connect_timeout` set, unless it sets one already.
pub fn with_connect_timeout(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.query_pairs().any(|(k, _)| k == "connect_timeout") => {
            parsed
                .query_pairs_mut()
                .append_pair("connect_timeout", &CONNECT_TIMEOUT_SECS.to_string());
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Opens one connection to the configured database, with the per-connection SQLite settings.
pub fn establish(target: &DatabaseTarget) -> Result<DbConnection, String> {
    match target {
        DatabaseTarget::Postgres(url) => {
            diesel::PgConnection::establish(&with_connect_timeout(url.expose()))
                .map(DbConnection::Pg)
                .map_err(|e| {
                    format!(
                        "cannot connect to {}: {}",
                        target.describe(),
                        e.to_string().trim()
                    )
                })
        }
        DatabaseTarget::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                crate::private_files::create_dir(parent).map_err(|e| {
                    format!(
                        "cannot create the folder {} for SQLite: {e}",
                        parent.display()
                    )
                })?;
            }
            // The database (and the WAL and shared-memory files SQLite creates with the
            // database's own permissions) is readable by this server's user only.
            if !path.exists() {
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                if let Err(e) = options.open(path)
                    && e.kind() != std::io::ErrorKind::AlreadyExists
                {
                    return Err(format!("cannot create {}: {e}", target.describe()));
                }
            }
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.as_os_str().to_owned();
                file.push(suffix);
                crate::private_files::restrict(std::path::Path::new(&file))
                    .map_err(|e| format!("cannot restrict {}: {e}", target.describe()))?;
            }
            let path_text = path
                .to_str()
                .ok_or_else(|| format!("the SQLite path {} is not UTF-8", path.display()))?;
            let mut conn = diesel::SqliteConnection::establish(path_text)
                .map_err(|e| format!("cannot open {}: {e}", target.describe()))?;
            // WAL lets readers run beside the writer; the busy timeout makes a writer wait for
            // the lock instead of failing; foreign keys are off by default in SQLite.
            conn.batch_execute(
                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                 PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
            )
            .map_err(|e| format!("cannot configure {}: {e}", target.describe()))?;
            Ok(DbConnection::Sqlite(conn))
        }
    }
}

/// The SQL text of every statement the pool's connections send, in order, without their bound
/// values: how a test compares what a request costs with what the benchmark replays. Beside it,
/// the text of every statement a connection kept as a prepared statement: one sent and never
/// kept is parsed and planned anew each time. Off unless a pool is built with one
/// ([`Db::with_statement_log`]).
#[derive(Debug, Clone, Default)]
pub struct StatementLog {
    sent: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    prepared: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl StatementLog {
    /// Everything logged so far, emptying the log.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.sent.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether any connection has kept `sql` as a prepared statement.
    pub fn was_prepared(&self, sql: &str) -> bool {
        self.prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(sql.trim())
    }

    fn attach(&self, conn: &mut DbConnection) {
        let sent = self.sent.clone();
        let prepared = self.prepared.clone();
        let record = move |event: diesel::connection::InstrumentationEvent<'_>| match event {
            diesel::connection::InstrumentationEvent::StartQuery { query, .. } => {
                let text = query.to_string();
                // Diesel appends the bound values after this marker; only the SQL is kept.
                let sql = text.split(" -- binds: ").next().unwrap_or_default().trim();
                sent.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(sql.to_owned());
            }
            diesel::connection::InstrumentationEvent::CacheQuery { sql, .. } => {
                prepared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(sql.trim().to_owned());
            }
            _ => {}
        };
        match conn {
            DbConnection::Pg(c) => c.set_instrumentation(record),
            DbConnection::Sqlite(c) => c.set_instrumentation(record),
        }
    }
}

/// Opens a connection for the pool or the SQLite writer, with the statement log attached if any.
fn open(target: &DatabaseTarget, log: Option<&StatementLog>) -> Result<DbConnection, DbError> {
    let mut conn = establish(target).map_err(DbError::Unavailable)?;
    if let Some(log) = log {
        log.attach(&mut conn);
    }
    Ok(conn)
}

/// Creates pooled connections for deadpool.
#[derive(Debug)]
pub struct ConnectionManager {
    target: DatabaseTarget,
    log: Option<StatementLog>,
}

impl managed::Manager for ConnectionManager {
    type Type = SyncWrapper<DbConnection>;
    type Error = DbError;

    async fn create(&self) -> Result<Self::Type, Self::Error> {
        let target = self.target.clone();
        let log = self.log.clone();
        SyncWrapper::new(Runtime::Tokio1, move || open(&target, log.as_ref())).await
    }

    async fn recycle(&self, conn: &mut Self::Type, _: &Metrics) -> RecycleResult<Self::Error> {
        if conn.is_mutex_poisoned() {
            return Err(RecycleError::message("a query panicked on this connection"));
        }
        // deadpool recycles on every checkout. The connection is idle here, so its lock is free:
        // read the flag in place rather than through `interact`, which would cost a hop to the
        // blocking pool (and back) on every request just to read it.
        let healthy = match conn.try_lock() {
            Ok(mut guard) => {
                !<DbConnection as Connection>::TransactionManager::is_broken_transaction_manager(
                    &mut *guard,
                )
            }
            // Still held by a query that outlived its caller (a cancelled request): not reusable.
            Err(_) => false,
        };
        if healthy {
            Ok(())
        } else {
            Err(RecycleError::message(
                "connection left in a broken transaction, or still busy",
            ))
        }
    }
}

type Pool = managed::Pool<ConnectionManager>;

/// The pooled database handle held by `App`.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    backend: Backend,
    /// SQLite has one writer at a time: write transactions of this process queue here, in order,
    /// for one thread with a connection of its own ([`writer`]), instead of in SQLite's busy
    /// handler, which sleeps and retries (tens of milliseconds of tail latency under load). The
    /// busy timeout still covers other processes on the same file.
    writer: Option<std::sync::Arc<writer::Writer>>,
    /// While the database cannot be reached, every query fails: one line when that starts, one
    /// per interval with the count of failures, one when it answers again (not one per query).
    outage: std::sync::Arc<crate::log_summary::LogSummary>,
}

/// How often a continuing outage is reported.
const OUTAGE_REPORT_INTERVAL: Duration = Duration::from_secs(10);

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .field("status", &self.pool.status())
            .finish()
    }
}

impl Db {
    /// Builds a pool (and, for SQLite, its writer thread); no connection is opened until first
    /// use.
    pub fn new(target: &DatabaseTarget, size: usize) -> Result<Self, String> {
        Self::build(target, size, None)
    }

    /// Like [`Db::new`], every statement its connections send recorded in `log`.
    pub fn with_statement_log(
        target: &DatabaseTarget,
        size: usize,
        log: StatementLog,
    ) -> Result<Self, String> {
        Self::build(target, size, Some(log))
    }

    fn build(
        target: &DatabaseTarget,
        size: usize,
        log: Option<StatementLog>,
    ) -> Result<Self, String> {
        let backend = match target {
            DatabaseTarget::Postgres(_) => Backend::Postgres,
            DatabaseTarget::Sqlite(_) => Backend::Sqlite,
        };
        let pool = Pool::builder(ConnectionManager {
            target: target.clone(),
            log: log.clone(),
        })
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| format!("cannot build the connection pool: {e}"))?;
        let writer = match target {
            DatabaseTarget::Sqlite(_) => Some(std::sync::Arc::new(writer::Writer::start(
                target.clone(),
                log,
            )?)),
            DatabaseTarget::Postgres(_) => None,
        };
        Ok(Self {
            pool,
            backend,
            writer,
            outage: std::sync::Arc::new(crate::log_summary::LogSummary::new(
                OUTAGE_REPORT_INTERVAL,
            )),
        })
    }

    /// The backend behind this pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs `f` on a pooled connection without a transaction (single statements, reads).
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let result = self.run_on_pool(f).await;
        self.reported(result)
    }

    /// `result`, after noting whether it shows the database unreachable (see `outage`).
    fn reported<T>(&self, result: Result<T, DbError>) -> Result<T, DbError> {
        let now = std::time::Instant::now();
        match &result {
            Err(DbError::Unavailable(cause)) => self.report_unavailable(cause, now),
            // A query error is an answer: the database is reachable.
            Ok(_) | Err(DbError::Query(_)) => self.report_reachable(now),
        }
        result
    }

    fn report_unavailable(&self, cause: &str, now: std::time::Instant) {
        use crate::log_summary::Report;
        match self.outage.occurred(now) {
            Some(Report::First) => tracing::warn!(
                error = %cause,
                "database unavailable: requests are answered 503 until it returns (summarised every {} s)",
                OUTAGE_REPORT_INTERVAL.as_secs()
            ),
            Some(Report::Ongoing {
                occurrences,
                total,
                lasted,
            }) => tracing::warn!(
                error = %cause,
                failures = occurrences,
                failures_in_outage = total,
                outage_seconds = lasted.as_secs(),
                "database still unavailable"
            ),
            None => {}
        }
    }

    fn report_reachable(&self, now: std::time::Instant) {
        if let Some(ended) = self.outage.ended(now) {
            tracing::info!(
                failures_in_outage = ended.total,
                failures_since_last_report = ended.unreported,
                outage_seconds = ended.lasted.as_secs(),
                "database reachable again"
            );
        }
    }

    async fn run_on_pool<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let conn = self.pool.get().await.map_err(|e| match e {
            managed::PoolError::Backend(inner) => inner,
            other => DbError::Unavailable(other.to_string()),
        })?;
        let result = conn
            .interact(f)
            .await
            .map_err(|e| DbError::Unavailable(format!("query task failed: {e}")))?;
        let error = match result {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        // A PostgreSQL server that went away (restart, failover) leaves this connection dead:
        // answer "unavailable" rather than a query error, and drop the connection so that the
        // pool opens a fresh one once the server is back.
        if self.backend == Backend::Postgres
            && matches!(error, diesel::result::Error::DatabaseError(..))
        {
            let alive = conn
                .interact(|c| c.batch_execute("SELECT 1").is_ok())
                .await
                .unwrap_or(false);
            if !alive {
                let _ = managed::Object::take(conn);
                return Err(DbError::Unavailable(format!("connection lost: {error}")));
            }
        }
        Err(DbError::Query(error))
    }

    /// Runs `f` in a write transaction: `BEGIN IMMEDIATE` on SQLite (so two writers queue on the
    /// lock instead of one failing mid-transaction), a plain transaction on PostgreSQL.
    /// Everything `f` writes commits together or not at all.
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run_writing(move |conn| write_transaction(conn, f))
            .await
    }

    /// Runs `f`, which writes, where this backend's writes run: on PostgreSQL a pooled
    /// connection, on SQLite the writer thread, after the writes asked for before it.
    async fn run_writing<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        match &self.writer {
            None => self.run(f).await,
            Some(writer) => self.reported(writer.run(f).await),
        }
    }

    /// Like [`Db::run`], for a use case: its value, or its refusal (`Ok(Err(refusal))`), or the
    /// database's failure, reported as [`Db::run`] reports it.
    pub async fn run_or_refuse<O, F>(&self, f: F) -> Result<Result<O::Value, O::Refusal>, DbError>
    where
        F: FnOnce(&mut DbConnection) -> O + Send + 'static,
        O: UseCaseResult,
    {
        self.run(move |conn| f(conn).refusal_inside()).await
    }

    /// Like [`Db::write`], for a use case that may refuse: a refusal from `f` rolls the
    /// transaction back (nothing it wrote stays) and is handed back as `Ok(Err(refusal))`, so a
    /// use case can decide on what it reads and still leave no trace when it says no. The
    /// database's own failure rolls back and fails as in [`Db::write`].
    pub async fn write_or_refuse<O, F>(&self, f: F) -> Result<Result<O::Value, O::Refusal>, DbError>
    where
        F: FnOnce(&mut DbConnection) -> O + Send + 'static,
        O: UseCaseResult,
    {
        self.run_writing(move |conn| {
            let mut refused = None;
            let result = write_transaction(conn, |c| match f(c).refusal_inside()? {
                Ok(value) => Ok(value),
                Err(refusal) => {
                    refused = Some(refusal);
                    Err(diesel::result::Error::RollbackTransaction)
                }
            });
            match (result, refused) {
                (Ok(value), _) => Ok(Ok(value)),
                (Err(_), Some(refusal)) => Ok(Err(refusal)),
                (Err(error), None) => Err(error),
            }
        })
        .await
    }

    /// Applies pending migrations. On PostgreSQL an advisory lock serialises replicas that start
    /// at the same moment.
    pub async fn migrate(&self) -> Result<Vec<String>, DbError> {
        self.run(|conn| migrate(conn).map_err(diesel::result::Error::QueryBuilderError))
            .await
    }

    /// Pending migrations, by name (empty when the schema is current).
    pub async fn pending_migrations(&self) -> Result<Vec<String>, DbError> {
        self.run(|conn| pending_migrations(conn).map_err(diesel::result::Error::QueryBuilderError))
            .await
    }
}

/// What a use case run by [`Db::run_or_refuse`] or [`Db::write_or_refuse`] returns: its value,
/// its refusal, or the database's own failure, in one flat type (`crate::error::Outcome`, which
/// implements this beside its definition, so that this module knows nothing of it).
pub trait UseCaseResult: Send + 'static {
    /// The use case's value.
    type Value: Send + 'static;
    /// How it says no.
    type Refusal: Send + 'static;

    /// The result in the nested shape the pool and the transaction take: the database's own
    /// failure outside, where [`Db::run`] sees it (to tell a lost connection from a failed
    /// query, and to report an outage) and a transaction aborts on it, the refusal inside, where
    /// it is an answer and not a failure of the database. Only between a use case and the pool:
    /// everywhere else a use case's result is flat.
    fn refusal_inside(self) -> QueryResult<Result<Self::Value, Self::Refusal>>;
}

/// See [`Db::write`]; usable where a connection is already at hand.
pub fn write_transaction<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    if let DbConnection::Pg(_) = conn {
        return conn.transaction(f);
    }
    if let DbConnection::Sqlite(inner) = conn {
        AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
    }
    let result = f(conn);
    let DbConnection::Sqlite(inner) = conn else {
        return result;
    };
    match result {
        Ok(value) => match AnsiTransactionManager::commit_transaction(inner) {
            Ok(()) => Ok(value),
            Err(commit_error) => {
                let _ = AnsiTransactionManager::rollback_transaction(inner);
                Err(commit_error)
            }
        },
        Err(error) => {
            AnsiTransactionManager::rollback_transaction(inner)?;
            Err(error)
        }
    }
}

type MigrationError = Box<dyn std::error::Error + Send + Sync>;

fn migrate(conn: &mut DbConnection) -> Result<Vec<String>, MigrationError> {
    match conn {
        DbConnection::Pg(pg) => {
            // Any constant works as the lock key, as long as it is always the same one.
            pg.batch_execute("SELECT pg_advisory_lock(7220149101)")?;
            let applied = pg
                .run_pending_migrations(companion_schema::POSTGRES_MIGRATIONS)
                .map(|v| v.iter().map(ToString::to_string).collect());
            pg.batch_execute("SELECT pg_advisory_unlock(7220149101)")?;
            applied
        }
        DbConnection::Sqlite(sqlite) => sqlite
            .run_pending_migrations(companion_schema::SQLITE_MIGRATIONS)
            .map(|v| v.iter().map(ToString::to_string).collect()),
    }
}

fn pending_migrations(conn: &mut DbConnection) -> Result<Vec<String>, MigrationError> {
    Ok(match conn {
        DbConnection::Pg(pg) => pg
            .pending_migrations(companion_schema::POSTGRES_MIGRATIONS)?
            .iter()
            .map(|m| m.name().to_string())
            .collect(),
        DbConnection::Sqlite(sqlite) => sqlite
            .pending_migrations(companion_schema::SQLITE_MIGRATIONS)?
            .iter()
            .map(|m| m.name().to_string())
            .collect(),
    })
}

/// Runs `$body` with `$c` bound to the concrete backend connection: the escape for the few
/// statements diesel cannot build for both backends at once (upserts, `ON CONFLICT`,
/// `FOR UPDATE SKIP LOCKED`). Every such statement goes through here, so they are easy to find.
#[macro_export]
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Pg($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}

/// On PostgreSQL, plans the rest of the current transaction's statements for their values and
/// the tables as they are now, not with the connection's cached generic plan. For the batched
/// statements that pick rows by a list of ids (`id = ANY($1)`): their generic plan is made once
/// per connection, and one made while a table was nearly empty (a fresh deployment, a new
/// clinic's first day) keeps scanning it whole after it has grown (a lookup of 64 notifications
/// read all 185,000 of them, every time). One statement per transaction; nothing on SQLite.
pub fn plan_for_current_values(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Pg(pg) => pg.batch_execute("SET LOCAL plan_cache_mode = force_custom_plan"),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// True when `error` is a unique-constraint violation (a duplicate email, a replayed id).
pub fn is_unique_violation(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(test)]
mod tests {
    use super::{Db, DbError, with_connect_timeout};
    use crate::config::DatabaseTarget;
    use diesel::connection::SimpleConnection;
    use diesel::sql_types::BigInt;

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    fn count(conn: &mut super::DbConnection, sql: &str) -> diesel::QueryResult<i64> {
        use diesel::RunQueryDsl;
        diesel::sql_query(sql)
            .get_result::<Count>(conn)
            .map(|row| row.n)
    }

    /// A use case's result: a refusal, or the database's failure.
    struct Said(diesel::QueryResult<Result<(), &'static str>>);

    impl super::UseCaseResult for Said {
        type Value = ();
        type Refusal = &'static str;

        fn refusal_inside(self) -> diesel::QueryResult<Result<(), &'static str>> {
            self.0
        }
    }

    async fn sqlite(dir: &tempfile::TempDir) -> Db {
        let db = Db::new(&DatabaseTarget::Sqlite(dir.path().join("t.db")), 4).unwrap();
        db.write(|c| c.batch_execute("CREATE TABLE t (n INTEGER NOT NULL UNIQUE, who INTEGER)"))
            .await
            .unwrap();
        db
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_writes_from_many_tasks_each_commit_once_and_get_their_own_answer() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(&dir).await;
        let mut tasks = tokio::task::JoinSet::new();
        for who in 0..200 {
            let db = db.clone();
            tasks.spawn(async move {
                // Reads the highest and writes the next: two writes at once would collide on
                // the unique column, so every one committing shows they ran one at a time.
                let next = db
                    .write(move |c| {
                        let next = count(c, "SELECT COALESCE(MAX(n), 0) + 1 AS n FROM t")?;
                        c.batch_execute(&format!("INSERT INTO t (n, who) VALUES ({next}, {who})"))?;
                        Ok(next)
                    })
                    .await
                    .unwrap();
                (who, next)
            });
        }
        let mut answers = Vec::new();
        while let Some(answer) = tasks.join_next().await {
            answers.push(answer.unwrap());
        }
        // Each caller's answer is the row its own write stored.
        for &(who, next) in &answers {
            let stored = db
                .run(move |c| count(c, &format!("SELECT who AS n FROM t WHERE n = {next}")))
                .await;
            assert_eq!(stored.unwrap(), who, "row {next}");
        }
        let mut numbers: Vec<i64> = answers.iter().map(|&(_, next)| next).collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=200).collect::<Vec<i64>>());
        let rows = db.run(|c| count(c, "SELECT COUNT(*) AS n FROM t")).await;
        assert_eq!(rows.unwrap(), 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sqlite_write_that_panics_leaves_nothing_and_the_next_write_runs() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(&dir).await;
        let failed = db
            .write(|c| {
                c.batch_execute("INSERT INTO t (n) VALUES (1)")?;
                if count(c, "SELECT COUNT(*) AS n FROM t")? == 1 {
                    panic!("a bug in a use case");
                }
                Ok(())
            })
            .await;
        assert!(
            matches!(&failed, Err(DbError::Unavailable(why)) if why.contains("panicked")),
            "{failed:?}"
        );
        let written = db
            .write(|c| {
                c.batch_execute("INSERT INTO t (n) VALUES (2)")?;
                count(c, "SELECT COUNT(*) AS n FROM t")
            })
            .await;
        assert_eq!(written.unwrap(), 1, "the panicked write's row stayed");
        let refused = db
            .write_or_refuse(|c| {
                Said(
                    c.batch_execute("INSERT INTO t (n) VALUES (3)")
                        .map(|()| Err("no")),
                )
            })
            .await;
        assert!(matches!(refused, Ok(Err("no"))));
        let rows = db.run(|c| count(c, "SELECT COUNT(*) AS n FROM t")).await;
        assert_eq!(rows.unwrap(), 1, "a refused write's row stayed");
    }

    #[test]
    fn postgres_urls_get_a_connect_timeout_unless_they_set_one() {
        assert_eq!(
            with_connect_timeout("postgres://u:pw@db:5432/companion"),
            "postgres://u:pw@db:5432/companion?connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://db/companion?sslmode=require"),
            "postgres://db/companion?sslmode=require&connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://db/companion?connect_timeout=2"),
            "postgres://db/companion?connect_timeout=2"
        );
    }
}
