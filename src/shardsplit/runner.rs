//! The work of one ShardSplit, as a task the controller starts and stops.
//!
//! A loop of passes, each doing the work of `status.step` and writing the
//! new status; the task keeps nothing the status does not hold. Two kinds of
//! engine job do the moving:
//! - forward: the old table → the shards, through the row router (copy,
//!   then changes); it runs until dual-write and again after a rollback;
//! - reverse: in dual-write, one job per cluster holding shards, each shard
//!   table → the old table, so the old table stays complete.
//!
//! The switch between them (`switch.rs`) fences, catches up, verifies and
//! flips the routing ConfigMap, with the same fence, checksum and attempts
//! gate as Migration's switch.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::events::EventType;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio_util::sync::CancellationToken;

use super::api::{ShardSplit, ShardStatus, TableRef};
use super::plan::{self, Direction, Resume, Step};
use super::routing::{self, Phase};
use super::validate::resolve_targets;
use crate::api::Progress;
use crate::cluster::access;
use crate::k8s::conditions::{self, Desired, FALSE, TRUE, UNKNOWN};
use crate::movement::apply::Until;
use crate::movement::{
    Checkpoint, ChecksumReport, ColumnMapping, Endpoint, Job, Options, Prepared, TableMapping, TableName, TargetTable,
    prereq, schema,
};
use crate::mysql::Flavor;
use crate::operator::context::Context;
use crate::operator::spec_check;
use crate::work::error::{Doing, WorkError};
use crate::work::source::{self, Source};
use crate::work::task::{self, Flow, Reported};
use crate::work::tracked::{Live, Tracked};
use crate::work::{READY_TO_COMPLETE, SUCCEEDED};
use crate::work::{attempts, gate};

mod checks;
mod switch;

/// Pause between sync passes while nothing else is due.
const IDLE: Duration = Duration::from_millis(500);
const PREFLIGHT_RECHECK: Duration = Duration::from_secs(20);
const MIN_BINLOG_RETENTION: Duration = Duration::from_secs(24 * 3600);

pub async fn run(ctx: Arc<Context>, obj: ShardSplit, stop: CancellationToken) {
    let Some(res) = Tracked::new(ctx, obj, "Split") else { return };
    task::run(&mut Runner::new(res, stop)).await;
}

/// Takes down the fence of an attempt a stopped task left (the controller's
/// part of a deletion).
pub async fn undo(ctx: Arc<Context>, obj: ShardSplit) -> Result<(), WorkError> {
    let Some(res) = Tracked::new(ctx, obj, "Split") else { return Ok(()) };
    let mut r = Runner::new(res, CancellationToken::new());
    match plan::resume(&r.res.status) {
        Resume::Undo(direction) => r.unfence(direction).await,
        _ => Ok(()),
    }
}

struct Runner {
    res: Tracked<ShardSplit>,
    stop: CancellationToken,
    /// Rebuilt after any error: it holds connections and loaded schemas.
    forward: Option<Forward>,
    /// One per `status.reverse` entry, same order.
    reverse: Vec<ReverseJob>,
    /// Which job's checkpoint the engine's reports belong to.
    recording: Recording,
}

#[derive(Clone)]
struct ReverseJob {
    prepared: Arc<Prepared>,
    /// `@@server_id` of the shard cluster's primary the job reads.
    server_id: i64,
}

#[derive(Clone, Copy)]
enum Recording {
    Forward,
    Reverse(usize),
}

struct Forward {
    prepared: Arc<Prepared>,
    /// `@@server_id` of the source primary the job reads.
    server_id: i64,
    /// For each engine target, in router order, the shard number.
    order: Vec<usize>,
}

impl Reported for Runner {
    type Error = WorkError;

    fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    fn record(&mut self, checkpoint: Option<Checkpoint>, progress: Option<Progress>) {
        let value = checkpoint.and_then(|cp| serde_json::to_value(&cp).ok());
        match self.recording {
            Recording::Forward => {
                if value.is_some() {
                    self.res.status.checkpoint = value;
                }
                if progress.is_some() {
                    self.res.status.progress = progress;
                }
            }
            Recording::Reverse(i) => {
                if let (Some(v), Some(r)) = (value, self.res.status.reverse.get_mut(i)) {
                    r.checkpoint = Some(v);
                }
            }
        }
    }

    async fn flush(&mut self) -> Result<(), WorkError> {
        self.res.persist().await
    }
}

