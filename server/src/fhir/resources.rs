//! Pure mapping from domain rows to FHIR R4 JSON: Questionnaire per instrument version,
//! QuestionnaireResponse and Observations per check-in, Patient, Organization, Flag and Task per
//! alert, and the Bundle, OperationOutcome and CapabilityStatement around them. No database, no
//! clock: the rows and the installation's base URL come in, JSON goes out.

use chrono::{NaiveDateTime, SecondsFormat};
use serde_json::{Map, Value, json};

use crate::check_in::CheckInRow;
use crate::clinic::ClinicRow;
use crate::escalation::AlertRow;
use crate::instrument::catalogue::{AnswerKind, Instrument, Item};

/// LOINC's system URI.
pub const LOINC: &str = "http://loinc.org";
/// UCUM's system URI.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// The FHIR version served.
pub const FHIR_VERSION: &str = "4.0.1";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const FLAG_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/flag-category";
const BULK_DATA: &str = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition";

/// A FHIR `instant`/`dateTime` for a stored UTC time.
pub fn instant(at: NaiveDateTime) -> String {
    at.and_utc().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The local code systems of this installation, under its base URL.
#[derive(Debug, Clone)]
pub struct Systems {
    base: String,
}

impl Systems {
    /// The systems under `base` (scheme and host, no trailing slash).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The installation's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The FHIR endpoint (`{base}/fhir/r4`).
    pub fn fhir_base(&self) -> String {
        format!("{}/fhir/r4", self.base)
    }

    /// Items without a LOINC code (the daily mood items).
    pub fn items(&self) -> String {
        format!("{}/fhir/r4/CodeSystem/companion-items", self.base)
    }

    /// Answer options without a LOINC answer code.
    pub fn answers(&self) -> String {
        format!("{}/fhir/r4/CodeSystem/companion-answers", self.base)
    }

    /// Severity bands of the scored instruments.
    pub fn severity(&self) -> String {
        format!("{}/fhir/r4/CodeSystem/companion-severity", self.base)
    }

    /// Alert rules.
    pub fn alert_rules(&self) -> String {
        format!("{}/fhir/r4/CodeSystem/companion-alert-rule", self.base)
    }

    /// The canonical URL of an instrument's Questionnaire (all versions share it).
    pub fn questionnaire_url(&self, instrument_key: &str) -> String {
        format!(
            "{}/fhir/r4/Questionnaire/{}",
            self.base,
            fhir_id_of_key(instrument_key)
        )
    }
}

/// Catalogue keys use `_`, which a FHIR id may not hold.
pub fn fhir_id_of_key(key: &str) -> String {
    key.replace('_', "-")
}

/// The id of the Questionnaire for one instrument version, e.g. `daily-mood-1`.
pub fn questionnaire_id(instrument: &Instrument) -> String {
    format!("{}-{}", fhir_id_of_key(&instrument.key), instrument.version)
}

/// Reads a Questionnaire id back into (catalogue key, version).
pub fn parse_questionnaire_id(id: &str) -> Option<(String, i32)> {
    let (key, version) = id.rsplit_once('-')?;
    Some((key.replace('-', "_"), version.parse().ok()?))
}

fn coding(system: &str, code: &str, display: Option<&str>) -> Value {
    let mut value = json!({"system": system, "code": code});
    if let Some(display) = display {
        value["display"] = json!(display);
    }
    value
}

fn item_coding(systems: &Systems, item: &Item) -> Value {
    match &item.loinc {
        Some(code) => coding(LOINC, code, Some(&item.text)),
        None => coding(&systems.items(), &item.id, Some(&item.text)),
    }
}

fn option_coding(
    systems: &Systems,
    item: &Item,
    value: i64,
    label: &str,
    loinc: Option<&str>,
) -> Value {
    match loinc {
        Some(code) => coding(LOINC, code, Some(label)),
        None => coding(
            &systems.answers(),
            &format!("{}-{value}", item.id),
            Some(label),
        ),
    }
}

/// The Questionnaire of one instrument version.
pub fn questionnaire(systems: &Systems, instrument: &Instrument) -> Value {
    let items: Vec<Value> = instrument
        .items
        .iter()
        .map(|item| {
            let mut out = json!({
                "linkId": item.id,
                "code": [item_coding(systems, item)],
                "text": item.text,
                "required": item.required,
            });
            match &item.answer {
                AnswerKind::Choice { options } => {
                    out["type"] = json!("choice");
                    out["answerOption"] = options
                        .iter()
                        .map(|o| {
                            json!({"valueCoding": option_coding(systems, item, o.value, &o.label, o.loinc.as_deref())})
                        })
                        .collect();
                }
                AnswerKind::Integer { .. } => out["type"] = json!("integer"),
                AnswerKind::Number { .. } => out["type"] = json!("decimal"),
                AnswerKind::Boolean => out["type"] = json!("boolean"),
                AnswerKind::Text { max_length } => {
                    out["type"] = json!("text");
                    out["maxLength"] = json!(max_length);
                }
            }
            out
        })
        .collect();
    let mut out = json!({
        "resourceType": "Questionnaire",
        "id": questionnaire_id(instrument),
        "url": systems.questionnaire_url(&instrument.key),
        "version": instrument.version.to_string(),
        "name": instrument.title.replace(['-', ' '], ""),
        "title": instrument.title,
        "status": "active",
        "subjectType": ["Patient"],
        "description": instrument.instructions,
        "item": items,
    });
    if let Some(panel) = &instrument.loinc_panel {
        out["code"] = json!([coding(LOINC, panel, Some(&instrument.title))]);
    }
    out
}

fn meta(at: NaiveDateTime) -> Value {
    json!({"lastUpdated": instant(at)})
}

fn patient_ref(id: &str) -> Value {
    json!({"reference": format!("Patient/{id}")})
}

/// A patient as FHIR shows it: id, display name if set, managing organization. Never the email.
pub fn patient(
    id: &str,
    clinic_id: &str,
    display_name: Option<&str>,
    active: bool,
    updated_at: NaiveDateTime,
) -> Value {
    let mut out = json!({
        "resourceType": "Patient",
        "id": id,
        "meta": meta(updated_at),
        "active": active,
        "managingOrganization": {"reference": format!("Organization/{clinic_id}")},
    });
    if let Some(name) = display_name.filter(|n| !n.trim().is_empty()) {
        out["name"] = json!([{"text": name}]);
    }
    out
}

/// A clinic.
pub fn organization(clinic: &ClinicRow) -> Value {
    json!({
        "resourceType": "Organization",
        "id": clinic.id,
        "meta": meta(clinic.created_at),
        "active": true,
        "name": clinic.name,
    })
}

fn answers_of(row: &CheckInRow) -> Map<String, Value> {
    match serde_json::from_str(&row.answers) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn answer_value(systems: &Systems, item: &Item, value: &Value) -> Option<Value> {
    Some(match &item.answer {
        AnswerKind::Choice { options } => {
            let chosen = value.as_i64()?;
            let option = options.iter().find(|o| o.value == chosen)?;
            json!({"valueCoding": option_coding(systems, item, option.value, &option.label, option.loinc.as_deref())})
        }
        AnswerKind::Integer { .. } => json!({"valueInteger": value.as_i64()?}),
        AnswerKind::Number { .. } => json!({"valueDecimal": value.as_f64()?}),
        AnswerKind::Boolean => json!({"valueBoolean": value.as_bool()?}),
        AnswerKind::Text { .. } => json!({"valueString": value.as_str()?}),
    })
}

/// A check-in's QuestionnaireResponse status: `amended` after an amendment, `stopped` for a
/// safety answer kept with other answers missing or invalid (partly filled in, and not to be
/// continued), else `completed`.
fn response_status(row: &CheckInRow) -> &'static str {
    if row.amended_at.is_some() {
        "amended"
    } else if row.status == crate::check_in::INCOMPLETE {
        "stopped"
    } else {
        "completed"
    }
}

/// A check-in as a QuestionnaireResponse (linkId = the item id, in the instrument's item order).
pub fn questionnaire_response(
    systems: &Systems,
    instrument: &Instrument,
    row: &CheckInRow,
) -> Value {
    let answers = answers_of(row);
    let items: Vec<Value> = instrument
        .items
        .iter()
        .filter_map(|item| {
            let answer = answer_value(systems, item, answers.get(&item.id)?)?;
            Some(json!({"linkId": item.id, "text": item.text, "answer": [answer]}))
        })
        .collect();
    let mut out = json!({
        "resourceType": "QuestionnaireResponse",
        "id": row.id,
        "meta": meta(row.received_at),
        "questionnaire": format!("{}|{}", systems.questionnaire_url(&instrument.key), instrument.version),
        "status": response_status(row),
        "subject": patient_ref(&row.patient_id),
        "authored": instant(row.completed_at),
    });
    if !items.is_empty() {
        out["item"] = json!(items);
    }
    out
}

/// The kinds of Observation derived from a check-in; the suffix of the Observation's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservationKind {
    /// The instrument's total score.
    Total,
    /// PHQ-9 item 9 on its own.
    Item9,
    /// The blood-pressure panel with its components.
    BloodPressure,
    /// Sleep duration.
    Sleep,
    /// Daily mood (local code).
    Mood,
}

