//! The scheduler for a one-node cluster: every pending pod that asks for the
//! default scheduler and fits the node's labels is bound to this node through
//! the pods/binding subresource, exactly as kube-scheduler would do it.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::events::{Kind, Recorder};

const UNSCHEDULED: &str = "spec.nodeName=,status.phase!=Succeeded,status.phase!=Failed";

/// An unbound, live pod that asks for the default scheduler.
pub fn awaits_default_scheduler(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return false };
    let unbound = spec.node_name.as_deref().unwrap_or_default().is_empty();
    let ours = matches!(spec.scheduler_name.as_deref(), None | Some("") | Some("default-scheduler"));
    unbound && ours && pod.metadata.deletion_timestamp.is_none()
}

/// Whether this scheduler should place the pod on a node with these labels.
pub fn wants_binding(pod: &Pod, node_labels: &BTreeMap<String, String>) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return false };
    let fits = spec.node_selector.iter().flatten().all(|(k, v)| node_labels.get(k) == Some(v));
    awaits_default_scheduler(pod) && fits
}

pub async fn bind(client: &Client, recorder: &Recorder, pod: &Pod, node: &str) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    match pods.create_subresource::<_, serde_json::Value>("binding", &name, &PostParams::default(), &binding).await {
        Ok(_) => {
            tracing::info!(pod = %format!("{namespace}/{name}"), node, "bound pod");
            let message = format!("Successfully assigned {namespace}/{name} to {node}");
            recorder.pod(pod, "default-scheduler", Kind::Normal, "Scheduled", &message).await;
        }
        // Already bound (a race with our own watch) or gone: nothing to do.
        Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409) => {}
        Err(e) => tracing::warn!(pod = %format!("{namespace}/{name}"), error = %e, "binding failed"),
    }
}

/// The node's labels if pods may be placed on it now: it exists and is not
/// cordoned (`kubectl cordon` sets spec.unschedulable).
async fn schedulable(client: &Client, node: &str) -> Option<BTreeMap<String, String>> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.get_opt(node).await {
        Ok(Some(n)) if !n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) => {
            Some(n.metadata.labels.unwrap_or_default())
        }
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(error = %e, "reading node failed");
            None
        }
    }
}

async fn bind_all(client: &Client, recorder: &Recorder, node: &str) {
    let Some(labels) = schedulable(client, node).await else { return };
    let labels = &labels;
    let pods: Api<Pod> = Api::all(client.clone());
    match pods.list(&ListParams::default().fields(UNSCHEDULED)).await {
        Ok(list) => {
            for pod in list.items.iter().filter(|p| wants_binding(p, labels)) {
                bind(client, recorder, pod, node).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing unscheduled pods failed"),
    }
}

/// Bind on every watch event, and sweep every few seconds in case a watch
/// event was missed.
pub async fn run(client: Client, recorder: Recorder, node: String) {
    let pods: Api<Pod> = Api::all(client.clone());
    let stream = watcher(pods, watcher::Config::default().fields(UNSCHEDULED)).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut sweep = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                    if awaits_default_scheduler(&pod)
                        && let Some(labels) = schedulable(&client, &node).await
                        && wants_binding(&pod, &labels)
                    {
                        bind(&client, &recorder, &pod, &node).await;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::debug!(error = %e, "unscheduled pod watch interrupted"),
                None => return,
            },
            _ = sweep.tick() => bind_all(&client, &recorder, &node).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn pod(node: Option<&str>, scheduler: Option<&str>, selector: &[(&str, &str)]) -> Pod {
        Pod {
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                scheduler_name: scheduler.map(str::to_string),
                node_selector: (!selector.is_empty())
                    .then(|| selector.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn binds_only_unscheduled_default_scheduler_pods_that_fit() {
        let labels: BTreeMap<String, String> =
            [("kubernetes.io/hostname".to_string(), "switchyard-local".to_string())].into();
        assert!(wants_binding(&pod(None, None, &[]), &labels));
        assert!(wants_binding(&pod(Some(""), Some("default-scheduler"), &[]), &labels));
        assert!(!wants_binding(&pod(Some("n1"), None, &[]), &labels));
        assert!(!wants_binding(&pod(None, Some("my-scheduler"), &[]), &labels));
        assert!(wants_binding(&pod(None, None, &[("kubernetes.io/hostname", "switchyard-local")]), &labels));
        assert!(!wants_binding(&pod(None, None, &[("disktype", "ssd")]), &labels));
        let mut deleting = pod(None, None, &[]);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()));
        assert!(!wants_binding(&deleting, &labels));
    }
}
