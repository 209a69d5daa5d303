//! Trends: the daily mood series in the patient's local days, and per instrument the latest,
//! first and baseline scores with the change and the response, remission and reliable
//! deterioration flags. Pure: records, the patient's zone and `now` are passed in.
//!
//! Baseline (CLINICAL.md): the lowest score in the 90 days before the latest, else the first.
//! Response compares with the first score (the pre-treatment reference): a drop of 50% or more.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One check-in as trends need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Check-in id.
    pub id: String,
    /// Catalogue key.
    pub instrument: String,
    /// Total, for scored instruments.
    pub total: Option<i64>,
    /// Mood answer, for the daily check-in.
    pub mood: Option<f64>,
    /// When completed.
    pub completed_at: DateTime<Utc>,
}

/// One local day of mood answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DailyMood {
    /// The patient's local date.
    pub date: NaiveDate,
    /// Mean mood that day (0-10), two decimals.
    pub mean: f64,
    /// Answers that day.
    pub count: usize,
}

/// A score at a point in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScorePoint {
    /// The check-in.
    pub check_in_id: String,
    /// Total score.
    pub total: i64,
    /// When completed.
    pub completed_at: DateTime<Utc>,
}

/// The state of one scored instrument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstrumentTrend {
    /// Catalogue key.
    #[schema(value_type = crate::instrument::catalogue::InstrumentKey)]
    pub instrument: String,
    /// Check-ins of this instrument considered.
    pub count: usize,
    /// The most recent score.
    pub latest: ScorePoint,
    /// The first score on record.
    pub first: ScorePoint,
    /// The comparison point for deterioration; null when there is only one score.
    pub baseline: Option<ScorePoint>,
    /// latest − baseline.
    pub change_from_baseline: Option<i64>,
    /// latest − first.
    pub change_from_first: i64,
    /// Latest is at most half the first score (PHQ-9, GAD-7).
    pub response: bool,
    /// Latest total under 5 (PHQ-9, GAD-7).
    pub remission: bool,
    /// PHQ-9: latest ≥ baseline + 5 and ≥ 10. GAD-7: latest ≥ baseline + 4 and ≥ 10.
    pub reliable_deterioration: bool,
}

/// Deterioration thresholds: (points above baseline, minimum total).
fn deterioration_rule(instrument: &str) -> Option<(i64, i64)> {
    match instrument {
        "phq9" => Some((5, 10)),
        "gad7" => Some((4, 10)),
        _ => None,
    }
}

/// Daily means of mood in the patient's local calendar days, for records in `[from, now]`.
pub fn daily_mood(records: &[Record], tz: Tz, from: DateTime<Utc>) -> Vec<DailyMood> {
    let mut days: BTreeMap<NaiveDate, (f64, usize)> = BTreeMap::new();
    for record in records.iter().filter(|r| r.completed_at >= from) {
        if let Some(mood) = record.mood {
            let date = record.completed_at.with_timezone(&tz).date_naive();
            let day = days.entry(date).or_insert((0.0, 0));
            day.0 += mood;
            day.1 += 1;
        }
    }
    days.into_iter()
        .map(|(date, (sum, count))| DailyMood {
            date,
            mean: (sum / count as f64 * 100.0).round() / 100.0,
            count,
        })
        .collect()
}

fn point(record: &Record, total: i64) -> ScorePoint {
    ScorePoint {
        check_in_id: record.id.clone(),
        total,
        completed_at: record.completed_at,
    }
}

