//! Scale-out on PostgreSQL with the real binary: two API processes and two worker processes on one
//! database, check-ins (some with a PHQ-9 item 9 answer) through both APIs, one worker killed with
//! SIGKILL mid-run. Every accepted check-in is stored and every alert reaches the on-call
//! clinician's phone exactly once, through a fake FCM over HTTP.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::TestDb;
use crate::process::{PASSWORD, Process, companion, create_org_admin, free_port};

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self
                .client
                .get(format!("{}/health/ready", self.base))
                .send()
                .await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not become ready",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Invites someone with `role` and has them accept; returns (id, access token).
    async fn join(&self, inviter: &str, clinic: &str, role: &str) -> (String, String) {
        let (status, invite) = self
            .post(
                &format!("/v1/clinics/{clinic}/invitations"),
                Some(inviter),
                json!({"role": role}),
            )
            .await;
        assert_eq!(status, 201, "{invite}");
        let email = format!("{role}-{}@example.org", uuid::Uuid::new_v4().simple());
        let (status, tokens) = self
            .post(
                "/v1/invitations/accept",
                None,
                json!({"code": invite["code"], "email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, 201, "{tokens}");
        let token = tokens["access_token"].as_str().unwrap().to_owned();
        let (_, me) = self
            .call(reqwest::Method::GET, "/v1/me", Some(&token), None)
            .await;
        (me["id"].as_str().unwrap().to_owned(), token)
    }
}

fn phq9(item9: i64) -> Value {
    let mut answers = serde_json::Map::new();
    for i in 1..=8 {
        answers.insert(format!("q{i}"), json!(0));
    }
    answers.insert("q9".into(), json!(item9));
    Value::Object(answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_and_two_workers_deliver_every_alert_once_when_a_worker_is_killed() {
    let fake = companion_fake_push::FakeFcm::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("service-account.json");
    let account = json!({
        "project_id": "fake-project", "client_email": "push@fake-project.iam.example",
        "private_key": std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/fcm-test-key.pem")).unwrap(),
        "token_uri": fake.token_url(),
    });
    std::fs::write(&key_file, account.to_string()).unwrap();
    let (_db, url) = TestDb::empty_postgres();
    let env: BTreeMap<String, String> = [
        ("DATABASE_URL", url.as_str()),
        ("COMPANION_DATA_DIR", &dir.path().display().to_string()),
        (
            "COMPANION_FCM_SERVICE_ACCOUNT_FILE",
            &key_file.display().to_string(),
        ),
        ("COMPANION_FCM_BASE_URL", &fake.base_url()),
        ("COMPANION_JOB_LEASE", "3"),
        ("COMPANION_PUSH_TIMEOUT", "2"),
        ("COMPANION_JOB_POLL_INTERVAL", "200"),
        ("COMPANION_AUTH_RATE_LIMIT", "1000"),
        ("COMPANION_LOG", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();

    // The first administrator (this also migrates), then 2 API and 2 worker processes.
    create_org_admin(dir.path(), env.clone(), "root@example.org");
    let mut apis = Vec::new();
    let mut processes = Vec::new();
    for _ in 0..2 {
        let port = free_port();
        let mut with_addr = env.clone();
        with_addr.insert("COMPANION_ADDR".into(), format!("127.0.0.1:{port}"));
        processes.push(Process(
            companion(dir.path(), &with_addr, &["serve", "--no-workers"])
                .spawn()
                .unwrap(),
        ));
        apis.push(Api {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        });
    }
    for api in &apis {
        api.ready().await;
    }
    let mut workers: Vec<Process> = (0..2)
        .map(|_| Process(companion(dir.path(), &env, &["work"]).spawn().unwrap()))
        .collect();

    // A clinic with an on-call clinician who has a phone, and twelve patients.
    let (a, b) = (&apis[0], &apis[1]);
    let (_, tokens) = a
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "root@example.org", "password": PASSWORD}),
        )
        .await;
    let root = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, clinic) = a
        .post(
            "/v1/clinics",
            Some(&root),
            json!({"name": "Scale", "timezone": "UTC"}),
        )
        .await;
    assert_eq!(status, 201, "{clinic}");
    let clinic = clinic["id"].as_str().unwrap().to_owned();
    let (_, clinic_admin) = a.join(&root, &clinic, "clinic_admin").await;
    let (_, clinician) = b.join(&clinic_admin, &clinic, "clinician").await;
    let (status, _) = b
        .call(
            reqwest::Method::PUT,
            "/v1/me/on-call",
            Some(&clinician),
            Some(json!({"on_call": true})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = a
        .post(
            "/v1/devices",
            Some(&clinician),
            json!({"platform": "android", "token": "ok-on-call-phone"}),
        )
        .await;
    assert_eq!(status, 201);
    let mut patients = Vec::new();
    for i in 0..12 {
        patients.push(apis[i % 2].join(&clinician, &clinic, "patient").await);
    }

    // Check-ins through both servers; every third patient answers item 9. Halfway, one worker
    // is killed without warning, once neither worker holds a job: a push sent and not yet
    // settled when its worker dies is sent again after the lease (at least once, with the same
    // replacing identity: `a_worker_killed_mid_storm_...` covers that), which is not what this
    // test counts.
    let mut accepted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut item9_patients = 0;
    for (i, (patient, token)) in patients.iter().enumerate() {
        if i == patients.len() / 2 {
            wait_until_no_job_is_held(&url, item9_patients, &fake).await;
            let killed = workers.remove(0);
            let sent = Command::new("kill")
                .args(["-KILL", &killed.0.id().to_string()])
                .status()
                .unwrap();
            assert!(sent.success());
            drop(killed);
        }
        let api = &apis[i % 2];
        for day in 0..3 {
            let id = uuid::Uuid::new_v4().to_string();
            let (status, body) = api
                .post(
                    "/v1/check-ins",
                    Some(token),
                    json!({"id": id, "instrument": "daily_mood", "answers": {"mood": 5 + day},
                           "completed_at": chrono::Utc::now().to_rfc3339()}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            accepted.entry(patient.clone()).or_default().push(id);
        }
        let item9 = if i % 3 == 0 { 2 } else { 0 };
        item9_patients += usize::from(item9 > 0);
        let id = uuid::Uuid::new_v4().to_string();
        let (status, body) = apis[(i + 1) % 2]
            .post(
                "/v1/check-ins",
                Some(token),
                json!({"id": id, "instrument": "phq9", "answers": phq9(item9),
                       "completed_at": chrono::Utc::now().to_rfc3339()}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        accepted.entry(patient.clone()).or_default().push(id);
    }

    // Every alert reaches the phone; then, after more than a lease, still once each.
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.delivered_count() < item9_patients {
        assert!(
            Instant::now() < deadline,
            "only {} of {item9_patients} alert pushes arrived",
            fake.delivered_count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut per_alert: BTreeMap<String, usize> = BTreeMap::new();
    for message in fake.delivered() {
        assert_eq!(message.token, "ok-on-call-phone");
        let alert = message.body["message"]["data"]["alert_id"]
            .as_str()
            .unwrap()
            .to_owned();
        *per_alert.entry(alert).or_default() += 1;
    }
    assert_eq!(
        per_alert.len(),
        item9_patients,
        "one alert per item-9 patient"
    );
    assert!(
        per_alert.values().all(|n| *n == 1),
        "an alert was pushed twice: {per_alert:?}"
    );

    // Every check-in answered 201 is stored, whichever server took it.
    for (patient, ids) in &accepted {
        let (status, page) = a
            .call(
                reqwest::Method::GET,
                &format!("/v1/patients/{patient}/check-ins?limit=100"),
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
        for id in ids {
            assert!(stored.contains(&id.as_str()), "check-in {id} was lost");
        }
    }
    drop(processes);
}

/// Pushes in the storm test.
const STORM: usize = 240;

/// A storm of urgent alert pushes to one clinician's Android phone, two worker processes of the
/// real binary on one PostgreSQL, one SIGKILLed a third of the way through. Nothing is lost, and
/// every push the fake FCM received twice (sent by the killed worker, never settled, sent again
/// after its lease) carries the same replacing identity both times, so the phone shows it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_storm_loses_nothing_and_every_resent_push_replaces_the_first() {
    use companion::db::DbConnection;
    use companion::push::content::PushMessage;
    use companion::push::store as push_store;
    use companion_schema::schema::{accounts, jobs, notifications};
    use diesel::prelude::*;

    let fake = companion_fake_push::FakeFcm::start_with(companion_fake_push::FakeOptions {
        latency: Duration::from_millis(40),
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("service-account.json");
    let account = json!({
        "project_id": "fake-project", "client_email": "push@fake-project.iam.example",
        "private_key": std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/fcm-test-key.pem")).unwrap(),
        "token_uri": fake.token_url(),
    });
    std::fs::write(&key_file, account.to_string()).unwrap();
    let (_db, url) = TestDb::empty_postgres();
    let lease = Duration::from_secs(3);
    let env: BTreeMap<String, String> = [
        ("DATABASE_URL", url.as_str()),
        ("COMPANION_DATA_DIR", &dir.path().display().to_string()),
        (
            "COMPANION_FCM_SERVICE_ACCOUNT_FILE",
            &key_file.display().to_string(),
        ),
        ("COMPANION_FCM_BASE_URL", &fake.base_url()),
        ("COMPANION_JOB_LEASE", &lease.as_secs().to_string()),
        ("COMPANION_PUSH_TIMEOUT", "2"),
        ("COMPANION_JOB_POLL_INTERVAL", "200"),
        ("COMPANION_WORKER_CONCURRENCY", "8"),
        ("COMPANION_LOG", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    create_org_admin(dir.path(), env.clone(), "oncall@example.org");

    // The on-call clinician's phone.
    let mut conn = DbConnection::Pg(diesel::PgConnection::establish(&url).unwrap());
    let account_id: String = accounts::table
        .select(accounts::id)
        .first(&mut conn)
        .unwrap();
    let now = chrono::Utc::now().naive_utc();
    let (device, _) = push_store::register(
        &mut conn,
        push_store::DeviceRow {
            id: push_store::new_device_id(),
            account_id,
            platform: "android".into(),
            token: "ok-storm-phone".into(),
            app_version: None,
            locale: None,
            active: true,
            invalid_argument_count: 0,
            deactivated_reason: None,
            created_at: now,
            last_seen_at: now,
            web_p256dh: None,
            web_auth: None,
        },
    )
    .unwrap();

    let mut workers: Vec<Process> = (0..2)
        .map(|_| Process(companion(dir.path(), &env, &["work"]).spawn().unwrap()))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The storm: every alert push committed at once, as a burst of item-9 answers would.
    let alerts: Vec<String> = (0..STORM)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let items = alerts.clone();
    conn.transaction(|conn| {
        let now = chrono::Utc::now().naive_utc();
        let messages = items
            .into_iter()
            .map(|alert_id| {
                (
                    &device,
                    PushMessage::ClinicianAlert {
                        alert_id,
                        time_sensitive: true,
                    },
                )
            })
            .collect();
        push_store::notify_devices(conn, messages, now)
    })
    .unwrap();
    let started = Instant::now();

    // A third of the way through, one worker dies without warning.
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.delivered_count() < STORM / 3 {
        assert!(Instant::now() < deadline, "the storm did not start");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let killed = workers.remove(0);
    let sent = Command::new("kill")
        .args(["-KILL", &killed.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let killed_at = started.elapsed();
    drop(killed);

    // Every notification settles as delivered, and no job is left behind.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let delivered: i64 = notifications::table
            .filter(notifications::status.eq("delivered"))
            .count()
            .get_result(&mut conn)
            .unwrap();
        let open: i64 = jobs::table
            .filter(jobs::status.ne("done"))
            .count()
            .get_result(&mut conn)
            .unwrap();
        if delivered == STORM as i64 && open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{delivered} of {STORM} delivered, {open} jobs not done"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settled_after = started.elapsed();

    // What the phone received: every alert, and each copy of one alert with one identity.
    let mut copies: BTreeMap<String, Vec<companion_fake_push::Received>> = BTreeMap::new();
    for message in fake.delivered() {
        assert_eq!(message.token, "ok-storm-phone");
        assert_eq!(message.version, "HTTP/2.0", "FCM is spoken over HTTP/2");
        let alert = message.body["message"]["data"]["alert_id"]
            .as_str()
            .unwrap()
            .to_owned();
        copies.entry(alert).or_default().push(message);
    }
    assert_eq!(copies.len(), STORM, "no alert lost");
    for alert in &alerts {
        assert!(
            copies.contains_key(alert),
            "alert {alert} never reached the phone"
        );
    }
    let mut resent = 0;
    let mut windows = Vec::new();
    for (alert, received) in &copies {
        let first = &received[0].body["message"];
        assert_eq!(first["android"]["notification"]["tag"], alert.as_str());
        assert_eq!(first["apns"]["headers"]["apns-collapse-id"], alert.as_str());
        for again in &received[1..] {
            let again_body = &again.body["message"];
            assert_eq!(
                again_body["android"]["notification"]["tag"],
                first["android"]["notification"]["tag"],
                "a re-sent push must replace the first on the phone"
            );
            assert_eq!(
                again_body["apns"]["headers"]["apns-collapse-id"],
                first["apns"]["headers"]["apns-collapse-id"]
            );
            assert_eq!(
                again_body["android"]["collapse_key"],
                first["android"]["collapse_key"]
            );
            windows.push(again.at.duration_since(received[0].at));
        }
        resent += received.len() - 1;
    }
    assert!(
        resent >= 1,
        "the killed worker had pushes in flight, which must be re-sent"
    );
    assert!(
        resent <= 8,
        "only what the killed worker held unsettled (8 at most) is re-sent: {resent}"
    );
    windows.sort();
    println!(
        "storm: {STORM} alert pushes, worker killed at {killed_at:?}, all settled after \
         {settled_after:?}; re-sent {resent} (same replacing identity), re-send window \
         {:?}..{:?} after the first copy (lease {lease:?})",
        windows.first().unwrap(),
        windows.last().unwrap()
    );
    drop(workers);
}

/// Waits until the fake has received `pushes` alert pushes and no job is held by a worker.
async fn wait_until_no_job_is_held(url: &str, pushes: usize, fake: &companion_fake_push::FakeFcm) {
    use diesel::{Connection, RunQueryDsl};

    #[derive(diesel::QueryableByName)]
    struct Held {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }

    let mut conn = diesel::PgConnection::establish(url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held = diesel::sql_query("SELECT COUNT(*) AS n FROM jobs WHERE status = 'running'")
            .get_result::<Held>(&mut conn)
            .unwrap()
            .n;
        if held == 0 && fake.delivered_count() >= pushes {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{held} jobs still held, {} of {pushes} pushes arrived",
            fake.delivered_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
