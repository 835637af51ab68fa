//! The Kubernetes objects of a MySQLCluster, rendered from the resource and
//! its passwords. Pure: no I/O. [`super::apply`] reads the passwords and
//! writes these objects; the clustering logic relies on the names, labels and
//! ports defined here.
//!
//! For a cluster `<name>`:
//!
//! | Object | Name |
//! | --- | --- |
//! | StatefulSet (pods `<name>-<ordinal>`, container `mysql`, port `mysql`/3306) | `<name>` |
//! | headless Service (per-pod DNS, not-ready addresses published) | `<name>` |
//! | Service over the pod labelled `switchyard.io/role=primary` | `<name>-primary` |
//! | Service over the pods labelled `switchyard.io/role=replica` | `<name>-replicas` |
//! | Secret with the passwords and `init.sql` | `<name>-credentials` |
//! | ConfigMap with `my.cnf` and the server-id table | `<name>-config` |
//! | PodDisruptionBudget (`maxUnavailable: 1`) | `<name>` |
//!
//! Every instance starts read-only with replication stopped; the operator
//! gives it its `server_id` ([`server_id`]) and role at runtime.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, ExecAction, KeyToPath,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSpec, PodTemplateSpec,
    Probe, Secret, SecretKeySelector, SecretVolumeSource, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::api::{DeletionPolicy, MySQLCluster, MySQLClusterSpec};
use crate::k8s::owner::controller_ref;

// ---------------------------------------------------------------------------
// Labels

/// The role of an instance, on its pod. Maintained by the operator only, and
/// deliberately absent from the pod template: a template is shared by all
/// ordinals, so it cannot say which one is the primary. (Applying the
/// StatefulSet never rewrites labels of existing pods; a pod recreated by the
/// StatefulSet controller starts without a role, i.e. out of both role
/// Services, until the operator labels it.)
pub const ROLE_LABEL: &str = "switchyard.io/role";
pub const ROLE_PRIMARY: &str = "primary";
pub const ROLE_REPLICA: &str = "replica";

pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
/// Value of [`NAME_LABEL`] on every object of every cluster.
pub const APP_NAME: &str = "mysql";
/// Value of [`MANAGED_BY_LABEL`] and [`PART_OF_LABEL`].
pub const OPERATOR_NAME: &str = "switchyard";

/// Hash of the rendered `my.cnf` on the pod template: the server reads its
/// options only at start, so a change of `spec.config` must restart the pods
/// (through the StatefulSet's rolling update) to take effect.
pub const CONFIG_HASH_ANNOTATION: &str = "switchyard.io/config-hash";

/// Labels that select a cluster's pods (the StatefulSet, Service and PDB
/// selector). Immutable for a StatefulSet, so never extend it.
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(NAME_LABEL.to_string(), APP_NAME.to_string()), (INSTANCE_LABEL.to_string(), name.to_string())])
}

/// Labels on every object of the cluster and on its pods.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(name);
    l.insert(MANAGED_BY_LABEL.to_string(), OPERATOR_NAME.to_string());
    l.insert(PART_OF_LABEL.to_string(), OPERATOR_NAME.to_string());
    l
}

/// The selector of the pods currently in `role` (a [`ROLE_PRIMARY`] or
/// [`ROLE_REPLICA`]).
pub fn role_selector(name: &str, role: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(name);
    l.insert(ROLE_LABEL.to_string(), role.to_string());
    l
}

/// `selector_labels(name)` as a label-selector string, for list calls.
pub fn selector_string(name: &str) -> String {
    selector_labels(name).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

// ---------------------------------------------------------------------------
// Names

pub const CONTAINER_NAME: &str = "mysql";
pub const PORT_NAME: &str = "mysql";
pub const MYSQL_PORT: i32 = 3306;

pub fn statefulset_name(name: &str) -> String {
    name.to_string()
}

/// The headless Service that gives each pod a stable DNS name.
pub fn headless_service_name(name: &str) -> String {
    name.to_string()
}

pub fn primary_service_name(name: &str) -> String {
    format!("{name}-primary")
}

pub fn replicas_service_name(name: &str) -> String {
    format!("{name}-replicas")
}

pub fn secret_name(name: &str) -> String {
    format!("{name}-credentials")
}

pub fn config_map_name(name: &str) -> String {
    format!("{name}-config")
}

pub fn pdb_name(name: &str) -> String {
    name.to_string()
}

pub fn pod_name(name: &str, ordinal: i32) -> String {
    format!("{name}-{ordinal}")
}

/// The ordinal of `pod` if it is an instance of cluster `name`.
pub fn pod_ordinal(name: &str, pod: &str) -> Option<i32> {
    let digits = pod.strip_prefix(name)?.strip_prefix('-')?;
    let canonical = digits == "0" || (!digits.is_empty() && !digits.starts_with('0'));
    if canonical && digits.bytes().all(|b| b.is_ascii_digit()) { digits.parse().ok() } else { None }
}

/// The stable DNS name of an instance through the headless Service (where the
/// cluster has DNS; the local environment has none, use pod IPs there).
pub fn pod_host(name: &str, namespace: &str, ordinal: i32) -> String {
    format!("{}.{}.{namespace}.svc", pod_name(name, ordinal), headless_service_name(name))
}

/// `server_id` of an instance: 100 + ordinal. Kept away from 0 (which
/// refuses replication) and 1 (every server's default, so an instance the
/// operator has not configured yet can never pass for a configured one).
pub const SERVER_ID_BASE: u32 = 100;

pub fn server_id(ordinal: i32) -> u32 {
    SERVER_ID_BASE + ordinal.max(0) as u32
}

// ---------------------------------------------------------------------------
// Accounts and the credentials Secret

pub const ROOT_PASSWORD_KEY: &str = "root-password";
pub const REPLICATION_PASSWORD_KEY: &str = "replication-password";
pub const OPERATOR_PASSWORD_KEY: &str = "operator-password";
pub const APP_PASSWORD_KEY: &str = "app-password";
pub const MOVER_PASSWORD_KEY: &str = "mover-password";
/// The password keys of the credentials Secret. Generated when absent, never
/// changed once present.
pub const PASSWORD_KEYS: [&str; 5] =
    [ROOT_PASSWORD_KEY, REPLICATION_PASSWORD_KEY, OPERATOR_PASSWORD_KEY, APP_PASSWORD_KEY, MOVER_PASSWORD_KEY];
/// The key of the Secret holding the account-creation script.
pub const INIT_SQL_KEY: &str = "init.sql";

/// Replication account (`'repl'@'%'`): REPLICATION SLAVE, REPLICATION CLIENT.
pub const REPLICATION_USER: &str = "repl";
/// The operator's own account (`'switchyard'@'%'`): ALL WITH GRANT OPTION.
pub const OPERATOR_USER: &str = "switchyard";
/// The account the data-moving kinds (OnlineDDL, Migration, ShardSplit) work
/// with (`'switchyard_mover'@'%'`): everything the operator's account has
/// except writing past `read_only` (MariaDB's READ_ONLY ADMIN; on MySQL the
/// cluster uses super_read_only, which no account writes past). A switchover
/// makes the old primary read-only first, so whatever the work still sends
/// there is refused by the server instead of becoming a transaction the new
/// primary lacks.
pub const MOVER_USER: &str = "switchyard_mover";
/// The applications' account (`'app'@'%'`): data and schema privileges, no
/// administration.
pub const APP_USER: &str = "app";

/// Privileges of [`APP_USER`]: what an application needs for its data and
/// schema, without administrative ones (SUPER, PROCESS, FILE, SHUTDOWN,
/// RELOAD, REPLICATION, CREATE USER, GRANT OPTION...).
pub const APP_PRIVILEGES: &str = "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, \
     CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, \
     EVENT, TRIGGER, REFERENCES";

/// The cluster's passwords, as stored in the credentials Secret. `Debug`
/// prints no password.
#[derive(Clone, PartialEq, Eq)]
pub struct Passwords {
    pub root: String,
    pub replication: String,
    pub operator: String,
    pub app: String,
    pub mover: String,
}

impl Passwords {
    /// The Secret key of each password, in [`PASSWORD_KEYS`] order.
    pub fn entries(&self) -> [(&'static str, &str); 5] {
        [
            (ROOT_PASSWORD_KEY, &self.root),
            (REPLICATION_PASSWORD_KEY, &self.replication),
            (OPERATOR_PASSWORD_KEY, &self.operator),
            (APP_PASSWORD_KEY, &self.app),
            (MOVER_PASSWORD_KEY, &self.mover),
        ]
    }
}

impl fmt::Debug for Passwords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passwords { root: <redacted>, replication: <redacted>, operator: <redacted>, app: <redacted>, mover: <redacted> }")
    }
}

