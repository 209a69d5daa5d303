//! How `companion serve` treats clients that misbehave at the connection level, over real TCP
//! sockets against the real binary: headers trickled (or never sent) are cut off after
//! `COMPANION_HEADER_TIMEOUT`; connections past the per-client and overall caps are closed at
//! once; a body over the limit is answered 413 and the client reads that answer rather than a
//! reset, whether the length was declared or the body chunked; a trickled body is answered 408
//! and its connection freed; a database outage under load is logged as a summary, not one
//! line per refused request; and a proxy that speaks HTTP/2 without TLS is served.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::outage::Cluster;
use crate::process::{PASSWORD, Process, companion, create_org_admin, free_port};

/// `companion serve --no-workers` on SQLite in `dir` with `env`, once it answers.
fn serve(dir: &Path, env: &[(&str, &str)]) -> (Process, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let addr_text = addr.to_string();
    let mut all = env.to_vec();
    all.push(("COMPANION_ADDR", &addr_text));
    let process = Process(
        companion(dir, all, &["serve", "--no-workers"])
            .spawn()
            .unwrap(),
    );
    wait_until_live(addr);
    // The start-up check's connection gives its slot back once the server sees it closed.
    std::thread::sleep(Duration::from_millis(500));
    (process, addr)
}

fn wait_until_live(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = TcpStream::connect(addr)
            && request(&mut stream, "GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
                .is_some_and(|(status, _)| status == 200)
        {
            return;
        }
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes `head` and reads one response (status, JSON body); `None` if the connection closed
/// or failed first.
fn request(stream: &mut TcpStream, head: &str) -> Option<(u16, Value)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).ok()?;
    read_response(stream)
}

/// Reads one response with a `content-length`.
fn read_response(stream: &mut TcpStream) -> Option<(u16, Value)> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&received, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                let body = serde_json::from_slice(&received[end + 4..end + 4 + length])
                    .unwrap_or(Value::Null);
                return Some((status, body));
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// How a socket stands after waiting up to `wait` for data.
#[derive(Debug, PartialEq, Eq)]
enum Socket {
    /// Closed by the server (end of stream, or reset).
    Closed,
    /// Still open, nothing received.
    Open,
    /// Bytes arrived.
    Data,
}

fn probe(stream: &mut TcpStream, wait: Duration) -> Socket {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => Socket::Closed,
        Ok(_) => Socket::Data,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Socket::Open,
        Err(_) => Socket::Closed,
    }
}

