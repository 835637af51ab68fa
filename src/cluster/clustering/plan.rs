//! Classification of a cluster into one state, and the one operation to
//! perform this pass. Pure: everything it needs is in the [`ClusterView`].

use std::time::Duration;

use jiff::Timestamp;

use crate::cluster::objects::server_id;
use crate::mysql::{GtidSet, Observed};

/// The closed set of cluster states (docs/clustering.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Incomplete,
    Healthy,
    Degraded,
    Switching,
    Failed,
    Lost,
    Errant,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Incomplete => "Incomplete",
            State::Healthy => "Healthy",
            State::Degraded => "Degraded",
            State::Switching => "Switching",
            State::Failed => "Failed",
            State::Lost => "Lost",
            State::Errant => "Errant",
        }
    }
}

/// One instance as observed this pass.
#[derive(Clone, Debug, Default)]
pub struct InstanceView {
    pub ordinal: i32,
    /// Pod IP, when the pod runs.
    pub address: Option<String>,
    /// The pod is being deleted.
    pub deleting: bool,
    /// What MySQL said; `None` when it did not answer.
    pub mysql: Option<Observed>,
}

impl InstanceView {
    fn reachable(&self) -> Option<&Observed> {
        if self.deleting { None } else { self.mysql.as_ref() }
    }
}

#[derive(Clone, Debug)]
pub struct ClusterView {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `spec.primary`.
    pub spec_primary: i32,
    /// Every instance that exists or should exist, by ordinal.
    pub instances: Vec<InstanceView>,
    /// `status.primary` as an ordinal.
    pub primary: Option<i32>,
    /// `status.requestedPrimary`.
    pub requested_primary: Option<i32>,
    /// `status.primaryUnreachableSince`.
    pub primary_unreachable_since: Option<Timestamp>,
    pub failover_enabled: bool,
    pub failover_delay: Duration,
    pub semi_sync: bool,
    pub now: Timestamp,
}

/// The one thing to do this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    AssignServerId {
        ordinal: i32,
        server_id: u32,
    },
    /// A new cluster: make `ordinal` the first primary.
    Bootstrap {
        ordinal: i32,
    },
    MakeWritable {
        ordinal: i32,
    },
    MakeReadOnly {
        ordinal: i32,
    },
    Replicate {
        ordinal: i32,
        source: i32,
    },
    SemiSync {
        ordinal: i32,
        primary: bool,
        enabled: bool,
    },
    Switchover {
        from: i32,
        to: i32,
    },
    /// Fence and promote the most advanced of `candidates`.
    Failover {
        from: i32,
        candidates: Vec<i32>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub state: State,
    pub operation: Option<Operation>,
    /// Instances holding transactions the primary lacks.
    pub errant: Vec<i32>,
    /// Replicas the primary cannot seed (binlogs purged).
    pub unseedable: Vec<i32>,
    /// The new value of `status.primaryUnreachableSince`.
    pub primary_unreachable_since: Option<Timestamp>,
    /// Why the cluster is not Healthy, for the conditions.
    pub reason: String,
}

/// MySQL error: the source purged binlogs the replica still needs.
const ER_SOURCE_FATAL_ERROR_READING_BINLOG: u32 = 1236;

