//! Crisis resources by country (CLINICAL.md), with the clinic's own number where it has one.
//! Pure data: the country and the clinic's number are passed in.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where to get help now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CrisisResources {
    /// ISO 3166-1 alpha-2 country the resources are for; null when unknown.
    pub country: Option<String>,
    /// What the app should show first, in plain words.
    pub message: String,
    /// The emergency number, when the country is known.
    pub emergency_number: Option<String>,
    /// Crisis lines to call or text.
    pub lines: Vec<CrisisLine>,
}

/// One crisis line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CrisisLine {
    /// Name of the service.
    pub name: String,
    /// Number to call, if calls are taken.
    pub call: Option<String>,
    /// Number to text, if texts are taken.
    pub text: Option<String>,
}

fn line(name: &str, call: Option<&str>, text: Option<&str>) -> CrisisLine {
    CrisisLine {
        name: name.to_owned(),
        call: call.map(str::to_owned),
        text: text.map(str::to_owned),
    }
}

/// Resources for `country` (ISO alpha-2, any case), with the clinic's number first if given.
pub fn resources_for(country: Option<&str>, clinic_phone: Option<&str>) -> CrisisResources {
    let country = country.map(str::to_ascii_uppercase);
    let (emergency, mut lines): (Option<&str>, Vec<CrisisLine>) = match country.as_deref() {
        Some("US") => (
            Some("911"),
            vec![line(
                "988 Suicide & Crisis Lifeline",
                Some("988"),
                Some("988"),
            )],
        ),
        Some("CA") => (
            Some("911"),
            vec![line(
                "9-8-8 Suicide Crisis Helpline",
                Some("988"),
                Some("988"),
            )],
        ),
        Some("GB") => (
            Some("999"),
            vec![
                line("Samaritans", Some("116 123"), None),
                line("NHS 111", Some("111"), None),
            ],
        ),
        Some("IE") => (Some("112"), vec![line("Samaritans", Some("116 123"), None)]),
        Some("AU") => (Some("000"), vec![line("Lifeline", Some("13 11 14"), None)]),
        Some("NZ") => (
            Some("111"),
            vec![line("Need to talk? 1737", Some("1737"), Some("1737"))],
        ),
        _ => (None, Vec::new()),
    };
    let known = emergency.is_some();
    if let Some(phone) = clinic_phone {
        lines.insert(0, line("Your clinic", Some(phone), None));
    }
    let message = match emergency {
        Some(number) => format!(
            "If you might act on these thoughts or are in danger, call {number} now. You can also reach the lines below at any hour."
        ),
        None => "If you might act on these thoughts or are in danger, call your local emergency number now.".to_owned(),
    };
    CrisisResources {
        country: if known { country } else { None },
        message,
        emergency_number: emergency.map(str::to_owned),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_listed_country_has_its_lines_and_emergency_number() {
        let us = resources_for(Some("us"), None);
        assert_eq!(us.emergency_number.as_deref(), Some("911"));
        assert_eq!(us.lines[0].text.as_deref(), Some("988"));
        assert_eq!(
            resources_for(Some("GB"), None).emergency_number.as_deref(),
            Some("999")
        );
        assert_eq!(
            resources_for(Some("IE"), None).emergency_number.as_deref(),
            Some("112")
        );
        assert_eq!(
            resources_for(Some("AU"), None).lines[0].call.as_deref(),
            Some("13 11 14")
        );
        assert_eq!(
            resources_for(Some("NZ"), None).lines[0].call.as_deref(),
            Some("1737")
        );
        assert_eq!(
            resources_for(Some("CA"), None).lines[0].call.as_deref(),
            Some("988")
        );
    }

    #[test]
    fn an_unknown_country_gets_the_clinic_and_the_local_emergency_number() {
        let unknown = resources_for(Some("FR"), Some("+33 1 23 45 67 89"));
        assert_eq!(unknown.country, None);
        assert_eq!(unknown.emergency_number, None);
        assert!(unknown.message.contains("local emergency number"));
        assert_eq!(unknown.lines[0].call.as_deref(), Some("+33 1 23 45 67 89"));
        assert!(resources_for(None, None).lines.is_empty());
    }
}
