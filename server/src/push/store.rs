//! Device, notification and attempt rows.

use chrono::NaiveDateTime;
use companion_schema::ids::{DeviceId, NotificationId};
use companion_schema::schema::{devices, notification_attempts, notifications};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::jobs::{self, NewJob};

use super::content::PushMessage;

/// A device as stored. Its `Debug` leaves the token out.
#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = devices)]
pub struct DeviceRow {
    /// Id.
    pub id: String,
    /// Owner.
    pub account_id: String,
    /// `ios` or `android`.
    pub platform: String,
    /// Push token. Never logged.
    pub token: String,
    /// App version.
    pub app_version: Option<String>,
    /// BCP 47 locale.
    pub locale: Option<String>,
    /// False once unregistered or found dead.
    pub active: bool,
    /// Consecutive malformed-request answers.
    pub invalid_argument_count: i32,
    /// Why it was deactivated.
    pub deactivated_reason: Option<String>,
    /// Registered.
    pub created_at: NaiveDateTime,
    /// Last registration or refresh.
    pub last_seen_at: NaiveDateTime,
    /// A Web Push subscription's public key (base64url); none for the native platforms.
    pub web_p256dh: Option<String>,
    /// A Web Push subscription's authentication secret (base64url). Never logged or returned.
    pub web_auth: Option<String>,
}

impl DeviceRow {
    /// A Web Push subscription's keys, when this device is one.
    pub fn web_keys(&self) -> Option<super::web_push::WebPushKeys> {
        match (&self.web_p256dh, &self.web_auth) {
            (Some(p256dh), Some(auth)) => Some(super::web_push::WebPushKeys {
                p256dh: p256dh.clone(),
                auth: auth.clone(),
            }),
            _ => None,
        }
    }
}

impl std::fmt::Debug for DeviceRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceRow")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("platform", &self.platform)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// Registers `device` for its account, idempotently by token (a Web Push subscription's
/// endpoint): a known token is refreshed (with the subscription's current keys),
/// reactivated and moved to this account. When it moves from another account (the phone
/// changed hands, or another person signed in on it), that account's pushes still waiting for
/// the device are settled as failed, never delivered to the new owner. Returns the stored row
/// and whether it was new.
pub fn register(conn: &mut DbConnection, device: DeviceRow) -> QueryResult<(DeviceRow, bool)> {
    let existing: Option<DeviceRow> = devices::table
        .filter(devices::token.eq(&device.token))
        .select(DeviceRow::as_select())
        .first(conn)
        .optional()?;
    match existing {
        Some(mut row) => {
            if row.account_id != device.account_id {
                diesel::update(
                    notifications::table
                        .filter(notifications::device_id.eq(&row.id))
                        .filter(notifications::account_id.eq(&row.account_id))
                        .filter(notifications::status.eq("pending")),
                )
                .set(notifications::status.eq("failed"))
                .execute(conn)?;
            }
            row.account_id = device.account_id;
            row.platform = device.platform;
            row.app_version = device.app_version;
            row.locale = device.locale;
            row.active = true;
            row.invalid_argument_count = 0;
            row.deactivated_reason = None;
            row.last_seen_at = device.last_seen_at;
            row.web_p256dh = device.web_p256dh;
            row.web_auth = device.web_auth;
            diesel::update(devices::table.find(&row.id))
                .set((
                    devices::account_id.eq(&row.account_id),
                    devices::platform.eq(&row.platform),
                    devices::app_version.eq(&row.app_version),
                    devices::locale.eq(&row.locale),
                    devices::active.eq(true),
                    devices::invalid_argument_count.eq(0),
                    devices::deactivated_reason.eq(None::<String>),
                    devices::last_seen_at.eq(row.last_seen_at),
                    devices::web_p256dh.eq(&row.web_p256dh),
                    devices::web_auth.eq(&row.web_auth),
                ))
                .execute(conn)?;
            Ok((row, false))
        }
        None => {
            diesel::insert_into(devices::table)
                .values(&device)
                .execute(conn)?;
            Ok((device, true))
        }
    }
}

/// Finds a device.
pub fn find_device(conn: &mut DbConnection, id: &str) -> QueryResult<Option<DeviceRow>> {
    devices::table
        .find(id)
        .select(DeviceRow::as_select())
        .first(conn)
        .optional()
}