impl ObservationKind {
    /// Every kind, in the order a check-in's Observations are listed.
    pub const ALL: [ObservationKind; 5] = [
        ObservationKind::Total,
        ObservationKind::Item9,
        ObservationKind::BloodPressure,
        ObservationKind::Sleep,
        ObservationKind::Mood,
    ];

    /// The id suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            ObservationKind::Total => "total",
            ObservationKind::Item9 => "item9",
            ObservationKind::BloodPressure => "bp",
            ObservationKind::Sleep => "sleep",
            ObservationKind::Mood => "mood",
        }
    }

    /// Parses an id suffix.
    pub fn from_suffix(suffix: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.suffix() == suffix)
    }
}

/// The Observation id of one kind derived from a check-in.
pub fn observation_id(check_in_id: &str, kind: ObservationKind) -> String {
    format!("{check_in_id}-{}", kind.suffix())
}

/// Reads an Observation id back into (check-in id, kind).
pub fn parse_observation_id(id: &str) -> Option<(String, ObservationKind)> {
    let (check_in, suffix) = id.rsplit_once('-')?;
    Some((check_in.to_owned(), ObservationKind::from_suffix(suffix)?))
}

/// A code an Observation search may ask for: (system, code, the kinds and instruments it
/// selects). The mood code is in the installation's own system.
pub fn observation_code_matches(
    systems: &Systems,
    kind: ObservationKind,
    instrument: &str,
    system: Option<&str>,
    code: &str,
) -> bool {
    let (own_system, own_code) = match (kind, instrument) {
        (ObservationKind::Total, "phq9") => (LOINC.to_owned(), "44261-6"),
        (ObservationKind::Total, "phq2") => (LOINC.to_owned(), "55758-7"),
        (ObservationKind::Total, "gad7") => (LOINC.to_owned(), "70274-6"),
        (ObservationKind::Total, _) => return false,
        (ObservationKind::Item9, _) => (LOINC.to_owned(), "44260-8"),
        (ObservationKind::BloodPressure, _) => (LOINC.to_owned(), "85354-9"),
        (ObservationKind::Sleep, _) => (LOINC.to_owned(), "93832-4"),
        (ObservationKind::Mood, _) => (systems.items(), "mood"),
    };
    own_code == code && system.is_none_or(|s| s == own_system)
}

