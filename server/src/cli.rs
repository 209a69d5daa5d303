//! The `companion` command line: `serve`, `work`, `migrate`, `openapi` and `admin`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app::{App, AppState};
use crate::clock::SystemClock;
use crate::config::{Config, LogFormat};

/// Companion: the backend that keeps patients connected to their ketamine or esketamine clinic
/// between treatment sessions.
#[derive(Debug, Parser)]
#[command(name = "companion", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (and, unless --no-workers, run the background workers in-process).
    Serve {
        /// Serve the API only; run `companion work` elsewhere.
        #[arg(long)]
        no_workers: bool,
    },
    /// Run the background workers only.
    Work,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Create a demo clinic (staff, a dozen patients, sessions, three weeks of check-ins, open
    /// alerts) and print how to sign in to the console. Refused when COMPANION_ENV=production.
    Demo,
    /// Administrative tasks.
    Admin {
        /// The task.
        #[command(subcommand)]
        task: AdminTask,
    },
}

/// Administrative tasks.
#[derive(Debug, Subcommand)]
pub enum AdminTask {
    /// Create an organisation admin (a fresh installation's first account). The password is read
    /// from COMPANION_ADMIN_PASSWORD or, if unset, from the first line of standard input.
    CreateOrgAdmin {
        /// The admin's email address.
        #[arg(long)]
        email: String,
    },
    /// Show the job queue: jobs by status, and the most recent dead jobs with their last error.
    Jobs,
}

/// Runs the command line; the process exit code follows from the result.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Openapi = cli.command {
        print!("{}", crate::openapi::document_json());
        return Ok(());
    }
    let config = Config::from_env()?;
    init_logging(&config);
    if let Command::Demo = cli.command {
        let app = Arc::new(App::new(config.clone(), Arc::new(SystemClock))?);
        connect(&app).await?;
        migrate(&app).await?;
        return crate::console::demo::run(config).await;
    }
    let app = Arc::new(App::new(config, Arc::new(SystemClock))?);
    connect(&app).await?;
    match cli.command {
        Command::Serve { no_workers } => {
            if app.config.migrate_on_start {
                migrate(&app).await?;
            }
            serve(app, !no_workers).await
        }
        Command::Work => {
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            let bound = app.config.shutdown_timeout;
            if let Some(addr) = app.config.worker_addr {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (COMPANION_WORKER_ADDR)"))?;
                // As `companion serve` does (`http/serve.rs`): each write goes out at once.
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                let router = crate::router::operations_router(AppState(app.clone()));
                let stop = shutdown.clone();
                tracing::info!(%addr, "serving health and metrics");
                tokio::spawn(async move {
                    let served = axum::serve(listener, router)
                        .with_graceful_shutdown(async move { stop.cancelled().await })
                        .await;
                    if let Err(error) = served {
                        tracing::warn!(%error, "the health and metrics listener failed");
                    }
                });
            }
            let worker = tokio::spawn(crate::worker::run(app, shutdown.clone()));
            shutdown.cancelled().await;
            finish_within(bound, async {
                worker.await.ok();
            })
            .await;
            Ok(())
        }
        Command::Migrate => migrate(&app).await,
        Command::Admin {
            task: AdminTask::CreateOrgAdmin { email },
        } => {
            migrate(&app).await?;
            let password = admin_password()?;
            let id =
                crate::account::use_cases::create_org_admin(&app.db, &email, &password, app.now())
                    .await?;
            eprintln!("created organisation admin {id}");
            Ok(())
        }
        Command::Admin {
            task: AdminTask::Jobs,
        } => {
            migrate(&app).await?;
            print_jobs(&app).await
        }
        Command::Openapi | Command::Demo => Ok(()),
    }
}

async fn print_jobs(app: &App) -> anyhow::Result<()> {
    use crate::jobs::store;
    for status in ["queued", "running", "done", "dead"] {
        let count = app
            .db
            .run(move |conn| store::count_by_status(conn, status))
            .await?;
        println!("{status:<8} {count}");
    }
    let dead = app.db.run(|conn| store::dead_jobs(conn, 20)).await?;
    if !dead.is_empty() {
        println!("\nmost recent dead jobs:");
    }
    for job in dead {
        println!(
            "{}  {}  {} attempts  {}  {}",
            job.id,
            job.kind,
            job.attempts,
            job.finished_at
                .map(|t| t.and_utc().to_rfc3339())
                .unwrap_or_default(),
            job.last_error.unwrap_or_default()
        );
    }
    Ok(())
}

