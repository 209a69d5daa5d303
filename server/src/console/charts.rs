//! Charts as hand-built SVG, each with a text alternative (a summary and a data table): daily
//! mood with its 7-day median, questionnaire totals over their severity bands, home blood
//! pressure. Treatment sessions are marked on each time axis. Pure: the series are passed in.

use chrono::NaiveDate;
use maud::{Markup, html};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 36.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// A band of a scale drawn behind a series (e.g. PHQ-9 10-14 "moderate").
#[derive(Debug, Clone, Copy)]
pub struct Band {
    /// Lowest value in the band.
    pub from: f64,
    /// Highest value.
    pub to: f64,
    /// Its name.
    pub label: &'static str,
}

/// PHQ-9 severity bands (Kroenke 2001).
pub const PHQ9_BANDS: [Band; 5] = [
    Band {
        from: 0.0,
        to: 4.0,
        label: "minimal",
    },
    Band {
        from: 5.0,
        to: 9.0,
        label: "mild",
    },
    Band {
        from: 10.0,
        to: 14.0,
        label: "moderate",
    },
    Band {
        from: 15.0,
        to: 19.0,
        label: "moderately severe",
    },
    Band {
        from: 20.0,
        to: 27.0,
        label: "severe",
    },
];

/// GAD-7 severity bands (Spitzer 2006).
pub const GAD7_BANDS: [Band; 4] = [
    Band {
        from: 0.0,
        to: 4.0,
        label: "minimal",
    },
    Band {
        from: 5.0,
        to: 9.0,
        label: "mild",
    },
    Band {
        from: 10.0,
        to: 14.0,
        label: "moderate",
    },
    Band {
        from: 15.0,
        to: 21.0,
        label: "severe",
    },
];

/// The time axis: a date range mapped onto the chart's width.
#[derive(Debug, Clone, Copy)]
pub struct Axis {
    /// First day shown.
    pub from: NaiveDate,
    /// Last day shown.
    pub to: NaiveDate,
}

impl Axis {
    fn x(&self, day: NaiveDate) -> f64 {
        let span = (self.to - self.from).num_days().max(1) as f64;
        let at = (day - self.from).num_days() as f64;
        LEFT + (WIDTH - LEFT - RIGHT) * (at / span)
    }

    fn contains(&self, day: NaiveDate) -> bool {
        day >= self.from && day <= self.to
    }
}