/// The instruments whose check-ins can yield an Observation with this code (to narrow a search
/// in SQL); `None` for a code no Observation has.
pub fn instruments_for_code(
    systems: &Systems,
    system: Option<&str>,
    code: &str,
) -> Vec<&'static str> {
    ["phq9", "phq2", "gad7", "daily_mood"]
        .into_iter()
        .filter(|instrument| {
            ObservationKind::ALL
                .into_iter()
                .any(|kind| observation_code_matches(systems, kind, instrument, system, code))
        })
        .collect()
}

fn observation_base(
    systems: &Systems,
    row: &CheckInRow,
    kind: ObservationKind,
    code: Value,
) -> Value {
    let _ = systems;
    json!({
        "resourceType": "Observation",
        "id": observation_id(&row.id, kind),
        "meta": meta(row.received_at),
        "status": "final",
        "category": [{"coding": [coding(OBSERVATION_CATEGORY, "survey", Some("Survey"))]}],
        "code": {"coding": [code]},
        "subject": patient_ref(&row.patient_id),
        "effectiveDateTime": instant(row.completed_at),
        "issued": instant(row.received_at),
        "derivedFrom": [{"reference": format!("QuestionnaireResponse/{}", row.id)}],
    })
}

fn quantity(value: f64, unit: &str, code: &str) -> Value {
    json!({"value": value, "unit": unit, "system": UCUM, "code": code})
}

