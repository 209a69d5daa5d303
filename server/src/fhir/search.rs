//! The resource types served and their search parameters, and the parsing of a search's query
//! string into a [`Search`]. Pure: an unknown or malformed parameter is a [`SearchError`] that the
//! handler answers as a 400 OperationOutcome, never silence.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};

/// Results per page when `_count` is not given.
pub const DEFAULT_COUNT: i64 = 50;
/// The most results per page.
pub const MAX_COUNT: i64 = 200;

/// A resource type served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    /// One per instrument version.
    Questionnaire,
    /// One per check-in.
    QuestionnaireResponse,
    /// Derived from check-ins.
    Observation,
    /// One per patient account.
    Patient,
    /// One per clinic.
    Organization,
    /// One per alert, active while it is unresolved.
    Flag,
    /// One per alert: the care team's work.
    Task,
}

/// The FHIR type of a search parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `Patient/{id}` or `{id}`.
    Reference,
    /// `ge`/`le` prefixed date or dateTime; may repeat.
    Date,
    /// `[system|]code`.
    Token,
    /// A positive number.
    Number,
}

impl ParamKind {
    /// The CapabilityStatement's `searchParam.type`.
    pub fn fhir_type(self) -> &'static str {
        match self {
            ParamKind::Reference => "reference",
            ParamKind::Date => "date",
            ParamKind::Token => "token",
            ParamKind::Number => "number",
        }
    }
}

impl ResourceType {
    /// Every type, in CapabilityStatement order.
    pub const ALL: [ResourceType; 7] = [
        ResourceType::Questionnaire,
        ResourceType::QuestionnaireResponse,
        ResourceType::Observation,
        ResourceType::Patient,
        ResourceType::Organization,
        ResourceType::Flag,
        ResourceType::Task,
    ];

    /// The FHIR name.
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Questionnaire => "Questionnaire",
            ResourceType::QuestionnaireResponse => "QuestionnaireResponse",
            ResourceType::Observation => "Observation",
            ResourceType::Patient => "Patient",
            ResourceType::Organization => "Organization",
            ResourceType::Flag => "Flag",
            ResourceType::Task => "Task",
        }
    }

    /// Parses a FHIR name (case-sensitive, as FHIR is).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The search parameters supported, besides `_cursor` (the paging position of our own
    /// `next` links) and `_format`.
    pub fn search_params(self) -> &'static [(&'static str, ParamKind)] {
        use ParamKind::{Date, Number, Reference, Token};
        match self {
            ResourceType::Questionnaire | ResourceType::Organization => &[("_count", Number)],
            ResourceType::Patient => &[("_lastUpdated", Date), ("_count", Number)],
            ResourceType::QuestionnaireResponse => &[
                ("patient", Reference),
                ("authored", Date),
                ("status", Token),
                ("_lastUpdated", Date),
                ("_count", Number),
            ],
            ResourceType::Observation => &[
                ("patient", Reference),
                ("date", Date),
                ("code", Token),
                ("status", Token),
                ("_lastUpdated", Date),
                ("_count", Number),
            ],
            ResourceType::Flag | ResourceType::Task => &[
                ("patient", Reference),
                ("status", Token),
                ("_count", Number),
            ],
        }
    }
}

/// A time range, `from` inclusive and `to` inclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Range {
    /// At or after.
    pub from: Option<NaiveDateTime>,
    /// At or before.
    pub to: Option<NaiveDateTime>,
}

/// A token: optional system, code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The system, when given as `system|code`.
    pub system: Option<String>,
    /// The code.
    pub code: String,
}

/// A parsed search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// The patient id asked for.
    pub patient: Option<String>,
    /// `authored` (QuestionnaireResponse) or `date` (Observation).
    pub date: Range,
    /// `_lastUpdated`.
    pub last_updated: Range,
    /// `code`.
    pub code: Option<Token>,
    /// `status`.
    pub status: Option<String>,
    /// Page size.
    pub count: i64,
    /// Where the page starts (from our own `next` link).
    pub cursor: Option<String>,
}

/// Why a search cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// A parameter the resource type does not support.
    #[error("Unknown search parameter '{0}' for this resource type.")]
    Unknown(String),
    /// A parameter given twice where only once makes sense.
    #[error("Search parameter '{0}' given more than once.")]
    Repeated(String),
    /// A value that cannot be read.
    #[error("Search parameter '{0}': {1}")]
    Invalid(String, &'static str),
}

fn parse_date_value(raw: &str, end_of: bool) -> Option<NaiveDateTime> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Some(at.with_timezone(&Utc).naive_utc());
    }
    let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()?;
    let start = date.and_hms_opt(0, 0, 0)?;
    Some(if end_of {
        start + TimeDelta::days(1) - TimeDelta::microseconds(1)
    } else {
        start
    })
}

fn parse_date(name: &str, raw: &str, range: &mut Range) -> Result<(), SearchError> {
    let invalid = || {
        SearchError::Invalid(
            name.to_owned(),
            "use ge or le followed by a date (YYYY-MM-DD) or an RFC 3339 date-time",
        )
    };
    let (prefix, value) = raw.split_at_checked(2).ok_or_else(invalid)?;
    match prefix {
        "ge" => {
            let at = parse_date_value(value, false).ok_or_else(invalid)?;
            range.from = Some(range.from.map_or(at, |f| f.max(at)));
        }
        "le" => {
            let at = parse_date_value(value, true).ok_or_else(invalid)?;
            range.to = Some(range.to.map_or(at, |t| t.min(at)));
        }
        _ => return Err(invalid()),
    }
    Ok(())
}

