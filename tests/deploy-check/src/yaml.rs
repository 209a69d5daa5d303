//! Multi-document YAML, with merge keys (`<<: *anchor`) applied as compose applies them, and small
//! accessors for walking manifests.

use serde::Deserialize as _;
pub use serde_yaml_ng::{Mapping, Value};

/// Every non-empty document in `text`, merge keys applied.
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    let mut documents = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let mut value =
            Value::deserialize(document).map_err(|e| format!("document {}: {e}", index + 1))?;
        value
            .apply_merge()
            .map_err(|e| format!("document {}: {e}", index + 1))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// The value at a path of mapping keys.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |current, key| current.get(*key))
}

/// The string at a path of mapping keys.
pub fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

/// A scalar as text (strings as they are, numbers and booleans as written).
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A list of strings, or a single string split on whitespace (compose's short command form).
pub fn words(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(text) => Some(text.split_whitespace().map(str::to_owned).collect()),
        Value::Sequence(items) => items.iter().map(scalar_text).collect(),
        _ => None,
    }
}

/// Every mapping in the tree, depth first, the root included.
pub fn mappings(value: &Value) -> Vec<&Mapping> {
    let mut found = Vec::new();
    let mut pending = vec![value];
    while let Some(current) = pending.pop() {
        match current {
            Value::Mapping(mapping) => {
                found.push(mapping);
                pending.extend(mapping.values());
            }
            Value::Sequence(items) => pending.extend(items),
            Value::Tagged(tagged) => pending.push(&tagged.value),
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_document_of_a_stream_is_read_and_empty_ones_are_skipped() {
        let docs = documents("a: 1\n---\n---\nb: [x, y]\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            words(at(&docs[1], &["b"]).unwrap()).unwrap(),
            vec!["x".to_owned(), "y".to_owned()]
        );
    }

    #[test]
    fn merge_keys_are_applied_and_explicit_keys_win() {
        let docs = documents("base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  y: 3\n").unwrap();
        assert_eq!(
            at(&docs[0], &["child", "x"]).and_then(Value::as_u64),
            Some(1)
        );
        assert_eq!(
            at(&docs[0], &["child", "y"]).and_then(Value::as_u64),
            Some(3)
        );
    }

    #[test]
    fn broken_yaml_is_an_error_naming_the_document() {
        let error = documents("a: 1\n---\nb: [unclosed\n").unwrap_err();
        assert!(error.starts_with("document 2"), "{error}");
    }
}
