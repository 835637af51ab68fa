//! Helpers shared by the e2e tests (`e2e/tests/*.rs`). They drive a real
//! cluster through kubectl and real databases through mysql_async; nothing is
//! mocked. Locally that cluster is `e2e/localenv.sh`; with
//! `SWITCHYARD_EXTERNAL_CLUSTER=1` it is whatever KUBECONFIG points at, and
//! the few things only the local node agent can do (signalling a pod's
//! process) report the test as skipped by design.
//!
//! `servers` and `load` are the exception: standalone MariaDB servers on
//! 127.0.0.1 and a writer for them, for the data movement engine's tests and
//! benchmarks, which need no cluster.

pub mod cluster;
pub mod fault;
pub mod flavor;
pub mod keys;
pub mod kubectl;
pub mod load;
pub mod model;
pub mod mysql;
pub mod namespace;
pub mod numbers;
pub mod operator;
pub mod pods;
pub mod resource;
pub mod routed;
pub mod servers;
pub mod wait;
pub mod writer;
pub mod zoo;

pub use cluster::{external_cluster, kubeconfig, node_state_dir, state_root};
pub use fault::{Signalled, signal_pod};
pub use flavor::{is_mysql, server_image};
pub use kubectl::{apply_yaml, kubectl};
pub use mysql::mysql;
pub use namespace::TestNamespace;
pub use pods::pod_ip;
pub use wait::{wait_until, wait_until_async};
