//! API building blocks shared by more than one kind. Each kind's own types
//! live in its home (`cluster::api`, `onlineddl::api`, ...).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Limits that pause row copy and change apply while the server is busy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Throttle {
    /// Pause while any replica of the source cluster lags more than this many
    /// seconds behind its primary. Unset: 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub max_replica_lag_seconds: Option<i32>,

    /// Pause while the source's `Threads_running` status variable exceeds this.
    /// Unset: 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_threads_running: Option<i32>,

    /// Upper bound on rows copied per second across all copy workers. Unset:
    /// no rate limit (the lag and thread limits still apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_rows_per_second: Option<i64>,
}

/// Progress of a long row-moving operation, as shown by `kubectl get`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Rows copied so far.
    #[serde(default)]
    pub rows_copied: i64,
    /// Estimated rows to copy (from table statistics, so approximate).
    #[serde(default)]
    pub rows_total: i64,
    /// Copy progress in percent, 0-100.
    #[serde(default)]
    pub percent: i32,
    /// Recent copy rate in rows per second.
    #[serde(default)]
    pub rows_per_second: i64,
    /// Estimated seconds until the copy finishes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<i64>,
    /// Seconds the change apply trails the source's binary log, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
    /// Why the work is paused right now, if it is throttled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled: Option<String>,
}

/// How a bounded, postponable action is attempted: OnlineDDL's cut-over
/// (`spec.cutover`), Migration's and ShardSplit's switch (`spec.switch`).
/// The same fields and defaults in every kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptPolicy {
    /// Longest time one attempt waits for its lock, and then for the other
    /// side to catch up, in seconds. A cut-over's writers stall, and a
    /// switch's writes are refused, for about this long at most. Default 3.
    #[serde(default = "default_lock_wait")]
    #[schemars(range(min = 1, max = 300))]
    pub lock_wait_timeout_seconds: i32,

    /// Attempts before the action parks (reason CutoverAttemptsExhausted or
    /// SwitchAttemptsExhausted) until `retry` changes. Default 10.
    #[serde(default = "default_max_attempts")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_attempts: i32,

    /// Wait before the second attempt, in seconds; doubles for each later
    /// attempt, capped at 300. Default 5.
    #[serde(default = "default_backoff")]
    #[schemars(range(min = 0, max = 3600))]
    pub backoff_seconds: i32,

    /// Attempt only while the copy trails its source by less than this many
    /// seconds. Default 2.
    #[serde(default = "default_max_lag")]
    #[schemars(range(min = 0, max = 3600))]
    pub max_lag_seconds: i32,

    /// Re-arm counter: after the attempts are exhausted, set this to any
    /// value other than the status's `retry` (e.g. increment it) for a fresh
    /// `maxAttempts`. Applying the same value again changes nothing, so a
    /// GitOps loop cannot re-arm by accident.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub retry: i32,
}

fn default_lock_wait() -> i32 {
    3
}
fn default_max_attempts() -> i32 {
    10
}
fn default_backoff() -> i32 {
    5
}
fn default_max_lag() -> i32 {
    2
}

impl Default for AttemptPolicy {
    fn default() -> Self {
        Self {
            lock_wait_timeout_seconds: default_lock_wait(),
            max_attempts: default_max_attempts(),
            backoff_seconds: default_backoff(),
            max_lag_seconds: default_max_lag(),
            retry: 0,
        }
    }
}

/// The attempts of a gated action so far, in status (`status.cutover`,
/// `status.switch`). The same fields in every kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    /// Attempts made since the last re-arm.
    #[serde(default)]
    pub attempts: i32,
    /// The policy's `retry` value the attempts count belongs to.
    #[serde(default)]
    pub retry: i32,
    /// Why the last attempt failed, including any blocker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Earliest time of the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_time: Option<Time>,
}
