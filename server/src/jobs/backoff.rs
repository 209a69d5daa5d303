//! Retry timing: exponential backoff with a cap and full-range jitter, as a pure function of the
//! attempt number and a random fraction the caller supplies.

use std::time::Duration;

/// The delay before retry number `attempt` (1 for the first retry): `base · 2^(attempt-1)`,
/// capped at `cap`, then scaled into `[50%, 100%]` by `jitter` (a number in `0..1`), so that
/// jobs that failed together do not retry together.
pub fn delay(attempt: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << exponent).min(cap);
    raw.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_jitter_stays_within_half() {
        let base = Duration::from_secs(2);
        let cap = Duration::from_secs(60);
        assert_eq!(delay(1, base, cap, 1.0), Duration::from_secs(2));
        assert_eq!(delay(2, base, cap, 1.0), Duration::from_secs(4));
        assert_eq!(delay(5, base, cap, 1.0), Duration::from_secs(32));
        assert_eq!(delay(6, base, cap, 1.0), Duration::from_secs(60));
        assert_eq!(delay(1000, base, cap, 1.0), Duration::from_secs(60));
        assert_eq!(delay(3, base, cap, 0.0), Duration::from_secs(4));
        for jitter in [0.0, 0.3, 0.99] {
            let d = delay(4, base, cap, jitter);
            assert!(d >= Duration::from_secs(8) && d <= Duration::from_secs(16));
        }
    }
}
