//! How the other controllers reach a MySQLCluster: its writable primary, as
//! the cluster's status reports it, with the operator's account.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::api::MySQLCluster;
use super::objects;
use crate::movement::Endpoint;

/// Why a cluster cannot be used right now. Each is a state the user can
/// see and usually wait out, never a reason to touch anything.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unavailable {
    #[error("MySQLCluster {0} does not exist")]
    NoCluster(String),
    #[error("MySQLCluster {0} has no writable primary yet")]
    NoPrimary(String),
    #[error("Secret {secret}: {reason}")]
    Credentials { secret: String, reason: String },
    #[error("Kubernetes API: {0}")]
    Api(String),
}

/// The primary of `cluster` in `namespace`, as an engine endpoint, with the
/// mover account (it cannot write past `read_only`, so nothing it sends to a
/// primary that was demoted meanwhile lands there).
pub async fn primary(client: &kube::Client, namespace: &str, cluster: &str) -> Result<Endpoint, Unavailable> {
    let clusters: Api<MySQLCluster> = Api::namespaced(client.clone(), namespace);
    let c = clusters
        .get_opt(cluster)
        .await
        .map_err(|e| Unavailable::Api(e.to_string()))?
        .ok_or_else(|| Unavailable::NoCluster(cluster.to_string()))?;
    let address =
        c.status.as_ref().and_then(primary_address).ok_or_else(|| Unavailable::NoPrimary(cluster.to_string()))?;
    let password = secret_key(client, namespace, &objects::secret_name(cluster), objects::MOVER_PASSWORD_KEY).await?;
    Ok(endpoint(cluster, &address, objects::MYSQL_PORT as u16, objects::MOVER_USER, &password))
}

/// One key of a Secret in `namespace`, as text.
pub async fn secret_key(
    client: &kube::Client,
    namespace: &str,
    secret: &str,
    key: &str,
) -> Result<String, Unavailable> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let found = secrets
        .get_opt(secret)
        .await
        .map_err(|e| Unavailable::Api(e.to_string()))?
        .ok_or_else(|| Unavailable::Credentials { secret: secret.to_string(), reason: "does not exist".into() })?;
    found
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .ok_or_else(|| Unavailable::Credentials { secret: secret.to_string(), reason: format!("no {key} key") })
}

/// The address of the healthy, writable primary.
pub fn primary_address(status: &super::api::MySQLClusterStatus) -> Option<String> {
    status.instances.iter().find(|i| i.role == "primary" && i.healthy && !i.read_only).and_then(|i| i.address.clone())
}

pub fn endpoint(name: &str, host: &str, port: u16, user: &str, password: &str) -> Endpoint {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host.to_string())
        .tcp_port(port)
        .user(Some(user.to_string()))
        .pass(Some(password.to_string()))
        .prefer_socket(false);
    Endpoint { name: format!("{name} primary ({host})"), opts: opts.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::api::{InstanceStatus, MySQLClusterStatus};

    fn inst(name: &str, role: &str, healthy: bool, read_only: bool) -> InstanceStatus {
        InstanceStatus {
            name: name.into(),
            address: Some(format!("10.0.0.{}", name.len())),
            role: role.into(),
            healthy,
            read_only,
            ..Default::default()
        }
    }

    #[test]
    fn only_a_healthy_writable_primary_is_used() {
        let mut s = MySQLClusterStatus {
            instances: vec![inst("db-1", "replica", true, true), inst("db-00", "primary", true, false)],
            ..Default::default()
        };
        assert_eq!(primary_address(&s).as_deref(), Some("10.0.0.5"));
        s.instances[1].read_only = true;
        assert_eq!(primary_address(&s), None, "a read-only primary is mid-switchover");
        s.instances[1].read_only = false;
        s.instances[1].healthy = false;
        assert_eq!(primary_address(&s), None);
    }

    #[test]
    fn endpoint_never_prints_the_password() {
        let e = endpoint("db", "10.0.0.1", 3306, "switchyard", "s3cr3t");
        assert_eq!(e.name, "db primary (10.0.0.1)");
        assert!(!e.name.contains("s3cr3t"));
    }
}
