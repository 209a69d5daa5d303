//! Answer latency by protocol: the same requests, one after another on one connection, over
//! HTTP/1.1 and over HTTP/2 (cleartext, prior knowledge, as a proxy in front of the server may
//! speak it), against the release `companion` server in its own process on SQLite.
//!
//! The reference is HTTP/1.1 on the same server in the same run. A request that takes more than
//! 30 ms here, where each takes a few, has waited on the network stack rather than on the
//! server (a small write held back until the client acknowledged an earlier one).
//!
//! ```sh
//! cargo build --release -p companion-server -p companion-load
//! target/release/answer-latency [REQUESTS]
//! ```
//! Default: 200 requests per path and protocol. Prints figures; asserts nothing about speed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use companion_load::{percentile, sign_in_admin, spawn_server};

/// A request that took longer than this waited on something other than the server.
const STALL: Duration = Duration::from_millis(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let requests: usize = match std::env::args().nth(1) {
        Some(text) => text
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("REQUESTS must be a positive number, not {text:?}"))?,
        None => 200,
    };
    let data = tempfile::tempdir()?;
    let settings = BTreeMap::from([
        (
            "COMPANION_DATA_DIR".to_owned(),
            data.path().display().to_string(),
        ),
        ("COMPANION_LOG".to_owned(), "warn".to_owned()),
    ]);
    let server = spawn_server(&settings).await?;
    let token = sign_in_admin(&reqwest::Client::new(), &server.base).await?;
    let paths = [
        ("/health/live", false),
        ("/v1/me", true),
        ("/app/", false),
        ("/openapi.json", false),
    ];
    println!(
        "answer latency: {requests} requests per path, one after another on one connection, \
         server on SQLite in its own process"
    );
    println!(
        "{:<14} {:>6}  {:>9} {:>9} {:>9} {:>7}  {:>9} {:>9} {:>9} {:>7}  {:>12}",
        "path",
        "bytes",
        "h1 p50",
        "h1 p99",
        "h1 max",
        "h1 >30",
        "h2 p50",
        "h2 p99",
        "h2 max",
        "h2 >30",
        "h2/h1 total"
    );
    for (path, authenticated) in paths {
        let token = authenticated.then_some(token.as_str());
        let url = format!("{}{path}", server.base);
        let h1 = Protocol::Http1.client()?;
        let h2 = Protocol::Http2.client()?;
        // One request first on each, so that both compare kept-alive connections.
        let bytes = fetch(&h1, &url, token).await?;
        fetch(&h2, &url, token).await?;
        let one = timed(&h1, &url, token, requests).await?;
        let two = timed(&h2, &url, token, requests).await?;
        println!(
            "{:<14} {:>6}  {:>9} {:>9} {:>9} {:>7}  {:>9} {:>9} {:>9} {:>7}  {:>12.2}",
            path,
            bytes,
            ms(one.percentile(0.50)),
            ms(one.percentile(0.99)),
            ms(one.max()),
            one.stalled(),
            ms(two.percentile(0.50)),
            ms(two.percentile(0.99)),
            ms(two.max()),
            two.stalled(),
            two.total().as_secs_f64() / one.total().as_secs_f64(),
        );
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    /// A client that keeps one connection and sends each write at once, as browsers and
    /// proxies do.
    fn client(self) -> anyhow::Result<reqwest::Client> {
        let builder = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1);
        let builder = match self {
            Protocol::Http1 => builder.http1_only(),
            Protocol::Http2 => builder.http2_prior_knowledge(),
        };
        Ok(builder.build()?)
    }
}

/// One request; the answer's length.
async fn fetch(client: &reqwest::Client, url: &str, token: Option<&str>) -> anyhow::Result<usize> {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    Ok(response.bytes().await?.len())
}

async fn timed(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    requests: usize,
) -> anyhow::Result<Samples> {
    let mut samples = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        fetch(client, url, token).await?;
        samples.push(started.elapsed());
    }
    samples.sort();
    Ok(Samples(samples))
}

/// Latencies, sorted.
struct Samples(Vec<Duration>);

impl Samples {
    fn percentile(&self, p: f64) -> Duration {
        percentile(&self.0, p)
    }

    fn max(&self) -> Duration {
        self.0.last().copied().unwrap_or_default()
    }

    fn total(&self) -> Duration {
        self.0.iter().sum()
    }

    fn stalled(&self) -> usize {
        self.0.iter().filter(|d| **d > STALL).count()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
