//! The escalation jobs: notify the tier an alert has reached, and at each missed deadline climb
//! a tier. Each job's effects and its completion commit in one transaction, so a worker that dies
//! midway leaves the job to be run again whole, and a notification is never sent twice for the
//! same step (dedupe keys per alert, round and step). A tier is tried only when someone in it can
//! be told by a working channel (an active device on a configured push service, the clinic's
//! webhook, or email); whether it was reached is decided by the outcomes (`reach.rs`). When
//! nobody at all can be tried, the alert is marked unreachable, counted, logged by id, and the
//! organisation's admins are told.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::db::DbConnection;
use crate::jobs::runner::JobResult;
use crate::jobs::store::{self as job_store, Claimed};
use crate::jobs::{Job, JobKind};
use crate::push::content::PushMessage;
use crate::push::deliver::AlertPushOutcome;
use crate::push::{self as push_store, DeviceRow};
use crate::time::utc;

use super::decide::{self, Channels, Delivery, TierReach};
use super::policy::{Audience as PolicyAudience, EscalationPolicy};
use super::reach::{self, Audience, Channel, Judged, NewDelivery};
use super::rules::Severity;
use super::store::{self, AlertRow, Member, Step};
use super::working_hours::WorkingHours;

/// The payload of both escalation jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payload {
    /// The alert.
    pub alert_id: String,
    /// Its round and escalation step.
    #[serde(flatten)]
    pub step: Step,
}

/// The `alert.notify` job.
#[derive(Debug, Clone, Copy)]
pub struct NotifyTier;

impl JobKind for NotifyTier {
    const KIND: &'static str = super::store::kinds::NOTIFY;
    type Payload = Payload;
}

#[async_trait::async_trait]
impl Job<App> for NotifyTier {
    async fn run(&self, app: &App, job: &Claimed, worker: &str, payload: Payload) -> JobResult {
        notify(app, job, worker, payload).await
    }
}

/// The `alert.deadline` job.
#[derive(Debug, Clone, Copy)]
pub struct Deadline;

impl JobKind for Deadline {
    const KIND: &'static str = super::store::kinds::DEADLINE;
    type Payload = Payload;
}

#[async_trait::async_trait]
impl Job<App> for Deadline {
    async fn run(&self, app: &App, job: &Claimed, worker: &str, payload: Payload) -> JobResult {
        deadline(app, job, worker, payload).await
    }
}

/// What a job did, for the metrics recorded after its commit.
enum Outcome {
    Done,
    Missing,
    Escalated(i32),
    Unreachable(String),
}

impl From<Judged> for Outcome {
    fn from(judged: Judged) -> Self {
        match judged {
            Judged::Nothing | Judged::Reached => Outcome::Done,
            Judged::Escalated(tier) => Outcome::Escalated(tier),
            Judged::Unreachable(severity) => Outcome::Unreachable(severity),
        }
    }
}

fn record_metrics(app: &App, outcome: &Outcome) {
    match outcome {
        Outcome::Escalated(tier) => app.metrics.escalated(*tier),
        Outcome::Unreachable(severity) => app.metrics.unreachable(severity),
        Outcome::Done | Outcome::Missing => {}
    }
}

async fn in_transaction(
    app: &App,
    job: &Claimed,
    worker: &str,
    payload: Payload,
    step: impl FnOnce(
        &mut DbConnection,
        &Payload,
        Channels,
        chrono::NaiveDateTime,
    ) -> QueryResult<Outcome>
    + Send
    + 'static,
) -> JobResult {
    let (job_id, worker, now) = (job.id.clone(), worker.to_owned(), app.now().naive_utc());
    let channels = app.channels();
    let result = app
        .db
        .write(move |conn| {
            let outcome = step(conn, &payload, channels, now)?;
            job_store::complete(conn, &job_id, &worker, now)?;
            Ok(outcome)
        })
        .await;
    match result {
        Ok(Outcome::Missing) => {
            // The alert went with an erased patient (or a retention purge): nothing to do.
            tracing::info!(job_id = %job.id, "alert no longer exists; job stands down");
            JobResult::Completed
        }
        Ok(outcome) => {
            record_metrics(app, &outcome);
            app.jobs_enqueued();
            JobResult::Completed
        }
        Err(e) => JobResult::retry(format!("database: {e}")),
    }
}