/// The Observations derived from a check-in, in [`ObservationKind::ALL`] order: the total score
/// (with the severity band as its interpretation), item 9 on its own, the blood-pressure panel,
/// sleep duration and mood, each only when the check-in holds it.
pub fn observations(systems: &Systems, instrument: &Instrument, row: &CheckInRow) -> Vec<Value> {
    let answers = answers_of(row);
    let mut out = Vec::new();
    if let (Some(total_code), Some(total)) = (&instrument.loinc_total, row.total) {
        let mut obs = observation_base(
            systems,
            row,
            ObservationKind::Total,
            coding(
                LOINC,
                total_code,
                Some(&format!("{} total score", instrument.title)),
            ),
        );
        obs["valueInteger"] = json!(total);
        let band = row.severity.as_deref().and_then(|key| {
            instrument
                .scoring
                .as_ref()
                .and_then(|s| s.bands.iter().find(|b| b.key == key))
        });
        if let Some(band) = band {
            obs["interpretation"] = json!([{
                "coding": [coding(&systems.severity(), &band.key, Some(&band.label))],
                "text": band.label,
            }]);
        }
        out.push(obs);
    }
    if instrument.key == "phq9"
        && let Some(item9) = row.item9
        && let Some(item) = instrument.items.iter().find(|i| i.id == "q9")
        && let Some(answer) = answer_value(systems, item, &json!(item9))
    {
        let mut obs = observation_base(
            systems,
            row,
            ObservationKind::Item9,
            coding(LOINC, "44260-8", Some(&item.text)),
        );
        obs["valueCodeableConcept"] = json!({"coding": [answer["valueCoding"].clone()]});
        out.push(obs);
    }
    let number = |key: &str| answers.get(key).and_then(Value::as_f64);
    let (systolic, diastolic) = (number("bp_systolic"), number("bp_diastolic"));
    if systolic.is_some() || diastolic.is_some() {
        let mut obs = observation_base(
            systems,
            row,
            ObservationKind::BloodPressure,
            coding(
                LOINC,
                "85354-9",
                Some("Blood pressure panel with all children optional"),
            ),
        );
        let components: Vec<Value> = [
            ("8480-6", "Systolic blood pressure", systolic),
            ("8462-4", "Diastolic blood pressure", diastolic),
        ]
        .into_iter()
        .filter_map(|(code, display, value)| {
            Some(json!({
                "code": {"coding": [coding(LOINC, code, Some(display))]},
                "valueQuantity": quantity(value?, "mmHg", "mm[Hg]"),
            }))
        })
        .collect();
        obs["component"] = json!(components);
        out.push(obs);
    }
    if let Some(hours) = number("sleep_hours") {
        let mut obs = observation_base(
            systems,
            row,
            ObservationKind::Sleep,
            coding(LOINC, "93832-4", Some("Sleep duration")),
        );
        obs["valueQuantity"] = quantity(hours, "h", "h");
        out.push(obs);
    }
    if instrument.key == "daily_mood"
        && let Some(mood) = answers.get("mood").and_then(Value::as_i64)
    {
        let mut obs = observation_base(
            systems,
            row,
            ObservationKind::Mood,
            coding(
                &systems.items(),
                "mood",
                Some("Mood (0 worst possible, 10 best possible)"),
            ),
        );
        obs["valueInteger"] = json!(mood);
        out.push(obs);
    }
    out
}

/// The kind of an Observation built by [`observations`].
pub fn kind_of(observation: &Value) -> Option<ObservationKind> {
    let id = observation["id"].as_str()?;
    parse_observation_id(id).map(|(_, kind)| kind)
}

fn alert_last_updated(alert: &AlertRow) -> NaiveDateTime {
    [
        Some(alert.opened_at),
        Some(alert.last_signal_at),
        alert.acknowledged_at,
        alert.resolved_at,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(alert.opened_at)
}

fn rule_code(systems: &Systems, alert: &AlertRow) -> Value {
    json!({
        "coding": [coding(&systems.alert_rules(), &alert.rule, None)],
        "text": alert.rule.replace('_', " "),
    })
}

/// A Flag status for an alert: active until the alert is resolved.
pub fn flag_status(alert_status: &str) -> &'static str {
    if alert_status == "resolved" {
        "inactive"
    } else {
        "active"
    }
}

/// A Task status for an alert status.
pub fn task_status(alert_status: &str) -> &'static str {
    match alert_status {
        "acknowledged" => "accepted",
        "resolved" => "completed",
        _ => "requested",
    }
}

