//! The escalation jobs: notify the tier an alert has reached, and at each missed deadline climb
//! a tier. Each job's effects and its completion commit in one transaction, so a worker that dies
//! midway leaves the job to be run again whole, and a notification is never sent twice for the
//! same step (dedupe keys per alert, round and step). A tier counts as told only when a push was
//! queued to an active device of someone in it (or to the clinic's webhook); when nobody at all
//! can be reached, the alert is marked unreachable, counted, logged by id, and the organisation's
//! admins are told.

use companion_schema::schema::{accounts, alerts};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::db::DbConnection;
use crate::jobs::Job;
use crate::jobs::runner::JobResult;
use crate::jobs::store::{self as job_store, Claimed};
use crate::push::content::PushMessage;
use crate::push::store::{self as push_store, DeviceRow};
use crate::time::utc;

use super::decide::{self, TierReach};
use super::policy::EscalationPolicy;
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

#[async_trait::async_trait]
impl Job for NotifyTier {
    const KIND: &'static str = super::store::kinds::NOTIFY;
    type Payload = Payload;

    async fn run(&self, app: &App, job: &Claimed, worker: &str, payload: Payload) -> JobResult {
        notify(app, job, worker, payload).await
    }
}

/// The `alert.deadline` job.
#[derive(Debug, Clone, Copy)]
pub struct Deadline;

#[async_trait::async_trait]
impl Job for Deadline {
    const KIND: &'static str = super::store::kinds::DEADLINE;
    type Payload = Payload;

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

async fn in_transaction(
    app: &App,
    job: &Claimed,
    worker: &str,
    payload: Payload,
    step: impl FnOnce(&mut DbConnection, &Payload, chrono::NaiveDateTime) -> QueryResult<Outcome>
    + Send
    + 'static,
) -> JobResult {
    let (job_id, worker, now) = (job.id.clone(), worker.to_owned(), app.now().naive_utc());
    let result = app
        .db
        .write(move |conn| {
            let outcome = step(conn, &payload, now)?;
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
            match outcome {
                Outcome::Escalated(tier) => app.metrics.escalated(tier),
                Outcome::Unreachable(severity) => app.metrics.unreachable(&severity),
                Outcome::Done | Outcome::Missing => {}
            }
            app.jobs_enqueued();
            JobResult::Completed
        }
        Err(e) => JobResult::retry(format!("database: {e}")),
    }
}

/// One tier as read: its members, their active devices, and whether it can be told.
type Tier = (Vec<Member>, Vec<DeviceRow>, TierReach);

/// Who is in each tier, and their active devices, read only as far as needed: the notification
/// reads from the targeted tier on until one can be told, the readiness check reads them all.
struct Tiers<'a> {
    clinic_id: &'a str,
    policy: &'a EscalationPolicy,
    webhook: bool,
    loaded: Vec<Option<Tier>>,
}

impl<'a> Tiers<'a> {
    fn new(clinic_id: &'a str, policy: &'a EscalationPolicy, webhook: bool) -> Self {
        Self {
            clinic_id,
            policy,
            webhook,
            loaded: vec![None; policy.tiers.len()],
        }
    }