pub fn plan(v: &ClusterView) -> Plan {
    let mut p = Plan {
        state: State::Healthy,
        operation: None,
        errant: vec![],
        unseedable: vec![],
        primary_unreachable_since: v.primary_unreachable_since,
        reason: String::new(),
    };
    let in_range = |i: &&InstanceView| i.ordinal < v.replicas;

    // A primary found with an unassigned server id has restarted since the
    // operator configured it: it came back read-only and may hold commits no
    // replica acknowledged. When a replica can take over, that is a failure
    // like any other, and it is failed over at once rather than after the
    // unreachability delay, which exists to ride out network blips.
    if let Some(primary) = v.primary
        && v.failover_enabled
        && let Some(pm) = v.instances.iter().find(|i| i.ordinal == primary).and_then(InstanceView::reachable)
        && pm.server_id != server_id(primary)
    {
        let candidates = failover_candidates(v, primary);
        if !candidates.is_empty() {
            p.state = State::Failed;
            p.reason = format!("the primary (instance {primary}) restarted; failing over");
            p.operation = Some(Operation::Failover { from: primary, candidates });
            return p;
        }
    }

    // Nothing may write or replicate under a wrong server id.
    if let Some(i) =
        v.instances.iter().filter(in_range).find(|i| i.reachable().is_some_and(|o| o.server_id != server_id(i.ordinal)))
    {
        p.operation = Some(Operation::AssignServerId { ordinal: i.ordinal, server_id: server_id(i.ordinal) });
        p.state = State::Incomplete;
        p.reason = format!("assigning server_id to instance {}", i.ordinal);
        return p;
    }

    let Some(primary) = v.primary else { return bootstrap(v, p) };
    let primary_view = v.instances.iter().find(|i| i.ordinal == primary);
    let Some(pm) = primary_view.and_then(InstanceView::reachable) else { return primary_down(v, primary, p) };
    p.primary_unreachable_since = None;

    let others: Vec<&InstanceView> = v.instances.iter().filter(in_range).filter(|i| i.ordinal != primary).collect();
    for i in &others {
        if let Some(o) = i.reachable()
            && !pm.gtid_set.contains(&originated_elsewhere(&o.gtid_set, pm))
        {
            p.errant.push(i.ordinal);
        }
    }

    // A switchover is requested by changing spec.primary, or forced when the
    // primary's ordinal is being scaled away.
    let requested = v.spec_primary != v.requested_primary.unwrap_or(v.spec_primary) || primary >= v.replicas;
    let source_ip = primary_view.and_then(|i| i.address.clone()).unwrap_or_default();
    let replicates_from_primary =
        |o: &Observed| o.replica.as_ref().is_some_and(|r| r.source_host == source_ip && r.io_running && r.sql_running);
    // A target that does not replicate from the primary (a replica not yet
    // re-pointed after an earlier switchover) would never catch up: the
    // switchover would be abandoned pass after pass while nothing repairs
    // it. Repairs come first then; the switchover follows.
    let mut switch_waits_for = None;
    if requested && v.spec_primary != primary && v.spec_primary < v.replicas {
        p.state = State::Switching;
        let target = v.instances.iter().find(|i| i.ordinal == v.spec_primary);
        match target.and_then(InstanceView::reachable) {
            Some(_) if p.errant.contains(&v.spec_primary) => {
                p.reason = format!("cannot switch over to instance {}: it holds errant transactions", v.spec_primary);
                return p;
            }
            Some(o) if replicates_from_primary(o) => {
                p.operation = Some(Operation::Switchover { from: primary, to: v.spec_primary });
                return p;
            }
            Some(_) => switch_waits_for = Some(v.spec_primary),
            None => {
                p.reason = format!("waiting for instance {} to answer before switching over", v.spec_primary);
                return p;
            }
        }
    }

    if pm.read_only {
        return degraded(p, Operation::MakeWritable { ordinal: primary }, "the primary is read-only");
    }
    let want_semi = v.semi_sync && v.replicas > 1;
    for i in &others {
        let Some(o) = i.reachable() else { continue };
        if p.errant.contains(&i.ordinal) {
            continue;
        }
        if !o.all_writes_refused {
            return degraded(p, Operation::MakeReadOnly { ordinal: i.ordinal }, "a replica is writable");
        }
        if o.semi_sync_replica != want_semi || o.semi_sync_source {
            return degraded(
                p,
                Operation::SemiSync { ordinal: i.ordinal, primary: false, enabled: want_semi },
                "a replica's semi-sync setting is wrong",
            );
        }
        match &o.replica {
            Some(r) if r.io_errno == ER_SOURCE_FATAL_ERROR_READING_BINLOG && r.source_host == source_ip => {
                p.unseedable.push(i.ordinal);
            }
            Some(r) if r.source_host == source_ip && r.io_running && r.sql_running => {}
            _ => {
                return degraded(
                    p,
                    Operation::Replicate { ordinal: i.ordinal, source: primary },
                    "a replica does not replicate from the primary",
                );
            }
        }
    }
    if pm.semi_sync_source != want_semi || pm.semi_sync_replica {
        return degraded(
            p,
            Operation::SemiSync { ordinal: primary, primary: true, enabled: want_semi },
            "the primary's semi-sync setting is wrong",
        );
    }

    let missing: Vec<i32> = others.iter().filter(|i| i.reachable().is_none()).map(|i| i.ordinal).collect();
    if let Some(target) = switch_waits_for {
        p.state = State::Switching;
        p.reason = format!("waiting for instance {target} to replicate from the primary before switching over");
    } else if !p.errant.is_empty() {
        p.state = State::Errant;
        p.reason = format!("instances {:?} hold transactions the primary lacks", p.errant);
    } else if !p.unseedable.is_empty() {
        p.state = State::Degraded;
        p.reason = format!("instances {:?} cannot be seeded: the primary purged binlogs they need", p.unseedable);
    } else if !missing.is_empty() {
        p.state = State::Degraded;
        p.reason = format!("instances {missing:?} do not answer");
    }
    p
}

