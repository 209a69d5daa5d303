//! Device and notification use cases: a caller registers and unregisters their devices, sends
//! themself a test notification, reads a notification's delivery state and reports it opened.

use chrono::NaiveDateTime;
use companion_schema::ids::{DeviceId, NotificationId};

use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};

use super::content::PushMessage;
use super::store::{self, DeviceRow, NotificationRow};

/// Registers `device` (already validated) for the caller; the same token registered again
/// moves to the caller and is active again. True when new.
pub fn register(
    conn: &mut DbConnection,
    caller: &Caller,
    device: DeviceRow,
) -> Outcome<(DeviceRow, bool)> {
    let device = DeviceRow {
        account_id: caller.account_id.to_string(),
        ..device
    };
    store::register(conn, device).map(Ok)
}

/// A page of the caller's devices, active or not, in registration order after the device id
/// `after` (`limit` + 1 rows when there is a next page).
pub fn my_devices(
    conn: &mut DbConnection,
    caller: &Caller,
    after: Option<&str>,
    limit: i64,
) -> Outcome<Vec<DeviceRow>> {
    store::devices_page(conn, caller.account_id.as_str(), after, limit).map(Ok)
}

fn own_device(conn: &mut DbConnection, caller: &Caller, raw_id: &str) -> Outcome<DeviceRow> {
    let Some(id) = DeviceId::parse(raw_id) else {
        return Ok(Err(Refusal::not_found("device")));
    };
    Ok(store::find_device(conn, id.as_str())?
        .filter(|d| d.account_id == caller.account_id.as_str())
        .ok_or_else(|| Refusal::not_found("device")))
}

/// Stops sending to one of the caller's devices.
pub fn unregister(conn: &mut DbConnection, caller: &Caller, raw_id: &str) -> Outcome<()> {
    let device = match own_device(conn, caller, raw_id)? {
        Ok(device) => device,
        Err(refused) => return Ok(Err(refused)),
    };
    store::deactivate(conn, &device.id, "unregistered")?;
    Ok(Ok(()))
}

/// Queues a test notification to one of the caller's active devices.
pub fn send_test(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    now: NaiveDateTime,
) -> Outcome<NotificationRow> {
    let device = match own_device(conn, caller, raw_id)? {
        Ok(device) => device,
        Err(refused) => return Ok(Err(refused)),
    };
    if !device.active {
        return Ok(Err(Refusal::conflict(
            "device_inactive",
            "This device is not registered for notifications.",
        )));
    }
    let id = store::notify_device(
        conn,
        &device,
        |id| PushMessage::Test {
            notification_id: id.to_owned(),
        },
        now,
    )?;
    notification(conn, caller, &id)
}

/// One of the caller's notifications.
pub fn notification(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
) -> Outcome<NotificationRow> {
    let Some(id) = NotificationId::parse(raw_id) else {
        return Ok(Err(Refusal::not_found("notification")));
    };
    Ok(store::find_notification(conn, id.as_str())?
        .map(|(n, _)| n)
        .filter(|n| n.account_id == caller.account_id.as_str())
        .ok_or_else(|| Refusal::not_found("notification")))
}

/// Records that the caller opened one of their notifications (the first time counts).
pub fn mark_opened(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    now: NaiveDateTime,
) -> Outcome<NotificationRow> {
    let found = match notification(conn, caller, raw_id)? {
        Ok(found) => found,
        Err(refused) => return Ok(Err(refused)),
    };
    store::mark_opened(conn, &found.id, now)?;
    notification(conn, caller, &found.id)
}
