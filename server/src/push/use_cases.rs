//! Device and notification use cases: a caller registers and unregisters their devices, sends
//! themself a test notification, reads a notification's delivery state and reports it opened.

use chrono::{DateTime, Utc};
use companion_schema::ids::{DeviceId, NotificationId};

use crate::auth::extract::Caller;
use crate::db::DbConnection;
use crate::error::{Outcome, Refusal};

use super::content::PushMessage;
use super::registration::{self, Registration};
use super::store::{self, DeviceRow, NotificationRow};

/// Registers a device for the caller, received at `now`; a token (or subscription endpoint)
/// registered again moves to the caller and is active again. True when new.
pub fn register(
    conn: &mut DbConnection,
    caller: &Caller,
    registration: Registration,
    now: DateTime<Utc>,
) -> Outcome<(DeviceRow, bool)> {
    let now = now.naive_utc();
    let (web_p256dh, web_auth) = registration.web.unzip();
    let device = DeviceRow {
        id: store::new_device_id(),
        account_id: caller.account_id.to_string(),
        platform: registration.platform.as_str().to_owned(),
        token: registration.token,
        app_version: registration.app_version,
        locale: registration.locale,
        active: true,
        invalid_argument_count: 0,
        deactivated_reason: None,
        created_at: now,
        last_seen_at: now,
        web_p256dh,
        web_auth,
    };
    Ok(store::register(conn, device)?)
}

/// A page of the caller's devices, active or not, in registration order after the device id
/// `after` (`limit` + 1 rows when there is a next page).
pub fn my_devices(
    conn: &mut DbConnection,
    caller: &Caller,
    after: Option<&str>,
    limit: i64,
) -> Outcome<Vec<DeviceRow>> {
    Ok(store::devices_page(
        conn,
        caller.account_id.as_str(),
        after,
        limit,
    )?)
}

fn own_device(conn: &mut DbConnection, caller: &Caller, raw_id: &str) -> Outcome<DeviceRow> {
    let Some(id) = DeviceId::parse(raw_id) else {
        return Err(Refusal::not_found("device").into());
    };
    Ok(store::find_device(conn, id.as_str())?
        .filter(|d| d.account_id == caller.account_id.as_str())
        .ok_or_else(|| Refusal::not_found("device"))?)
}

/// Stops sending to one of the caller's devices.
pub fn unregister(conn: &mut DbConnection, caller: &Caller, raw_id: &str) -> Outcome<()> {
    let device = own_device(conn, caller, raw_id)?;
    store::deactivate(conn, &device.id, "unregistered")?;
    Ok(())
}

/// Queues a test notification to one of the caller's active devices.
pub fn send_test(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    now: DateTime<Utc>,
) -> Outcome<NotificationRow> {
    let now = now.naive_utc();
    let device = own_device(conn, caller, raw_id)?;
    if !device.active {
        return Err(Refusal::conflict(
            "device_inactive",
            "This device is not registered for notifications.",
        )
        .into());
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
        return Err(Refusal::not_found("notification").into());
    };
    Ok(store::find_notification(conn, id.as_str())?
        .map(|(n, _)| n)
        .filter(|n| n.account_id == caller.account_id.as_str())
        .ok_or_else(|| Refusal::not_found("notification"))?)
}

/// Records that the caller opened one of their notifications (the first time counts).
pub fn mark_opened(
    conn: &mut DbConnection,
    caller: &Caller,
    raw_id: &str,
    now: DateTime<Utc>,
) -> Outcome<NotificationRow> {
    let found = notification(conn, caller, raw_id)?;
    store::mark_opened(conn, &found.id, now.naive_utc())?;
    notification(conn, caller, &found.id)
}

/// Registers the device `body` describes (a registration as `POST /v1/devices` reads it) for
/// the caller of `bearer`, in one unit of work: the API's handler and the console's
/// browser-notifications form. Returns the device and whether it is new.
pub async fn register_from(
    state: &crate::app::App,
    bearer: crate::auth::extract::Bearer,
    body: serde_json::Value,
) -> crate::error::ApiResult<(DeviceRow, bool)> {
    let registration = registration::parse(body, &state.outbound.policy)?;
    let now = state.now();
    state
        .write_as(bearer, move |conn, caller| {
            register(conn, caller, registration, now)
        })
        .await
}
