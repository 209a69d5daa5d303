//! Text that people are shown as a name or a title (display names, clinic names, system client
//! names, consent document titles, crisis line names): it may not hold characters that are
//! invisible or that change how the text around them is drawn, so that what one person reads is
//! what another typed (no U+202E reversing a name, no zero-width space making two names look alike).

/// The message for text that holds such a character.
pub const HIDDEN_CHARACTERS: &str =
    "must not contain control, invisible (zero-width) or text-direction characters";

/// Whether `c` is a control character, a Unicode format character (bidirectional controls and
/// isolates, zero-width spaces and joiners, the word joiner, byte-order mark, soft hyphen, tag
/// characters, ...), a line or paragraph separator, or a filler that draws as nothing.
pub fn is_hidden(c: char) -> bool {
    if c.is_control() {
        return true;
    }
    matches!(
        c as u32,
        // General category Cf (format), Unicode 15.
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2065..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
            // Line and paragraph separators.
            | 0x2028..=0x2029
            // Combining grapheme joiner, Khmer inherent vowels and Hangul fillers: drawn as nothing.
            | 0x034F
            | 0x17B4..=0x17B5
            | 0x115F..=0x1160
            | 0x3164
            | 0xFFA0
    )
}

/// Whether `text` holds a hidden character.
pub fn has_hidden(text: &str) -> bool {
    text.chars().any(is_hidden)
}

/// A name: trimmed, 1 to `max` characters, nothing hidden.
pub fn parse_name(text: &str, max: usize) -> Result<String, &'static str> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > max {
        return Err(match max {
            100 => "must be 1 to 100 characters",
            200 => "must be 1 to 200 characters",
            _ => "is empty or too long",
        });
    }
    if has_hidden(name) {
        return Err(HIDDEN_CHARACTERS);
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_overrides_zero_width_and_control_characters_are_refused() {
        for bad in [
            "Dr \u{202E}ynnaJ",
            "Ann\u{200B}a",
            "Ann\u{200D}a",
            "Ann\u{FEFF}a",
            "\u{2066}Anna\u{2069}",
            "Anna\u{0007}",
            "Anna\u{2028}Smith",
            "\u{3164}",
            "Ann\u{E0041}a",
        ] {
            assert_eq!(parse_name(bad, 100), Err(HIDDEN_CHARACTERS), "{bad:?}");
        }
        for good in [
            "Anna",
            "José Núñez",
            "王小明",
            "Zoë O'Brien-Smith",
            "محمد",
            "❤️ Team",
        ] {
            assert_eq!(parse_name(good, 100).as_deref(), Ok(good), "{good:?}");
        }
        assert!(parse_name("  ", 100).is_err());
        assert!(parse_name(&"a".repeat(101), 100).is_err());
    }
}
