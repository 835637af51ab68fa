//! The Node object and its heartbeat. The node lifecycle controller marks a
//! node NotReady (and then taints it and evicts its pods) when neither its
//! Lease nor its Ready condition is renewed within the grace period (40s by
//! default), so both are renewed well within it.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

use super::error::Result;

const LEASE_NAMESPACE: &str = "kube-node-lease";
const LEASE_SECONDS: i32 = 40;
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Facts about this machine that go into the Node.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub name: String,
    pub cpus: usize,
    pub memory_kib: u64,
    pub max_pods: u32,
    pub server_version: String,
    /// Port of the kubelet API (kubectl logs); 0 when not served.
    pub kubelet_port: u16,
}

impl NodeFacts {
    pub fn detect(name: &str, server_version: &str, kubelet_port: u16) -> Self {
        let memory_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(4 * 1024 * 1024);
        Self {
            name: name.to_string(),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_kib,
            max_pods: 110,
            server_version: server_version.to_string(),
            kubelet_port,
        }
    }
}

fn resources(f: &NodeFacts) -> BTreeMap<String, Quantity> {
    [
        ("cpu".to_string(), Quantity(f.cpus.to_string())),
        ("memory".to_string(), Quantity(format!("{}Ki", f.memory_kib))),
        ("pods".to_string(), Quantity(f.max_pods.to_string())),
    ]
    .into()
}

pub fn conditions(now: Timestamp) -> Vec<NodeCondition> {
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    };
    vec![
        condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        condition("Ready", "True", "KubeletReady", "switchyard node agent is posting ready status"),
    ]
}

pub fn status(f: &NodeFacts, now: Timestamp, previous: Option<&NodeStatus>) -> NodeStatus {
    // Keep transition times while a condition's status is unchanged.
    let mut conds = conditions(now);
    for c in &mut conds {
        if let Some(old) = previous
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|o| o.type_ == c.type_ && o.status == c.status))
        {
            c.last_transition_time = old.last_transition_time.clone();
        }
    }
    NodeStatus {
        capacity: Some(resources(f)),
        allocatable: Some(resources(f)),
        conditions: Some(conds),
        // Only an address the API server can dial: it prefers Hostname when
        // there is one, and the node name resolves nowhere.
        addresses: Some(vec![NodeAddress { type_: "InternalIP".into(), address: "127.0.0.1".into() }]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: i32::from(f.kubelet_port) }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            operating_system: "linux".into(),
            os_image: os_image(),
            kernel_version: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            container_runtime_version: format!("mariadbd://{}", f.server_version),
            kubelet_version: "v1.20.2-switchyard".into(),
            kube_proxy_version: "v1.20.2-switchyard".into(),
            machine_id: std::fs::read_to_string("/etc/machine-id").map(|s| s.trim().to_string()).unwrap_or_default(),
            system_uuid: String::new(),
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_string()))
        .unwrap_or_else(|| "Linux".into())
}

pub fn node_object(f: &NodeFacts) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(f.name.clone()),
            labels: Some(
                [
                    ("kubernetes.io/hostname".to_string(), f.name.clone()),
                    ("kubernetes.io/os".to_string(), "linux".to_string()),
                    ("kubernetes.io/arch".to_string(), "amd64".to_string()),
                    ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
                    ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
                    ("switchyard.io/node-agent".to_string(), "true".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Create the Node if needed and post a Ready status.
pub async fn register(client: &Client, f: &NodeFacts) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let existing = match nodes.get_opt(&f.name).await? {
        Some(n) => n,
        None => {
            tracing::info!(node = %f.name, "registering node");
            match nodes.create(&PostParams::default(), &node_object(f)).await {
                Ok(n) => n,
                Err(kube::Error::Api(e)) if e.code == 409 => nodes.get(&f.name).await?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    post_status(client, f, existing.status.as_ref()).await
}

async fn post_status(client: &Client, f: &NodeFacts, previous: Option<&NodeStatus>) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = serde_json::json!({ "status": status(f, super::status::now(), previous) });
    // A merge patch replaces lists whole: addresses or conditions this agent
    // no longer reports must go, which a strategic merge would keep.
    nodes.patch_status(&f.name, &PatchParams::default(), &Patch::Merge(patch)).await?;
    Ok(())
}

async fn renew_lease(client: &Client, f: &NodeFacts, node_uid: Option<String>) -> Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = MicroTime(Timestamp::now());
    match leases.get_opt(&f.name).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.renew_time = Some(now);
            spec.holder_identity = Some(f.name.clone());
            spec.lease_duration_seconds = Some(LEASE_SECONDS);
            leases.replace(&f.name, &PostParams::default(), &lease).await?;
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(f.name.clone()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    // As a kubelet does: the lease goes away with its node.
                    owner_references: node_uid.map(|uid| {
                        vec![OwnerReference {
                            api_version: "v1".into(),
                            kind: "Node".into(),
                            name: f.name.clone(),
                            uid,
                            ..Default::default()
                        }]
                    }),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(f.name.clone()),
                    lease_duration_seconds: Some(LEASE_SECONDS),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            leases.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}

/// Keep the node Ready forever; errors are logged and retried next beat.
pub async fn heartbeat(client: Client, f: NodeFacts) {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let node = match nodes.get_opt(&f.name).await {
            Ok(Some(n)) => n,
            Ok(None) => {
                // Someone deleted the node (kubectl delete node): come back.
                if let Err(e) = register(&client, &f).await {
                    tracing::warn!(error = %e, "re-registering node failed");
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading node failed");
                continue;
            }
        };
        if let Err(e) = renew_lease(&client, &f, node.metadata.uid.clone()).await {
            tracing::warn!(error = %e, "renewing node lease failed");
        }
        if let Err(e) = post_status(&client, &f, node.status.as_ref()).await {
            tracing::warn!(error = %e, "posting node status failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts {
            name: "switchyard-local".into(),
            cpus: 2,
            memory_kib: 1024,
            max_pods: 110,
            server_version: "10.11".into(),
            kubelet_port: 10250,
        }
    }

    #[test]
    fn node_is_labelled_and_reports_capacity() {
        let node = node_object(&facts());
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "switchyard-local");
        let t = Timestamp::from_second(1_700_000_000).unwrap();
        let s = status(&facts(), t, None);
        let cap = s.capacity.unwrap();
        assert_eq!(cap["cpu"].0, "2");
        assert_eq!(cap["memory"].0, "1024Ki");
        assert_eq!(cap["pods"].0, "110");
        let ready = s.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "True");
    }

    #[test]
    fn transition_times_are_kept_while_status_holds() {
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let t1 = Timestamp::from_second(1_700_000_100).unwrap();
        let first = status(&facts(), t0, None);
        let second = status(&facts(), t1, Some(&first));
        let ready = second.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.last_transition_time, Some(Time(t0)));
        assert_eq!(ready.last_heartbeat_time, Some(Time(t1)));
    }
}
