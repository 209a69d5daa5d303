//! The safety path's decisions, pure (CLINICAL.md, "Safety path guarantees", parts 1 and 2): what
//! a new signal does to the patient's alert for its rule, which tier is told when some cannot be
//! reached, when each member of staff is pushed, what the outcomes of a step's deliveries mean,
//! and what the patient is told. The store and the jobs carry them out.

use chrono::{DateTime, TimeDelta, Utc};

use super::rules::{Rule, Severity};

/// What a new signal does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSignal {
    /// No unresolved alert for the rule: open one.
    Open,
    /// Fold into the open alert (one open alert per patient and rule).
    Fold,
    /// Fold into the acknowledged alert, marking it "new signal since acknowledgement" and moving
    /// it up the inbox (medium and low signals).
    FoldSinceAck,
    /// Re-open the acknowledged alert: open again, a fresh deadline, the first tier told again
    /// (urgent and high signals). Acknowledged is not resolved.
    Reopen,
    /// Record on the resolved alert without opening another (a severe PHQ-9 that has not risen
    /// by 3 within 14 days of a resolve).
    Suppress,
}

/// The patient's latest resolved alert of the same rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// When it was resolved.
    pub at: DateTime<Utc>,
    /// The total its latest signal carried (for the PHQ-9 severe rule).
    pub total: Option<i64>,
}

/// A severe PHQ-9 re-opens after a resolve only on a rise of this much...
pub const SEVERE_RISE: i64 = 3;
/// ... or once this long has passed since the resolve.
pub const SEVERE_QUIET: TimeDelta = TimeDelta::days(14);

/// Decides what a signal of `rule` at `severity` (with `total`, where scored) does, given the
/// status of the patient's unresolved alert for the rule (`open` or `acknowledged`), if any, and
/// their latest resolved one.
pub fn on_signal(
    rule: Rule,
    severity: Severity,
    total: Option<i64>,
    unresolved: Option<&str>,
    last_resolved: Option<Resolved>,
    now: DateTime<Utc>,
) -> OnSignal {
    match unresolved {
        Some("acknowledged") if severity >= Severity::High => OnSignal::Reopen,
        Some("acknowledged") => OnSignal::FoldSinceAck,
        Some(_) => OnSignal::Fold,
        None => match (rule, last_resolved) {
            (Rule::Phq9Severe, Some(resolved))
                if now - resolved.at < SEVERE_QUIET
                    && match (total, resolved.total) {
                        (Some(new), Some(old)) => new < old + SEVERE_RISE,
                        _ => false,
                    } =>
            {
                OnSignal::Suppress
            }
            _ => OnSignal::Open,
        },
    }
}

/// Whether a tier is worth trying: someone is in it, and there is a working way to tell them (an
/// active device on a configured push service, the clinic's webhook, or email). Whether it
/// actually reached anyone is decided by the outcomes ([`step_verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TierReach {
    /// Active staff in the tier.
    pub staff: usize,
    /// Of them, those with an active device on a push service that is configured.
    pub with_device: usize,
    /// Whether the clinic has an active webhook.
    pub webhook: bool,
    /// Whether email can be sent (SMTP configured): every member of staff has an address.
    pub email: bool,
}

impl TierReach {
    /// Whether a notification to this tier could reach anyone.
    pub fn reachable(&self) -> bool {
        self.staff > 0 && (self.with_device > 0 || self.webhook || self.email)
    }
}

/// The ways this installation can reach people at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Channels {
    /// APNs credentials are configured (iOS devices can be pushed).
    pub ios: bool,
    /// FCM credentials are configured (Android devices can be pushed).
    pub android: bool,
    /// A VAPID key is configured (browsers' Web Push subscriptions can be pushed).
    pub web: bool,
    /// An SMTP server is configured.
    pub email: bool,
}

impl Channels {
    /// Whether a device of `platform` can be pushed.
    pub fn pushes(&self, platform: &str) -> bool {
        match platform {
            "ios" => self.ios,
            "android" => self.android,
            "web" => self.web,
            _ => false,
        }
    }
}

/// Where one delivery of an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Waiting to be sent now.
    Queued,
    /// Held for the recipient's working hours (medium and low alerts only).
    Held,
    /// A person's device, a webhook or a mail server took it: it counts.
    Counted,
    /// The first attempt failed and it is being retried: does not count (yet).
    Retrying,
    /// Given up, refused or dead: does not count.
    Failed,
    /// Nothing was sent (no push service configured): does not count.
    NotSent,
}

