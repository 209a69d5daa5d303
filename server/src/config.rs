//! Typed configuration read from `COMPANION_*` environment variables (plus `DATABASE_URL`), with an
//! optional `KEY=VALUE` file named by `COMPANION_CONFIG_FILE` underneath them. Everything is
//! validated at start; an error names the offending key. Secrets print as `[redacted]`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;

/// A value that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Development (forgiving defaults, generated signing key) or production (strict).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    /// A developer's machine or a test.
    Development,
    /// A real deployment.
    Production,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (what log pipelines ingest).
    Json,
    /// Human-readable lines for a terminal.
    Text,
    /// Not set: human-readable lines when a development server logs to a terminal, JSON
    /// otherwise (production, or logs going to a file or a pipe).
    Auto,
}

impl LogFormat {
    /// The format to use in `environment`, given whether the logs go to a terminal.
    pub fn resolve(self, environment: Environment, terminal: bool) -> LogFormat {
        match self {
            LogFormat::Auto if terminal && environment == Environment::Development => {
                LogFormat::Text
            }
            LogFormat::Auto => LogFormat::Json,
            chosen => chosen,
        }
    }
}

/// Which database backend a URL selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A PostgreSQL server, by libpq connection URL.
    Postgres(Secret<String>),
    /// A SQLite database file.
    Sqlite(PathBuf),
}

impl DatabaseTarget {
    /// Picks the backend from the URL scheme: `postgres://`/`postgresql://` or `sqlite://PATH`
    /// (`sqlite:PATH` is accepted too).
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url::Url::parse(url).map_err(|e| format!("not a valid PostgreSQL URL ({e})"))?;
            return Ok(Self::Postgres(Secret::new(url.to_owned())));
        }
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if rest.is_empty() {
                return Err("the SQLite URL names no file (expected sqlite://PATH)".into());
            }
            if rest == ":memory:" {
                return Err(
                    "an in-memory SQLite database cannot be shared by a connection pool; name a file"
                        .into(),
                );
            }
            return Ok(Self::Sqlite(PathBuf::from(rest)));
        }
        let scheme = url.split(':').next().unwrap_or_default();
        Err(format!(
            "unsupported scheme '{scheme}' (expected postgres://... or sqlite://PATH)"
        ))
    }

    /// A description safe to log: host and database for PostgreSQL (never the password), the
    /// path for SQLite.
    pub fn describe(&self) -> String {
        match self {
            Self::Postgres(url) => match url::Url::parse(url.expose()) {
                Ok(u) => format!(
                    "PostgreSQL at {}:{}{}",
                    u.host_str().unwrap_or("localhost"),
                    u.port().unwrap_or(5432),
                    u.path()
                ),
                Err(_) => "PostgreSQL".into(),
            },
            Self::Sqlite(path) => format!("SQLite at {}", path.display()),
        }
    }
}

/// One access-token signing key (HMAC-SHA256) with the id put in the token header.
#[derive(Clone, Debug)]
pub struct SigningKey {
    /// The key id (`kid`).
    pub id: String,
    /// At least 32 bytes of key material.
    pub secret: Secret<Vec<u8>>,
}

/// Where the signing keys came from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// `COMPANION_JWT_KEYS`: the first key signs, all of them verify (rotation).
    Configured(Vec<SigningKey>),
    /// Nothing configured (development only): a key generated once into the data folder.
    DevelopmentFile(PathBuf),
}

/// The whole validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Development or production.
    pub environment: Environment,
    /// `COMPANION_ADDR`: listen address.
    pub addr: SocketAddr,
    /// `COMPANION_WORKER_ADDR`: where `companion work` answers `/health/live`, `/health/ready`
    /// and `/metrics` (none when unset).
    pub worker_addr: Option<SocketAddr>,
    /// `COMPANION_DATA_DIR`: SQLite database and development key.
    pub data_dir: PathBuf,
    /// `DATABASE_URL` (default: SQLite in the data folder).
    pub database: DatabaseTarget,
    /// `COMPANION_DB_POOL_SIZE`.
    pub db_pool_size: usize,
    /// `COMPANION_MIGRATE_ON_START`: `serve` applies pending migrations first.
    pub migrate_on_start: bool,
    /// Signing keys for access tokens.
    pub keys: KeySource,
    /// `COMPANION_JWT_ISSUER`.
    pub jwt_issuer: String,
    /// `COMPANION_JWT_AUDIENCE`.
    pub jwt_audience: String,
    /// `COMPANION_ACCESS_TOKEN_TTL` (seconds).
    pub access_token_ttl: Duration,
    /// `COMPANION_REFRESH_TOKEN_TTL` (seconds).
    pub refresh_token_ttl: Duration,
    /// `COMPANION_INVITATION_TTL` (seconds): default lifetime of an invitation code.
    pub invitation_ttl: Duration,
    /// `COMPANION_AUTH_RATE_LIMIT`: attempts per minute per client on login, refresh and
    /// invitation acceptance.
    pub auth_rate_limit_per_minute: u32,
    /// `COMPANION_CORS_ORIGINS`: allowed browser origins (empty: no cross-origin access).
    pub cors_origins: Vec<String>,
    /// `COMPANION_REQUEST_TIMEOUT` (seconds).
    pub request_timeout: Duration,
    /// `COMPANION_MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// `COMPANION_LOG_FORMAT`: `json` or `text`; unset, text on a development terminal and JSON
    /// otherwise.
    pub log_format: LogFormat,
    /// `COMPANION_LOG`: a tracing filter such as `info` or `companion=debug`.
    pub log_filter: String,
    /// `COMPANION_WORKER_INTERVAL` (seconds): how often housekeeping runs.
    pub worker_interval: Duration,
    /// The job queue.
    pub jobs: JobConfig,
    /// Push services.
    pub push: PushConfig,
    /// Check-in prompts.
    pub prompts: PromptConfig,
    /// `COMPANION_SHUTDOWN_TIMEOUT` (seconds): after SIGTERM, how long in-flight requests and
    /// jobs may take before the process releases what it holds and exits.
    pub shutdown_timeout: Duration,
    /// `COMPANION_METRICS_TOKEN`: when set, `/metrics` requires it as a bearer token.
    pub metrics_token: Option<Secret<String>>,
    /// How `serve` accepts connections.
    pub connections: ConnectionConfig,
    /// The safety path's configuration.
    pub safety: SafetyConfig,
    /// Email, when `COMPANION_SMTP_URL` is set.
    pub email: Option<EmailConfig>,
    /// `COMPANION_WEBHOOK_ALLOW`: internal hosts and networks webhooks may reach anyway.
    pub webhook_allow: Vec<crate::http::outbound::AllowEntry>,
    /// `COMPANION_ORG_AUDIT_RETENTION_DAYS`: how long audit rows of no clinic (organisation-level
    /// actions) are kept; a clinic's own rows follow its retention policy.
    pub org_audit_retention_days: u32,
    /// `COMPANION_PUBLIC_URL`: where clients reach this installation; every absolute URL the
    /// server emits (FHIR links, the SMART token endpoint and assertion audience, Bulk Data file
    /// URLs) is built from it, never from a request's `Host`.
    pub public_url: PublicUrl,
}