#[test]
fn headers_sent_one_line_a_second_are_cut_off_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(dir.path(), &[("COMPANION_HEADER_TIMEOUT", "2")]);

    // Headers trickled a line a second.
    let mut slow = TcpStream::connect(addr).unwrap();
    let started = Instant::now();
    slow.write_all(b"GET /health/live HTTP/1.1\r\n").unwrap();
    let closed_after = loop {
        match probe(&mut slow, Duration::from_secs(1)) {
            Socket::Closed => break started.elapsed(),
            Socket::Data => panic!("answered a request whose headers never ended"),
            Socket::Open => {
                assert!(
                    started.elapsed() < Duration::from_secs(8),
                    "a connection trickling its headers is still open after 8 s"
                );
                // The server may already have closed: a failed write ends the test next round.
                let _ = slow.write_all(b"X-Slow: 1\r\n");
            }
        }
    };
    println!("headers trickled a line a second: closed after {closed_after:?}");
    assert!(
        closed_after >= Duration::from_millis(1900),
        "{closed_after:?}"
    );

    // A connection that sends nothing at all.
    let mut silent = TcpStream::connect(addr).unwrap();
    let started = Instant::now();
    assert_eq!(probe(&mut silent, Duration::from_secs(6)), Socket::Closed);
    let silent_after = started.elapsed();
    println!("a connection sending nothing: closed after {silent_after:?}");
    assert!(
        silent_after >= Duration::from_millis(1900),
        "{silent_after:?}"
    );

    // A kept-alive connection is served, then closed once it waits too long for its next request.
    let mut kept = TcpStream::connect(addr).unwrap();
    for _ in 0..3 {
        let (status, _) = request(&mut kept, "GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("a prompt client is served");
        assert_eq!(status, 200);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(probe(&mut kept, Duration::from_secs(6)), Socket::Closed);
}

#[test]
fn connections_past_the_per_client_cap_are_closed_at_once_and_the_rest_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(
        dir.path(),
        &[
            ("COMPANION_HEADER_TIMEOUT", "60"),
            ("COMPANION_MAX_CONNECTIONS_PER_CLIENT", "50"),
        ],
    );
    // Connections are counted once accepted: open them one by one, each confirmed open.
    let mut held: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    for stream in &mut held {
        assert_eq!(probe(stream, Duration::from_millis(20)), Socket::Open);
    }
    let started = Instant::now();
    let mut extra: Vec<TcpStream> = (0..150)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    for stream in &mut extra {
        assert_eq!(
            probe(stream, Duration::from_secs(2)),
            Socket::Closed,
            "a connection past the cap is closed"
        );
    }
    let refused_in = started.elapsed();
    println!("150 connections past a cap of 50 closed within {refused_in:?}");
    assert!(refused_in < Duration::from_secs(3), "{refused_in:?}");
    // The held ones are served, and a slot freed is a slot taken again.
    let (status, _) =
        request(&mut held[0], "GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(status, 200);
    held.truncate(10);
    std::thread::sleep(Duration::from_millis(300));
    let mut again = TcpStream::connect(addr).unwrap();
    let (status, _) = request(&mut again, "GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("a freed slot is taken again");
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_overall_cap_are_closed_whichever_client_opens_them() {
    use tokio::io::AsyncReadExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(
        dir.path(),
        &[
            ("COMPANION_HEADER_TIMEOUT", "60"),
            ("COMPANION_MAX_CONNECTIONS", "10"),
            ("COMPANION_MAX_CONNECTIONS_PER_CLIENT", "6"),
        ],
    );
    // Loopback addresses 127.0.0.1 to .3 stand for three clients.
    let open_from = async |client: u8| {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::from(([127, 0, 0, client], 0)))
            .unwrap();
        let stream = socket.connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        stream
    };
    let closed = async |stream: &mut tokio::net::TcpStream, wait: Duration| -> bool {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(wait, stream.read(&mut byte)).await {
            Err(_) => false,
            Ok(Ok(0) | Err(_)) => true,
            Ok(Ok(_)) => panic!("unexpected data"),
        }
    };
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(open_from(1).await);
    }
    let mut seventh = open_from(1).await;
    assert!(
        closed(&mut seventh, Duration::from_secs(2)).await,
        "a seventh from one client"
    );
    for _ in 0..4 {
        held.push(open_from(2).await);
    }
    let mut eleventh = open_from(3).await;
    assert!(
        closed(&mut eleventh, Duration::from_secs(2)).await,
        "an eleventh overall, from a client with none open"
    );
    for stream in &mut held {
        assert!(
            !closed(stream, Duration::from_millis(20)).await,
            "the first ten stay open"
        );
    }
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut later = open_from(3).await;
    assert!(
        !closed(&mut later, Duration::from_millis(500)).await,
        "a slot freed is a slot for another client"
    );
}

/// Sends a whole request (head and a body it writes out completely) on a fresh connection and
/// reads the answer: the body must be written in full and the answer read, with no reset.
fn send_whole(addr: SocketAddr, head: &str, body: &[u8]) -> Result<(u16, Value), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(head.as_bytes())
        .map_err(|e| format!("writing the head: {e}"))?;
    stream
        .write_all(body)
        .map_err(|e| format!("writing the body: {e}"))?;
    read_response(&mut stream).ok_or_else(|| "no answer (closed or reset)".to_owned())
}

#[test]
fn a_body_over_the_limit_gets_a_413_the_client_can_read_declared_or_chunked() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(dir.path(), &[("COMPANION_MAX_BODY_BYTES", "1024")]);
    // Far more than the kernel's socket buffers hold, so that the client is still writing
    // when the answer comes: closing the socket then would reset the connection.
    let big = vec![b'a'; 16 << 20];
    let declared = format!(
        "POST /v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        big.len()
    );
    let mut chunked_body = Vec::new();
    for piece in big.chunks(4096) {
        chunked_body.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked_body.extend_from_slice(piece);
        chunked_body.extend_from_slice(b"\r\n");
    }
    chunked_body.extend_from_slice(b"0\r\n\r\n");
    let chunked = "POST /v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    for round in 0..10 {
        for (kind, head, body) in [
            ("declared", declared.as_str(), big.as_slice()),
            ("chunked", chunked, chunked_body.as_slice()),
        ] {
            let (status, answer) = send_whole(addr, head, body)
                .unwrap_or_else(|e| panic!("{kind} body, round {round}: {e}"));
            assert_eq!(status, 413, "{kind}: {answer}");
            assert_eq!(answer["error"]["code"], "payload_too_large", "{kind}");
        }
    }
    // A body within the limit is still read as usual (a 401 for unknown credentials).
    let small = json!({"email": "nobody@example.org", "password": "not the password"}).to_string();
    let (status, answer) = send_whole(
        addr,
        &format!(
            "POST /v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            small.len()
        ),
        small.as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 401, "{answer}");
}

