//! The MySQLCluster controller: read → validate → build (pure) → apply →
//! observe and perform one clustering operation → status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::api::{Endpoints, InstanceStatus, MySQLCluster, MySQLClusterStatus};
use super::clustering::plan::{self, ClusterView, InstanceView, Operation, State};
use super::clustering::{self, Accounts, Durability, Outcome, PodInfo};
use super::validate::validate;
use super::{apply, objects};
use crate::error::Result;
use crate::k8s::FIELD_MANAGER;
use crate::k8s::conditions::{Desired, FALSE, TRUE};
use crate::operator::context::Context;
use crate::operator::outcome::{namespace, record};
use crate::operator::spec_check::{self, Transition};

pub const READY: &str = "Ready";
pub const AVAILABLE: &str = "Available";
pub const HEALTHY: &str = "Healthy";
pub const PROGRESSING: &str = "Progressing";

/// How often a settled cluster is re-observed: failover detection depends on it.
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Unchanged Kubernetes objects are re-applied this often, to repair drift.
const OBJECTS_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// Next pass after an operation or while unsettled.
const BUSY_INTERVAL: Duration = Duration::from_millis(500);

pub async fn reconcile(obj: Arc<MySQLCluster>, ctx: Arc<Context>) -> Result<Action> {
    let name = obj.name_any();
    let status = obj.status.clone().unwrap_or_default();
    if let Err(errors) = validate(&name, &obj.spec) {
        let (desired, event) = spec_check::invalid(READY, &errors, &status.conditions);
        record(&ctx, &*obj, status, &[desired], event).await?;
        return Ok(Action::await_change());
    }
    let ns = namespace(&*obj)?;

    // Kubernetes objects. The StatefulSet never shrinks below the primary:
    // scale-in waits for the switchover away from it.
    let passwords = apply::ensure_passwords(&ctx.client, &obj).await?;
    let mut objs = objects::build(&obj, &passwords)?;
    let current_primary = status.primary.as_deref().and_then(|p| objects::pod_ordinal(&name, p));
    let instances = obj.spec.replicas.max(current_primary.map_or(0, |p| p + 1));
    if let Some(spec) = objs.statefulset.spec.as_mut() {
        spec.replicas = Some(instances);
    }
    let fingerprint = objects::fingerprint(&objs);
    let now = jiff::Timestamp::now();
    let refresh_due = status
        .objects_applied_at
        .as_ref()
        .is_none_or(|t| now.duration_since(t.0).unsigned_abs() > OBJECTS_REFRESH_INTERVAL);
    // A change the API server refuses for good (the volume claim templates of
    // a StatefulSet are immutable; clusters without CEL rules let the spec
    // change through) is bad input: reported, and the cluster keeps running
    // on the objects it has.
    let mut refused: Option<String> = None;
    let (objects_fingerprint, objects_applied_at) = if status.objects_fingerprint.as_deref()
        != Some(fingerprint.as_str())
        || refresh_due
    {
        match apply::apply_all(&ctx.client, &objs).await {
            Ok(()) => (Some(fingerprint), Some(Time(now))),
            Err(crate::error::Error::Kube(kube::Error::Api(e))) if is_immutable_storage_change(&e) => {
                refused = Some(format!(
                    "invalid spec: spec.storage cannot change after creation (a StatefulSet's volume claims are immutable); restore it: {}",
                    e.message
                ));
                (status.objects_fingerprint.clone(), status.objects_applied_at.clone())
            }
            Err(e) => return Err(e),
        }
    } else {
        (status.objects_fingerprint.clone(), status.objects_applied_at.clone())
    };

    // Clustering: observe, classify, one operation.
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let listed = pods.list(&ListParams::default().labels(&objects::selector_string(&name))).await?;
    let pod_infos: Vec<PodInfo> = (0..instances).map(|ordinal| pod_info(&name, ordinal, &listed.items)).collect();
    let accounts = Accounts {
        operator_user: objects::OPERATOR_USER,
        operator_password: &passwords.operator,
        replication_user: objects::REPLICATION_USER,
        replication_password: &passwords.replication,
    };
    let (views, mut conns) = clustering::observe(&pod_infos, &accounts).await;
    let requested_primary = status.requested_primary.or(current_primary.map(|_| obj.spec.primary));
    let view = ClusterView {
        replicas: obj.spec.replicas,
        spec_primary: obj.spec.primary,
        instances: views,
        primary: current_primary,
        requested_primary,
        primary_unreachable_since: status.primary_unreachable_since.as_ref().map(|t| t.0),
        failover_enabled: obj.spec.failover.enabled,
        failover_delay: Duration::from_secs(obj.spec.failover.delay_seconds.max(0) as u64),
        semi_sync: obj.spec.replication.semi_sync,
        now: jiff::Timestamp::now(),
    };
    let plan = plan::plan(&view);
    let durability = Durability {
        timeout: Duration::from_millis(obj.spec.replication.semi_sync_timeout_millis.max(100) as u64),
        wait_for_replicas: obj.spec.replication.wait_for_replica_count.max(1) as u32,
    };

    let mut primary = current_primary;
    let mut requested = requested_primary;
    let mut last_operation = status.last_operation.clone();
    let mut events: Vec<Transition> = Vec::new();
    let mut operated = false;
    if let Some(op) = &plan.operation {
        operated = true;
        match clustering::perform(op, &view, &mut conns, &accounts, &durability).await {
            Ok(Outcome::NewPrimary { ordinal, note }) => {
                primary = Some(ordinal);
                // A failover is not a request: spec.primary keeps its meaning
                // of "switch over when this changes".
                if !matches!(op, Operation::Failover { .. }) || requested.is_none() {
                    requested = Some(obj.spec.primary);
                }
                events.push(normal(operation_reason(op), &note));
                last_operation = Some(note);
            }
            Ok(Outcome::Done(note)) => last_operation = Some(note),
            Err(e) => {
                let note = format!("{} failed: {e}", operation_reason(op));
                events.push(Transition {
                    type_: kube::runtime::events::EventType::Warning,
                    reason: format!("{}Failed", operation_reason(op)),
                    message: note.clone(),
                });
                last_operation = Some(note);
            }
        }
    }

    // A primary promoted this pass still has replicas to repoint.
    let state = if primary != current_primary { State::Degraded } else { plan.state };
    let pass = Pass { state, primary, requested, last_operation };
    let mut new_status = status_of(&obj, &view, &plan, &pass, &status);
    let available = new_status.instances.iter().any(|i| i.role == "primary" && i.healthy);
    let all_ready = new_status.ready_replicas == obj.spec.replicas;
    let conditions = [
        Desired::new(
            AVAILABLE,
            if available { TRUE } else { FALSE },
            if available { "PrimaryWritable" } else { "NoWritablePrimary" },
            match &new_status.primary {
                Some(p) if available => format!("{p} accepts writes"),
                _ => plan.reason.clone(),
            },
        ),
        match &refused {
            Some(message) => Desired::new(READY, FALSE, crate::k8s::conditions::REASON_INVALID_SPEC, message.clone()),
            None => Desired::new(
                READY,
                if available && all_ready { TRUE } else { FALSE },
                if available && all_ready { "AllInstancesReady" } else { "InstancesNotReady" },
                format!("{}/{} instances ready", new_status.ready_replicas, obj.spec.replicas),
            ),
        },
        Desired::new(
            HEALTHY,
            if state == State::Healthy { TRUE } else { FALSE },
            if !plan.errant.is_empty() {
                "ErrantReplica"
            } else if !plan.unseedable.is_empty() {
                "ReplicaCannotBeSeeded"
            } else {
                state.as_str()
            },
            if plan.reason.is_empty() {
                "every instance replicates from the primary".to_string()
            } else {
                plan.reason.clone()
            },
        ),
        Desired::new(
            PROGRESSING,
            if operated { TRUE } else { FALSE },
            if operated { "Operating" } else { "Settled" },
            new_status.last_operation.clone().unwrap_or_default(),
        ),
    ];
    if status.state.as_deref() != Some(state.as_str()) {
        let warn = matches!(state, State::Failed | State::Lost | State::Errant);
        let message = format!("{} → {}: {}", status.state.as_deref().unwrap_or("New"), state.as_str(), plan.reason);
        events.push(Transition {
            type_: if warn {
                kube::runtime::events::EventType::Warning
            } else {
                kube::runtime::events::EventType::Normal
            },
            reason: if state == State::Errant { "ErrantReplica".into() } else { state.as_str().into() },
            message,
        });
    }
    if let Some(message) = &refused
        && spec_check::is_news(
            &status.conditions,
            &Desired::new(READY, FALSE, crate::k8s::conditions::REASON_INVALID_SPEC, message.clone()),
        )
    {
        events.push(Transition {
            type_: kube::runtime::events::EventType::Warning,
            reason: crate::k8s::conditions::REASON_INVALID_SPEC.into(),
            message: message.clone(),
        });
    }
    let previous_instances = status.instances.len() as i32;
    if previous_instances > 0 && previous_instances != instances {
        events.push(normal("Scaling", &format!("instances {previous_instances} → {instances}")));
    }
    new_status.objects_fingerprint = objects_fingerprint;
    new_status.objects_applied_at = objects_applied_at;
    record(&ctx, &*obj, new_status.clone(), &conditions, None).await?;
    let regarding = obj.object_ref(&());
    for ev in events {
        ctx.events.publish(&regarding, ev.type_, &ev.reason, "Clustering", ev.message).await;
    }
    label_roles(&pods, &listed.items, &name, &new_status).await?;

    Ok(Action::requeue(if operated || state != State::Healthy { BUSY_INTERVAL } else { HEALTH_CHECK_INTERVAL }))
}