/// The safety path's configuration.
#[derive(Clone, Debug)]
pub struct SafetyConfig {
    /// `COMPANION_SAFETY_ANSWER_WAIT_MS`: how long the answer to a check-in that raised an urgent
    /// or high alert may wait for the first delivery outcome, so that the patient is told
    /// `reached` or `unreachable` rather than `trying` (0: answer at once).
    pub answer_wait: Duration,
    /// `COMPANION_ACCEPT_PUSH_NOT_CONFIGURED`: in production, start even though APNs or FCM has no
    /// credentials (their devices are then never pushed, and alerts reach staff only by webhook
    /// or email). Refused otherwise.
    pub accept_push_not_configured: bool,
}

/// Email configuration.
#[derive(Clone, Debug)]
pub struct EmailConfig {
    /// `COMPANION_SMTP_URL`: `smtp://host:port` (add `?tls=required` for STARTTLS) or
    /// `smtps://host:port`, with `user:password@` when the server asks for credentials.
    pub url: Secret<String>,
    /// `COMPANION_SMTP_FROM`: the sender, `Name <address>` or an address.
    pub from: String,
}

/// The installation's public base URL: scheme, host, optional port and path prefix, no trailing
/// slash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// Parses an absolute `http` or `https` URL without query, fragment or credentials.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err("must be an http or https URL with a host".into());
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err("must have no query, fragment or credentials".into());
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// The base, without a trailing slash (`https://companion.example.org`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether clients reach the installation over TLS.
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

/// Limits on the connections `serve` accepts, against clients that hold sockets open.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// `COMPANION_HEADER_TIMEOUT` (seconds): a request's headers must arrive within this long,
    /// or the connection is closed.
    pub header_timeout: Duration,
    /// `COMPANION_BODY_TIMEOUT` (seconds): a request's body must arrive within this long after
    /// its headers, or the request is answered 408.
    pub body_timeout: Duration,
    /// `COMPANION_MAX_CONNECTIONS`: open connections over all clients; more are closed at once.
    pub max_connections: usize,
    /// `COMPANION_MAX_CONNECTIONS_PER_CLIENT`: open connections from one client address; more
    /// are closed at once.
    pub max_connections_per_client: usize,
}

/// Check-in prompt configuration.
#[derive(Clone, Debug)]
pub struct PromptConfig {
    /// `COMPANION_PROMPT_INTERVAL` (seconds): how often workers plan ahead, send due prompts and
    /// reminders, and expire missed ones.
    pub interval: Duration,
    /// `COMPANION_PROMPT_HORIZON_HOURS`: how far ahead prompts are materialised.
    pub horizon: chrono::TimeDelta,
    /// Rows handled per transaction by each step.
    pub batch: i64,
}

/// Jobs one worker runs at once unless `COMPANION_WORKER_CONCURRENCY` says otherwise. Against
/// a gateway across the internet a worker sends about this many pushes per round trip, so more
/// drain a backlog faster; on a machine the worker saturates, each job more in flight also delays
/// an urgent push behind the backlog (docs/BENCHMARKS.md, "How many jobs a worker runs at once").
pub const DEFAULT_WORKER_CONCURRENCY: usize = 64;

/// Job-queue configuration.
#[derive(Clone, Debug)]
pub struct JobConfig {
    /// `COMPANION_JOB_LEASE` (seconds): how long a claimed job is held before another worker may
    /// take it over.
    pub lease: Duration,
    /// `COMPANION_JOB_POLL_INTERVAL` (milliseconds): the fallback when no wake-up arrives.
    pub poll_interval: Duration,
    /// `COMPANION_WORKER_CONCURRENCY`: jobs a worker runs at once.
    pub concurrency: usize,
    /// First retry delay (doubles per attempt).
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_cap: Duration,
}

/// Push-service configuration; a service left unconfigured is replaced by a logging stand-in.
#[derive(Clone, Debug)]
pub struct PushConfig {
    /// FCM, when `COMPANION_FCM_SERVICE_ACCOUNT_FILE` is set.
    pub fcm: Option<crate::push::fcm::FcmConfig>,
    /// APNs, when `COMPANION_APNS_KEY_FILE` is set.
    pub apns: Option<crate::push::apns::ApnsConfig>,
    /// Web Push: where the VAPID key comes from.
    pub web: VapidKeySource,
    /// `COMPANION_VAPID_SUBJECT`: the contact push services see (`mailto:` or `https:`);
    /// by default `COMPANION_PUBLIC_URL` when it is https.
    pub vapid_subject: String,
    /// `COMPANION_PUSH_TIMEOUT` (seconds) per delivery attempt.
    pub timeout: Duration,
}

