//! Job rows: enqueue, claim with a lease, complete, retry or bury, release.

use chrono::NaiveDateTime;
use companion_schema::ids::JobId;
use companion_schema::schema::jobs;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text, Timestamp};

use crate::db::DbConnection;

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Kind (see [`super::kinds`]).
    pub kind: &'static str,
    /// JSON payload; opaque ids only, never health information.
    pub payload: serde_json::Value,
    /// At most one job with this key is ever enqueued.
    pub dedupe_key: Option<String>,
    /// Not before.
    pub run_at: NaiveDateTime,
    /// Attempts before the job is parked as dead.
    pub max_attempts: i32,
    /// [`Priority::Safety`] jobs are claimed before any routine one that is due.
    pub priority: Priority,
}

/// Which jobs a worker claims first (CLINICAL.md, "Safety work goes first"): alert notifications
/// and deadlines, and the pushes, webhooks and emails that carry an urgent or high alert, are
/// claimed before prompts, reminders and routine pushes, so that a backlog of routine work never
/// holds up an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Priority {
    /// Prompts, reminders, routine pushes, exports, housekeeping.
    #[default]
    Routine,
    /// The safety path.
    Safety,
}

impl Priority {
    /// The stored value (higher is claimed first).
    pub fn value(self) -> i32 {
        match self {
            Priority::Routine => 0,
            Priority::Safety => 10,
        }
    }

    /// Every priority, the first claimed first.
    pub const ORDER: [Priority; 2] = [Priority::Safety, Priority::Routine];
}

/// Enqueues a job on `conn`, normally inside the caller's transaction so that it commits with
/// the write that causes it. Returns false when a job with the same dedupe key exists. On
/// PostgreSQL a `NOTIFY` wakes workers in other processes as soon as the transaction commits,
/// if the job can run now.
pub fn enqueue(conn: &mut DbConnection, job: &NewJob, now: NaiveDateTime) -> QueryResult<bool> {
    let id = JobId::generate().into_string();
    let payload = job.payload.to_string();
    let row = (
        jobs::id.eq(&id),
        jobs::kind.eq(job.kind),
        jobs::payload.eq(&payload),
        jobs::dedupe_key.eq(job.dedupe_key.as_deref()),
        jobs::status.eq("queued"),
        jobs::attempts.eq(0),
        jobs::max_attempts.eq(job.max_attempts),
        jobs::run_at.eq(job.run_at),
        jobs::created_at.eq(now),
        jobs::updated_at.eq(now),
        jobs::priority.eq(job.priority.value()),
    );
    let inserted = crate::per_backend!(conn, |c| diesel::insert_into(jobs::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c)?);
    // A job due later is found by the workers' next poll after it falls due: waking them now
    // would only have them look and find nothing to run.
    if inserted == 1
        && job.run_at <= now
        && let DbConnection::Pg(pg) = conn
    {
        diesel::sql_query("SELECT pg_notify('companion_jobs', '')").execute(pg)?;
    }
    Ok(inserted == 1)
}

/// Enqueues many jobs in multi-row statements (one wake-up for them all); jobs whose dedupe
/// key is taken are skipped. Returns how many were enqueued.
pub fn enqueue_many(
    conn: &mut DbConnection,
    batch: &[NewJob],
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let mut inserted = 0;
    for chunk in batch.chunks(500) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|job| {
                (
                    jobs::id.eq(JobId::generate().into_string()),
                    jobs::kind.eq(job.kind),
                    jobs::payload.eq(job.payload.to_string()),
                    jobs::dedupe_key.eq(job.dedupe_key.clone()),
                    jobs::status.eq("queued"),
                    jobs::attempts.eq(0),
                    jobs::max_attempts.eq(job.max_attempts),
                    jobs::run_at.eq(job.run_at),
                    jobs::created_at.eq(now),
                    jobs::updated_at.eq(now),
                    jobs::priority.eq(job.priority.value()),
                )
            })
            .collect();
        inserted += crate::per_backend!(conn, |c| diesel::insert_into(jobs::table)
            .values(&rows)
            .on_conflict_do_nothing()
            .execute(c)?);
    }
    if inserted > 0
        && batch.iter().any(|job| job.run_at <= now)
        && let DbConnection::Pg(pg) = conn
    {
        diesel::sql_query("SELECT pg_notify('companion_jobs', '')").execute(pg)?;
    }
    Ok(inserted)
}

/// A claimed job.
#[derive(Debug, Clone, QueryableByName, Queryable)]
pub struct Claimed {
    /// Id.
    #[diesel(sql_type = Text)]
    pub id: String,
    /// Kind.
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// JSON payload.
    #[diesel(sql_type = Text)]
    pub payload: String,
    /// Attempts including this one.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    /// Attempts allowed.
    #[diesel(sql_type = Integer)]
    pub max_attempts: i32,
}

