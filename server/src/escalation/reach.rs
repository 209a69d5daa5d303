//! Reachability from outcomes (CLINICAL.md, part 2: "Notified means a person's device was asked to
//! ring now"). Every delivery of an alert (a push to one device, a webhook to one endpoint, an
//! email to one person) has a row saying what actually happened to it. Each outcome is written as
//! it arrives and the step it belongs to is judged again, in the same transaction:
//! - something counted: the alert is `reached` (and no longer unreachable);
//! - every delivery of an urgent or high alert's step has had its first outcome and none counted:
//!   the tier reached nobody now, so the next tier that can be tried is told at once instead of
//!   waiting out the delay, and when none is left the alert is marked unreachable and the last
//!   resort (the organisation's admins, every channel) is told.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::QueryResult;

use crate::db::DbConnection;
use crate::push::content::PushMessage;
use crate::time::utc;

use super::decide::{self, Channels, Delivery, StepVerdict};
use super::rules::Severity;
use super::store::{self, AlertRow, Step};

/// Who a delivery was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A tier of the escalation policy.
    Tier(i32),
    /// The organisation's admins, told when nobody in the care team could be reached.
    LastResort,
    /// The person an alert was assigned to.
    Assignee,
}

impl Audience {
    fn columns(self) -> (i32, &'static str) {
        match self {
            Audience::Tier(tier) => (tier, "tier"),
            Audience::LastResort => (-1, "last_resort"),
            Audience::Assignee => (-1, "assignee"),
        }
    }
}

/// The channel of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// A push to one device.
    Push,
    /// A POST to one of the clinic's webhook endpoints.
    Webhook,
    /// An email to one person.
    Email,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Push => "push",
            Channel::Webhook => "webhook",
            Channel::Email => "email",
        }
    }
}

/// A delivery about to be made.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    /// The alert.
    pub alert_id: &'a str,
    /// The alert's round and escalation step.
    pub step: Step,
    /// Who it is for.
    pub audience: Audience,
    /// How.
    pub channel: Channel,
    /// The account (push, email) or endpoint (webhook).
    pub recipient: &'a str,
    /// The notification id (push) or the delivery job's dedupe key (webhook, email).
    pub ref_id: &'a str,
    /// `Queued` or `Held`.
    pub status: Delivery,
}

/// Records a delivery; false (and nothing written) when one with its `ref_id` exists.
pub fn record(
    conn: &mut DbConnection,
    delivery: &NewDelivery<'_>,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let now = now.naive_utc();
    if exists(conn, delivery.ref_id)? {
        return Ok(false);
    }
    let (tier, audience) = delivery.audience.columns();
    store::insert_delivery(
        conn,
        &store::NewDeliveryRow {
            alert_id: delivery.alert_id,
            step: delivery.step,
            tier,
            audience,
            channel: delivery.channel.name(),
            recipient: delivery.recipient,
            ref_id: delivery.ref_id,
            status: delivery.status.name(),
        },
        now,
    )?;
    Ok(true)
}

/// Whether a delivery with this reference was recorded.
pub fn exists(conn: &mut DbConnection, ref_id: &str) -> QueryResult<bool> {
    store::delivery_exists(conn, ref_id)
}

/// Whether `recipient` already has a push about `alert_id` held for their working hours in
/// `round`: one held push per person per alert, never one per deadline.
pub fn holds_push_for(
    conn: &mut DbConnection,
    alert_id: &str,
    round: i32,
    recipient: &str,
) -> QueryResult<bool> {
    store::holds_push_for(conn, alert_id, round, recipient)
}

/// A step's key, as a settled delivery names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The alert.
    pub alert_id: String,
    /// Its round and step.
    pub step: Step,
    /// Whether the delivery was to a tier (only those decide a step).
    pub tier: bool,
}

