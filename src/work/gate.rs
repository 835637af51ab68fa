//! What a gated action shows while it waits. The gate ([`super::attempts`])
//! decides; this turns a decision that holds the action back into the
//! `ReadyToComplete` condition, the step to rest in, the Event, and how long
//! to idle. Pure, and the same for every kind: only the words differ.

use std::time::Duration;

use jiff::Timestamp;

use super::attempts::Decision;
use crate::api::{AttemptPolicy, AttemptRecord};
use crate::k8s::conditions::{FALSE, TRUE};

/// How a kind names its gated action.
pub struct Wording {
    /// "cut-over", "switch".
    pub action: &'static str,
    /// The field that re-arms it: "spec.cutover.retry".
    pub retry_field: &'static str,
    /// Reason once the attempts are spent: "CutoverAttemptsExhausted".
    pub exhausted: &'static str,
    /// Reason of the Event when a re-arm gives attempts back.
    pub rearmed: &'static str,
    /// The condition's message while postponed.
    pub postponed: &'static str,
    /// What trails while the lag is too high: "the change apply".
    pub trailing: &'static str,
}

/// Where the action waits, and what it shows meanwhile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// `ReadyToComplete`'s status, reason and message.
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
    /// Rest in `Postponed` rather than in the kind's resting step.
    pub postponed: bool,
    /// The step's Event message, when the step changes.
    pub step_message: String,
    /// A Warning Event, when `reason` is new on the condition.
    pub warn: bool,
    /// How long to idle before the next pass.
    pub idle: Duration,
}

/// None when the action should be attempted now.
pub fn hold(
    decision: &Decision,
    w: &Wording,
    policy: &AttemptPolicy,
    record: &AttemptRecord,
    now: Timestamp,
    idle: Duration,
) -> Option<Hold> {
    let h = |status, reason, message: String, step_message: String| Hold {
        status,
        reason,
        message,
        postponed: false,
        step_message,
        warn: false,
        idle,
    };
    match decision {
        Decision::Attempt => None,
        Decision::Postponed => Some(Hold {
            postponed: true,
            ..h(
                TRUE,
                "Postponed",
                w.postponed.to_string(),
                format!("{} postponed by spec.postponeCompletion; changes keep applying", w.action),
            )
        }),
        Decision::Exhausted => {
            let last = record.last_error.clone().unwrap_or_default();
            let message = format!(
                "{} {} attempts failed; last: {last}. Change {} (e.g. to {}) to re-arm",
                record.attempts,
                w.action,
                w.retry_field,
                policy.retry + 1
            );
            Some(Hold { warn: true, ..h(TRUE, w.exhausted, message, format!("{} attempts exhausted", w.action)) })
        }
        Decision::LagTooHigh { lag } => Some(Hold {
            idle: Duration::ZERO,
            ..h(
                FALSE,
                "LagTooHigh",
                format!("{} trails by {} s (max {} s)", w.trailing, lag.as_secs(), policy.max_lag_seconds),
                "catching up".into(),
            )
        }),
        Decision::Wait { until } => Some(Hold {
            idle: until.duration_since(now).unsigned_abs().min(idle),
            ..h(TRUE, "BackingOff", format!("next {} attempt at {until}", w.action), "backing off".into())
        }),
    }
}

/// The Event of a re-arm that gave attempts back.
pub fn rearmed_message(w: &Wording, policy: &AttemptPolicy) -> String {
    format!("{} is {}: {} fresh attempts", w.retry_field, policy.retry, policy.max_attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Wording = Wording {
        action: "switch",
        retry_field: "spec.switch.retry",
        exhausted: "SwitchAttemptsExhausted",
        rearmed: "SwitchRearmed",
        postponed: "in sync; spec.postponeCompletion holds the switch",
        trailing: "the target",
    };
    const IDLE: Duration = Duration::from_millis(500);

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn held(d: Decision) -> Option<Hold> {
        let record = AttemptRecord { attempts: 4, last_error: Some("blocked by 7".into()), ..Default::default() };
        hold(&d, &W, &AttemptPolicy { retry: 2, ..Default::default() }, &record, at(0), IDLE)
    }

    #[test]
    fn an_attempt_is_not_held() {
        assert_eq!(held(Decision::Attempt), None);
    }

    #[test]
    fn postponed_rests_in_postponed() {
        let h = held(Decision::Postponed).unwrap();
        assert!(h.postponed && !h.warn);
        assert_eq!((h.status, h.reason, h.idle), (TRUE, "Postponed", IDLE));
    }

    #[test]
    fn exhausted_says_how_to_rearm_and_warns() {
        let h = held(Decision::Exhausted).unwrap();
        assert_eq!(h.reason, "SwitchAttemptsExhausted");
        assert!(h.warn && !h.postponed);
        assert_eq!(
            h.message,
            "4 switch attempts failed; last: blocked by 7. Change spec.switch.retry (e.g. to 3) to re-arm"
        );
    }

    #[test]
    fn lag_is_not_ready_and_catches_up_at_once() {
        let h = held(Decision::LagTooHigh { lag: Duration::from_secs(9) }).unwrap();
        assert_eq!((h.status, h.reason, h.idle), (FALSE, "LagTooHigh", Duration::ZERO));
        assert_eq!(h.message, "the target trails by 9 s (max 2 s)");
    }

    #[test]
    fn backing_off_idles_no_longer_than_the_wait_or_a_pass() {
        let soon = held(Decision::Wait { until: at(0) + Duration::from_millis(100) }).unwrap();
        assert_eq!((soon.reason, soon.idle), ("BackingOff", Duration::from_millis(100)));
        assert_eq!(held(Decision::Wait { until: at(60) }).unwrap().idle, IDLE);
    }

    #[test]
    fn rearm_event_names_the_field() {
        let p = AttemptPolicy { retry: 3, max_attempts: 7, ..Default::default() };
        assert_eq!(rearmed_message(&W, &p), "spec.switch.retry is 3: 7 fresh attempts");
    }
}