impl Delivery {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Delivery::Queued => "queued",
            Delivery::Held => "held",
            Delivery::Counted => "counted",
            Delivery::Retrying => "retrying",
            Delivery::Failed => "failed",
            Delivery::NotSent => "not_sent",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "queued" => Delivery::Queued,
            "held" => Delivery::Held,
            "counted" => Delivery::Counted,
            "retrying" => Delivery::Retrying,
            "failed" => Delivery::Failed,
            "not_sent" => Delivery::NotSent,
            _ => return None,
        })
    }
}

/// What the deliveries of one escalation step came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepVerdict {
    /// Something counted: a person was reached.
    Reached,
    /// Deliveries are still on their way (queued, or held for working hours).
    Waiting,
    /// Every delivery has had its first outcome and none counted (or there was none): the tier
    /// reached nobody now.
    ReachedNobody,
}

/// Judges a step from its deliveries' states.
pub fn step_verdict(deliveries: &[Delivery]) -> StepVerdict {
    if deliveries.contains(&Delivery::Counted) {
        StepVerdict::Reached
    } else if deliveries
        .iter()
        .any(|d| matches!(d, Delivery::Queued | Delivery::Held))
    {
        StepVerdict::Waiting
    } else {
        StepVerdict::ReachedNobody
    }
}

/// Where the care team stands for a patient's signal (`safety.care_team`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CareTeam {
    /// Something that counts has happened: a person's device, a webhook answering 2xx or a mail
    /// server took the alert, or someone on the care team acted on it.
    Reached,
    /// Alerting has started and nothing has counted yet.
    Trying,
    /// Nothing can count: no tier has a working channel, or every one failed.
    Unreachable,
}

/// The care team's standing for an alert: `status` (`open`, `acknowledged`, `resolved`), and
/// whether it was reached or found unreachable in its current round.
pub fn care_team(status: &str, reached: bool, unreachable: bool) -> CareTeam {
    if reached || status != "open" {
        CareTeam::Reached
    } else if unreachable {
        CareTeam::Unreachable
    } else {
        CareTeam::Trying
    }
}

/// The tier to tell when the policy says `target`: the first reachable one from `target` on (an
/// empty tier costs no deadline), else the highest reachable one below it (better the tier told
/// before than nobody); none when nobody at all can be reached.
pub fn choose_tier(tiers: &[TierReach], target: usize) -> Option<usize> {
    let target = target.min(tiers.len().saturating_sub(1));
    (target..tiers.len())
        .find(|&i| tiers[i].reachable())
        .or_else(|| (0..target).rev().find(|&i| tiers[i].reachable()))
}