/// Writes the outcome of the delivery `ref_id`; none when no such delivery was recorded.
pub fn settle(
    conn: &mut DbConnection,
    ref_id: &str,
    status: Delivery,
    detail: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<Option<Settled>> {
    let now = now.naive_utc();
    let found = store::find_delivery(conn, ref_id)?;
    let Some((alert_id, round, escalation, audience, current)) = found else {
        return Ok(None);
    };
    // Outcomes of one step arriving side by side are judged one after the other, each seeing the
    // ones before it: otherwise the last two could each see the other still queued.
    store::lock_alert(conn, &alert_id)?;
    // A counted delivery stays counted (a late duplicate answer changes nothing).
    if current != Delivery::Counted.name() {
        let detail: Option<String> = detail.map(|d| d.chars().take(300).collect());
        store::set_delivery_outcome(conn, ref_id, status.name(), detail, now)?;
    }
    Ok(Some(Settled {
        alert_id,
        step: Step { round, escalation },
        tier: audience == "tier",
    }))
}

/// What judging a step did, for the metrics recorded after the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// Nothing changed.
    Nothing,
    /// The alert was reached (first time this round).
    Reached,
    /// The tier reached nobody and the next one was told at once.
    Escalated(i32),
    /// Nobody could be reached: unreachable, the last resort told.
    Unreachable(String),
}

/// One delivery of a step, as judged.
type DeliveryRow = (String, String, String);

/// Judges the step `step` of `alert_id` from its tier deliveries' outcomes and acts on the
/// verdict (see the module documentation). `channels` says what this installation can reach
/// people with; `public_url` builds the links of last-resort emails.
pub fn judge(
    conn: &mut DbConnection,
    alert_id: &str,
    step: Step,
    channels: Channels,
    now: DateTime<Utc>,
) -> QueryResult<Judged> {
    let now = now.naive_utc();
    store::lock_alert(conn, alert_id)?;
    let Some(alert) = store::find(conn, alert_id)? else {
        return Ok(Judged::Nothing);
    };
    if alert.round != step.round {
        return Ok(Judged::Nothing);
    }
    let rows: Vec<DeliveryRow> = store::tier_deliveries(conn, alert_id, step)?;
    let states: Vec<Delivery> = rows
        .iter()
        .filter_map(|(_, status, _)| Delivery::parse(status))
        .collect();
    match decide::step_verdict(&states) {
        StepVerdict::Waiting => Ok(Judged::Nothing),
        StepVerdict::Reached => {
            let changed = store::mark_reached(conn, alert_id, step.round, now)?;
            if changed == 0 {
                return Ok(Judged::Nothing);
            }
            let via: Vec<&str> = rows
                .iter()
                .filter(|(_, status, _)| status == Delivery::Counted.name())
                .map(|(channel, _, _)| channel.as_str())
                .collect();
            store::event(
                conn,
                alert_id,
                "reached",
                None,
                &format!("tier {}: accepted by {}", alert.tier, summary_of(&via)),
                now,
            )?;
            Ok(Judged::Reached)
        }
        StepVerdict::ReachedNobody => {
            let severity = store::parse_severity(&alert.severity);
            // Only an urgent or high alert still waiting on this very step moves on at once;
            // medium and low ones wait for their deadlines.
            if severity < Severity::High
                || alert.status != "open"
                || alert.escalations != step.escalation
            {
                return Ok(Judged::Nothing);
            }
            let outcomes = outcome_summary(&rows);
            store::event(
                conn,
                alert_id,
                "tier_reached_nobody",
                None,
                &format!("tier {}: {outcomes}", alert.tier),
                now,
            )?;
            let policy = store::clinic_policy(conn, &alert.clinic_id)?;
            match super::worker::reachable_above(conn, &alert, &policy, channels)? {
                Some(tier) => {
                    match store::escalate_to(conn, &alert, step, tier, "tier reached nobody", now)?
                    {
                        Some(tier) => Ok(Judged::Escalated(tier)),
                        None => Ok(Judged::Nothing),
                    }
                }
                None => mark_unreachable(conn, &alert, channels, &outcomes, utc(now)),
            }
        }
    }
}

fn summary_of(channels: &[&str]) -> String {
    let mut names: Vec<&str> = channels.to_vec();
    names.sort_unstable();
    names.dedup();
    names.join(", ")
}