impl task::Passes for Runner {
    const KIND: &'static str = "ShardSplit";

    fn name(&self) -> String {
        self.res.obj.name_any()
    }

    fn step_name(&self) -> &'static str {
        self.step().as_str()
    }

    fn metrics(&self) -> &crate::operator::metrics::Metrics {
        &self.res.ctx.metrics
    }

    fn note(&mut self, status: &'static str, reason: &'static str, message: String) {
        self.res.set(&[Desired::new(SUCCEEDED, status, reason, message)]);
    }

    fn reset(&mut self) {
        self.forward = None;
        self.reverse.clear();
    }

    async fn pass(&mut self) -> Result<Flow, WorkError> {
        Runner::pass(self).await
    }

    async fn fail(&mut self, e: &WorkError) {
        Runner::fail(self, e).await
    }
}

impl Runner {
    fn new(res: Tracked<ShardSplit>, stop: CancellationToken) -> Runner {
        Runner { res, stop, forward: None, reverse: Vec::new(), recording: Recording::Forward }
    }

    fn step(&self) -> Step {
        Step::parse(self.res.status.step.as_deref())
    }

    async fn enter(&mut self, step: Step, message: String) -> Result<(), WorkError> {
        self.res.enter(step.as_str(), message).await
    }

    async fn idle(&self, d: Duration) {
        task::idle(&self.stop, d).await;
    }

    /// The shard tables, shard 0 first.
    fn targets(&self) -> Vec<TableRef> {
        resolve_targets(&self.res.obj.spec).unwrap_or_default()
    }

    fn old_table(&self) -> TableName {
        let s = &self.res.obj.spec.source;
        TableName::new(&s.database, &s.table)
    }

    fn shard_table(t: &TableRef) -> TableName {
        TableName::new(&t.database, &t.table)
    }

    /// The clusters holding shards, each once, in shard order.
    fn shard_clusters(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in self.targets() {
            if !out.contains(&t.cluster) {
                out.push(t.cluster);
            }
        }
        out
    }

    /// The shard tables on `cluster`.
    fn shards_on(&self, cluster: &str) -> Vec<TableName> {
        self.targets().iter().filter(|t| t.cluster == cluster).map(Self::shard_table).collect()
    }

    async fn primary(&self, cluster: &str) -> Result<Endpoint, WorkError> {
        Ok(access::primary(&self.res.ctx.client, &self.res.namespace(), cluster).await?)
    }

    /// A plain session on `cluster`'s primary, with its flavor.
    async fn session(&self, cluster: &str) -> Result<(Conn, Flavor), WorkError> {
        let ep = self.primary(cluster).await?;
        let mut conn = ep.connect_raw().await?;
        let flavor = ep.flavor(&mut conn).await?;
        Ok((conn, flavor))
    }

    fn uid(&self) -> String {
        self.res.obj.uid().unwrap_or_default()
    }

    async fn publish(&mut self, phase: Phase) -> Result<(), WorkError> {
        let spec = self.res.obj.spec.clone();
        let generation = routing::publish(
            &self.res.ctx.client,
            &self.res.namespace(),
            &spec.routing.config_map,
            &self.res.name(),
            &spec,
            &self.targets(),
            phase,
        )
        .await?;
        self.res.status.routing = Some(super::api::RoutingStatus { phase: phase.as_str().into(), generation });
        Ok(())
    }

    async fn pass(&mut self) -> Result<Flow, WorkError> {
        if let Live::Gone = self.res.refresh().await? {
            if let Resume::Undo(direction) = plan::resume(&self.res.status) {
                self.unfence(direction).await?;
            }
            return Ok(Flow::Done);
        }
        if self.res.obj.spec.cancel && !self.step().is_terminal() {
            if plan::cancellable(self.step(), plan::resume(&self.res.status)) {
                return self.cancel().await;
            }
            self.cancel_ignored().await?;
        }
        match self.step() {
            Step::Pending => self.preflight().await,
            Step::CreatingShards => self.create_shards().await,
            Step::Copying => self.copy().await,
            Step::Syncing => self.syncing().await,
            Step::ReadyToComplete | Step::Postponed | Step::RolledBack => self.forward_sync_and_gate().await,
            Step::DualWrite => self.dual_write().await,
            Step::Switching | Step::RollingBack => match plan::resume(&self.res.status) {
                Resume::RollForward(direction, from) => self.roll_forward(direction, from).await,
                Resume::Undo(direction) => {
                    self.unfence(direction).await?;
                    self.failed_attempt(direction, "interrupted (operator restarted); unfenced".into()).await?;
                    Ok(Flow::Continue)
                }
                Resume::Nothing => Ok(Flow::Continue),
            },
            Step::Retiring => self.retire().await,
            Step::Complete | Step::Cancelled | Step::Failed => Ok(Flow::Done),
        }
    }

