//! The work of one Migration, as a task the controller starts and stops.
//!
//! A loop of passes: each reads the resource, does the work of
//! `status.step` and writes the new status. The task keeps nothing the
//! status does not hold. Killed at any point, the next task resumes from the
//! status (the engine's checkpoint included); a switch attempt that was in
//! flight is undone if it had not yet moved the data source, and finished if
//! it had (`plan::resume`).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use mysql_async::prelude::Queryable;
use tokio_util::sync::CancellationToken;

use super::accounts;
use super::api::{IncrementalMode, Migration, MigrationStatus, Positions, SwitchReport, TableChecksum};
use super::datasource::{self, Place, Publish};
use super::plan::{self, Resume, Step, SubStep};
use super::replica;
use super::scope;
use super::validate::parse_account;
use crate::api::Progress;
use crate::cluster::access::{self, Unavailable};
use crate::k8s::conditions::{self, Desired, FALSE, TRUE, UNKNOWN};
use crate::movement::apply::Until;
use crate::movement::fence::{self, Fenced};
use crate::movement::{
    Checkpoint, ChecksumReport, ColumnMapping, Endpoint, Job, Options, Prepared, TableMapping, TableName, TargetTable,
    prereq,
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

mod replication;
use replication::{cp_applied, replication_problems};
mod switch;

/// Pause between sync passes while nothing else is due.
const IDLE: Duration = Duration::from_millis(500);
/// How often failing pre-flight checks run again (the user may fix the
/// source or the target meanwhile).
const PREFLIGHT_RECHECK: Duration = Duration::from_secs(20);
/// The binary log must be kept at least this long for a migration.
const MIN_BINLOG_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Runs until the migration is terminal, the resource is gone or `stop` fires.
pub async fn run(ctx: Arc<Context>, obj: Migration, stop: CancellationToken) {
    let Some(res) = Tracked::new(ctx, obj, "Migrate") else { return };
    let mut r = Runner { res, stop, engine: None };
    task::run(&mut r).await;
}

/// Why the pre-flight checks hold the migration at Pending.
enum Preflight {
    /// The spec cannot work against these servers as they are.
    Invalid(String),
    /// Something may pass by itself (a server unreachable, no primary yet).
    Waiting(String),
}

/// Takes down the fence of an attempt a stopped task left (the controller's
/// part of a deletion).
pub async fn unfence(ctx: Arc<Context>, obj: Migration, status: MigrationStatus) -> Result<(), WorkError> {
    let Some(mut res) = Tracked::new(ctx, obj, "Migrate") else { return Ok(()) };
    res.status = status;
    let mut r = Runner { res, stop: CancellationToken::new(), engine: None };
    r.unfence().await
}

struct Runner {
    res: Tracked<Migration>,
    stop: CancellationToken,
    /// Rebuilt after any error: it holds connections and loaded schemas.
    engine: Option<Engine>,
}

struct Engine {
    prepared: Arc<Prepared>,
    source: Endpoint,
    source_flavor: Flavor,
    target: Endpoint,
    target_flavor: Flavor,
    /// `@@server_id` of the source the engine reads.
    source_server_id: i64,
}

impl Reported for Runner {
    type Error = WorkError;

    fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    fn record(&mut self, checkpoint: Option<Checkpoint>, progress: Option<Progress>) {
        if let Some(cp) = checkpoint {
            let positions = self.res.status.positions.get_or_insert_with(Positions::default);
            positions.snapshot = cp.snapshot.as_ref().map(|p| p.to_string());
            positions.applied = cp.applied.as_ref().map(|p| p.to_string());
            self.res.status.checkpoint = serde_json::to_value(&cp).ok();
        }
        if progress.is_some() {
            self.res.status.progress = progress;
        }
    }

    async fn flush(&mut self) -> Result<(), WorkError> {
        self.res.persist().await
    }
}

impl task::Passes for Runner {
    const KIND: &'static str = "Migration";

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
        self.engine = None;
    }

    async fn pass(&mut self) -> Result<Flow, WorkError> {
        Runner::pass(self).await
    }

    async fn fail(&mut self, e: &WorkError) {
        Runner::fail(self, e).await
    }
}

impl Runner {
    fn step(&self) -> Step {
        Step::parse(self.res.status.step.as_deref())
    }