/// "2 push failed, 1 webhook retrying": what a step's deliveries came to, without recipients.
fn outcome_summary(rows: &[DeliveryRow]) -> String {
    let mut counts: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for (channel, status, _) in rows {
        *counts.entry((channel.clone(), status.clone())).or_default() += 1;
    }
    if counts.is_empty() {
        return "nothing could be sent".to_owned();
    }
    counts
        .into_iter()
        .map(|((channel, status), n)| format!("{n} {channel} {}", status.replace('_', " ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Marks `alert` unreachable (since now, if it was not) and tells the last resort once per round.
/// An alert that reached someone earlier in this round stays reached (someone has it and has not
/// acknowledged it yet); the last resort is still told that nobody further could be reached.
pub fn mark_unreachable(
    conn: &mut DbConnection,
    alert: &AlertRow,
    channels: Channels,
    why: &str,
    now: DateTime<Utc>,
) -> QueryResult<Judged> {
    let now = now.naive_utc();
    if alert.reached_at.is_some() {
        let told = tell_last_resort(conn, alert, channels, now)?;
        store::event(
            conn,
            &alert.id,
            "nobody_further_reachable",
            None,
            &format!(
                "reached earlier but not acknowledged, and nobody further could be reached \
                 ({why}); organisation admins told: {told}"
            ),
            now,
        )?;
        return Ok(Judged::Nothing);
    }
    if alert.unreachable_at.is_some() {
        store::event(conn, &alert.id, "still_unreachable", None, why, now)?;
        return Ok(Judged::Nothing);
    }
    store::set_unreachable(conn, &alert.id, now)?;
    let told = tell_last_resort(conn, alert, channels, now)?;
    store::event(
        conn,
        &alert.id,
        "unreachable",
        None,
        &format!(
            "nobody in the care team could be reached ({why}); organisation admins told: {told}"
        ),
        now,
    )?;
    tracing::error!(
        alert_id = %alert.id,
        clinic_id = %alert.clinic_id,
        severity = %alert.severity,
        "alert unreachable: nobody in any escalation tier could be reached"
    );
    Ok(Judged::Unreachable(alert.severity.clone()))
}

/// Tells the organisation's admins, on every channel, that an alert reached nobody: once per
/// alert round. Returns what was queued ("2 devices, 1 email").
fn tell_last_resort(
    conn: &mut DbConnection,
    alert: &AlertRow,
    channels: Channels,
    now: NaiveDateTime,
) -> QueryResult<String> {
    let told_before = store::last_resort_told(conn, &alert.id, alert.round)?;
    if told_before {
        return Ok("already told this round".to_owned());
    }
    let admins = crate::account::enabled_org_admins(conn)?;
    let step = Step {
        round: alert.round,
        escalation: alert.escalations,
    };
    let mut devices = 0;
    for device in crate::push::active_devices_of(conn, &admins)? {
        if !channels.pushes(&device.platform) {
            continue;
        }
        let id = crate::push::notify_device(
            conn,
            &device,
            |_| PushMessage::UnreachableAlert {
                care_team_id: alert.clinic_id.clone(),
            },
            now,
        )?;
        record(
            conn,
            &NewDelivery {
                alert_id: &alert.id,
                step,
                audience: Audience::LastResort,
                channel: Channel::Push,
                recipient: &device.account_id,
                ref_id: &id,
                status: Delivery::Queued,
            },
            utc(now),
        )?;
        devices += 1;
    }
    let mut emails = 0;
    if channels.email {
        for admin in &admins {
            if super::mail::enqueue(
                conn,
                &alert.id,
                step,
                Audience::LastResort,
                admin,
                super::mail::Kind::Unreachable,
                utc(now),
            )? {
                emails += 1;
            }
        }
    }
    Ok(format!("{devices} devices, {emails} emails"))
}

/// The care team's standing for the alert a patient's signal sits on.
pub fn care_team_of(
    conn: &mut DbConnection,
    alert_id: &str,
) -> QueryResult<Option<decide::CareTeam>> {
    let found = store::reach_state(conn, alert_id)?;
    Ok(found.map(|(status, reached, unreachable)| {
        decide::care_team(&status, reached.is_some(), unreachable.is_some())
    }))
}