/// A single-quoted SQL string literal. `'` is doubled (valid whatever the
/// sql_mode); `\` and NUL are backslash-escaped, which assumes the default
/// sql_mode without NO_BACKSLASH_ESCAPES (generated passwords are
/// alphanumeric, so this only matters for passwords a user stored).
pub fn sql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The script the image's entrypoint runs once, when it initializes an empty
/// data directory: the replication, operator, mover and application accounts.
/// Valid on MariaDB 10.11+ and MySQL 8.0/8.4.
///
/// `sql_log_bin=0` first: the statements then write no binlog events and
/// create no GTIDs. Every instance runs the script on its own data directory,
/// so with GTIDs each would hold transactions no other instance has, and the
/// first replica to connect would see errant transactions.
pub fn init_sql(passwords: &Passwords, flavor: ImageFlavor) -> String {
    let mut sql = String::from(
        "-- Written by Switchyard. Run once by the image entrypoint on an empty data directory.\n\
         -- Not binlogged: every instance creates the same accounts itself, so none holds a GTID the primary lacks.\n\
         SET SESSION sql_log_bin=0;\n",
    );
    let mut account = |user: &str, password: &str, grant: &str| {
        sql.push_str(&format!("CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY {};\n", sql_string(password)));
        sql.push_str(&format!("{}\n", grant.replace("{user}", &format!("'{user}'@'%'"))));
    };
    account(REPLICATION_USER, &passwords.replication, "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {user};");
    account(OPERATOR_USER, &passwords.operator, "GRANT ALL PRIVILEGES ON *.* TO {user} WITH GRANT OPTION;");
    let mover = match flavor {
        ImageFlavor::MariaDb => {
            "GRANT ALL PRIVILEGES ON *.* TO {user} WITH GRANT OPTION;\nREVOKE READ_ONLY ADMIN ON *.* FROM {user};"
        }
        ImageFlavor::MySql => "GRANT ALL PRIVILEGES ON *.* TO {user} WITH GRANT OPTION;",
    };
    account(MOVER_USER, &passwords.mover, mover);
    account(APP_USER, &passwords.app, &format!("GRANT {APP_PRIVILEGES} ON *.* TO {{user}};"));
    sql
}

// ---------------------------------------------------------------------------
// Server configuration

/// Where the ConfigMap is mounted; both images include `*.cnf` files here.
pub const CONFIG_DIR: &str = "/etc/mysql/conf.d";
/// The file name of `my.cnf` inside [`CONFIG_DIR`].
pub const CONFIG_FILE: &str = "switchyard.cnf";
pub const MY_CNF_KEY: &str = "my.cnf";
/// ConfigMap key documenting ordinal → server_id.
pub const SERVER_IDS_KEY: &str = "server-ids";
pub const DATA_DIR: &str = "/var/lib/mysql";
pub const DATA_VOLUME: &str = "data";
pub const CONFIG_VOLUME: &str = "config";
pub const INITDB_VOLUME: &str = "initdb";
pub const INITDB_DIR: &str = "/docker-entrypoint-initdb.d";
/// File name of `init.sql` in [`INITDB_DIR`].
pub const INIT_SQL_FILE: &str = "10-switchyard.sql";

/// The server family, guessed from the image name. Used only where nothing
/// else is known before a pod runs: which semi-sync plugins to load and which
/// admin client the readiness probe calls. SQL uses the flavor detected from
/// the running server ([`crate::mysql::Flavor`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFlavor {
    MariaDb,
    /// MySQL and Percona Server.
    MySql,
}

/// MariaDB when the image's repository name says so, MySQL otherwise (the
/// spec validation admits only MariaDB, MySQL and Percona images).
pub fn image_flavor(image: &str) -> ImageFlavor {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let repository = last.split(':').next().unwrap_or(last);
    if repository.to_ascii_lowercase().contains("mariadb") { ImageFlavor::MariaDb } else { ImageFlavor::MySql }
}

/// The admin client of the image: the MariaDB 11 images have no `mysqladmin`.
pub fn admin_command(flavor: ImageFlavor) -> &'static str {
    match flavor {
        ImageFlavor::MariaDb => "mariadb-admin",
        ImageFlavor::MySql => "mysqladmin",
    }
}

