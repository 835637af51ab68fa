//! The gate in front of a bounded, postponable action: OnlineDDL's cut-over,
//! Migration's and ShardSplit's switch. Pure: the runner observes, asks here,
//! and acts ([`super::gate`] says what a held action shows).
//!
//! The action waits while the user postpones it, stops after `maxAttempts`
//! failures until `retry` changes, waits while the copy lags, and backs off
//! between attempts (doubling, capped).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{AttemptPolicy, AttemptRecord};

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

impl Policy {
    /// The gate's view of a kind's policy; `postponed` is the kind's
    /// `spec.postponeCompletion` where it applies.
    pub fn of(p: &AttemptPolicy, postponed: bool) -> Policy {
        Policy {
            postponed,
            max_attempts: p.max_attempts,
            max_lag: seconds(p.max_lag_seconds),
            backoff: seconds(p.backoff_seconds),
            retry: p.retry,
        }
    }
}

/// What the status says about earlier attempts.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub attempts: i32,
    /// The `retry` value `attempts` counts for.
    pub retry: i32,
    pub next_attempt: Option<Timestamp>,
}

impl Record {
    pub fn of(r: &AttemptRecord) -> Record {
        Record { attempts: r.attempts, retry: r.retry, next_attempt: r.next_attempt_time.as_ref().map(|t| t.0) }
    }
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

/// The one re-arm rule, applied to the record in status before each
/// decision: a `retry` other than the one the attempts count for starts a
/// fresh count. True when that gave back attempts already spent (worth an
/// Event); a record with none spent only takes the new value.
pub fn rearm(policy: &AttemptPolicy, record: &mut AttemptRecord) -> bool {
    if policy.retry == record.retry {
        return false;
    }
    let spent = record.attempts > 0;
    record.attempts = 0;
    record.next_attempt_time = None;
    record.retry = policy.retry;
    spent
}

/// Counts an attempt as begun, before anything of it is done: a restart
/// finds it on record and counts it.
pub fn begin(record: &mut AttemptRecord) -> i32 {
    record.attempts += 1;
    record.attempts
}

/// Records a failed attempt: why, and when the next may start.
pub fn failed(policy: &AttemptPolicy, record: &mut AttemptRecord, reason: String, now: Timestamp) {
    record.last_error = Some(reason);
    let wait = backoff(seconds(policy.backoff_seconds), record.attempts);
    record.next_attempt_time = Some(Time(now + wait));
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
    fn rearming_gives_back_spent_attempts_once() {
        let policy = AttemptPolicy { retry: 2, ..Default::default() };
        let mut spent = AttemptRecord {
            attempts: 3,
            retry: 1,
            next_attempt_time: Some(Time(at(100))),
            last_error: Some("blocked".into()),
        };
        assert!(rearm(&policy, &mut spent), "spent attempts are given back");
        assert_eq!((spent.attempts, spent.retry, spent.next_attempt_time.is_none()), (0, 2, true));
        assert_eq!(spent.last_error.as_deref(), Some("blocked"), "the last error stays for people");
        assert!(!rearm(&policy, &mut spent), "the same value again is a no-op (GitOps re-applies)");
        let mut fresh = AttemptRecord::default();
        assert!(!rearm(&policy, &mut fresh), "nothing spent: no news");
        assert_eq!(fresh.retry, 2);
    }

    #[test]
    fn a_failed_attempt_backs_off_from_the_policy() {
        let policy = AttemptPolicy { backoff_seconds: 5, ..Default::default() };
        let mut r = AttemptRecord::default();
        assert_eq!(begin(&mut r), 1);
        failed(&policy, &mut r, "lock wait".into(), at(0));
        assert_eq!(r.next_attempt_time.as_ref().map(|t| t.0), Some(at(5)));
        begin(&mut r);
        failed(&policy, &mut r, "lock wait".into(), at(0));
        assert_eq!(r.next_attempt_time.as_ref().map(|t| t.0), Some(at(10)), "doubles");
        assert_eq!(Record::of(&r).attempts, 2);
    }

    #[test]
    fn policies_default_the_same_for_every_kind() {
        let p = Policy::of(&AttemptPolicy::default(), false);
        assert_eq!((p.max_attempts, p.max_lag, p.backoff, p.retry), (10, seconds(2), seconds(5), 0));
        assert_eq!(AttemptPolicy::default().lock_wait_timeout_seconds, 3);
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
