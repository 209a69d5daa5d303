//! The short wait on the safety path for the first delivery outcome of an alert, so that the
//! patient's answer (a safety check-in, a request for help) says `reached` or `unreachable`
//! rather than `trying` when the outcome comes within seconds (CLINICAL.md, part 2: "The patient
//! is told the truth").

use crate::app::App;
use crate::escalation::decide::CareTeam;

/// Waits up to `COMPANION_SAFETY_ANSWER_WAIT_MS` for the first outcome of the alert's deliveries
/// (the workers were woken by the commit). Returns where the care team stands when it came, or
/// `trying` when time ran out.
pub async fn wait_for_outcome(app: &App, alert_id: String) -> CareTeam {
    let wait = app.config.safety.answer_wait;
    if wait.is_zero() {
        return CareTeam::Trying;
    }
    let until = tokio::time::Instant::now() + wait;
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        let now = tokio::time::Instant::now();
        if now >= until {
            return CareTeam::Trying;
        }
        tokio::time::sleep(pause.min(until - now)).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(200));
        let alert = alert_id.clone();
        match app
            .db
            .run(move |conn| crate::escalation::reach::care_team_of(conn, &alert))
            .await
        {
            Ok(Some(CareTeam::Trying)) => {}
            Ok(Some(care_team)) => return care_team,
            // Gone (an erasure) or unreadable now: the patient hears the honest `trying`.
            Ok(None) | Err(_) => return CareTeam::Trying,
        }
    }
}
