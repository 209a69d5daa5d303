//! `App`, the one piece of shared state (configuration, database pool, clock, keys, limiters),
//! and the HTTP router assembled from every domain. Tests build their own `App`; there are no
//! globals.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore;

use crate::auth::tokens::TokenKeys;
use crate::clock::Clock;
use crate::config::{Config, KeySource, PushConfig, Secret, SigningKey, VapidKeySource};
use crate::db::Db;
use crate::http::rate_limit::RateLimiter;
use crate::instrument::catalogue::Catalogue;
use crate::push::apns::ApnsGateway;
use crate::push::fcm::FcmGateway;
use crate::push::gateway::{LoggingGateway, PushGateway};
use crate::push::web_push::{VapidKey, WebPushGateway};

/// Rate limiters for the credential endpoints.
#[derive(Debug)]
pub struct AuthLimits {
    /// Login attempts per email address.
    pub login_per_account: RateLimiter,
    /// Login attempts per client address (generous: many users may share a proxy).
    pub login_per_client: RateLimiter,
    /// Refreshes per client address.
    pub refresh_per_client: RateLimiter,
    /// Invitation acceptances per client address (codes are short enough to guess at scale).
    pub accept_per_client: RateLimiter,
    /// SMART token requests per client address.
    pub token_per_client: RateLimiter,
    /// SMART token requests per system client (the `iss` its assertion claims).
    pub token_per_system_client: RateLimiter,
    /// Password resets with a code, per client address.
    pub reset_per_client: RateLimiter,
}

impl AuthLimits {
    fn new(per_minute: u32) -> Self {
        Self {
            login_per_account: RateLimiter::new(per_minute),
            login_per_client: RateLimiter::new(per_minute.saturating_mul(10)),
            refresh_per_client: RateLimiter::new(per_minute.saturating_mul(10)),
            accept_per_client: RateLimiter::new(per_minute),
            token_per_client: RateLimiter::new(per_minute.saturating_mul(10)),
            token_per_system_client: RateLimiter::new(per_minute),
            reset_per_client: RateLimiter::new(per_minute),
        }
    }
}

/// The push gateway for each platform.
#[derive(Debug, Clone)]
pub struct PushGateways {
    /// iOS.
    pub apns: Arc<dyn PushGateway>,
    /// Android.
    pub fcm: Arc<dyn PushGateway>,
    /// Browsers (Web Push).
    pub web: Arc<dyn PushGateway>,
    /// The VAPID public key browsers subscribe with (base64url), when Web Push is configured.
    pub web_public_key: Option<String>,
    /// Per-attempt time limit.
    pub timeout: std::time::Duration,
    /// Writes delivered pushes in groups.
    pub settler: Arc<crate::push::settle::Settler>,
}

impl PushGateways {
    fn from_config(
        config: &PushConfig,
        outbound: &crate::http::outbound::Outbound,
    ) -> anyhow::Result<Self> {
        let apns: Arc<dyn PushGateway> = match &config.apns {
            Some(apns) => Arc::new(ApnsGateway::new(apns)?),
            None => Arc::new(LoggingGateway { platform: "apns" }),
        };
        let fcm: Arc<dyn PushGateway> = match &config.fcm {
            Some(fcm) => Arc::new(FcmGateway::new(fcm.clone())?),
            None => Arc::new(LoggingGateway { platform: "fcm" }),
        };
        let vapid = match &config.web {
            VapidKeySource::Configured(text) => Some(
                VapidKey::parse(text.expose())
                    .map_err(|p| anyhow::anyhow!("COMPANION_VAPID_PRIVATE_KEY {p}"))?,
            ),
            VapidKeySource::DevelopmentFile(path) => Some(load_or_create_vapid_key(path)?),
            VapidKeySource::NotConfigured => None,
        };
        let web_public_key = vapid.as_ref().map(|k| k.public_key().to_owned());
        let web: Arc<dyn PushGateway> = match vapid {
            Some(key) => Arc::new(WebPushGateway::new(
                key,
                config.vapid_subject.clone(),
                crate::http::outbound::Outbound {
                    timeout: config.timeout,
                    ..outbound.clone()
                },
            )),
            None => Arc::new(LoggingGateway { platform: "web" }),
        };
        Ok(Self {
            apns,
            fcm,
            web,
            web_public_key,
            timeout: config.timeout,
            settler: Arc::default(),
        })
    }
}

/// Everything a request or a worker needs.
#[derive(Debug)]
pub struct App {
    /// The validated configuration.
    pub config: Config,
    /// The database pool.
    pub db: Db,
    /// The source of `now`.
    pub clock: Arc<dyn Clock>,
    /// Access-token keys.
    pub tokens: TokenKeys,
    /// Credential endpoint limiters.
    pub limits: AuthLimits,
    /// Every instrument definition.
    pub catalogue: Catalogue,
    /// The country of each time zone (crisis resources of clinics that set no country).
    pub zones: Arc<crate::safety::zones::ZoneCountries>,
    /// Push gateways.
    pub push: PushGateways,
    /// The SMTP mailer, when `COMPANION_SMTP_URL` is set.
    pub mailer: Option<crate::email::Mailer>,
    /// Webhook deliveries: where they may go, and the resolver that says where a host is.
    pub outbound: crate::http::outbound::Outbound,
    /// Woken whenever this process enqueues a job (and by the PostgreSQL listener).
    pub job_wake: Arc<tokio::sync::Notify>,
    /// This process's counters and histograms (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// A hash to verify against when an email is unknown, so that the response time does not
    /// reveal which addresses have accounts.
    pub(crate) decoy_hash: tokio::sync::OnceCell<String>,
}