fn degraded(mut p: Plan, op: Operation, reason: &str) -> Plan {
    p.state = State::Degraded;
    p.operation = Some(op);
    p.reason = reason.to_string();
    p
}

/// No primary was ever established: promote `spec.primary` once it answers,
/// unless some instance already holds data it lacks.
fn bootstrap(v: &ClusterView, mut p: Plan) -> Plan {
    p.state = State::Incomplete;
    let candidate = v.instances.iter().find(|i| i.ordinal == v.spec_primary).and_then(InstanceView::reachable);
    let Some(c) = candidate else {
        p.reason = format!("waiting for instance {} to answer", v.spec_primary);
        return p;
    };
    let ahead: Vec<i32> = v
        .instances
        .iter()
        .filter(|i| i.ordinal != v.spec_primary)
        .filter(|i| i.reachable().is_some_and(|o| !c.gtid_set.contains(&o.gtid_set)))
        .map(|i| i.ordinal)
        .collect();
    if !ahead.is_empty() {
        p.state = State::Errant;
        p.errant = ahead;
        p.reason = format!(
            "instance {} cannot become the first primary: instances {:?} hold transactions it lacks",
            v.spec_primary, p.errant
        );
        return p;
    }
    p.operation = Some(Operation::Bootstrap { ordinal: v.spec_primary });
    p.reason = "establishing the first primary".into();
    p
}

/// The primary does not answer: fail over once it has been gone long enough.
fn primary_down(v: &ClusterView, primary: i32, mut p: Plan) -> Plan {
    let since = *p.primary_unreachable_since.get_or_insert(v.now);
    let candidates = failover_candidates(v, primary);
    if candidates.is_empty() {
        p.state = State::Lost;
        p.reason = format!("instance {primary} (primary) and every replica do not answer");
        return p;
    }
    p.state = State::Failed;
    let waited = v.now.duration_since(since).unsigned_abs();
    if !v.failover_enabled {
        p.reason = format!("the primary (instance {primary}) does not answer; failover is disabled");
    } else if waited < v.failover_delay {
        p.reason = format!(
            "the primary (instance {primary}) does not answer; failover in {}s",
            (v.failover_delay - waited).as_secs()
        );
    } else {
        p.reason = format!("failing over from instance {primary}");
        p.operation = Some(Operation::Failover { from: primary, candidates });
    }
    p
}

/// Replicas that answer and may become primary.
fn failover_candidates(v: &ClusterView, primary: i32) -> Vec<i32> {
    v.instances
        .iter()
        .filter(|i| i.ordinal != primary && i.ordinal < v.replicas && i.reachable().is_some())
        .map(|i| i.ordinal)
        .collect()
}

