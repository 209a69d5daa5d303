//! Adherence: how reliably a patient answers their prompts. Pure, over the outcomes of closed
//! prompts (completed or expired), newest first.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Days of closed prompts adherence looks at.
pub const WINDOW_DAYS: i64 = 30;

/// A patient's adherence over the last [`WINDOW_DAYS`] days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Adherence {
    /// Days looked at.
    pub window_days: i64,
    /// Prompts answered in time.
    pub completed: u32,
    /// Prompts that expired unanswered (missed).
    pub expired: u32,
    /// `completed / (completed + expired)`, or null before any prompt has closed.
    pub completion_rate: Option<f64>,
    /// Prompts answered in a row, most recent first.
    pub current_streak: u32,
    /// Prompts missed in a row, most recent first.
    pub consecutive_misses: u32,
    /// The patient's latest check-in (prompted or not), if any.
    pub last_check_in_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Summarises outcomes (true: completed), newest first.
pub fn summarise(
    outcomes: &[bool],
    last_check_in_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Adherence {
    let completed = outcomes.iter().filter(|c| **c).count() as u32;
    let expired = outcomes.len() as u32 - completed;
    let run = |value: bool| outcomes.iter().take_while(|c| **c == value).count() as u32;
    Adherence {
        window_days: WINDOW_DAYS,
        completed,
        expired,
        completion_rate: (!outcomes.is_empty())
            .then(|| f64::from(completed) / outcomes.len() as f64),
        current_streak: run(true),
        consecutive_misses: run(false),
        last_check_in_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adherence_counts_rate_streak_and_misses() {
        let a = summarise(&[true, true, false, true], None);
        assert_eq!((a.completed, a.expired), (3, 1));
        assert_eq!(a.completion_rate, Some(0.75));
        assert_eq!((a.current_streak, a.consecutive_misses), (2, 0));
        let b = summarise(&[false, false, false, true], None);
        assert_eq!((b.current_streak, b.consecutive_misses), (0, 3));
        let none = summarise(&[], None);
        assert_eq!(none.completion_rate, None);
        assert_eq!((none.current_streak, none.consecutive_misses), (0, 0));
    }
}