/// Writes the outcome of one delivery (`ref_id`) and judges its step, in one transaction; wakes
/// the worker for whatever that enqueued. For the push, webhook and email jobs.
pub async fn settle_outcome(
    app: &App,
    ref_id: String,
    status: Delivery,
    detail: Option<String>,
) -> Result<(), String> {
    let now = app.now();
    let channels = app.channels();
    let judged = app
        .db
        .write(move |conn| {
            let Some(settled) = reach::settle(conn, &ref_id, status, detail.as_deref(), now)?
            else {
                return Ok(Judged::Nothing);
            };
            if !settled.tier {
                return Ok(Judged::Nothing);
            }
            reach::judge(conn, &settled.alert_id, settled.step, channels, now)
        })
        .await
        .map_err(|e| format!("database: {e}"))?;
    let outcome = Outcome::from(judged);
    record_metrics(app, &outcome);
    if !matches!(outcome, Outcome::Done) {
        app.jobs_enqueued();
    }
    Ok(())
}

/// One tier as read: its members, their active devices that can be pushed, and whether it can
/// be tried.
type Tier = (Vec<Member>, Vec<DeviceRow>, TierReach);

/// Who is in each tier, and their active devices, read only as far as needed: the notification
/// reads from the targeted tier on until one can be told, the readiness check reads them all.
struct Tiers<'a> {
    clinic_id: &'a str,
    policy: &'a EscalationPolicy,
    webhook: bool,
    channels: Channels,
    loaded: Vec<Option<Tier>>,
}

impl<'a> Tiers<'a> {
    fn new(
        clinic_id: &'a str,
        policy: &'a EscalationPolicy,
        webhook: bool,
        channels: Channels,
    ) -> Self {
        Self {
            clinic_id,
            policy,
            webhook,
            channels,
            loaded: vec![None; policy.tiers.len()],
        }
    }

    fn load(&mut self, conn: &mut DbConnection, index: usize) -> QueryResult<&Tier> {
        if let Some(tier) = self.loaded[index].take() {
            return Ok(self.loaded[index].insert(tier));
        }
        let members = store::audience(conn, self.clinic_id, self.policy.tiers[index].audience)?;
        let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
        // A device on a push service without credentials is no way to reach anyone.
        let devices: Vec<DeviceRow> = push_store::active_devices_of(conn, &ids)?
            .into_iter()
            .filter(|d| self.channels.pushes(&d.platform))
            .collect();
        let with_device = members
            .iter()
            .filter(|m| devices.iter().any(|d| d.account_id == m.id))
            .count();
        let reach = TierReach {
            staff: members.len(),
            with_device,
            webhook: self.webhook,
            email: self.channels.email,
        };
        Ok(self.loaded[index].insert((members, devices, reach)))
    }

    /// The tier to tell when the policy targets `target` (see [`decide::choose_tier`]), reading
    /// tiers in the order the choice needs them.
    fn choose(&mut self, conn: &mut DbConnection, target: usize) -> QueryResult<Option<usize>> {
        let order: Vec<usize> = (target..self.loaded.len())
            .chain((0..target).rev())
            .collect();
        for index in order {
            if self.load(conn, index)?.2.reachable() {
                // Confirm with the pure rule over what has been read (unread tiers count as
                // unreachable, and every tier the rule prefers has been read).
                let reach: Vec<TierReach> = self
                    .loaded
                    .iter()
                    .map(|t| t.as_ref().map(|t| t.2).unwrap_or_default())
                    .collect();
                return Ok(decide::choose_tier(&reach, target));
            }
        }
        Ok(None)
    }

    fn reach(&mut self, conn: &mut DbConnection) -> QueryResult<Vec<TierReach>> {
        (0..self.loaded.len())
            .map(|i| self.load(conn, i).map(|t| t.2))
            .collect()
    }
}

fn skipped_reason(reach: &TierReach) -> &'static str {
    if reach.staff == 0 {
        "nobody in it"
    } else {
        "nobody in it has an active device on a configured push service, and there is no webhook or email"
    }
}