/// Where the Web Push (VAPID) key comes from.
#[derive(Clone, Debug)]
pub enum VapidKeySource {
    /// `COMPANION_VAPID_PRIVATE_KEY` (checked to be a P-256 private key).
    Configured(Secret<String>),
    /// Development: a key generated once into the data folder, like the JWT development key.
    DevelopmentFile(PathBuf),
    /// None (production with `COMPANION_ACCEPT_PUSH_NOT_CONFIGURED`): Web Push is only logged,
    /// and browsers cannot subscribe.
    NotConfigured,
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {problem}")]
pub struct ConfigError {
    /// The setting at fault.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

fn err(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        problem: problem.into(),
    }
}

/// Every key this program reads; anything else starting with `COMPANION_` (other than the test
/// suite's `COMPANION_TEST_*`) is reported, since a misspelt setting silently ignored is a classic
/// production outage.
pub const KEYS: &[&str] = &[
    "COMPANION_ENV",
    "COMPANION_ADDR",
    "COMPANION_WORKER_ADDR",
    "COMPANION_DATA_DIR",
    "COMPANION_CONFIG_FILE",
    "COMPANION_DB_POOL_SIZE",
    "COMPANION_MIGRATE_ON_START",
    "COMPANION_JWT_KEYS",
    "COMPANION_JWT_ISSUER",
    "COMPANION_JWT_AUDIENCE",
    "COMPANION_ACCESS_TOKEN_TTL",
    "COMPANION_REFRESH_TOKEN_TTL",
    "COMPANION_INVITATION_TTL",
    "COMPANION_AUTH_RATE_LIMIT",
    "COMPANION_CORS_ORIGINS",
    "COMPANION_REQUEST_TIMEOUT",
    "COMPANION_MAX_BODY_BYTES",
    "COMPANION_LOG_FORMAT",
    "COMPANION_LOG",
    "COMPANION_WORKER_INTERVAL",
    "COMPANION_ADMIN_PASSWORD",
    "COMPANION_JOB_LEASE",
    "COMPANION_JOB_POLL_INTERVAL",
    "COMPANION_WORKER_CONCURRENCY",
    "COMPANION_SHUTDOWN_TIMEOUT",
    "COMPANION_METRICS_TOKEN",
    "COMPANION_PROMPT_INTERVAL",
    "COMPANION_PROMPT_HORIZON_HOURS",
    "COMPANION_JOB_RETRY_BASE",
    "COMPANION_PUSH_TIMEOUT",
    "COMPANION_FCM_SERVICE_ACCOUNT_FILE",
    "COMPANION_FCM_PROJECT_ID",
    "COMPANION_FCM_BASE_URL",
    "COMPANION_FCM_TOKEN_URL",
    "COMPANION_APNS_KEY_FILE",
    "COMPANION_APNS_KEY_ID",
    "COMPANION_APNS_TEAM_ID",
    "COMPANION_APNS_TOPIC",
    "COMPANION_APNS_ENVIRONMENT",
    "COMPANION_VAPID_PRIVATE_KEY",
    "COMPANION_VAPID_SUBJECT",
    "COMPANION_HEADER_TIMEOUT",
    "COMPANION_BODY_TIMEOUT",
    "COMPANION_MAX_CONNECTIONS",
    "COMPANION_MAX_CONNECTIONS_PER_CLIENT",
    "COMPANION_SAFETY_ANSWER_WAIT_MS",
    "COMPANION_ACCEPT_PUSH_NOT_CONFIGURED",
    "COMPANION_SMTP_URL",
    "COMPANION_SMTP_FROM",
    "COMPANION_WEBHOOK_ALLOW",
    "COMPANION_PUBLIC_URL",
    "COMPANION_ORG_AUDIT_RETENTION_DAYS",
    "DATABASE_URL",
];

impl Config {
    /// Reads the process environment, with the optional configuration file beneath it.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut source: BTreeMap<String, String> = BTreeMap::new();
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("COMPANION_") || k == "DATABASE_URL")
            .collect();
        if let Some(file) = env.get("COMPANION_CONFIG_FILE") {
            let text = std::fs::read_to_string(file)
                .map_err(|e| err("COMPANION_CONFIG_FILE", format!("cannot read {file}: {e}")))?;
            source.extend(parse_env_file(&text).map_err(|p| err("COMPANION_CONFIG_FILE", p))?);
        }
        source.extend(env);
        Self::from_source(&source)
    }

    /// Builds and validates a configuration from key/value pairs (the environment's shape).
    pub fn from_source(source: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        if let Some(unknown) = source.keys().find(|k| {
            k.starts_with("COMPANION_")
                && !k.starts_with("COMPANION_TEST_")
                && !KEYS.contains(&k.as_str())
        }) {
            return Err(err(unknown, "unknown setting (misspelt?)"));
        }
        let get = |key: &str| source.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());

        let environment = match get("COMPANION_ENV") {
            None | Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(other) => {
                return Err(err(
                    "COMPANION_ENV",
                    format!("'{other}' is neither 'development' nor 'production'"),
                ));
            }
        };
        let addr = get("COMPANION_ADDR")
            .unwrap_or("127.0.0.1:8080")
            .parse::<SocketAddr>()
            .map_err(|e| err("COMPANION_ADDR", format!("not a socket address ({e})")))?;
        let worker_addr = get("COMPANION_WORKER_ADDR")
            .map(|text| {
                text.parse::<SocketAddr>().map_err(|e| {
                    err(
                        "COMPANION_WORKER_ADDR",
                        format!("not a socket address ({e})"),
                    )
                })
            })
            .transpose()?;
        let data_dir = PathBuf::from(get("COMPANION_DATA_DIR").unwrap_or("./data"));
        let database = match get("DATABASE_URL") {
            Some(url) => DatabaseTarget::parse(url).map_err(|p| err("DATABASE_URL", p))?,
            None => DatabaseTarget::Sqlite(data_dir.join("companion.db")),
        };
        let db_pool_size = number(get, "COMPANION_DB_POOL_SIZE", 16, 1, 1024)? as usize;
        let migrate_on_start = boolean(get, "COMPANION_MIGRATE_ON_START", true)?;
        let keys = match get("COMPANION_JWT_KEYS") {
            Some(text) => KeySource::Configured(parse_keys(text)?),
            None if environment == Environment::Production => {
                return Err(err(
                    "COMPANION_JWT_KEYS",
                    "required when COMPANION_ENV=production (format: kid=base64secret[,kid=base64secret...])",
                ));
            }
            None => KeySource::DevelopmentFile(data_dir.join("jwt-dev.key")),
        };
        let public_url = match get("COMPANION_PUBLIC_URL") {
            Some(text) => {
                let url = PublicUrl::parse(text).map_err(|p| err("COMPANION_PUBLIC_URL", p))?;
                if environment == Environment::Production && !url.is_https() {
                    return Err(err(
                        "COMPANION_PUBLIC_URL",
                        "must be an https URL when COMPANION_ENV=production",
                    ));
                }
                url
            }
            None if environment == Environment::Production => {
                return Err(err(
                    "COMPANION_PUBLIC_URL",
                    "required when COMPANION_ENV=production: the https URL clients reach this \
                     installation at, e.g. https://companion.example.org",
                ));
            }
            // Development: the listen address, as a browser on the same machine reaches it.
            None => {
                let host = if addr.ip().is_unspecified() {
                    "localhost".to_owned()
                } else {
                    match addr {
                        SocketAddr::V4(v4) => v4.ip().to_string(),
                        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
                    }
                };
                PublicUrl(format!("http://{host}:{}", addr.port()))
            }
        };
        let jwt_issuer = get("COMPANION_JWT_ISSUER")
            .unwrap_or("companion")
            .to_owned();
        let jwt_audience = get("COMPANION_JWT_AUDIENCE")
            .unwrap_or("companion-api")
            .to_owned();
        let access_token_ttl = seconds(get, "COMPANION_ACCESS_TOKEN_TTL", 900, 30, 86_400)?;
        let refresh_token_ttl = seconds(
            get,
            "COMPANION_REFRESH_TOKEN_TTL",
            30 * 86_400,
            300,
            365 * 86_400,
        )?;
        let invitation_ttl = seconds(get, "COMPANION_INVITATION_TTL", 7 * 86_400, 60, 90 * 86_400)?;
        let auth_rate_limit_per_minute =
            number(get, "COMPANION_AUTH_RATE_LIMIT", 10, 1, 100_000)? as u32;
        let cors_origins = match get("COMPANION_CORS_ORIGINS") {
            None => Vec::new(),
            Some(text) => {
                let mut origins = Vec::new();
                for origin in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                    let parsed = url::Url::parse(origin).map_err(|e| {
                        err(
                            "COMPANION_CORS_ORIGINS",
                            format!("'{origin}' is not an origin ({e})"),
                        )
                    })?;
                    if !matches!(parsed.scheme(), "http" | "https") || parsed.path() != "/" {
                        return Err(err(
                            "COMPANION_CORS_ORIGINS",
                            format!("'{origin}' must be scheme://host[:port]"),
                        ));
                    }
                    origins.push(origin.trim_end_matches('/').to_owned());
                }
                origins
            }
        };
        let request_timeout = seconds(get, "COMPANION_REQUEST_TIMEOUT", 30, 1, 600)?;
        let max_body_bytes = number(
            get,
            "COMPANION_MAX_BODY_BYTES",
            64 * 1024,
            1024,
            16 * 1024 * 1024,
        )? as usize;
        let log_format = match get("COMPANION_LOG_FORMAT") {
            None => LogFormat::Auto,
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(err(
                    "COMPANION_LOG_FORMAT",
                    format!("'{other}' is neither 'json' nor 'text'"),
                ));
            }
        };
        let log_filter = get("COMPANION_LOG").unwrap_or("info").to_owned();
        tracing_subscriber::EnvFilter::try_new(&log_filter)
            .map_err(|e| err("COMPANION_LOG", format!("not a log filter ({e})")))?;
        let worker_interval = seconds(get, "COMPANION_WORKER_INTERVAL", 60, 1, 86_400)?;
        let jobs = JobConfig {
            lease: seconds(get, "COMPANION_JOB_LEASE", 60, 1, 3600)?,
            poll_interval: Duration::from_millis(number(
                get,
                "COMPANION_JOB_POLL_INTERVAL",
                1000,
                10,
                60_000,
            )?),
            concurrency: number(
                get,
                "COMPANION_WORKER_CONCURRENCY",
                DEFAULT_WORKER_CONCURRENCY as u64,
                1,
                1024,
            )? as usize,
            retry_base: Duration::from_millis(number(
                get,
                "COMPANION_JOB_RETRY_BASE",
                2000,
                1,
                600_000,
            )?),
            retry_cap: Duration::from_secs(600),
        };
        let mut push = push_config(get)?;
        if jobs.lease <= push.timeout {
            // A delivery still waiting on the push service when its lease lapses would be
            // claimed and sent again.
            return Err(err(
                "COMPANION_JOB_LEASE",
                format!(
                    "must be longer than COMPANION_PUSH_TIMEOUT ({} s)",
                    push.timeout.as_secs()
                ),
            ));
        }
        let prompts = PromptConfig {
            interval: seconds(get, "COMPANION_PROMPT_INTERVAL", 15, 1, 3600)?,
            horizon: chrono::TimeDelta::hours(number(
                get,
                "COMPANION_PROMPT_HORIZON_HOURS",
                48,
                24,
                336,
            )? as i64),
            batch: 500,
        };
        let shutdown_timeout = seconds(get, "COMPANION_SHUTDOWN_TIMEOUT", 25, 1, 3600)?;
        let metrics_token = match get("COMPANION_METRICS_TOKEN") {
            None | Some("") => None,
            Some(token) if token.len() < 16 => {
                return Err(err(
                    "COMPANION_METRICS_TOKEN",
                    "must be at least 16 characters",
                ));
            }
            Some(token) => Some(Secret::new(token.to_owned())),
        };
        let connections = connection_config(get, request_timeout)?;
        let safety = SafetyConfig {
            answer_wait: Duration::from_millis(number(
                get,
                "COMPANION_SAFETY_ANSWER_WAIT_MS",
                3000,
                0,
                30_000,
            )?),
            accept_push_not_configured: boolean(
                get,
                "COMPANION_ACCEPT_PUSH_NOT_CONFIGURED",
                false,
            )?,
        };
        if matches!(push.web, VapidKeySource::NotConfigured)
            && environment == Environment::Development
        {
            // Like the JWT development key: generated once, kept, never used in production.
            push.web = VapidKeySource::DevelopmentFile(data_dir.join("vapid-dev.key"));
        }
        if push.vapid_subject.is_empty() {
            push.vapid_subject = if public_url.is_https() {
                public_url.as_str().to_owned()
            } else {
                // Development over plain http: push services want a contact, and an http URL
                // is not one.
                "mailto:webpush@localhost".to_owned()
            };
        }
        if environment == Environment::Production && !safety.accept_push_not_configured {
            for (key, missing) in [
                ("COMPANION_APNS_KEY_FILE", push.apns.is_none()),
                ("COMPANION_FCM_SERVICE_ACCOUNT_FILE", push.fcm.is_none()),
                (
                    "COMPANION_VAPID_PRIVATE_KEY",
                    matches!(push.web, VapidKeySource::NotConfigured),
                ),
            ] {
                if missing {
                    return Err(err(
                        key,
                        "is required in production: without it alert pushes to these devices \
                         are never sent (set COMPANION_ACCEPT_PUSH_NOT_CONFIGURED=true to start \
                         anyway, accepting that alerts reach staff only by webhook or email)",
                    ));
                }
            }
        }
        let email = match get("COMPANION_SMTP_URL") {
            None | Some("") => None,
            Some(url) => {
                let parsed =
                    url::Url::parse(url).map_err(|_| err("COMPANION_SMTP_URL", "is not a URL"))?;
                if !matches!(parsed.scheme(), "smtp" | "smtps") || parsed.host_str().is_none() {
                    return Err(err(
                        "COMPANION_SMTP_URL",
                        "must be smtp://host[:port] or smtps://host[:port]",
                    ));
                }
                let from = get("COMPANION_SMTP_FROM").ok_or_else(|| {
                    err(
                        "COMPANION_SMTP_FROM",
                        "is required when COMPANION_SMTP_URL is set",
                    )
                })?;
                if from.parse::<lettre::message::Mailbox>().is_err() {
                    return Err(err(
                        "COMPANION_SMTP_FROM",
                        "must be an address or `Name <address>`",
                    ));
                }
                Some(EmailConfig {
                    url: Secret::new(url.to_owned()),
                    from: from.to_owned(),
                })
            }
        };
        // Six years by default: how long HIPAA asks for security documentation to be kept.
        let org_audit_retention_days =
            number(get, "COMPANION_ORG_AUDIT_RETENTION_DAYS", 2190, 1, 36_500)? as u32;
        let webhook_allow = match get("COMPANION_WEBHOOK_ALLOW") {
            None => Vec::new(),
            Some(text) => text
                .split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(|entry| {
                    crate::http::outbound::AllowEntry::parse(entry).ok_or_else(|| {
                        err(
                            "COMPANION_WEBHOOK_ALLOW",
                            format!(
                                "'{entry}' is neither a host name, an IP address nor a CIDR network"
                            ),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };

        Ok(Self {
            environment,
            addr,
            worker_addr,
            data_dir,
            database,
            db_pool_size,
            migrate_on_start,
            keys,
            jwt_issuer,
            jwt_audience,
            access_token_ttl,
            refresh_token_ttl,
            invitation_ttl,
            auth_rate_limit_per_minute,
            cors_origins,
            request_timeout,
            max_body_bytes,
            log_format,
            log_filter,
            worker_interval,
            jobs,
            push,
            prompts,
            shutdown_timeout,
            metrics_token,
            connections,
            safety,
            email,
            webhook_allow,
            org_audit_retention_days,
            public_url,
        })
    }
}

fn connection_config<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    request_timeout: Duration,
) -> Result<ConnectionConfig, ConfigError> {
    let header_timeout = seconds(&get, "COMPANION_HEADER_TIMEOUT", 10, 1, 300)?;
    // Unset, it stays below a short COMPANION_REQUEST_TIMEOUT rather than refuse to start.
    let default_body = 10.min(request_timeout.as_secs().saturating_sub(1)).max(1);
    let body_timeout = seconds(&get, "COMPANION_BODY_TIMEOUT", default_body, 1, 600)?;
    if get("COMPANION_BODY_TIMEOUT").is_some() && body_timeout >= request_timeout {
        // The request timeout would always answer first (503), and a slow body would never be
        // told apart from a slow server.
        return Err(err(
            "COMPANION_BODY_TIMEOUT",
            format!(
                "must be shorter than COMPANION_REQUEST_TIMEOUT ({} s)",
                request_timeout.as_secs()
            ),
        ));
    }
    let max_connections = number(&get, "COMPANION_MAX_CONNECTIONS", 10_000, 1, 1_000_000)? as usize;
    let max_connections_per_client = number(
        &get,
        "COMPANION_MAX_CONNECTIONS_PER_CLIENT",
        64,
        1,
        1_000_000,
    )? as usize;
    if max_connections_per_client > max_connections {
        return Err(err(
            "COMPANION_MAX_CONNECTIONS_PER_CLIENT",
            format!("must not exceed COMPANION_MAX_CONNECTIONS ({max_connections})"),
        ));
    }
    Ok(ConnectionConfig {
        header_timeout,
        body_timeout,
        max_connections,
        max_connections_per_client,
    })
}

fn number<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(text) = get(key) else {
        return Ok(default);
    };
    let value: u64 = text
        .parse()
        .map_err(|_| err(key, format!("'{text}' is not a whole number")))?;
    if !(min..=max).contains(&value) {
        return Err(err(key, format!("{value} is outside {min}..={max}")));
    }
    Ok(value)
}

fn seconds<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    number(get, key, default, min, max).map(Duration::from_secs)
}