    fn tables(&self) -> Vec<TableName> {
        self.res.status.tables.iter().filter_map(|t| TableName::parse(t)).collect()
    }

    fn users(&self) -> Vec<String> {
        self.res.obj.spec.accounts.users.clone()
    }

    fn replication(&self) -> bool {
        self.res.obj.spec.incremental.mode == IncrementalMode::Replication
    }

    /// The target's replication connection (replication mode).
    fn channel(&self) -> String {
        replica::connection_name(task::reader_server_id(&self.res.obj.uid().unwrap_or_default()))
    }

    fn switch(&mut self) -> &mut SwitchReport {
        self.res.status.switch.get_or_insert_with(SwitchReport::default)
    }

    async fn enter(&mut self, step: Step, message: String) -> Result<(), WorkError> {
        self.res.enter(step.as_str(), message).await
    }

    async fn pass(&mut self) -> Result<Flow, WorkError> {
        if let Live::Gone = self.res.refresh().await? {
            // Deleted: an attempt that had fenced the source but not moved
            // the data source must not leave the source fenced.
            if plan::resume(&self.res.status) == Resume::Undo {
                self.unfence().await?;
            }
            return Ok(Flow::Done);
        }
        if self.res.obj.spec.cancel {
            return self.cancel().await;
        }
        match self.step() {
            Step::Pending => self.preflight().await,
            Step::SeedCopy => self.seed_copy().await,
            Step::Incremental => self.incremental().await,
            Step::Accounts => self.accounts().await,
            Step::ReadyToComplete | Step::Postponed => self.sync_and_switch().await,
            Step::Switching => match plan::resume(&self.res.status) {
                Resume::RollForward(from) => self.roll_forward(from).await,
                Resume::Undo | Resume::Nothing => {
                    self.unfence().await?;
                    self.failed_attempt("interrupted (operator restarted); the source was unfenced".into()).await?;
                    Ok(Flow::Continue)
                }
            },
            Step::Complete | Step::Cancelled | Step::Failed => Ok(Flow::Done),
        }
    }

