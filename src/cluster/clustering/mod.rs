//! The clustering loop of one MySQLCluster: observe every instance, classify
//! the cluster ([`plan`]), perform one operation. The Kubernetes side (what
//! pods exist, status) is the controller's; this module only talks MySQL.

#[cfg(test)]
pub mod fixtures;
pub mod plan;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;

use crate::cluster::objects::server_id;
use crate::mysql::Instance;
use crate::mysql::instance::InstanceError;
use crate::mysql::sql::Source;
use plan::{ClusterView, InstanceView, Operation};

pub const MYSQL_PORT: u16 = 3306;
/// How long a switchover waits for the candidate to catch up before it gives
/// the old primary its writes back.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a fenced replica may take to apply what it already received.
pub const RELAY_APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Accounts the loop uses.
pub struct Accounts<'a> {
    pub operator_user: &'a str,
    pub operator_password: &'a str,
    pub replication_user: &'a str,
    pub replication_password: &'a str,
}

/// Semi-sync settings from the spec.
pub struct Durability {
    pub timeout: Duration,
    pub wait_for_replicas: u32,
}

/// Open connections of this pass, by ordinal.
pub type Connections = BTreeMap<i32, Instance>;

/// One pod as the controller sees it.
pub struct PodInfo {
    pub ordinal: i32,
    pub address: Option<String>,
    pub deleting: bool,
}

/// Observes every pod concurrently; an instance that does not answer in time
/// is simply unobserved.
pub async fn observe(pods: &[PodInfo], accounts: &Accounts<'_>) -> (Vec<InstanceView>, Connections) {
    let results = join_all(pods.iter().map(|pod| async move {
        let Some(address) = pod.address.as_deref().filter(|_| !pod.deleting) else { return (pod, None) };
        let observed = async {
            let mut instance =
                Instance::connect(address, MYSQL_PORT, accounts.operator_user, accounts.operator_password).await?;
            let observed = instance.observe().await?;
            Ok::<_, InstanceError>((instance, observed))
        }
        .await;
        match observed {
            Ok(pair) => (pod, Some(pair)),
            Err(e) => {
                tracing::debug!(ordinal = pod.ordinal, error = %e, "instance did not answer");
                (pod, None)
            }
        }
    }))
    .await;
    let mut views = Vec::new();
    let mut conns = Connections::new();
    for (pod, result) in results {
        let mysql = result.map(|(instance, observed)| {
            conns.insert(pod.ordinal, instance);
            observed
        });
        views.push(InstanceView { ordinal: pod.ordinal, address: pod.address.clone(), deleting: pod.deleting, mysql });
    }
    (views, conns)
}

/// What an operation achieved.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done(String),
    /// `ordinal` is now the primary: record it in status before anything else.
    NewPrimary {
        ordinal: i32,
        note: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("instance {0}: {1}")]
    Instance(i32, InstanceError),
    #[error("instance {0} is not connected")]
    NotConnected(i32),
    #[error("{0}")]
    Refused(String),
}

fn conn(conns: &mut Connections, ordinal: i32) -> Result<&mut Instance, OperationError> {
    conns.get_mut(&ordinal).ok_or(OperationError::NotConnected(ordinal))
}

macro_rules! on {
    ($ordinal:expr, $call:expr) => {
        $call.await.map_err(|e| OperationError::Instance($ordinal, e))?
    };
}

pub async fn perform(
    op: &Operation,
    view: &ClusterView,
    conns: &mut Connections,
    accounts: &Accounts<'_>,
    durability: &Durability,
) -> Result<Outcome, OperationError> {
    let want_semi = view.semi_sync && view.replicas > 1;
    let address = |ordinal: i32| view.instances.iter().find(|i| i.ordinal == ordinal).and_then(|i| i.address.clone());
    match op {
        Operation::AssignServerId { ordinal, server_id } => {
            let i = conn(conns, *ordinal)?;
            on!(*ordinal, i.set_server_id(*server_id));
            Ok(Outcome::Done(format!("assigned server_id {server_id} to instance {ordinal}")))
        }
        Operation::Bootstrap { ordinal } => {
            let i = conn(conns, *ordinal)?;
            on!(*ordinal, i.promote());
            on!(*ordinal, i.set_semi_sync(true, want_semi, durability.timeout, durability.wait_for_replicas));
            Ok(Outcome::NewPrimary { ordinal: *ordinal, note: format!("instance {ordinal} is the first primary") })
        }
        Operation::MakeWritable { ordinal } => {
            on!(*ordinal, conn(conns, *ordinal)?.set_read_only(false));
            Ok(Outcome::Done(format!("made the primary (instance {ordinal}) writable")))
        }
        Operation::MakeReadOnly { ordinal } => {
            on!(*ordinal, conn(conns, *ordinal)?.set_read_only(true));
            Ok(Outcome::Done(format!("made instance {ordinal} read-only")))
        }
        Operation::SemiSync { ordinal, primary, enabled } => {
            let i = conn(conns, *ordinal)?;
            on!(*ordinal, i.set_semi_sync(*primary, *enabled, durability.timeout, durability.wait_for_replicas));
            // A replica's IO thread reads the setting when it connects.
            if !primary && on!(*ordinal, i.replica_status()).is_some() {
                on!(*ordinal, i.restart_replication());
            }
            Ok(Outcome::Done(format!("set semi-sync {} on instance {ordinal}", if *enabled { "on" } else { "off" })))
        }
        Operation::Replicate { ordinal, source } => {
            let host =
                address(*source).ok_or_else(|| OperationError::Refused(format!("instance {source} has no address")))?;
            let i = conn(conns, *ordinal)?;
            on!(*ordinal, i.set_semi_sync(false, want_semi, durability.timeout, durability.wait_for_replicas));
            let src = Source {
                host: &host,
                port: MYSQL_PORT,
                user: accounts.replication_user,
                password: accounts.replication_password,
            };
            on!(*ordinal, i.replicate_from(&src));
            Ok(Outcome::Done(format!("instance {ordinal} replicates from instance {source}")))
        }
        Operation::Switchover { from, to } => switchover(*from, *to, conns, want_semi, durability).await,
        Operation::Failover { from, candidates } => {
            failover(*from, candidates, view.spec_primary, conns, want_semi, durability).await
        }
    }
}

