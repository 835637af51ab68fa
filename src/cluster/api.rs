//! The MySQLCluster API: a replicated MySQL or MariaDB cluster with GTID
//! replication, switchover and automatic failover.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const DEFAULT_IMAGE: &str = "mariadb:10.11";

/// A replicated MySQL or MariaDB cluster: one primary and read-only replicas
/// kept in sync by GTID replication, with switchover and automatic failover.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "switchyard.io",
    version = "v1alpha1",
    kind = "MySQLCluster",
    plural = "mysqlclusters",
    singular = "mysqlcluster",
    namespaced,
    status = "MySQLClusterStatus",
    shortname = "myc",
    category = "switchyard",
    derive = "PartialEq",
    doc = "A replicated MySQL or MariaDB cluster managed by Switchyard.",
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Primary", type_ = "string", json_path = ".status.primary"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas", description = "Desired instances"),
    printcolumn(name = "ReadyReplicas", type_ = "integer", json_path = ".status.readyReplicas", priority = 1),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct MySQLClusterSpec {
    /// Number of instances: one primary plus replicas.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,

    /// Server image. MariaDB 10.11 or later, or MySQL 8.0/8.4. The flavor is
    /// detected from the running server, not from the image name.
    #[serde(default = "default_image")]
    pub image: String,

    /// Persistent storage of each instance's data directory. Immutable: a
    /// StatefulSet's volume claim templates cannot change.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storage is immutable"))]
    pub storage: Storage,

    /// CPU and memory of the database container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// my.cnf overrides under [mysqld], as option name to value. Options the
    /// operator owns (server_id, gtid and binlog settings, read_only, ports,
    /// paths) are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,

    /// Ordinal of the desired primary instance (pod `<name>-<ordinal>`).
    /// Changing it requests a switchover.
    #[serde(default)]
    #[schemars(range(min = 0, max = 8))]
    pub primary: i32,

    /// Automatic failover when the primary stops answering.
    #[serde(default)]
    pub failover: Failover,

    /// Replication durability settings.
    #[serde(default)]
    pub replication: Replication,

    /// Overrides merged into the instances' pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodOverrides>,

    /// What happens to the data volumes when the cluster is deleted or scaled
    /// in: Retain (default) keeps the PersistentVolumeClaims, Delete removes them.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

impl Default for MySQLClusterSpec {
    fn default() -> Self {
        Self {
            replicas: default_replicas(),
            image: default_image(),
            storage: Storage::default(),
            resources: None,
            config: BTreeMap::new(),
            primary: 0,
            failover: Failover::default(),
            replication: Replication::default(),
            pod_template: None,
            deletion_policy: DeletionPolicy::default(),
        }
    }
}

fn default_replicas() -> i32 {
    3
}

fn default_image() -> String {
    DEFAULT_IMAGE.to_string()
}

/// Persistent storage of each instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Size of each instance's volume, as a Kubernetes quantity (e.g. 10Gi).
    #[serde(default = "default_storage_size")]
    pub size: String,

    /// StorageClass of the volumes. Unset: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for Storage {
    fn default() -> Self {
        Self { size: default_storage_size(), storage_class_name: None }
    }
}

fn default_storage_size() -> String {
    "10Gi".to_string()
}

/// Automatic failover settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failover {
    /// Promote a replica when the primary is unreachable. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Seconds the primary must stay unreachable before failover starts, so a
    /// brief network blip does not cause one. Default 10.
    #[serde(default = "default_failover_delay")]
    #[schemars(range(min = 0, max = 3600))]
    pub delay_seconds: i32,
}

impl Default for Failover {
    fn default() -> Self {
        Self { enabled: true, delay_seconds: default_failover_delay() }
    }
}

fn default_true() -> bool {
    true
}

fn default_failover_delay() -> i32 {
    10
}

/// Replication durability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Replication {
    /// Loss-less semi-synchronous replication (wait point AFTER_SYNC): a
    /// commit is acknowledged only after enough replicas hold it, so failover
    /// loses no acknowledged write. With false, replication is asynchronous
    /// and a failover can lose the last acknowledged transactions.
    #[serde(default = "default_true")]
    pub semi_sync: bool,

    /// Replicas that must acknowledge each commit when semi-sync is on.
    /// Default 1.
    #[serde(default = "default_wait_for_replicas")]
    #[schemars(range(min = 1, max = 8))]
    pub wait_for_replica_count: i32,

    /// Milliseconds the primary waits for a replica acknowledgement before it
    /// degrades to asynchronous commits. Default 10000.
    #[serde(default = "default_semi_sync_timeout")]
    #[schemars(range(min = 100))]
    pub semi_sync_timeout_millis: i64,
}

impl Default for Replication {
    fn default() -> Self {
        Self {
            semi_sync: true,
            wait_for_replica_count: default_wait_for_replicas(),
            semi_sync_timeout_millis: default_semi_sync_timeout(),
        }
    }
}

fn default_wait_for_replicas() -> i32 {
    1
}

fn default_semi_sync_timeout() -> i64 {
    10_000
}

/// Overrides merged into the instances' pod template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Extra labels on every instance pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on every instance pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Node selector of the instance pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the instance pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity of the instance pods. Unset: instances prefer distinct nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// PriorityClass of the instance pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// What happens to data volumes when instances go away.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the PersistentVolumeClaims (and so the data).
    #[default]
    Retain,
    /// Delete the PersistentVolumeClaims with the cluster or scaled-in instance.
    Delete,
}

/// Observed state of a MySQLCluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MySQLClusterStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Clustering state: one of Incomplete, Healthy, Degraded, Switching,
    /// Failed, Lost, Errant (see docs/clustering.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,

    /// Pod name of the current primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,

    /// The `spec.primary` value last acted upon. A switchover happens when
    /// `spec.primary` changes from it, so a failover does not cause a switch
    /// back when the old primary returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_primary: Option<i32>,

    /// Since when the primary has not answered; failover starts
    /// `failover.delaySeconds` after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_unreachable_since: Option<Time>,

    /// Fingerprint of the Kubernetes objects last applied (StatefulSet,
    /// Services, ConfigMap, Secret, PodDisruptionBudget); they are re-applied
    /// when it changes, and at least every minute to repair drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects_fingerprint: Option<String>,

    /// When the Kubernetes objects were last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects_applied_at: Option<Time>,

    /// The last clustering operation performed and its outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_operation: Option<String>,

    /// Instances that are up and replicating correctly.
    #[serde(default)]
    pub ready_replicas: i32,

    /// What the operator observed of each instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceStatus>,

    /// Service names applications connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,

    /// Ready, Available, Healthy and Progressing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::k8s::conditions::schema")]
    pub conditions: Vec<Condition>,
}

/// One instance as last observed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// Pod name.
    pub name: String,
    /// Pod IP the operator reaches the server at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// primary, replica, or unknown.
    pub role: String,
    /// Executed GTID set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    /// Replication lag in seconds (replicas only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
    /// Whether the server refuses writes (read_only).
    #[serde(default)]
    pub read_only: bool,
    /// Whether the instance answers and replicates correctly.
    #[serde(default)]
    pub healthy: bool,
    /// Transactions this instance holds that the primary lacks, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errant_gtid: Option<String>,
}

/// Service names of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// Service that always points at the primary (read-write).
    pub primary: String,
    /// Service over the healthy replicas (read-only).
    pub replicas: String,
}
