//! How `companion serve` accepts connections. `axum::serve` offers no header read timeout and
//! no connection limits, so connections are served here with hyper's own builder:
//!
//! - a client must send a request's headers within `COMPANION_HEADER_TIMEOUT`, or its
//!   connection is closed (a client trickling its headers, or sending none, holds nothing for
//!   long); the same bound applies to a kept-alive connection's wait for its next request;
//! - at most `COMPANION_MAX_CONNECTIONS` connections are open at once, and at most
//!   `COMPANION_MAX_CONNECTIONS_PER_CLIENT` from one address; one more is closed as soon as it
//!   is accepted, and refusals are logged as a summary, not one line each;
//! - after a response, a connection the server closes (a refused body, `Connection: close`)
//!   is closed gracefully: the server stops writing, then reads and discards what the client is
//!   still sending for a short while before closing. Closing a socket with unread data makes
//!   the kernel send a reset, which can destroy the answer (a 413) before the client reads it;
//! - on shutdown the listener closes and open connections finish their requests.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::config::ConnectionConfig;
use crate::log_summary::{LogSummary, Report};

/// How long a closing connection may keep reading and discarding what its client still sends.
const LINGER: Duration = Duration::from_secs(5);

/// How often continuing connection refusals are reported.
const REFUSAL_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting and returns
/// once the open connections have finished (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ConnectionConfig,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Slots::new(
        config.max_connections,
        config.max_connections_per_client,
    ));
    let refusals = LogSummary::new(REFUSAL_REPORT_INTERVAL);
    let accept_failures = LogSummary::new(REFUSAL_REPORT_INTERVAL);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    // Every connection task holds a receiver; the server is drained when none is left.
    let (drained, connection_alive) = tokio::sync::watch::channel(());
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    if let Some(ended) = accept_failures.ended(Instant::now()) {
                        tracing::info!(failures = ended.total, "accepting connections again");
                    }
                    accepted
                }
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // pause briefly rather than spin on the error, and summarise the repeats.
                    match accept_failures.occurred(Instant::now()) {
                        Some(Report::First) => {
                            tracing::warn!(%error, "accepting a connection failed");
                        }
                        Some(Report::Ongoing { occurrences, .. }) => tracing::warn!(
                            %error,
                            failures = occurrences,
                            "accepting connections still failing"
                        ),
                        None => {}
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Some(slot) = slots.take(remote.ip()) else {
            report_refusal(&refusals, &slots, Instant::now());
            drop(stream);
            continue;
        };
        let requests = Arc::new(Requests::default());
        let io = TokioIo::new(Lingering::new(
            stream,
            slot,
            config.header_timeout,
            requests.clone(),
        ));
        let router = router.clone();
        let service =
            TowerToHyperService::new(tower::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                let busy = InFlight::start(&requests);
                let router = router.clone();
                async move {
                    // The request counts as being handled until its body has been sent (a
                    // streamed answer may be silent for a while).
                    let response = router.oneshot(req).await?;
                    Ok::<_, std::convert::Infallible>(
                        response.map(|body| axum::body::Body::new(Answering { body, _busy: busy })),
                    )
                }
            }));
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let alive = connection_alive.clone();
        tokio::spawn(async move {
            let connection = builder.serve_connection_with_upgrades(io, service);
            tokio::pin!(connection);
            let mut stopping = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(error) = result {
                            tracing::debug!(error = %error, "connection ended with an error");
                        }
                        break;
                    }
                    () = shutdown.cancelled(), if !stopping => {
                        stopping = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(alive);
        });
    }
    drop(listener);
    drop(connection_alive);
    drained.closed().await;
}

fn report_refusal(refusals: &LogSummary, slots: &Slots, now: Instant) {
    let (open, limit, per_client) = slots.describe();
    match refusals.occurred(now) {
        Some(Report::First) => tracing::warn!(
            open_connections = open,
            max_connections = limit,
            max_connections_per_client = per_client,
            "connection refused: too many open connections (overall or from one client); summarised every {} s",
            REFUSAL_REPORT_INTERVAL.as_secs()
        ),
        Some(Report::Ongoing {
            occurrences,
            total,
            lasted,
        }) => tracing::warn!(
            refused = occurrences,
            refused_in_episode = total,
            episode_seconds = lasted.as_secs(),
            open_connections = open,
            "connections still being refused"
        ),
        None => {}
    }
}

