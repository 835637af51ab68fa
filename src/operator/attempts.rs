//! The gate in front of a bounded, postponable action: OnlineDDL's cut-over
//! and Migration's switch. Pure: the runner observes, asks here, and acts.
//!
//! The action waits while the user postpones it, stops after `maxAttempts`
//! failures until `retry` changes, waits while the copy lags, and backs off
//! between attempts (doubling, capped).

use std::time::Duration;

use jiff::Timestamp;

/// What the spec says about the action.
#[derive(Clone, Debug)]
pub struct Policy {
    pub postponed: bool,
    pub max_attempts: i32,
    pub max_lag: Duration,
    pub backoff: Duration,
    /// The re-arm counter the user bumps.
    pub retry: i32,
}

/// What the status says about earlier attempts.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub attempts: i32,
    /// The `retry` value `attempts` counts for.
    pub retry: i32,
    pub next_attempt: Option<Timestamp>,
}

/// What to do on this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Held by `postponeCompletion`.
    Postponed,
    /// `maxAttempts` used up; waiting for `retry` to change.
    Exhausted,
    /// The copy trails by more than `maxLagSeconds`.
    LagTooHigh { lag: Duration },
    /// Backing off after a failed attempt.
    Wait { until: Timestamp },
    /// Start an attempt now.
    Attempt,
}

/// Postponing wins over everything, so a user can always stop further
/// attempts, even after they were exhausted.
pub fn decide(policy: &Policy, record: &Record, lag: Duration, now: Timestamp) -> Decision {
    if policy.postponed {
        return Decision::Postponed;
    }
    let record = if is_rearmed(policy, record) { Record::default() } else { record.clone() };
    if record.attempts >= policy.max_attempts.max(1) {
        return Decision::Exhausted;
    }
    if lag > policy.max_lag {
        return Decision::LagTooHigh { lag };
    }
    match record.next_attempt {
        Some(until) if until > now => Decision::Wait { until },
        _ => Decision::Attempt,
    }
}

/// A `retry` different from the one the attempts count for starts a fresh
/// count; the same value (a GitOps tool re-applying the same manifest)
/// changes nothing.
pub fn is_rearmed(policy: &Policy, record: &Record) -> bool {
    policy.retry != record.retry
}

/// Longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The wait after failed attempt number `attempts` (1-based): `base`,
/// doubling per attempt, capped at [`MAX_BACKOFF`].
pub fn backoff(base: Duration, attempts: i32) -> Duration {
    let doublings = (attempts - 1).clamp(0, 16) as u32;
    base.saturating_mul(2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// Seconds from a spec field, negative read as zero.
pub fn seconds(s: i32) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy { postponed: false, max_attempts: 3, max_lag: seconds(1), backoff: seconds(10), retry: 0 }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn decisions_in_order_of_precedence() {
        let p = policy();
        assert_eq!(decide(&p, &Record::default(), Duration::ZERO, at(0)), Decision::Attempt);
        let spent = Record { attempts: 3, ..Default::default() };
        assert_eq!(decide(&p, &spent, Duration::ZERO, at(0)), Decision::Exhausted);
        let held = Policy { postponed: true, ..policy() };
        assert_eq!(decide(&held, &spent, Duration::ZERO, at(0)), Decision::Postponed);
        let lag = Duration::from_secs(5);
        assert_eq!(decide(&p, &Record::default(), lag, at(0)), Decision::LagTooHigh { lag });
        let waiting = Record { attempts: 1, next_attempt: Some(at(10)), ..Default::default() };
        assert_eq!(decide(&p, &waiting, Duration::ZERO, at(0)), Decision::Wait { until: at(10) });
        assert_eq!(decide(&p, &waiting, Duration::ZERO, at(10)), Decision::Attempt);
    }

    #[test]
    fn a_new_retry_value_rearms_and_the_same_one_does_not() {
        let spent = Record { attempts: 3, retry: 0, next_attempt: Some(at(100)) };
        let rearmed = Policy { retry: 1, ..policy() };
        assert_eq!(decide(&rearmed, &spent, Duration::ZERO, at(0)), Decision::Attempt);
        assert!(!is_rearmed(&policy(), &spent));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = seconds(10);
        assert_eq!(backoff(base, 1), seconds(10));
        assert_eq!(backoff(base, 3), seconds(40));
        assert_eq!(backoff(base, 30), MAX_BACKOFF);
        assert_eq!(backoff(Duration::ZERO, 5), Duration::ZERO);
    }
}