/// The `[mysqld]` options file of every instance, followed by the user's
/// `spec.config` verbatim (validation refuses owned options and multi-line
/// values). `loose_` options are skipped with a warning by a server that does
/// not know them, so one file serves both flavors.
pub fn my_cnf(spec: &MySQLClusterSpec) -> String {
    let flavor = image_flavor(&spec.image);
    // MySQL 8.0.26 renamed the replica options and 8.4 deprecates the old
    // names; MariaDB 10.11 knows only the old ones.
    let (log_replica_updates, skip_replica_start) = match flavor {
        ImageFlavor::MariaDb => ("log_slave_updates", "skip_slave_start"),
        ImageFlavor::MySql => ("log_replica_updates", "skip_replica_start"),
    };
    let mut cnf = format!(
        "# Written by Switchyard; changes are overwritten. Set options with spec.config.\n\
         [mysqld]\n\
         # Binary log with row events on every instance: any of them can become the primary.\n\
         log_bin = mysql-bin\n\
         binlog_format = ROW\n\
         binlog_row_image = FULL\n\
         {log_replica_updates} = ON\n\
         relay_log = relay-bin\n\
         loose_binlog_expire_logs_seconds = 604800\n\
         # GTIDs: MariaDB\n\
         loose_gtid_strict_mode = ON\n\
         # GTIDs: MySQL\n\
         loose_gtid_mode = ON\n\
         loose_enforce_gtid_consistency = ON\n\
         # Every instance starts read-only and not replicating. The operator sets its\n\
         # server_id (SET GLOBAL; 100 + ordinal, see the server-ids key) before it lets\n\
         # it take writes or replicate: the pod template is shared by all ordinals and\n\
         # no init container runs, so the file cannot carry a per-instance server_id.\n\
         read_only = ON\n\
         {skip_replica_start} = ON\n\
         skip_name_resolve = ON\n",
    );
    if flavor == ImageFlavor::MySql {
        cnf.push_str(
            "# Semi-sync plugins (MySQL; built into MariaDB). The operator sets the\n\
             # rpl_semi_sync_* variables at runtime.\n\
             plugin_load_add = semisync_source.so\n\
             plugin_load_add = semisync_replica.so\n",
        );
    } else {
        cnf.push_str(
            "# Who holds a table's metadata lock (an OnlineDDL reports the sessions\n\
             # that block its cut-over). MySQL has this in performance_schema.\n\
             plugin_load_add = metadata_lock_info\n",
        );
    }
    if !spec.config.is_empty() {
        cnf.push_str("# spec.config\n");
        for (key, value) in &spec.config {
            if value.is_empty() {
                cnf.push_str(&format!("{key}\n"));
            } else {
                cnf.push_str(&format!("{key} = {value}\n"));
            }
        }
    }
    cnf
}

/// The ordinal → server_id table, for people reading the ConfigMap.
pub fn server_ids(name: &str, replicas: i32) -> String {
    let mut out = String::from(
        "# server_id of each instance: 100 + ordinal. Set by the operator at runtime\n\
         # (SET GLOBAL server_id) before the instance takes writes or replicates.\n",
    );
    for ordinal in 0..replicas.max(0) {
        out.push_str(&format!("{} = {}\n", pod_name(name, ordinal), server_id(ordinal)));
    }
    out
}

/// FNV-1a 64: a hash that stays the same across Rust releases (the std
/// hasher does not promise that), so an operator upgrade restarts nothing.
fn stable_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

// ---------------------------------------------------------------------------
// The objects

/// Why the objects cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("MySQLCluster {name} has no namespace")]
    MissingNamespace { name: String },
    #[error("MySQLCluster {name} has no uid yet, so nothing can be owned by it")]
    MissingUid { name: String },
}

/// Everything a MySQLCluster consists of in Kubernetes.
#[derive(Clone, Debug, PartialEq)]
pub struct Objects {
    pub secret: Secret,
    pub config_map: ConfigMap,
    pub headless: Service,
    pub primary: Service,
    pub replicas: Service,
    pub statefulset: StatefulSet,
    pub pdb: PodDisruptionBudget,
}

/// What every object's metadata derives from.
struct Owner {
    name: String,
    namespace: String,
    reference: OwnerReference,
}

impl Owner {
    fn of(cluster: &MySQLCluster) -> Result<Self, BuildError> {
        let name = cluster.name_any();
        let namespace = cluster.namespace().ok_or_else(|| BuildError::MissingNamespace { name: name.clone() })?;
        let reference = controller_ref(cluster).ok_or_else(|| BuildError::MissingUid { name: name.clone() })?;
        Ok(Self { name, namespace, reference })
    }

    fn meta(&self, object_name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(object_name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels(&self.name)),
            owner_references: Some(vec![self.reference.clone()]),
            ..ObjectMeta::default()
        }
    }
}

/// Renders every object of `cluster`.
pub fn build(cluster: &MySQLCluster, passwords: &Passwords) -> Result<Objects, BuildError> {
    let owner = Owner::of(cluster)?;
    Ok(Objects {
        secret: secret_of(&owner, cluster, passwords),
        config_map: config_map_of(&owner, &cluster.spec),
        headless: headless_of(&owner),
        primary: role_service_of(&owner, primary_service_name(&owner.name), ROLE_PRIMARY),
        replicas: role_service_of(&owner, replicas_service_name(&owner.name), ROLE_REPLICA),
        statefulset: statefulset_of(&owner, &cluster.spec),
        pdb: pdb_of(&owner),
    })
}

/// The credentials Secret alone (what [`super::apply::ensure_passwords`]
/// creates when there is none).
pub fn secret(cluster: &MySQLCluster, passwords: &Passwords) -> Result<Secret, BuildError> {
    Ok(secret_of(&Owner::of(cluster)?, cluster, passwords))
}

fn secret_of(owner: &Owner, cluster: &MySQLCluster, passwords: &Passwords) -> Secret {
    let mut data: BTreeMap<String, ByteString> =
        passwords.entries().iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect();
    data.insert(
        INIT_SQL_KEY.to_string(),
        ByteString(init_sql(passwords, image_flavor(&cluster.spec.image)).into_bytes()),
    );
    let mut metadata = owner.meta(secret_name(&owner.name));
    // With deletionPolicy Retain the data volumes outlive the cluster, and
    // they are only usable with the passwords they were initialized with
    // (init.sql ran once): the Secret is kept with them, not owned, so a
    // cluster re-created under the same name finds its accounts' passwords.
    if cluster.spec.deletion_policy == DeletionPolicy::Retain {
        metadata.owner_references = None;
    }
    Secret { metadata, type_: Some("Opaque".to_string()), data: Some(data), ..Secret::default() }
}

