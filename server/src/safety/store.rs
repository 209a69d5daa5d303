//! Reads what a patient's crisis resources are chosen from: one query for the patient's zone and
//! their clinic's country, zone, number and own list.

use companion_schema::schema::{accounts, clinics};
use diesel::prelude::*;

use crate::db::DbConnection;

use super::crisis::{self, CrisisInputs, CrisisOverride, CrisisResources};
use super::zones::ZoneCountries;

type Stored = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The crisis resources of `patient_id`'s clinic, on `conn` (inside the caller's transaction,
/// so a check-in's notice needs no read after its commit). None for an unknown patient.
pub fn for_patient(
    conn: &mut DbConnection,
    patient_id: &str,
    zones: &ZoneCountries,
) -> QueryResult<Option<CrisisResources>> {
    let stored: Option<Stored> = accounts::table
        .inner_join(clinics::table)
        .filter(accounts::id.eq(patient_id))
        .select((
            accounts::timezone,
            clinics::timezone,
            clinics::country,
            clinics::crisis_phone,
            clinics::crisis_resources,
        ))
        .first(conn)
        .optional()?;
    Ok(
        stored.map(|(patient_zone, clinic_zone, country, phone, own)| {
            // Stored only after validation; an unreadable list falls back to the national one.
            let own: Option<CrisisOverride> = own.and_then(|text| serde_json::from_str(&text).ok());
            crisis::resources(
                &CrisisInputs {
                    clinic_country: country.as_deref(),
                    clinic_timezone: &clinic_zone,
                    clinic_phone: phone.as_deref(),
                    clinic_override: own.as_ref(),
                    patient_timezone: &patient_zone,
                },
                zones,
            )
        }),
    )
}
