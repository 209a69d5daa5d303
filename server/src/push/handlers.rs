//! `/v1/devices` and `/v1/notifications`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::extract::Bearer;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::pagination::{PageParams, Paginated};
use crate::time::utc;

use super::registration::{Platform, WebPushSubscriptionKeys};
use super::store::{DeviceRow, NotificationRow};
use super::use_cases;

/// A device to register: a phone's push token (APNs or FCM), or a browser's Web Push
/// subscription (`PushSubscription.toJSON()`'s `endpoint` and `keys`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "platform", rename_all = "snake_case", deny_unknown_fields)]
pub enum RegisterDevice {
    /// An iPhone or iPad, pushed through APNs.
    Ios {
        /// The push token from APNs.
        #[schema(pattern = "^[!-~]{1,4096}$")]
        token: String,
        /// The app's version.
        #[schema(pattern = "^[ -~]{1,64}$", example = "2.4.1")]
        app_version: Option<String>,
        /// The device's BCP 47 locale, e.g. `en-US`.
        #[schema(pattern = "^[ -~]{1,64}$", example = "en-US")]
        locale: Option<String>,
    },
    /// An Android phone, pushed through FCM.
    Android {
        /// The registration token from FCM.
        #[schema(pattern = "^[!-~]{1,4096}$")]
        token: String,
        /// The app's version.
        #[schema(pattern = "^[ -~]{1,64}$", example = "2.4.1")]
        app_version: Option<String>,
        /// The device's BCP 47 locale, e.g. `en-US`.
        #[schema(pattern = "^[ -~]{1,64}$", example = "en-US")]
        locale: Option<String>,
    },
    /// A browser, pushed through its push service (Web Push, RFC 8030). Subscribe with the key
    /// from `GET /v1/push/web-push-key` as `applicationServerKey`.
    Web {
        /// The subscription's endpoint: an absolute https URL (http is accepted outside
        /// production), never shown again.
        #[schema(
            pattern = "^https?://[!-~]{1,4088}$",
            example = "https://push.example.net/send/dGhpcyBpcyBhbiBleGFtcGxl"
        )]
        endpoint: String,
        /// The subscription's keys.
        keys: WebPushSubscriptionKeys,
        /// The web app's version.
        #[schema(pattern = "^[ -~]{1,64}$", example = "2.4.1")]
        app_version: Option<String>,
        /// The browser's BCP 47 locale, e.g. `en-US`.
        #[schema(pattern = "^[ -~]{1,64}$", example = "en-US")]
        locale: Option<String>,
    },
}

/// A registered device (the token, a subscription's endpoint and its keys are never echoed
/// back).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Device {
    /// Id.
    pub id: String,
    /// `ios`, `android` or `web`.
    #[schema(value_type = Platform)]
    pub platform: String,
    /// App version.
    pub app_version: Option<String>,
    /// Locale.
    pub locale: Option<String>,
    /// False once unregistered or found dead by the push service.
    pub active: bool,
    /// Registered.
    pub created_at: DateTime<Utc>,
    /// Last registered or refreshed.
    pub last_seen_at: DateTime<Utc>,
}

impl From<DeviceRow> for Device {
    fn from(row: DeviceRow) -> Self {
        Self {
            id: row.id,
            platform: row.platform,
            app_version: row.app_version,
            locale: row.locale,
            active: row.active,
            created_at: utc(row.created_at),
            last_seen_at: utc(row.last_seen_at),
        }
    }
}

/// Register a device for push notifications
///
/// A phone (`ios`, `android`: its push token) or a browser (`web`: its Web Push subscription).
/// Idempotent by token or endpoint: registering a known one refreshes it (with a subscription's
/// current keys), and moves it to the caller if another account had it, as when a phone changes
/// hands. Patients and staff alike may register devices.
#[utoipa::path(
    post,
    path = "/v1/devices",
    tag = "devices",
    operation_id = "register_device",
    security(("bearer" = [])),
    request_body = RegisterDevice,
    responses(
        (status = 201, description = "Registered", body = Device),
        (status = 200, description = "Already registered; refreshed", body = Device),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn register_device(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<Device>)> {
    register_for(&state, bearer, body).await
}

/// Registers the device `body` describes for the caller of `bearer`, answering 201 for a new
/// device and 200 for one already known.
async fn register_for(
    state: &AppState,
    bearer: Bearer,
    body: serde_json::Value,
) -> ApiResult<(StatusCode, Json<Device>)> {
    let (row, created) = use_cases::register_from(state, bearer, body).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(row.into())))
}

/// The server's Web Push key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebPushKey {
    /// The VAPID public key (RFC 8292): an uncompressed P-256 point, base64url without padding.
    /// A browser subscribes with it as `applicationServerKey`.
    #[schema(
        example = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
    )]
    pub public_key: String,
}