    fn load(&mut self, conn: &mut DbConnection, index: usize) -> QueryResult<&Tier> {
        if let Some(tier) = self.loaded[index].take() {
            return Ok(self.loaded[index].insert(tier));
        }
        let members = store::audience(conn, self.clinic_id, self.policy.tiers[index].audience)?;
        let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
        let devices = push_store::active_devices_of(conn, &ids)?;
        let with_device = members
            .iter()
            .filter(|m| devices.iter().any(|d| d.account_id == m.id))
            .count();
        let reach = TierReach {
            staff: members.len(),
            with_device,
            webhook: self.webhook,
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
        "nobody in it has an active device"
    }
}

/// Tells the organisation's admins, once per alert, that an alert reached nobody.
fn tell_org_admins(
    conn: &mut DbConnection,
    alert: &AlertRow,
    now: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    let admins: Vec<String> = accounts::table
        .filter(accounts::role.eq("org_admin"))
        .filter(accounts::disabled_at.is_null())
        .select(accounts::id)
        .load(conn)?;
    let devices = push_store::active_devices_of(conn, &admins)?;
    for device in &devices {
        push_store::notify_device(
            conn,
            device,
            |_| PushMessage::UnreachableAlert {
                care_team_id: alert.clinic_id.clone(),
            },
            now,
        )?;
    }
    Ok(devices.len())
}

fn notify_step(
    conn: &mut DbConnection,
    payload: &Payload,
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
    let policy = store::clinic_policy(conn, &alert.clinic_id)?;
    let endpoints = super::webhooks::active_endpoints(conn, &alert.clinic_id)?;
    let mut tiers = Tiers::new(&alert.clinic_id, &policy, !endpoints.is_empty());
    let target = (alert.tier.max(0) as usize).min(policy.last_tier());
    let severity = store::parse_severity(&alert.severity);
    let event = match (payload.step.round, payload.step.escalation) {
        (0, 0) => "alert.opened",
        (_, 0) => "alert.reopened",
        _ => "alert.escalated",
    };
    let hooks =
        super::webhooks::enqueue_for_alert(conn, &endpoints, &alert.id, event, payload.step, now)?;
    let Some(reached) = tiers.choose(conn, target)? else {
        let summary = tiers
            .reach(conn)?
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "tier {i}: {} staff, {} with a device",
                    r.staff, r.with_device
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        if alert.unreachable_at.is_some() {
            store::event(conn, &alert.id, "still_unreachable", None, &summary, now)?;
            return Ok(Outcome::Done);
        }
        diesel::update(alerts::table.find(&alert.id))
            .set(alerts::unreachable_at.eq(now))
            .execute(conn)?;
        let told = tell_org_admins(conn, &alert, now)?;
        store::event(
            conn,
            &alert.id,
            "unreachable",
            None,
            &format!(
                "nobody in any tier can be told ({summary}); organisation admins' devices told: {told}"
            ),
            now,
        )?;
        tracing::error!(
            alert_id = %alert.id,
            clinic_id = %alert.clinic_id,
            severity = %alert.severity,
            "alert unreachable: nobody in any escalation tier has an active device or webhook"
        );
        return Ok(Outcome::Unreachable(alert.severity.clone()));
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
    if reached != target || alert.unreachable_at.is_some() {
        diesel::update(alerts::table.find(&alert.id))
            .set((
                alerts::tier.eq(reached as i32),
                alerts::unreachable_at.eq(None::<chrono::NaiveDateTime>),
            ))
            .execute(conn)?;
    }
    let mut sent = 0;
    let mut deferred = 0;
    let now_utc = utc(now);
    let (members, devices, _) = tiers.load(conn, reached)?.clone();
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
        let at = decide::push_at(severity, member.on_call, now_utc, || {
            hours.next_open(tz, now_utc)
        });
        for device in devices.iter().filter(|d| d.account_id == member.id) {
            push_store::notify_device_at(
                conn,
                device,
                |_| PushMessage::ClinicianAlert {
                    alert_id: alert.id.clone(),
                    urgent: severity == Severity::Urgent,
                },
                now,
                at.naive_utc(),
            )?;
            sent += 1;
            if at > now_utc {
                deferred += 1;
            }
        }
    }
    store::event(
        conn,
        &alert.id,
        "notified",
        None,
        &format!(
            "tier {reached}: {} staff, {sent} devices ({deferred} held for working hours), {hooks} webhooks",
            members.len()
        ),
        now,
    )?;
    Ok(Outcome::Done)
}

/// `alert.notify`: push to the active devices of the tier the alert has reached (the next
/// reachable one when nobody there can be told).
pub async fn notify(app: &App, job: &Claimed, worker: &str, payload: Payload) -> JobResult {
    in_transaction(app, job, worker, payload, notify_step).await
}

/// `alert.deadline`: if the alert is still open in this round and step, escalate it.
pub async fn deadline(app: &App, job: &Claimed, worker: &str, payload: Payload) -> JobResult {
    in_transaction(app, job, worker, payload, move |conn, payload, now| {
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

/// The members of each tier, each with whether they have an active device.
pub type TierMembers = Vec<Vec<(Member, bool)>>;

/// Who can be told in each tier of `clinic_id`'s policy (and whether it has a webhook), for the
/// readiness check.
pub fn reach_of(
    conn: &mut DbConnection,
    clinic_id: &str,
) -> QueryResult<(EscalationPolicy, TierMembers, bool)> {
    let policy = store::clinic_policy(conn, clinic_id)?;
    let webhook = !super::webhooks::active_endpoints(conn, clinic_id)?.is_empty();
    let mut tiers = Tiers::new(clinic_id, &policy, webhook);
    let mut members = Vec::new();
    for index in 0..policy.tiers.len() {
        let (people, devices, _) = tiers.load(conn, index)?;
        members.push(
            people
                .iter()
                .map(|m| (m.clone(), devices.iter().any(|d| d.account_id == m.id)))
                .collect(),
        );
    }
    Ok((policy, members, webhook))
}
