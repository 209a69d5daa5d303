//! A clinic's fields as people type them: names, countries and phone numbers checked and
//! normalised, with the message a form or an API error shows. Used by the API's handlers and
//! the console's clinic details form alike.

/// `parsed`, or `None` with its problem noted under `field`.
pub(crate) fn checked<T>(
    problems: &mut std::collections::BTreeMap<String, String>,
    field: &str,
    parsed: Result<T, &'static str>,
) -> Option<T> {
    parsed
        .map_err(|problem| problems.insert(field.to_owned(), problem.to_owned()))
        .ok()
}

pub(crate) fn parse_name(text: &str) -> Result<String, &'static str> {
    crate::text::parse_name(text, 200)
}

pub(crate) fn parse_country(
    text: &str,
    zones: &crate::safety::zones::ZoneCountries,
) -> Result<String, &'static str> {
    let code = text.trim().to_ascii_uppercase();
    if code.len() == 2 && zones.is_country(&code) {
        Ok(code)
    } else {
        Err("must be an ISO 3166-1 alpha-2 code such as US")
    }
}

pub(crate) fn parse_phone(text: &str) -> Result<String, &'static str> {
    let phone = text.trim();
    if phone.is_empty()
        || phone.len() > 32
        || !phone
            .chars()
            .all(|c| c.is_ascii_digit() || " +-()".contains(c))
        || !phone.chars().any(|c| c.is_ascii_digit())
    {
        return Err("must be a phone number (digits, spaces, + - ( ))");
    }
    Ok(phone.to_owned())
}