/// The key browsers subscribe to Web Push with
///
/// Public: a web app needs it before anyone signs in to subscribe
/// (`pushManager.subscribe({userVisibleOnly: true, applicationServerKey})`), then registers the
/// subscription with `POST /v1/devices` (`platform: "web"`).
#[utoipa::path(
    get,
    path = "/v1/push/web-push-key",
    tag = "devices",
    operation_id = "get_web_push_key",
    security(()),
    responses(
        (status = 200, description = "The key", body = WebPushKey),
        (status = 404, description = "Web Push is not configured on this server (`web_push_not_configured`)", body = ErrorBody),
        (status = 503, description = "The server could not answer in time (`request_timeout`)", body = ErrorBody),
    )
)]
pub async fn get_web_push_key(State(state): State<AppState>) -> ApiResult<Json<WebPushKey>> {
    match &state.push.web_public_key {
        Some(key) => Ok(Json(WebPushKey {
            public_key: key.clone(),
        })),
        None => Err(ApiError::with_status(
            StatusCode::NOT_FOUND,
            "web_push_not_configured",
            "Web Push is not configured on this server.",
        )),
    }
}

/// Unregister a device
#[utoipa::path(
    delete,
    path = "/v1/devices/{device_id}",
    tag = "devices",
    operation_id = "delete_device",
    security(("bearer" = [])),
    params(("device_id" = String, Path, description = "The device")),
    responses(
        (status = 204, description = "Unregistered; nothing more is sent to it"),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 404, description = "No such device of the caller's", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn delete_device(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(device_id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .write_as(bearer, move |conn, caller| {
            use_cases::unregister(conn, caller, &device_id)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A notification's delivery state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    /// Id (also in the push payload).
    pub id: String,
    /// `check_in_prompt`, `care_alert` or `test`.
    pub kind: String,
    /// The device.
    pub device_id: String,
    /// `pending`, `delivered`, `token_dead`, `rejected` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Accepted by the push service.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Opened, as the app reported.
    pub opened_at: Option<DateTime<Utc>>,
}

/// Send a test notification to one of my devices
///
/// Queues a notification with the fixed text "Notifications are working", so an app can check
/// its push set-up end to end. Follow it with `GET /v1/notifications/{id}`.
#[utoipa::path(
    post,
    path = "/v1/devices/{device_id}/test",
    tag = "devices",
    operation_id = "test_device",
    security(("bearer" = [])),
    params(("device_id" = String, Path, description = "The device")),
    responses(
        (status = 202, description = "Queued", body = Notification),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 404, description = "No such device of the caller's", body = ErrorBody),
        (status = 409, description = "The device is inactive (`device_inactive`)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn test_device(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(device_id): Path<String>,
) -> ApiResult<(StatusCode, Json<Notification>)> {
    let now = state.now();
    let row = state
        .write_as(bearer, move |conn, caller| {
            use_cases::send_test(conn, caller, &device_id, now)
        })
        .await?;
    state.jobs_enqueued();
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}

impl From<NotificationRow> for Notification {
    fn from(row: NotificationRow) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            device_id: row.device_id,
            status: row.status,
            attempts: row.attempts,
            created_at: utc(row.created_at),
            delivered_at: row.delivered_at.map(utc),
            opened_at: row.opened_at.map(utc),
        }
    }
}

/// A notification's delivery state
#[utoipa::path(
    get,
    path = "/v1/notifications/{notification_id}",
    tag = "devices",
    operation_id = "get_notification",
    security(("bearer" = [])),
    params(("notification_id" = String, Path, description = "The notification")),
    responses(
        (status = 200, description = "The notification", body = Notification),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 404, description = "No such notification of the caller's", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_notification(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(notification_id): Path<String>,
) -> ApiResult<Json<Notification>> {
    state
        .read_as(bearer, move |conn, caller| {
            use_cases::notification(conn, caller, &notification_id)
        })
        .await
        .map(|row| Json(row.into()))
}

/// Report that a notification was opened
#[utoipa::path(
    post,
    path = "/v1/notifications/{notification_id}/opened",
    tag = "devices",
    operation_id = "open_notification",
    security(("bearer" = [])),
    params(("notification_id" = String, Path, description = "The notification")),
    responses(
        (status = 200, description = "Recorded (the first report counts)", body = Notification),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 404, description = "No such notification of the caller's", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn open_notification(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(notification_id): Path<String>,
) -> ApiResult<Json<Notification>> {
    let now = state.now();
    state
        .write_as(bearer, move |conn, caller| {
            use_cases::mark_opened(conn, caller, &notification_id, now)
        })
        .await
        .map(|row| Json(row.into()))
}

/// My devices
///
/// The caller's registered devices, oldest first, including those unregistered or found dead by
/// the push service (`active` false). Tokens are never shown.
#[utoipa::path(
    get,
    path = "/v1/me/devices",
    tag = "devices",
    operation_id = "list_my_devices",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of devices", body = Paginated<Device>),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 422, description = "Invalid query parameters", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_my_devices(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Paginated<Device>>> {
    let page = params.parse()?;
    let (after, limit) = (page.after.clone(), i64::from(page.limit) + 1);
    let rows = state
        .read_as(bearer, move |conn, caller| {
            use_cases::my_devices(conn, caller, after.as_deref(), limit)
        })
        .await?;
    let items: Vec<Device> = rows.into_iter().map(Device::from).collect();
    Ok(Json(Paginated::from_rows(items, &page, |d| d.id.clone())))
}