/// The first tier above `alert`'s current one that can be tried now, if any (a tier that reached
/// nobody moves the alert there at once).
pub fn reachable_above(
    conn: &mut DbConnection,
    alert: &AlertRow,
    policy: &EscalationPolicy,
    channels: Channels,
) -> QueryResult<Option<i32>> {
    let webhook = !super::webhooks::active_endpoints(conn, &alert.clinic_id)?.is_empty();
    let mut tiers = Tiers::new(&alert.clinic_id, policy, webhook, channels);
    let from = alert.tier.max(0) as usize + 1;
    for index in from..policy.tiers.len() {
        if tiers.load(conn, index)?.2.reachable() {
            return Ok(Some(index as i32));
        }
    }
    Ok(None)
}

fn notify_step(
    conn: &mut DbConnection,
    payload: &Payload,
    channels: Channels,
    now: chrono::NaiveDateTime,
) -> QueryResult<Outcome> {
    let Some(alert) = store::find(conn, &payload.alert_id)? else {
        return Ok(Outcome::Missing);
    };
    // A step of an earlier round, or one the alert has moved past, stands down.
    if alert.status != "open"
        || alert.round != payload.step.round
        || alert.escalations != payload.step.escalation
    {
        return Ok(Outcome::Done);
    }
    let step = payload.step;
    let policy = store::clinic_policy(conn, &alert.clinic_id)?;
    let endpoints = super::webhooks::active_endpoints(conn, &alert.clinic_id)?;
    let severity = store::parse_severity(&alert.severity);
    // Email is a channel for urgent and high alerts only.
    let tried = Channels {
        email: channels.email && severity >= Severity::High,
        ..channels
    };
    let mut tiers = Tiers::new(&alert.clinic_id, &policy, !endpoints.is_empty(), tried);
    let target = (alert.tier.max(0) as usize).min(policy.last_tier());
    let Some(reached) = tiers.choose(conn, target)? else {
        let summary = tiers
            .reach(conn)?
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "tier {i}: {} staff, {} with a device that can be pushed",
                    r.staff, r.with_device
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let summary = format!(
            "{summary}; {} webhooks; email {}",
            endpoints.len(),
            if channels.email {
                "configured"
            } else {
                "not configured"
            }
        );
        return reach::mark_unreachable(conn, &alert, channels, &summary, utc(now))
            .map(Outcome::from);
    };
    for skipped in (target..reached).chain(reached + 1..=target) {
        let reach = tiers.load(conn, skipped)?.2;
        store::event(
            conn,
            &alert.id,
            "tier_skipped",
            None,
            &format!("tier {skipped}: {}", skipped_reason(&reach)),
            now,
        )?;
    }
    if reached != target {
        store::set_tier(conn, &alert.id, reached as i32)?;
    }
    let audience = Audience::Tier(reached as i32);
    let event = match (step.round, step.escalation) {
        (0, 0) => "alert.opened",
        (_, 0) => "alert.reopened",
        _ => "alert.escalated",
    };
    // In order: push to the tier's devices, the clinic's webhooks, then (urgent and high) email.
    let (members, devices, _) = tiers.load(conn, reached)?.clone();
    let mut sent = 0;
    let mut held = 0;
    let now_utc = utc(now);
    for member in &members {
        let hours: WorkingHours = member
            .working_hours
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        let tz = member
            .timezone
            .parse::<chrono_tz::Tz>()
            .unwrap_or(chrono_tz::UTC);
        let at = decide::push_at(severity, now_utc, || hours.next_open(tz, now_utc));
        let hold = at > now_utc;
        // One held push per person per alert, never one per deadline.
        if hold && reach::holds_push_for(conn, &alert.id, step.round, &member.id)? {
            continue;
        }
        for device in devices.iter().filter(|d| d.account_id == member.id) {
            let id = push_store::notify_device_at(
                conn,
                device,
                |_| PushMessage::ClinicianAlert {
                    alert_id: alert.id.clone(),
                    time_sensitive: severity >= Severity::High,
                },
                now,
                at.naive_utc(),
            )?;
            reach::record(
                conn,
                &NewDelivery {
                    alert_id: &alert.id,
                    step,
                    audience,
                    channel: Channel::Push,
                    recipient: &member.id,
                    ref_id: &id,
                    status: if hold {
                        Delivery::Held
                    } else {
                        Delivery::Queued
                    },
                },
                now_utc,
            )?;
            sent += 1;
            if hold {
                held += 1;
            }
        }
    }
    let hooks = super::webhooks::enqueue_for_alert(
        conn, &endpoints, &alert.id, event, step, audience, now_utc,
    )?;
    let mut emails = 0;
    if channels.email && severity >= Severity::High {
        let mut recipients: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
        for admin in store::audience(conn, &alert.clinic_id, PolicyAudience::ClinicAdmins)? {
            recipients.push(admin.id);
        }
        recipients.sort();
        recipients.dedup();
        for recipient in recipients {
            if super::mail::enqueue(
                conn,
                &alert.id,
                step,
                audience,
                &recipient,
                super::mail::Kind::Alert,
                now_utc,
            )? {
                emails += 1;
            }
        }
    }
    store::event(
        conn,
        &alert.id,
        "notified",
        None,
        &format!(
            "tier {reached}: {} staff; {sent} pushes ({held} held for working hours), {hooks} \
             webhooks, {emails} emails queued; reached only once one is accepted",
            members.len()
        ),
        now,
    )?;
    // A step with nothing left to wait for (everything deduplicated) is judged now.
    reach::judge(conn, &alert.id, step, channels, now_utc).map(Outcome::from)
}

