//! What erasure clears beyond the patient's own rows (run inside the erasure's transaction, in
//! `erasure::erase`): identifiers left elsewhere and copies made before it. The record number
//! (MRN, `external_id`) is cleared so that the clinic may give it to someone else; the email is
//! removed from every invitation of the clinic that named it, accepted or not; in de-identify
//! mode the free-text answers of the check-ins that are kept go (a note may name anyone); its
//! password reset codes go; and
//! every Bulk Data export of the clinic made before the erasure is invalidated, its files deleted
//! by housekeeping (and at once, after the erasure commits: see [`after_commit`]).

use chrono::{DateTime, Utc};
use diesel::QueryResult;

use crate::app::App;
use crate::db::DbConnection;

use super::retention::ErasureMode;

/// Clears the traces of patient `id` of clinic `clinic_id`; call before the account itself is
/// blanked (its email is read here).
pub fn clear(
    conn: &mut DbConnection,
    id: &str,
    clinic_id: &str,
    mode: ErasureMode,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let now = now.naive_utc();
    if let Some(email) = crate::account::email_of(conn, id)? {
        crate::invitation::forget_email_in_clinic(conn, clinic_id, &email)?;
    }
    crate::auth::delete_reset_codes_of(conn, id)?;
    crate::account::clear_external_id(conn, id, now)?;
    if mode == ErasureMode::Deidentify {
        for (check_in, answers) in crate::check_in::answers_of_patient(conn, id)? {
            if let Some(stripped) = without_free_text(&answers) {
                crate::check_in::set_answers(conn, &check_in, &stripped)?;
            }
        }
        // Versions an amendment replaced keep their answers as sent, free text included.
        crate::check_in::forget_earlier_versions_of_patient(conn, id)?;
    }
    crate::fhir::bulk::invalidate_clinic_exports(conn, clinic_id)?;
    Ok(())
}

/// `answers` (a JSON object of item id to answer) without its free-text answers (every string
/// value: choices, numbers and yes/no are never strings), or `None` when there was none.
pub fn without_free_text(answers: &str) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_str(answers).ok()?;
    let object = value.as_object_mut()?;
    let before = object.len();
    object.retain(|_, answer| !answer.is_string());
    (object.len() != before).then(|| value.to_string())
}

/// After an erasure has committed: the files of the exports it invalidated are deleted now
/// rather than at the next housekeeping pass. A failure is logged; housekeeping tries again.
pub async fn after_commit(app: &App) {
    if let Err(error) = crate::fhir::bulk::sweep(app, app.now()).await {
        tracing::warn!(%error, "export files of an erased patient's clinic not yet deleted; housekeeping will");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_answers_go_and_the_rest_stays() {
        let stripped =
            without_free_text(r#"{"mood": 4, "note": "Call my sister Ann", "detached": true}"#)
                .unwrap();
        let value: serde_json::Value = serde_json::from_str(&stripped).unwrap();
        assert_eq!(value, serde_json::json!({"mood": 4, "detached": true}));
        assert_eq!(without_free_text(r#"{"q1": 2, "q9": 0}"#), None);
        assert_eq!(without_free_text("not json"), None);
    }
}
