//! Pod facts the tests check, read through kubectl.

use std::time::Duration;

use serde_json::Value;

use super::kubectl::get_json;
use super::wait::wait_until;

pub fn pod(namespace: &str, name: &str) -> anyhow::Result<Option<Value>> {
    get_json(namespace, "pod", name)
}

/// status.podIP, once the pod has one.
pub fn pod_ip(namespace: &str, name: &str) -> anyhow::Result<Option<String>> {
    Ok(pod(namespace, name)?
        .and_then(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .filter(|ip| !ip.is_empty()))
}

pub fn uid(pod: &Value) -> &str {
    pod["metadata"]["uid"].as_str().unwrap_or_default()
}

pub fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

pub fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// The status of the pod's first (or only) container.
pub fn container_status(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

pub fn restart_count(pod: &Value) -> i64 {
    container_status(pod)["restartCount"].as_i64().unwrap_or_default()
}

/// Wait for the pod to exist and be Ready; returns it.
pub fn wait_ready(namespace: &str, name: &str, timeout: Duration) -> anyhow::Result<Value> {
    wait_until(&format!("pod {namespace}/{name} to be Ready"), timeout, Duration::from_millis(500), || {
        Ok(pod(namespace, name)?.filter(is_ready))
    })
}