/// The trend of `instrument` over `records` (any order); `first` is the earliest score on record
/// (it may predate `records`). None when there is no score.
pub fn instrument_trend(
    instrument: &str,
    records: &[Record],
    first: Option<&Record>,
) -> Option<InstrumentTrend> {
    let mut scored: Vec<(&Record, i64)> = records
        .iter()
        .filter(|r| r.instrument == instrument)
        .filter_map(|r| r.total.map(|t| (r, t)))
        .collect();
    scored.sort_by_key(|(r, _)| (r.completed_at, r.id.clone()));
    let &(latest_record, latest) = scored.last()?;
    let (first_record, first_total) = match first.and_then(|f| f.total.map(|t| (f, t))) {
        Some(pair) => pair,
        None => scored[0],
    };
    let window_start = latest_record.completed_at - TimeDelta::days(90);
    let baseline = scored[..scored.len() - 1]
        .iter()
        .filter(|(r, _)| r.completed_at >= window_start)
        .min_by_key(|(r, t)| (*t, r.completed_at))
        .map(|(r, t)| point(r, *t))
        .or_else(|| {
            (first_record.id != latest_record.id).then(|| point(first_record, first_total))
        });
    let change_from_baseline = baseline.as_ref().map(|b| latest - b.total);
    let reliable_deterioration = match (deterioration_rule(instrument), &baseline) {
        (Some((points, floor)), Some(b)) => latest >= b.total + points && latest >= floor,
        _ => false,
    };
    let has_rules = deterioration_rule(instrument).is_some();
    Some(InstrumentTrend {
        instrument: instrument.to_owned(),
        count: scored.len(),
        latest: point(latest_record, latest),
        first: point(first_record, first_total),
        baseline,
        change_from_baseline,
        change_from_first: latest - first_total,
        response: has_rules
            && first_record.id != latest_record.id
            && first_total > 0
            && latest * 2 <= first_total,
        remission: has_rules && latest < 5,
        reliable_deterioration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    fn mood(id: &str, when: DateTime<Utc>, value: f64) -> Record {
        Record {
            id: id.into(),
            instrument: "daily_mood".into(),
            total: None,
            mood: Some(value),
            completed_at: when,
        }
    }

    fn phq9(id: &str, when: DateTime<Utc>, total: i64) -> Record {
        Record {
            id: id.into(),
            instrument: "phq9".into(),
            total: Some(total),
            mood: None,
            completed_at: when,
        }
    }

    #[test]
    fn mood_days_are_the_patients_local_days_across_a_dst_change() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // 2026-03-08 is the spring-forward day in New York.
        let records = [
            mood("a", at(2026, 3, 8, 3, 30), 4.0), // 22:30 on 7 March local (EST)
            mood("b", at(2026, 3, 8, 5, 30), 6.0), // 00:30 on 8 March local (EST)
            mood("c", at(2026, 3, 9, 3, 30), 8.0), // 23:30 on 8 March local (EDT)
            mood("d", at(2026, 3, 9, 4, 30), 5.0), // 00:30 on 9 March local (EDT)
        ];
        let series = daily_mood(&records, tz, at(2026, 3, 1, 0, 0));
        let dates: Vec<String> = series.iter().map(|d| d.date.to_string()).collect();
        assert_eq!(dates, ["2026-03-07", "2026-03-08", "2026-03-09"]);
        assert_eq!((series[1].mean, series[1].count), (7.0, 2));
        let late = daily_mood(&records, tz, at(2026, 3, 9, 0, 0));
        assert_eq!(late.len(), 2);
    }

    #[test]
    fn baseline_is_the_lowest_score_of_the_ninety_days_before_the_latest() {
        let records = [
            phq9("1", at(2026, 1, 1, 9, 0), 22),
            phq9("2", at(2026, 2, 1, 9, 0), 8),
            phq9("3", at(2026, 3, 1, 9, 0), 12),
            phq9("4", at(2026, 3, 15, 9, 0), 14),
        ];
        let trend = instrument_trend("phq9", &records, None).unwrap();
        assert_eq!(trend.latest.total, 14);
        assert_eq!(trend.first.total, 22);
        assert_eq!(trend.baseline.as_ref().unwrap().total, 8);
        assert_eq!(trend.change_from_baseline, Some(6));
        assert!(trend.reliable_deterioration, "14 >= 8 + 5 and >= 10");
        assert!(!trend.response);
        assert!(!trend.remission);
    }

    #[test]
    fn response_remission_and_the_deterioration_floor() {
        let better = [
            phq9("1", at(2026, 1, 1, 9, 0), 20),
            phq9("2", at(2026, 2, 1, 9, 0), 4),
        ];
        let trend = instrument_trend("phq9", &better, None).unwrap();
        assert!(trend.response && trend.remission && !trend.reliable_deterioration);
        // +5 but still under 10: not reliable deterioration.
        let small = [
            phq9("1", at(2026, 1, 1, 9, 0), 3),
            phq9("2", at(2026, 1, 20, 9, 0), 8),
        ];
        assert!(
            !instrument_trend("phq9", &small, None)
                .unwrap()
                .reliable_deterioration
        );
        // Scores older than 90 days before the latest fall back to the first score.
        let old = [
            phq9("1", at(2025, 1, 1, 9, 0), 5),
            phq9("2", at(2026, 1, 1, 9, 0), 11),
        ];
        let trend = instrument_trend("phq9", &old, None).unwrap();
        assert_eq!(trend.baseline.unwrap().total, 5);
        assert!(trend.reliable_deterioration);
        // A single score has no baseline.
        let one = [phq9("1", at(2026, 1, 1, 9, 0), 15)];
        let trend = instrument_trend("phq9", &one, None).unwrap();
        assert_eq!(trend.baseline, None);
        assert!(!trend.response && !trend.reliable_deterioration);
        assert!(instrument_trend("gad7", &one, None).is_none());
    }
}
