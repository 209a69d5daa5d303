//! A fake Firebase Cloud Messaging server speaking the HTTP v1 API and the OAuth2 token
//! endpoint, on a loopback port. How it answers a message depends on the device token's prefix:
//!
//! | prefix | answer |
//! |---|---|
//! | `unregistered-` | 404 `UNREGISTERED` |
//! | `invalid-` | 400 `INVALID_ARGUMENT` |
//! | `ratelimited-` | first 429 with `Retry-After: 1`, then 200 |
//! | `flaky-` | first 500 `INTERNAL`, then 200 |
//! | `hang-` | first never answers, then 200 |
//! | anything else | 200 |
//!
//! It speaks HTTP/1.1 and HTTP/2 over cleartext (h2c, prior knowledge) on the same port. A message
//! is recorded the moment it arrives, before any configured latency, so a message whose sender
//! died before reading the answer still counts as shown on the phone (as with the real service).
//!
//! Beside it: an SMTP sink (`smtp`) and a Web Push service that checks VAPID and decrypts every
//! payload as a browser would (`web_push`).

pub mod smtp;
pub mod web_push;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt as _;
use serde_json::{Value, json};

/// A message the fake accepted or refused.
#[derive(Debug, Clone)]
pub struct Received {
    /// The device token.
    pub token: String,
    /// The whole request body.
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
    /// The status answered.
    pub status: u16,
    /// The HTTP version it came over (`HTTP/1.1`, `HTTP/2.0`).
    pub version: String,
}

/// How the fake behaves.
#[derive(Debug, Clone, Default)]
pub struct FakeOptions {
    /// Added before every message's answer (a gateway's round trip).
    pub latency: Duration,
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    seen: Mutex<HashMap<String, usize>>,
    token_requests: AtomicUsize,
    accepted: AtomicUsize,
    latency: Duration,
}

/// A running fake.
#[derive(Clone)]
pub struct FakeFcm {
    /// Its address.
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl FakeFcm {
    /// Starts the fake on 127.0.0.1 on a free port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(FakeOptions::default()).await
    }

    /// Starts the fake with `options`.
    pub async fn start_with(options: FakeOptions) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            latency: options.latency,
            ..Inner::default()
        });
        let router = Router::new()
            .route("/token", post(token))
            .route("/v1/projects/{project}/messages:send", post(send))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // As the real gateways' servers do: without TCP_NODELAY an answer's second segment waits
        // for the client's delayed ACK (40 ms on Linux) whenever the client has nothing else to
        // send, which added 38 ms on average to every answer of a worker's deliveries.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            axum::serve(listener, router).await.ok();
        });
        Ok(Self { addr, inner })
    }

    /// The base URL for `COMPANION_FCM_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token URL for `COMPANION_FCM_TOKEN_URL`.
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Every message received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Messages accepted (answered 200) so far.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.status == 200)
            .collect()
    }

    /// How many messages were accepted (cheap: no copying).
    pub fn delivered_count(&self) -> usize {
        self.inner.accepted.load(Ordering::SeqCst)
    }

    /// The fake's own ceiling: what a bare client (no queue, no database) gets from it, sending
    /// `count` messages shaped like ours with `in_flight` requests at once, over one HTTP/2
    /// connection (`http2`) or over HTTP/1.1 connections. Messages per second.
    pub async fn ceiling(
        &self,
        count: usize,
        in_flight: usize,
        http2: bool,
    ) -> Result<f64, String> {
        let mut builder = reqwest::Client::builder().pool_max_idle_per_host(in_flight);
        if http2 {
            builder = builder.http2_prior_knowledge();
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let url = format!("{}/v1/projects/ceiling/messages:send", self.base_url());
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut senders = tokio::task::JoinSet::new();
        for _ in 0..in_flight.max(1) {
            let (client, url, next) = (client.clone(), url.clone(), next.clone());
            senders.spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return Ok::<_, String>(());
                    }
                    let id = format!("0190c1c2-0000-7000-8000-{n:012}");
                    let body = json!({"message": {
                        "token": "ok-ceiling",
                        "notification": {"title": "Notifications", "body": "Notifications are working"},
                        "data": {"kind": "test", "notification_id": id},
                        "android": {"priority": "high", "ttl": "600s", "collapse_key": id,
                                    "notification": {"tag": id}},
                        "apns": {"headers": {"apns-collapse-id": id}},
                    }});
                    let response = client
                        .post(&url)
                        .bearer_auth("fake-access-ceiling")
                        .json(&body)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    if !response.status().is_success() {
                        return Err(format!("the fake answered {}", response.status()));
                    }
                    response.bytes().await.map_err(|e| e.to_string())?;
                }
            });
        }
        while let Some(done) = senders.join_next().await {
            done.map_err(|e| e.to_string())??;
        }
        Ok(count as f64 / started.elapsed().as_secs_f64())
    }

    /// OAuth token requests so far.
    pub fn token_requests(&self) -> usize {
        self.inner.token_requests.load(Ordering::SeqCst)
    }
}

async fn token(
    State(inner): State<Arc<Inner>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let grant_ok = form.get("grant_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:grant-type:jwt-bearer");
    let assertion_ok = form
        .get("assertion")
        .is_some_and(|a| a.split('.').count() == 3);
    if !grant_ok || !assertion_ok {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let n = inner.token_requests.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({"access_token": format!("fake-access-{n}"), "expires_in": 3600, "token_type": "Bearer"}))
        .into_response()
}

fn error(status: StatusCode, error_status: &str, code: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": status.as_u16(), "message": code, "status": error_status,
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]}})),
    )
        .into_response()
}

async fn send(
    State(inner): State<Arc<Inner>>,
    version: axum::http::Version,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let authorised = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer fake-access-"));
    if !authorised {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "THIRD_PARTY_AUTH_ERROR",
        );
    }
    let token = body["message"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let seen = {
        let mut seen = inner.seen.lock().unwrap_or_else(|p| p.into_inner());
        let count = seen.entry(token.clone()).or_insert(0);
        *count += 1;
        *count
    };
    let first = seen == 1;
    let response = if token.starts_with("unregistered-") {
        error(StatusCode::NOT_FOUND, "NOT_FOUND", "UNREGISTERED")
    } else if token.starts_with("invalid-") {
        error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
        )
    } else if token.starts_with("ratelimited-") && first {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "QUOTA_EXCEEDED",
        );
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        response
    } else if token.starts_with("flaky-") && first {
        error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "INTERNAL")
    } else if token.starts_with("hang-") && first {
        record(&inner, token, body.0, 0, version);
        std::future::pending::<()>().await;
        return StatusCode::OK.into_response();
    } else {
        axum::Json(json!({"name": format!("projects/fake/messages/{seen}")})).into_response()
    };
    if response.status() == StatusCode::OK {
        inner.accepted.fetch_add(1, Ordering::SeqCst);
    }
    record(&inner, token, body.0, response.status().as_u16(), version);
    if !inner.latency.is_zero() {
        tokio::time::sleep(inner.latency).await;
    }
    response
}

fn record(inner: &Inner, token: String, body: Value, status: u16, version: axum::http::Version) {
    if let Ok(mut received) = inner.received.lock() {
        received.push(Received {
            token,
            body,
            at: Instant::now(),
            status,
            version: format!("{version:?}"),
        });
    }
}
