//! The steps of a schema change and the cut-over decision. Pure: the runner
//! observes, asks here what to do, and does it. `docs/online-ddl.md` draws
//! the same states.

use std::time::Duration;

use jiff::Timestamp;

use super::api::{CutoverStatus, OnlineDDLSpec};

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
pub use crate::work::attempts::Decision as Cutover;
use crate::work::attempts::{self, Policy, Record};
use crate::work::gate::Wording;

/// The cut-over decision. `status` is the attempt record, already re-armed
/// ([`attempts::rearm`]) under the current `spec.cutover.retry`.
pub fn cutover(spec: &OnlineDDLSpec, status: &CutoverStatus, lag: Duration, now: Timestamp) -> Cutover {
    attempts::decide(&Policy::of(&spec.cutover, spec.postpone_completion), &Record::of(&status.record), lag, now)
}

pub const WORDING: Wording = Wording {
    action: "cut-over",
    retry_field: "spec.cutover.retry",
    exhausted: "CutoverAttemptsExhausted",
    rearmed: "CutoverRearmed",
    postponed: "in sync; spec.postponeCompletion holds the cut-over",
    trailing: "the change apply",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AttemptRecord;
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
            cutover: Default::default(),
            throttle: Default::default(),
            retain_old_table_seconds: 60,
            cancel: false,
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    const NO_LAG: Duration = Duration::ZERO;

    fn status(attempts: i32, retry: i32, next: Option<Timestamp>) -> CutoverStatus {
        let record = AttemptRecord { attempts, retry, next_attempt_time: next.map(Time), ..Default::default() };
        CutoverStatus { record, ..Default::default() }
    }

    #[test]
    fn steps_round_trip_and_unknown_text_restarts() {
        for (i, name) in crate::onlineddl::api::STEPS.iter().enumerate() {
            let step = Step::parse(Some(name));
            assert_eq!(step.as_str(), *name, "the schema lists step {i} as the plan spells it");
        }
        assert_eq!(crate::onlineddl::api::STEPS[0], Step::Pending.as_str());
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
        let st = status(99, 0, None);
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
        let st = status(1, 0, Some(at(5)));
        assert_eq!(cutover(&spec(), &st, NO_LAG, at(4)), Cutover::Wait { until: at(5) });
        assert_eq!(cutover(&spec(), &st, NO_LAG, at(5)), Cutover::Attempt);
    }

    #[test]
    fn exhausted_attempts_park_until_retry_changes() {
        let mut s = spec();
        s.cutover.max_attempts = 3;
        let mut st = status(3, 0, Some(at(100)));
        assert_eq!(cutover(&s, &st, NO_LAG, at(1000)), Cutover::Exhausted, "parks, never retries forever");
        s.cutover.retry = 1;
        assert!(attempts::rearm(&s.cutover, &mut st.record));
        assert_eq!(cutover(&s, &st, NO_LAG, at(0)), Cutover::Attempt, "re-armed: fresh count, no backoff");
        // The same retry value applied again (GitOps) does not re-arm twice.
        let mut after = status(3, 1, None);
        assert!(!attempts::rearm(&s.cutover, &mut after.record));
        assert_eq!(cutover(&s, &after, NO_LAG, at(0)), Cutover::Exhausted);
    }
}
