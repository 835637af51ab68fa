//! Kubernetes Events about pods, as a kubelet and scheduler emit them, so that
//! `kubectl describe pod` tells a person what happened. Best effort: an event
//! that cannot be posted is logged, never an error.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::PostParams;
use kube::{Api, Client};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    node_name: String,
}

impl Recorder {
    pub fn new(client: Client, node_name: &str) -> Self {
        Self { client, node_name: node_name.to_string() }
    }

    pub async fn pod(&self, pod: &Pod, component: &str, kind: Kind, reason: &str, message: &str) {
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let now = Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                uid: pod.metadata.uid.clone(),
                resource_version: pod.metadata.resource_version.clone(),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(match kind {
                Kind::Normal => "Normal".into(),
                Kind::Warning => "Warning".into(),
            }),
            source: Some(EventSource { component: Some(component.into()), host: Some(self.node_name.clone()) }),
            first_timestamp: Some(Time(super::status::now())),
            last_timestamp: Some(Time(super::status::now())),
            count: Some(1),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        // Best effort, and never long: events only explain, they decide nothing.
        match tokio::time::timeout(Duration::from_secs(5), api.create(&PostParams::default(), &event)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(pod = %name, reason, error = %e, "could not post event"),
            Err(_) => tracing::debug!(pod = %name, reason, "posting event timed out"),
        }
    }
}
