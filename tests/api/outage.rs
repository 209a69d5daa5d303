//! A PostgreSQL outage under load, with the real binary on a throwaway cluster of its own: while
//! the database is down, requests are answered 503 (never 500, never a hang), readiness says so,
//! nothing answered 201 is lost, and the server recovers by itself when the database returns.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::process::{PASSWORD, Process, companion, create_org_admin, free_port};

/// The PostgreSQL server binaries (initdb, pg_ctl); the test fails, never skips, without them.
fn pg_bindir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop().expect(
        "the outage test needs PostgreSQL's server binaries (initdb, pg_ctl): install postgresql",
    )
}

/// A throwaway cluster in a temporary folder, run as the `postgres` user when we are root
/// (initdb refuses root).
pub(crate) struct Cluster {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    pub(crate) fn create() -> Self {
        let bindir = pg_bindir();
        let dir = std::env::temp_dir().join(format!(
            "companion-outage-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            assert!(
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(&dir)
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let port = free_port();
        let cluster = Cluster { bindir, dir, port };
        let status = cluster
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(cluster.dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        cluster.start();
        cluster
    }

    pub(crate) fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &options, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl start failed");
    }

    pub(crate) fn stop(&self) {
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl stop failed");
    }

    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

async fn call(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, Duration) {
    let started = Instant::now();
    let mut request = match body {
        Some(body) => client.post(url).json(&body),
        None => client.get(url),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_outage_gets_503s_loses_nothing_accepted_and_recovers_without_a_restart() {
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
        ("COMPANION_AUTH_RATE_LIMIT", "1000"),
        ("COMPANION_LOG", "warn"),
    ];
    create_org_admin(dir.path(), env, "root@example.org");
    let _server = Process(companion(dir.path(), env, &["serve"]).spawn().unwrap());
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while call_ready(&client, &base).await != Some(200) {
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A clinic, a clinician and a patient.
    let (_, tokens, _) = call(
        &client,
        format!("{base}/v1/auth/login"),
        None,
        Some(json!({"email": "root@example.org", "password": PASSWORD})),
    )
    .await;
    let root = tokens["access_token"].as_str().unwrap().to_owned();
    let (_, clinic, _) = call(
        &client,
        format!("{base}/v1/clinics"),
        Some(&root),
        Some(json!({"name": "Outage", "timezone": "UTC"})),
    )
    .await;
    let clinic = clinic["id"].as_str().unwrap().to_owned();
    let join = async |inviter: &str, role: &str| -> String {
        let (_, invite, _) = call(
            &client,
            format!("{base}/v1/clinics/{clinic}/invitations"),
            Some(inviter),
            Some(json!({"role": role})),
        )
        .await;
        let email = format!("{role}-{}@example.org", uuid::Uuid::new_v4().simple());
        let (status, tokens, _) = call(
            &client,
            format!("{base}/v1/invitations/accept"),
            None,
            Some(json!({"code": invite["code"], "email": email, "password": PASSWORD})),
        )
        .await;
        assert_eq!(status, 201, "{tokens}");
        tokens["access_token"].as_str().unwrap().to_owned()
    };
    let clinic_admin = join(&root, "clinic_admin").await;
    let clinician = join(&clinic_admin, "clinician").await;
    let patient = join(&clinician, "patient").await;
    let (_, me, _) = call(&client, format!("{base}/v1/me"), Some(&patient), None).await;
    let patient_id = me["id"].as_str().unwrap().to_owned();

    // Check-ins before, during and after the outage.
    let mut accepted = Vec::new();
    let mut during = Vec::new();
    let submit = async |accepted: &mut Vec<String>| -> (u16, Duration) {
        let id = uuid::Uuid::new_v4().to_string();
        let (status, body, took) = call(
            &client,
            format!("{base}/v1/check-ins"),
            Some(&patient),
            Some(
                // A note of its own: the same answers sent again within minutes would be one
                // check-in.
                json!({"id": id, "instrument": "daily_mood", "answers": {"mood": 6, "note": id},
                        "completed_at": chrono::Utc::now().to_rfc3339()}),
            ),
        )
        .await;
        if status == 201 {
            accepted.push(id);
        } else {
            assert_eq!(
                body["error"]["code"], "database_unavailable",
                "{status} {body}"
            );
        }
        (status, took)
    };
    for _ in 0..20 {
        assert_eq!(submit(&mut accepted).await.0, 201);
    }
    cluster.stop();
    for _ in 0..20 {
        during.push(submit(&mut accepted).await);
    }
    assert_eq!(call_ready(&client, &base).await, Some(503));
    assert!(
        during.iter().all(|(status, _)| *status == 503),
        "every request during the outage is a 503: {during:?}"
    );
    assert!(
        during
            .iter()
            .all(|(_, took)| *took < Duration::from_secs(10)),
        "no request hangs: {during:?}"
    );
    let slowest = during
        .iter()
        .map(|(_, took)| *took)
        .max()
        .unwrap_or_default();
    println!("during the outage: 20 requests answered 503, slowest in {slowest:?}");
    let restarted = Instant::now();
    cluster.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while call_ready(&client, &base).await != Some(200) {
        assert!(Instant::now() < deadline, "readiness did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "ready again {:?} after the database was started",
        restarted.elapsed()
    );
    for _ in 0..20 {
        assert_eq!(
            submit(&mut accepted).await.0,
            201,
            "recovered without a restart"
        );
    }

    // Nothing answered 201 was lost.
    let (status, page, _) = call(
        &client,
        format!("{base}/v1/patients/{patient_id}/check-ins?limit=100"),
        Some(&clinician),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let stored: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(accepted.len(), 40);
    for id in &accepted {
        assert!(stored.contains(&id.as_str()), "check-in {id} was lost");
    }
}

async fn call_ready(client: &reqwest::Client, base: &str) -> Option<u16> {
    client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}
