//! The steps of a schema change and the cut-over decision. Pure: the runner
//! observes, asks here what to do, and does it. `docs/online-ddl.md` draws
//! the same states.

use std::time::Duration;

use jiff::Timestamp;

use super::api::{CutoverPolicy, CutoverStatus, OnlineDDLSpec};

/// `status.step`. The string forms are the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Accepted, not started.
    Pending,
    /// The spec was refused; nothing was touched.
    Invalid,
    /// Waiting for an earlier change of the same table, or for a free slot.
    Queued,
    /// Shadow table created and altered; the instant path is tried here.
    Preparing,
    /// Rows copied from a consistent snapshot.
    Copying,
    /// Copy done; changes applied until caught up, then the checksum.
    Verifying,
    /// Shadow verified and in sync; the cut-over may start.
    ReadyToComplete,
    /// Ready, held by `spec.postponeCompletion`, still in sync.
    Postponed,
    /// An attempt is in flight.
    CuttingOver,
    Complete,
    Cancelled,
    Failed,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Pending => "Pending",
            Step::Invalid => "Invalid",
            Step::Queued => "Queued",
            Step::Preparing => "Preparing",
            Step::Copying => "Copying",
            Step::Verifying => "Verifying",
            Step::ReadyToComplete => "ReadyToComplete",
            Step::Postponed => "Postponed",
            Step::CuttingOver => "CuttingOver",
            Step::Complete => "Complete",
            Step::Cancelled => "Cancelled",
            Step::Failed => "Failed",
        }
    }

    /// Unknown text (an older or newer operator's) reads as Pending, which
    /// restarts from the shadow table: safe, only slower.
    pub fn parse(s: Option<&str>) -> Step {
        [
            Step::Invalid,
            Step::Queued,
            Step::Preparing,
            Step::Copying,
            Step::Verifying,
            Step::ReadyToComplete,
            Step::Postponed,
            Step::CuttingOver,
            Step::Complete,
            Step::Cancelled,
            Step::Failed,
        ]
        .into_iter()
        .find(|st| Some(st.as_str()) == s)
        .unwrap_or(Step::Pending)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Step::Complete | Step::Cancelled | Step::Failed | Step::Invalid)
    }

    /// The shadow table exists and is being (or has been) filled.
    pub fn has_shadow(self) -> bool {
        matches!(
            self,
            Step::Preparing
                | Step::Copying
                | Step::Verifying
                | Step::ReadyToComplete
                | Step::Postponed
                | Step::CuttingOver
        )
    }

    /// Ready for the cut-over: verified and in sync.
    pub fn is_ready(self) -> bool {
        matches!(self, Step::ReadyToComplete | Step::Postponed | Step::CuttingOver)
    }
}

/// What to do about the cut-over on this pass: the shared gate's decision.
pub use crate::operator::attempts::Decision as Cutover;
use crate::operator::attempts::{self, Policy, Record};

fn policy(spec: &OnlineDDLSpec) -> Policy {
    let c = &spec.cutover;
    Policy {
        postponed: spec.postpone_completion,
        max_attempts: c.max_attempts,
        max_lag: attempts::seconds(c.max_lag_seconds),
        backoff: attempts::seconds(c.backoff_seconds),
        retry: c.retry,
    }
}

fn record(status: &CutoverStatus) -> Record {
    Record {
        attempts: status.attempts,
        retry: status.retry,
        next_attempt: status.next_attempt_time.as_ref().map(|t| t.0),
    }
}

/// The cut-over decision. `status` is the attempt record; a `spec.cutover.retry`
/// different from the one it counts for re-arms (see [`rearmed`]).
pub fn cutover(spec: &OnlineDDLSpec, status: &CutoverStatus, lag: Duration, now: Timestamp) -> Cutover {
    attempts::decide(&policy(spec), &record(status), lag, now)
}

/// The attempt record under the current `spec.cutover.retry`.
pub fn rearmed(policy: &CutoverPolicy, status: &CutoverStatus) -> CutoverStatus {
    if policy.retry == status.retry {
        return status.clone();
    }
    CutoverStatus { attempts: 0, next_attempt_time: None, retry: policy.retry, ..status.clone() }
}

