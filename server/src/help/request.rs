//! Reading a help request's body. Nothing in it can refuse the request (CLINICAL.md: a safety
//! signal is never refused for its form): an absent or unreadable body is an empty request, and
//! an unusable id or note, or a field the API does not name, is left out and listed as a
//! problem. Pure: no I/O, no clock.

use std::collections::BTreeMap;

use serde_json::Value;

/// The longest note kept, in characters.
pub const NOTE_MAX_CHARS: usize = 500;

/// What was usable in a help request's body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelpRequestInput {
    /// The app's id for the request (a hyphenated, lower-case UUID), when it sent a usable one.
    pub id: Option<String>,
    /// The patient's note for the care team, when it was usable.
    pub note: Option<String>,
    /// What was left out and why, by field.
    pub problems: BTreeMap<String, String>,
}

/// Reads `body` (the raw request body; empty is an empty request).
pub fn read(body: &[u8]) -> HelpRequestInput {
    let mut input = HelpRequestInput::default();
    if body.iter().all(u8::is_ascii_whitespace) {
        return input;
    }
    let fields = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => fields,
        Ok(Value::Null) => return input,
        Ok(_) => {
            input.problems.insert(
                "body".to_owned(),
                "is not a JSON object; ignored".to_owned(),
            );
            return input;
        }
        Err(_) => {
            input
                .problems
                .insert("body".to_owned(), "is not valid JSON; ignored".to_owned());
            return input;
        }
    };
    for (name, value) in fields {
        match name.as_str() {
            "id" => match value {
                Value::Null => {}
                Value::String(text) => match uuid::Uuid::try_parse(text.trim()) {
                    Ok(id) => input.id = Some(id.hyphenated().to_string()),
                    Err(_) => {
                        input
                            .problems
                            .insert(name, "is not a UUID; ignored".to_owned());
                    }
                },
                _ => {
                    input
                        .problems
                        .insert(name, "is not a UUID; ignored".to_owned());
                }
            },
            "note" => match value {
                Value::Null => {}
                Value::String(text) => {
                    let text = text.trim();
                    if text.chars().count() > NOTE_MAX_CHARS {
                        input.problems.insert(
                            name,
                            format!("is longer than {NOTE_MAX_CHARS} characters; ignored"),
                        );
                    } else if !text.is_empty() {
                        input.note = Some(text.to_owned());
                    }
                }
                _ => {
                    input
                        .problems
                        .insert(name, "is not a string; ignored".to_owned());
                }
            },
            _ => {
                input
                    .problems
                    .insert(name, "is not a field of a help request; ignored".to_owned());
            }
        }
    }
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_null_body_is_an_empty_request_without_problems() {
        for body in [&b""[..], b"  \n", b"null", b"{}"] {
            assert_eq!(read(body), HelpRequestInput::default(), "{body:?}");
        }
    }

    #[test]
    fn a_usable_id_and_note_are_kept_and_the_id_normalised() {
        let input =
            read(br#"{"id": "0190C1C2-4B5E-7C3D-9A1B-2C3D4E5F6A7B", "note": " I feel unsafe "}"#);
        assert_eq!(
            input.id.as_deref(),
            Some("0190c1c2-4b5e-7c3d-9a1b-2c3d4e5f6a7b")
        );
        assert_eq!(input.note.as_deref(), Some("I feel unsafe"));
        assert!(input.problems.is_empty());
    }

    #[test]
    fn a_note_of_exactly_the_limit_is_kept_and_one_longer_is_left_out() {
        let at_limit = "é".repeat(NOTE_MAX_CHARS);
        let kept = read(
            serde_json::json!({ "note": at_limit })
                .to_string()
                .as_bytes(),
        );
        assert_eq!(kept.note.as_deref(), Some(at_limit.as_str()));
        let long = "x".repeat(NOTE_MAX_CHARS + 1);
        let left = read(serde_json::json!({ "note": long }).to_string().as_bytes());
        assert_eq!(left.note, None);
        assert!(left.problems["note"].contains("500"), "{:?}", left.problems);
    }

    #[test]
    fn bad_fields_are_listed_and_never_stop_the_request() {
        let input = read(br#"{"id": "nope", "note": 7, "mood": 2}"#);
        assert_eq!(input.id, None);
        assert_eq!(input.note, None);
        assert_eq!(
            input.problems.keys().collect::<Vec<_>>(),
            ["id", "mood", "note"]
        );
        assert!(read(b"not json").problems.contains_key("body"));
        assert!(read(b"[1, 2]").problems.contains_key("body"));
    }
}
