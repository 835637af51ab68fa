//! Where the cluster under test is, and how the tests reach it.

use std::path::PathBuf;

pub const DEFAULT_STATE: &str = "/var/lib/switchyard-localenv";

/// The local environment's state root (`SWITCHYARD_STATE` overrides).
pub fn state_root() -> PathBuf {
    std::env::var_os("SWITCHYARD_STATE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_STATE))
}

/// KUBECONFIG if set, else the local environment's admin kubeconfig.
pub fn kubeconfig() -> PathBuf {
    std::env::var_os("KUBECONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| state_root().join("kubeconfig"))
}

/// The node agent's state dir, as localenv.sh starts it.
pub fn node_state_dir() -> PathBuf {
    state_root().join("node")
}

/// True when the tests run against a user's real cluster.
pub fn external_cluster() -> bool {
    std::env::var("SWITCHYARD_EXTERNAL_CLUSTER").is_ok_and(|v| v == "1")
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("e2e/ sits in the repository").to_path_buf()
}

/// `target/debug/node-agent`, or `SWITCHYARD_NODE_AGENT`.
pub fn node_agent_bin() -> PathBuf {
    std::env::var_os("SWITCHYARD_NODE_AGENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/debug/node-agent"))
}