    /// Applications may be on the shards: cancelling would strand them.
    /// The split carries on; the user rolls back first.
    async fn cancel_ignored(&mut self) -> Result<(), WorkError> {
        let message = "applications may be writing to the shards: roll back (spec.rollback) before cancelling";
        let desired = Desired::new(SUCCEEDED, UNKNOWN, "CancelIgnored", message);
        if spec_check::is_news(&self.res.status.conditions, &desired) {
            self.res.event(EventType::Warning, "CancelIgnored", message.into()).await;
        }
        self.res.set(&[desired]);
        Ok(())
    }

    async fn cancel(&mut self) -> Result<Flow, WorkError> {
        // Back to where it began: nobody fenced. The old table may be
        // fenced by an attempt being undone, the shards after a rollback.
        if matches!(self.step(), Step::Switching | Step::ReadyToComplete | Step::Postponed | Step::RolledBack) {
            self.unfence(Direction::DualWrite).await?;
            self.unfence(Direction::Source).await?;
        }
        let message = "cancelled by spec.cancel; the old table serves as before, the shard tables stay for inspection";
        self.res.set(&[
            Desired::new(SUCCEEDED, FALSE, "Cancelled", message),
            Desired::new(READY_TO_COMPLETE, FALSE, "Cancelled", "cancelled"),
        ]);
        if let Some(s) = self.res.status.switch.as_mut() {
            s.sub_step = None;
        }
        self.res.status.checkpoint = None;
        self.enter(Step::Cancelled, message.into()).await?;
        Ok(Flow::Done)
    }

    async fn preflight(&mut self) -> Result<Flow, WorkError> {
        match self.checks().await {
            Ok(()) => {
                self.publish(Phase::Source).await?;
                self.res.set(&[Desired::new(SUCCEEDED, UNKNOWN, "InProgress", "creating the shard tables")]);
                let n = self.targets().len();
                self.enter(Step::CreatingShards, format!("creating {n} shard tables")).await?;
                Ok(Flow::Continue)
            }
            Err(checks::Preflight::Invalid(problem)) => {
                self.hold(
                    FALSE,
                    conditions::REASON_INVALID_SPEC,
                    format!("invalid spec: {problem}; nothing was touched"),
                )
                .await
            }
            Err(checks::Preflight::Waiting(why)) => {
                self.hold(UNKNOWN, "Waiting", format!("cannot start yet: {why}")).await
            }
        }
    }

    /// Stays Pending, says why (an Event when the reason is new), and
    /// checks again later: the user may fix the table or the spec.
    async fn hold(&mut self, status: &'static str, reason: &'static str, message: String) -> Result<Flow, WorkError> {
        let desired = Desired::new(SUCCEEDED, status, reason, message.clone());
        let news = spec_check::is_news(&self.res.status.conditions, &desired);
        self.res.set(&[desired]);
        self.res.status.step = Some(Step::Pending.as_str().into());
        self.res.persist().await?;
        if news {
            self.res.event(EventType::Warning, reason, message).await;
        }
        self.idle(PREFLIGHT_RECHECK).await;
        Ok(Flow::Continue)
    }

    /// Creates the shard tables from the old table's definition. Foreign
    /// keys were refused before, so the definition carries no constraint
    /// names that would clash between shards of one schema.
    async fn create_shards(&mut self) -> Result<Flow, WorkError> {
        let old = self.old_table();
        let ddl = self.old_definition().await?;
        for t in self.targets() {
            let shard = Self::shard_table(&t);
            let create = schema::create_statement(&shard, &ddl)
                .ok_or_else(|| WorkError::Inconsistent(format!("cannot read the definition of {old}")))?;
            // The engine's session: its sql_mode accepts whatever the old
            // table's definition holds (zero-date defaults, say).
            let mut conn = self.primary(&t.cluster).await?.connect().await?;
            conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", crate::mysql::sql::quote_ident(&shard.schema)))
                .await
                .doing(|| format!("creating database {}", shard.schema))?;
            conn.query_drop(create).await.doing(|| format!("creating {shard} on {}", t.cluster))?;
            // Filled faster without their secondary indexes, built once after
            // the copy. The shards are still empty in this step, so deferring
            // again after a restart is safe.
            crate::movement::indexes::defer_indexes(&mut conn, &shard).await?;
            let _ = conn.disconnect().await;
        }
        self.res.set(&[Desired::new(SUCCEEDED, UNKNOWN, "InProgress", "copying")]);
        self.enter(Step::Copying, "copying rows into the shards from a consistent snapshot".into()).await?;
        Ok(Flow::Continue)
    }

