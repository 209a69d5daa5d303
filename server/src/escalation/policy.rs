//! Who is told about an alert, and when: the acknowledgement window per severity (CLINICAL.md
//! defaults) and the tiers an unacknowledged alert climbs. Pure.

use chrono::TimeDelta;

use super::rules::Severity;

/// How long the care team has to acknowledge an alert before it escalates.
pub fn ack_window(severity: Severity) -> TimeDelta {
    match severity {
        Severity::Urgent => TimeDelta::minutes(15),
        Severity::High => TimeDelta::hours(2),
        Severity::Medium => TimeDelta::hours(24),
        Severity::Low => TimeDelta::hours(72),
    }
}

/// A group of staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Clinicians and admins who marked themselves on call.
    OnCall,
    /// Every clinician of the clinic.
    Clinicians,
    /// Every clinic admin.
    ClinicAdmins,
}

/// The default tiers, in order.
pub const TIERS: [Audience; 3] = [
    Audience::OnCall,
    Audience::Clinicians,
    Audience::ClinicAdmins,
];

/// The tier notified after `escalations` missed deadlines: each miss climbs one tier, and the
/// last tier is notified again at every further miss, until someone acknowledges.
pub fn tier(escalations: usize) -> usize {
    escalations.min(TIERS.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_the_clinical_defaults_and_tiers_climb_then_repeat() {
        assert_eq!(ack_window(Severity::Urgent), TimeDelta::minutes(15));
        assert_eq!(ack_window(Severity::High), TimeDelta::hours(2));
        assert_eq!(ack_window(Severity::Medium), TimeDelta::hours(24));
        assert_eq!(ack_window(Severity::Low), TimeDelta::hours(72));
        let climbed: Vec<Audience> = (0..6).map(|n| TIERS[tier(n)]).collect();
        assert_eq!(
            climbed,
            [
                Audience::OnCall,
                Audience::Clinicians,
                Audience::ClinicAdmins,
                Audience::ClinicAdmins,
                Audience::ClinicAdmins,
                Audience::ClinicAdmins
            ]
        );
    }
}