fn boolean<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    key: &str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(key) {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(other) => Err(err(key, format!("'{other}' is not true or false"))),
    }
}

fn push_config<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<PushConfig, ConfigError> {
    let timeout = seconds(&get, "COMPANION_PUSH_TIMEOUT", 10, 1, 120)?;
    let fcm = match get("COMPANION_FCM_SERVICE_ACCOUNT_FILE") {
        None => None,
        Some(path) => {
            const KEY: &str = "COMPANION_FCM_SERVICE_ACCOUNT_FILE";
            let text = std::fs::read_to_string(path)
                .map_err(|e| err(KEY, format!("cannot read {path}: {e}")))?;
            let mut account: crate::push::fcm::ServiceAccount = serde_json::from_str(&text)
                .map_err(|e| err(KEY, format!("not a service-account key file ({e})")))?;
            if let Some(project) = get("COMPANION_FCM_PROJECT_ID") {
                account.project_id = project.to_owned();
            }
            let token_url = get("COMPANION_FCM_TOKEN_URL")
                .map(str::to_owned)
                .or_else(|| account.token_uri.clone())
                .unwrap_or_else(|| "https://oauth2.googleapis.com/token".to_owned());
            let base_url = get("COMPANION_FCM_BASE_URL")
                .unwrap_or("https://fcm.googleapis.com")
                .to_owned();
            for (key, value) in [
                ("COMPANION_FCM_TOKEN_URL", &token_url),
                ("COMPANION_FCM_BASE_URL", &base_url),
            ] {
                url::Url::parse(value).map_err(|e| err(key, format!("not a URL ({e})")))?;
            }
            Some(crate::push::fcm::FcmConfig {
                account,
                base_url,
                token_url,
                timeout,
            })
        }
    };
    let apns = match get("COMPANION_APNS_KEY_FILE") {
        None => None,
        Some(path) => {
            let key_pem = std::fs::read_to_string(path).map_err(|e| {
                err(
                    "COMPANION_APNS_KEY_FILE",
                    format!("cannot read {path}: {e}"),
                )
            })?;
            let required = |key: &str| {
                get(key)
                    .map(str::to_owned)
                    .ok_or_else(|| err(key, "required when COMPANION_APNS_KEY_FILE is set"))
            };
            let sandbox = match get("COMPANION_APNS_ENVIRONMENT") {
                None | Some("production") => false,
                Some("sandbox") => true,
                Some(other) => {
                    return Err(err(
                        "COMPANION_APNS_ENVIRONMENT",
                        format!("'{other}' is neither 'production' nor 'sandbox'"),
                    ));
                }
            };
            Some(crate::push::apns::ApnsConfig {
                key_pem: Secret::new(key_pem),
                key_id: required("COMPANION_APNS_KEY_ID")?,
                team_id: required("COMPANION_APNS_TEAM_ID")?,
                topic: required("COMPANION_APNS_TOPIC")?,
                sandbox,
                timeout,
            })
        }
    };
    let web = match get("COMPANION_VAPID_PRIVATE_KEY") {
        None => VapidKeySource::NotConfigured,
        Some(text) => {
            crate::push::web_push::VapidKey::parse(text)
                .map_err(|problem| err("COMPANION_VAPID_PRIVATE_KEY", problem))?;
            VapidKeySource::Configured(Secret::new(text.to_owned()))
        }
    };
    let vapid_subject = match get("COMPANION_VAPID_SUBJECT") {
        None => String::new(),
        Some(subject) => {
            let parsed = url::Url::parse(subject).ok();
            let usable = parsed.as_ref().is_some_and(|u| match u.scheme() {
                "mailto" => u.path().contains('@'),
                "https" => u.host_str().is_some(),
                _ => false,
            });
            if !usable {
                return Err(err(
                    "COMPANION_VAPID_SUBJECT",
                    "must be a mailto: address or an https: URL where the operator can be reached",
                ));
            }
            subject.to_owned()
        }
    };
    Ok(PushConfig {
        fcm,
        apns,
        web,
        vapid_subject,
        timeout,
    })
}

