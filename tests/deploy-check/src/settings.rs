//! The settings the server reads, taken from the source of `server/src/config.rs`, and the
//! `COMPANION_*` names that a deployment file mentions.

use std::collections::{BTreeMap, BTreeSet};

/// The declaration in `config.rs` that lists every key the server accepts.
pub const KEYS_DECLARATION: &str = "pub const KEYS: &[&str] = &[";

/// The string literals of the `KEYS` list in the text of `config.rs`. An error when the list
/// cannot be found, so that renaming it breaks this check loudly instead of emptying it.
pub fn known_settings(config_source: &str) -> Result<BTreeSet<String>, String> {
    let start = config_source
        .find(KEYS_DECLARATION)
        .ok_or_else(|| format!("`{KEYS_DECLARATION}` not found in config.rs"))?
        + KEYS_DECLARATION.len();
    let body = &config_source[start..];
    let end = body
        .find("];")
        .ok_or("the KEYS list in config.rs has no end")?;
    let keys: BTreeSet<String> = body[..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        return Err("the KEYS list in config.rs is empty".into());
    }
    Ok(keys)
}

/// Every `COMPANION_…` name in a text. A bare prefix (`COMPANION_`) and a family written with a
/// wildcard (`COMPANION_*`, `COMPANION_APNS_*`) are not names.
pub fn named_settings(text: &str) -> BTreeSet<String> {
    const PREFIX: &str = "COMPANION_";
    let mut names = BTreeSet::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find(PREFIX) {
        let start = from + offset;
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(text.len() - start);
        let part_of_longer_word = text[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let name = text[start..end].trim_end_matches('_');
        let wildcard = text[end..].starts_with('*');
        if !part_of_longer_word && !wildcard && name.len() > PREFIX.len() {
            names.insert(name.to_owned());
        }
        from = end.max(start + PREFIX.len());
    }
    names
}

/// The `KEY=VALUE` lines of an env file (systemd's `EnvironmentFile=`, compose's `.env`);
/// comments and blank lines skipped, surrounding quotes removed.
pub fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| {
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            (key.trim().to_owned(), unquoted.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_list_is_read_from_the_source_text() {
        let source = "/// doc\npub const KEYS: &[&str] = &[\n    \"COMPANION_ENV\",\n    \
            \"DATABASE_URL\",\n];\nconst OTHER: &str = \"COMPANION_NOT_A_KEY\";\n";
        let keys = known_settings(source).unwrap();
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            vec!["COMPANION_ENV", "DATABASE_URL"]
        );
        assert!(known_settings("const KEYS: [&str; 0] = [];").is_err());
    }

    #[test]
    fn names_are_found_in_any_syntax_and_bare_prefixes_are_not_names() {
        let names = named_settings(
            "COMPANION_ENV=production\n- name: COMPANION_JWT_KEYS\n${COMPANION_LOG:-info} \
             `COMPANION_*` settings, `COMPANION_APNS_*`, MY_COMPANION_THING, COMPANION_\n",
        );
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            vec!["COMPANION_ENV", "COMPANION_JWT_KEYS", "COMPANION_LOG"]
        );
    }

    #[test]
    fn env_files_are_read_as_systemd_reads_them() {
        let values = env_file("# c\nA=1\n\nB=\"x y\"\nC=a=b\n");
        assert_eq!(values["A"], "1");
        assert_eq!(values["B"], "x y");
        assert_eq!(values["C"], "a=b");
    }
}