/// The alert statuses a Task status stands for (for search).
pub fn alert_statuses_of_task_status(status: &str) -> Option<&'static [&'static str]> {
    match status {
        "requested" => Some(&["open"]),
        "accepted" => Some(&["acknowledged"]),
        "completed" => Some(&["resolved"]),
        _ => None,
    }
}

/// The alert statuses a Flag status stands for (for search).
pub fn alert_statuses_of_flag_status(status: &str) -> Option<&'static [&'static str]> {
    match status {
        "active" => Some(&["open", "acknowledged"]),
        "inactive" => Some(&["resolved"]),
        _ => None,
    }
}

/// A Task priority for an alert severity.
pub fn task_priority(severity: &str) -> &'static str {
    match severity {
        "urgent" => "stat",
        "high" => "urgent",
        "medium" => "asap",
        _ => "routine",
    }
}

/// The Flag on the patient for an alert (active while the alert is unresolved).
pub fn flag(systems: &Systems, alert: &AlertRow) -> Value {
    let mut period = json!({"start": instant(alert.opened_at)});
    if let Some(end) = alert.resolved_at {
        period["end"] = json!(instant(end));
    }
    json!({
        "resourceType": "Flag",
        "id": alert.id,
        "meta": meta(alert_last_updated(alert)),
        "status": flag_status(&alert.status),
        "category": [{"coding": [coding(FLAG_CATEGORY, "clinical", Some("Clinical"))]}],
        "code": rule_code(systems, alert),
        "subject": patient_ref(&alert.patient_id),
        "period": period,
    })
}

/// The Task of the care team for an alert: status, priority, owner, and the acknowledgement
/// deadline as `restriction.period.end`.
pub fn task(systems: &Systems, alert: &AlertRow) -> Value {
    let mut out = json!({
        "resourceType": "Task",
        "id": alert.id,
        "meta": meta(alert_last_updated(alert)),
        "status": task_status(&alert.status),
        "intent": "order",
        "priority": task_priority(&alert.severity),
        "code": rule_code(systems, alert),
        "focus": {"reference": format!("Flag/{}", alert.id)},
        "for": patient_ref(&alert.patient_id),
        "authoredOn": instant(alert.opened_at),
        "lastModified": instant(alert_last_updated(alert)),
        "requester": {"reference": format!("Organization/{}", alert.clinic_id)},
        "restriction": {"period": {"end": instant(alert.ack_deadline)}},
    });
    let owner = alert
        .assigned_to
        .as_deref()
        .or(alert.acknowledged_by.as_deref());
    if let Some(owner) = owner {
        out["owner"] = json!({"reference": format!("Practitioner/{owner}")});
    }
    if let Some(check_in) = &alert.check_in_id {
        out["reasonReference"] = json!({"reference": format!("QuestionnaireResponse/{check_in}")});
    }
    out
}

/// A searchset Bundle with `self` and, when there is more, `next` links.
pub fn bundle(
    systems: &Systems,
    self_url: &str,
    next_url: Option<&str>,
    resources: Vec<Value>,
) -> Value {
    let fhir_base = systems.fhir_base();
    let mut links = vec![json!({"relation": "self", "url": self_url})];
    if let Some(next) = next_url {
        links.push(json!({"relation": "next", "url": next}));
    }
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|resource| {
            let full_url = format!(
                "{fhir_base}/{}/{}",
                resource["resourceType"].as_str().unwrap_or_default(),
                resource["id"].as_str().unwrap_or_default()
            );
            json!({"fullUrl": full_url, "resource": resource, "search": {"mode": "match"}})
        })
        .collect();
    let mut out = json!({"resourceType": "Bundle", "type": "searchset", "link": links});
    if !entries.is_empty() {
        out["entry"] = json!(entries);
    }
    out
}

/// An OperationOutcome with one error issue.
pub fn operation_outcome(code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    })
}

