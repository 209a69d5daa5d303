//! Crisis resources (CLINICAL.md, part 2: "crisis lines follow the patient"): the lines for the
//! country of the patient's own zone when it maps to one, else the clinic's country, else the
//! country of the clinic's zone; for a country without listed lines, the clinic's own number,
//! "call your local emergency number" and an international directory. A clinic may replace the
//! list for its own country (not for a patient abroad). Never empty. Pure: the inputs are
//! passed in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::zones::ZoneCountries;

/// The international helpline directory listed where no national lines are known.
pub const DIRECTORY_URL: &str = "https://findahelpline.com";

/// Where to get help now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CrisisResources {
    /// ISO 3166-1 alpha-2 country the resources are for; null when no country could be found.
    pub country: Option<String>,
    /// How the resources were chosen: `clinic_override` (the clinic's own list, for a patient
    /// in the clinic's country), `patient_timezone` (the country of the patient's zone),
    /// `clinic_country`, `clinic_timezone` (the country of the clinic's zone), or `unknown`.
    #[schema(example = "patient_timezone")]
    pub source: String,
    /// What the app should show first, in plain words.
    pub message: String,
    /// The emergency number, when known (the first of `emergency_numbers`).
    pub emergency_number: Option<String>,
    /// Every emergency number of the country, in the order to show them (Ireland: 112 and
    /// 999); empty when unknown.
    pub emergency_numbers: Vec<String>,
    /// Crisis lines to call, text or visit; never empty.
    pub lines: Vec<CrisisLine>,
}

/// One crisis line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrisisLine {
    /// Name of the service, 1 to 100 characters.
    #[schema(
        example = "988 Suicide & Crisis Lifeline",
        min_length = 1,
        max_length = 100,
        pattern = r"\S"
    )]
    pub name: String,
    /// Number to call, if calls are taken.
    #[serde(default)]
    #[schema(
        example = "988",
        max_length = 30,
        pattern = r"^[0-9 +().-]*[0-9][0-9 +().-]*$"
    )]
    pub call: Option<String>,
    /// Number to text, if texts are taken.
    #[serde(default)]
    #[schema(
        example = "988",
        max_length = 30,
        pattern = r"^[0-9 +().-]*[0-9][0-9 +().-]*$"
    )]
    pub text: Option<String>,
    /// A web page, if the service is reached online.
    #[serde(default)]
    #[schema(
        example = "https://findahelpline.com",
        max_length = 300,
        pattern = "^https?://"
    )]
    pub url: Option<String>,
}

/// A clinic's own list, replacing the national one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrisisOverride {
    /// The emergency number patients should call (digits, spaces, `+` and `-`; 1 to 20).
    #[schema(
        example = "112",
        min_length = 1,
        max_length = 20,
        pattern = r"^[0-9 +().-]*[0-9][0-9 +().-]*$"
    )]
    pub emergency_number: String,
    /// One to ten lines, in the order shown.
    #[schema(min_items = 1, max_items = 10)]
    pub lines: Vec<CrisisLine>,
}

fn is_phone(text: &str, max: usize) -> bool {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    digits >= 1
        && text.chars().count() <= max
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.'))
}

impl CrisisOverride {
    /// Problems, keyed by field (under `crisis_resources`).
    pub fn problems(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if !is_phone(&self.emergency_number, 20) {
            out.insert(
                "crisis_resources.emergency_number".to_owned(),
                "must be a phone number (digits, spaces, + and -), at most 20 characters"
                    .to_owned(),
            );
        }
        if self.lines.is_empty() || self.lines.len() > 10 {
            out.insert(
                "crisis_resources.lines".to_owned(),
                "must list 1 to 10 lines".to_owned(),
            );
        }
        for (i, line) in self.lines.iter().enumerate() {
            let field = format!("crisis_resources.lines[{i}]");
            let name = line.name.trim().chars().count();
            if name == 0 || name > 100 {
                out.insert(
                    format!("{field}.name"),
                    "must be 1 to 100 characters".into(),
                );
            } else if crate::text::has_hidden(&line.name) {
                out.insert(
                    format!("{field}.name"),
                    crate::text::HIDDEN_CHARACTERS.into(),
                );
            }
            if line.call.is_none() && line.text.is_none() && line.url.is_none() {
                out.insert(
                    field.clone(),
                    "needs a number to call or text, or a url".into(),
                );
            }
            for (key, value) in [("call", &line.call), ("text", &line.text)] {
                if value.as_deref().is_some_and(|v| !is_phone(v, 30)) {
                    out.insert(
                        format!("{field}.{key}"),
                        "must be a phone number, at most 30 characters".into(),
                    );
                }
            }
            if line.url.as_deref().is_some_and(|u| {
                !(u.starts_with("https://") || u.starts_with("http://")) || u.len() > 300
            }) {
                out.insert(
                    format!("{field}.url"),
                    "must be an http(s) address, at most 300 characters".into(),
                );
            }
        }
        out
    }
}

