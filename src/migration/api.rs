//! The Migration API: move databases to a MySQLCluster in four steps (seed
//! copy, incremental sync, accounts, guarded data-source switch).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::{AttemptPolicy, AttemptRecord, Progress, Throttle};

/// Moves databases from a cluster or an external server to a MySQLCluster.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "switchyard.io",
    version = "v1alpha1",
    kind = "Migration",
    plural = "migrations",
    singular = "migration",
    namespaced,
    status = "MigrationStatus",
    shortname = "mig",
    category = "switchyard",
    derive = "PartialEq",
    doc = "Moves databases between servers: seed copy, incremental sync, accounts, and a guarded switch.",
    printcolumn(name = "Target", type_ = "string", json_path = ".spec.target.cluster"),
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
        description = "Seconds until the seed copy finishes"
    ),
    printcolumn(
        name = "Lag",
        type_ = "integer",
        json_path = ".status.progress.lagSeconds",
        description = "Seconds the target trails the source"
    ),
    printcolumn(
        name = "Succeeded",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Succeeded")].status"#
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct MigrationSpec {
    /// Where the data comes from: exactly one of `cluster` or `external`.
    #[x_kube(
        validation = Rule::new("self == oldSelf").message("source is immutable"),
        validation = Rule::new("has(self.cluster) != has(self.external)").message("set exactly one of source.cluster and source.external")
    )]
    pub source: MigrationSource,

    /// Where the data goes.
    #[x_kube(validation = Rule::new("self == oldSelf").message("target is immutable"))]
    pub target: MigrationTarget,

    /// Databases to move. They keep their names on the target.
    #[schemars(length(min = 1))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("databases are immutable"))]
    pub databases: Vec<String>,

    /// Optional table filter within `databases`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<TableFilter>,

    /// How changes made on the source after the seed copy reach the target.
    #[serde(default)]
    pub incremental: Incremental,

    /// Accounts to copy, with their password hashes and their grants on the
    /// migrated databases.
    #[serde(default)]
    pub accounts: Accounts,

    /// The guarded switch of applications from source to target.
    #[serde(default)]
    pub switch: SwitchPolicy,

    /// Hold at ReadyToComplete, in sync, until set to false. Default true: the
    /// switch waits for an explicit go.
    #[serde(default = "default_true")]
    pub postpone_completion: bool,

    /// Limits that pause copy and apply while the source is busy.
    #[serde(default)]
    pub throttle: Throttle,

    /// Stop the migration before the switch: stop syncing, leave the source
    /// untouched. Data already copied to the target stays.
    #[serde(default)]
    pub cancel: bool,
}

fn default_true() -> bool {
    true
}

/// Source of a migration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationSource {
    /// A MySQLCluster in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// A server outside Switchyard, such as the legacy host being retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalServer>,
}

/// A MySQL or MariaDB server reached by address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalServer {
    /// Host name or IP address.
    pub host: String,
    /// TCP port. Default 3306.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Secret in this namespace with keys `username` and `password` of an
    /// account allowed to read the data and the binary log (SELECT, RELOAD,
    /// REPLICATION SLAVE, REPLICATION CLIENT, and LOCK TABLES for the switch).
    pub credentials_secret: String,
}

fn default_port() -> i32 {
    3306
}

/// Target of a migration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationTarget {
    /// A MySQLCluster in this namespace; data is written to its primary.
    pub cluster: String,
}

/// Table filter. Entries are `table` (any migrated database) or
/// `database.table`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableFilter {
    /// Only these tables. Empty: all tables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Never these tables (wins over include).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// Incremental sync settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Incremental {
    /// binlog (default): the operator streams the source's binary log and
    /// applies row changes; works for any scope. replication: the target
    /// primary becomes a replica of the source with replication filters.
    #[serde(default)]
    pub mode: IncrementalMode,
}

/// How changes reach the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IncrementalMode {
    /// Operator-driven change data capture from the binary log.
    #[default]
    Binlog,
    /// Native replication from the source into the target primary.
    Replication,
}

/// Accounts to move.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accounts {
    /// Accounts as `user@host` (host may be `%`). Their authentication
    /// strings (hashes) and their grants on the migrated databases are copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
}

