//! Writes a MySQLCluster's objects: the credentials Secret's passwords (read
//! first, generated only where missing, never changed) and everything
//! [`super::objects::build`] renders, by server-side apply.
//!
//! Permissions (the chart's ClusterRole): Secrets get/create/patch;
//! ConfigMaps, Services, StatefulSets and PodDisruptionBudgets create/patch
//! (an apply that creates an object needs `create` as well as `patch`).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::{Resource, ResourceExt};
use rand::RngExt;
use rand::distr::Alphanumeric;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};

use super::api::MySQLCluster;
use super::objects::{self, Objects, PASSWORD_KEYS, Passwords};
use crate::error::{Error, Result};
use crate::k8s::FIELD_MANAGER;
use crate::operator::outcome::namespace;

/// Length of a generated password: 32 alphanumeric characters (~190 bits).
pub const PASSWORD_LEN: usize = 32;

/// A fresh random password from the thread's CSPRNG (ChaCha, seeded by the OS).
pub fn generate_password() -> String {
    rand::rng().sample_iter(Alphanumeric).take(PASSWORD_LEN).map(char::from).collect()
}

/// The passwords of `cluster`, persisted in its credentials Secret before they
/// are returned. Passwords are never in the spec: the Secret is the only
/// record, so a key that exists is never rewritten (a user may also
/// pre-create the Secret with passwords of their choice); missing keys are
/// generated and added, and a missing Secret is created.
///
/// Concurrent writers are detected, not overwritten: creation fails if the
/// Secret appeared meanwhile, and adding keys is a patch conditioned on the
/// resourceVersion that was read. Either way the Secret is read again.
pub async fn ensure_passwords(client: &kube::Client, cluster: &MySQLCluster) -> Result<Passwords> {
    let name = objects::secret_name(&cluster.name_any());
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace(cluster)?);
    const ATTEMPTS: usize = 3;
    for _ in 0..ATTEMPTS {
        match api.get_opt(&name).await? {
            None => {
                let passwords = Passwords {
                    root: generate_password(),
                    replication: generate_password(),
                    operator: generate_password(),
                    app: generate_password(),
                    mover: generate_password(),
                };
                let secret = secret_for_create(&objects::secret(cluster, &passwords)?);
                let pp = PostParams { field_manager: Some(FIELD_MANAGER.to_string()), ..PostParams::default() };
                match api.create(&pp, &secret).await {
                    Ok(_) => {
                        tracing::info!(secret = %name, "created the credentials Secret");
                        return Ok(passwords);
                    }
                    Err(kube::Error::Api(s)) if s.is_already_exists() => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Some(existing) => {
                let (passwords, added) = complete_passwords(&name, existing.data.as_ref(), generate_password)?;
                if added.is_empty() {
                    return Ok(passwords);
                }
                let patch = add_keys_patch(existing.resource_version(), &passwords, &added);
                let pp = PatchParams { field_manager: Some(FIELD_MANAGER.to_string()), ..PatchParams::default() };
                match api.patch(&name, &pp, &Patch::Merge(&patch)).await {
                    Ok(_) => {
                        tracing::info!(secret = %name, keys = ?added, "added missing passwords to the credentials Secret");
                        return Ok(passwords);
                    }
                    // The Secret changed since it was read: read it again.
                    Err(kube::Error::Api(s)) if s.is_conflict() => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Err(Error::Credentials { secret: name, reason: format!("changed concurrently {ATTEMPTS} times in a row") })
}

/// The passwords in `data`, with the missing ones generated; also returns
/// which keys were generated. A present key is taken as it is; one that is
/// empty or not UTF-8 is an error, never replaced (the servers may have been
/// initialized with it).
pub fn complete_passwords(
    secret: &str,
    data: Option<&BTreeMap<String, ByteString>>,
    mut generate: impl FnMut() -> String,
) -> Result<(Passwords, Vec<&'static str>)> {
    let mut added = Vec::new();
    let mut values = Vec::with_capacity(PASSWORD_KEYS.len());
    for key in PASSWORD_KEYS {
        match data.and_then(|d| d.get(key)) {
            None => {
                added.push(key);
                values.push(generate());
            }
            Some(ByteString(bytes)) => {
                let bad = |why: &str| Error::Credentials {
                    secret: secret.to_string(),
                    reason: format!("key {key} {why}; fix or remove it (a removed key gets a new password)"),
                };
                let value = String::from_utf8(bytes.clone()).map_err(|_| bad("is not UTF-8 text"))?;
                if value.is_empty() {
                    return Err(bad("is empty"));
                }
                values.push(value);
            }
        }
    }
    let [root, replication, operator, app, mover]: [String; 5] = values.try_into().expect("one value per key");
    Ok((Passwords { root, replication, operator, app, mover }, added))
}

/// A merge patch adding `keys` to the Secret, valid only against
/// `resource_version` (the API server answers 409 Conflict otherwise).
fn add_keys_patch(resource_version: Option<String>, passwords: &Passwords, keys: &[&str]) -> serde_json::Value {
    let data: BTreeMap<&str, ByteString> = passwords
        .entries()
        .into_iter()
        .filter(|(k, _)| keys.contains(k))
        .map(|(k, v)| (k, ByteString(v.as_bytes().to_vec())))
        .collect();
    serde_json::json!({ "metadata": { "resourceVersion": resource_version }, "data": data })
}

/// The Secret as applied: without the password keys. Those are written only
/// by [`ensure_passwords`] (create, or add-if-missing), so the apply never
/// owns them and a forced apply can never change one.
pub fn secret_for_apply(secret: &Secret) -> Secret {
    let mut s = secret.clone();
    if let Some(data) = s.data.as_mut() {
        data.retain(|k, _| !PASSWORD_KEYS.contains(&k.as_str()));
    }
    s
}

/// The Secret as first created: the passwords and labels only. The owner
/// reference and `init.sql` come with the apply, so that the apply alone owns
/// them and can also take them away (a cluster switched to deletionPolicy
/// Retain keeps its Secret, unowned).
pub fn secret_for_create(secret: &Secret) -> Secret {
    let mut s = secret.clone();
    s.metadata.owner_references = None;
    if let Some(data) = s.data.as_mut() {
        data.retain(|k, _| PASSWORD_KEYS.contains(&k.as_str()));
    }
    s
}

/// Server-side applies every object, in dependency order: the Secret and
/// ConfigMap the pods mount, the Services, the StatefulSet, the PDB.
pub async fn apply_all(client: &kube::Client, objects: &Objects) -> Result<()> {
    apply(client, &secret_for_apply(&objects.secret)).await?;
    apply(client, &objects.config_map).await?;
    apply(client, &objects.headless).await?;
    apply(client, &objects.primary).await?;
    apply(client, &objects.replicas).await?;
    apply_statefulset(client, &objects.statefulset).await?;
    apply_pdb(client, &objects.pdb).await?;
    Ok(())
}

fn params() -> PatchParams {
    // force: the operator is the only intended writer of these fields; a
    // conflicting manager (a stray `kubectl edit`) must not wedge it.
    PatchParams::apply(FIELD_MANAGER).force()
}

fn location<K: Resource<DynamicType = ()>>(obj: &K) -> Result<(String, String)> {
    let name = obj.meta().name.clone().unwrap_or_default();
    let ns = obj
        .meta()
        .namespace
        .clone()
        .ok_or_else(|| Error::NotNamespaced { kind: K::kind(&()).into(), name: name.clone() })?;
    Ok((ns, name))
}

async fn apply<K>(client: &kube::Client, obj: &K) -> Result<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Serialize + Debug,
{
    let (ns, name) = location(obj)?;
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    Ok(api.patch(&name, &params(), &Patch::Apply(obj)).await?)
}

/// Whether the API server refused an apply because its schema lacks `field`
/// (servers older than the field answer 500 "field not declared in schema").
pub fn is_undeclared_field(err: &kube::Error, field: &str) -> bool {
    matches!(err, kube::Error::Api(s) if s.message.contains("field not declared in schema") && s.message.contains(field))
}

/// Kubernetes < 1.23 has no `persistentVolumeClaimRetentionPolicy` and
/// refuses an apply that sets it; there the StatefulSet is applied without it
/// (claims are then always kept).
async fn apply_statefulset(client: &kube::Client, sts: &StatefulSet) -> Result<()> {
    let without = || {
        let mut without = sts.clone();
        if let Some(spec) = without.spec.as_mut() {
            spec.persistent_volume_claim_retention_policy = None;
        }
        without
    };
    if OLD_STATEFULSET_SCHEMA.load(Ordering::Relaxed) {
        return apply(client, &without()).await.map(drop);
    }
    match apply(client, sts).await {
        Err(Error::Kube(e)) if is_undeclared_field(&e, "persistentVolumeClaimRetentionPolicy") => {
            tracing::info!(
                "API server predates persistentVolumeClaimRetentionPolicy: applying StatefulSets without it"
            );
            OLD_STATEFULSET_SCHEMA.store(true, Ordering::Relaxed);
            apply(client, &without()).await.map(drop)
        }
        other => other.map(drop),
    }
}

// What the API server turned out not to serve, so each pass does not ask it
// again (and log its refusal) — a cache of discovery, not of any work's state.
static OLD_STATEFULSET_SCHEMA: AtomicBool = AtomicBool::new(false);
static NO_POLICY_V1: AtomicBool = AtomicBool::new(false);

/// policy/v1 PodDisruptionBudgets exist from Kubernetes 1.21; 1.20 (the local
/// test environment) serves only policy/v1beta1 and answers 404 for v1. There
/// the same object is applied as v1beta1, which has the same fields for what
/// is set here (selector, maxUnavailable).
async fn apply_pdb(client: &kube::Client, pdb: &PodDisruptionBudget) -> Result<()> {
    let as_v1beta1 = || async {
        let (ns, name) = location(pdb)?;
        let resource = pdb_v1beta1_resource();
        let obj = pdb_as_v1beta1(pdb)?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
        api.patch(&name, &params(), &Patch::Apply(&obj)).await?;
        Ok(())
    };
    if NO_POLICY_V1.load(Ordering::Relaxed) {
        return as_v1beta1().await;
    }
    match apply(client, pdb).await {
        Err(Error::Kube(kube::Error::Api(s))) if s.code == 404 => {
            tracing::info!("policy/v1 not served: applying PodDisruptionBudgets as policy/v1beta1");
            NO_POLICY_V1.store(true, Ordering::Relaxed);
            as_v1beta1().await
        }
        other => other.map(drop),
    }
}

fn pdb_v1beta1_resource() -> ApiResource {
    ApiResource {
        group: "policy".into(),
        version: "v1beta1".into(),
        api_version: "policy/v1beta1".into(),
        kind: "PodDisruptionBudget".into(),
        plural: "poddisruptionbudgets".into(),
    }
}

/// The same PodDisruptionBudget, as policy/v1beta1.
fn pdb_as_v1beta1(pdb: &PodDisruptionBudget) -> Result<DynamicObject> {
    let mut value = serde_json::to_value(pdb)?;
    value["apiVersion"] = "policy/v1beta1".into();
    Ok(serde_json::from_value(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_spec() -> MySQLClusterSpec {
        MySQLClusterSpec::default()
    }
    use crate::cluster::api::{MySQLClusterSpec, PodOverrides};
    use kube::core::Status;

    fn data(pairs: &[(&str, &[u8])]) -> BTreeMap<String, ByteString> {
        pairs.iter().map(|(k, v)| (k.to_string(), ByteString(v.to_vec()))).collect()
    }

    fn counter() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("gen{n}")
        }
    }

    #[test]
    fn generated_passwords() {
        let a = generate_password();
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.len() >= 24);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, generate_password());
    }

    #[test]
    fn no_secret_generates_everything() {
        let (p, added) = complete_passwords("s", None, counter()).unwrap();
        assert_eq!(added, PASSWORD_KEYS);
        assert_eq!((p.root.as_str(), p.replication.as_str()), ("gen1", "gen2"));
        assert_eq!((p.operator.as_str(), p.app.as_str()), ("gen3", "gen4"));
    }

    #[test]
    fn existing_keys_are_kept_and_missing_ones_added() {
        let d = data(&[("root-password", b"mine"), ("app-password", b"app's"), ("init.sql", b"old")]);
        let (p, added) = complete_passwords("s", Some(&d), counter()).unwrap();
        assert_eq!(p.root, "mine");
        assert_eq!(p.app, "app's");
        assert_eq!(p.replication, "gen1");
        assert_eq!(p.operator, "gen2");
        assert_eq!(added, ["replication-password", "operator-password", "mover-password"]);

        let full = data(&[
            ("root-password", b"a"),
            ("replication-password", b"b"),
            ("operator-password", b"c"),
            ("app-password", b"d"),
            ("mover-password", b"e"),
        ]);
        let (p, added) = complete_passwords("s", Some(&full), || panic!("nothing to generate")).unwrap();
        assert!(added.is_empty());
        assert_eq!(p.entries().map(|(_, v)| v.to_string()), ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn unusable_keys_are_errors_not_replaced() {
        let empty = data(&[("operator-password", b"")]);
        let err = complete_passwords("db-credentials", Some(&empty), counter()).unwrap_err();
        assert_eq!(err.metric_label(), "credentials");
        assert!(err.to_string().contains("db-credentials: key operator-password is empty"), "{err}");
        let binary = data(&[("root-password", &[0xff, 0xfe])]);
        let err = complete_passwords("s", Some(&binary), counter()).unwrap_err();
        assert!(err.to_string().contains("root-password is not UTF-8"), "{err}");
    }

    #[test]
    fn add_keys_patch_is_conditional_and_only_adds() {
        let p = passwords();
        let patch = add_keys_patch(Some("42".into()), &p, &["replication-password"]);
        assert_eq!(
            patch,
            serde_json::json!({"metadata": {"resourceVersion": "42"}, "data": {"replication-password": "eA=="}})
        );
    }

    fn passwords() -> Passwords {
        Passwords {
            root: "r".into(),
            replication: "x".into(),
            operator: "o".into(),
            app: "a".into(),
            mover: "m".into(),
        }
    }

    fn cluster() -> MySQLCluster {
        let mut spec = default_spec();
        spec.pod_template = Some(PodOverrides::default());
        let mut c = MySQLCluster::new("db", spec);
        c.metadata.namespace = Some("ns".into());
        c.metadata.uid = Some("u".into());
        c
    }

    #[test]
    fn applied_secret_carries_no_password() {
        let p = passwords();
        let o = objects::build(&cluster(), &p).unwrap();
        let applied = secret_for_apply(&o.secret);
        let keys: Vec<_> = applied.data.as_ref().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["init.sql"]);
        assert_eq!(applied.metadata, o.secret.metadata);
        assert_eq!(o.secret.data.as_ref().unwrap().len(), 6, "the rendered Secret is left whole");
    }

    #[test]
    fn created_secret_carries_only_passwords() {
        let p = passwords();
        let mut c = cluster();
        c.spec.deletion_policy = crate::cluster::api::DeletionPolicy::Delete;
        let o = objects::build(&c, &p).unwrap();
        assert!(o.secret.metadata.owner_references.is_some());
        let created = secret_for_create(&o.secret);
        let keys: Vec<_> = created.data.as_ref().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            ["app-password", "mover-password", "operator-password", "replication-password", "root-password"]
        );
        assert!(created.metadata.owner_references.is_none(), "owned by the apply only");
        assert_eq!(created.metadata.labels, o.secret.metadata.labels);
        assert_eq!(created.metadata.name.as_deref(), Some("db-credentials"));
        assert_eq!(created.type_.as_deref(), Some("Opaque"));
    }

    #[test]
    fn pdb_fallback_object() {
        let p = passwords();
        let o = objects::build(&cluster(), &p).unwrap();
        let obj = pdb_as_v1beta1(&o.pdb).unwrap();
        let v = serde_json::to_value(&obj).unwrap();
        assert_eq!(v["apiVersion"], "policy/v1beta1");
        assert_eq!(v["kind"], "PodDisruptionBudget");
        assert_eq!(v["metadata"]["name"], "db");
        assert_eq!(v["metadata"]["namespace"], "ns");
        assert_eq!(v["spec"]["maxUnavailable"], 1);
        assert_eq!(v["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"], "db");
        let r = pdb_v1beta1_resource();
        assert_eq!((r.api_version.as_str(), r.plural.as_str()), ("policy/v1beta1", "poddisruptionbudgets"));
    }

    #[test]
    fn undeclared_field_errors() {
        let old = kube::Error::Api(
            Status::failure(
                "failed to create typed patch object: .spec.persistentVolumeClaimRetentionPolicy: field not declared in schema",
                "",
            )
            .with_code(500)
            .boxed(),
        );
        assert!(is_undeclared_field(&old, "persistentVolumeClaimRetentionPolicy"));
        assert!(!is_undeclared_field(&old, "minReadySeconds"));
        let other = kube::Error::Api(Status::failure("forbidden", "Forbidden").with_code(403).boxed());
        assert!(!is_undeclared_field(&other, "persistentVolumeClaimRetentionPolicy"));
    }
}