/// What the resources are chosen from.
#[derive(Debug, Clone, Copy, Default)]
pub struct CrisisInputs<'a> {
    /// The clinic's country, if it set one.
    pub clinic_country: Option<&'a str>,
    /// The clinic's zone.
    pub clinic_timezone: &'a str,
    /// The clinic's own crisis number.
    pub clinic_phone: Option<&'a str>,
    /// The clinic's own list.
    pub clinic_override: Option<&'a CrisisOverride>,
    /// The patient's zone.
    pub patient_timezone: &'a str,
}

/// The clinic's own country, and how it was found: its country, else its zone's.
pub fn clinic_country_for(
    inputs: &CrisisInputs<'_>,
    zones: &ZoneCountries,
) -> (Option<String>, &'static str) {
    if let Some(country) = inputs.clinic_country {
        return (Some(country.to_ascii_uppercase()), "clinic_country");
    }
    if let Some(country) = zones.country_of(inputs.clinic_timezone) {
        return (Some(country.to_owned()), "clinic_timezone");
    }
    (None, "unknown")
}

/// The country the resources are for, and how it was found: the patient's own zone's when it
/// maps to one (crisis lines follow the patient), else the clinic's.
pub fn country_for(
    inputs: &CrisisInputs<'_>,
    zones: &ZoneCountries,
) -> (Option<String>, &'static str) {
    if let Some(country) = zones.country_of(inputs.patient_timezone) {
        return (Some(country.to_owned()), "patient_timezone");
    }
    clinic_country_for(inputs, zones)
}

fn line(name: &str, call: Option<&str>, text: Option<&str>) -> CrisisLine {
    CrisisLine {
        name: name.to_owned(),
        call: call.map(str::to_owned),
        text: text.map(str::to_owned),
        url: None,
    }
}

/// The national lines and emergency numbers of the countries CLINICAL.md lists.
fn national(country: &str) -> Option<(&'static [&'static str], Vec<CrisisLine>)> {
    Some(match country {
        "US" => (
            &["911"],
            vec![line(
                "988 Suicide & Crisis Lifeline",
                Some("988"),
                Some("988"),
            )],
        ),
        "CA" => (
            &["911"],
            vec![line(
                "9-8-8 Suicide Crisis Helpline",
                Some("988"),
                Some("988"),
            )],
        ),
        "GB" => (
            &["999"],
            vec![
                line("Samaritans", Some("116 123"), None),
                line("NHS 111", Some("111"), None),
            ],
        ),
        "IE" => (
            &["112", "999"],
            vec![line("Samaritans", Some("116 123"), None)],
        ),
        "AU" => (&["000"], vec![line("Lifeline", Some("13 11 14"), None)]),
        "NZ" => (
            &["111"],
            vec![line("Need to talk? 1737", Some("1737"), Some("1737"))],
        ),
        _ => return None,
    })
}

fn message(emergency: &[&str]) -> String {
    match emergency {
        [] => "If you might act on these thoughts or are in danger, call your local emergency number now. You can also reach the lines below.".to_owned(),
        numbers => format!(
            "If you might act on these thoughts or are in danger, call {} now. You can also reach the lines below at any hour.",
            numbers.join(" or ")
        ),
    }
}