/// The API server's answer to a change of a StatefulSet's immutable fields.
fn is_immutable_storage_change(e: &kube::core::Status) -> bool {
    e.code == 422 && e.message.contains("updates to statefulset spec for fields other than")
}

fn normal(reason: &str, message: &str) -> Transition {
    Transition { type_: kube::runtime::events::EventType::Normal, reason: reason.into(), message: message.into() }
}

fn operation_reason(op: &Operation) -> &'static str {
    match op {
        Operation::AssignServerId { .. } => "AssignServerId",
        Operation::Bootstrap { .. } => "PrimaryElected",
        Operation::MakeWritable { .. } => "MakeWritable",
        Operation::MakeReadOnly { .. } => "MakeReadOnly",
        Operation::Replicate { .. } => "Replicate",
        Operation::SemiSync { .. } => "SemiSync",
        Operation::Switchover { .. } => "Switchover",
        Operation::Failover { .. } => "Failover",
    }
}

fn pod_info(cluster: &str, ordinal: i32, pods: &[Pod]) -> PodInfo {
    let name = objects::pod_name(cluster, ordinal);
    let pod = pods.iter().find(|p| p.metadata.name.as_deref() == Some(name.as_str()));
    let running = |p: &&Pod| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    PodInfo {
        ordinal,
        address: pod.filter(running).and_then(|p| p.status.as_ref()?.pod_ip.clone()),
        deleting: pod.is_some_and(|p| p.metadata.deletion_timestamp.is_some()),
    }
}