/// The active devices of an account.
pub fn active_devices(conn: &mut DbConnection, account_id: &str) -> QueryResult<Vec<DeviceRow>> {
    devices::table
        .filter(devices::account_id.eq(account_id))
        .filter(devices::active.eq(true))
        .select(DeviceRow::as_select())
        .order(devices::id.asc())
        .load(conn)
}

/// A page of an account's devices, active or not, in id (registration) order after `after`.
pub fn devices_page(
    conn: &mut DbConnection,
    account_id: &str,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<DeviceRow>> {
    let mut query = devices::table
        .filter(devices::account_id.eq(account_id.to_owned()))
        .select(DeviceRow::as_select())
        .order(devices::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(devices::id.gt(after.to_owned()));
    }
    query.load(conn)
}

/// The active devices of many accounts, in one query (account, then device id order).
pub fn active_devices_of(
    conn: &mut DbConnection,
    account_ids: &[String],
) -> QueryResult<Vec<DeviceRow>> {
    if account_ids.is_empty() {
        return Ok(Vec::new());
    }
    devices::table
        .filter(devices::account_id.eq_any(account_ids))
        .filter(devices::active.eq(true))
        .select(DeviceRow::as_select())
        .order((devices::account_id.asc(), devices::id.asc()))
        .load(conn)
}

/// Deactivates a device with a reason.
pub fn deactivate(conn: &mut DbConnection, id: &str, reason: &str) -> QueryResult<usize> {
    diesel::update(devices::table.find(id))
        .set((
            devices::active.eq(false),
            devices::deactivated_reason.eq(reason),
        ))
        .execute(conn)
}

/// A notification as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = notifications)]
#[diesel(treat_none_as_default_value = false)]
pub struct NotificationRow {
    /// Id.
    pub id: String,
    /// Recipient.
    pub account_id: String,
    /// Device.
    pub device_id: String,
    /// Message kind.
    pub kind: String,
    /// The prompt, alert or notification the message refers to.
    pub ref_id: Option<String>,
    /// `pending`, `delivered`, `token_dead`, `rejected` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Accepted by the push service.
    pub delivered_at: Option<NaiveDateTime>,
    /// Opened on the device, as the app reported.
    pub opened_at: Option<NaiveDateTime>,
}

/// Attempts per delivery before it is given up.
pub const MAX_DELIVERY_ATTEMPTS: i32 = 8;

/// Creates a notification of `message` for one device and enqueues its delivery, on `conn`
/// (inside the caller's transaction). `message` is built from the new notification's id.
pub fn notify_device(
    conn: &mut DbConnection,
    device: &DeviceRow,
    message: impl FnOnce(&str) -> PushMessage,
    now: NaiveDateTime,
) -> QueryResult<String> {
    notify_device_at(conn, device, message, now, now)
}

/// Like [`notify_device`], delivered not before `send_at` (a routine alert outside the
/// recipient's working hours).
pub fn notify_device_at(
    conn: &mut DbConnection,
    device: &DeviceRow,
    message: impl FnOnce(&str) -> PushMessage,
    now: NaiveDateTime,
    send_at: NaiveDateTime,
) -> QueryResult<String> {
    let (row, mut delivery) = pending(device, message, now);
    delivery.run_at = send_at.max(now);
    diesel::insert_into(notifications::table)
        .values(&row)
        .execute(conn)?;
    jobs::enqueue(conn, &delivery, now)?;
    Ok(row.id)
}

/// A new pending notification of `message` (built from its id) for `device`, and the job that
/// delivers it.
fn pending(
    device: &DeviceRow,
    message: impl FnOnce(&str) -> PushMessage,
    now: NaiveDateTime,
) -> (NotificationRow, NewJob) {
    let id = NotificationId::generate().into_string();
    let message = message(&id);
    let mut delivery = jobs::new_job::<super::kinds::DeliverPush>(
        &super::kinds::DeliverPushPayload {
            notification_id: id.clone(),
        },
        Some(format!("push:{id}")),
        now,
        MAX_DELIVERY_ATTEMPTS,
    );
    if message.is_time_sensitive() {
        delivery.priority = jobs::store::Priority::Safety;
    }
    let row = NotificationRow {
        id,
        account_id: device.account_id.clone(),
        device_id: device.id.clone(),
        kind: message.kind().to_owned(),
        ref_id: Some(message.ref_id().to_owned()),
        status: "pending".into(),
        attempts: 0,
        created_at: now,
        delivered_at: None,
        opened_at: None,
    };
    (row, delivery)
}

/// Creates notifications of many messages, one per `(device, message)`, and enqueues their
/// deliveries, in a few multi-row statements on `conn` (inside the caller's transaction): what
/// [`notify_device`] does for one, for a batch of prompts at once. Returns the notification ids.
pub fn notify_devices(
    conn: &mut DbConnection,
    items: Vec<(&DeviceRow, PushMessage)>,
    now: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    let (rows, deliveries): (Vec<NotificationRow>, Vec<NewJob>) = items
        .into_iter()
        .map(|(device, message)| pending(device, |_| message, now))
        .unzip();
    for chunk in rows.chunks(500) {
        crate::per_backend!(conn, |c| diesel::insert_into(notifications::table)
            .values(chunk)
            .execute(c)?);
    }
    jobs::store::enqueue_many(conn, &deliveries, now)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Withdraws the notifications of `kind` about `ref_id` still waiting for their time (a routine
/// alert held for working hours that someone acknowledged meanwhile): their delivery jobs and the
/// notifications themselves are deleted, as if never queued. One already due or being sent is
/// left to go. Returns how many were withdrawn.
pub fn withdraw_waiting(
    conn: &mut DbConnection,
    kind: &str,
    ref_id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use companion_schema::schema::jobs;
    let waiting: Vec<String> = notifications::table
        .filter(notifications::ref_id.eq(ref_id))
        .filter(notifications::kind.eq(kind))
        .filter(notifications::status.eq("pending"))
        .filter(notifications::attempts.eq(0))
        .select(notifications::id)
        .load(conn)?;
    let mut withdrawn = 0;
    for id in waiting {
        let deleted = diesel::delete(
            jobs::table
                .filter(jobs::dedupe_key.eq(format!("push:{id}")))
                .filter(jobs::status.eq("queued"))
                .filter(jobs::run_at.gt(now)),
        )
        .execute(conn)?;
        if deleted == 1 {
            diesel::delete(notifications::table.find(&id)).execute(conn)?;
            withdrawn += 1;
        }
    }
    Ok(withdrawn)
}

/// Finds a notification with its device.
pub fn find_notification(
    conn: &mut DbConnection,
    id: &str,
) -> QueryResult<Option<(NotificationRow, DeviceRow)>> {
    notifications::table
        .inner_join(devices::table)
        .filter(notifications::id.eq(id))
        .select((NotificationRow::as_select(), DeviceRow::as_select()))
        .first(conn)
        .optional()
}

/// Finds notifications with their devices, in the order of `ids` (`None` where one no longer
/// exists): the lookups of deliveries running side by side, in one query.
pub fn find_notifications(
    conn: &mut DbConnection,
    ids: &[String],
) -> QueryResult<Vec<Option<(NotificationRow, DeviceRow)>>> {
    let found: Vec<(NotificationRow, DeviceRow)> = conn.transaction(|conn| {
        crate::db::plan_for_current_values(conn)?;
        notifications::table
            .inner_join(devices::table)
            .filter(notifications::id.eq_any(ids))
            .select((NotificationRow::as_select(), DeviceRow::as_select()))
            .load(conn)
    })?;
    let by_id: std::collections::HashMap<String, (NotificationRow, DeviceRow)> = found
        .into_iter()
        .map(|(notification, device)| (notification.id.clone(), (notification, device)))
        .collect();
    // The same id twice (a redelivered job beside its first run) gets the row both times.
    Ok(ids.iter().map(|id| by_id.get(id).cloned()).collect())
}

/// One attempt's record.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The notification.
    pub notification_id: String,
    /// Attempt number.
    pub attempt: i32,
    /// When.
    pub at: NaiveDateTime,
    /// Outcome name.
    pub outcome: &'static str,
    /// HTTP status.
    pub provider_status: Option<i32>,
    /// Provider reason.
    pub provider_reason: Option<String>,
    /// Round-trip time.
    pub latency_ms: i32,
}

/// Records an attempt and the notification's new status (`delivered_at` set when delivered).
pub fn record_attempt(
    conn: &mut DbConnection,
    record: &AttemptRecord,
    status: &str,
) -> QueryResult<()> {
    diesel::insert_into(notification_attempts::table)
        .values((
            notification_attempts::id.eq(uuid::Uuid::now_v7().to_string()),
            notification_attempts::notification_id.eq(&record.notification_id),
            notification_attempts::attempt.eq(record.attempt),
            notification_attempts::at.eq(record.at),
            notification_attempts::outcome.eq(record.outcome),
            notification_attempts::provider_status.eq(record.provider_status),
            notification_attempts::provider_reason.eq(&record.provider_reason),
            notification_attempts::latency_ms.eq(record.latency_ms),
        ))
        .execute(conn)?;
    let delivered_at = (status == "delivered").then_some(record.at);
    diesel::update(notifications::table.find(&record.notification_id))
        .set((
            notifications::status.eq(status),
            notifications::attempts.eq(record.attempt),
            notifications::delivered_at.eq(delivered_at),
        ))
        .execute(conn)
        .map(drop)
}

/// A delivered push to settle: its attempt, its job and the worker holding it.
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

/// What [`record_attempt`] followed by [`crate::jobs::store::complete`] does, for many delivered
/// pushes on PostgreSQL in one statement (one round trip, one commit, atomic on its own). The
/// attempt and the notification's state are written whatever happens to the job, so that a
/// worker that took a job over after a lapsed lease finds the notification settled and does not
/// send it again. Returns, for each, whether its job was still held by its worker.
///
/// Sent as text and planned on every run, on purpose: kept prepared, PostgreSQL settles on a
/// generic plan for it after five runs, and one made while `notifications` and `jobs` were small
/// (a fresh deployment, the start of a day) joins them by scanning them whole for as long as the
/// connection lives. A kept-prepared form of this statement settled a backlog of 10,000 about 10%
/// faster, and stretched `prompt-load`'s day of 185,714 pushes from 42 s to 154 s.
/// `tests/api/statements.rs` keeps it this way.
pub fn settle_delivered_pg(
    conn: &mut diesel::PgConnection,
    delivered: &[Delivered],
) -> QueryResult<Vec<bool>> {
    use diesel::sql_types::{Array, Integer, Nullable, Text, Timestamp};

    #[derive(QueryableByName)]
    struct Held {
        #[diesel(sql_type = Text)]
        id: String,
    }

    let column = |f: &dyn Fn(&Delivered) -> String| delivered.iter().map(f).collect::<Vec<_>>();
    let attempt_ids: Vec<String> = delivered
        .iter()
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let held: Vec<Held> = diesel::sql_query(
        "WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], \
           $4::timestamp[], $5::text[], $6::int4[], $7::text[], $8::int4[], $9::text[], \
           $10::text[], $11::timestamp[]) \
           AS t(attempt_id, notification_id, attempt, at, outcome, provider_status, \
             provider_reason, latency_ms, job_id, worker, now)), \
         attempt AS (INSERT INTO notification_attempts \
           (id, notification_id, attempt, at, outcome, provider_status, provider_reason, latency_ms) \
           SELECT attempt_id, notification_id, attempt, at, outcome, provider_status, \
             provider_reason, latency_ms FROM input), \
         notification AS (UPDATE notifications n SET status = 'delivered', \
           attempts = i.attempt, delivered_at = i.at FROM input i WHERE n.id = i.notification_id) \
         UPDATE jobs j SET status = 'done', finished_at = i.now, locked_by = NULL, \
           locked_until = NULL, updated_at = i.now \
         FROM input i WHERE j.id = i.job_id AND j.locked_by = i.worker AND j.status = 'running' \
         RETURNING j.id",
    )
    .bind::<Array<Text>, _>(&attempt_ids)
    .bind::<Array<Text>, _>(column(&|d| d.record.notification_id.clone()))
    .bind::<Array<Integer>, _>(delivered.iter().map(|d| d.record.attempt).collect::<Vec<_>>())
    .bind::<Array<Timestamp>, _>(delivered.iter().map(|d| d.record.at).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(column(&|d| d.record.outcome.to_owned()))
    .bind::<Array<Nullable<Integer>>, _>(
        delivered
            .iter()
            .map(|d| d.record.provider_status)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(
        delivered
            .iter()
            .map(|d| d.record.provider_reason.clone())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Integer>, _>(delivered.iter().map(|d| d.record.latency_ms).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(column(&|d| d.job_id.clone()))
    .bind::<Array<Text>, _>(column(&|d| d.worker.clone()))
    .bind::<Array<Timestamp>, _>(delivered.iter().map(|d| d.now).collect::<Vec<_>>())
    .load(conn)?;
    let held: std::collections::HashSet<String> = held.into_iter().map(|h| h.id).collect();
    Ok(delivered.iter().map(|d| held.contains(&d.job_id)).collect())
}

/// Adds one malformed-request answer to a device; returns the new count.
pub fn count_invalid_argument(conn: &mut DbConnection, device_id: &str) -> QueryResult<i32> {
    diesel::update(devices::table.find(device_id))
        .set(devices::invalid_argument_count.eq(devices::invalid_argument_count + 1))
        .execute(conn)?;
    devices::table
        .find(device_id)
        .select(devices::invalid_argument_count)
        .first(conn)
}

/// Resets the malformed-request count after a delivery.
pub fn reset_invalid_argument(conn: &mut DbConnection, device_id: &str) -> QueryResult<()> {
    diesel::update(
        devices::table
            .find(device_id)
            .filter(devices::invalid_argument_count.gt(0)),
    )
    .set(devices::invalid_argument_count.eq(0))
    .execute(conn)
    .map(drop)
}

/// Marks a notification opened (first time only).
pub fn mark_opened(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(
        notifications::table
            .find(id)
            .filter(notifications::opened_at.is_null()),
    )
    .set(notifications::opened_at.eq(now))
    .execute(conn)
    .map(drop)
}

/// A new device id.
pub fn new_device_id() -> String {
    DeviceId::generate().into_string()
}

/// Deletes every device of the account `account_id` with its notifications, their attempts and
/// their queued delivery jobs (the account is being erased).
pub fn erase_account_devices(conn: &mut DbConnection, account_id: &str) -> QueryResult<()> {
    let pending: Vec<String> = notifications::table
        .filter(notifications::account_id.eq(account_id))
        .select(notifications::id)
        .load(conn)?;
    for push in &pending {
        jobs::store::delete_queued_with_key(conn, &format!("push:{push}"))?;
    }
    let notification_ids = notifications::table
        .filter(notifications::account_id.eq(account_id))
        .select(notifications::id);
    diesel::delete(
        notification_attempts::table
            .filter(notification_attempts::notification_id.eq_any(notification_ids)),
    )
    .execute(conn)?;
    diesel::delete(notifications::table.filter(notifications::account_id.eq(account_id)))
        .execute(conn)?;
    diesel::delete(devices::table.filter(devices::account_id.eq(account_id))).execute(conn)?;
    Ok(())
}

/// A device as its owner's export shows it (never its push token).
#[derive(Debug, Clone, Queryable)]
pub struct ExportedDevice {
    /// Id.
    pub id: String,
    /// `ios`, `android` or `web`.
    pub platform: String,
    /// The app's version, as reported.
    pub app_version: Option<String>,
    /// Locale, as reported.
    pub locale: Option<String>,
    /// Still receiving pushes.
    pub active: bool,
    /// Registered.
    pub created_at: NaiveDateTime,
    /// Last seen.
    pub last_seen_at: NaiveDateTime,
}

/// Every device of `account_id`, oldest first, for its owner's export.
pub fn exported_devices_of(
    conn: &mut DbConnection,
    account_id: &str,
) -> QueryResult<Vec<ExportedDevice>> {
    devices::table
        .filter(devices::account_id.eq(account_id))
        .order(devices::created_at)
        .select((
            devices::id,
            devices::platform,
            devices::app_version,
            devices::locale,
            devices::active,
            devices::created_at,
            devices::last_seen_at,
        ))
        .load(conn)
}