/// The claims: running jobs whose lease has lapsed (their worker died), then due queued jobs,
/// safety work first and oldest first within a priority. Separate statements rather than one with
/// an `OR` or a sort across priorities, so that each walks its own index (`(status,
/// locked_until)`, `(status, priority, run_at)`) and stops at the limit however long the backlog
/// is: a backlog of routine jobs costs a safety claim nothing. `SKIP LOCKED` lets PostgreSQL
/// workers claim side by side without waiting or double-claiming; SQLite runs each statement
/// alone under its write lock.
///
/// Claims up to `limit` jobs for `worker` until `lease_until`.
pub fn claim(
    conn: &mut DbConnection,
    worker: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Claimed>> {
    let lapsed = Claim {
        worker,
        now,
        lease_until,
        limit,
        priority: None,
    };
    let mut claimed = crate::per_backend!(conn, |c| lapsed.load::<Claimed>(c))?;
    for priority in Priority::ORDER {
        let left = limit - claimed.len() as i64;
        if left <= 0 {
            break;
        }
        let due = Claim {
            worker,
            now,
            lease_until,
            limit: left,
            priority: Some(priority.value()),
        };
        claimed.extend(crate::per_backend!(conn, |c| due.load::<Claimed>(c))?);
    }
    Ok(claimed)
}

/// One claim statement (see [`claim`]), written out by hand so that it is kept prepared: a
/// worker claims many times a second, and diesel keeps neither raw SQL nor an `UPDATE` as a
/// prepared statement. Two fixed texts per backend, which diesel keeps apart by their text: the
/// lapsed claim (`priority` none) and the due claim of one priority.
#[derive(Debug, Clone, Copy)]
struct Claim<'a> {
    worker: &'a str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
    priority: Option<i32>,
}

/// No static id: diesel keeps it by its text, of which there are two per backend.
impl diesel::query_builder::QueryId for Claim<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for Claim<'_> {
    type SqlType = (Text, Text, Text, Integer, Integer);
}

impl<Conn> RunQueryDsl<Conn> for Claim<'_> {}

impl<DB> diesel::query_builder::QueryFragment<DB> for Claim<'_>
where
    DB: diesel::backend::Backend + 'static,
    str: diesel::serialize::ToSql<Text, DB>,
    NaiveDateTime: diesel::serialize::ToSql<Timestamp, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
    i32: diesel::serialize::ToSql<Integer, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        // Only PostgreSQL has row locks to skip; SQLite claims under its write lock.
        let skip_locked = std::any::TypeId::of::<DB>() == std::any::TypeId::of::<diesel::pg::Pg>();
        out.push_sql("UPDATE jobs SET status = 'running', locked_by = ");
        out.push_bind_param::<Text, _>(self.worker)?;
        out.push_sql(", locked_until = ");
        out.push_bind_param::<Timestamp, _>(&self.lease_until)?;
        out.push_sql(", attempts = attempts + 1, updated_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        match &self.priority {
            None => {
                out.push_sql(
                    " WHERE id IN (SELECT id FROM jobs WHERE status = 'running' AND locked_until < ",
                );
                out.push_bind_param::<Timestamp, _>(&self.now)?;
                out.push_sql(" ORDER BY locked_until LIMIT ");
            }
            Some(priority) => {
                out.push_sql(
                    " WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND priority = ",
                );
                out.push_bind_param::<Integer, _>(priority)?;
                out.push_sql(" AND run_at <= ");
                out.push_bind_param::<Timestamp, _>(&self.now)?;
                out.push_sql(" ORDER BY run_at LIMIT ");
            }
        }
        out.push_bind_param::<BigInt, _>(&self.limit)?;
        if skip_locked {
            out.push_sql(" FOR UPDATE SKIP LOCKED");
        }
        out.push_sql(") RETURNING id, kind, payload, attempts, max_attempts");
        Ok(())
    }
}

/// Deletes up to `limit` finished jobs that were due before `before` (their history is kept on
/// the rows they acted on: notifications, attempts, alert events). Dead jobs are kept for
/// operators. Returns how many were deleted.
pub fn purge_done(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    let ids: Vec<String> = jobs::table
        .filter(jobs::status.eq("done"))
        .filter(jobs::run_at.lt(before))
        .order(jobs::run_at)
        .select(jobs::id)
        .limit(limit)
        .load(conn)?;
    diesel::delete(jobs::table.filter(jobs::id.eq_any(&ids))).execute(conn)
}

/// Deletes the queued jobs whose dedupe key is `key` (their work is gone: a patient was erased).
/// Returns how many.
pub fn delete_queued_with_key(conn: &mut DbConnection, key: &str) -> QueryResult<usize> {
    diesel::delete(
        jobs::table
            .filter(jobs::status.eq("queued"))
            .filter(jobs::dedupe_key.eq(key)),
    )
    .execute(conn)
}

