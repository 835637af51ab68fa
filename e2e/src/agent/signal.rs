//! Fault injection: `node-agent signal` sends a signal to a pod's mariadbd,
//! found through the agent's state dir, so tests can crash (KILL), freeze
//! (STOP, a hung or partitioned server) and thaw (CONT) a database.

use std::path::Path;

use super::error::{AgentError, Result};
use super::layout::StateLayout;
use super::process::{self, ProcessRecord};

/// The pid of the pod's running server.
pub fn server_pid(state_dir: &Path, namespace: &str, pod: &str) -> Result<u32> {
    let layout = StateLayout::new(state_dir);
    let paths = layout.pod(namespace, pod);
    if let Some(record) = ProcessRecord::read(&paths.process_record()).filter(|r| r.is_running()) {
        return Ok(record.pid);
    }
    // The record may be missing (e.g. during the first start); /proc knows.
    process::find_pod_servers(&layout.pods_root())
        .into_iter()
        .find(|s| s.namespace == namespace && s.pod == pod)
        .map(|s| s.pid)
        .ok_or_else(|| {
            AgentError::Invalid(format!("no running mariadbd for pod {namespace}/{pod} under {}", state_dir.display()))
        })
}

pub fn signal_pod(state_dir: &Path, namespace: &str, pod: &str, signal: &str) -> Result<u32> {
    let number = process::signal_by_name(signal)
        .ok_or_else(|| AgentError::Invalid(format!("unknown signal {signal}; use KILL, STOP, CONT or TERM")))?;
    let pid = server_pid(state_dir, namespace, pod)?;
    process::send_signal(pid, number).map_err(AgentError::io(format!("signalling pid {pid}")))?;
    Ok(pid)
}