/// Open connections, overall and by client address.
#[derive(Debug)]
struct Slots {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<OpenConnections>,
}

#[derive(Debug, Default)]
struct OpenConnections {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

impl Slots {
    fn new(max_total: usize, max_per_client: usize) -> Self {
        Self {
            max_total,
            max_per_client,
            open: Mutex::new(OpenConnections::default()),
        }
    }

    /// A slot for one more connection from `client`, unless a limit is reached.
    fn take(self: &Arc<Self>, client: IpAddr) -> Option<Slot> {
        let client = client.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max_total {
            return None;
        }
        let from_client = open.by_client.entry(client).or_insert(0);
        if *from_client >= self.max_per_client {
            return None;
        }
        *from_client += 1;
        open.total += 1;
        Some(Slot {
            slots: self.clone(),
            client,
        })
    }

    fn describe(&self) -> (usize, usize, usize) {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        (open.total, self.max_total, self.max_per_client)
    }
}

/// One open connection's place, given back when dropped.
#[derive(Debug)]
struct Slot {
    slots: Arc<Slots>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_client.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

/// A connection's requests: how many are being handled, and how many have begun.
#[derive(Debug, Default)]
struct Requests {
    in_flight: AtomicUsize,
    begun: AtomicU64,
}

/// One request being handled, for as long as it lives.
struct InFlight(Arc<Requests>);

impl InFlight {
    fn start(requests: &Arc<Requests>) -> Self {
        requests.begun.fetch_add(1, Ordering::Relaxed);
        requests.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(requests.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that holds its request's [`InFlight`] until it is sent or dropped.
struct Answering {
    body: axum::body::Body,
    _busy: InFlight,
}

impl http_body::Body for Answering {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A client's socket as hyper sees it.
///
/// Hyper's header read timeout starts at a request's first byte, so a connection that sends
/// nothing (at first, or after an answer) would be held for ever: here, while no request is
/// being handled, a read that waits longer than the header timeout since the last byte read
/// or written fails, and hyper closes the connection.
///
/// Writes go out at once (`TCP_NODELAY`). Otherwise the kernel holds a small write back while an
/// earlier one waits for its acknowledgement, which a client may delay by up to 40 ms: an
/// HTTP/2 answer (its headers and data are separate frames) or the tail of a large answer would
/// then wait for nothing.
///
/// When hyper drops it, a connection that was answered is closed gracefully (see the module
/// documentation) on a task of its own; one that never was is closed at once. Its slot is
/// given back only once it is closed.
struct Lingering {
    stream: Option<TcpStream>,
    slot: Option<Slot>,
    answered: bool,
    idle_timeout: Duration,
    last_activity: tokio::time::Instant,
    idle: Pin<Box<tokio::time::Sleep>>,
    requests: Arc<Requests>,
    /// Requests begun as of the last wait; a change means the idle clock starts again.
    requests_seen: u64,
}

impl Lingering {
    fn new(stream: TcpStream, slot: Slot, idle_timeout: Duration, requests: Arc<Requests>) -> Self {
        if let Err(error) = stream.set_nodelay(true) {
            // The connection still works, only slower to answer: not worth refusing it.
            tracing::debug!(%error, "could not turn off delayed sending on a connection");
        }
        let now = tokio::time::Instant::now();
        Self {
            stream: Some(stream),
            slot: Some(slot),
            answered: false,
            idle_timeout,
            last_activity: now,
            idle: Box::pin(tokio::time::sleep_until(now + idle_timeout)),
            requests,
            requests_seen: 0,
        }
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let (Some(stream), Some(slot)) = (self.stream.take(), self.slot.take()) else {
            return;
        };
        if !self.answered {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream, slot));
        }
    }
}

/// Stops writing, then reads and discards until the client closes its side, for at most
/// [`LINGER`], so the client reads our answer before the socket closes.
async fn linger(mut stream: TcpStream, slot: Slot) {
    use tokio::io::AsyncWriteExt as _;
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 8192];
    let _ = tokio::time::timeout(LINGER, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    drop(stream);
    drop(slot);
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(self.stream()?).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.last_activity = tokio::time::Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let this = &mut *self;
                if this.requests.in_flight.load(Ordering::Relaxed) > 0 {
                    return Poll::Pending;
                }
                // A request handled since the last wait (however long it took) starts the
                // idle clock again.
                let begun = this.requests.begun.load(Ordering::Relaxed);
                if begun != this.requests_seen {
                    this.requests_seen = begun;
                    this.last_activity = tokio::time::Instant::now();
                }
                let deadline = this.last_activity + this.idle_timeout;
                if this.idle.deadline() != deadline {
                    this.idle.as_mut().reset(deadline);
                }
                match this.idle.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request within the header timeout",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.answered = true;
        self.last_activity = tokio::time::Instant::now();
        Pin::new(self.stream()?).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.answered = true;
        self.last_activity = tokio::time::Instant::now();
        Pin::new(self.stream()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.stream()?).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.stream()?).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_each_client_and_the_total_and_come_back_when_dropped() {
        let slots = Arc::new(Slots::new(3, 2));
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let first = slots.take(a);
        let second = slots.take(a);
        assert!(first.is_some() && second.is_some());
        assert!(slots.take(a).is_none(), "a third from the same client");
        let third = slots.take(b);
        assert!(third.is_some());
        assert!(slots.take(b).is_none(), "over the total");
        drop(first);
        assert!(slots.take(b).is_some(), "a slot came back");
        drop(second);
        drop(third);
        assert_eq!(slots.describe().0, 0);
    }

    /// A socket pair over loopback, the server's end wrapped as hyper would see it.
    async fn wrapped(idle: Duration) -> (Lingering, TcpStream, Arc<Requests>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, remote) = listener.accept().await.unwrap();
        let slots = Arc::new(Slots::new(10, 10));
        let slot = slots.take(remote.ip()).unwrap();
        let requests = Arc::new(Requests::default());
        (
            Lingering::new(server, slot, idle, requests.clone()),
            client,
            requests,
        )
    }

