//! Prometheus metrics, in the text exposition format, at `GET /metrics` (served by `health`). Counters and histograms
//! live in the [`Metrics`] held by the `App` (no global registry); queue depth, dead jobs and open
//! alerts are read from the database at scrape time, so every replica reports the same figures
//! for shared state. Labels are route templates, kinds, severities and outcome names: never ids,
//! tokens or anything about a patient.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::db::DbConnection;

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const ACK_BUCKETS: &[f64] = &[
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0, 259200.0,
];

#[derive(Debug, Clone)]
struct Histogram {
    buckets: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(buckets: &'static [f64]) -> Self {
        Self {
            buckets,
            counts: vec![0; buckets.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        for (bound, count) in self.buckets.iter().zip(self.counts.iter_mut()) {
            if value <= *bound {
                *count += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in self.buckets.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// The process's counters and histograms.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    job_failures: Mutex<BTreeMap<(String, &'static str), u64>>,
    push_outcomes: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    ack_seconds: Mutex<BTreeMap<String, Histogram>>,
    escalations: Mutex<BTreeMap<i32, u64>>,
    unreachable: Mutex<BTreeMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    /// One HTTP request: `route` is the matched template (or `unmatched`).
    pub fn request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        *lock(&self.requests)
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        lock(&self.latency)
            .entry((method.to_owned(), route.to_owned()))
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(elapsed.as_secs_f64());
    }

    /// A job attempt that failed: `result` is `retry` or `dead`.
    pub fn job_failed(&self, kind: &str, result: &'static str) {
        *lock(&self.job_failures)
            .entry((kind.to_owned(), result))
            .or_default() += 1;
    }

    /// A push attempt's outcome through `gateway` (`apns` or `fcm`).
    pub fn push_outcome(&self, gateway: &'static str, outcome: &'static str) {
        *lock(&self.push_outcomes)
            .entry((gateway, outcome))
            .or_default() += 1;
    }

    /// An alert acknowledged `seconds` after it opened.
    pub fn acknowledged(&self, severity: &str, seconds: f64) {
        lock(&self.ack_seconds)
            .entry(severity.to_owned())
            .or_insert_with(|| Histogram::new(ACK_BUCKETS))
            .observe(seconds);
    }

    /// An alert climbed to `tier` (0 is the first).
    pub fn escalated(&self, tier: i32) {
        *lock(&self.escalations).entry(tier).or_default() += 1;
    }

    /// An alert of `severity` found nobody to tell in any tier.
    pub fn unreachable(&self, severity: &str) {
        *lock(&self.unreachable)
            .entry(severity.to_owned())
            .or_default() += 1;
    }

    /// The exposition text: this process's counters, then the shared state read at scrape time.
    pub fn render(&self, shared: &Shared) -> String {
        let mut out = String::new();
        out.push_str("# HELP companion_http_requests_total HTTP requests by method, route template and status.\n# TYPE companion_http_requests_total counter\n");
        for ((method, route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "companion_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP companion_http_request_duration_seconds HTTP request latency by method and route template.\n# TYPE companion_http_request_duration_seconds histogram\n");
        for ((method, route), h) in lock(&self.latency).iter() {
            h.render(
                &mut out,
                "companion_http_request_duration_seconds",
                &format!("method=\"{method}\",route=\"{}\"", escape(route)),
            );
        }
        out.push_str("# HELP companion_job_failures_total Failed job attempts by kind and result (retry, dead).\n# TYPE companion_job_failures_total counter\n");
        for ((kind, result), n) in lock(&self.job_failures).iter() {
            let _ = writeln!(
                out,
                "companion_job_failures_total{{kind=\"{}\",result=\"{result}\"}} {n}",
                escape(kind)
            );
        }
        out.push_str("# HELP companion_push_attempts_total Push attempts by gateway and outcome.\n# TYPE companion_push_attempts_total counter\n");
        for ((gateway, outcome), n) in lock(&self.push_outcomes).iter() {
            let _ = writeln!(
                out,
                "companion_push_attempts_total{{gateway=\"{gateway}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP companion_alert_acknowledge_seconds Time from an alert opening to its acknowledgement, by severity.\n# TYPE companion_alert_acknowledge_seconds histogram\n");
        for (severity, h) in lock(&self.ack_seconds).iter() {
            h.render(
                &mut out,
                "companion_alert_acknowledge_seconds",
                &format!("severity=\"{}\"", escape(severity)),
            );
        }
        out.push_str("# HELP companion_alert_escalations_total Escalations by the tier reached (0 is the first tier).\n# TYPE companion_alert_escalations_total counter\n");
        for (tier, n) in lock(&self.escalations).iter() {
            let _ = writeln!(
                out,
                "companion_alert_escalations_total{{tier=\"{tier}\"}} {n}"
            );
        }
        out.push_str("# HELP companion_alerts_unreachable_total Alerts that found nobody to tell in any tier (nobody on call, no device, no webhook), by severity.\n# TYPE companion_alerts_unreachable_total counter\n");
        for (severity, n) in lock(&self.unreachable).iter() {
            let _ = writeln!(
                out,
                "companion_alerts_unreachable_total{{severity=\"{}\"}} {n}",
                escape(severity)
            );
        }
        out.push_str("# HELP companion_jobs_queued Queued jobs by kind.\n# TYPE companion_jobs_queued gauge\n");
        out.push_str("# HELP companion_jobs_oldest_age_seconds Age of the oldest due queued job by kind.\n# TYPE companion_jobs_oldest_age_seconds gauge\n");
        for (kind, (queued, age)) in &shared.queue {
            let kind = escape(kind);
            let _ = writeln!(out, "companion_jobs_queued{{kind=\"{kind}\"}} {queued}");
            let _ = writeln!(
                out,
                "companion_jobs_oldest_age_seconds{{kind=\"{kind}\"}} {age}"
            );
        }
        out.push_str("# HELP companion_jobs_dead Jobs parked as dead by kind.\n# TYPE companion_jobs_dead gauge\n");
        for (kind, n) in &shared.dead {
            let _ = writeln!(out, "companion_jobs_dead{{kind=\"{}\"}} {n}", escape(kind));
        }
        out.push_str("# HELP companion_alerts_open Unacknowledged alerts by severity.\n# TYPE companion_alerts_open gauge\n");
        for severity in ["urgent", "high", "medium", "low"] {
            let n = shared.open_alerts.get(severity).copied().unwrap_or(0);
            let _ = writeln!(out, "companion_alerts_open{{severity=\"{severity}\"}} {n}");
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Shared state read from the database at scrape time.
#[derive(Debug, Default)]
pub struct Shared {
    /// Kind -> (queued, age in seconds of the oldest due one).
    pub queue: BTreeMap<String, (i64, i64)>,
    /// Kind -> dead jobs.
    pub dead: BTreeMap<String, i64>,
    /// Severity -> open (unacknowledged) alerts.
    pub open_alerts: BTreeMap<String, i64>,
}

/// Reads the shared state: three grouped queries.
pub fn read_shared(conn: &mut DbConnection, now: DateTime<Utc>) -> QueryResult<Shared> {
    let now = now.naive_utc();
    let mut shared = Shared::default();
    for row in crate::jobs::store::queued_by_kind(conn)? {
        let age = row
            .oldest
            .map(|t| (now - t).num_seconds().max(0))
            .unwrap_or(0);
        shared.queue.insert(row.key, (row.n, age));
    }
    for row in crate::jobs::store::dead_by_kind(conn)? {
        shared.dead.insert(row.key, row.n);
    }
    for (severity, n) in crate::escalation::open_by_severity(conn)? {
        shared.open_alerts.insert(severity, n);
    }
    Ok(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_rendered_with_inf() {
        let m = Metrics::default();
        m.request("GET", "/v1/me", 200, Duration::from_millis(3));
        m.request("GET", "/v1/me", 200, Duration::from_millis(30));
        let text = m.render(&Shared::default());
        assert!(text.contains(
            "companion_http_requests_total{method=\"GET\",route=\"/v1/me\",status=\"200\"} 2"
        ));
        assert!(text.contains("companion_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/me\",le=\"0.005\"} 1"));
        assert!(text.contains("companion_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/me\",le=\"0.05\"} 2"));
        assert!(text.contains("companion_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/me\",le=\"+Inf\"} 2"));
        assert!(text.contains("companion_alerts_open{severity=\"urgent\"} 0"));
    }
}
