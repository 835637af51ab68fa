//! Fault injection into pod processes through the node agent.
//!
//! Only the local node agent knows which host process is a pod's server, so on
//! a user's real cluster (`SWITCHYARD_EXTERNAL_CLUSTER=1`) `signal_pod` does
//! nothing and answers `Skipped`: the calling test then reports itself as
//! skipped by design and passes, since there is nothing to test there.

use std::process::Command;

use anyhow::bail;

use super::cluster::{external_cluster, node_agent_bin, node_state_dir};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signalled {
    /// Delivered; what the agent printed (it names the pid).
    Sent(String),
    /// Not possible on this cluster; the test should end here.
    Skipped(String),
}

impl Signalled {
    pub fn skipped(&self) -> bool {
        matches!(self, Signalled::Skipped(_))
    }
}

/// Print the skip notice and tell the caller whether to stop.
pub fn skip_on_external_cluster(test: &str, why: &str) -> bool {
    if external_cluster() {
        eprintln!("SKIPPED (by design) {test}: {why} (SWITCHYARD_EXTERNAL_CLUSTER=1)");
        return true;
    }
    false
}

/// `node-agent signal --signal SIG` for the pod's mariadbd: KILL crashes it,
/// STOP freezes it (a hung or partitioned server), CONT thaws it.
pub fn signal_pod(namespace: &str, pod: &str, signal: &str) -> anyhow::Result<Signalled> {
    if external_cluster() {
        let why =
            format!("cannot send SIG{signal} to {namespace}/{pod}: only the local node agent can signal pod processes");
        eprintln!("SKIPPED (by design): {why}");
        return Ok(Signalled::Skipped(why));
    }
    let bin = node_agent_bin();
    if !bin.exists() {
        bail!("no node agent binary at {}: run `cargo build -p switchyard-e2e --bin node-agent`", bin.display());
    }
    let out = Command::new(&bin)
        .arg("signal")
        .arg("--state-dir")
        .arg(node_state_dir())
        .args(["--namespace", namespace, "--pod", pod, "--signal", signal])
        .output()?;
    if !out.status.success() {
        bail!("node-agent signal {signal} {namespace}/{pod} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(Signalled::Sent(String::from_utf8_lossy(&out.stdout).trim().to_string()))
}
