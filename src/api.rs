//! API building blocks shared by more than one kind. Each kind's own types
//! live in its home (`cluster::api`, `onlineddl::api`, ...).

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
