//! The ShardSplit API: split one table into N shards by a declared rule, with
//! incremental sync, a dual-write phase and retirement of the old table.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::{AttemptPolicy, AttemptRecord, Progress, Throttle};

/// Splits one table into shards.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "switchyard.io",
    version = "v1alpha1",
    kind = "ShardSplit",
    plural = "shardsplits",
    singular = "shardsplit",
    namespaced,
    status = "ShardSplitStatus",
    shortname = "split",
    category = "switchyard",
    derive = "PartialEq",
    doc = "Splits one table into shards by a declared rule, through a dual-write phase.",
    printcolumn(name = "Table", type_ = "string", json_path = ".spec.source.table"),
    printcolumn(name = "Shards", type_ = "integer", json_path = ".spec.rule.shards"),
    printcolumn(name = "Step", type_ = "string", json_path = ".status.step"),
    printcolumn(
        name = "Progress",
        type_ = "integer",
        json_path = ".status.progress.percent",
        description = "Percent of rows copied"
    ),
    printcolumn(
        name = "Lag",
        type_ = "integer",
        json_path = ".status.progress.lagSeconds",
        description = "Seconds the shards trail the source"
    ),
    printcolumn(name = "Routing", type_ = "string", json_path = ".status.routing.phase"),
    printcolumn(
        name = "Succeeded",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Succeeded")].status"#
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ShardSplitSpec {
    /// The table to split.
    #[x_kube(validation = Rule::new("self == oldSelf").message("source is immutable"))]
    pub source: TableRef,

    /// How rows map to shards.
    #[x_kube(validation = Rule::new("self == oldSelf").message("rule is immutable"))]
    pub rule: ShardRule,

    /// The shard tables: exactly one of `list` or `template`.
    #[x_kube(
        validation = Rule::new("self == oldSelf").message("targets are immutable"),
        validation = Rule::new("has(self.list) != has(self.template)").message("set exactly one of targets.list and targets.template")
    )]
    pub targets: ShardTargets,

    /// Where sharding-aware clients read the routing from.
    pub routing: Routing,

    /// Hold at ReadyToComplete, in sync, until set to false.
    #[serde(default)]
    pub postpone_completion: bool,

    /// Send applications back to the old table while in dual-write (the
    /// routing flips back to `source`, with fence and catch-up in reverse).
    /// Set back to false to go forward again.
    #[serde(default)]
    pub rollback: bool,

    /// When and how the old table is retired after dual-write.
    #[serde(default)]
    pub retire: Retire,

    /// Limits that pause copy and apply while the source is busy.
    #[serde(default)]
    pub throttle: Throttle,

    /// The guarded switch into dual-write and back (a rollback).
    #[serde(default)]
    pub switch: AttemptPolicy,

    /// Stop before dual-write: stop syncing and drop nothing. Shard tables
    /// already created stay for inspection.
    #[serde(default)]
    pub cancel: bool,
}

/// A table in a MySQLCluster of this namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableRef {
    /// MySQLCluster name.
    pub cluster: String,
    /// Database (schema).
    pub database: String,
    /// Table.
    pub table: String,
}

/// The sharding rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardRule {
    /// The sharding key column. It must be NOT NULL.
    pub column: String,
    /// hash: crc32 of the key's canonical bytes, mod shards. mod: integer key
    /// mod shards. range: explicit boundaries in `ranges`.
    pub algorithm: Algorithm,
    /// Number of shards, 2 to 1024.
    #[schemars(range(min = 2, max = 1024))]
    pub shards: i32,
    /// For `range`: one entry per shard; together they must cover the whole
    /// key space without overlap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<KeyRange>,
}

/// Sharding algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// crc32 of the key's canonical bytes, mod shards.
    #[default]
    Hash,
    /// Integer key mod shards.
    Mod,
    /// Explicit key ranges.
    Range,
}

/// Keys from `from` (inclusive) up to `to` (exclusive) go to `shard`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRange {
    /// Shard number, 0-based.
    #[schemars(range(min = 0))]
    pub shard: i32,
    /// Lowest key of the range. Unset: no lower bound (the first range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// First key past the range. Unset: no upper bound (the last range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// The shard tables.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardTargets {
    /// Explicit targets, shard 0 first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<Vec<TableRef>>,
    /// Targets named by a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TargetTemplate>,
}

/// Shard tables named by a template; `{shard}` is replaced by the shard number.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetTemplate {
    /// Cluster of every shard. Unset: the source cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Database of every shard. Unset: the source database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Table name template, e.g. `orders_{shard}`.
    pub table: String,
}

/// Routing publication.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Routing {
    /// ConfigMap in this namespace holding the rule, the shard map, the
    /// phase and a generation (format in docs/routing.md).
    pub config_map: String,
}