/// What this pass decided, beyond the plan.
struct Pass {
    state: State,
    primary: Option<i32>,
    requested: Option<i32>,
    last_operation: Option<String>,
}

/// The status this pass observed. Pure.
fn status_of(
    obj: &MySQLCluster,
    view: &ClusterView,
    plan: &plan::Plan,
    pass: &Pass,
    previous: &MySQLClusterStatus,
) -> MySQLClusterStatus {
    let Pass { state, primary, requested, ref last_operation } = *pass;
    let name = obj.name_any();
    let primary_ip =
        primary.and_then(|p| view.instances.iter().find(|i| i.ordinal == p)).and_then(|i| i.address.clone());
    let promoted_now = primary != view.primary;
    let instances: Vec<InstanceStatus> = view
        .instances
        .iter()
        .map(|i: &InstanceView| {
            let is_primary = Some(i.ordinal) == primary;
            let errant = plan.errant.contains(&i.ordinal);
            let o = i.mysql.as_ref().filter(|_| !i.deleting);
            let replicating = o
                .and_then(|o| o.replica.as_ref())
                .is_some_and(|r| r.io_running && r.sql_running && Some(&r.source_host) == primary_ip.as_ref());
            let healthy = !errant
                && match o {
                    Some(o) if is_primary => !o.read_only || promoted_now,
                    Some(o) => o.all_writes_refused && replicating,
                    None => false,
                };
            InstanceStatus {
                name: objects::pod_name(&name, i.ordinal),
                address: i.address.clone(),
                role: if is_primary {
                    "primary".into()
                } else if o.is_some() {
                    "replica".into()
                } else {
                    "unknown".into()
                },
                gtid: o.map(|o| o.gtids.clone()),
                lag_seconds: o.and_then(|o| o.replica.as_ref()).and_then(|r| r.lag_seconds),
                read_only: o.is_some_and(|o| o.read_only) && !(is_primary && promoted_now),
                healthy,
                errant_gtid: if errant { o.map(|o| o.gtids.clone()) } else { None },
            }
        })
        .collect();
    MySQLClusterStatus {
        observed_generation: obj.meta().generation,
        state: Some(state.as_str().into()),
        primary: primary.map(|p| objects::pod_name(&name, p)),
        requested_primary: requested,
        primary_unreachable_since: if promoted_now { None } else { plan.primary_unreachable_since.map(Time) },
        last_operation: last_operation.clone(),
        ready_replicas: instances.iter().filter(|i| i.healthy).count() as i32,
        instances,
        endpoints: Some(Endpoints {
            primary: objects::primary_service_name(&name),
            replicas: objects::replicas_service_name(&name),
        }),
        objects_fingerprint: previous.objects_fingerprint.clone(),
        objects_applied_at: previous.objects_applied_at.clone(),
        conditions: previous.conditions.clone(),
    }
}