impl std::fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl App {
    /// Builds the application from its configuration. Opens no database connection yet.
    pub fn new(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let keys = match &config.keys {
            KeySource::Configured(keys) => keys.clone(),
            KeySource::DevelopmentFile(path) => vec![load_or_create_dev_key(path)?],
        };
        let tokens = TokenKeys::new(&keys, &config.jwt_issuer, &config.jwt_audience)
            .context("COMPANION_JWT_KEYS holds no key")?;
        let db = Db::new(&config.database, config.db_pool_size).map_err(anyhow::Error::msg)?;
        let limits = AuthLimits::new(config.auth_rate_limit_per_minute);
        // Webhooks and Web Push endpoints both come from users: one policy for both.
        let outbound = crate::http::outbound::Outbound {
            policy: crate::http::outbound::OutboundPolicy {
                allow: config.webhook_allow.clone(),
                require_https: config.environment == crate::config::Environment::Production,
            },
            resolver: Arc::new(crate::http::outbound::SystemResolver),
            timeout: std::time::Duration::from_secs(10),
        };
        let push = PushGateways::from_config(&config.push, &outbound)?;
        // Production refuses this unless COMPANION_ACCEPT_PUSH_NOT_CONFIGURED accepts the risk
        // (see `Config`); development says so at start.
        for (platform, missing) in [
            ("APNs", config.push.apns.is_none()),
            ("FCM", config.push.fcm.is_none()),
            ("Web Push", push.web_public_key.is_none()),
        ] {
            if missing {
                tracing::warn!(
                    platform,
                    "no credentials configured: notifications to these devices are only logged, never sent, and never count as reaching anyone"
                );
            }
        }
        let mailer = config
            .email
            .as_ref()
            .map(crate::email::Mailer::new)
            .transpose()?;
        Ok(Self {
            config,
            db,
            clock,
            tokens,
            limits,
            catalogue: Catalogue::default(),
            zones: Arc::new(crate::safety::zones::ZoneCountries::vendored()),
            push,
            job_wake: Arc::new(tokio::sync::Notify::new()),
            metrics: Arc::default(),
            outbound,
            decoy_hash: tokio::sync::OnceCell::new(),
            mailer,
        })
    }

    /// The ways this process can reach people: push services with credentials, and email.
    pub fn channels(&self) -> crate::escalation::decide::Channels {
        crate::escalation::decide::Channels {
            ios: self.push.apns.reaches_devices(),
            android: self.push.fcm.reaches_devices(),
            web: self.push.web.reaches_devices(),
            email: self.mailer.is_some(),
        }
    }

    /// Wakes the workers of this process: call after committing a transaction that enqueued jobs.
    pub fn jobs_enqueued(&self) {
        self.job_wake.notify_one();
    }

    /// The current instant from the application clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// The state handed to every handler: a cheap clone of the shared `App`.
#[derive(Clone, Debug)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

/// Reads the development signing key, generating it on first use. Never used in production
/// (the configuration refuses to start without `COMPANION_JWT_KEYS` there).
fn load_or_create_dev_key(path: &Path) -> anyhow::Result<SigningKey> {
    let engine = base64::engine::general_purpose::STANDARD;
    if path.exists() {
        crate::private_files::restrict(path)
            .with_context(|| format!("cannot restrict {}", path.display()))?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the development key {}", path.display()))?;
        let secret = engine
            .decode(text.trim())
            .ok()
            .filter(|s| s.len() >= 32)
            .with_context(|| {
                format!(
                    "the development key {} is corrupt; delete it",
                    path.display()
                )
            })?;
        return Ok(SigningKey {
            id: "dev".into(),
            secret: Secret::new(secret),
        });
    }
    if let Some(parent) = path.parent() {
        crate::private_files::create_dir(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut secret = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    write_private(path, engine.encode(&secret).as_bytes())
        .with_context(|| format!("cannot write the development key {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "no COMPANION_JWT_KEYS configured: generated a development signing key (never do this in production)"
    );
    Ok(SigningKey {
        id: "dev".into(),
        secret: Secret::new(secret),
    })
}

/// Reads the development VAPID key (Web Push), generating it on first use, 0600 like the JWT
/// development key. Never used in production (the configuration refuses to start without
/// `COMPANION_VAPID_PRIVATE_KEY` there, unless Web Push is accepted as not configured).
fn load_or_create_vapid_key(path: &Path) -> anyhow::Result<VapidKey> {
    if path.exists() {
        crate::private_files::restrict(path)
            .with_context(|| format!("cannot restrict {}", path.display()))?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the development VAPID key {}", path.display()))?;
        return VapidKey::parse(&text).map_err(|_| {
            anyhow::anyhow!(
                "the development VAPID key {} is corrupt; delete it (browsers subscribed with it must subscribe again)",
                path.display()
            )
        });
    }
    if let Some(parent) = path.parent() {
        crate::private_files::create_dir(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let key = VapidKey::generate();
    write_private(path, key.private_base64url().as_bytes())
        .with_context(|| format!("cannot write the development VAPID key {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "no COMPANION_VAPID_PRIVATE_KEY configured: generated a development Web Push key (never do this in production)"
    );
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
