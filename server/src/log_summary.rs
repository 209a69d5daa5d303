//! Summaries instead of floods: when the same failure repeats (a database that is down, clients
//! refused for holding too many connections), the first occurrence is logged at once, then one
//! line per interval with how many occurrences it stands for, and a last line when it is over.
//! Time is passed in, so the rules are tested without waiting.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What a caller should log for an occurrence, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// The first occurrence of an episode: log it with its cause.
    First,
    /// An interval has passed since the last line: log that the failure goes on, standing for
    /// `occurrences` (this one included) since that line.
    Ongoing {
        /// Occurrences since the last line, this one included.
        occurrences: u64,
        /// Occurrences since the episode began.
        total: u64,
        /// How long the episode has lasted.
        lasted: Duration,
    },
}

/// The end of an episode: what to log once it is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Occurrences not yet stood for by a line.
    pub unreported: u64,
    /// Occurrences over the whole episode.
    pub total: u64,
    /// How long the episode lasted.
    pub lasted: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    began: Instant,
    last_line: Instant,
    unreported: u64,
    total: u64,
}

/// One kind of repeated failure, summarised every `interval`. Shared by the threads that see
/// the failure; its lock is only taken while an episode is open or one begins.
#[derive(Debug)]
pub struct LogSummary {
    interval: Duration,
    open: std::sync::atomic::AtomicBool,
    episode: Mutex<Option<Episode>>,
}

impl LogSummary {
    /// A summary writing at most one line per `interval` while an episode lasts.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            open: std::sync::atomic::AtomicBool::new(false),
            episode: Mutex::new(None),
        }
    }

    /// Records one occurrence at `now`; returns what to log, if anything.
    pub fn occurred(&self, now: Instant) -> Option<Report> {
        let mut episode = self.episode.lock().unwrap_or_else(PoisonError::into_inner);
        self.open.store(true, std::sync::atomic::Ordering::Relaxed);
        match episode.as_mut() {
            None => {
                *episode = Some(Episode {
                    began: now,
                    last_line: now,
                    unreported: 0,
                    total: 1,
                });
                Some(Report::First)
            }
            Some(open) => {
                open.total += 1;
                if now.saturating_duration_since(open.last_line) >= self.interval {
                    let occurrences = open.unreported + 1;
                    open.unreported = 0;
                    open.last_line = now;
                    Some(Report::Ongoing {
                        occurrences,
                        total: open.total,
                        lasted: now.saturating_duration_since(open.began),
                    })
                } else {
                    open.unreported += 1;
                    None
                }
            }
        }
    }

    /// Closes the open episode, if any (the failure stopped: the database answered again);
    /// cheap when none is open.
    pub fn ended(&self, now: Instant) -> Option<Ended> {
        if !self.open.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let mut episode = self.episode.lock().unwrap_or_else(PoisonError::into_inner);
        self.open.store(false, std::sync::atomic::Ordering::Relaxed);
        episode.take().map(|e| Ended {
            unreported: e.unreported,
            total: e.total,
            lasted: now.saturating_duration_since(e.began),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_failures_writes_one_line_per_interval_and_one_at_the_end() {
        let summary = LogSummary::new(Duration::from_secs(10));
        let start = Instant::now();
        let mut lines = Vec::new();
        // 1,000 failures a second for 25 seconds.
        for ms in 0..25_000u64 {
            let now = start + Duration::from_millis(ms);
            if let Some(report) = summary.occurred(now) {
                lines.push(report);
            }
        }
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], Report::First);
        assert_eq!(
            lines[1],
            Report::Ongoing {
                occurrences: 10_000,
                total: 10_001,
                lasted: Duration::from_secs(10),
            }
        );
        assert_eq!(
            lines[2],
            Report::Ongoing {
                occurrences: 10_000,
                total: 20_001,
                lasted: Duration::from_secs(20),
            }
        );
        let ended = summary
            .ended(start + Duration::from_secs(26))
            .expect("an episode was open");
        assert_eq!(ended.total, 25_000);
        assert_eq!(ended.unreported, 4_999);
        assert_eq!(ended.lasted, Duration::from_secs(26));
        assert_eq!(summary.ended(start + Duration::from_secs(27)), None);
    }

    #[test]
    fn a_new_failure_after_the_end_is_reported_at_once() {
        let summary = LogSummary::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(summary.occurred(start), Some(Report::First));
        assert_eq!(summary.occurred(start + Duration::from_secs(1)), None);
        assert!(summary.ended(start + Duration::from_secs(2)).is_some());
        assert_eq!(
            summary.occurred(start + Duration::from_secs(3)),
            Some(Report::First)
        );
    }

    #[test]
    fn no_episode_means_nothing_to_end() {
        let summary = LogSummary::new(Duration::from_secs(10));
        assert_eq!(summary.ended(Instant::now()), None);
    }
}