/// Retirement of the old table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retire {
    /// rename (default): keep it as `_<table>_retired_<timestamp>`. drop: drop it.
    #[serde(default)]
    pub mode: RetireMode,
    /// Seconds in dual-write before retiring. Default 86400.
    #[serde(default = "default_retire_after")]
    #[schemars(range(min = 0))]
    pub after_seconds: i64,
    /// Retire now, without waiting for `afterSeconds`.
    #[serde(default)]
    pub now: bool,
}

impl Default for Retire {
    fn default() -> Self {
        Self { mode: RetireMode::default(), after_seconds: default_retire_after(), now: false }
    }
}

fn default_retire_after() -> i64 {
    86_400
}

/// What retiring does to the old table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RetireMode {
    /// Rename to `_<table>_retired_<timestamp>`.
    #[default]
    Rename,
    /// Drop the table.
    Drop,
}

/// Observed state of a ShardSplit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardSplitStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current step: Pending, CreatingShards, Copying, Syncing,
    /// ReadyToComplete, Postponed, Switching, DualWrite, RollingBack,
    /// RolledBack, Retiring, Complete, Cancelled or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "step_schema")]
    pub step: Option<String>,

    /// The forward sync's engine checkpoint (old table → shards). Opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::k8s::schema::free_form_object")]
    pub checkpoint: Option<serde_json::Value>,

    /// `server_id` of the source cluster's primary the forward checkpoint's
    /// binary log positions belong to. After a switchover they mean nothing
    /// on the new primary, so the copy starts over there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_server_id: Option<i64>,

    /// The reverse sync in dual-write (shards → old table): one engine job
    /// per cluster holding shards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reverse: Vec<ReverseSync>,

    /// Switch attempts (into dual-write, or back on a rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch: Option<SwitchReport>,

    /// The disjoint AUTO_INCREMENT ranges the shards were given at the
    /// last switch into dual-write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_increment: Option<AutoIncrementRanges>,

    /// When dual-write began; retirement counts `retire.afterSeconds` from
    /// here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dual_write_since: Option<Time>,

    /// The old table's name after retirement (absent when dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_table: Option<String>,

    /// When the split finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// Overall progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,

    /// Progress per shard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardStatus>,

    /// What the routing ConfigMap currently says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingStatus>,

    /// ReadyToComplete and Succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::k8s::conditions::schema")]
    pub conditions: Vec<Condition>,
}

/// One reverse-sync job: the shard tables of one cluster into the old table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReverseSync {
    /// The MySQLCluster holding the shards this job reads.
    pub cluster: String,
    /// Engine checkpoint. Opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::k8s::schema::free_form_object")]
    pub checkpoint: Option<serde_json::Value>,
    /// `server_id` of the shard cluster's primary this checkpoint's positions
    /// belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_server_id: Option<i64>,
}

/// A switch attempt's record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwitchReport {
    /// Attempts since the last re-arm or change of direction.
    #[serde(flatten)]
    pub record: AttemptRecord,
    /// Which way the attempt in flight (or the last one) went: DualWrite
    /// (forward) or Source (a rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Sub-step of the attempt in flight: Fence, CatchUp, Checksum,
    /// AutoIncrement, FlipRouting, StartSync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_step: Option<String>,
    /// When the attempt in flight fenced writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_at: Option<Time>,
    /// How long the last successful attempt kept writes fenced, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_millis: Option<i64>,
    /// Binary log positions taken under the fence, one per fenced server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fence_positions: Vec<FencePosition>,
}

/// Where one fenced server's binary log stood under the fence: everything
/// it acknowledged before is at or before this point.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FencePosition {
    /// The MySQLCluster.
    pub cluster: String,
    /// Binary log file.
    pub file: String,
    /// Offset in that file.
    pub position: i64,
}

/// Disjoint AUTO_INCREMENT ranges: shard i hands out ids from
/// `base + i·stride` up to (not including) `base + (i+1)·stride`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoIncrementRanges {
    /// The AUTO_INCREMENT column.
    pub column: String,
    /// First id of shard 0 (decimal: it may exceed a JSON number).
    pub base: String,
    /// Ids per shard.
    pub stride: String,
}

/// One shard.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// Shard number.
    pub shard: i32,
    /// Where the shard lives.
    pub target: TableRef,
    /// Rows copied into this shard.
    #[serde(default)]
    pub rows_copied: i64,
    /// Whether the last checksum of this shard matched the source rows that
    /// route to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_matched: Option<bool>,
}

/// Published routing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingStatus {
    /// source, dual-write or shards.
    pub phase: String,
    /// Generation written to the ConfigMap; bumps on every change.
    pub generation: i64,
}

/// The values of `status.step`, in the order the work takes them (the
/// plan's `Step` spells each; its tests check the two agree).
pub const STEPS: [&str; 14] = [
    "Pending",
    "CreatingShards",
    "Copying",
    "Syncing",
    "ReadyToComplete",
    "Postponed",
    "Switching",
    "DualWrite",
    "RollingBack",
    "RolledBack",
    "Retiring",
    "Complete",
    "Cancelled",
    "Failed",
];

fn step_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::k8s::schema::one_of(&STEPS)
}