pub use attempts::MAX_BACKOFF;

/// The wait after failed attempt number `attempts` (1-based).
pub fn backoff(policy: &CutoverPolicy, attempts: i32) -> Duration {
    attempts::backoff(attempts::seconds(policy.backoff_seconds), attempts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onlineddl::api::Strategy;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn spec() -> OnlineDDLSpec {
        OnlineDDLSpec {
            cluster: "db".into(),
            database: "shop".into(),
            table: "orders".into(),
            alter: "ADD c INT".into(),
            strategy: Strategy::Shadow,
            postpone_completion: false,
            cutover: CutoverPolicy::default(),
            throttle: Default::default(),
            retain_old_table_seconds: 60,
            cancel: false,
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    const NO_LAG: Duration = Duration::ZERO;

    #[test]
    fn steps_round_trip_and_unknown_text_restarts() {
        for s in [Step::Queued, Step::Copying, Step::Postponed, Step::CuttingOver, Step::Complete] {
            assert_eq!(Step::parse(Some(s.as_str())), s);
        }
        assert_eq!(Step::parse(Some("Reticulating")), Step::Pending);
        assert_eq!(Step::parse(None), Step::Pending);
        assert!(Step::CuttingOver.has_shadow() && !Step::Complete.has_shadow());
    }

    #[test]
    fn a_fresh_change_attempts_at_once() {
        assert_eq!(cutover(&spec(), &CutoverStatus::default(), NO_LAG, at(0)), Cutover::Attempt);
    }

    #[test]
    fn postponing_wins_over_everything_even_exhaustion() {
        let mut s = spec();
        s.postpone_completion = true;
        let st = CutoverStatus { attempts: 99, ..Default::default() };
        assert_eq!(cutover(&s, &st, Duration::from_secs(60), at(0)), Cutover::Postponed);
    }

    #[test]
    fn lag_gates_attempts() {
        let lag = Duration::from_secs(3);
        assert_eq!(cutover(&spec(), &CutoverStatus::default(), lag, at(0)), Cutover::LagTooHigh { lag });
        assert_eq!(cutover(&spec(), &CutoverStatus::default(), Duration::from_secs(2), at(0)), Cutover::Attempt);
    }

    #[test]
    fn failed_attempts_back_off_until_their_time() {
        let st = CutoverStatus { attempts: 1, next_attempt_time: Some(Time(at(5))), ..Default::default() };
        assert_eq!(cutover(&spec(), &st, NO_LAG, at(4)), Cutover::Wait { until: at(5) });
        assert_eq!(cutover(&spec(), &st, NO_LAG, at(5)), Cutover::Attempt);
    }

    #[test]
    fn backoff_doubles_from_the_policy_and_caps() {
        let p = CutoverPolicy { backoff_seconds: 5, ..Default::default() };
        let secs: Vec<u64> = (1..=8).map(|n| backoff(&p, n).as_secs()).collect();
        assert_eq!(secs, vec![5, 10, 20, 40, 80, 160, 300, 300]);
        let zero = CutoverPolicy { backoff_seconds: 0, ..Default::default() };
        assert_eq!(backoff(&zero, 3), Duration::ZERO);
        assert_eq!(backoff(&p, i32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn exhausted_attempts_park_until_retry_changes() {
        let mut s = spec();
        s.cutover.max_attempts = 3;
        let st = CutoverStatus { attempts: 3, retry: 0, next_attempt_time: Some(Time(at(100))), ..Default::default() };
        assert_eq!(cutover(&s, &st, NO_LAG, at(1000)), Cutover::Exhausted, "parks, never retries forever");
        s.cutover.retry = 1;
        assert_eq!(cutover(&s, &st, NO_LAG, at(0)), Cutover::Attempt, "re-armed: fresh count, no backoff");
        let re = rearmed(&s.cutover, &st);
        assert_eq!((re.attempts, re.retry), (0, 1));
        // The same retry value applied again (GitOps) does not re-arm twice.
        let after = CutoverStatus { attempts: 3, retry: 1, ..Default::default() };
        assert_eq!(cutover(&s, &after, NO_LAG, at(0)), Cutover::Exhausted);
    }
}
