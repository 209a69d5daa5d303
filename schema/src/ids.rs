//! Typed, opaque identifiers. Every id is a UUIDv7 (time-ordered, so indexes stay append-mostly)
//! stored as TEXT; the newtypes keep an account id from being passed where a clinic id is meant.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// Parses an id received from outside; only canonical UUID text is accepted, so a
            /// malformed id can never reach a query.
            pub fn parse(text: &str) -> Option<Self> {
                let uuid = uuid::Uuid::try_parse(text).ok()?;
                Some(Self(uuid.hyphenated().to_string()))
            }

            /// Wraps an id read back from the database.
            pub fn from_db(text: String) -> Self {
                Self(text)
            }

            /// The id as stored and as shown to clients.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned string, for binding into a query.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// An account: organisation admin, clinic staff or patient.
    AccountId
);
id_type!(
    /// A clinic.
    ClinicId
);
id_type!(
    /// An invitation to join a clinic.
    InvitationId
);
id_type!(
    /// A refresh-token family: one signed-in session on one device.
    SessionId
);
id_type!(
    /// An audit trail entry.
    AuditEventId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_generated_ids_and_normalises_case() {
        let id = ClinicId::generate();
        assert_eq!(ClinicId::parse(id.as_str()), Some(id.clone()));
        let upper = id.as_str().to_uppercase();
        assert_eq!(ClinicId::parse(&upper), Some(id));
    }

    #[test]
    fn parse_rejects_anything_that_is_not_a_uuid() {
        for bad in [
            "",
            "1",
            "../etc",
            "x' OR 1=1 --",
            "0190c1c2-aaaa-7bbb-8ccc-dddddddddddZ",
        ] {
            assert_eq!(AccountId::parse(bad), None, "{bad}");
        }
    }
}
