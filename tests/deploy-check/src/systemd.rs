//! Directives of a systemd unit file.

/// Every `Key=Value` directive of a unit in order, with the section it is in (`Service`, ...);
/// comments and blank lines skipped. Backslash-continued lines are joined.
pub fn directives(text: &str) -> Vec<Directive> {
    let mut found = Vec::new();
    let mut section = String::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with(';'))
        {
            continue;
        }
        if let Some(body) = line.strip_suffix('\\') {
            pending.push_str(body);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let whole = std::mem::take(&mut pending);
        if let Some(name) = whole.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, value)) = whole.split_once('=') {
            found.push(Directive {
                section: section.clone(),
                key: key.trim().to_owned(),
                value: value.trim().to_owned(),
            });
        }
    }
    found
}

/// One `Key=Value` line of a unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// The section it appears in, without brackets.
    pub section: String,
    /// The directive's name.
    pub key: String,
    /// Its value, trimmed.
    pub value: String,
}

/// The value of the last directive with this key in this section (later ones override).
pub fn value<'a>(directives: &'a [Directive], section: &str, key: &str) -> Option<&'a str> {
    directives
        .iter()
        .rev()
        .find(|d| d.section == section && d.key == key)
        .map(|d| d.value.as_str())
}

/// The words of an `Exec*=` command line, its prefix characters (`-`, `@`, `:`, `+`, `!`)
/// removed.
pub fn command_words(value: &str) -> Vec<String> {
    value
        .trim_start_matches(['-', '@', ':', '+', '!', '|'])
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_know_their_section_and_later_ones_win() {
        let unit = "[Unit]\nDescription=x\n# note\n[Service]\nExecStart=-/bin/app \\\n  run\n\
                    TimeoutStopSec=10\nTimeoutStopSec=35s\n";
        let found = directives(unit);
        assert_eq!(value(&found, "Unit", "Description"), Some("x"));
        assert_eq!(value(&found, "Service", "TimeoutStopSec"), Some("35s"));
        assert_eq!(value(&found, "Unit", "TimeoutStopSec"), None);
        let exec = value(&found, "Service", "ExecStart").unwrap();
        assert_eq!(command_words(exec), vec!["/bin/app", "run"]);
    }
}
