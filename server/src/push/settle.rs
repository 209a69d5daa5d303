//! The database side of deliveries running side by side, in groups: the lookups of the
//! notifications about to be sent, in one query, and the deliveries the gateway accepted, settled
//! together (the attempt row, the notification delivered, the job done). A delivery is handed
//! over the moment its answer arrives and each group goes at once (nothing waits for a batch to
//! fill), so under load one round trip and one commit cover many deliveries; alone, a delivery is
//! written straight away. On PostgreSQL a group settles in one statement; on SQLite, whose writes
//! take turns, in one transaction.

use crate::db::batch::Batcher;
use crate::db::{Db, DbConnection};

use super::store::{self, Delivered, DeviceRow, NotificationRow};

/// Most deliveries looked up or written in one call.
pub const MAX_BATCH: usize = 256;

/// A notification with its device, as a delivery needs it.
pub type Found = Option<(NotificationRow, DeviceRow)>;

/// The grouped lookups and settles of one process (each group's task starts on first use).
#[derive(Debug)]
pub struct Settler {
    lookups: Batcher<String, Found>,
    settles: Batcher<Delivered, bool>,
}

impl Default for Settler {
    fn default() -> Self {
        Self {
            lookups: Batcher::new(MAX_BATCH),
            settles: Batcher::new(MAX_BATCH),
        }
    }
}

impl Settler {
    /// The notification `id` with its device (`None` when it went with an erased account), read
    /// with the other deliveries' lookups that arrived meanwhile.
    pub async fn find(&self, db: &Db, id: String) -> Result<Found, String> {
        let db = db.clone();
        self.lookups
            .call(id, move |ids: Vec<String>| {
                let db = db.clone();
                async move {
                    db.run(move |conn| store::find_notifications(conn, &ids))
                        .await
                        .map_err(|e| format!("database: {e}"))
                }
            })
            .await
    }

    /// Records `delivered` with whatever else is waiting; true when the job was still held by
    /// its worker (it is now done), false when its lease had been lost (the notification is
    /// recorded as delivered all the same, so nobody sends it again).
    pub async fn settle(&self, db: &Db, delivered: Delivered) -> Result<bool, String> {
        let db = db.clone();
        self.settles
            .call(delivered, move |deliveries: Vec<Delivered>| {
                let db = db.clone();
                async move {
                    let written = if db.backend() == crate::db::Backend::Postgres {
                        // One statement is atomic on its own: no transaction, no writer turn.
                        db.run(move |conn| match conn {
                            DbConnection::Pg(pg) => store::settle_delivered_pg(pg, &deliveries),
                            DbConnection::Sqlite(_) => Err(diesel::result::Error::NotFound),
                        })
                        .await
                    } else {
                        db.write(move |conn| {
                            deliveries
                                .iter()
                                .map(|d| write_one(conn, d))
                                .collect::<Result<Vec<bool>, _>>()
                        })
                        .await
                    };
                    written.map_err(|e| format!("database: {e}"))
                }
            })
            .await
    }
}

fn write_one(conn: &mut DbConnection, d: &Delivered) -> diesel::QueryResult<bool> {
    store::record_attempt(conn, &d.record, "delivered")?;
    crate::jobs::store::complete(conn, &d.job_id, &d.worker, d.now)
}