fn config_map_of(owner: &Owner, spec: &MySQLClusterSpec) -> ConfigMap {
    ConfigMap {
        metadata: owner.meta(config_map_name(&owner.name)),
        data: Some(BTreeMap::from([
            (MY_CNF_KEY.to_string(), my_cnf(spec)),
            (SERVER_IDS_KEY.to_string(), server_ids(&owner.name, spec.replicas)),
        ])),
        ..ConfigMap::default()
    }
}

fn service_port() -> ServicePort {
    ServicePort {
        name: Some(PORT_NAME.to_string()),
        port: MYSQL_PORT,
        target_port: Some(IntOrString::String(PORT_NAME.to_string())),
        // Explicit: the ports list is keyed by port and protocol for apply.
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    }
}

/// Gives every pod a DNS name (`<pod>.<name>.<ns>.svc`) from its start, ready
/// or not: instances must reach each other before they are ready.
fn headless_of(owner: &Owner) -> Service {
    Service {
        metadata: owner.meta(headless_service_name(&owner.name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(&owner.name)),
            ports: Some(vec![service_port()]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn role_service_of(owner: &Owner, service_name: String, role: &str) -> Service {
    Service {
        metadata: owner.meta(service_name),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(role_selector(&owner.name, role)),
            ports: Some(vec![service_port()]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn pdb_of(owner: &Owner) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: owner.meta(pdb_name(&owner.name)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&owner.name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// Instances prefer distinct nodes, so one node failure takes out one instance.
fn default_affinity(name: &str) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                weight: 100,
                pod_affinity_term: PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(selector_labels(name)),
                        ..LabelSelector::default()
                    }),
                    topology_key: "kubernetes.io/hostname".to_string(),
                    ..PodAffinityTerm::default()
                },
            }]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

/// Retain keeps the claims when the cluster is deleted or scaled in; Delete
/// removes them. (Kubernetes 1.20, the local environment, has no such field:
/// the apply leaves it out there and claims are always kept.)
fn retention_policy(policy: DeletionPolicy) -> StatefulSetPersistentVolumeClaimRetentionPolicy {
    let value = match policy {
        DeletionPolicy::Retain => "Retain",
        DeletionPolicy::Delete => "Delete",
    };
    StatefulSetPersistentVolumeClaimRetentionPolicy {
        when_deleted: Some(value.to_string()),
        when_scaled: Some(value.to_string()),
    }
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    if v.is_empty() { None } else { Some(v) }
}

fn non_empty_map(m: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    if m.is_empty() { None } else { Some(m) }
}

fn root_password_env(name: &str, owner: &Owner) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret_name(&owner.name),
                key: ROOT_PASSWORD_KEY.to_string(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn statefulset_of(owner: &Owner, spec: &MySQLClusterSpec) -> StatefulSet {
    let name = &owner.name;
    let overrides = spec.pod_template.clone().unwrap_or_default();
    let flavor = image_flavor(&spec.image);

    // User labels first, ours over them: the selector labels must match, and
    // the role label belongs to the operator (see ROLE_LABEL).
    let mut pod_labels = overrides.labels;
    pod_labels.remove(ROLE_LABEL);
    pod_labels.extend(labels(name));

    let mut pod_annotations = overrides.annotations;
    pod_annotations.insert(CONFIG_HASH_ANNOTATION.to_string(), stable_hash(&my_cnf(spec)));
    pod_annotations.insert("kubectl.kubernetes.io/default-container".to_string(), CONTAINER_NAME.to_string());

    let container = Container {
        name: CONTAINER_NAME.to_string(),
        image: Some(spec.image.clone()),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.to_string()),
            container_port: MYSQL_PORT,
            protocol: Some("TCP".to_string()),
            ..ContainerPort::default()
        }]),
        // The root password, for the image's first-start initialization.
        // No MARIADB_USER/MYSQL_USER: init.sql creates the accounts.
        env: Some(vec![
            root_password_env("MARIADB_ROOT_PASSWORD", owner),
            root_password_env("MYSQL_ROOT_PASSWORD", owner),
        ]),
        volume_mounts: Some(vec![
            VolumeMount { name: DATA_VOLUME.to_string(), mount_path: DATA_DIR.to_string(), ..VolumeMount::default() },
            VolumeMount {
                name: CONFIG_VOLUME.to_string(),
                mount_path: CONFIG_DIR.to_string(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: INITDB_VOLUME.to_string(),
                mount_path: INITDB_DIR.to_string(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        // Ready = the server answers (`ping` succeeds even when access is
        // denied). Roles are the operator's business, not the probe's.
        readiness_probe: Some(Probe {
            exec: Some(ExecAction { command: Some(vec![admin_command(flavor).to_string(), "ping".to_string()]) }),
            period_seconds: Some(2),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        // Deliberately no liveness probe: the kubelet would restart a primary
        // that is slow (overloaded, long flush, stalled disk), turning a pause
        // into a failover the operator did not decide. Failover is the
        // operator's decision, taken with spec.failover.delaySeconds.
        liveness_probe: None,
        resources: spec.resources.clone(),
        ..Container::default()
    };

    let volumes = vec![
        Volume {
            name: CONFIG_VOLUME.to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(name),
                items: Some(vec![KeyToPath { key: MY_CNF_KEY.to_string(), path: CONFIG_FILE.to_string(), mode: None }]),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: INITDB_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret_name(name)),
                // Default mode (0644): the entrypoint reads the script as the
                // image's mysql user, not as root.
                items: Some(vec![KeyToPath {
                    key: INIT_SQL_KEY.to_string(),
                    path: INIT_SQL_FILE.to_string(),
                    mode: None,
                }]),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];

    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_string()),
            labels: Some(labels(name)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(spec.storage.size.clone()))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };

    StatefulSet {
        metadata: owner.meta(statefulset_name(name)),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            selector: LabelSelector { match_labels: Some(selector_labels(name)), ..LabelSelector::default() },
            service_name: Some(headless_service_name(name)),
            // All pods start at once: the operator, not the start order,
            // decides which instance is the primary.
            pod_management_policy: Some("Parallel".to_string()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".to_string()),
                ..StatefulSetUpdateStrategy::default()
            }),
            persistent_volume_claim_retention_policy: Some(retention_policy(spec.deletion_policy)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(volumes),
                    // Time for a clean InnoDB shutdown (and for the operator
                    // to move the primary role away) before SIGKILL.
                    termination_grace_period_seconds: Some(60),
                    affinity: Some(overrides.affinity.unwrap_or_else(|| default_affinity(name))),
                    node_selector: non_empty_map(overrides.node_selector),
                    tolerations: non_empty(overrides.tolerations),
                    priority_class_name: overrides.priority_class_name,
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// A fingerprint of everything `apply_all` writes, so an unchanged set is not
/// re-applied on every pass. Only equality matters, so the hasher (stable
/// within a build) is enough; a new build at worst re-applies once.
pub fn fingerprint(objects: &Objects) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for part in [
        serde_json::to_string(&objects.secret),
        serde_json::to_string(&objects.config_map),
        serde_json::to_string(&objects.headless),
        serde_json::to_string(&objects.primary),
        serde_json::to_string(&objects.replicas),
        serde_json::to_string(&objects.statefulset),
        serde_json::to_string(&objects.pdb),
    ] {
        part.unwrap_or_default().hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_spec() -> MySQLClusterSpec {
        MySQLClusterSpec::default()
    }
    use crate::cluster::api::{MySQLClusterSpec, PodOverrides};
    use k8s_openapi::api::core::v1::{NodeAffinity, Toleration};

    fn cluster(spec: MySQLClusterSpec) -> MySQLCluster {
        let mut c = MySQLCluster::new("shop-db", spec);
        c.metadata.namespace = Some("prod".into());
        c.metadata.uid = Some("uid-1".into());
        c
    }

    fn passwords() -> Passwords {
        Passwords {
            root: "r00t".into(),
            replication: "r3pl".into(),
            operator: "0per".into(),
            app: "4pp".into(),
            mover: "m0ver".into(),
        }
    }

    fn objects(spec: MySQLClusterSpec) -> Objects {
        build(&cluster(spec), &passwords()).unwrap()
    }

    fn pod_spec(o: &Objects) -> &PodSpec {
        o.statefulset.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    fn container(o: &Objects) -> &Container {
        &pod_spec(o).containers[0]
    }

    fn metas(o: &Objects) -> Vec<&ObjectMeta> {
        vec![
            &o.secret.metadata,
            &o.config_map.metadata,
            &o.headless.metadata,
            &o.primary.metadata,
            &o.replicas.metadata,
            &o.statefulset.metadata,
            &o.pdb.metadata,
        ]
    }

    #[test]
    fn names() {
        let o = objects(MySQLClusterSpec::default());
        let names: Vec<_> = metas(&o).iter().map(|m| m.name.clone().unwrap()).collect();
        assert_eq!(
            names,
            [
                "shop-db-credentials",
                "shop-db-config",
                "shop-db",
                "shop-db-primary",
                "shop-db-replicas",
                "shop-db",
                "shop-db"
            ]
        );
        assert!(metas(&o).iter().all(|m| m.namespace.as_deref() == Some("prod")));
        assert_eq!(pod_name("shop-db", 2), "shop-db-2");
        assert_eq!(pod_host("shop-db", "prod", 1), "shop-db-1.shop-db.prod.svc");
        assert_eq!(primary_service_name("a"), "a-primary");
        assert_eq!(replicas_service_name("a"), "a-replicas");
        assert_eq!(secret_name("a"), "a-credentials");
        assert_eq!(config_map_name("a"), "a-config");
        assert_eq!(statefulset_name("a"), "a");
        assert_eq!(headless_service_name("a"), "a");
        assert_eq!(pdb_name("a"), "a");
    }

    #[test]
    fn pod_ordinals() {
        assert_eq!(pod_ordinal("db", "db-0"), Some(0));
        assert_eq!(pod_ordinal("db", "db-12"), Some(12));
        assert_eq!(pod_ordinal("db", "db-01"), None);
        assert_eq!(pod_ordinal("db", "db-x"), None);
        assert_eq!(pod_ordinal("db", "db-"), None);
        assert_eq!(pod_ordinal("db", "db-primary"), None);
        assert_eq!(pod_ordinal("db", "dbx-0"), None);
        assert_eq!(pod_ordinal("db-1", "db-1-0"), Some(0));
    }

    #[test]
    fn labels_on_every_object() {
        let o = objects(MySQLClusterSpec::default());
        let want = BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "mysql".to_string()),
            ("app.kubernetes.io/instance".to_string(), "shop-db".to_string()),
            ("app.kubernetes.io/managed-by".to_string(), "switchyard".to_string()),
            ("app.kubernetes.io/part-of".to_string(), "switchyard".to_string()),
        ]);
        for m in metas(&o) {
            assert_eq!(m.labels.as_ref(), Some(&want), "{:?}", m.name);
        }
        let sts = o.statefulset.spec.as_ref().unwrap();
        let pod_labels = sts.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert_eq!(pod_labels, &want);
        assert!(!pod_labels.contains_key(ROLE_LABEL), "the role is the operator's, not the template's");
        let claim_labels = sts.volume_claim_templates.as_ref().unwrap()[0].metadata.labels.as_ref().unwrap();
        assert_eq!(claim_labels, &want);
    }

    #[test]
    fn selectors() {
        let o = objects(MySQLClusterSpec::default());
        let sel = selector_labels("shop-db");
        assert_eq!(sel.len(), 2);
        assert_eq!(sel["app.kubernetes.io/name"], "mysql");
        assert_eq!(sel["app.kubernetes.io/instance"], "shop-db");
        assert_eq!(selector_string("shop-db"), "app.kubernetes.io/instance=shop-db,app.kubernetes.io/name=mysql");
        let sts = o.statefulset.spec.as_ref().unwrap();
        assert_eq!(sts.selector.match_labels.as_ref(), Some(&sel));
        let pod_labels = sts.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert!(sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v)), "selector must match the template");
        assert_eq!(o.headless.spec.as_ref().unwrap().selector.as_ref(), Some(&sel));
        let primary = o.primary.spec.as_ref().unwrap().selector.as_ref().unwrap();
        assert_eq!(primary[ROLE_LABEL], "primary");
        assert_eq!(primary.len(), 3);
        let replicas = o.replicas.spec.as_ref().unwrap().selector.as_ref().unwrap();
        assert_eq!(replicas[ROLE_LABEL], "replica");
        assert_eq!(replicas.len(), 3);
        assert_eq!(ROLE_LABEL, "switchyard.io/role");
        assert_eq!(o.pdb.spec.as_ref().unwrap().selector.as_ref().unwrap().match_labels.as_ref(), Some(&sel));
    }

    #[test]
    fn owner_references() {
        let mut spec = default_spec();
        spec.deletion_policy = DeletionPolicy::Delete;
        let o = objects(spec);
        for m in metas(&o) {
            let refs = m.owner_references.as_ref().unwrap();
            assert_eq!(refs.len(), 1, "{:?}", m.name);
            assert_eq!(refs[0].kind, "MySQLCluster");
            assert_eq!(refs[0].api_version, "switchyard.io/v1alpha1");
            assert_eq!(refs[0].name, "shop-db");
            assert_eq!(refs[0].uid, "uid-1");
            assert_eq!(refs[0].controller, Some(true));
        }
    }

    #[test]
    fn retained_clusters_keep_their_secret() {
        let o = objects(MySQLClusterSpec::default());
        assert!(o.secret.metadata.owner_references.is_none(), "kept with the retained volumes");
        for m in metas(&o).into_iter().skip(1) {
            assert_eq!(m.owner_references.as_ref().unwrap().len(), 1, "{:?}", m.name);
        }
        assert_eq!(secret(&cluster(MySQLClusterSpec::default()), &passwords()).unwrap(), o.secret);
    }

    #[test]
    fn missing_uid_or_namespace() {
        let mut c = cluster(MySQLClusterSpec::default());
        c.metadata.uid = None;
        assert_eq!(build(&c, &passwords()).unwrap_err(), BuildError::MissingUid { name: "shop-db".into() });
        c.metadata.namespace = None;
        let err = build(&c, &passwords()).unwrap_err();
        assert_eq!(err.to_string(), "MySQLCluster shop-db has no namespace");
    }

    #[test]
    fn services() {
        let o = objects(MySQLClusterSpec::default());
        let headless = o.headless.spec.as_ref().unwrap();
        assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
        assert_eq!(headless.publish_not_ready_addresses, Some(true));
        for svc in [&o.headless, &o.primary, &o.replicas] {
            let ports = svc.spec.as_ref().unwrap().ports.as_ref().unwrap();
            assert_eq!(ports.len(), 1);
            assert_eq!(ports[0].port, 3306);
            assert_eq!(ports[0].name.as_deref(), Some("mysql"));
            assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
            assert_eq!(ports[0].target_port, Some(IntOrString::String("mysql".into())));
        }
        for svc in [&o.primary, &o.replicas] {
            let spec = svc.spec.as_ref().unwrap();
            assert_eq!(spec.cluster_ip, None, "allocated by the API server");
            assert_eq!(spec.publish_not_ready_addresses, None);
        }
    }

    #[test]
    fn statefulset_shape() {
        let mut spec = default_spec();
        spec.replicas = 5;
        let o = objects(spec);
        let sts = o.statefulset.spec.as_ref().unwrap();
        assert_eq!(sts.replicas, Some(5));
        assert_eq!(sts.service_name.as_deref(), Some("shop-db"));
        assert_eq!(sts.pod_management_policy.as_deref(), Some("Parallel"));
        let strategy = sts.update_strategy.as_ref().unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        assert!(strategy.rolling_update.is_none(), "partition is left to whoever stages a rollout");
        let pod = pod_spec(&o);
        assert_eq!(pod.termination_grace_period_seconds, Some(60));
        assert_eq!(pod.containers.len(), 1);
        let c = container(&o);
        assert_eq!(c.name, "mysql");
        assert_eq!(c.image.as_deref(), Some("mariadb:10.11"));
        let port = &c.ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.container_port), (Some("mysql"), 3306));
        assert!(c.liveness_probe.is_none());
        assert!(c.resources.is_none());
        let annotations = sts.template.metadata.as_ref().unwrap().annotations.as_ref().unwrap();
        assert_eq!(annotations[CONFIG_HASH_ANNOTATION].len(), 16);
    }

    #[test]
    fn mounts_and_volumes() {
        let mut spec = default_spec();
        spec.storage.size = "20Gi".into();
        spec.storage.storage_class_name = Some("fast".into());
        let o = objects(spec);
        let mounts: Vec<_> = container(&o)
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.sub_path.is_some()))
            .collect();
        assert_eq!(
            mounts,
            [
                ("data", "/var/lib/mysql", false),
                ("config", "/etc/mysql/conf.d", false),
                ("initdb", "/docker-entrypoint-initdb.d", false)
            ]
        );
        let volumes = pod_spec(&o).volumes.as_ref().unwrap();
        let cm = volumes[0].config_map.as_ref().unwrap();
        assert_eq!(cm.name, "shop-db-config");
        let item = &cm.items.as_ref().unwrap()[0];
        assert_eq!((item.key.as_str(), item.path.as_str()), ("my.cnf", "switchyard.cnf"));
        let secret = volumes[1].secret.as_ref().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("shop-db-credentials"));
        let item = &secret.items.as_ref().unwrap()[0];
        assert_eq!((item.key.as_str(), item.path.as_str()), ("init.sql", "10-switchyard.sql"));
        assert_eq!(secret.items.as_ref().unwrap().len(), 1, "only the script, no password files");

        let claims = o.statefulset.spec.as_ref().unwrap().volume_claim_templates.as_ref().unwrap();
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
        let claim = claims[0].spec.as_ref().unwrap();
        assert_eq!(claim.access_modes.as_deref(), Some(&["ReadWriteOnce".to_string()][..]));
        assert_eq!(claim.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(claim.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"], Quantity("20Gi".into()));
        let default = objects(MySQLClusterSpec::default());
        let claims = default.statefulset.spec.as_ref().unwrap().volume_claim_templates.as_ref().unwrap();
        assert_eq!(claims[0].spec.as_ref().unwrap().storage_class_name, None);
    }

    #[test]
    fn root_password_env_from_the_secret() {
        let o = objects(MySQLClusterSpec::default());
        let env = container(&o).env.as_ref().unwrap();
        let names: Vec<_> = env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD"]);
        for e in env {
            assert!(e.value.is_none(), "never a literal password in the pod spec");
            let r = e.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
            assert_eq!((r.name.as_str(), r.key.as_str()), ("shop-db-credentials", "root-password"));
        }
    }

    #[test]
    fn probe_per_flavor() {
        let probe_of = |image: &str| {
            let mut spec = default_spec();
            spec.image = image.into();
            let o = objects(spec);
            container(&o).readiness_probe.clone().unwrap()
        };
        let p = probe_of("mariadb:11.4");
        assert_eq!(p.exec.unwrap().command.unwrap(), ["mariadb-admin", "ping"]);
        assert_eq!((p.period_seconds, p.failure_threshold), (Some(2), Some(3)));
        for image in ["mysql:8.4", "docker.io/library/mysql:8.0", "percona/percona-server:8.0"] {
            assert_eq!(probe_of(image).exec.unwrap().command.unwrap(), ["mysqladmin", "ping"], "{image}");
        }
        assert_eq!(probe_of("registry:5000/db/mariadb@sha256:abc").exec.unwrap().command.unwrap()[0], "mariadb-admin");
    }

    #[test]
    fn image_flavors() {
        assert_eq!(image_flavor("mariadb:10.11"), ImageFlavor::MariaDb);
        assert_eq!(image_flavor("quay.io/org/MariaDB"), ImageFlavor::MariaDb);
        assert_eq!(image_flavor("mysql:8.4"), ImageFlavor::MySql);
        assert_eq!(
            image_flavor("mariadb-mirror:5000/mysql:8.0"),
            ImageFlavor::MySql,
            "only the repository name counts"
        );
        assert_eq!(image_flavor("percona/percona-server:8.0"), ImageFlavor::MySql);
    }

    #[test]
    fn my_cnf_for_mariadb() {
        let cnf = my_cnf(&MySQLClusterSpec::default());
        assert!(cnf.contains("\n[mysqld]\n"));
        for line in [
            "log_bin = mysql-bin",
            "binlog_format = ROW",
            "binlog_row_image = FULL",
            "log_slave_updates = ON",
            "relay_log = relay-bin",
            "loose_gtid_strict_mode = ON",
            "loose_gtid_mode = ON",
            "loose_enforce_gtid_consistency = ON",
            "read_only = ON",
            "skip_slave_start = ON",
            "loose_binlog_expire_logs_seconds = 604800",
            "skip_name_resolve = ON",
        ] {
            assert!(cnf.lines().any(|l| l == line), "missing {line:?} in\n{cnf}");
        }
        assert!(!cnf.contains("semisync"), "semi-sync is built into MariaDB");
        assert!(cnf.lines().any(|l| l == "plugin_load_add = metadata_lock_info"), "cut-over blockers are found by it");
        assert!(
            !cnf.lines().any(|l| l.starts_with("server_id") || l.starts_with("server-id")),
            "server_id is set at runtime"
        );
        assert!(!cnf.contains("# spec.config"), "no user section without user options");
    }

    #[test]
    fn my_cnf_for_mysql_loads_semi_sync() {
        let mut spec = default_spec();
        spec.image = "mysql:8.4".into();
        let cnf = my_cnf(&spec);
        assert!(cnf.lines().any(|l| l == "plugin_load_add = semisync_source.so"));
        assert!(cnf.lines().any(|l| l == "plugin_load_add = semisync_replica.so"));
        assert!(!cnf.contains("metadata_lock_info"), "MySQL has performance_schema.metadata_locks");
        assert!(
            cnf.lines().any(|l| l == "log_replica_updates = ON") && cnf.lines().any(|l| l == "skip_replica_start = ON")
        );
        assert!(!cnf.contains("slave"), "MySQL 8.4 deprecates the slave names");
    }

    #[test]
    fn my_cnf_ends_with_user_config() {
        let mut spec = default_spec();
        spec.config.insert("max_connections".into(), "200".into());
        spec.config.insert("innodb_buffer_pool_size".into(), "128M".into());
        spec.config.insert("skip-external-locking".into(), "".into());
        let cnf = my_cnf(&spec);
        let user = cnf.split("# spec.config\n").nth(1).unwrap();
        assert_eq!(user, "innodb_buffer_pool_size = 128M\nmax_connections = 200\nskip-external-locking\n");
        // Every line is a comment, a section, or an option.
        for line in cnf.lines() {
            assert!(line.starts_with('#') || line == "[mysqld]" || !line.trim().is_empty(), "{line:?}");
        }
        let o = objects(spec.clone());
        assert_eq!(o.config_map.data.as_ref().unwrap()["my.cnf"], cnf);
    }

    #[test]
    fn config_changes_roll_the_pods() {
        let hash = |spec: MySQLClusterSpec| {
            let o = objects(spec);
            let sts = o.statefulset.spec.unwrap();
            sts.template.metadata.unwrap().annotations.unwrap()[CONFIG_HASH_ANNOTATION].clone()
        };
        let base = hash(MySQLClusterSpec::default());
        assert_eq!(base, hash(MySQLClusterSpec::default()), "stable");
        let mut changed = MySQLClusterSpec::default();
        changed.config.insert("max_connections".into(), "500".into());
        assert_ne!(base, hash(changed));
        let mut scaled = default_spec();
        scaled.replicas = 5;
        assert_eq!(base, hash(scaled), "scaling changes no server option, so restarts nothing");
        assert_eq!(stable_hash(""), "cbf29ce484222325");
        assert_eq!(stable_hash("a"), "af63dc4c8601ec8c");
    }

    #[test]
    fn server_ids_table() {
        assert_eq!(server_id(0), 100);
        assert_eq!(server_id(8), 108);
        let o = objects(MySQLClusterSpec::default());
        let table = &o.config_map.data.as_ref().unwrap()["server-ids"];
        let rows: Vec<_> = table.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(rows, ["shop-db-0 = 100", "shop-db-1 = 101", "shop-db-2 = 102"]);
    }

    #[test]
    fn init_sql_text() {
        let sql = init_sql(&passwords(), ImageFlavor::MariaDb);
        let statements: Vec<_> = sql.lines().filter(|l| !l.starts_with("--")).collect();
        assert_eq!(
            statements,
            [
                "SET SESSION sql_log_bin=0;",
                "CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY 'r3pl';",
                "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'repl'@'%';",
                "CREATE USER IF NOT EXISTS 'switchyard'@'%' IDENTIFIED BY '0per';",
                "GRANT ALL PRIVILEGES ON *.* TO 'switchyard'@'%' WITH GRANT OPTION;",
                "CREATE USER IF NOT EXISTS 'switchyard_mover'@'%' IDENTIFIED BY 'm0ver';",
                "GRANT ALL PRIVILEGES ON *.* TO 'switchyard_mover'@'%' WITH GRANT OPTION;",
                "REVOKE READ_ONLY ADMIN ON *.* FROM 'switchyard_mover'@'%';",
                "CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY '4pp';",
                "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, \
                 LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER, \
                 REFERENCES ON *.* TO 'app'@'%';",
            ]
        );
        assert!(!sql.contains("r00t"), "the root password is the entrypoint's business");
        // Comments are `-- ` comments, valid in both servers' clients.
        assert!(sql.lines().filter(|l| l.starts_with("--")).all(|l| l.starts_with("-- ")));
        // MySQL has no READ_ONLY ADMIN: its super_read_only stops every account.
        let mysql = init_sql(&passwords(), ImageFlavor::MySql);
        assert!(!mysql.contains("READ_ONLY ADMIN") && mysql.contains("'switchyard_mover'@'%' WITH GRANT OPTION"));
    }

    #[test]
    fn init_sql_quotes_passwords() {
        assert_eq!(sql_string("plain"), "'plain'");
        assert_eq!(sql_string(r"it's"), "'it''s'");
        assert_eq!(sql_string(r"back\slash"), r"'back\\slash'");
        assert_eq!(sql_string("x\\';DROP USER root;--"), r"'x\\'';DROP USER root;--'");
        assert_eq!(sql_string("nul\0"), r"'nul\0'");
        let mut p = passwords();
        p.operator = r"a'b\c".into();
        let sql = init_sql(&p, ImageFlavor::MariaDb);
        assert!(sql.contains(r"CREATE USER IF NOT EXISTS 'switchyard'@'%' IDENTIFIED BY 'a''b\\c';"), "{sql}");
    }

    #[test]
    fn secret_holds_passwords_and_script() {
        let o = objects(MySQLClusterSpec::default());
        assert_eq!(o.secret.type_.as_deref(), Some("Opaque"));
        let data = o.secret.data.as_ref().unwrap();
        let keys: Vec<_> = data.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "app-password",
                "init.sql",
                "mover-password",
                "operator-password",
                "replication-password",
                "root-password"
            ]
        );
        assert_eq!(data["mover-password"].0, b"m0ver");
        assert_eq!(data["root-password"].0, b"r00t");
        assert_eq!(data["replication-password"].0, b"r3pl");
        assert_eq!(data["operator-password"].0, b"0per");
        assert_eq!(data["app-password"].0, b"4pp");
        assert_eq!(data["init.sql"].0, init_sql(&passwords(), ImageFlavor::MariaDb).into_bytes());
        assert!(o.secret.string_data.is_none());
    }

    #[test]
    fn passwords_are_not_printed() {
        let text = format!("{:?}", passwords());
        for secret in ["r00t", "r3pl", "0per", "4pp", "m0ver"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(passwords().entries().map(|(k, _)| k), PASSWORD_KEYS);
    }

    #[test]
    fn default_anti_affinity_prefers_distinct_nodes() {
        let o = objects(MySQLClusterSpec::default());
        let anti = pod_spec(&o).affinity.as_ref().unwrap().pod_anti_affinity.as_ref().unwrap();
        assert!(anti.required_during_scheduling_ignored_during_execution.is_none(), "preferred, never required");
        let terms = anti.preferred_during_scheduling_ignored_during_execution.as_ref().unwrap();
        assert_eq!(terms.len(), 1);
        assert_eq!(terms[0].pod_affinity_term.topology_key, "kubernetes.io/hostname");
        assert_eq!(
            terms[0].pod_affinity_term.label_selector.as_ref().unwrap().match_labels.as_ref(),
            Some(&selector_labels("shop-db"))
        );
    }

    #[test]
    fn pod_overrides() {
        let affinity = Affinity { node_affinity: Some(NodeAffinity::default()), ..Affinity::default() };
        let toleration =
            Toleration { key: Some("dedicated".into()), operator: Some("Exists".into()), ..Default::default() };
        let mut spec = default_spec();
        spec.pod_template = Some(PodOverrides {
            labels: BTreeMap::from([
                ("team".into(), "dba".into()),
                (ROLE_LABEL.into(), "primary".into()),
                (INSTANCE_LABEL.into(), "other".into()),
            ]),
            annotations: BTreeMap::from([("a.example/x".into(), "1".into())]),
            node_selector: BTreeMap::from([("disk".into(), "ssd".into())]),
            tolerations: vec![toleration.clone()],
            affinity: Some(affinity.clone()),
            priority_class_name: Some("db-critical".into()),
        });
        spec.resources = Some(Default::default());
        let o = objects(spec);
        let tpl = &o.statefulset.spec.as_ref().unwrap().template;
        let meta = tpl.metadata.as_ref().unwrap();
        let l = meta.labels.as_ref().unwrap();
        assert_eq!(l["team"], "dba");
        assert_eq!(l[INSTANCE_LABEL], "shop-db", "the selector labels win");
        assert!(!l.contains_key(ROLE_LABEL), "users cannot pin a role through the template");
        assert_eq!(meta.annotations.as_ref().unwrap()["a.example/x"], "1");
        let pod = pod_spec(&o);
        assert_eq!(pod.affinity.as_ref(), Some(&affinity), "an explicit affinity replaces the default");
        assert_eq!(pod.node_selector.as_ref().unwrap()["disk"], "ssd");
        assert_eq!(pod.tolerations.as_deref(), Some(&[toleration][..]));
        assert_eq!(pod.priority_class_name.as_deref(), Some("db-critical"));
        assert!(container(&o).resources.is_some());

        let plain = objects(MySQLClusterSpec::default());
        let pod = pod_spec(&plain);
        assert!(pod.node_selector.is_none() && pod.tolerations.is_none() && pod.priority_class_name.is_none());
    }

    #[test]
    fn deletion_policy_maps_to_claim_retention() {
        let policy = |p: DeletionPolicy| {
            let mut spec = default_spec();
            spec.deletion_policy = p;
            let o = objects(spec);
            let r = o.statefulset.spec.unwrap().persistent_volume_claim_retention_policy.unwrap();
            (r.when_deleted.unwrap(), r.when_scaled.unwrap())
        };
        assert_eq!(policy(DeletionPolicy::Retain), ("Retain".to_string(), "Retain".to_string()));
        assert_eq!(policy(DeletionPolicy::Delete), ("Delete".to_string(), "Delete".to_string()));
    }

    #[test]
    fn pdb_allows_one_disruption() {
        let o = objects(MySQLClusterSpec::default());
        let spec = o.pdb.spec.as_ref().unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert!(spec.min_available.is_none());
        let v = serde_json::to_value(&o.pdb).unwrap();
        assert_eq!(v["apiVersion"], "policy/v1");
        assert_eq!(v["kind"], "PodDisruptionBudget");
    }

    #[test]
    fn objects_serialize_for_apply() {
        let o = objects(MySQLClusterSpec::default());
        let v = serde_json::to_value(&o.statefulset).unwrap();
        assert_eq!(v["apiVersion"], "apps/v1");
        assert_eq!(v["kind"], "StatefulSet");
        assert_eq!(v["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert!(v["status"].is_null(), "no status in an apply body");
        assert_eq!(serde_json::to_value(&o.secret).unwrap()["data"]["root-password"], "cjAwdA==");
    }
}