/// `alert.notify`: push to the active devices of the tier the alert has reached (the next
/// reachable one when nobody there can be told).
pub async fn notify(app: &App, job: &Claimed, worker: &str, payload: Payload) -> JobResult {
    in_transaction(app, job, worker, payload, notify_step).await
}

/// `alert.deadline`: if the alert is still open in this round and step, escalate it.
pub async fn deadline(app: &App, job: &Claimed, worker: &str, payload: Payload) -> JobResult {
    in_transaction(app, job, worker, payload, move |conn, payload, _, now| {
        let Some(alert) = store::find(conn, &payload.alert_id)? else {
            return Ok(Outcome::Missing);
        };
        if alert.status == "open"
            && let Some(tier) = store::escalate(conn, &alert, payload.step, now)?
        {
            return Ok(Outcome::Escalated(tier));
        }
        Ok(Outcome::Done)
    })
    .await
}

/// What `clinic_id`'s alerts could be delivered through now (who is in each tier with whether
/// they have a device that can be pushed, who has only devices that cannot, its webhooks'
/// health), for the readiness check.
pub fn reach_of(
    conn: &mut DbConnection,
    clinic_id: &str,
    channels: Channels,
) -> QueryResult<(EscalationPolicy, super::readiness::Means)> {
    let policy = store::clinic_policy(conn, clinic_id)?;
    let webhooks = super::webhooks::health_of(conn, clinic_id)?;
    let mut tiers = Tiers::new(clinic_id, &policy, !webhooks.is_empty(), channels);
    let mut members = Vec::new();
    let mut everyone = Vec::new();
    for index in 0..policy.tiers.len() {
        let (people, devices, _) = tiers.load(conn, index)?;
        everyone.extend(people.iter().map(|m| m.id.clone()));
        members.push(
            people
                .iter()
                .map(|m| (m.clone(), devices.iter().any(|d| d.account_id == m.id)))
                .collect(),
        );
    }
    everyone.sort();
    everyone.dedup();
    let all_devices = push_store::active_devices_of(conn, &everyone)?;
    let unpushable = everyone
        .into_iter()
        .filter(|id| {
            let mut theirs = all_devices
                .iter()
                .filter(|d| &d.account_id == id)
                .peekable();
            theirs.peek().is_some() && !theirs.any(|d| channels.pushes(&d.platform))
        })
        .collect();
    Ok((
        policy,
        super::readiness::Means {
            tiers: members,
            unpushable,
            webhooks,
            channels,
        },
    ))
}