/// Opens one connection first, directly, so a wrong URL or a server that is down is reported
/// with its real cause in one line.
async fn connect(app: &App) -> anyhow::Result<()> {
    let target = app.config.database.clone();
    tokio::task::spawn_blocking(move || crate::db::establish(&target).map(drop))
        .await?
        .map_err(anyhow::Error::msg)?;
    tracing::info!(database = %app.config.database.describe(), "database reachable");
    Ok(())
}

async fn migrate(app: &App) -> anyhow::Result<()> {
    let applied = app.db.migrate().await.context("migrations failed")?;
    for name in &applied {
        tracing::info!(migration = %name, "migration applied");
    }
    Ok(())
}

async fn serve(app: Arc<App>, with_workers: bool) -> anyhow::Result<()> {
    let addr = app.config.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (COMPANION_ADDR)"))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let worker =
        with_workers.then(|| tokio::spawn(crate::worker::run(app.clone(), shutdown.clone())));
    tracing::info!(%addr, workers = with_workers, "serving");
    let router = crate::router::router(AppState(app.clone()));
    // On the signal the server stops accepting and lets in-flight requests finish, and the
    // workers let running jobs finish and hand back the jobs they claimed but did not start.
    let connections = app.config.connections.clone();
    let stop = shutdown.clone();
    let mut server = tokio::spawn(async move {
        crate::http::serve::serve(listener, router, &connections, stop).await;
    });
    let finished_early = tokio::select! {
        result = &mut server => Some(result),
        () = shutdown.cancelled() => None,
    };
    if let Some(result) = finished_early {
        shutdown.cancel();
        result.context("server task failed")?;
    }
    finish_within(app.config.shutdown_timeout, async {
        if !server.is_finished() {
            server.await.ok();
        }
        if let Some(worker) = worker {
            worker.await.ok();
        }
    })
    .await;
    Ok(())
}

/// Waits for `work` (the drain after a shutdown signal) for at most `bound`
/// (`COMPANION_SHUTDOWN_TIMEOUT`), then returns either way so that the process exits: requests
/// still running are cut off, and jobs still running are left to their leases, after which
/// another worker takes them over.
async fn finish_within(bound: std::time::Duration, work: impl std::future::Future<Output = ()>) {
    match tokio::time::timeout(bound, work).await {
        Ok(()) => tracing::info!("stopped"),
        Err(_) => tracing::warn!(
            seconds = bound.as_secs(),
            "shutdown took longer than COMPANION_SHUTDOWN_TIMEOUT; exiting with work in flight"
        ),
    }
}

async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    ctrl_c.await.ok();
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.ok();
    tracing::info!("shutdown requested");
    token.cancel();
}

fn admin_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("COMPANION_ADMIN_PASSWORD") {
        return Ok(password);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password for the new organisation admin: ");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(
        !password.is_empty(),
        "no password given: set COMPANION_ADMIN_PASSWORD or pipe it on standard input"
    );
    Ok(password)
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = match config.log_format.resolve(config.environment, terminal) {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text | LogFormat::Auto => builder.try_init(),
    };
    if result.is_err() {
        eprintln!("logging was already initialised");
    }
}

/// Threads for blocking work beside a database pool of `pool` connections: one per connection
/// (every query runs on one), as many again for what waits beside them (password hashing, file
/// writes, a connection being opened) and a few spare. Tokio's default allows 512, and each of
/// them keeps its own allocator arena once it has run a query: bounded, the server's memory
/// stays near what its pool needs.
pub fn blocking_threads(pool: usize) -> usize {
    pool * 2 + 8
}

/// The process's runtime: tokio's multi-threaded one, its blocking threads bounded by
/// [`blocking_threads`] for the configured pool (`COMPANION_DB_POOL_SIZE`, read again and
/// checked with the rest of the configuration).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let pool = std::env::var("COMPANION_DB_POOL_SIZE")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| (1..=1024).contains(n))
        .unwrap_or(16);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads(pool))
        .build()
}
