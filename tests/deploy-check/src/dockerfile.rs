//! Just enough of the Dockerfile syntax to read the instructions of the final (runtime) stage:
//! comments, line continuations, exec (JSON) and shell forms, `ENV` pairs.

use std::collections::BTreeMap;

/// One instruction, its continuation lines joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// The keyword in upper case (`FROM`, `CMD`, ...).
    pub keyword: String,
    /// Everything after the keyword.
    pub arguments: String,
    /// The line the instruction starts on (1-based).
    pub line: usize,
}

/// The instructions of a Dockerfile, in order.
pub fn parse(text: &str) -> Vec<Instruction> {
    let mut instructions = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        // Comment and blank lines are dropped, also between continuation lines.
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        if let Some(body) = trimmed.strip_suffix('\\') {
            joined.push_str(body);
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(trimmed);
        push(&mut instructions, start, &joined);
    }
    if let Some((start, joined)) = pending {
        push(&mut instructions, start, &joined);
    }
    instructions
}

fn push(instructions: &mut Vec<Instruction>, line: usize, text: &str) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    let (keyword, arguments) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    instructions.push(Instruction {
        keyword: keyword.to_ascii_uppercase(),
        arguments: arguments.trim().to_owned(),
        line,
    });
}

/// The instructions after the last `FROM`: what the image that runs is made of.
pub fn final_stage(instructions: &[Instruction]) -> &[Instruction] {
    let start = instructions
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .map_or(0, |p| p + 1);
    &instructions[start..]
}

/// The last instruction with this keyword (later ones override earlier ones).
pub fn last<'a>(stage: &'a [Instruction], keyword: &str) -> Option<&'a Instruction> {
    stage.iter().rev().find(|i| i.keyword == keyword)
}

/// The words of an exec-form (JSON array) argument list, or `None` for the shell form.
pub fn exec_form(arguments: &str) -> Option<Vec<String>> {
    serde_json::from_str(arguments.trim()).ok()
}

/// The variables an `ENV` sequence sets, later values winning: `ENV K=V K2="V 2"` and the
/// older `ENV K V`.
pub fn environment(stage: &[Instruction]) -> BTreeMap<String, String> {
    let mut variables = BTreeMap::new();
    for instruction in stage.iter().filter(|i| i.keyword == "ENV") {
        let words = split_words(&instruction.arguments);
        match words.first() {
            Some(first) if !first.contains('=') => {
                variables.insert(first.clone(), words[1..].join(" "));
            }
            _ => {
                for word in &words {
                    if let Some((key, value)) = word.split_once('=') {
                        variables.insert(key.to_owned(), value.to_owned());
                    }
                }
            }
        }
    }
    variables
}

/// Whitespace-separated words; double quotes group and are removed.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// The command of a `HEALTHCHECK` instruction (options skipped), as words; `None` for
/// `HEALTHCHECK NONE` or a malformed one.
pub fn health_check_command(arguments: &str) -> Option<Vec<String>> {
    let mut rest = arguments.trim();
    while rest.starts_with("--") {
        let end = rest.find(char::is_whitespace)?;
        rest = rest[end..].trim_start();
    }
    let command = rest.strip_prefix("CMD")?.trim();
    exec_form(command).or_else(|| Some(split_words(command)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# syntax=docker/dockerfile:1\nFROM rust AS build\nCMD [\"no\"]\n\
        FROM debian\n# a comment\nENV A=1 \\\n    # inside\n    B=\"two words\"\nENV C 3\n\
        HEALTHCHECK --interval=5s --retries=2 \\\n  CMD [\"curl\", \"http://127.0.0.1:80/h\"]\n\
        ENTRYPOINT [\"app\"]\nCMD [\"run\"]\n";

    #[test]
    fn the_final_stage_starts_after_the_last_from_and_continuations_are_joined() {
        let instructions = parse(SAMPLE);
        let stage = final_stage(&instructions);
        assert_eq!(stage[0].keyword, "ENV");
        assert_eq!(stage[0].line, 6);
        assert_eq!(
            last(stage, "CMD").and_then(|i| exec_form(&i.arguments)),
            Some(vec!["run".to_owned()])
        );
        let env = environment(stage);
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "3");
    }

    #[test]
    fn the_health_check_command_is_read_past_its_options() {
        let stage = parse(SAMPLE);
        let check = last(&stage, "HEALTHCHECK").unwrap();
        assert_eq!(
            health_check_command(&check.arguments).unwrap(),
            vec!["curl".to_owned(), "http://127.0.0.1:80/h".to_owned()]
        );
        assert_eq!(health_check_command("NONE"), None);
        assert_eq!(
            health_check_command("CMD curl -f http://x/").unwrap(),
            vec!["curl", "-f", "http://x/"]
        );
    }
}