    #[tokio::test]
    async fn a_silent_connection_fails_its_read_after_the_idle_bound_but_not_while_a_request_runs()
    {
        let idle = Duration::from_millis(200);
        let (mut io, _client, _) = wrapped(idle).await;
        let mut buf = [0u8; 16];
        let started = Instant::now();
        let error = io.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= idle, "{:?}", started.elapsed());

        // A request that runs far longer than the bound keeps the connection, and the bound
        // starts again when it ends.
        let (mut io, _client, requests) = wrapped(idle).await;
        let busy = InFlight::start(&requests);
        let waited = tokio::time::timeout(Duration::from_millis(600), io.read(&mut buf)).await;
        assert!(waited.is_err(), "the read waits while a request runs");
        drop(busy);
        let resumed = Instant::now();
        let error = io.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(
            resumed.elapsed() >= Duration::from_millis(150),
            "the idle clock restarted after the request: {:?}",
            resumed.elapsed()
        );
    }

    #[tokio::test]
    async fn an_accepted_connection_sends_each_write_at_once() {
        let (mut io, _client, _) = wrapped(Duration::from_secs(5)).await;
        assert!(io.stream().unwrap().nodelay().unwrap());
    }

    #[test]
    fn an_ipv4_client_over_ipv6_counts_as_the_same_client() {
        let slots = Arc::new(Slots::new(10, 1));
        let v4 = IpAddr::from([192, 0, 2, 7]);
        let mapped = IpAddr::from(std::net::Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        let _held = slots.take(v4);
        assert!(slots.take(mapped).is_none());
    }
}