    async fn cancel(&mut self) -> Result<Flow, WorkError> {
        if let Resume::RollForward(_) = plan::resume(&self.res.status) {
            // The data source has moved: cancelling now would split the
            // applications between two servers. The switch finishes.
            self.res
                .event(
                    EventType::Warning,
                    "CancelIgnored",
                    "the data source already points at the target; the switch finishes".into(),
                )
                .await;
            let from = SubStep::parse(self.res.status.switch.as_ref().and_then(|s| s.sub_step.as_deref()));
            return self.roll_forward(from.unwrap_or(SubStep::SwitchDataSource)).await;
        }
        if self.step() == Step::Switching {
            self.unfence().await?;
        }
        if self.replication() {
            self.remove_replica().await?;
        }
        let message = "cancelled by spec.cancel; the source is untouched, data copied to the target stays";
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

    /// The source, as an engine endpoint.
    async fn source(&self) -> Result<Endpoint, WorkError> {
        let spec = &self.res.obj.spec.source;
        if let Some(cluster) = &spec.cluster {
            return Ok(access::primary(&self.res.ctx.client, &self.res.namespace(), cluster).await?);
        }
        let ext = spec.external.as_ref().ok_or_else(|| WorkError::Invalid("spec.source is missing".into()))?;
        let (client, ns) = (&self.res.ctx.client, self.res.namespace());
        let user = access::secret_key(client, &ns, &ext.credentials_secret, "username").await?;
        let password = access::secret_key(client, &ns, &ext.credentials_secret, "password").await?;
        let mut source = access::endpoint("source", &ext.host, ext.port.clamp(1, 65535) as u16, &user, &password);
        source.name = format!("source {}:{}", ext.host, ext.port);
        Ok(source)
    }

    /// A plain session on the target's primary, with its flavor.
    async fn target_session(&self) -> Result<(mysql_async::Conn, Flavor), WorkError> {
        let target = self.target().await?;
        let mut conn = target.connect_raw().await?;
        let flavor = target.flavor(&mut conn).await?;
        Ok((conn, flavor))
    }

    async fn target(&self) -> Result<Endpoint, WorkError> {
        Ok(access::primary(&self.res.ctx.client, &self.res.namespace(), &self.res.obj.spec.target.cluster).await?)
    }

    fn source_place(&self) -> Place {
        let s = &self.res.obj.spec.source;
        match (&s.cluster, &s.external) {
            (Some(c), _) => Place::Cluster(c.clone()),
            (None, Some(e)) => Place::external(&e.host, e.port),
            (None, None) => Place::ExternalHost { host: String::new(), port: 0 },
        }
    }

    fn target_place(&self) -> Place {
        Place::Cluster(self.res.obj.spec.target.cluster.clone())
    }

    /// Checks that touch nothing. While one fails the migration stays
    /// Pending (InvalidSpec, or Waiting for what may pass by itself), and the
    /// checks run again: the user may fix the source or the target.
    async fn preflight(&mut self) -> Result<Flow, WorkError> {
        match self.checks().await {
            Ok(tables) => {
                self.res.status.tables = tables.iter().map(|t| t.to_string()).collect();
                self.res.set(&[Desired::new(SUCCEEDED, UNKNOWN, "InProgress", "copying")]);
                let n = tables.len();
                self.enter(Step::SeedCopy, format!("copying {n} tables from a consistent snapshot")).await?;
                Ok(Flow::Continue)
            }
            Err(blocked) => {
                let (status, reason, message) = match blocked {
                    Preflight::Invalid(problem) => (
                        FALSE,
                        conditions::REASON_INVALID_SPEC,
                        format!("invalid spec: {problem}; nothing was touched"),
                    ),
                    Preflight::Waiting(why) => (UNKNOWN, "Waiting", format!("cannot start yet: {why}")),
                };
                let desired = Desired::new(SUCCEEDED, status, reason, message.clone());
                let news = spec_check::is_news(&self.res.status.conditions, &desired);
                self.res.set(&[desired]);
                self.res.status.step = Some(Step::Pending.as_str().into());
                self.res.persist().await?;
                if news {
                    self.res.event(EventType::Warning, reason, message).await;
                }
                task::idle(&self.stop, PREFLIGHT_RECHECK).await;
                Ok(Flow::Continue)
            }
        }
    }

    /// The moved tables, or what holds the migration back.
    async fn checks(&mut self) -> Result<Vec<TableName>, Preflight> {
        let spec = self.res.obj.spec.clone();
        let outcome = async {
            let source = self.source().await?;
            let target = self.target().await?;
            let mut src = source.connect_raw().await?;
            let mut tgt = target.connect_raw().await?;
            let flavor = source.flavor(&mut src).await?;
            let target_flavor = target.flavor(&mut tgt).await?;
            let mut problems = Vec::new();
            let missing = scope::missing_databases(&mut src, &spec.databases).await?;
            if !missing.is_empty() {
                problems.push(format!("the source has no database {}", missing.join(", ")));
            }
            let tables = scope::resolve(&mut src, &spec.databases, spec.tables.as_ref()).await?;
            if tables.is_empty() && missing.is_empty() {
                problems.push("no table of spec.databases passes spec.tables".into());
            }
            for t in scope::uncopyable(&mut src, &tables).await? {
                problems.push(format!("{t}; exclude it with spec.tables.exclude"));
            }
            let acting = scope::acting_foreign_keys(&mut src, &tables).await?;
            if !acting.is_empty() {
                problems.push(format!(
                    "foreign keys with cascading actions cannot be moved exactly (their changes are not in the binary log): {}",
                    acting.join(", ")
                ));
            }
            let triggered = scope::triggered(&mut src, &tables).await?;
            if !triggered.is_empty() {
                problems.push(format!(
                    "tables with triggers cannot be moved exactly (the target would not run them): {}; exclude them \
                     with spec.tables.exclude",
                    triggered.join(", ")
                ));
            }
            let behind = scope::left_behind(&mut src, &tables).await?;
            if !behind.is_empty() {
                problems.push(format!(
                    "tables that stay on the source depend on moved ones: {}; move them together or not at all",
                    behind.join(", ")
                ));
            }
            let conflicts = scope::conflicts(&mut tgt, &tables).await?;
            if !conflicts.is_empty() {
                problems.push(format!("the target already holds {}", conflicts.join(", ")));
            }
            match prereq::verify(&mut src, &source.name, flavor, MIN_BINLOG_RETENTION).await {
                Ok(()) => {}
                Err(e) if e.is_permanent() => problems.push(format!("binlog mode needs {e}")),
                Err(e) => return Err(e.into()),
            }
            if spec.incremental.mode == IncrementalMode::Replication {
                problems.extend(replication_problems(&mut src, flavor, &mut tgt, target_flavor).await?);
            }
            let server_id = Some(source::identify(&mut src).await?.server_id);
            let _ = src.disconnect().await;
            let _ = tgt.disconnect().await;
            Ok::<_, WorkError>((tables, problems, server_id))
        }
        .await;
        match outcome {
            Ok((tables, problems, server_id)) if problems.is_empty() => {
                self.res.status.source_server_id = server_id;
                Ok(tables)
            }
            Ok((_, problems, _)) => Err(Preflight::Invalid(problems.join("; "))),
            Err(WorkError::Unavailable(u @ (Unavailable::NoCluster(_) | Unavailable::Credentials { .. }))) => {
                Err(Preflight::Invalid(u.to_string()))
            }
            // Not the spec's fault (a server down or unreachable, a primary
            // not elected yet): say so, and wait.
            Err(e) => Err(Preflight::Waiting(e.to_string())),
        }
    }

    /// The engine for this migration, built once per task.
    async fn engine(&mut self) -> Result<&Engine, WorkError> {
        if self.engine.is_none() {
            let source = self.source().await?;
            let target = self.target().await?;
            let mut src = source.connect_raw().await?;
            let source_flavor = source.flavor(&mut src).await?;
            let source_server_id = source::identify(&mut src).await?.server_id;
            let mut tgt = target.connect_raw().await?;
            let target_flavor = target.flavor(&mut tgt).await?;
            let _ = src.disconnect().await;
            let _ = tgt.disconnect().await;
            let tables = self
                .tables()
                .into_iter()
                .map(|t| TableMapping {
                    source: t.clone(),
                    targets: vec![TargetTable { endpoint: 0, table: t }],
                    columns: ColumnMapping::SameNames,
                    router: None,
                })
                .collect();
            let job = Job {
                source: source.clone(),
                targets: vec![target.clone()],
                tables,
                options: Options {
                    throttle: self.res.obj.spec.throttle.clone(),
                    server_id: task::reader_server_id(&self.res.obj.uid().unwrap_or_default()),
                    min_binlog_retention: MIN_BINLOG_RETENTION,
                    owns_targets: true,
                    ..Options::default()
                },
            };
            let prepared = job.prepare().await?;
            self.engine = Some(Engine {
                prepared: Arc::new(prepared),
                source,
                source_flavor,
                target,
                target_flavor,
                source_server_id,
            });
        }
        Ok(self.engine.as_ref().expect("engine was just built"))
    }

    /// Binary log positions belong to one server ([`source`]). If the source
    /// cluster switched or failed over, the copy starts again on the new
    /// primary (the target's tables are emptied first). False when that
    /// restart began. An engine whose source or target is no longer its
    /// cluster's primary is rebuilt first: a switchover leaves the old
    /// primary up, so the engine's connections do not break on their own.
    async fn same_source(&mut self) -> Result<bool, WorkError> {
        let (live_source, live_target) = (self.source().await?, self.target().await?);
        if self.engine.as_ref().is_some_and(|e| {
            !source::same_address(&e.source, &live_source) || !source::same_address(&e.target, &live_target)
        }) {
            self.engine = None;
        }
        let now = self.engine().await?.source_server_id;
        match source::judge(self.res.status.source_server_id, now) {
            Source::Moved { was, now } => {
                // The target's tables are the migration's own: the copy
                // empties them first.
                self.engine = None;
                self.res.status.checkpoint = None;
                self.res.status.progress = None;
                self.res.status.positions = None;
                self.res.status.checksums.clear();
                self.res.status.source_server_id = Some(now);
                self.res.start_over(was, now, Step::SeedCopy.as_str()).await?;
                Ok(false)
            }
            Source::First(now) => {
                self.res.status.source_server_id = Some(now);
                Ok(true)
            }
            Source::Same => Ok(true),
        }
    }

    async fn resume(&mut self) -> Result<Option<(Checkpoint, Arc<Prepared>)>, WorkError> {
        if !self.same_source().await? {
            return Ok(None);
        }
        let cp = task::checkpoint_from(self.res.status.checkpoint.as_ref()).map_err(WorkError::Inconsistent)?;
        Ok(Some((cp, self.engine().await?.prepared.clone())))
    }

    /// Sessions for creating the moved tables on the target: a plain one
    /// on the source, and one on the target in the engine's session, whose
    /// sql_mode accepts whatever the source's definitions hold (zero dates).
    async fn ddl_sessions(&self) -> Result<(mysql_async::Conn, mysql_async::Conn), WorkError> {
        let src = self.source().await?.connect_raw().await?;
        let tgt = self.target().await?.connect().await?;
        Ok((src, tgt))
    }

    async fn seed_copy(&mut self) -> Result<Flow, WorkError> {
        let (mut src, mut tgt) = self.ddl_sessions().await?;
        scope::create_on_target(&mut src, &mut tgt, &self.tables()).await?;
        let _ = src.disconnect().await;
        let _ = tgt.disconnect().await;
        let Some((cp, prepared)) = self.resume().await? else { return Ok(Flow::Continue) };
        let (latest, reporter) = task::reporter();
        let Some(cp) = task::drive(self, &latest, prepared.copy(cp, &reporter)).await? else { return Ok(Flow::Done) };
        self.record(Some(cp.clone()), None);
        let (mut src, mut tgt) = self.ddl_sessions().await?;
        scope::restore_indexes(&mut src, &mut tgt, &self.tables()).await?;
        let _ = src.disconnect().await;
        let _ = tgt.disconnect().await;
        let rows = cp.rows_copied();
        self.enter(Step::Incremental, format!("{rows} rows copied; applying changes from the binary log")).await?;
        Ok(Flow::Continue)
    }

    /// Catches up once and compares every table at a consistent point, so a
    /// problem shows long before the switch.
    async fn incremental(&mut self) -> Result<Flow, WorkError> {
        if self.replication() && self.replica_state().await?.is_some() {
            // The hand-over happened before a restart: the target applies
            // the changes now, and the engine must not apply them again.
            self.enter(Step::Accounts, "replicating; copying accounts".into()).await?;
            return Ok(Flow::Continue);
        }
        let Some((cp, prepared)) = self.resume().await? else { return Ok(Flow::Continue) };
        let (latest, reporter) = task::reporter();
        let Some(cp) = task::drive(self, &latest, prepared.apply(cp, Until::CaughtUp, &reporter)).await? else {
            return Ok(Flow::Done);
        };
        let Some((cp, report)) = task::drive(self, &latest, prepared.verify(cp, &reporter)).await? else {
            return Ok(Flow::Done);
        };
        self.record(Some(cp), None);
        self.res.status.checksums = checksums(&report);
        if !report.is_equal() {
            return Err(WorkError::Inconsistent(format!(
                "the target differs from the source: {}",
                report.differences()
            )));
        }
        let rows = report.rows();
        if self.replication() {
            let from = cp_applied(&self.res.status)?;
            self.start_replica(&from).await?;
        }
        self.enter(Step::Accounts, format!("in sync; checksum passed over {rows} rows; copying accounts")).await?;
        Ok(Flow::Continue)
    }

    async fn accounts(&mut self) -> Result<Flow, WorkError> {
        let engine = self.engine().await?;
        let (source, sf, target, tf) =
            (engine.source.clone(), engine.source_flavor, engine.target.clone(), engine.target_flavor);
        let mut src = source.connect_raw().await?;
        let mut tgt = target.connect_raw().await?;
        let users = self.users();
        let outcome = accounts::copy(&mut src, sf, &mut tgt, tf, &users, &self.res.obj.spec.databases)
            .await
            .doing(|| "copying accounts".into())?;
        let _ = src.disconnect().await;
        let _ = tgt.disconnect().await;
        if !outcome.unsupported.is_empty() {
            let list: Vec<String> = outcome.unsupported.iter().map(|u| format!("{}: {}", u.name, u.reason)).collect();
            self.res.event(EventType::Warning, "AccountsNotMoved", list.join("; ")).await;
        }
        let moved = outcome.migrated.len();
        let grants = outcome.diff.len();
        self.res.status.accounts = Some(outcome);
        // Applications can find the data through the data source from now
        // on; it points at the source until the switch.
        if let Some(ds) = self.res.obj.spec.switch.data_source.clone() {
            let current = match &ds.config_map {
                Some(cm) => datasource::current_generation(&self.res.ctx.client, &self.res.namespace(), cm).await?,
                None => 0,
            };
            let place = self.source_place();
            self.publish(current.max(1), &place).await?;
        }
        self.enter(Step::ReadyToComplete, format!("{moved} accounts in place ({grants} grants added); in sync"))
            .await?;
        Ok(Flow::Continue)
    }

    async fn publish(&self, generation: i64, place: &Place) -> Result<(), WorkError> {
        let Some(ds) = &self.res.obj.spec.switch.data_source else { return Ok(()) };
        let name = self.res.name();
        Publish {
            namespace: &self.res.namespace(),
            migration: &name,
            service: ds.service.as_deref(),
            config_map: ds.config_map.as_deref(),
            databases: &self.res.obj.spec.databases,
            generation,
        }
        .to(&self.res.ctx.client, place)
        .await
    }

    async fn sync_and_switch(&mut self) -> Result<Flow, WorkError> {
        let lag = if self.replication() {
            self.replica_lag().await?
        } else {
            let Some((cp, prepared)) = self.resume().await? else { return Ok(Flow::Continue) };
            let (latest, reporter) = task::reporter();
            let started = tokio::time::Instant::now();
            let Some(cp) = task::drive(self, &latest, prepared.apply(cp, Until::CaughtUp, &reporter)).await? else {
                return Ok(Flow::Done);
            };
            self.record(Some(cp), None);
            // Everything committed when the pass began is applied: the
            // target trails by at most the pass's duration.
            started.elapsed()
        };
        if let Some(p) = self.res.status.progress.as_mut() {
            p.lag_seconds = Some(lag.as_secs() as i64);
        }
        let spec = self.res.obj.spec.clone();
        if attempts::rearm(&spec.switch.attempts, &mut self.switch().record) {
            let message = gate::rearmed_message(&plan::WORDING, &spec.switch.attempts);
            self.res.event(EventType::Normal, plan::WORDING.rearmed, message).await;
        }
        let now = jiff::Timestamp::now();
        let decision = plan::switch(&spec, &self.res.status, lag, now);
        let record = self.switch().record.clone();
        let Some(held) = gate::hold(&decision, &plan::WORDING, &spec.switch.attempts, &record, now, IDLE) else {
            self.res.set(&[Desired::new(READY_TO_COMPLETE, TRUE, "InSync", "in sync with the accounts in place")]);
            return self.attempt().await;
        };
        self.res.hold(&held, Step::ReadyToComplete.as_str()).await?;
        self.idle(held.idle).await;
        Ok(Flow::Continue)
    }

    async fn idle(&self, d: Duration) {
        task::idle(&self.stop, d).await;
    }

    /// A permanent error: the source is left serving, unfenced.
    async fn fail(&mut self, e: &WorkError) {
        if plan::resume(&self.res.status) == Resume::Undo && self.unfence().await.is_err() {
            tracing::warn!("could not unfence the source after a failure");
        }
        if self.replication() && self.remove_replica().await.is_err() {
            tracing::warn!("could not remove the replication connection after a failure");
        }
        let reason = e.reason();
        self.res.status.checkpoint = None;
        self.res.set(&[
            Desired::new(SUCCEEDED, FALSE, reason, format!("{e}; the source is untouched")),
            Desired::new(READY_TO_COMPLETE, FALSE, reason, "the migration failed"),
        ]);
        self.res.status.step = Some(Step::Failed.as_str().into());
        if let Err(pe) = self.res.persist().await {
            tracing::warn!(error = %pe, "could not record the failure");
        }
        self.res.event(EventType::Warning, reason, format!("{e}")).await;
    }
}

fn checksums(report: &ChecksumReport) -> Vec<TableChecksum> {
    report
        .tables
        .iter()
        .map(|t| TableChecksum {
            table: t.table.clone(),
            matched: t.mismatches.is_empty(),
            rows: t.rows as i64,
            differing_keys: t
                .mismatches
                .iter()
                .flat_map(|m| m.missing.iter().chain(&m.extra).chain(&m.changed))
                .take(20)
                .cloned()
                .collect(),
        })
        .collect()
}
