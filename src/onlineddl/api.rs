//! The OnlineDDL API: a schema change applied through a shadow table with a
//! cut-over the user can postpone, release and re-arm with `kubectl patch`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::{AttemptPolicy, AttemptRecord, Progress, Throttle};

/// An online schema change of one table.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "switchyard.io",
    version = "v1alpha1",
    kind = "OnlineDDL",
    plural = "onlineddls",
    singular = "onlineddl",
    namespaced,
    status = "OnlineDDLStatus",
    shortname = "oddl",
    shortname = "ddl",
    category = "switchyard",
    derive = "PartialEq",
    doc = "An online schema change of one table, by shadow table and atomic cut-over.",
    printcolumn(name = "Table", type_ = "string", json_path = ".spec.table"),
    printcolumn(name = "Step", type_ = "string", json_path = ".status.step"),
    printcolumn(
        name = "Progress",
        type_ = "integer",
        json_path = ".status.progress.percent",
        description = "Percent of rows copied"
    ),
    printcolumn(
        name = "ETA",
        type_ = "integer",
        json_path = ".status.progress.etaSeconds",
        description = "Seconds until the copy finishes"
    ),
    printcolumn(
        name = "Lag",
        type_ = "integer",
        json_path = ".status.progress.lagSeconds",
        description = "Seconds the change apply trails the binlog"
    ),
    printcolumn(name = "Attempts", type_ = "integer", json_path = ".status.cutover.attempts", priority = 1),
    printcolumn(
        name = "Succeeded",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Succeeded")].status"#
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct OnlineDDLSpec {
    /// MySQLCluster, in this namespace, whose primary holds the table.
    #[x_kube(validation = Rule::new("self == oldSelf").message("cluster is immutable"))]
    pub cluster: String,

    /// Database (schema) of the table.
    #[x_kube(validation = Rule::new("self == oldSelf").message("database is immutable"))]
    pub database: String,

    /// Table to change.
    #[x_kube(validation = Rule::new("self == oldSelf").message("table is immutable"))]
    pub table: String,

    /// The ALTER TABLE clause without the `ALTER TABLE t` prefix, for example
    /// `ADD COLUMN note VARCHAR(64) NULL`. Several comma-separated changes are
    /// allowed. Immutable: create a new resource for a different change.
    #[x_kube(validation = Rule::new("self == oldSelf").message("alter is immutable"))]
    pub alter: String,

    /// auto (default): try ALGORITHM=INSTANT, fall back to the shadow table.
    /// instant: only the instant path, fail if the change is not instant-capable.
    /// shadow: always copy through a shadow table.
    #[serde(default)]
    pub strategy: Strategy,

    /// Hold the cut-over at ReadyToComplete, still applying changes, until this
    /// is set back to false. May be set at any time before completion, even
    /// while cut-over attempts are running: no new attempt starts.
    #[serde(default)]
    pub postpone_completion: bool,

    /// Cut-over attempt bounds.
    #[serde(default)]
    pub cutover: AttemptPolicy,

    /// Limits that pause copy and apply while the cluster is busy.
    #[serde(default)]
    pub throttle: Throttle,

    /// Seconds to keep the original table (renamed `_<table>_old_<timestamp>`)
    /// after the cut-over before dropping it. Default 86400 (24 h).
    #[serde(default = "default_retain_old_table")]
    #[schemars(range(min = 0))]
    pub retain_old_table_seconds: i64,

    /// Stop the change: drop the shadow table and leave the original untouched.
    /// Has no effect once the cut-over has happened.
    #[serde(default)]
    pub cancel: bool,
}

fn default_retain_old_table() -> i64 {
    86_400
}

/// How the change is applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Try ALGORITHM=INSTANT first, then the shadow table.
    #[default]
    Auto,
    /// ALGORITHM=INSTANT only.
    Instant,
    /// Always the shadow table.
    Shadow,
}

/// Observed state of an OnlineDDL.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnlineDDLStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current step: Pending, Queued, Preparing, Copying, Verifying,
    /// ReadyToComplete, Postponed, CuttingOver, Complete, Cancelled or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "step_schema")]
    pub step: Option<String>,

    /// Row copy and change apply progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,

    /// Cut-over attempts and their outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover: Option<CutoverStatus>,

    /// Name of the shadow table being filled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_table: Option<String>,

    /// Name the original table got at cut-over, kept for `retainOldTableSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_table: Option<String>,

    /// Result of the shadow-vs-original checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,

    /// How the change was made: `instant` (ALGORITHM=INSTANT on the table)
    /// or `shadow` (copy and cut-over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,

    /// Where the copy and the change apply resume after a restart (the
    /// data-movement engine's checkpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::k8s::schema::free_form_object")]
    pub checkpoint: Option<serde_json::Value>,

    /// Fingerprint of the table's definition taken just before an
    /// ALGORITHM=INSTANT attempt; present only while that attempt may be
    /// under way. A restarted task that finds the definition changed knows
    /// the instant ALTER was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instant_from: Option<String>,

    /// Secondary indexes of the shadow table left out during the copy and
    /// added when it ends (building them once is faster than maintaining
    /// them row by row).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deferred_indexes: Vec<String>,

    /// `server_id` of the primary the checkpoint's binary log positions
    /// belong to. After a failover they mean nothing on the new primary, so
    /// the copy starts over there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_server_id: Option<i64>,

    /// When the cut-over (or the instant ALTER) happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// When the retained old table was dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_table_dropped_time: Option<Time>,

    /// ReadyToComplete and Succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::k8s::conditions::schema")]
    pub conditions: Vec<Condition>,
}

/// Cut-over attempts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CutoverStatus {
    #[serde(flatten)]
    pub record: AttemptRecord,
    /// Longest time writers were stalled by the table lock, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_stall_millis: Option<i64>,
    /// The sentry of the attempt under way: the name the original table
    /// takes if the attempt succeeds. A restarted operator finishes or rolls
    /// back that attempt before anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<String>,
}

/// The values of `status.step`, in the order the work takes them (the
/// plan's `Step` spells each; its tests check the two agree).
pub const STEPS: [&str; 12] = [
    "Pending",
    "Invalid",
    "Queued",
    "Preparing",
    "Copying",
    "Verifying",
    "ReadyToComplete",
    "Postponed",
    "CuttingOver",
    "Complete",
    "Cancelled",
    "Failed",
];

fn step_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::k8s::schema::one_of(&STEPS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_checkpoint_is_left_out_of_status_applies() {
        let s = OnlineDDLStatus { step: Some("Copying".into()), ..Default::default() };
        let v = serde_json::to_value(&s).unwrap();
        assert!(v.get("checkpoint").is_none(), "{v}");
        let back: OnlineDDLStatus = serde_json::from_value(serde_json::json!({"checkpoint": null})).unwrap();
        assert_eq!(back.checkpoint, None);
    }
}