#[test]
fn a_trickled_body_gets_a_408_and_its_connection_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(
        dir.path(),
        &[
            ("COMPANION_BODY_TIMEOUT", "2"),
            ("COMPANION_MAX_CONNECTIONS_PER_CLIENT", "1"),
        ],
    );
    let started = Instant::now();
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(
        b"POST /v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .unwrap();
    let answer = loop {
        match probe(&mut slow, Duration::from_millis(300)) {
            Socket::Open => {
                assert!(
                    started.elapsed() < Duration::from_secs(8),
                    "a trickled body is still being waited for after 8 s"
                );
                let _ = slow.write_all(b" ");
            }
            Socket::Closed => panic!("closed without an answer"),
            Socket::Data => {
                // The first byte of the answer was consumed by the probe.
                let mut rest = String::new();
                slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let _ = slow.read_to_string(&mut rest);
                break format!("H{rest}");
            }
        }
    };
    let took = started.elapsed();
    println!("a body trickled a byte every 300 ms answered after {took:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    drop(slow);
    // The single slot this client may hold is free again.
    std::thread::sleep(Duration::from_millis(300));
    let mut next = TcpStream::connect(addr).unwrap();
    let (status, _) = request(&mut next, "GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("the connection was freed");
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_speaking_http2_without_tls_is_served_many_requests_on_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(dir.path(), &[]);
    let base = format!("http://{addr}");
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let h1 = reqwest::Client::builder().http1_only().build().unwrap();

    let live = h2.get(format!("{base}/health/live")).send().await.unwrap();
    assert_eq!(live.version(), reqwest::Version::HTTP_2);
    assert_eq!(live.status(), 200);

    // A large answer arrives whole, the same as over HTTP/1.1.
    let document = |client: reqwest::Client| {
        let url = format!("{base}/openapi.json");
        async move {
            let response = client.get(url).send().await.unwrap();
            let version = response.version();
            (version, response.bytes().await.unwrap())
        }
    };
    let (version, over_h2) = document(h2.clone()).await;
    assert_eq!(version, reqwest::Version::HTTP_2);
    let (_, over_h1) = document(h1).await;
    assert!(over_h2.len() > 100_000, "{} bytes", over_h2.len());
    assert_eq!(over_h2, over_h1);

    // Requests side by side share the connection, and each gets its own answer.
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..20 {
        let (client, base) = (h2.clone(), base.clone());
        requests.spawn(async move {
            let response = if n % 2 == 0 {
                client.get(format!("{base}/health/live")).send().await
            } else {
                client.get(format!("{base}/v1/me")).send().await
            };
            (n, response.unwrap().status().as_u16())
        });
    }
    while let Some(joined) = requests.join_next().await {
        let (n, status) = joined.unwrap();
        assert_eq!(status, if n % 2 == 0 { 200 } else { 401 }, "request {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_under_load_is_logged_as_a_summary_not_a_line_per_request() {
    let cluster = Cluster::create();
    {
        use diesel::Connection as _;
        use diesel::connection::SimpleConnection as _;
        let mut admin = diesel::PgConnection::establish(&cluster.url("postgres")).unwrap();
        admin.batch_execute("CREATE DATABASE companion").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let url = cluster.url("companion");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("COMPANION_ADDR", addr.as_str()),
        ("COMPANION_LOG_FORMAT", "json"),
    ];
    create_org_admin(dir.path(), env, "root@example.org");
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let _server = Process(
        companion(dir.path(), env, &["serve", "--no-workers"])
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{base}/health/live"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tokens: Value = client
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": "root@example.org", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(get_me(&client, &base, &token).await, Some(200));

    cluster.stop();
    // Four clients in a loop for six seconds.
    let outage = Duration::from_secs(6);
    let started = Instant::now();
    let mut refused = 0u64;
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            tokio::spawn(async move {
                let mut refused = 0u64;
                while started.elapsed() < outage {
                    match get_me(&client, &base, &token).await {
                        Some(503) => refused += 1,
                        other => panic!("expected 503 during the outage, got {other:?}"),
                    }
                }
                refused
            })
        })
        .collect();
    for task in load {
        refused += task.await.unwrap();
    }
    cluster.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get_me(&client, &base, &token).await != Some(200) {
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let warnings: Vec<&Value> = lines
        .iter()
        .filter(|l| matches!(l["level"].as_str(), Some("WARN" | "ERROR")))
        .collect();
    let recovered = lines
        .iter()
        .find(|l| l["message"] == "database reachable again")
        .unwrap_or_else(|| panic!("no recovery line in:\n{text}"));
    println!(
        "{refused} requests refused in a {outage:?} outage: {} warning lines; recovery line: {recovered}",
        warnings.len()
    );
    assert!(refused >= 100, "the load was too light to tell: {refused}");
    assert!(
        warnings.len() <= 3,
        "{} warning lines for {refused} refusals:\n{warnings:#?}",
        warnings.len()
    );
    assert!(
        warnings.iter().any(|l| l["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("database unavailable")),
        "the outage's first failure is reported at once: {warnings:#?}"
    );
    assert!(
        recovered["failures_in_outage"].as_u64().unwrap() >= refused,
        "the summary counts every refusal: {recovered}"
    );
}

async fn get_me(client: &reqwest::Client, base: &str, token: &str) -> Option<u16> {
    client
        .get(format!("{base}/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}
