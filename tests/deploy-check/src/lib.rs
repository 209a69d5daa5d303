//! Reading the deployment files under `deploy/` (YAML, the Dockerfile, systemd units, env files)
//! and the `companion` binary they run, for the checks in `tests/deploy_files.rs`.
//!
//! The crate depends on nothing of the server: commands are checked by running the built binary,
//! and settings by reading the list of keys out of `server/src/config.rs`. The binary is the
//! workspace's own build (made first when missing or older than `server/`), or the one named by
//! the `COMPANION_TEST_BIN` environment variable.

pub mod binary;
pub mod dockerfile;
pub mod files;
pub mod invocation;
pub mod settings;
pub mod systemd;
pub mod yaml;

/// Parses a duration as systemd and compose write it (`35`, `35s`, `1min 30s`, `1m30s`, `2h`) into
/// whole seconds; a bare number is seconds.
pub fn parse_duration_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = 0u64;
    let mut rest = text;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return None;
        }
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let factor = match &rest[..unit_len] {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hour" | "hours" => 3600,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(value.checked_mul(factor)?)?;
    }
    Some(total)
}

/// The port of a `host:port` socket address such as `0.0.0.0:8080` or `[::]:8080`.
pub fn port_of_address(address: &str) -> Option<u16> {
    address.trim().rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_in_the_forms_systemd_and_compose_use() {
        assert_eq!(parse_duration_seconds("35"), Some(35));
        assert_eq!(parse_duration_seconds("35s"), Some(35));
        assert_eq!(parse_duration_seconds("1m30s"), Some(90));
        assert_eq!(parse_duration_seconds("1min 30s"), Some(90));
        assert_eq!(parse_duration_seconds("2h"), Some(7200));
        assert_eq!(parse_duration_seconds("15min"), Some(900));
        assert_eq!(parse_duration_seconds("soon"), None);
        assert_eq!(parse_duration_seconds("10ms"), None);
        assert_eq!(parse_duration_seconds(""), None);
    }

    #[test]
    fn the_port_is_the_part_after_the_last_colon() {
        assert_eq!(port_of_address("0.0.0.0:8080"), Some(8080));
        assert_eq!(port_of_address("[::]:9000"), Some(9000));
        assert_eq!(port_of_address("8080"), None);
    }
}
