//! The work of one OnlineDDL, as a task the controller starts and stops.
//!
//! It is a loop of passes. Each pass reads the resource, looks at
//! `status.step`, does that step's work and writes the new status. The task
//! keeps nothing the status does not hold: killed at any point, the next
//! task resumes from the status (the engine's checkpoint included), and an
//! attempt that was under way is settled first (`table::recover`).

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::events::EventType;
use tokio_util::sync::CancellationToken;

use super::api::{OnlineDDL, Strategy};
use super::columns;
use super::cutover::{self, Attempt, Outcome};
use super::plan::{self, Step};
use super::sql;
use super::table::{self, Instant, Recovered};
use super::unique;
use crate::api::Progress;
use crate::cluster::access;
use crate::k8s::conditions::{self, Desired, FALSE, TRUE};
use crate::movement::apply::Until;
use crate::movement::blockers::{self, LockView};
use crate::movement::{
    Checkpoint, ChecksumReport, ColumnMapping, Endpoint, Job, Options, Prepared, TableMapping, TableName, TargetTable,
    schema,
};
use crate::mysql::Flavor;
use crate::operator::context::Context;
use crate::work::error::WorkError;
use crate::work::failpoint;
use crate::work::source::{self, Source};
use crate::work::task::{self, Flow, Reported};
use crate::work::tracked::{Live, Tracked};
use crate::work::{READY_TO_COMPLETE, SUCCEEDED};
use crate::work::{attempts, gate};

/// Pause between sync passes while nothing else is due.
const IDLE: Duration = Duration::from_millis(500);

/// Runs until the change is terminal, the resource is gone or `stop` fires.
pub async fn run(ctx: Arc<Context>, obj: OnlineDDL, stop: CancellationToken) {
    let Some(res) = Tracked::new(ctx, obj, "SchemaChange") else { return };
    let mut r = Runner { res, stop, engine: None };
    task::run(&mut r).await;
}

struct Runner {
    res: Tracked<OnlineDDL>,
    stop: CancellationToken,
    /// Rebuilt after any error: it holds connections and loaded schemas.
    engine: Option<Engine>,
}

struct Engine {
    prepared: Arc<Prepared>,
    endpoint: Endpoint,
    flavor: Flavor,
    lock_view: LockView,
    /// `@@server_id` of the primary the engine reads.
    server_id: i64,
}

impl Reported for Runner {
    type Error = WorkError;

    fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    fn record(&mut self, checkpoint: Option<Checkpoint>, progress: Option<Progress>) {
        if let Some(cp) = checkpoint {
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
    const KIND: &'static str = "OnlineDDL";

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

    fn table(&self) -> TableName {
        TableName::new(&self.res.obj.spec.database, &self.res.obj.spec.table)
    }

    fn shadow(&self) -> TableName {
        TableName::new(&self.res.obj.spec.database, &sql::shadow_name(&self.res.obj.spec.table))
    }

    async fn enter(&mut self, step: Step, message: String) -> Result<(), WorkError> {
        self.res.enter(step.as_str(), message).await
    }

    async fn pass(&mut self) -> Result<Flow, WorkError> {
        // A deletion or a cancel is the controller's to clean up after.
        if let Live::Gone = self.res.refresh().await? {
            return Ok(Flow::Done);
        }
        if self.res.obj.spec.cancel {
            return Ok(Flow::Done);
        }
        match self.step() {
            Step::Pending | Step::Queued => {
                self.enter(Step::Preparing, "preparing the shadow table".into()).await?;
                Ok(Flow::Continue)
            }
            Step::Preparing => self.prepare().await,
            Step::Copying => self.copy().await,
            Step::Verifying => self.verify().await,
            // An instant change held by postponeCompletion has no shadow.
            Step::Postponed if self.res.status.method.as_deref() == Some("instant") => self.prepare().await,
            Step::ReadyToComplete | Step::Postponed | Step::CuttingOver => self.sync_and_cut_over().await,
            Step::Complete | Step::Cancelled | Step::Failed | Step::Invalid => Ok(Flow::Done),
        }
    }

    async fn endpoint(&self) -> Result<Endpoint, WorkError> {
        Ok(access::primary(&self.res.ctx.client, &self.res.namespace(), &self.res.obj.spec.cluster).await?)
    }

    /// A plain session on the cluster's primary.
    async fn connect(&self) -> Result<mysql_async::Conn, WorkError> {
        Ok(self.endpoint().await?.connect_raw().await?)
    }

    /// Validate against the server, create and alter the shadow table, and
    /// take the instant path when it is allowed and possible.
    async fn prepare(&mut self) -> Result<Flow, WorkError> {
        let spec = self.res.obj.spec.clone();
        let (table, shadow) = (self.table(), self.shadow());
        let mut conn = self.connect().await?;
        if !table::exists(&mut conn, &table).await? {
            return Err(WorkError::Invalid(format!("table {table} does not exist")));
        }
        let definition = table::definition_fingerprint(&mut conn, &table).await?;
        // An instant ALTER was under way when the last task stopped: if the
        // table's definition moved since, it was applied.
        if let Some(before) = self.res.status.instant_from.clone()
            && before != definition
        {
            table::drop_table(&mut conn, &shadow).await?;
            return self.completed_instantly(&table).await;
        }
        // postponeCompletion also holds an instant change: the moment the
        // table changes is the user's. Whether it can be instant is probed
        // on an empty copy, so a held change copies nothing.
        if spec.strategy != Strategy::Shadow && spec.postpone_completion {
            let known = self.res.status.method.as_deref() == Some("instant");
            if known || table::instant_capable(&mut conn, &table, &spec.alter).await? {
                self.res.status.method = Some("instant".into());
                self.res.set(&[Desired::new(
                    READY_TO_COMPLETE,
                    TRUE,
                    "Postponed",
                    "the change can be made with ALGORITHM=INSTANT; it waits for spec.postponeCompletion: false",
                )]);
                self.enter(Step::Postponed, "instant ALTER held by spec.postponeCompletion".into()).await?;
                let _ = conn.disconnect().await;
                self.idle(IDLE).await;
                return Ok(Flow::Continue);
            }
        }
        // A table by the shadow's name that this change did not record is
        // someone else's: never dropped, never written.
        if self.res.status.shadow_table.is_none() && table::exists(&mut conn, &shadow).await? {
            return Err(WorkError::Invalid(format!(
                "{shadow} exists and is not this change's shadow table; rename or drop it first"
            )));
        }
        // Recorded before the shadow exists, so a cancel cleans up only what
        // this resource created.
        self.res.status.shadow_table = Some(shadow.table.clone());
        self.res.persist().await?;
        table::prepare_shadow(&mut conn, &table, &shadow, &spec.alter).await?;

        if spec.strategy != Strategy::Shadow {
            let lock_wait = Duration::from_secs(spec.cutover.lock_wait_timeout_seconds.max(1) as u64);
            self.res.status.instant_from = Some(definition);
            self.res.persist().await?;
            let outcome = table::try_instant(&mut conn, &table, &spec.alter, lock_wait).await?;
            if outcome != Instant::Done {
                self.res.status.instant_from = None;
            }
            match outcome {
                Instant::Done => {
                    table::drop_table(&mut conn, &shadow).await?;
                    return self.completed_instantly(&table).await;
                }
                Instant::NotCapable(why) if spec.strategy == Strategy::Instant => {
                    table::drop_table(&mut conn, &shadow).await?;
                    self.res.status.shadow_table = None;
                    return Err(WorkError::Invalid(format!(
                        "strategy instant, but the change cannot be instant: {why}"
                    )));
                }
                Instant::Busy(why) if spec.strategy == Strategy::Instant => {
                    return Err(WorkError::Sql {
                        what: format!("ALTER {table} ALGORITHM=INSTANT waited {} s for the table", lock_wait.as_secs()),
                        source: mysql_async::Error::Other(why.into()),
                    });
                }
                Instant::NotCapable(why) | Instant::Busy(why) => {
                    self.res
                        .event(EventType::Normal, "InstantNotPossible", format!("copying through {shadow}: {why}"))
                        .await;
                }
            }
        }
        if let Err(e) = check_shadow_path(&mut conn, &table, &shadow, &spec.alter).await {
            table::drop_table(&mut conn, &shadow).await?;
            self.res.status.shadow_table = None;
            return Err(e);
        }
        self.res.status.deferred_indexes = crate::movement::indexes::defer_indexes(&mut conn, &shadow).await?;
        self.res.status.method = Some("shadow".into());
        self.res.status.checkpoint = None;
        self.res.status.checksum = None;
        let _ = conn.disconnect().await;
        // The engine's own checks (key, binlog settings) fail the change now,
        // before any copying.
        self.res.status.source_server_id = Some(self.engine().await?.server_id);
        self.enter(Step::Copying, format!("copying {table} into {shadow}")).await?;
        Ok(Flow::Continue)
    }

    async fn completed_instantly(&mut self, table: &TableName) -> Result<Flow, WorkError> {
        self.res.status.shadow_table = None;
        self.res.status.instant_from = None;
        self.res.status.method = Some("instant".into());
        self.res.status.completion_time = Some(conditions::now());
        let message = format!("{table} altered with ALGORITHM=INSTANT: {}", self.res.obj.spec.alter);
        self.res.set(&[Desired::new(SUCCEEDED, TRUE, "CompletedInstantly", message.clone())]);
        self.enter(Step::Complete, message).await?;
        Ok(Flow::Done)
    }

    /// The engine for this change, built once per task.
    async fn engine(&mut self) -> Result<&Engine, WorkError> {
        if self.engine.is_none() {
            let endpoint = self.endpoint().await?;
            let (table, shadow) = (self.table(), self.shadow());
            let mut conn = endpoint.connect_raw().await?;
            let flavor = endpoint.flavor(&mut conn).await?;
            let lock_view = blockers::lock_view(&mut conn, flavor).await?;
            let server_id = source::identify(&mut conn).await?.server_id;
            let original = schema::load(&mut conn, &endpoint.name, &table).await?;
            let target = schema::load(&mut conn, &endpoint.name, &shadow).await?;
            let _ = conn.disconnect().await;
            let renames = columns::renames(&self.res.obj.spec.alter).map_err(WorkError::Invalid)?;
            let names = |s: &schema::TableSchema| s.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
            let (o, t) = (names(&original), names(&target));
            let o: Vec<&str> = o.iter().map(String::as_str).collect();
            let t: Vec<&str> = t.iter().map(String::as_str).collect();
            let pairs = columns::pairs(&o, &t, &renames);
            let job = Job {
                source: endpoint.clone(),
                targets: vec![endpoint.clone()],
                tables: vec![TableMapping {
                    source: table.clone(),
                    targets: vec![TargetTable { endpoint: 0, table: shadow.clone() }],
                    columns: ColumnMapping::Explicit(pairs),
                    router: None,
                }],
                options: Options {
                    // The copy runs inside the server (REPLACE ... SELECT);
                    // two at once contend for the same table and measured
                    // slower than one (bench/onlineddl.sh).
                    workers: 1,
                    owns_targets: true,
                    throttle: self.res.obj.spec.throttle.clone(),
                    server_id: task::reader_server_id(&self.res.obj.uid().unwrap_or_default()),
                    ..Options::default()
                },
            };
            let prepared = job.prepare().await?;
            self.engine = Some(Engine { prepared: Arc::new(prepared), endpoint, flavor, lock_view, server_id });
        }
        Ok(self.engine.as_ref().expect("engine was just built"))
    }

    /// Binary log positions belong to one server ([`source`]). If the cluster
    /// switched or failed over since they were recorded, the shadow
    /// (replicated, so present on the new primary) is refilled from scratch
    /// there. False when that restart began.
    async fn same_source(&mut self) -> Result<bool, WorkError> {
        let live = self.endpoint().await?;
        if self.engine.as_ref().is_some_and(|e| !source::same_address(&e.endpoint, &live)) {
            self.engine = None;
        }
        let now = self.engine().await?.server_id;
        match source::judge(self.res.status.source_server_id, now) {
            Source::Moved { was, now } => {
                self.engine = None;
                self.res.status.checkpoint = None;
                self.res.status.progress = None;
                self.res.status.checksum = None;
                self.res.status.source_server_id = None;
                self.res.start_over(was, now, Step::Preparing.as_str()).await?;
                Ok(false)
            }
            Source::Same => Ok(true),
            Source::First(now) => {
                self.res.status.source_server_id = Some(now);
                Ok(true)
            }
        }
    }

    /// Where an engine phase resumes: the checkpoint and the engine, or None
    /// when the primary changed and the copy starts over.
    async fn resume(&mut self) -> Result<Option<(Checkpoint, Arc<Prepared>)>, WorkError> {
        if !self.same_source().await? {
            return Ok(None);
        }
        let cp = self.checkpoint()?;
        Ok(Some((cp, self.engine().await?.prepared.clone())))
    }

    fn checkpoint(&self) -> Result<Checkpoint, WorkError> {
        task::checkpoint_from(self.res.status.checkpoint.as_ref()).map_err(WorkError::Inconsistent)
    }

    async fn copy(&mut self) -> Result<Flow, WorkError> {
        let Some((cp, prepared)) = self.resume().await? else { return Ok(Flow::Continue) };
        let (latest, reporter) = task::reporter();
        let Some(cp) = task::drive(self, &latest, prepared.copy(cp, &reporter)).await? else { return Ok(Flow::Done) };
        self.res.status.checkpoint = serde_json::to_value(&cp).ok();
        if !self.res.status.deferred_indexes.is_empty() {
            // Before the apply and checksum touch the shadow again.
            let mut conn = self.connect().await?;
            crate::movement::indexes::restore_indexes(&mut conn, &self.shadow(), &self.res.status.deferred_indexes)
                .await?;
            let _ = conn.disconnect().await;
        }
        let rows = cp.rows_copied();
        self.enter(Step::Verifying, format!("{rows} rows copied; catching up and comparing checksums")).await?;
        Ok(Flow::Continue)
    }

    async fn verify(&mut self) -> Result<Flow, WorkError> {
        let Some((cp, prepared)) = self.resume().await? else { return Ok(Flow::Continue) };
        let (latest, reporter) = task::reporter();
        let Some(cp) = task::drive(self, &latest, prepared.apply(cp, Until::CaughtUp, &reporter)).await? else {
            return Ok(Flow::Done);
        };
        let Some((cp, report)) = task::drive(self, &latest, prepared.verify(cp, &reporter)).await? else {
            return Ok(Flow::Done);
        };
        self.res.status.checkpoint = serde_json::to_value(&cp).ok();
        let rows = self.record_checksum(&report)?;
        self.res.set(&[Desired::new(
            READY_TO_COMPLETE,
            TRUE,
            "InSync",
            format!("checksum passed over {rows} rows; applying changes"),
        )]);
        self.enter(Step::ReadyToComplete, format!("checksum passed over {rows} rows; ready to cut over")).await?;
        Ok(Flow::Continue)
    }

    /// `status.checksum` from a comparison; a difference fails the change
    /// (the original is untouched, the shadow goes). Returns the rows
    /// compared.
    fn record_checksum(&mut self, report: &ChecksumReport) -> Result<u64, WorkError> {
        if !report.is_equal() {
            let differences = report.differences();
            self.res.status.checksum = Some(format!("failed at {}: {differences}", report.at));
            return Err(WorkError::Inconsistent(format!("the shadow table differs from the original: {differences}")));
        }
        let rows = report.rows();
        self.res.status.checksum = Some(format!("passed: {rows} rows equal at {}", report.at));
        Ok(rows)
    }

    /// Compares the tables again right before a cut-over attempt (as Spirit
    /// does), not only once at Verifying: a change held for days is cut over
    /// only if the shadow still equals the original now. Then catches up
    /// with what was written meanwhile, so the lock has little left to
    /// apply. None when told to stop.
    async fn checksum_before_cutover(&mut self, cp: Checkpoint) -> Result<Option<Checkpoint>, WorkError> {
        let prepared = self.engine().await?.prepared.clone();
        let (latest, reporter) = task::reporter();
        let Some((cp, report)) = task::drive(self, &latest, prepared.verify(cp, &reporter)).await? else {
            return Ok(None);
        };
        self.res.status.checkpoint = serde_json::to_value(&cp).ok();
        self.record_checksum(&report)?;
        let Some(cp) = task::drive(self, &latest, prepared.apply(cp, Until::CaughtUp, &reporter)).await? else {
            return Ok(None);
        };
        self.res.status.checkpoint = serde_json::to_value(&cp).ok();
        Ok(Some(cp))
    }

    async fn sync_and_cut_over(&mut self) -> Result<Flow, WorkError> {
        if let Some(sentry) = self.res.status.cutover.as_ref().and_then(|c| c.in_flight.clone()) {
            return self.settle(&sentry).await;
        }
        let Some((cp, prepared)) = self.resume().await? else { return Ok(Flow::Continue) };
        let (latest, reporter) = task::reporter();
        let started = tokio::time::Instant::now();
        let Some(cp) = task::drive(self, &latest, prepared.apply(cp, Until::CaughtUp, &reporter)).await? else {
            return Ok(Flow::Done);
        };
        // Everything committed when the pass began is applied: the apply
        // trails by at most the pass's duration.
        let lag = started.elapsed();
        self.res.status.checkpoint = serde_json::to_value(&cp).ok();
        if let Some(p) = self.res.status.progress.as_mut() {
            p.lag_seconds = Some(lag.as_secs() as i64);
        }
        let spec = self.res.obj.spec.clone();
        let mut record = self.res.status.cutover.clone().unwrap_or_default();
        let rearmed = attempts::rearm(&spec.cutover, &mut record.record);
        self.res.status.cutover = Some(record.clone());
        if rearmed {
            let message = gate::rearmed_message(&plan::WORDING, &spec.cutover);
            self.res.event(EventType::Normal, plan::WORDING.rearmed, message).await;
        }
        let now = jiff::Timestamp::now();
        let decision = plan::cutover(&spec, &record, lag, now);
        let Some(held) = gate::hold(&decision, &plan::WORDING, &spec.cutover, &record.record, now, IDLE) else {
            let Some(cp) = self.checksum_before_cutover(cp).await? else { return Ok(Flow::Done) };
            return self.attempt(cp).await;
        };
        self.res.hold(&held, Step::ReadyToComplete.as_str()).await?;
        self.idle(held.idle).await;
        Ok(Flow::Continue)
    }

    async fn idle(&self, d: Duration) {
        task::idle(&self.stop, d).await;
    }

    async fn attempt(&mut self, cp: Checkpoint) -> Result<Flow, WorkError> {
        let spec = self.res.obj.spec.clone();
        let sentry_name = sql::sentry_name(&spec.table, jiff::Timestamp::now().as_second());
        let sentry = TableName::new(&spec.database, &sentry_name);
        let mut record = self.res.status.cutover.clone().unwrap_or_default();
        let n = attempts::begin(&mut record.record);
        record.in_flight = Some(sentry_name.clone());
        self.res.status.cutover = Some(record);
        self.res.set(&[Desired::new(
            READY_TO_COMPLETE,
            TRUE,
            "CuttingOver",
            format!("attempt {n} of {}", spec.cutover.max_attempts),
        )]);
        // The attempt is on record before any lock is taken.
        self.enter(Step::CuttingOver, format!("cut-over attempt {n} of {}", spec.cutover.max_attempts)).await?;

        let (table, shadow) = (self.table(), self.shadow());
        let engine = self.engine().await?;
        let (endpoint, flavor, lock_view, prepared) =
            (engine.endpoint.clone(), engine.flavor, engine.lock_view, engine.prepared.clone());
        let stop = self.stop.clone();
        let a = Attempt {
            endpoint: &endpoint,
            flavor,
            lock_view,
            table: &table,
            shadow: &shadow,
            sentry: &sentry,
            source_server_id: self.res.status.source_server_id,
            lock_wait: Duration::from_secs(spec.cutover.lock_wait_timeout_seconds.max(1) as u64),
            stop: &stop,
        };
        let (_latest, reporter) = task::reporter();
        match cutover::attempt(&a, &prepared, cp, &reporter).await? {
            Outcome::Stopped => Ok(Flow::Done),
            Outcome::Swapped { stall, checkpoint } => {
                self.res.status.checkpoint = serde_json::to_value(&checkpoint).ok();
                self.completed(&sentry_name, Some(stall)).await?;
                Ok(Flow::Done)
            }
            Outcome::Failed { reason, stall, checkpoint } => {
                self.res.status.checkpoint = serde_json::to_value(&checkpoint).ok();
                self.failed_attempt(reason, stall).await?;
                Ok(Flow::Continue)
            }
        }
    }

    async fn failed_attempt(&mut self, reason: String, stall: Option<Duration>) -> Result<(), WorkError> {
        let spec = self.res.obj.spec.clone();
        let mut record = self.res.status.cutover.clone().unwrap_or_default();
        record.in_flight = None;
        attempts::failed(&spec.cutover, &mut record.record, reason.clone(), jiff::Timestamp::now());
        if let Some(s) = stall {
            record.write_stall_millis = Some(record.write_stall_millis.unwrap_or(0).max(s.as_millis() as i64));
        }
        let n = record.record.attempts;
        self.res.status.cutover = Some(record);
        self.res.set(&[Desired::new(
            READY_TO_COMPLETE,
            TRUE,
            "CutoverFailed",
            format!("attempt {n} failed: {reason}"),
        )]);
        self.res.status.step = Some(Step::ReadyToComplete.as_str().into());
        self.res.persist().await?;
        self.res
            .event(
                EventType::Warning,
                "CutoverFailed",
                format!("attempt {n} of {} failed, the table serves as before: {reason}", spec.cutover.max_attempts),
            )
            .await;
        Ok(())
    }

    /// Finishes an attempt a stopped task left under way.
    async fn settle(&mut self, sentry_name: &str) -> Result<Flow, WorkError> {
        let mut conn = self.connect().await?;
        let sentry = TableName::new(&self.res.obj.spec.database, sentry_name);
        let outcome = table::recover(&mut conn, &self.table(), &self.shadow(), &sentry).await?;
        let _ = conn.disconnect().await;
        match outcome {
            Recovered::Swapped => {
                self.completed(sentry_name, None).await?;
                Ok(Flow::Done)
            }
            Recovered::RolledBack => {
                self.failed_attempt("interrupted (operator restarted); the table serves as before".into(), None)
                    .await?;
                Ok(Flow::Continue)
            }
        }
    }

    async fn completed(&mut self, swapped: &str, stall: Option<Duration>) -> Result<(), WorkError> {
        let mut conn = self.connect().await?;
        let old = table::finish_swap(&mut conn, &self.table(), swapped).await?;
        let _ = conn.disconnect().await;
        if let Some(hold) = failpoint::hold("retired-hold-ms") {
            // Test-only: the original has its old-table name, the status
            // does not say so yet; the e2e suite kills the operator here.
            tracing::warn!(?hold, "failpoint: holding after renaming the original");
            tokio::time::sleep(hold).await;
        }
        let old = old.as_str();
        let mut record = self.res.status.cutover.clone().unwrap_or_default();
        record.in_flight = None;
        record.record.next_attempt_time = None;
        if let Some(s) = stall {
            record.write_stall_millis = Some(s.as_millis() as i64);
        }
        self.res.status.cutover = Some(record);
        self.res.status.old_table = Some(old.to_string());
        self.res.status.shadow_table = None;
        self.res.status.checkpoint = None;
        self.res.status.completion_time = Some(conditions::now());
        let stall_note = stall.map(|s| format!("; writers stalled {} ms", s.as_millis())).unwrap_or_default();
        let message = format!(
            "{} swapped in{stall_note}; the original is kept as {old} for {} s",
            self.table(),
            self.res.obj.spec.retain_old_table_seconds
        );
        self.res.set(&[
            Desired::new(SUCCEEDED, TRUE, "Completed", message.clone()),
            Desired::new(READY_TO_COMPLETE, FALSE, "Completed", "the cut-over is done"),
        ]);
        self.enter(Step::Complete, message).await
    }

    /// A permanent error: the original stays as it is, the shadow goes.
    async fn fail(&mut self, e: &WorkError) {
        let reason = e.reason();
        if self.res.status.shadow_table.is_some()
            && let Ok(mut conn) = self.connect().await
            && table::drop_table(&mut conn, &self.shadow()).await.is_ok()
        {
            self.res.status.shadow_table = None;
        }
        self.res.status.checkpoint = None;
        self.res.set(&[
            Desired::new(SUCCEEDED, FALSE, reason, format!("{e}; {} is untouched", self.table())),
            Desired::new(READY_TO_COMPLETE, FALSE, reason, "the change failed"),
        ]);
        self.res.status.step = Some(Step::Failed.as_str().into());
        if let Err(pe) = self.res.persist().await {
            tracing::warn!(error = %pe, "could not record the failure");
        }
        self.res.event(EventType::Warning, reason, format!("{e}")).await;
    }
}

/// What only the shadow path needs: a table a swap cannot break, and no
/// unique key the original does not already enforce.
async fn check_shadow_path(
    conn: &mut mysql_async::Conn,
    table: &TableName,
    shadow: &TableName,
    alter: &str,
) -> Result<(), WorkError> {
    table::check_swappable(conn, table).await?;
    let renames = columns::renames(alter).map_err(WorkError::Invalid)?;
    let original = table::unique_keys(conn, table).await?;
    let added = unique::not_enforced(&original, &table::unique_keys(conn, shadow).await?, &renames);
    if !added.is_empty() {
        return Err(WorkError::Invalid(format!(
            "the change adds or redefines unique key(s) {} (new columns, a column's collation, or a shorter prefix) \
             that {table} does not enforce; copying through a shadow table would silently drop rows that collide on \
             them, where ALTER TABLE would refuse. Deduplicate first, then make that change with a plain ALTER TABLE",
            added.join(", ")
        )));
    }
    Ok(())
}