/// After fencing: the candidate whose executed set contains every other
/// candidate's, preferring `preferred`, then the lowest ordinal. `None` when
/// the candidates diverge and no choice is lossless.
pub fn failover_candidate(sets: &[(i32, GtidSet)], preferred: i32) -> Option<i32> {
    let mut best: Vec<i32> =
        sets.iter().filter(|(_, s)| sets.iter().all(|(_, other)| s.contains(other))).map(|(i, _)| *i).collect();
    best.sort_by_key(|i| (*i != preferred, *i));
    best.first().copied()
}

/// What a replica holds that did not originate at the primary itself. Those
/// that did are never errant: with semi-sync AFTER_SYNC a MySQL replica can
/// apply a transaction before the primary commits it, and MySQL adds a GTID to
/// gtid_executed only at commit, so a replica observed a moment after the
/// primary may look one transaction "ahead" of it. (MariaDB's binlog state,
/// which the comparison uses there, is written before the replica gets it.)
fn originated_elsewhere(replica: &GtidSet, primary: &Observed) -> GtidSet {
    match &primary.server_uuid {
        Some(uuid) => replica.without_source(uuid),
        None => replica.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::clustering::fixtures::*;

    fn healthy_view() -> ClusterView {
        let mut primary = obs(0, false, "0-100-5");
        primary.semi_sync_source = true;
        view(vec![
            inst(0, Some(primary)),
            inst(1, Some(replicating(obs(1, true, "0-100-5"), &ip(0)))),
            inst(2, Some(replicating(obs(2, true, "0-100-4"), &ip(0)))),
        ])
    }

    #[test]
    fn healthy_cluster_needs_nothing() {
        let p = plan(&healthy_view());
        assert_eq!(p.state, State::Healthy, "{p:?}");
        assert_eq!(p.operation, None);
    }

    #[test]
    fn server_ids_come_first() {
        let mut v = healthy_view();
        v.instances[2].mysql.as_mut().unwrap().server_id = 1;
        assert_eq!(plan(&v).operation, Some(Operation::AssignServerId { ordinal: 2, server_id: 102 }));
    }

    #[test]
    fn bootstrap_waits_for_the_desired_primary() {
        let mut v = healthy_view();
        v.primary = None;
        v.requested_primary = None;
        v.instances = vec![inst(0, None), inst(1, Some(obs(1, true, ""))), inst(2, None)];
        let p = plan(&v);
        assert_eq!((p.state, p.operation), (State::Incomplete, None));
        v.instances[0].mysql = Some(obs(0, true, ""));
        assert_eq!(plan(&v).operation, Some(Operation::Bootstrap { ordinal: 0 }));
    }

    #[test]
    fn bootstrap_refuses_to_lose_data_held_elsewhere() {
        let mut v = healthy_view();
        v.primary = None;
        v.instances = vec![inst(0, Some(obs(0, true, ""))), inst(1, Some(obs(1, true, "0-101-3")))];
        let p = plan(&v);
        assert_eq!(p.state, State::Errant);
        assert_eq!(p.errant, vec![1]);
        assert_eq!(p.operation, None);
    }

    #[test]
    fn repairs_in_order() {
        let mut v = healthy_view();
        v.instances[0].mysql.as_mut().unwrap().read_only = true;
        assert_eq!(plan(&v).operation, Some(Operation::MakeWritable { ordinal: 0 }));

        let mut v = healthy_view();
        let o = v.instances[1].mysql.as_mut().unwrap();
        (o.read_only, o.all_writes_refused) = (false, false);
        assert_eq!(plan(&v).operation, Some(Operation::MakeReadOnly { ordinal: 1 }));

        // A MySQL replica started read-only by my.cnf: read_only without
        // super_read_only lets the mover account write to it.
        let mut v = healthy_view();
        v.instances[1].mysql.as_mut().unwrap().all_writes_refused = false;
        assert_eq!(plan(&v).operation, Some(Operation::MakeReadOnly { ordinal: 1 }));

        let mut v = healthy_view();
        v.instances[2].mysql.as_mut().unwrap().replica = None;
        assert_eq!(plan(&v).operation, Some(Operation::Replicate { ordinal: 2, source: 0 }));

        let mut v = healthy_view();
        v.instances[1].mysql.as_mut().unwrap().replica.as_mut().unwrap().source_host = "127.0.0.99".into();
        assert_eq!(plan(&v).operation, Some(Operation::Replicate { ordinal: 1, source: 0 }), "a moved primary IP");

        let mut v = healthy_view();
        v.instances[0].mysql.as_mut().unwrap().semi_sync_source = false;
        assert_eq!(plan(&v).operation, Some(Operation::SemiSync { ordinal: 0, primary: true, enabled: true }));
    }

    #[test]
    fn a_switchover_target_is_repointed_before_the_switch() {
        let mut v = healthy_view();
        v.spec_primary = 2;
        v.requested_primary = Some(0);
        // Still replicating from a former primary.
        v.instances[2].mysql.as_mut().unwrap().replica.as_mut().unwrap().source_host = "127.0.0.99".into();
        let p = plan(&v);
        assert_eq!(p.operation, Some(Operation::Replicate { ordinal: 2, source: 0 }), "{p:?}");
        v.instances[2].mysql.as_mut().unwrap().replica.as_mut().unwrap().source_host = ip(0);
        assert_eq!(plan(&v).operation, Some(Operation::Switchover { from: 0, to: 2 }));
    }

    #[test]
    fn a_mysql_replica_ahead_of_its_primary_by_the_primarys_own_transactions_is_not_errant() {
        use crate::mysql::Flavor;
        const MYSQL: Flavor = Flavor::MySql { major: 9, minor: 7 };
        const P: &str = "aaaaaaaa-0000-0000-0000-000000000001";
        let mysql = |o: &mut Observed, gtids: &str| {
            o.flavor = MYSQL;
            o.gtids = gtids.into();
            o.gtid_set = GtidSet::parse(MYSQL, gtids).unwrap();
        };
        let mut v = healthy_view();
        let pm = v.instances[0].mysql.as_mut().unwrap();
        mysql(pm, &format!("{P}:1-623"));
        pm.server_uuid = Some(P.into());
        mysql(v.instances[1].mysql.as_mut().unwrap(), &format!("{P}:1-623"));
        // Applied on the replica while the primary waited for its semi-sync ack.
        mysql(v.instances[2].mysql.as_mut().unwrap(), &format!("{P}:1-624"));
        let p = plan(&v);
        assert_eq!((p.state, p.errant.clone()), (State::Healthy, vec![]), "{p:?}");

        // A transaction from any other server is errant.
        mysql(v.instances[2].mysql.as_mut().unwrap(), &format!("{P}:1-623,bbbbbbbb-0000-0000-0000-000000000002:1"));
        assert_eq!(plan(&v).errant, vec![2]);
    }

    #[test]
    fn errant_replica_is_flagged_and_left_alone() {
        let mut v = healthy_view();
        let o = v.instances[2].mysql.as_mut().unwrap();
        *o = replicating(obs(2, true, "0-100-5,1-102-1"), &ip(0));
        (o.read_only, o.all_writes_refused) = (false, false);
        let p = plan(&v);
        assert_eq!(p.state, State::Errant);
        assert_eq!(p.errant, vec![2]);
        assert_eq!(p.operation, None, "an errant instance is never touched");
    }

    #[test]
    fn purged_binlogs_are_reported_not_retried() {
        let mut v = healthy_view();
        let r = v.instances[2].mysql.as_mut().unwrap().replica.as_mut().unwrap();
        r.io_running = false;
        r.io_errno = 1236;
        let p = plan(&v);
        assert_eq!(p.unseedable, vec![2]);
        assert_eq!(p.operation, None);
        assert_eq!(p.state, State::Degraded);
    }

    #[test]
    fn switchover_when_spec_primary_changes() {
        let mut v = healthy_view();
        v.spec_primary = 1;
        let p = plan(&v);
        assert_eq!(p.state, State::Switching);
        assert_eq!(p.operation, Some(Operation::Switchover { from: 0, to: 1 }));
    }

    #[test]
    fn no_switch_back_after_failover() {
        // spec.primary still says 0, but 1 became primary by failover.
        let mut v = healthy_view();
        v.primary = Some(1);
        v.requested_primary = Some(0);
        let mut p1 = obs(1, false, "0-100-5,0-101-9");
        p1.semi_sync_source = true;
        v.instances[1].mysql = Some(p1);
        v.instances[0].mysql = Some(replicating(obs(0, true, "0-100-5"), &ip(1)));
        v.instances[2].mysql = Some(replicating(obs(2, true, "0-100-5,0-101-9"), &ip(1)));
        let p = plan(&v);
        assert_eq!(p.operation, None, "{p:?}");
        assert_eq!(p.state, State::Healthy);
    }

    #[test]
    fn scale_in_moves_the_primary_first() {
        let mut v = healthy_view();
        v.primary = Some(2);
        v.instances[2].mysql = Some(obs(2, false, "0-102-7"));
        v.instances[0].mysql = Some(replicating(obs(0, true, "0-102-7"), &ip(2)));
        v.instances[1].mysql = Some(replicating(obs(1, true, "0-102-7"), &ip(2)));
        v.replicas = 2;
        v.spec_primary = 0;
        v.requested_primary = Some(0);
        assert_eq!(plan(&v).operation, Some(Operation::Switchover { from: 2, to: 0 }));
    }

    #[test]
    fn failover_after_the_delay() {
        let mut v = healthy_view();
        v.instances[0].mysql = None;
        let p = plan(&v);
        assert_eq!(p.state, State::Failed);
        assert_eq!(p.operation, None);
        assert_eq!(p.primary_unreachable_since, Some(v.now));

        v.primary_unreachable_since = Some("2025-12-31T23:59:49Z".parse().unwrap());
        let p = plan(&v);
        assert_eq!(p.operation, Some(Operation::Failover { from: 0, candidates: vec![1, 2] }));

        v.failover_enabled = false;
        assert_eq!(plan(&v).operation, None);
    }

    #[test]
    fn a_deleting_primary_counts_as_down_and_recovery_clears_the_clock() {
        let mut v = healthy_view();
        v.instances[0].deleting = true;
        assert_eq!(plan(&v).state, State::Failed);
        let mut v = healthy_view();
        v.primary_unreachable_since = Some(v.now);
        assert_eq!(plan(&v).primary_unreachable_since, None);
    }

    #[test]
    fn a_restarted_primary_is_failed_over_at_once() {
        let mut v = healthy_view();
        v.instances[0].mysql.as_mut().unwrap().server_id = 1;
        v.instances[0].mysql.as_mut().unwrap().read_only = true;
        assert_eq!(plan(&v).operation, Some(Operation::Failover { from: 0, candidates: vec![1, 2] }));
        // Alone, or with failover off, it is recovered in place.
        v.failover_enabled = false;
        assert_eq!(plan(&v).operation, Some(Operation::AssignServerId { ordinal: 0, server_id: 100 }));
        v.failover_enabled = true;
        v.replicas = 1;
        v.instances.truncate(1);
        assert_eq!(plan(&v).operation, Some(Operation::AssignServerId { ordinal: 0, server_id: 100 }));
    }

    #[test]
    fn lost_when_nothing_answers() {
        let mut v = healthy_view();
        for i in &mut v.instances {
            i.mysql = None;
        }
        assert_eq!(plan(&v).state, State::Lost);
    }

    #[test]
    fn picks_the_most_advanced_candidate() {
        let s = |g: &str| GtidSet::parse(MARIA, g).unwrap();
        assert_eq!(failover_candidate(&[(1, s("0-100-4")), (2, s("0-100-5"))], 0), Some(2));
        assert_eq!(failover_candidate(&[(1, s("0-100-5")), (2, s("0-100-5"))], 2), Some(2), "ties prefer spec.primary");
        assert_eq!(failover_candidate(&[(2, s("0-100-5")), (1, s("0-100-5"))], 0), Some(1), "then the lowest ordinal");
        assert_eq!(failover_candidate(&[(1, s("0-100-5,1-1-1")), (2, s("0-100-6"))], 0), None, "divergent");
    }
}