/// Deletes the queued jobs whose dedupe key contains `part` (every job about one alert, whatever
/// its kind). Returns how many.
pub fn delete_queued_with_key_containing(
    conn: &mut DbConnection,
    part: &str,
) -> QueryResult<usize> {
    diesel::delete(
        jobs::table
            .filter(jobs::status.eq("queued"))
            .filter(jobs::dedupe_key.like(format!("%{part}%"))),
    )
    .execute(conn)
}

/// Marks a job done, if `worker` still holds it. False when the lease was lost meanwhile.
pub fn complete(
    conn: &mut DbConnection,
    id: &str,
    worker: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::locked_by.eq(worker))
            .filter(jobs::status.eq("running")),
    )
    .set((
        jobs::status.eq("done"),
        jobs::finished_at.eq(now),
        jobs::locked_by.eq(None::<String>),
        jobs::locked_until.eq(None::<NaiveDateTime>),
        jobs::updated_at.eq(now),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Schedules a retry at `retry_at`, or parks the job as dead when `dead` is set.
pub fn fail(
    conn: &mut DbConnection,
    id: &str,
    worker: &str,
    error: &str,
    retry_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let (status, run_at, finished) = match retry_at {
        Some(at) => ("queued", Some(at), None),
        None => ("dead", None, Some(now)),
    };
    let target = jobs::table
        .filter(jobs::id.eq(id))
        .filter(jobs::locked_by.eq(worker))
        .filter(jobs::status.eq("running"));
    let error: String = error.chars().take(500).collect();
    let changed = match run_at {
        Some(run_at) => diesel::update(target)
            .set((
                jobs::status.eq(status),
                jobs::run_at.eq(run_at),
                jobs::last_error.eq(error),
                jobs::locked_by.eq(None::<String>),
                jobs::locked_until.eq(None::<NaiveDateTime>),
                jobs::updated_at.eq(now),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                jobs::status.eq(status),
                jobs::finished_at.eq(finished),
                jobs::last_error.eq(error),
                jobs::locked_by.eq(None::<String>),
                jobs::locked_until.eq(None::<NaiveDateTime>),
                jobs::updated_at.eq(now),
            ))
            .execute(conn)?,
    };
    Ok(changed == 1)
}

/// Puts `worker`'s running jobs back in the queue without counting the attempt (shutdown).
pub fn release(conn: &mut DbConnection, worker: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        jobs::table
            .filter(jobs::locked_by.eq(worker))
            .filter(jobs::status.eq("running")),
    )
    .set((
        jobs::status.eq("queued"),
        jobs::attempts.eq(jobs::attempts - 1),
        jobs::locked_by.eq(None::<String>),
        jobs::locked_until.eq(None::<NaiveDateTime>),
        jobs::updated_at.eq(now),
    ))
    .execute(conn)
}

/// Counts jobs by status (for operators and tests).
pub fn count_by_status(conn: &mut DbConnection, status: &str) -> QueryResult<i64> {
    jobs::table
        .filter(jobs::status.eq(status))
        .count()
        .get_result(conn)
}

/// A parked job, for operators.
#[derive(Debug, Clone, Queryable)]
pub struct DeadJob {
    /// Id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was parked.
    pub finished_at: Option<NaiveDateTime>,
}

/// The most recently parked jobs, newest first.
pub fn dead_jobs(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<DeadJob>> {
    jobs::table
        .filter(jobs::status.eq("dead"))
        .select((
            jobs::id,
            jobs::kind,
            jobs::attempts,
            jobs::last_error,
            jobs::finished_at,
        ))
        .order(jobs::finished_at.desc())
        .limit(limit)
        .load(conn)
}

/// Jobs of one kind in one status: how many, and when the oldest of them was due (for metrics).
#[derive(Debug, Clone, QueryableByName)]
pub struct KindCount {
    /// The kind.
    #[diesel(sql_type = Text)]
    pub key: String,
    /// How many.
    #[diesel(sql_type = BigInt)]
    pub n: i64,
    /// When the oldest was due (queued jobs only).
    #[diesel(sql_type = diesel::sql_types::Nullable<Timestamp>)]
    pub oldest: Option<NaiveDateTime>,
}

/// Queued jobs by kind, with when the oldest of each kind was due.
pub fn queued_by_kind(conn: &mut DbConnection) -> QueryResult<Vec<KindCount>> {
    diesel::sql_query(
        "SELECT kind AS key, COUNT(*) AS n, MIN(run_at) AS oldest FROM jobs WHERE status = 'queued' GROUP BY kind",
    )
    .load(conn)
}

/// Dead (parked) jobs by kind.
pub fn dead_by_kind(conn: &mut DbConnection) -> QueryResult<Vec<KindCount>> {
    diesel::sql_query(
        "SELECT kind AS key, COUNT(*) AS n, NULL AS oldest FROM jobs WHERE status = 'dead' GROUP BY kind",
    )
    .load(conn)
}