fn y(value: f64, max: f64) -> f64 {
    let plot = HEIGHT - TOP - BOTTOM;
    TOP + plot * (1.0 - (value / max).clamp(0.0, 1.0))
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// The median of each day's mean over that day and the six before it (days with answers only).
pub fn rolling_median(days: &[(NaiveDate, f64)]) -> Vec<(NaiveDate, f64)> {
    days.iter()
        .map(|(day, _)| {
            let mut window: Vec<f64> = days
                .iter()
                .filter(|(d, _)| *d <= *day && (*day - *d).num_days() < 7)
                .map(|(_, v)| *v)
                .collect();
            window.sort_by(f64::total_cmp);
            let n = window.len();
            let median = if n % 2 == 1 {
                window[n / 2]
            } else {
                (window[n / 2 - 1] + window[n / 2]) / 2.0
            };
            (*day, median)
        })
        .collect()
}

fn path(points: &[(f64, f64)]) -> String {
    points
        .iter()
        .enumerate()
        .map(|(i, (x, y))| format!("{}{} {}", if i == 0 { "M" } else { "L" }, fmt(*x), fmt(*y)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn frame(axis: &Axis, max: f64, ticks: &[f64], sessions: &[NaiveDate]) -> Markup {
    html! {
        @for tick in ticks {
            line class="grid" x1=(LEFT) x2=(WIDTH - RIGHT) y1=(fmt(y(*tick, max))) y2=(fmt(y(*tick, max))) {}
            text class="tick" x=(LEFT - 6.0) y=(fmt(y(*tick, max) + 4.0)) text-anchor="end" { (tick) }
        }
        text class="tick" x=(LEFT) y=(HEIGHT - 8.0) { (axis.from.format("%b %-d")) }
        text class="tick" x=(WIDTH - RIGHT) y=(HEIGHT - 8.0) text-anchor="end" { (axis.to.format("%b %-d")) }
        @for day in sessions.iter().filter(|d| axis.contains(**d)) {
            line class="session" data-date=(day) x1=(fmt(axis.x(*day))) x2=(fmt(axis.x(*day))) y1=(TOP) y2=(HEIGHT - BOTTOM) {
                title { "Treatment session " (day) }
            }
        }
    }
}

fn svg(id: &str, label: &str, inner: Markup) -> Markup {
    html! {
        svg class="chart" id=(id) viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-labelledby={ (id) "-title" } preserveAspectRatio="xMidYMid meet" {
            title id={ (id) "-title" } { (label) }
            (inner)
        }
    }
}

/// Daily mood (0-10) with the 7-day median and session marks; a summary and a table as the
/// text alternative. One point per day with answers.
pub fn mood_chart(days: &[(NaiveDate, f64)], axis: Axis, sessions: &[NaiveDate]) -> Markup {
    let shown: Vec<(NaiveDate, f64)> = days
        .iter()
        .copied()
        .filter(|(d, _)| axis.contains(*d))
        .collect();
    let medians = rolling_median(&shown);
    let line: Vec<(f64, f64)> = shown
        .iter()
        .map(|(d, v)| (axis.x(*d), y(*v, 10.0)))
        .collect();
    let median_line: Vec<(f64, f64)> = medians
        .iter()
        .map(|(d, v)| (axis.x(*d), y(*v, 10.0)))
        .collect();
    let summary = match (shown.first(), shown.last(), medians.last()) {
        (Some(_), Some((last_day, last)), Some((_, median))) => format!(
            "{} days with a mood answer between {} and {}; latest {} on {}, 7-day median {}.",
            shown.len(),
            axis.from,
            axis.to,
            fmt(*last),
            last_day,
            fmt(*median)
        ),
        _ => format!("No mood answers between {} and {}.", axis.from, axis.to),
    };
    html! {
        figure class="chart-figure" {
            figcaption { "Daily mood (0-10), with the 7-day median" }
            (svg("mood-chart", "Daily mood chart", html! {
                (frame(&axis, 10.0, &[0.0, 5.0, 10.0], sessions))
                path class="series" d=(path(&line)) {}
                path class="median" d=(path(&median_line)) {}
                @for ((day, value), (x, yy)) in shown.iter().zip(line.iter()) {
                    circle class="point" data-date=(day) cx=(fmt(*x)) cy=(fmt(*yy)) r="3" {
                        title { (day) ": " (fmt(*value)) }
                    }
                }
            }))
            p class="summary" { (summary) }
            details {
                summary { "Mood data table" }
                table {
                    thead { tr { th scope="col" { "Day" } th scope="col" { "Mean mood" } th scope="col" { "7-day median" } } }
                    tbody {
                        @for ((day, value), (_, median)) in shown.iter().zip(medians.iter()) {
                            tr { td { (day) } td { (fmt(*value)) } td { (fmt(*median)) } }
                        }
                    }
                }
            }
        }
    }
}

/// Questionnaire totals over their severity bands, with session marks.
pub fn score_chart(
    id: &str,
    name: &str,
    max: f64,
    bands: &[Band],
    points: &[(NaiveDate, i64)],
    axis: Axis,
    sessions: &[NaiveDate],
) -> Markup {
    let shown: Vec<(NaiveDate, i64)> = points
        .iter()
        .copied()
        .filter(|(d, _)| axis.contains(*d))
        .collect();
    let line: Vec<(f64, f64)> = shown
        .iter()
        .map(|(d, v)| (axis.x(*d), y(*v as f64, max)))
        .collect();
    let band_of = |v: i64| {
        bands
            .iter()
            .find(|b| (v as f64) >= b.from && (v as f64) <= b.to)
            .map_or("", |b| b.label)
    };
    let summary = match shown.last() {
        Some((day, total)) => format!(
            "{} {} totals between {} and {}; latest {} ({}) on {}.",
            shown.len(),
            name,
            axis.from,
            axis.to,
            total,
            band_of(*total),
            day
        ),
        None => format!("No {name} answers between {} and {}.", axis.from, axis.to),
    };
    let ticks: Vec<f64> = bands.iter().map(|b| b.from).chain([max]).collect();
    html! {
        figure class="chart-figure" {
            figcaption { (name) " total, with severity bands" }
            (svg(id, &format!("{name} chart"), html! {
                @for (i, band) in bands.iter().enumerate() {
                    rect class={ "band band-" (i) } x=(LEFT) width=(WIDTH - LEFT - RIGHT)
                        y=(fmt(y(band.to + 1.0, max))) height=(fmt(y(band.from, max) - y(band.to + 1.0, max))) {
                        title { (band.label) " " (band.from) "-" (band.to) }
                    }
                }
                (frame(&axis, max, &ticks, sessions))
                path class="series" d=(path(&line)) {}
                @for ((day, total), (x, yy)) in shown.iter().zip(line.iter()) {
                    circle class="point" data-date=(day) cx=(fmt(*x)) cy=(fmt(*yy)) r="4" {
                        title { (day) ": " (total) }
                    }
                }
            }))
            p class="summary" { (summary) }
            details {
                summary { (name) " data table" }
                table {
                    thead { tr { th scope="col" { "Day" } th scope="col" { "Total" } th scope="col" { "Band" } } }
                    tbody {
                        @for (day, total) in &shown {
                            tr { td { (day) } td { (total) } td { (band_of(*total)) } }
                        }
                    }
                }
            }
        }
    }
}

/// Home blood pressure readings (systolic and diastolic), with the crisis lines (180/110).
pub fn blood_pressure_chart(
    points: &[(NaiveDate, i64, i64)],
    axis: Axis,
    sessions: &[NaiveDate],
) -> Markup {
    let shown: Vec<(NaiveDate, i64, i64)> = points
        .iter()
        .copied()
        .filter(|(d, ..)| axis.contains(*d))
        .collect();
    let max = 220.0;
    let sys: Vec<(f64, f64)> = shown
        .iter()
        .map(|(d, s, _)| (axis.x(*d), y(*s as f64, max)))
        .collect();
    let dia: Vec<(f64, f64)> = shown
        .iter()
        .map(|(d, _, v)| (axis.x(*d), y(*v as f64, max)))
        .collect();
    let summary = match shown.last() {
        Some((day, s, d)) => format!("{} readings; latest {s}/{d} mmHg on {day}.", shown.len()),
        None => "No home blood pressure readings in this period.".to_owned(),
    };
    html! {
        figure class="chart-figure" {
            figcaption { "Home blood pressure (mmHg)" }
            (svg("bp-chart", "Home blood pressure chart", html! {
                (frame(&axis, max, &[0.0, 110.0, 180.0, 220.0], sessions))
                line class="limit" x1=(LEFT) x2=(WIDTH - RIGHT) y1=(fmt(y(180.0, max))) y2=(fmt(y(180.0, max))) {}
                line class="limit" x1=(LEFT) x2=(WIDTH - RIGHT) y1=(fmt(y(110.0, max))) y2=(fmt(y(110.0, max))) {}
                path class="series" d=(path(&sys)) {}
                path class="series second" d=(path(&dia)) {}
                @for (x, yy) in sys.iter().chain(dia.iter()) {
                    circle class="point" cx=(fmt(*x)) cy=(fmt(*yy)) r="3" {}
                }
            }))
            p class="summary" { (summary) }
            details {
                summary { "Blood pressure data table" }
                table {
                    thead { tr { th scope="col" { "Day" } th scope="col" { "Systolic" } th scope="col" { "Diastolic" } } }
                    tbody {
                        @for (day, s, d) in &shown {
                            tr { td { (day) } td { (s) } td { (d) } }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, n).unwrap_or_default()
    }

    #[test]
    fn rolling_median_uses_the_last_seven_days() {
        let days: Vec<(NaiveDate, f64)> = (1..=9).map(|n| (day(n), f64::from(n))).collect();
        let medians = rolling_median(&days);
        assert_eq!(medians[0].1, 1.0);
        assert_eq!(medians[1].1, 1.5);
        // Day 9: days 3..=9, median 6.
        assert_eq!(medians[8].1, 6.0);
    }

    #[test]
    fn mood_chart_draws_one_point_per_day_and_marks_sessions() {
        let days: Vec<(NaiveDate, f64)> = (1..=5).map(|n| (day(n), 5.0)).collect();
        let axis = Axis {
            from: day(1),
            to: day(10),
        };
        let html = mood_chart(&days, axis, &[day(3), day(20)]).into_string();
        assert_eq!(html.matches("<circle class=\"point\"").count(), 5);
        assert_eq!(html.matches("class=\"session\"").count(), 1);
        assert!(html.contains("5 days with a mood answer"));
    }

    #[test]
    fn score_chart_names_the_band_of_the_latest_total() {
        let axis = Axis {
            from: day(1),
            to: day(10),
        };
        let html = score_chart(
            "phq9-chart",
            "PHQ-9",
            27.0,
            &PHQ9_BANDS,
            &[(day(2), 12), (day(9), 21)],
            axis,
            &[],
        )
        .into_string();
        assert!(html.contains("latest 21 (severe)"));
        assert_eq!(html.matches("class=\"band ").count(), 5);
    }
}
