//! The PostgreSQL wake-up: a dedicated connection that `LISTEN`s on `companion_jobs` and wakes
//! the worker when another process enqueues a job (`enqueue` sends `pg_notify` in the enqueuing
//! transaction, delivered on commit).
//!
//! diesel's `PgConnection` can only be asked for notifications, not waited on (waiting on its
//! socket would take unsafe code, which the workspace forbids), so this one connection is a
//! `tokio-postgres` one: its task sleeps on the socket and runs only when the server sends
//! something. It reads the same `DATABASE_URL` as the pool, TLS included: `sslmode` keeps
//! libpq's meaning (`disable`, `allow`/`prefer` and `require` without certificate checks,
//! `verify-ca`, `verify-full`), with `sslrootcert`, `sslcert` and `sslkey`, through the same
//! OpenSSL libpq is built with. A lost connection is re-opened with backoff (100 ms doubling to
//! 10 s); the worker's poll stays as the fallback throughout.

use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use postgres_openssl::MakeTlsConnector;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

/// The channel `enqueue` notifies.
pub const CHANNEL: &str = "companion_jobs";

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LONGEST_RETRY: Duration = Duration::from_secs(10);

/// How the listener connects: the client configuration and the TLS connector.
pub struct ListenerTarget {
    config: tokio_postgres::Config,
    tls: MakeTlsConnector,
}

impl std::fmt::Debug for ListenerTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTarget")
            .field("ssl_mode", &self.config.get_ssl_mode())
            .finish_non_exhaustive()
    }
}

/// Parameters of a libpq URL that the listener does not need and `tokio-postgres` would refuse
/// (it rejects every parameter it does not know).
const IGNORED: &[&str] = &[
    "sslcompression",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "sslpassword",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "requirepeer",
    "gssencmode",
    "gsslib",
    "gssdelegation",
    "krbsrvname",
    "fallback_application_name",
    "service",
    "passfile",
    "require_auth",
    "replication",
];

/// Reads `url` (a `postgres://` or `postgresql://` URL, as the pool takes) into a listener
/// target; the error names the problem, never the URL (it may hold a password).
pub fn target(url: &str) -> Result<ListenerTarget, String> {
    let mut parsed = url::Url::parse(url).map_err(|e| format!("DATABASE_URL is not a URL: {e}"))?;
    let mut ssl_mode = "prefer".to_owned();
    let (mut root_cert, mut client_cert, mut client_key) = (None, None, None);
    let mut kept: Vec<(String, String)> = Vec::new();
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "sslmode" => ssl_mode = value.into_owned(),
            "sslrootcert" => root_cert = Some(value.into_owned()),
            "sslcert" => client_cert = Some(value.into_owned()),
            "sslkey" => client_key = Some(value.into_owned()),
            other if IGNORED.contains(&other) => {}
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    let (mode, verify_peer, verify_host) = match ssl_mode.as_str() {
        "disable" => (tokio_postgres::config::SslMode::Disable, false, false),
        "allow" | "prefer" => (tokio_postgres::config::SslMode::Prefer, false, false),
        // libpq: `require` with a root certificate checks the chain, as `verify-ca` does.
        "require" => (
            tokio_postgres::config::SslMode::Require,
            root_cert.is_some(),
            false,
        ),
        "verify-ca" => (tokio_postgres::config::SslMode::Require, true, false),
        "verify-full" => (tokio_postgres::config::SslMode::Require, true, true),
        other => return Err(format!("unknown sslmode {other:?} in DATABASE_URL")),
    };
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(&kept);
    }
    let mut config: tokio_postgres::Config = parsed
        .as_str()
        .parse()
        .map_err(|e| format!("DATABASE_URL cannot be read for LISTEN: {e}"))?;
    config.ssl_mode(mode);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config.application_name("companion-job-listener");

    let tls_error = |e: openssl::error::ErrorStack| format!("TLS setup for LISTEN: {e}");
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(tls_error)?;
    if verify_peer {
        if let Some(path) = &root_cert {
            builder
                .set_ca_file(path)
                .map_err(|e| format!("sslrootcert cannot be read: {}", tls_error(e)))?;
        }
    } else {
        builder.set_verify(SslVerifyMode::NONE);
    }
    if let Some(path) = &client_cert {
        builder
            .set_certificate_chain_file(path)
            .map_err(|e| format!("sslcert cannot be read: {}", tls_error(e)))?;
    }
    if let Some(path) = &client_key {
        builder
            .set_private_key_file(path, SslFiletype::PEM)
            .map_err(|e| format!("sslkey cannot be read: {}", tls_error(e)))?;
    }
    let mut tls = MakeTlsConnector::new(builder.build());
    if !verify_host {
        tls.set_callback(|connect, _| {
            connect.set_verify_hostname(false);
            Ok(())
        });
    }
    Ok(ListenerTarget { config, tls })
}

