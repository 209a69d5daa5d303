//! SQLite's writer: one thread with one connection of its own runs this process's write
//! transactions one after another, in the order they were asked for.
//!
//! SQLite lets one transaction write at a time, so writes are a queue whatever happens. Run
//! through the pool, each write was a hand-off to a blocking thread and back, and the next writer
//! could only start once the last one's answer had reached the runtime and its turn had been
//! handed on: two thread wake-ups in the queue between each pair of transactions, when the cores
//! are otherwise idle waiting. Here the thread takes the next transaction as soon as the last
//! one commits; the wake-ups (handing a write in, handing its answer back) happen beside the
//! queue, not in it.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use diesel::connection::{Connection, TransactionManager};
use diesel::result::QueryResult;
use tokio::sync::oneshot;

use super::{DbConnection, DbError, StatementLog};
use crate::config::DatabaseTarget;

/// One write handed to the thread: it runs on the thread's connection (opened on first use) and
/// sends its own answer.
type Work = Box<dyn FnOnce(&mut Slot) + Send>;

/// The queue into the writer thread. The thread stops (closing its connection) once every
/// [`super::Db`] holding this is dropped.
#[derive(Debug)]
pub(super) struct Writer {
    queue: mpsc::Sender<Work>,
}

impl Writer {
    /// Starts the thread; its connection opens on the first write.
    pub(super) fn start(target: DatabaseTarget, log: Option<StatementLog>) -> Result<Self, String> {
        let (queue, work) = mpsc::channel::<Work>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let mut slot = Slot {
                    target,
                    log,
                    conn: None,
                };
                while let Ok(next) = work.recv() {
                    // A write's own panic is caught inside it (`Slot::run`); this keeps the
                    // thread, and every write after, alive whatever else might panic.
                    if std::panic::catch_unwind(AssertUnwindSafe(|| next(&mut slot))).is_err() {
                        slot.conn = None;
                    }
                }
            })
            .map_err(|e| format!("cannot start the SQLite writer thread: {e}"))?;
        Ok(Self { queue })
    }

    /// Runs `f` on the writer's connection (after every write asked for before it) and waits
    /// for its answer. `f` runs to its end even if the caller stops waiting.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        // The runtime's context, as a blocking-pool thread has it, for anything `f` calls.
        let runtime = tokio::runtime::Handle::try_current().ok();
        let (answer, answered) = oneshot::channel();
        let work: Work = Box::new(move |slot| {
            let _entered = runtime.as_ref().map(|r| r.enter());
            let _ = answer.send(slot.run(f));
        });
        self.queue
            .send(work)
            .map_err(|_| DbError::Unavailable("the SQLite writer has stopped".into()))?;
        answered
            .await
            .map_err(|_| DbError::Unavailable("the SQLite writer dropped a write".into()))?
    }
}

/// The writer thread's connection.
struct Slot {
    target: DatabaseTarget,
    log: Option<StatementLog>,
    conn: Option<DbConnection>,
}

impl Slot {
    fn run<T>(
        &mut self,
        f: impl FnOnce(&mut DbConnection) -> QueryResult<T>,
    ) -> Result<T, DbError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            empty => empty.insert(super::open(&self.target, self.log.as_ref())?),
        };
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)));
        let broken = result.is_err()
            || <DbConnection as Connection>::TransactionManager::is_broken_transaction_manager(
                conn,
            );
        if broken {
            // A write that panicked, or left its transaction neither committed nor rolled back:
            // the next one gets a fresh connection (closing this one rolls back what is open).
            self.conn = None;
        }
        match result {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(DbError::Unavailable(
                "query task failed: a write panicked".into(),
            )),
        }
    }
}
