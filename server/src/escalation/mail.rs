//! Alert email: for urgent and high alerts, after push and webhooks, each member of the tier told
//! and the clinic's admins get one email per alert round (and the organisation's admins one when
//! nobody could be reached). The `alert.email` job sends it through the SMTP server and records
//! whether the server accepted it, which counts as reaching that person.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::email::{self, Sent};
use crate::jobs::runner::JobResult;
use crate::jobs::store::{Claimed, NewJob, Priority};
use crate::jobs::{self, Job, JobKind};
use crate::time::utc;

use super::decide::Delivery;
use super::reach::{self, Audience, Channel, NewDelivery};
use super::store::Step;

/// The job kind.
pub const KIND: &str = "alert.email";
/// Attempts per email.
const ATTEMPTS: i32 = 8;

/// Which email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// "A patient alert needs your attention".
    Alert,
    /// To an organisation admin: an alert reached nobody in its care team.
    Unreachable,
}

/// The `alert.email` payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payload {
    /// The alert.
    pub alert_id: String,
    /// The recipient's account.
    pub account_id: String,
    /// Which email.
    pub kind: Kind,
    /// The delivery this is (its dedupe key).
    pub ref_id: String,
}

/// Queues one email about `alert_id` to `account_id`, once per alert round and audience (false
/// when this person was already emailed). In the caller's transaction.
pub fn enqueue(
    conn: &mut crate::db::DbConnection,
    alert_id: &str,
    step: Step,
    audience: Audience,
    account_id: &str,
    kind: Kind,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let now = now.naive_utc();
    let scope = match audience {
        Audience::Tier(_) => "care".to_owned(),
        Audience::LastResort => "last".to_owned(),
        // Each assignment is its own news.
        Audience::Assignee => format!("assign-{}", uuid::Uuid::now_v7().simple()),
    };
    let ref_id = format!("{KIND}:{alert_id}:r{}:{scope}:{account_id}", step.round);
    let recorded = reach::record(
        conn,
        &NewDelivery {
            alert_id,
            step,
            audience,
            channel: Channel::Email,
            recipient: account_id,
            ref_id: &ref_id,
            status: Delivery::Queued,
        },
        utc(now),
    )?;
    if !recorded {
        return Ok(false);
    }
    jobs::enqueue(
        conn,
        &NewJob {
            kind: KIND,
            payload: jobs::registry::versioned::<AlertEmail>(&Payload {
                alert_id: alert_id.to_owned(),
                account_id: account_id.to_owned(),
                kind,
                ref_id: ref_id.clone(),
            }),
            dedupe_key: Some(ref_id),
            run_at: now,
            max_attempts: ATTEMPTS,
            priority: Priority::Safety,
        },
        now,
    )?;
    Ok(true)
}

/// The `alert.email` job.
#[derive(Debug, Clone, Copy)]
pub struct AlertEmail;

impl JobKind for AlertEmail {
    const KIND: &'static str = KIND;
    type Payload = Payload;
}

#[async_trait::async_trait]
impl Job<App> for AlertEmail {
    async fn run(&self, app: &App, job: &Claimed, _worker: &str, payload: Payload) -> JobResult {
        send(app, job, payload).await
    }
}

async fn send(app: &App, job: &Claimed, payload: Payload) -> JobResult {
    let account_id = payload.account_id.clone();
    let address: Option<String> = match app
        .db
        .run(move |conn| crate::account::enabled_email(conn, &account_id))
        .await
    {
        Ok(address) => address,
        Err(e) => return JobResult::retry(format!("database: {e}")),
    };
    let last_attempt = job.attempts >= job.max_attempts;
    let (status, detail, result) = match (&app.mailer, address) {
        (None, _) => (
            Delivery::NotSent,
            Some("no SMTP server configured".to_owned()),
            JobResult::Done,
        ),
        (_, None) => (
            Delivery::Failed,
            Some("the account is disabled or gone".to_owned()),
            JobResult::Done,
        ),
        (Some(mailer), Some(address)) => {
            let email = match payload.kind {
                Kind::Alert => email::alert_email(app.config.public_url.as_str()),
                Kind::Unreachable => email::unreachable_email(app.config.public_url.as_str()),
            };
            match mailer.send(&address, &email).await {
                Sent::Accepted => (Delivery::Counted, None, JobResult::Done),
                Sent::Rejected(reason) => (Delivery::Failed, Some(reason), JobResult::Done),
                Sent::RetryLater(reason) if last_attempt => (
                    Delivery::Failed,
                    Some(reason.clone()),
                    JobResult::Dead(reason),
                ),
                Sent::RetryLater(reason) => (
                    Delivery::Retrying,
                    Some(reason.clone()),
                    JobResult::retry(reason),
                ),
            }
        }
    };
    tracing::info!(
        job_id = %job.id,
        alert_id = %payload.alert_id,
        outcome = status.name(),
        "alert email attempt"
    );
    match super::worker::settle_outcome(app, payload.ref_id, status, detail).await {
        Ok(()) => result,
        Err(reason) => JobResult::retry(reason),
    }
}