/// The guarded switch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwitchPolicy {
    /// What applications use to find the database; both move to the target
    /// primary at the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_source: Option<DataSource>,

    /// After the switch, kill the source connections and blocked queries on
    /// the migrated scope. Default true.
    #[serde(default = "default_true")]
    pub kill_blocked_queries: bool,

    /// How the switch is attempted: lockWaitTimeoutSeconds (how long writes
    /// on the source may stay fenced), maxAttempts, backoffSeconds,
    /// maxLagSeconds, retry.
    #[serde(flatten)]
    pub attempts: AttemptPolicy,
}

impl Default for SwitchPolicy {
    fn default() -> Self {
        Self { data_source: None, kill_blocked_queries: true, attempts: AttemptPolicy::default() }
    }
}

/// The objects applications read their connection details from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataSource {
    /// Service (created or taken over) that points at the current primary:
    /// the source before the switch, the target after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// ConfigMap with keys host, port, databases and generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
}

/// Observed state of a Migration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current step: Pending, SeedCopy, Incremental, Accounts,
    /// ReadyToComplete, Postponed, Switching, Complete, Cancelled or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "step_schema")]
    pub step: Option<String>,

    /// Seed copy and sync progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,

    /// The tables being moved (`database.table`), fixed when the migration
    /// starts: tables created on the source later are not moved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,

    /// Where the copy and the change apply resume after a restart (the
    /// data-movement engine's checkpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::k8s::schema::free_form_object")]
    pub checkpoint: Option<serde_json::Value>,

    /// `server_id` of the source server the binary log positions belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_server_id: Option<i64>,

    /// When the switch completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// Binary log positions of the sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions: Option<Positions>,

    /// Per-table checksum results of the last verification.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checksums: Vec<TableChecksum>,

    /// Accounts moved, and those that could not be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<AccountsStatus>,

    /// The switch: attempts, sub-step, and the report once done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch: Option<SwitchReport>,

    /// ReadyToComplete and Succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::k8s::conditions::schema")]
    pub conditions: Vec<Condition>,
}

/// Replication positions, as GTID sets or `file:position`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Positions {
    /// Position of the consistent snapshot the seed copy read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Last source position applied on the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
}

/// Checksum of one table, source against target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableChecksum {
    /// `database.table`.
    pub table: String,
    /// Whether source and target matched.
    pub matched: bool,
    /// Rows compared.
    #[serde(default)]
    pub rows: i64,
    /// Keys that differ, when some do (truncated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differing_keys: Vec<String>,
}

/// Accounts outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountsStatus {
    /// Accounts created or updated on the target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrated: Vec<String>,
    /// Grants added on the target, one statement each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<String>,
    /// Accounts that cannot be moved, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsupported: Vec<UnsupportedAccount>,
}

/// An account that was not moved.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnsupportedAccount {
    /// `user@host`.
    pub name: String,
    /// Why it cannot be moved (for example an unsupported auth plugin).
    pub reason: String,
}

/// The switch and its report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwitchReport {
    #[serde(flatten)]
    pub record: AttemptRecord,
    /// Sub-step of the attempt in flight: PermissionCheck, Fence, CatchUp,
    /// Checksum, SwitchDataSource, KillConnections, StopIncremental,
    /// SourceReadOnly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_step: Option<String>,
    /// How long writes were fenced on the source, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_millis: Option<i64>,
    /// Connections killed on the source after the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed_connections: Option<i32>,
    /// Endpoint applications used before the switch (host:port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_endpoint: Option<String>,
    /// Endpoint applications use after the switch (host:port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_endpoint: Option<String>,
    /// When the attempt in flight fenced the source's writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_at: Option<Time>,
    /// The source's binary log position taken under the fence: everything
    /// the source acknowledged before the fence is at or before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_position: Option<String>,
    /// The data-source generation this switch publishes in the ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

/// The values of `status.step`, in the order the work takes them (the
/// plan's `Step` spells each; its tests check the two agree).
pub const STEPS: [&str; 10] = [
    "Pending",
    "SeedCopy",
    "Incremental",
    "Accounts",
    "ReadyToComplete",
    "Postponed",
    "Switching",
    "Complete",
    "Cancelled",
    "Failed",
];

fn step_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::k8s::schema::one_of(&STEPS)
}