fn parse_keys(text: &str) -> Result<Vec<SigningKey>, ConfigError> {
    const KEY: &str = "COMPANION_JWT_KEYS";
    let mut keys: Vec<SigningKey> = Vec::new();
    for (index, entry) in text.split(',').map(str::trim).enumerate() {
        let Some((id, encoded)) = entry.split_once('=') else {
            return Err(err(
                KEY,
                format!("entry {} is not kid=base64secret", index + 1),
            ));
        };
        let id = id.trim();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(err(
                KEY,
                format!("entry {}: key id must be [A-Za-z0-9-_.]+", index + 1),
            ));
        }
        let secret = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim()))
            .map_err(|_| err(KEY, format!("key '{id}' is not base64")))?;
        if secret.len() < 32 {
            return Err(err(KEY, format!("key '{id}' is shorter than 32 bytes")));
        }
        if keys.iter().any(|k| k.id == id) {
            return Err(err(KEY, format!("key id '{id}' appears twice")));
        }
        keys.push(SigningKey {
            id: id.to_owned(),
            secret: Secret::new(secret),
        });
    }
    Ok(keys)
}

/// Parses `KEY=VALUE` lines; blank lines and `#` comments are skipped, values may be quoted.
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {} is not KEY=VALUE", number + 1));
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        out.insert(key.trim().to_owned(), value.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn unset_log_format_is_text_on_a_development_terminal_and_json_everywhere_else() {
        let unset = Config::from_source(&BTreeMap::new()).unwrap().log_format;
        assert_eq!(unset, LogFormat::Auto);
        assert_eq!(
            unset.resolve(Environment::Development, true),
            LogFormat::Text
        );
        assert_eq!(
            unset.resolve(Environment::Development, false),
            LogFormat::Json
        );
        assert_eq!(
            unset.resolve(Environment::Production, true),
            LogFormat::Json
        );
        let asked = Config::from_source(&source(&[("COMPANION_LOG_FORMAT", "json")]))
            .unwrap()
            .log_format;
        assert_eq!(
            asked.resolve(Environment::Development, true),
            LogFormat::Json
        );
        let text = Config::from_source(&source(&[("COMPANION_LOG_FORMAT", "text")]))
            .unwrap()
            .log_format;
        assert_eq!(
            text.resolve(Environment::Production, false),
            LogFormat::Text
        );
    }

    #[test]
    fn no_settings_mean_sqlite_in_the_data_folder_and_a_development_key() {
        let config = Config::from_source(&BTreeMap::new()).unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.database,
            DatabaseTarget::Sqlite(PathBuf::from("./data/companion.db"))
        );
        assert!(matches!(config.keys, KeySource::DevelopmentFile(_)));
    }

    #[test]
    fn production_without_signing_keys_is_refused_naming_the_key() {
        let error = Config::from_source(&source(&[("COMPANION_ENV", "production")])).unwrap_err();
        assert_eq!(error.key, "COMPANION_JWT_KEYS");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        for (key, value) in [
            ("COMPANION_ADDR", "nowhere"),
            ("COMPANION_WORKER_ADDR", "nowhere"),
            ("COMPANION_METRICS_TOKEN", "short"),
            ("COMPANION_SHUTDOWN_TIMEOUT", "0"),
            ("COMPANION_PROMPT_HORIZON_HOURS", "6"),
            ("COMPANION_DB_POOL_SIZE", "0"),
            ("COMPANION_ACCESS_TOKEN_TTL", "ten"),
            ("COMPANION_JWT_KEYS", "k1=c2hvcnQ="),
            ("COMPANION_CORS_ORIGINS", "ftp://x"),
            ("COMPANION_LOG_FORMAT", "xml"),
            ("DATABASE_URL", "mysql://localhost/db"),
            ("COMPANION_TYPO", "1"),
            ("COMPANION_HEADER_TIMEOUT", "0"),
            ("COMPANION_BODY_TIMEOUT", "30"),
            ("COMPANION_MAX_CONNECTIONS", "none"),
            ("COMPANION_MAX_CONNECTIONS_PER_CLIENT", "20000"),
            ("COMPANION_WEBHOOK_ALLOW", "ok.example, not a host"),
        ] {
            let error = Config::from_source(&source(&[(key, value)])).unwrap_err();
            assert_eq!(error.key, key, "{value}");
        }
    }

    #[test]
    fn connection_limits_default_sensibly_and_follow_a_short_request_timeout() {
        let config = Config::from_source(&BTreeMap::new()).unwrap();
        assert_eq!(config.connections.header_timeout, Duration::from_secs(10));
        assert_eq!(config.connections.body_timeout, Duration::from_secs(10));
        assert_eq!(config.connections.max_connections, 10_000);
        assert_eq!(config.connections.max_connections_per_client, 64);
        let short = Config::from_source(&source(&[("COMPANION_REQUEST_TIMEOUT", "4")])).unwrap();
        assert_eq!(short.connections.body_timeout, Duration::from_secs(3));
        let error = Config::from_source(&source(&[
            ("COMPANION_REQUEST_TIMEOUT", "4"),
            ("COMPANION_BODY_TIMEOUT", "4"),
        ]))
        .unwrap_err();
        assert_eq!(error.key, "COMPANION_BODY_TIMEOUT");
        assert!(
            error.problem.contains("COMPANION_REQUEST_TIMEOUT"),
            "{error}"
        );
        let error = Config::from_source(&source(&[
            ("COMPANION_MAX_CONNECTIONS", "10"),
            ("COMPANION_MAX_CONNECTIONS_PER_CLIENT", "11"),
        ]))
        .unwrap_err();
        assert!(
            error.problem.contains("COMPANION_MAX_CONNECTIONS"),
            "{error}"
        );
    }

    #[test]
    fn production_needs_an_https_public_url_and_development_defaults_to_the_listen_address() {
        let keys = (
            "COMPANION_JWT_KEYS",
            "k1=MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
        );
        let push = ("COMPANION_ACCEPT_PUSH_NOT_CONFIGURED", "true");
        let error = Config::from_source(&source(&[("COMPANION_ENV", "production"), keys, push]))
            .unwrap_err();
        assert_eq!(error.key, "COMPANION_PUBLIC_URL");
        let error = Config::from_source(&source(&[
            ("COMPANION_ENV", "production"),
            keys,
            push,
            ("COMPANION_PUBLIC_URL", "http://companion.example.org"),
        ]))
        .unwrap_err();
        assert_eq!(error.key, "COMPANION_PUBLIC_URL");
        let config = Config::from_source(&source(&[
            ("COMPANION_ENV", "production"),
            keys,
            push,
            ("COMPANION_PUBLIC_URL", "https://companion.example.org/"),
        ]))
        .unwrap();
        assert_eq!(config.public_url.as_str(), "https://companion.example.org");
        let local = Config::from_source(&BTreeMap::new()).unwrap();
        assert_eq!(local.public_url.as_str(), "http://127.0.0.1:8080");
        for bad in [
            "companion.example.org",
            "ftp://x.example",
            "https://x.example/?a=1",
        ] {
            let error = Config::from_source(&source(&[("COMPANION_PUBLIC_URL", bad)])).unwrap_err();
            assert_eq!(error.key, "COMPANION_PUBLIC_URL", "{bad}");
        }
    }

    #[test]
    fn a_job_lease_no_longer_than_the_push_timeout_is_refused() {
        let error = Config::from_source(&source(&[
            ("COMPANION_JOB_LEASE", "10"),
            ("COMPANION_PUSH_TIMEOUT", "10"),
        ]))
        .unwrap_err();
        assert_eq!(error.key, "COMPANION_JOB_LEASE");
        assert!(
            Config::from_source(&source(&[
                ("COMPANION_JOB_LEASE", "5"),
                ("COMPANION_PUSH_TIMEOUT", "2"),
            ]))
            .is_ok()
        );
    }

    #[test]
    fn database_url_scheme_picks_the_backend() {
        assert!(matches!(
            DatabaseTarget::parse("postgres://u:pw@db:5433/companion").unwrap(),
            DatabaseTarget::Postgres(_)
        ));
        assert_eq!(
            DatabaseTarget::parse("sqlite:///var/lib/c.db").unwrap(),
            DatabaseTarget::Sqlite(PathBuf::from("/var/lib/c.db"))
        );
        assert!(DatabaseTarget::parse("sqlite://:memory:").is_err());
    }

    #[test]
    fn web_push_has_a_development_key_and_production_needs_a_configured_one() {
        let local = Config::from_source(&source(&[("COMPANION_DATA_DIR", "/srv/c")])).unwrap();
        assert!(matches!(
            &local.push.web,
            VapidKeySource::DevelopmentFile(path) if path.ends_with("vapid-dev.key")
        ));
        assert_eq!(local.push.vapid_subject, "mailto:webpush@localhost");
        let keys = (
            "COMPANION_JWT_KEYS",
            "k1=MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
        );
        let url = ("COMPANION_PUBLIC_URL", "https://companion.example.org");
        let apns_and_fcm_missing_accepted = ("COMPANION_ACCEPT_PUSH_NOT_CONFIGURED", "true");
        let production = Config::from_source(&source(&[
            ("COMPANION_ENV", "production"),
            keys,
            url,
            apns_and_fcm_missing_accepted,
        ]))
        .unwrap();
        assert!(
            matches!(production.push.web, VapidKeySource::NotConfigured),
            "no development key in production"
        );
        assert_eq!(
            production.push.vapid_subject,
            "https://companion.example.org"
        );
        // APNs and FCM configured, no VAPID key: production refuses to start, naming it.
        let dir = tempfile::tempdir().unwrap();
        let (apns, fcm) = (dir.path().join("apns.p8"), dir.path().join("fcm.json"));
        std::fs::write(&apns, "-----BEGIN PRIVATE KEY-----").unwrap();
        std::fs::write(
            &fcm,
            r#"{"project_id": "p", "client_email": "c@p.example", "private_key": "k"}"#,
        )
        .unwrap();
        let (apns, fcm) = (apns.display().to_string(), fcm.display().to_string());
        let native = [
            ("COMPANION_ENV", "production"),
            keys,
            url,
            ("COMPANION_APNS_KEY_FILE", apns.as_str()),
            ("COMPANION_APNS_KEY_ID", "k"),
            ("COMPANION_APNS_TEAM_ID", "t"),
            ("COMPANION_APNS_TOPIC", "org.example.app"),
            ("COMPANION_FCM_SERVICE_ACCOUNT_FILE", fcm.as_str()),
        ];
        let error = Config::from_source(&source(&native)).unwrap_err();
        assert_eq!(error.key, "COMPANION_VAPID_PRIVATE_KEY", "{error}");
        assert!(
            error
                .problem
                .contains("COMPANION_ACCEPT_PUSH_NOT_CONFIGURED")
        );
        let key = crate::push::web_push::VapidKey::generate().private_base64url();
        let mut complete = native.to_vec();
        complete.push(("COMPANION_VAPID_PRIVATE_KEY", &key));
        assert!(Config::from_source(&source(&complete)).is_ok());
        let configured = Config::from_source(&source(&[
            ("COMPANION_VAPID_PRIVATE_KEY", &key),
            ("COMPANION_VAPID_SUBJECT", "mailto:ops@example.org"),
        ]))
        .unwrap();
        assert!(matches!(configured.push.web, VapidKeySource::Configured(_)));
        assert!(
            !format!("{configured:?}").contains(&key),
            "the key never prints"
        );
        for (setting, value) in [
            ("COMPANION_VAPID_PRIVATE_KEY", "not a key"),
            ("COMPANION_VAPID_PRIVATE_KEY", "AAAA"),
            ("COMPANION_VAPID_SUBJECT", "http://example.org"),
            ("COMPANION_VAPID_SUBJECT", "mailto:nobody"),
        ] {
            let error = Config::from_source(&source(&[(setting, value)])).unwrap_err();
            assert_eq!(error.key, setting, "{value}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let target = DatabaseTarget::parse("postgres://u:hunter2@db:5433/companion").unwrap();
        assert!(!format!("{target:?}").contains("hunter2"));
        assert!(!target.describe().contains("hunter2"));
        let config = Config::from_source(&source(&[(
            "COMPANION_JWT_KEYS",
            "k1=MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
        )]))
        .unwrap();
        assert!(!format!("{config:?}").contains("MDEy"));
        assert!(!format!("{config:?}").contains("48, 49"));
    }

    #[test]
    fn env_file_lines_are_parsed() {
        let parsed = parse_env_file("# c\nexport A=1\nB = \"two words\"\n\n").unwrap();
        assert_eq!(parsed["A"], "1");
        assert_eq!(parsed["B"], "two words");
        assert!(parse_env_file("oops").is_err());
    }
}
