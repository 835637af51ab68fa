//! Observations for unit tests of the clustering plan and the status.

use crate::cluster::objects::server_id;
use crate::mysql::{Flavor, GtidSet, Observed, ReplicaStatus};

use std::time::Duration;

use super::plan::{ClusterView, InstanceView};

pub const MARIA: Flavor = Flavor::MariaDb { major: 10, minor: 11 };

pub fn obs(ordinal: i32, read_only: bool, gtids: &str) -> Observed {
    Observed {
        flavor: MARIA,
        version: "10.11.6-MariaDB".into(),
        server_id: server_id(ordinal),
        read_only,
        all_writes_refused: read_only,
        server_uuid: None,
        gtids: gtids.into(),
        gtid_set: GtidSet::parse(MARIA, gtids).unwrap(),
        replica: None,
        semi_sync_source: false,
        semi_sync_replica: false,
    }
}

pub fn replicating(mut o: Observed, source: &str) -> Observed {
    o.replica =
        Some(ReplicaStatus { source_host: source.into(), io_running: true, sql_running: true, ..Default::default() });
    o.semi_sync_replica = true;
    o
}

pub fn ip(i: i32) -> String {
    format!("127.0.0.{}", 10 + i)
}

pub fn inst(ordinal: i32, mysql: Option<Observed>) -> InstanceView {
    InstanceView { ordinal, address: Some(ip(ordinal)), deleting: false, mysql }
}

/// A cluster of `instances` whose primary is instance 0.
pub fn view(instances: Vec<InstanceView>) -> ClusterView {
    ClusterView {
        replicas: instances.len() as i32,
        spec_primary: 0,
        instances,
        primary: Some(0),
        requested_primary: Some(0),
        primary_unreachable_since: None,
        failover_enabled: true,
        failover_delay: Duration::from_secs(10),
        semi_sync: true,
        now: "2026-01-01T00:00:00Z".parse().unwrap(),
    }
}