/// Idempotent: an operator killed at any point repeats it on the next pass.
async fn switchover(
    from: i32,
    to: i32,
    conns: &mut Connections,
    want_semi: bool,
    durability: &Durability,
) -> Result<Outcome, OperationError> {
    let old = conn(conns, from)?;
    on!(from, old.set_read_only(true));
    let gtids = on!(from, old.executed_gtids());
    let caught_up = on!(to, conn(conns, to)?.wait_for_gtids(&gtids, CATCH_UP_TIMEOUT));
    if !caught_up {
        // Give writes back rather than leave the cluster without a primary.
        on!(from, conn(conns, from)?.set_read_only(false));
        return Err(OperationError::Refused(format!(
            "switchover to instance {to} abandoned: it did not reach {gtids} within {}s",
            CATCH_UP_TIMEOUT.as_secs()
        )));
    }
    let new = conn(conns, to)?;
    on!(to, new.promote());
    on!(to, new.set_semi_sync(true, want_semi, durability.timeout, durability.wait_for_replicas));
    Ok(Outcome::NewPrimary {
        ordinal: to,
        note: format!("switched over from instance {from} to instance {to} at {gtids}"),
    })
}

async fn failover(
    from: i32,
    candidates: &[i32],
    preferred: i32,
    conns: &mut Connections,
    want_semi: bool,
    durability: &Durability,
) -> Result<Outcome, OperationError> {
    let started = std::time::Instant::now();
    // Fence: a primary that is only half gone must not feed anyone more. In
    // parallel: stopping an IO thread blocked on a frozen source takes the
    // server a couple of seconds.
    let fencing = conns
        .iter_mut()
        .filter(|(c, _)| candidates.contains(c))
        .map(|(c, i)| async move { (*c, i.stop_io_thread().await) });
    let fenced: Vec<i32> = join_all(fencing)
        .await
        .into_iter()
        .filter_map(|(c, r)| match r {
            Ok(()) => Some(c),
            Err(e) => {
                tracing::warn!(ordinal = c, error = %e, "could not fence; not a candidate");
                None
            }
        })
        .collect();
    tracing::debug!(?fenced, elapsed = ?started.elapsed(), "failover: fenced");
    let mut sets = Vec::new();
    for &c in &fenced {
        let i = conn(conns, c)?;
        let received = on!(c, i.replica_status()).map(|r| r.retrieved_gtids).unwrap_or_default();
        if !received.is_empty() && !on!(c, i.wait_for_gtids(&received, RELAY_APPLY_TIMEOUT)) {
            tracing::warn!(ordinal = c, "replica did not apply its relay log in time; it is not a candidate");
            continue;
        }
        sets.push((c, on!(c, i.gtid_state())));
    }
    tracing::debug!(elapsed = ?started.elapsed(), "failover: relay logs applied");
    let chosen = plan::failover_candidate(&sets, preferred).ok_or_else(|| {
        OperationError::Refused(format!(
            "no replica holds every transaction the others hold: {sets:?}; not failing over"
        ))
    })?;
    let new = conn(conns, chosen)?;
    // It may itself have restarted; it must not write under another's id.
    on!(chosen, new.set_server_id(server_id(chosen)));
    on!(chosen, new.promote());
    on!(chosen, new.set_semi_sync(true, want_semi, durability.timeout, durability.wait_for_replicas));
    let gtids = on!(chosen, new.executed_gtids());
    Ok(Outcome::NewPrimary {
        ordinal: chosen,
        note: format!("failed over from instance {from} to instance {chosen} at {gtids}"),
    })
}