/// The CapabilityStatement: exactly the resources, interactions and search parameters served.
pub fn capability_statement(systems: &Systems, date: NaiveDateTime) -> Value {
    let resources: Vec<Value> = crate::fhir::search::ResourceType::ALL
        .iter()
        .map(|resource| {
            let params: Vec<Value> = resource
                .search_params()
                .iter()
                .map(|(name, kind)| json!({"name": name, "type": kind.fhir_type()}))
                .collect();
            let mut entry = json!({
                "type": resource.name(),
                "interaction": [{"code": "read"}, {"code": "search-type"}],
            });
            if !params.is_empty() {
                entry["searchParam"] = json!(params);
            }
            if *resource == crate::fhir::search::ResourceType::Patient {
                entry["operation"] = json!([{"name": "export", "definition": format!("{BULK_DATA}/patient-export")}]);
            }
            entry
        })
        .chain([json!({
            "type": "Group",
            "operation": [{"name": "export", "definition": format!("{BULK_DATA}/group-export")}],
        })])
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(date),
        "kind": "instance",
        "software": {"name": "Companion"},
        "implementation": {"description": "Companion FHIR R4 read API", "url": systems.fhir_base()},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "security": {
                "service": [{"coding": [coding(
                    "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "SMART-on-FHIR",
                    Some("SMART-on-FHIR"),
                )]}],
                "description": "Bearer access token of a clinic staff member (POST /v1/auth/login), or of a system client from POST /oauth/token (SMART Backend Services, see /.well-known/smart-configuration); every resource is scoped to the caller's clinic. The Group for $export is the caller's clinic (its id).",
            },
            "resource": resources,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::catalogue::Catalogue;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn check_in(
        instrument: &str,
        answers: Value,
        total: Option<i32>,
        severity: Option<&str>,
        item9: Option<i32>,
    ) -> CheckInRow {
        CheckInRow {
            safety_alert_id: None,
            id: "0190c1d2-0000-7000-8000-000000000001".into(),
            patient_id: "0190c1d2-0000-7000-8000-0000000000aa".into(),
            clinic_id: "0190c1d2-0000-7000-8000-0000000000cc".into(),
            instrument: instrument.into(),
            instrument_version: 1,
            answers: answers.to_string(),
            total,
            severity: severity.map(str::to_owned),
            item9,
            completed_at: at("2026-12-01 09:00:00"),
            received_at: at("2026-12-01 09:00:05"),
            prompt_id: None,
            content_hash: String::new(),
            device_completed_at: None,
            timing: "on_time".into(),
            mood: None,
            status: "complete".into(),
            problems: None,
            answers_hash: None,
            amended_at: None,
            earlier_versions: None,
        }
    }

    fn systems() -> Systems {
        Systems::new("https://companion.example/")
    }

    #[test]
    fn phq9_questionnaire_carries_loinc_item_and_answer_codes() {
        let catalogue = Catalogue::default();
        let q = questionnaire(&systems(), catalogue.find("phq9", Some(1)).unwrap());
        assert_eq!(q["id"], "phq9-1");
        assert_eq!(
            q["url"],
            "https://companion.example/fhir/r4/Questionnaire/phq9"
        );
        assert_eq!(q["code"][0]["code"], "44249-1");
        let q9 = &q["item"][8];
        assert_eq!(q9["linkId"], "q9");
        assert_eq!(q9["code"][0]["system"], LOINC);
        assert_eq!(q9["code"][0]["code"], "44260-8");
        assert_eq!(q9["answerOption"][3]["valueCoding"]["code"], "LA6571-9");
    }

    #[test]
    fn daily_mood_items_without_loinc_use_the_local_system_under_the_base_url() {
        let catalogue = Catalogue::default();
        let q = questionnaire(&systems(), catalogue.find("daily_mood", Some(1)).unwrap());
        assert_eq!(q["id"], "daily-mood-1");
        assert_eq!(
            parse_questionnaire_id("daily-mood-1"),
            Some(("daily_mood".into(), 1))
        );
        let mood = &q["item"][0];
        assert_eq!(
            mood["code"][0]["system"],
            "https://companion.example/fhir/r4/CodeSystem/companion-items"
        );
        assert_eq!(mood["type"], "integer");
        assert_eq!(q["item"][1]["code"][0]["code"], "93832-4");
    }

    #[test]
    fn a_phq9_check_in_yields_total_and_item_nine_observations_derived_from_its_response() {
        let catalogue = Catalogue::default();
        let phq9 = catalogue.find("phq9", Some(1)).unwrap();
        let row = check_in(
            "phq9",
            json!({"q1": 3, "q2": 3, "q3": 2, "q4": 2, "q5": 2, "q6": 2, "q7": 2, "q8": 2, "q9": 1}),
            Some(19),
            Some("moderately_severe"),
            Some(1),
        );
        let qr = questionnaire_response(&systems(), phq9, &row);
        assert_eq!(qr["item"][8]["linkId"], "q9");
        assert_eq!(
            qr["item"][8]["answer"][0]["valueCoding"]["code"],
            "LA6569-3"
        );
        assert_eq!(qr["authored"], "2026-12-01T09:00:00.000000Z");
        assert_eq!(
            qr["questionnaire"],
            "https://companion.example/fhir/r4/Questionnaire/phq9|1"
        );
        let obs = observations(&systems(), phq9, &row);
        assert_eq!(obs.len(), 2);
        assert_eq!(obs[0]["code"]["coding"][0]["code"], "44261-6");
        assert_eq!(obs[0]["valueInteger"], 19);
        assert_eq!(
            obs[0]["interpretation"][0]["coding"][0]["code"],
            "moderately_severe"
        );
        assert_eq!(obs[0]["category"][0]["coding"][0]["code"], "survey");
        assert_eq!(
            obs[0]["derivedFrom"][0]["reference"],
            format!("QuestionnaireResponse/{}", row.id)
        );
        assert_eq!(obs[1]["code"]["coding"][0]["code"], "44260-8");
        assert_eq!(
            obs[1]["valueCodeableConcept"]["coding"][0]["code"],
            "LA6569-3"
        );
        assert_eq!(kind_of(&obs[1]), Some(ObservationKind::Item9));
    }

    #[test]
    fn a_daily_mood_check_in_yields_blood_pressure_sleep_and_mood() {
        let catalogue = Catalogue::default();
        let mood = catalogue.find("daily_mood", Some(1)).unwrap();
        let row = check_in(
            "daily_mood",
            json!({"mood": 4, "sleep_hours": 6.5, "bp_systolic": 150, "bp_diastolic": 95}),
            None,
            None,
            None,
        );
        let obs = observations(&systems(), mood, &row);
        let kinds: Vec<_> = obs.iter().filter_map(kind_of).collect();
        assert_eq!(
            kinds,
            [
                ObservationKind::BloodPressure,
                ObservationKind::Sleep,
                ObservationKind::Mood
            ]
        );
        assert_eq!(
            obs[0]["component"][0]["code"]["coding"][0]["code"],
            "8480-6"
        );
        assert_eq!(obs[0]["component"][1]["valueQuantity"]["value"], 95.0);
        assert_eq!(obs[1]["valueQuantity"]["code"], "h");
        assert_eq!(obs[2]["valueInteger"], 4);
        let s = systems();
        assert_eq!(
            instruments_for_code(&s, Some(LOINC), "85354-9"),
            ["phq9", "phq2", "gad7", "daily_mood"]
        );
        assert_eq!(instruments_for_code(&s, None, "44261-6"), ["phq9"]);
        assert!(instruments_for_code(&s, Some(LOINC), "mood").is_empty());
    }

    #[test]
    fn observation_ids_round_trip() {
        let id = observation_id(
            "0190c1d2-0000-7000-8000-000000000001",
            ObservationKind::BloodPressure,
        );
        assert_eq!(
            parse_observation_id(&id),
            Some((
                "0190c1d2-0000-7000-8000-000000000001".into(),
                ObservationKind::BloodPressure
            ))
        );
        assert_eq!(parse_observation_id("nonsense"), None);
    }

    #[test]
    fn alert_statuses_map_to_flag_and_task() {
        assert_eq!(flag_status("open"), "active");
        assert_eq!(flag_status("acknowledged"), "active");
        assert_eq!(flag_status("resolved"), "inactive");
        assert_eq!(task_status("open"), "requested");
        assert_eq!(task_status("acknowledged"), "accepted");
        assert_eq!(task_status("resolved"), "completed");
        assert_eq!(task_priority("urgent"), "stat");
        for status in ["requested", "accepted", "completed"] {
            let back = alert_statuses_of_task_status(status).unwrap();
            assert!(back.iter().all(|s| task_status(s) == status));
        }
    }

    #[test]
    fn a_patient_never_shows_more_than_id_name_and_organization() {
        let p = patient("p1", "c1", Some("Sam"), true, at("2026-12-01 09:00:00"));
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "active",
                "id",
                "managingOrganization",
                "meta",
                "name",
                "resourceType"
            ]
        );
        assert!(
            patient("p1", "c1", None, true, at("2026-12-01 09:00:00"))
                .get("name")
                .is_none()
        );
    }
}
