//! Token-bucket rate limiting for the credential endpoints (login, refresh, invitation accept).
//! The decision is a pure function of the bucket and `now`; the limiter keeps buckets per key in
//! memory, so each replica limits on its own (the bound is per replica).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// One client's bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    updated: DateTime<Utc>,
}

/// Takes one token from `bucket` (refilled at `per_minute` per minute up to `per_minute`), or
/// says how many whole seconds until one is available.
pub fn take(
    bucket: Option<Bucket>,
    per_minute: u32,
    now: DateTime<Utc>,
) -> (Bucket, Result<(), u64>) {
    let capacity = f64::from(per_minute);
    let rate_per_sec = capacity / 60.0;
    let mut bucket = bucket.unwrap_or(Bucket {
        tokens: capacity,
        updated: now,
    });
    let elapsed = (now - bucket.updated).num_milliseconds().max(0) as f64 / 1000.0;
    bucket.tokens = (bucket.tokens + elapsed * rate_per_sec).min(capacity);
    bucket.updated = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        (bucket, Ok(()))
    } else {
        let wait = ((1.0 - bucket.tokens) / rate_per_sec).ceil().max(1.0) as u64;
        (bucket, Err(wait))
    }
}

/// Buckets per key for one endpoint.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Buckets beyond this are pruned (full ones first) so memory stays bounded.
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    /// A limiter allowing `per_minute` attempts per key per minute (and bursts of that size).
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`; `Err(seconds)` when the caller must wait.
    pub fn check(&self, key: &str, now: DateTime<Utc>) -> Result<(), u64> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            let per_minute = self.per_minute;
            buckets.retain(|_, b| {
                let (refilled, _) = take(Some(*b), per_minute, now);
                refilled.tokens + 1.0 < f64::from(per_minute)
            });
            if buckets.len() >= MAX_BUCKETS {
                buckets.clear();
            }
        }
        let (bucket, verdict) = take(buckets.get(key).copied(), self.per_minute, now);
        buckets.insert(key.to_owned(), bucket);
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait_then_allowed_again() {
        let limiter = RateLimiter::new(3);
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.check("a", t0), Ok(()));
        }
        assert_eq!(limiter.check("a", t0), Err(20));
        assert_eq!(limiter.check("b", t0), Ok(()), "keys are independent");
        assert_eq!(limiter.check("a", t0 + TimeDelta::seconds(20)), Ok(()));
        assert!(limiter.check("a", t0 + TimeDelta::seconds(20)).is_err());
    }
}