/// The resources a patient of this clinic is shown. Never without a line.
pub fn resources(inputs: &CrisisInputs<'_>, zones: &ZoneCountries) -> CrisisResources {
    let (country, found) = country_for(inputs, zones);
    let (home, _) = clinic_country_for(inputs, zones);
    // The clinic's own list replaces the national one for its own country only: a patient
    // abroad is shown the lines of where they are.
    if let Some(own) = inputs.clinic_override
        && (country.is_none() || country == home)
    {
        return CrisisResources {
            country,
            source: "clinic_override".to_owned(),
            message: message(&[own.emergency_number.as_str()]),
            emergency_number: Some(own.emergency_number.clone()),
            emergency_numbers: vec![own.emergency_number.clone()],
            lines: own.lines.clone(),
        };
    }
    let listed = country.as_deref().and_then(national);
    let clinic_line = inputs
        .clinic_phone
        .map(|phone| line("Your clinic", Some(phone), None));
    let (emergency, mut lines): (&[&str], Vec<CrisisLine>) = match listed {
        Some((numbers, lines)) => (numbers, lines),
        None => (
            &[],
            vec![CrisisLine {
                name: "Find A Helpline (international directory of crisis lines)".to_owned(),
                call: None,
                text: None,
                url: Some(DIRECTORY_URL.to_owned()),
            }],
        ),
    };
    if let Some(clinic) = clinic_line {
        lines.insert(0, clinic);
    }
    CrisisResources {
        country,
        source: found.to_owned(),
        message: message(emergency),
        emergency_number: emergency.first().map(|n| (*n).to_owned()),
        emergency_numbers: emergency.iter().map(|n| (*n).to_owned()).collect(),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(country: Option<&'a str>, zone: &'a str) -> CrisisInputs<'a> {
        CrisisInputs {
            clinic_country: country,
            clinic_timezone: zone,
            patient_timezone: "UTC",
            ..CrisisInputs::default()
        }
    }

    #[test]
    fn each_listed_country_has_its_lines_and_emergency_number() {
        let zones = ZoneCountries::vendored();
        let get = |c: &str| resources(&inputs(Some(c), "UTC"), &zones);
        let us = get("us");
        assert_eq!(us.emergency_number.as_deref(), Some("911"));
        assert_eq!(us.lines[0].text.as_deref(), Some("988"));
        assert_eq!(us.source, "clinic_country");
        assert_eq!(get("GB").emergency_number.as_deref(), Some("999"));
        let ireland = get("IE");
        assert_eq!(ireland.emergency_number.as_deref(), Some("112"));
        assert_eq!(ireland.emergency_numbers, ["112", "999"]);
        assert!(
            ireland.message.contains("call 112 or 999 now"),
            "{}",
            ireland.message
        );
        assert_eq!(get("AU").lines[0].call.as_deref(), Some("13 11 14"));
        assert_eq!(get("NZ").lines[0].call.as_deref(), Some("1737"));
        assert_eq!(get("CA").lines[0].call.as_deref(), Some("988"));
    }

    #[test]
    fn the_country_comes_from_the_patients_zone_then_the_clinic_then_its_zone() {
        let zones = ZoneCountries::vendored();
        let chicago = resources(&inputs(None, "America/Chicago"), &zones);
        assert_eq!(
            (chicago.country.as_deref(), chicago.source.as_str()),
            (Some("US"), "clinic_timezone")
        );
        assert!(
            chicago
                .lines
                .iter()
                .any(|l| l.call.as_deref() == Some("988"))
        );
        // A patient in Auckland of a Chicago clinic is shown New Zealand's lines, not 988.
        let mut abroad = inputs(None, "America/Chicago");
        abroad.patient_timezone = "Pacific/Auckland";
        let nz = resources(&abroad, &zones);
        assert_eq!(
            (nz.country.as_deref(), nz.source.as_str()),
            (Some("NZ"), "patient_timezone")
        );
        assert_eq!(nz.emergency_number.as_deref(), Some("111"));
        assert!(nz.lines.iter().all(|l| l.call.as_deref() != Some("988")));
        // A zone of no country (UTC) falls back to the clinic's country.
        let gb = resources(&inputs(Some("gb"), "America/Chicago"), &zones);
        assert_eq!(
            (gb.country.as_deref(), gb.source.as_str()),
            (Some("GB"), "clinic_country")
        );
    }

    #[test]
    fn without_listed_lines_the_clinic_and_the_directory_are_shown_never_nothing() {
        let zones = ZoneCountries::vendored();
        let mut fr = inputs(None, "Europe/Paris");
        fr.clinic_phone = Some("+33 1 23 45 67 89");
        let fr = resources(&fr, &zones);
        assert_eq!(fr.country.as_deref(), Some("FR"));
        assert_eq!(fr.emergency_number, None);
        assert!(fr.message.contains("local emergency number"));
        assert_eq!(fr.lines[0].call.as_deref(), Some("+33 1 23 45 67 89"));
        assert_eq!(fr.lines[1].url.as_deref(), Some(DIRECTORY_URL));
        let nothing = resources(&inputs(None, "UTC"), &zones);
        assert_eq!(nothing.source, "unknown");
        assert_eq!(nothing.lines.len(), 1, "the directory, at least");
    }

    #[test]
    fn a_clinic_list_replaces_the_national_one_and_is_validated() {
        let zones = ZoneCountries::vendored();
        let own = CrisisOverride {
            emergency_number: "112".into(),
            lines: vec![line("SOS Amitié", Some("09 72 39 40 50"), None)],
        };
        assert!(own.problems().is_empty());
        let mut with = inputs(Some("US"), "UTC");
        with.clinic_override = Some(&own);
        with.clinic_phone = Some("555");
        let shown = resources(&with, &zones);
        assert_eq!(shown.lines, own.lines, "replaced, not added to");
        assert_eq!(shown.emergency_number.as_deref(), Some("112"));
        // For its own country only: a patient whose zone is elsewhere gets that country's lines.
        with.patient_timezone = "America/New_York";
        assert_eq!(resources(&with, &zones).source, "clinic_override");
        with.patient_timezone = "Europe/Dublin";
        let abroad = resources(&with, &zones);
        assert_eq!(
            (abroad.source.as_str(), abroad.country.as_deref()),
            ("patient_timezone", Some("IE"))
        );
        assert_eq!(abroad.emergency_numbers, ["112", "999"]);
        let bad = CrisisOverride {
            emergency_number: "call us".into(),
            lines: vec![CrisisLine {
                name: String::new(),
                call: None,
                text: Some("x".into()),
                url: Some("ftp://x".into()),
            }],
        };
        let problems = bad.problems();
        for field in [
            "crisis_resources.emergency_number",
            "crisis_resources.lines[0].name",
            "crisis_resources.lines[0].text",
            "crisis_resources.lines[0].url",
        ] {
            assert!(problems.contains_key(field), "{field}: {problems:?}");
        }
    }
}