/// The role label the primary and replicas Services select on: the primary,
/// and replicas that replicate correctly. Others carry none, so no Service
/// sends traffic to them.
async fn label_roles(pods: &Api<Pod>, listed: &[Pod], cluster: &str, status: &MySQLClusterStatus) -> Result<()> {
    for pod in listed {
        let pod_name = pod.name_any();
        let Some(ordinal) = objects::pod_ordinal(cluster, &pod_name) else { continue };
        let instance = status.instances.iter().find(|i| i.name == pod_name);
        let want = match instance {
            Some(i) if i.role == "primary" && i.healthy => Some(objects::ROLE_PRIMARY),
            Some(i) if i.role == "replica" && i.healthy => Some(objects::ROLE_REPLICA),
            _ => None,
        };
        let have = pod.labels().get(objects::ROLE_LABEL).map(String::as_str);
        if have == want {
            continue;
        }
        let labels = match want {
            Some(role) => serde_json::json!({ objects::ROLE_LABEL: role }),
            None => serde_json::json!({}),
        };
        let patch = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": pod_name, "labels": labels },
        });
        tracing::debug!(pod = %pod_name, ordinal, role = ?want, "labelling");
        pods.patch(&pod_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::api::MySQLClusterSpec;
    use crate::cluster::clustering::fixtures::{inst, obs, replicating, view};
    use crate::mysql::Observed;

    /// The primary: writable, semi-sync source on.
    fn primary(ordinal: i32, gtids: &str) -> Observed {
        let mut o = obs(ordinal, false, gtids);
        o.semi_sync_source = true;
        o
    }

    fn pass(p: &plan::Plan, primary: Option<i32>, last_operation: Option<String>) -> Pass {
        Pass { state: p.state, primary, requested: Some(0), last_operation }
    }

    fn cluster() -> MySQLCluster {
        let mut c = MySQLCluster::new("db", MySQLClusterSpec::default());
        c.metadata.generation = Some(4);
        c
    }

    #[test]
    fn status_reports_roles_health_and_errant_instances() {
        let v = view(vec![
            inst(0, Some(primary(0, "0-100-9"))),
            inst(1, Some(replicating(obs(1, true, "0-100-9"), "127.0.0.10"))),
            inst(2, Some(replicating(obs(2, true, "0-100-9,0-102-1"), "127.0.0.10"))),
        ]);
        let p = plan::plan(&v);
        let s = status_of(&cluster(), &v, &p, &pass(&p, Some(0), None), &MySQLClusterStatus::default());
        assert_eq!(s.primary.as_deref(), Some("db-0"));
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!(s.ready_replicas, 2);
        assert!(s.instances[0].healthy && s.instances[0].role == "primary");
        assert!(s.instances[1].healthy && s.instances[1].read_only);
        assert!(!s.instances[2].healthy, "errant is not healthy");
        assert_eq!(s.instances[2].errant_gtid.as_deref(), Some("0-100-9,0-102-1"));
        assert_eq!(s.endpoints.unwrap().primary, "db-primary");
    }

    #[test]
    fn a_replica_of_the_wrong_source_or_unreachable_is_not_healthy() {
        let v = view(vec![
            inst(0, Some(primary(0, "0-100-9"))),
            inst(1, Some(replicating(obs(1, true, "0-100-9"), "127.0.0.99"))),
            inst(2, None),
        ]);
        let p = plan::plan(&v);
        let s = status_of(&cluster(), &v, &p, &pass(&p, Some(0), None), &MySQLClusterStatus::default());
        assert_eq!(s.ready_replicas, 1);
        assert_eq!(s.instances[2].role, "unknown");
    }

    #[test]
    fn a_primary_promoted_this_pass_counts_as_writable() {
        let v = view(vec![
            inst(0, None),
            inst(1, Some(replicating(obs(1, true, "0-100-9"), "127.0.0.10"))),
            inst(2, Some(replicating(obs(2, true, "0-100-9"), "127.0.0.10"))),
        ]);
        let p = plan::plan(&v);
        let s = status_of(
            &cluster(),
            &v,
            &p,
            &pass(&p, Some(1), Some("failed over".into())),
            &MySQLClusterStatus::default(),
        );
        assert_eq!(s.primary.as_deref(), Some("db-1"));
        assert!(s.instances[1].healthy && !s.instances[1].read_only);
        assert_eq!(s.primary_unreachable_since, None, "the clock stops with the new primary");
        assert_eq!(s.requested_primary, Some(0), "a failover is not a request");
    }
}