    /// The forward job, built once per task.
    async fn forward(&mut self) -> Result<&Forward, WorkError> {
        if self.forward.is_none() {
            let spec = self.res.obj.spec.clone();
            let (router, order) = plan::router(&spec).map_err(WorkError::Invalid)?;
            let targets = self.targets();
            let clusters = self.shard_clusters();
            let mut endpoints = Vec::new();
            for c in &clusters {
                endpoints.push(self.primary(c).await?);
            }
            let mapping = TableMapping {
                source: self.old_table(),
                targets: order
                    .iter()
                    .map(|&shard| {
                        let t = &targets[shard];
                        let endpoint = clusters.iter().position(|c| *c == t.cluster).unwrap_or(0);
                        TargetTable { endpoint, table: Self::shard_table(t) }
                    })
                    .collect(),
                columns: ColumnMapping::SameNames,
                router: Some(router),
            };
            let job = Job {
                source: self.primary(&spec.source.cluster).await?,
                targets: endpoints,
                tables: vec![mapping],
                options: Options {
                    throttle: spec.throttle.clone(),
                    server_id: task::reader_server_id(&self.uid()),
                    min_binlog_retention: MIN_BINLOG_RETENTION,
                    // The shard tables were made for the split and checked
                    // empty; the reverse sync's target (the old table) is not.
                    owns_targets: true,
                    ..Options::default()
                },
            };
            let server_id = source::identify_at(&job.source).await?.server_id;
            self.forward = Some(Forward { prepared: Arc::new(job.prepare().await?), order, server_id });
        }
        Ok(self.forward.as_ref().expect("just built"))
    }

    /// The reverse job reading `status.reverse[i]`'s cluster.
    async fn reverse(&mut self, i: usize) -> Result<ReverseJob, WorkError> {
        if self.reverse.len() != self.res.status.reverse.len() {
            self.reverse.clear();
            for j in 0..self.res.status.reverse.len() {
                let cluster = self.res.status.reverse[j].cluster.clone();
                let old = self.old_table();
                let tables = self
                    .shards_on(&cluster)
                    .into_iter()
                    .map(|shard| TableMapping {
                        source: shard,
                        targets: vec![TargetTable { endpoint: 0, table: old.clone() }],
                        columns: ColumnMapping::SameNames,
                        router: None,
                    })
                    .collect();
                let job = Job {
                    source: self.primary(&cluster).await?,
                    targets: vec![self.primary(&self.res.obj.spec.source.cluster).await?],
                    tables,
                    options: Options {
                        throttle: self.res.obj.spec.throttle.clone(),
                        server_id: task::reader_server_id(&format!("{}/reverse/{cluster}", self.uid())),
                        min_binlog_retention: MIN_BINLOG_RETENTION,
                        ..Options::default()
                    },
                };
                let server_id = source::identify_at(&job.source).await?.server_id;
                self.reverse.push(ReverseJob { prepared: Arc::new(job.prepare().await?), server_id });
            }
        }
        self.reverse.get(i).cloned().ok_or_else(|| WorkError::Inconsistent(format!("no reverse job {i}")))
    }