/// Parses the query string of a search on `resource`.
pub fn parse(resource: ResourceType, pairs: &[(String, String)]) -> Result<Search, SearchError> {
    let mut search = Search {
        patient: None,
        date: Range::default(),
        last_updated: Range::default(),
        code: None,
        status: None,
        count: DEFAULT_COUNT,
        cursor: None,
    };
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in pairs {
        let name = name.as_str();
        if name == "_format" {
            if matches!(
                value.as_str(),
                "json" | "application/json" | "application/fhir+json"
            ) {
                continue;
            }
            return Err(SearchError::Invalid(name.to_owned(), "only JSON is served"));
        }
        if name == "_cursor" {
            if search.cursor.replace(value.clone()).is_some() {
                return Err(SearchError::Repeated(name.to_owned()));
            }
            continue;
        }
        let Some((_, kind)) = resource.search_params().iter().find(|(n, _)| *n == name) else {
            return Err(SearchError::Unknown(name.to_owned()));
        };
        if *kind != ParamKind::Date {
            if seen.contains(&name) {
                return Err(SearchError::Repeated(name.to_owned()));
            }
            seen.push(name);
        }
        let invalid = |why| SearchError::Invalid(name.to_owned(), why);
        match name {
            "patient" => {
                let id = value.strip_prefix("Patient/").unwrap_or(value);
                if id.is_empty() || id.contains('/') {
                    return Err(invalid("expected Patient/{id} or {id}"));
                }
                search.patient = Some(id.to_owned());
            }
            "authored" | "date" => parse_date(name, value, &mut search.date)?,
            "_lastUpdated" => parse_date(name, value, &mut search.last_updated)?,
            "code" => {
                let token = match value.split_once('|') {
                    Some((system, code)) => Token {
                        system: (!system.is_empty()).then(|| system.to_owned()),
                        code: code.to_owned(),
                    },
                    None => Token {
                        system: None,
                        code: value.clone(),
                    },
                };
                if token.code.is_empty() {
                    return Err(invalid("expected [system|]code"));
                }
                search.code = Some(token);
            }
            "status" => {
                if value.is_empty() {
                    return Err(invalid("expected a status code"));
                }
                search.status = Some(value.clone());
            }
            "_count" => {
                search.count = value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=MAX_COUNT).contains(n))
                    .ok_or_else(|| invalid("expected a whole number from 1 to 200"))?;
            }
            _ => return Err(SearchError::Unknown(name.to_owned())),
        }
    }
    Ok(search)
}

/// A query string with `_cursor` replaced (for the `next` link).
pub fn with_cursor(pairs: &[(String, String)], cursor: &str) -> String {
    let mut kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(name, _)| name != "_cursor")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    kept.push(("_cursor", cursor));
    serde_urlencoded::to_string(kept).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(q).unwrap()
    }

    #[test]
    fn dates_with_ge_and_le_make_an_inclusive_range() {
        let s = parse(
            ResourceType::QuestionnaireResponse,
            &pairs("patient=Patient/abc&authored=ge2026-12-01&authored=le2026-12-02&_count=5"),
        )
        .unwrap();
        assert_eq!(s.patient.as_deref(), Some("abc"));
        assert_eq!(s.date.from.unwrap().to_string(), "2026-12-01 00:00:00");
        assert_eq!(s.date.to.unwrap().to_string(), "2026-12-02 23:59:59.999999");
        assert_eq!(s.count, 5);
    }

    #[test]
    fn unknown_repeated_and_malformed_parameters_are_errors() {
        assert_eq!(
            parse(ResourceType::Observation, &pairs("subject=Patient/x")),
            Err(SearchError::Unknown("subject".into()))
        );
        assert_eq!(
            parse(ResourceType::Flag, &pairs("authored=ge2026-01-01")),
            Err(SearchError::Unknown("authored".into()))
        );
        assert_eq!(
            parse(ResourceType::Observation, &pairs("code=a&code=b")),
            Err(SearchError::Repeated("code".into()))
        );
        assert!(matches!(
            parse(ResourceType::Observation, &pairs("date=2026-01-01")),
            Err(SearchError::Invalid(..))
        ));
        assert!(matches!(
            parse(ResourceType::Observation, &pairs("_count=0")),
            Err(SearchError::Invalid(..))
        ));
        assert!(matches!(
            parse(ResourceType::Observation, &pairs("_count=201")),
            Err(SearchError::Invalid(..))
        ));
    }

    #[test]
    fn a_code_token_may_name_its_system() {
        let s = parse(
            ResourceType::Observation,
            &pairs("code=http://loinc.org|44261-6"),
        )
        .unwrap();
        assert_eq!(
            s.code,
            Some(Token {
                system: Some("http://loinc.org".into()),
                code: "44261-6".into()
            })
        );
    }

    #[test]
    fn the_next_link_keeps_the_search_and_replaces_the_cursor() {
        let q = with_cursor(&pairs("code=44261-6&_cursor=old&_count=2"), "new|1");
        assert_eq!(q, "code=44261-6&_count=2&_cursor=new%7C1");
    }
}
