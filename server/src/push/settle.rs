//! Settling deliveries in groups (SQLite, whose writes take turns: one commit for many beats a
//! commit each; PostgreSQL settles each delivery in one statement side by side instead, which a
//! single writer would serialise). A delivery the gateway accepted is handed to the settler the
//! moment the answer arrives; the settler writes whatever has gathered since its last write (the
//! attempt row, the notification delivered, the job done) in one transaction and tells each
//! delivery its result. Under load one commit covers many deliveries; alone, a delivery is
//! written at once (nothing waits for a batch to fill).

use std::sync::OnceLock;

use chrono::NaiveDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, DbConnection};

use super::store::{self, AttemptRecord};

/// Most deliveries written in one transaction.
pub const MAX_BATCH: usize = 256;

/// A delivered push to record.
#[derive(Debug)]
pub struct Delivered {
    /// The attempt.
    pub record: AttemptRecord,
    /// Its job.
    pub job_id: String,
    /// The worker holding the job.
    pub worker: String,
    /// When.
    pub now: NaiveDateTime,
}

type Item = (Delivered, oneshot::Sender<Result<bool, String>>);

/// The group-commit writer of one process (started on first use).
#[derive(Debug, Default)]
pub struct Settler {
    queue: OnceLock<mpsc::UnboundedSender<Item>>,
}

impl Settler {
    /// Records `delivered` with whatever else is waiting; true when the job was still held by
    /// its worker (it is now done), false when its lease had been lost (the notification is
    /// recorded as delivered all the same, so nobody sends it again).
    pub async fn settle(&self, db: &Db, delivered: Delivered) -> Result<bool, String> {
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(write_loop(db.clone(), receiver));
            sender
        });
        let (reply, answer) = oneshot::channel();
        queue
            .send((delivered, reply))
            .map_err(|_| "the settler has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the settler dropped a delivery".to_owned())?
    }
}

async fn write_loop(db: Db, mut receiver: mpsc::UnboundedReceiver<Item>) {
    let mut batch: Vec<Item> = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (deliveries, replies): (Vec<Delivered>, Vec<_>) = batch.drain(..).unzip();
        let written = db
            .write(move |conn| {
                deliveries
                    .iter()
                    .map(|d| write_one(conn, d))
                    .collect::<Result<Vec<bool>, _>>()
            })
            .await;
        match written {
            Ok(held) => {
                for (reply, held) in replies.into_iter().zip(held) {
                    let _ = reply.send(Ok(held));
                }
            }
            Err(e) => {
                let reason = format!("database: {e}");
                for reply in replies {
                    let _ = reply.send(Err(reason.clone()));
                }
            }
        }
    }
}

fn write_one(conn: &mut DbConnection, d: &Delivered) -> diesel::QueryResult<bool> {
    match conn {
        DbConnection::Pg(pg) => {
            store::settle_pg(pg, &d.record, "delivered", &d.job_id, &d.worker, d.now)
        }
        DbConnection::Sqlite(_) => {
            store::record_attempt(conn, &d.record, "delivered")?;
            crate::jobs::store::complete(conn, &d.job_id, &d.worker, d.now)
        }
    }
}