/// Listens until `shutdown`, waking `wake` on every notification.
pub async fn run(
    target: ListenerTarget,
    wake: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let mut retry = FIRST_RETRY;
    while !shutdown.is_cancelled() {
        let reason = tokio::select! {
            () = shutdown.cancelled() => return,
            reason = listen_once(&target, &wake, &mut retry) => reason,
        };
        tracing::warn!(%reason, retry_in_ms = retry.as_millis() as u64, "job listener lost its connection; polling meanwhile");
        // Whatever was enqueued while the connection was down is found by one claim now.
        wake.notify_one();
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(LONGEST_RETRY);
    }
}

/// One connection's life: connect, LISTEN, then wait on the socket for notifications until the
/// connection ends. Returns why it ended.
async fn listen_once(
    target: &ListenerTarget,
    wake: &tokio::sync::Notify,
    retry: &mut Duration,
) -> String {
    let (client, mut connection) = match target.config.connect(target.tls.clone()).await {
        Ok(pair) => pair,
        Err(e) => return format!("connect: {e}"),
    };
    // The LISTEN is answered through the same connection, which must be driven meanwhile.
    let statement = format!("LISTEN {CHANNEL}");
    let listen = client.batch_execute(&statement);
    tokio::pin!(listen);
    loop {
        tokio::select! {
            done = &mut listen => match done {
                Ok(()) => break,
                Err(e) => return format!("LISTEN: {e}"),
            },
            message = std::future::poll_fn(|cx| connection.poll_message(cx)) => match message {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return format!("connection: {e}"),
                None => return "connection closed".into(),
            },
        }
    }
    *retry = FIRST_RETRY;
    tracing::debug!("job listener listening");
    // Something may have been enqueued before the LISTEN took effect.
    wake.notify_one();
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
            Some(Ok(_)) => {}
            Some(Err(e)) => return format!("connection: {e}"),
            None => return "connection closed".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::config::SslMode;

    #[test]
    fn the_pool_url_is_read_with_its_libpq_tls_settings() {
        let plain = target("postgres://u:p@db:5433/companion?connect_timeout=7").unwrap();
        assert_eq!(plain.config.get_ssl_mode(), SslMode::Prefer);
        assert_eq!(plain.config.get_dbname(), Some("companion"));
        assert_eq!(plain.config.get_ports(), &[5433]);
        assert_eq!(
            plain.config.get_connect_timeout(),
            Some(&Duration::from_secs(7))
        );
        for (mode, expected) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Prefer),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::Require),
            ("verify-full", SslMode::Require),
        ] {
            let t = target(&format!(
                "postgresql://db/companion?sslmode={mode}&sslcompression=0&application_name=x"
            ))
            .unwrap();
            assert_eq!(t.config.get_ssl_mode(), expected, "{mode}");
        }
        let error = target("postgres://u:secret@db/companion?sslmode=sometimes").unwrap_err();
        assert!(error.contains("sslmode"), "{error}");
        assert!(!error.contains("secret"), "{error}");
        let error = target("postgres://u:secret@db/c?sslmode=verify-full&sslrootcert=/nonexistent")
            .unwrap_err();
        assert!(error.contains("sslrootcert"), "{error}");
        assert!(!error.contains("secret"), "{error}");
    }
}