    /// Whether every endpoint of a built job is still its cluster's primary.
    async fn still_primaries(&self, job: &crate::movement::Job, clusters: &[String]) -> Result<bool, WorkError> {
        let built = std::iter::once(&job.source).chain(job.targets.iter());
        for (endpoint, cluster) in built.zip(clusters) {
            if !source::same_address(endpoint, &self.primary(cluster).await?) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The forward job and its checkpoint, or None when the source's primary
    /// changed and the copy starts over. Binary log positions belong to one
    /// server ([`source`]); a switchover leaves the old primary up, so the
    /// job is rebuilt when any cluster it touches names another primary.
    async fn forward_resume(&mut self) -> Result<Option<(Checkpoint, Arc<Prepared>)>, WorkError> {
        if let Some(f) = &self.forward {
            let mut clusters = vec![self.res.obj.spec.source.cluster.clone()];
            clusters.extend(self.shard_clusters());
            if !self.still_primaries(&f.prepared.job, &clusters).await? {
                self.forward = None;
            }
        }
        let now = self.forward().await?.server_id;
        match source::judge(self.res.status.source_server_id, now) {
            Source::Moved { was, now } if self.step() == Step::RolledBack => Err(WorkError::Inconsistent(format!(
                "the source's primary changed while rolled back (server_id {was} → {now}): the fenced shards can no \
                 longer be kept in sync. The old table serves as before; create a new ShardSplit to split again"
            ))),
            Source::Moved { was, now } => {
                // The shards are the split's own: the copy empties them.
                self.forward = None;
                self.res.status.checkpoint = None;
                self.res.status.progress = None;
                self.res.status.source_server_id = None;
                self.res.start_over(was, now, Step::Copying.as_str()).await?;
                Ok(None)
            }
            Source::First(now) => {
                self.res.status.source_server_id = Some(now);
                Ok(Some((self.forward_checkpoint()?, self.forward().await?.prepared.clone())))
            }
            Source::Same => Ok(Some((self.forward_checkpoint()?, self.forward().await?.prepared.clone()))),
        }
    }

    /// The reverse job of `status.reverse[i]`, checked against the shard
    /// cluster's primary. The old table is not the split's own, so it cannot
    /// be refilled: if that primary changed, dual-write can no longer keep it
    /// complete and the split fails with the shards serving.
    async fn reverse_resume(&mut self, i: usize) -> Result<(Checkpoint, Arc<Prepared>), WorkError> {
        let entry = self
            .res
            .status
            .reverse
            .get(i)
            .cloned()
            .ok_or_else(|| WorkError::Inconsistent(format!("no reverse job {i}")))?;
        if let Some(built) = self.reverse.get(i)
            && !self
                .still_primaries(
                    &built.prepared.job,
                    &[entry.cluster.clone(), self.res.obj.spec.source.cluster.clone()],
                )
                .await?
        {
            self.reverse.clear();
        }
        let ReverseJob { prepared, server_id: now } = self.reverse(i).await?;
        if let Source::Moved { was, now } = source::judge(entry.source_server_id, now) {
            return Err(WorkError::Inconsistent(format!(
                "MySQLCluster {}'s primary changed during dual-write (server_id {was} → {now}): the reverse sync's \
                 positions mean nothing on the new primary, so the old table can no longer be kept complete and a \
                 rollback is not possible. The shards serve as before",
                entry.cluster
            )));
        }
        let cp = task::checkpoint_from(entry.checkpoint.as_ref()).map_err(WorkError::Inconsistent)?;
        Ok((cp, prepared))
    }

    fn forward_checkpoint(&self) -> Result<Checkpoint, WorkError> {
        task::checkpoint_from(self.res.status.checkpoint.as_ref()).map_err(WorkError::Inconsistent)
    }

    async fn copy(&mut self) -> Result<Flow, WorkError> {
        let Some((cp, prepared)) = self.forward_resume().await? else { return Ok(Flow::Continue) };
        self.recording = Recording::Forward;
        let (latest, reporter) = task::reporter();
        let Some(cp) = task::drive(self, &latest, prepared.copy(cp, &reporter)).await? else { return Ok(Flow::Done) };
        self.record(Some(cp.clone()), None);
        self.restore_indexes().await?;
        let rows = cp.rows_copied();
        self.enter(Step::Syncing, format!("{rows} rows copied; applying changes from the binary log")).await?;
        Ok(Flow::Continue)
    }

    /// The old table's `SHOW CREATE TABLE`: the shards' definition, and the
    /// record of which indexes they were created without.
    async fn old_definition(&self) -> Result<String, WorkError> {
        let old = self.old_table();
        let (mut src, _) = self.session(&self.res.obj.spec.source.cluster).await?;
        let ddl: Option<(String, String)> =
            src.query_first(format!("SHOW CREATE TABLE {}", old.sql())).await.doing(|| format!("reading {old}"))?;
        let _ = src.disconnect().await;
        ddl.map(|(_, d)| d).ok_or_else(|| WorkError::Inconsistent(format!("{old} is gone")))
    }

    /// Builds in every shard the secondary indexes of the old table it
    /// lacks (left out for the copy). The old table's definition is the
    /// record, so nothing about the deferral is kept in status.
    async fn restore_indexes(&mut self) -> Result<(), WorkError> {
        let definition = self.old_definition().await?;
        let defs: Vec<String> =
            crate::movement::indexes::deferrable_indexes(&definition).into_iter().map(|(_, d)| d).collect();
        if defs.is_empty() {
            return Ok(());
        }
        // One index build per shard, all at once: each is a sort of its
        // shard's rows, and the servers have the cores for it.
        let mut sessions = Vec::new();
        for t in self.targets() {
            sessions.push((self.primary(&t.cluster).await?.connect().await?, Self::shard_table(&t)));
        }
        let builds = sessions.into_iter().map(|(mut conn, shard)| {
            let defs = defs.clone();
            async move {
                crate::movement::indexes::restore_indexes(&mut conn, &shard, &defs).await?;
                let _ = conn.disconnect().await;
                Ok::<_, WorkError>(())
            }
        });
        futures::future::try_join_all(builds).await?;
        Ok(())
    }

    /// Catches up once and checksums every shard at a consistent point, so
    /// a problem shows long before the switch.
    async fn syncing(&mut self) -> Result<Flow, WorkError> {
        let Some((cp, prepared)) = self.forward_resume().await? else { return Ok(Flow::Continue) };
        self.recording = Recording::Forward;
        let (latest, reporter) = task::reporter();
        let Some(cp) = task::drive(self, &latest, prepared.apply(cp, Until::CaughtUp, &reporter)).await? else {
            return Ok(Flow::Done);
        };
        let Some((cp, report)) = task::drive(self, &latest, prepared.verify(cp, &reporter)).await? else {
            return Ok(Flow::Done);
        };
        self.record(Some(cp), None);
        self.shard_report(&report);
        if !report.is_equal() {
            return Err(WorkError::Inconsistent(format!(
                "the shards differ from the old table: {}",
                report.differences()
            )));
        }
        let rows = report.rows();
        self.res.set(&[Desired::new(READY_TO_COMPLETE, TRUE, "InSync", "in sync; every shard's checksum passed")]);
        self.enter(Step::ReadyToComplete, format!("in sync; checksum passed over {rows} rows in every shard")).await?;
        Ok(Flow::Continue)
    }

    /// Per-shard rows and checksum results into `status.shards`.
    fn shard_report(&mut self, report: &ChecksumReport) {
        let order = self.forward.as_ref().map(|f| f.order.clone()).unwrap_or_default();
        let targets = self.targets();
        let mut shards: Vec<ShardStatus> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| ShardStatus {
                shard: i as i32,
                target: t.clone(),
                rows_copied: 0,
                checksum_matched: Some(true),
            })
            .collect();
        for t in &report.tables {
            for (k, rows) in t.shard_rows.iter().enumerate() {
                if let Some(s) = order.get(k).and_then(|&shard| shards.get_mut(shard)) {
                    s.rows_copied = *rows as i64;
                }
            }
            for m in &t.mismatches {
                for k in &m.shards {
                    if let Some(s) = order.get(*k).and_then(|&shard| shards.get_mut(shard)) {
                        s.checksum_matched = Some(false);
                    }
                }
            }
        }
        self.res.status.shards = shards;
    }

    /// One forward catch-up; the time it took bounds the lag.
    async fn forward_catch_up(
        &mut self,
        cp: Checkpoint,
        prepared: Arc<Prepared>,
    ) -> Result<Option<Duration>, WorkError> {
        self.recording = Recording::Forward;
        let (latest, reporter) = task::reporter();
        let started = tokio::time::Instant::now();
        let Some(cp) = task::drive(self, &latest, prepared.apply(cp, Until::CaughtUp, &reporter)).await? else {
            return Ok(None);
        };
        self.record(Some(cp), None);
        let lag = started.elapsed();
        if let Some(p) = self.res.status.progress.as_mut() {
            p.lag_seconds = Some(lag.as_secs() as i64);
        }
        Ok(Some(lag))
    }

    /// In sync (ReadyToComplete, Postponed, or RolledBack) and deciding
    /// whether to switch into dual-write.
    async fn forward_sync_and_gate(&mut self) -> Result<Flow, WorkError> {
        let Some((cp, prepared)) = self.forward_resume().await? else { return Ok(Flow::Continue) };
        let Some(lag) = self.forward_catch_up(cp, prepared).await? else { return Ok(Flow::Done) };
        let spec = self.res.obj.spec.clone();
        if self.step() == Step::RolledBack && spec.rollback {
            self.res.set(&[Desired::new(
                READY_TO_COMPLETE,
                TRUE,
                "RolledBack",
                "applications use the old table; the shards are fenced and kept in sync. Set spec.rollback to false to switch again",
            )]);
            self.res.persist().await?;
            self.idle(IDLE).await;
            return Ok(Flow::Continue);
        }
        self.gate(Direction::DualWrite, lag).await
    }

    /// Dual-write: every change the applications make to the shards is
    /// applied to the old table. Rolls back or retires when asked.
    async fn dual_write(&mut self) -> Result<Flow, WorkError> {
        let started = tokio::time::Instant::now();
        for i in 0..self.res.status.reverse.len() {
            let (cp, prepared) = self.reverse_resume(i).await?;
            self.recording = Recording::Reverse(i);
            let (latest, reporter) = task::reporter();
            let Some(cp) = task::drive(self, &latest, prepared.apply(cp, Until::CaughtUp, &reporter)).await? else {
                return Ok(Flow::Done);
            };
            self.record(Some(cp), None);
        }
        self.recording = Recording::Forward;
        let lag = started.elapsed();
        if let Some(p) = self.res.status.progress.as_mut() {
            p.lag_seconds = Some(lag.as_secs() as i64);
        }
        let spec = self.res.obj.spec.clone();
        if spec.rollback {
            return self.gate(Direction::Source, lag).await;
        }
        let since = self.res.status.dual_write_since.as_ref().map(|t| t.0);
        if plan::retire_due(&spec, since, jiff::Timestamp::now()) {
            self.enter(Step::Retiring, "retiring the old table".into()).await?;
            return Ok(Flow::Continue);
        }
        self.res.persist().await?;
        self.idle(IDLE).await;
        Ok(Flow::Continue)
    }

    /// The attempts gate, then an attempt. Attempts count per direction: a
    /// failed rollback does not use up the way forward.
    async fn gate(&mut self, direction: Direction, lag: Duration) -> Result<Flow, WorkError> {
        let spec = self.res.obj.spec.clone();
        let record = self.res.status.switch.get_or_insert_with(Default::default);
        let same_way = Direction::parse(record.direction.as_deref()) == direction;
        if same_way && attempts::rearm(&spec.switch, &mut record.record) {
            let message = gate::rearmed_message(&plan::WORDING, &spec.switch);
            self.res.event(EventType::Normal, plan::WORDING.rearmed, message).await;
        }
        let resting = if direction == Direction::DualWrite && self.step() != Step::RolledBack {
            Step::ReadyToComplete
        } else {
            self.step()
        };
        let now = jiff::Timestamp::now();
        let decision = plan::gate(&spec, &self.res.status, direction, lag, now);
        let record = self.res.status.switch.clone().unwrap_or_default().record;
        let Some(held) = gate::hold(&decision, &plan::WORDING, &spec.switch, &record, now, IDLE) else {
            return self.attempt(direction).await;
        };
        self.res.hold(&held, resting.as_str()).await?;
        self.idle(held.idle).await;
        Ok(Flow::Continue)
    }

    /// A permanent error: whatever applications use is left as it was.
    async fn fail(&mut self, e: &WorkError) {
        if let Resume::Undo(direction) = plan::resume(&self.res.status)
            && self.unfence(direction).await.is_err()
        {
            tracing::warn!("could not unfence after a failure");
        }
        let reason = e.reason();
        let serving = match self.res.status.routing.as_ref().map(|r| r.phase.as_str()) {
            Some("dual-write") => "applications keep using the shards; the old table is no longer kept complete",
            _ => "the old table serves as before",
        };
        self.res.status.checkpoint = None;
        self.res.set(&[
            Desired::new(SUCCEEDED, FALSE, reason, format!("{e}; {serving}")),
            Desired::new(READY_TO_COMPLETE, FALSE, reason, "the split failed"),
        ]);
        self.res.status.step = Some(Step::Failed.as_str().into());
        if let Err(pe) = self.res.persist().await {
            tracing::warn!(error = %pe, "could not record the failure");
        }
        self.res.event(EventType::Warning, reason, format!("{e}")).await;
    }
}