/// When a member of staff is pushed about an alert of `severity`: urgent and high at once,
/// whatever the hour (working hours hold only medium and low alerts); otherwise at `open`, the
/// start of their working hours (now, when they are working).
pub fn push_at(
    severity: Severity,
    now: DateTime<Utc>,
    open: impl FnOnce() -> DateTime<Utc>,
) -> DateTime<Utc> {
    match severity {
        Severity::Urgent | Severity::High => now,
        _ => open().max(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn acknowledged_is_not_resolved_for_urgent_and_high_signals() {
        let now = at("2026-06-01T12:00:00Z");
        let decide =
            |severity, status| on_signal(Rule::SafetyItem9, severity, None, status, None, now);
        assert_eq!(
            decide(Severity::Urgent, Some("acknowledged")),
            OnSignal::Reopen
        );
        assert_eq!(
            decide(Severity::High, Some("acknowledged")),
            OnSignal::Reopen
        );
        assert_eq!(
            decide(Severity::Medium, Some("acknowledged")),
            OnSignal::FoldSinceAck
        );
        assert_eq!(
            decide(Severity::Low, Some("acknowledged")),
            OnSignal::FoldSinceAck
        );
        assert_eq!(decide(Severity::Urgent, Some("open")), OnSignal::Fold);
        assert_eq!(decide(Severity::Urgent, None), OnSignal::Open);
    }

    #[test]
    fn a_severe_phq9_reopens_after_a_resolve_on_a_rise_of_three_or_after_two_weeks() {
        let resolved = Resolved {
            at: at("2026-06-01T12:00:00Z"),
            total: Some(22),
        };
        let decide = |total, now: &str| {
            on_signal(
                Rule::Phq9Severe,
                Severity::High,
                Some(total),
                None,
                Some(resolved),
                at(now),
            )
        };
        assert_eq!(decide(24, "2026-06-05T12:00:00Z"), OnSignal::Suppress);
        assert_eq!(decide(25, "2026-06-05T12:00:00Z"), OnSignal::Open);
        assert_eq!(decide(22, "2026-06-15T11:59:00Z"), OnSignal::Suppress);
        assert_eq!(decide(22, "2026-06-15T12:00:00Z"), OnSignal::Open);
        // Other rules are not held back by a resolve.
        assert_eq!(
            on_signal(
                Rule::SafetyItem9,
                Severity::Urgent,
                None,
                None,
                Some(resolved),
                at("2026-06-02T12:00:00Z")
            ),
            OnSignal::Open
        );
    }

    #[test]
    fn empty_and_channelless_tiers_are_skipped_and_nobody_reachable_is_none() {
        let nobody = TierReach::default();
        let no_device = TierReach {
            staff: 2,
            ..TierReach::default()
        };
        let phone = TierReach {
            staff: 1,
            with_device: 1,
            ..TierReach::default()
        };
        let hook = TierReach {
            webhook: true,
            ..no_device
        };
        let mail = TierReach {
            email: true,
            ..no_device
        };
        assert_eq!(choose_tier(&[nobody, phone, phone], 0), Some(1));
        assert_eq!(choose_tier(&[no_device, no_device, phone], 0), Some(2));
        assert_eq!(choose_tier(&[phone, no_device, no_device], 1), Some(0));
        assert_eq!(choose_tier(&[hook, phone], 0), Some(0));
        assert_eq!(choose_tier(&[mail, phone], 0), Some(0));
        assert_eq!(choose_tier(&[phone, phone], 7), Some(1));
        assert_eq!(choose_tier(&[nobody, no_device], 0), None);
        assert_eq!(
            choose_tier(
                &[TierReach {
                    email: true,
                    ..nobody
                }],
                0
            ),
            None,
            "email to nobody reaches nobody"
        );
        assert_eq!(choose_tier(&[], 0), None);
    }

    #[test]
    fn working_hours_hold_only_medium_and_low_alerts() {
        let now = at("2026-06-03T08:00:00Z");
        let morning = at("2026-06-03T13:00:00Z");
        assert_eq!(push_at(Severity::Urgent, now, || morning), now);
        assert_eq!(push_at(Severity::High, now, || morning), now);
        assert_eq!(push_at(Severity::Medium, now, || morning), morning);
        assert_eq!(push_at(Severity::Low, now, || morning), morning);
        assert_eq!(push_at(Severity::Low, now, || now), now);
    }

    #[test]
    fn only_an_outcome_that_counts_makes_a_step_reached() {
        use Delivery::*;
        assert_eq!(
            step_verdict(&[Failed, Counted, Retrying]),
            StepVerdict::Reached
        );
        assert_eq!(step_verdict(&[Failed, Queued]), StepVerdict::Waiting);
        assert_eq!(step_verdict(&[Held]), StepVerdict::Waiting);
        assert_eq!(
            step_verdict(&[Retrying, Failed, NotSent]),
            StepVerdict::ReachedNobody,
            "a webhook still retrying does not count"
        );
        assert_eq!(step_verdict(&[]), StepVerdict::ReachedNobody);
        for d in [Queued, Held, Counted, Retrying, Failed, NotSent] {
            assert_eq!(Delivery::parse(d.name()), Some(d));
        }
    }

    #[test]
    fn the_patient_hears_reached_only_when_something_counted_or_someone_acted() {
        assert_eq!(care_team("open", false, false), CareTeam::Trying);
        assert_eq!(care_team("open", false, true), CareTeam::Unreachable);
        assert_eq!(care_team("open", true, false), CareTeam::Reached);
        assert_eq!(care_team("acknowledged", false, true), CareTeam::Reached);
        assert_eq!(care_team("resolved", false, false), CareTeam::Reached);
        assert!(
            Channels {
                android: true,
                ..Channels::default()
            }
            .pushes("android")
        );
        assert!(
            !Channels {
                android: true,
                ..Channels::default()
            }
            .pushes("ios")
        );
    }
}
