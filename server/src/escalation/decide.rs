//! The safety path's decisions, pure (CLINICAL.md, "Safety path guarantees"): what a new signal
//! does to the patient's alert for its rule, which tier is told when some cannot be reached, and
//! when each member of staff is pushed. The store and the jobs carry them out.

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

/// Whether a tier can be told: someone is in it, and one of them has an active device or the
/// clinic a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TierReach {
    /// Active staff in the tier.
    pub staff: usize,
    /// Of them, those with an active device.
    pub with_device: usize,
    /// Whether the clinic has an active webhook.
    pub webhook: bool,
}

impl TierReach {
    /// Whether a notification to this tier would reach anyone.
    pub fn reachable(&self) -> bool {
        self.staff > 0 && (self.with_device > 0 || self.webhook)
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

/// When a member of staff is pushed about an alert of `severity`: urgent at once, whatever the
/// hour; high at once to those on call; otherwise at `open`, the start of their working hours
/// (now, when they are working).
pub fn push_at(
    severity: Severity,
    on_call: bool,
    now: DateTime<Utc>,
    open: impl FnOnce() -> DateTime<Utc>,
) -> DateTime<Utc> {
    match severity {
        Severity::Urgent => now,
        Severity::High if on_call => now,
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
    fn empty_and_deviceless_tiers_are_skipped_and_nobody_reachable_is_none() {
        let nobody = TierReach::default();
        let no_device = TierReach {
            staff: 2,
            with_device: 0,
            webhook: false,
        };
        let phone = TierReach {
            staff: 1,
            with_device: 1,
            webhook: false,
        };
        let hook = TierReach {
            webhook: true,
            ..no_device
        };
        assert_eq!(choose_tier(&[nobody, phone, phone], 0), Some(1));
        assert_eq!(choose_tier(&[no_device, no_device, phone], 0), Some(2));
        assert_eq!(choose_tier(&[phone, no_device, no_device], 1), Some(0));
        assert_eq!(choose_tier(&[hook, phone], 0), Some(0));
        assert_eq!(choose_tier(&[phone, phone], 7), Some(1));
        assert_eq!(choose_tier(&[nobody, no_device], 0), None);
        assert_eq!(choose_tier(&[], 0), None);
    }

    #[test]
    fn only_urgent_alerts_and_high_ones_to_the_on_call_ignore_working_hours() {
        let now = at("2026-06-03T08:00:00Z");
        let morning = at("2026-06-03T13:00:00Z");
        assert_eq!(push_at(Severity::Urgent, false, now, || morning), now);
        assert_eq!(push_at(Severity::High, true, now, || morning), now);
        assert_eq!(push_at(Severity::High, false, now, || morning), morning);
        assert_eq!(push_at(Severity::Medium, true, now, || morning), morning);
        assert_eq!(push_at(Severity::Low, false, now, || now), now);
    }
}