/// The `alert.push_outcome` job: what became of a push about an alert, judged for reachability.
#[derive(Debug, Clone, Copy)]
pub struct PushOutcome;

impl JobKind for PushOutcome {
    const KIND: &'static str = crate::push::kinds::ALERT_PUSH_OUTCOME;
    type Payload = AlertPushOutcome;
}

#[async_trait::async_trait]
impl Job<App> for PushOutcome {
    async fn run(
        &self,
        app: &App,
        _job: &Claimed,
        _worker: &str,
        payload: Self::Payload,
    ) -> JobResult {
        // Only an attempt a real push service accepted counts.
        let status = match (payload.outcome.as_str(), payload.settled) {
            ("delivered", _) => Delivery::Counted,
            ("not_sent", _) => Delivery::NotSent,
            ("retry_later", false) => Delivery::Retrying,
            _ => Delivery::Failed,
        };
        match settle_outcome(app, payload.notification_id, status, payload.detail).await {
            Ok(()) => JobResult::Done,
            Err(reason) => JobResult::retry(reason),
        }
    }
}

/// How long an acknowledged alert may stay unresolved before it returns to open: 24 hours for
/// urgent, 72 for high (CLINICAL.md, part 2); medium and low alerts stay acknowledged.
pub fn ack_lapse(severity: Severity) -> Option<chrono::TimeDelta> {
    match severity {
        Severity::Urgent => Some(chrono::TimeDelta::hours(24)),
        Severity::High => Some(chrono::TimeDelta::hours(72)),
        Severity::Medium | Severity::Low => None,
    }
}

/// The `alert.ack_lapse` payload: the acknowledgement it watches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AckLapsePayload {
    /// The alert.
    pub alert_id: String,
    /// The round acknowledged.
    pub round: i32,
    /// When it was acknowledged (a later acknowledgement has its own job).
    pub acknowledged_at: chrono::NaiveDateTime,
}

/// Schedules the return to open of an alert just acknowledged at `now`, if its severity has one.
pub fn schedule_ack_lapse(
    conn: &mut DbConnection,
    alert: &AlertRow,
    now: chrono::DateTime<chrono::Utc>,
) -> QueryResult<()> {
    let now = now.naive_utc();
    let Some(lapse) = ack_lapse(store::parse_severity(&alert.severity)) else {
        return Ok(());
    };
    let payload = AckLapsePayload {
        alert_id: alert.id.clone(),
        round: alert.round,
        acknowledged_at: now,
    };
    let mut job = crate::jobs::new_job::<AckLapse>(
        &payload,
        Some(format!(
            "{}:{}:r{}:{}",
            store::kinds::ACK_LAPSE,
            alert.id,
            alert.round,
            now.and_utc().timestamp_micros()
        )),
        now + lapse,
        50,
    );
    job.priority = crate::jobs::store::Priority::Safety;
    crate::jobs::enqueue(conn, &job, now).map(drop)
}

/// The `alert.ack_lapse` job: an urgent alert acknowledged 24 hours ago (high: 72) and not
/// resolved returns to open, its first tier told again. Acknowledged is not resolved.
#[derive(Debug, Clone, Copy)]
pub struct AckLapse;

impl JobKind for AckLapse {
    const KIND: &'static str = store::kinds::ACK_LAPSE;
    type Payload = AckLapsePayload;
}

#[async_trait::async_trait]
impl Job<App> for AckLapse {
    async fn run(
        &self,
        app: &App,
        job: &Claimed,
        worker: &str,
        payload: Self::Payload,
    ) -> JobResult {
        let (job_id, worker, now) = (job.id.clone(), worker.to_owned(), app.now().naive_utc());
        let result = app
            .db
            .write(move |conn| {
                let reopened = store::reopen_after_lapse(
                    conn,
                    &payload.alert_id,
                    payload.round,
                    payload.acknowledged_at,
                    now,
                )?;
                job_store::complete(conn, &job_id, &worker, now)?;
                Ok(reopened)
            })
            .await;
        match result {
            Ok(reopened) => {
                if reopened {
                    app.jobs_enqueued();
                }
                JobResult::Completed
            }
            Err(e) => JobResult::retry(format!("database: {e}")),
        }
    }
}
