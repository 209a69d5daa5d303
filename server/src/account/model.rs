//! Account domain types, parsed at the edge so that the rest of the code only ever sees valid
//! values: roles, email addresses, passwords, display names and IANA time zones.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the installation: creates clinics and their first admins. Reads no patient data.
    OrgAdmin,
    /// Administers one clinic: invites staff and patients, disables accounts.
    ClinicAdmin,
    /// Care-team member of one clinic: reads its patients, invites patients.
    Clinician,
    /// A patient of one clinic.
    Patient,
}

impl Role {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::OrgAdmin => "org_admin",
            Role::ClinicAdmin => "clinic_admin",
            Role::Clinician => "clinician",
            Role::Patient => "patient",
        }
    }

    /// Reads a stored role name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "org_admin" => Some(Role::OrgAdmin),
            "clinic_admin" => Some(Role::ClinicAdmin),
            "clinician" => Some(Role::Clinician),
            "patient" => Some(Role::Patient),
            _ => None,
        }
    }

    /// Clinic staff: clinicians and clinic admins.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::ClinicAdmin | Role::Clinician)
    }
}

/// A normalised (trimmed, lower-cased) email address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain.tld` of at most 254 characters; lower-cases it so that an address
    /// identifies one account however it is typed.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let text = text.trim().to_lowercase();
        if text.is_empty() || text.len() > 254 {
            return Err("must be an email address of at most 254 characters");
        }
        let Some((local, domain)) = text.rsplit_once('@') else {
            return Err("must be an email address");
        };
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if local.is_empty() || local.len() > 64 || local.contains(char::is_whitespace) || !domain_ok
        {
            return Err("must be an email address");
        }
        Ok(Self(text))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 10 to 256 characters, not all alike. Hashing happens elsewhere.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword([redacted])")
    }
}

impl NewPassword {
    /// Length bounds follow NIST SP 800-63B: long passphrases allowed, no composition rules.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let count = text.chars().count();
        if count < 10 {
            return Err("must be at least 10 characters");
        }
        if count > 256 {
            return Err("must be at most 256 characters");
        }
        let mut chars = text.chars();
        let first = chars.next();
        if chars.all(|c| Some(c) == first) {
            return Err("must not be one character repeated");
        }
        Ok(Self(text.to_owned()))
    }

    /// The password, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A display name: 1 to 100 characters after trimming, nothing hidden (no control, invisible or
/// text-direction characters: see [`crate::text`]).
pub fn parse_display_name(text: &str) -> Result<String, &'static str> {
    crate::text::parse_name(text, 100)
}

/// An IANA time-zone name such as `America/Chicago` (never an offset).
pub fn parse_timezone(text: &str) -> Result<chrono_tz::Tz, &'static str> {
    text.trim()
        .parse::<chrono_tz::Tz>()
        .map_err(|_| "must be an IANA time zone name such as America/Chicago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_nonsense_refused() {
        assert_eq!(
            Email::parse("  Ann@Example.ORG ").unwrap().as_str(),
            "ann@example.org"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.org",
            "ann@x",
            "a b@x.org",
            "ann@x..org",
            "ann@.x.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_need_length_and_never_print() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("aaaaaaaaaaaa").is_err());
        assert!(NewPassword::parse(&"x".repeat(257)).is_err());
        let password = NewPassword::parse("correct horse battery").unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert!(parse_timezone("America/Chicago").is_ok());
        assert!(parse_timezone("Pacific/Chatham").is_ok());
        assert!(parse_timezone("+05:00").is_err());
        assert!(parse_timezone("Mars/Olympus").is_err());
    }

    #[test]
    fn roles_round_trip() {
        for role in [
            Role::OrgAdmin,
            Role::ClinicAdmin,
            Role::Clinician,
            Role::Patient,
        ] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
