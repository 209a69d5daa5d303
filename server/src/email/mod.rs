//! Email: an SMTP mailer (`COMPANION_SMTP_URL`) and the messages it sends. Like push text, an
//! email carries no health information: a fixed sentence and a link to the console, where the
//! details are read after signing in.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::EmailConfig;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

/// The email about an alert: the same fixed words as the push, and a link to the inbox.
pub fn alert_email(public_url: &str) -> Email {
    Email {
        subject: "A patient alert needs your attention".to_owned(),
        body: format!(
            "A patient alert needs your attention.\r\n\r\nOpen the alert inbox: \
             {public_url}/console/alerts\r\n\r\nThis message carries no details by design; sign \
             in to read them.\r\n"
        ),
    }
}

/// The email to an organisation admin when an alert reached nobody in its care team.
pub fn unreachable_email(public_url: &str) -> Email {
    Email {
        subject: "An alert could not reach its care team".to_owned(),
        body: format!(
            "An alert could not reach anyone in its care team.\r\n\r\nOpen the console: \
             {public_url}/console/alerts\r\n\r\nCheck who is on call and how the care team can \
             be reached.\r\n"
        ),
    }
}

/// The email with a password reset link, sent only to the address of the account it resets:
/// the link opens the reset form with the code filled in (the code rides in the URL's fragment,
/// which browsers never send to a server), and the code is in the text for typing.
pub fn password_reset_email(public_url: &str, address: &str, code: &str) -> Email {
    let fragment =
        serde_urlencoded::to_string([("email", address), ("code", code)]).unwrap_or_default();
    Email {
        subject: "Reset your Companion password".to_owned(),
        body: format!(
            "Someone asked to reset the password of the Companion account that uses this \
             address.\r\n\r\nTo set a new password, open this link within 30 minutes:\r\n\
             {public_url}/console/password-reset#{fragment}\r\n\r\nOr enter this code with \
             your email on the reset page: {code}\r\n\r\nIf it was not you, ignore this \
             message: your password stays as it is.\r\n"
        ),
    }
}

/// What the SMTP server made of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The server accepted it for delivery.
    Accepted,
    /// A temporary failure (a 4xx answer, a connection that failed): try again later.
    RetryLater(String),
    /// Refused for good (a 5xx answer, an address that cannot be written).
    Rejected(String),
}

/// Sends email through one SMTP server.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold credentials: never printed.
        f.debug_struct("Mailer")
            .field("from", &self.from.email.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for `config` (validated by the configuration). Connects on first use.
    pub fn new(config: &EmailConfig) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(config.url.expose())
            .map_err(|e| anyhow::anyhow!("COMPANION_SMTP_URL: {e}"))?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|e| anyhow::anyhow!("COMPANION_SMTP_FROM: {e}"))?;
        Ok(Self { transport, from })
    }

    /// Sends `email` to `to`. Never fails: every failure is a [`Sent`].
    pub async fn send(&self, to: &str, email: &Email) -> Sent {
        let Ok(to) = to.parse::<Mailbox>() else {
            return Sent::Rejected("the address cannot be written to".into());
        };
        let message = match Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())
        {
            Ok(message) => message,
            Err(e) => return Sent::Rejected(format!("message: {e}")),
        };
        match self.transport.send(message).await {
            Ok(_) => Sent::Accepted,
            Err(e) if e.is_permanent() => Sent::Rejected(smtp_reason(&e)),
            Err(e) => Sent::RetryLater(smtp_reason(&e)),
        }
    }
}

/// A short reason with the server's code, without the addresses a server may echo back.
fn smtp_reason(error: &lettre::transport::smtp::Error) -> String {
    match error.status() {
        Some(code) => format!("smtp server answered {code}"),
        None if error.is_timeout() => "smtp server timed out".to_owned(),
        None => "smtp server unreachable".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_carry_no_health_information() {
        for email in [
            alert_email("https://care.example.org"),
            unreachable_email("https://care.example.org"),
        ] {
            let text = format!("{} {}", email.subject, email.body).to_lowercase();
            for word in [
                "phq",
                "mood",
                "score",
                "depress",
                "suicid",
                "self-harm",
                "ketamine",
                "item",
                "risk",
                "crisis",
                "blood",
                "severe",
                "urgent",
            ] {
                assert!(!text.contains(word), "{word} in {text}");
            }
            assert!(
                email
                    .body
                    .contains("https://care.example.org/console/alerts")
            );
        }
    }
}
