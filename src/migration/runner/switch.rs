//! The switch: one attempt, sub-step by sub-step (see `docs/migration.md`).

use super::*;
use crate::k8s::finalizer;
use crate::migration::plan::FENCE_FINALIZER;
use crate::movement::{BinlogPosition, counter};
use crate::work::guard::{self, Guard, Guarded};
use crate::work::{attempts, failpoint};

/// One attempt's guarded part, in Migration's terms: the source is the
/// fenced side, the target (the engine's apply, or the target's own
/// replication) catches up.
struct Attempt<'a> {
    r: &'a mut Runner,
    prepared: Arc<Prepared>,
    /// Read under the fence.
    position: Option<BinlogPosition>,
}

impl Guard for Attempt<'_> {
    fn stop_requested(&self) -> bool {
        self.r.stop.is_cancelled()
    }

    async fn enter(&mut self, step: guard::Step) -> Result<(), WorkError> {
        let sub = match step {
            guard::Step::Fence => SubStep::Fence,
            guard::Step::CatchUp => SubStep::CatchUp,
            guard::Step::Checksum => SubStep::Checksum,
            // Carrying the counters is idempotent and needs no sub-step of
            // its own; the data source moves at the commit.
            guard::Step::Prepare => return Ok(()),
        };
        self.r.at(sub).await
    }

    async fn fence(&mut self) -> Result<Option<String>, WorkError> {
        let spec = self.r.res.obj.spec.clone();
        let source = self.r.source().await?;
        let mut src = source.connect_raw().await?;
        let flavor = source.flavor(&mut src).await?;
        let tables = self.r.tables();
        let message = format!("switchyard: moved to MySQLCluster {}; writes here are refused", spec.target.cluster);
        let fenced_at = jiff::Timestamp::now();
        let outcome = fence::fence(&mut src, flavor, &tables, self.r.lock_wait(), &message).await;
        // The fence position is only good on the server the engine's
        // positions come from, and only if that server still takes writes.
        let refused = match &outcome {
            Ok(Fenced::Yes { .. }) => source::confirm(&mut src, self.r.res.status.source_server_id).await?,
            _ => None,
        };
        let _ = src.disconnect().await;
        if let Some(reason) = refused {
            return Ok(Some(reason));
        }
        match outcome? {
            Fenced::Yes { position } => {
                let s = self.r.switch();
                s.fenced_at = Some(Time(fenced_at));
                s.fence_position = Some(position.to_string());
                self.position = Some(position);
                Ok(None)
            }
            Fenced::Blocked { blockers } => {
                let who = if blockers.is_empty() { "no session found".to_string() } else { blockers.join("; ") };
                Ok(Some(format!(
                    "the moved tables could not be locked within {} s; blocked by {who}",
                    self.r.lock_wait().as_secs()
                )))
            }
        }
    }

    async fn catch_up(&mut self) -> Result<Option<String>, WorkError> {
        let position = self.position.clone().ok_or_else(|| WorkError::Inconsistent("no fence position".into()))?;
        let late = || {
            format!("the target did not reach the fence position {position} within {} s", self.r.lock_wait().as_secs())
        };
        let late = late();
        if self.r.replication() {
            let wait = replica::wait_for_position(
                self.r.engine().await?.target_flavor,
                &self.r.channel(),
                &position,
                self.r.lock_wait(),
            );
            let target = self.r.target().await?;
            let mut tgt = target.connect_raw().await?;
            let reached: Result<Option<Option<i64>>, _> = tgt.query_first(wait).await;
            let _ = tgt.disconnect().await;
            return match reached {
                Ok(Some(Some(n))) if n >= 0 => Ok(None),
                Ok(_) => Ok(Some(late)),
                Err(e) => Err(WorkError::Sql { what: "waiting for the target to replicate".into(), source: e }),
            };
        }
        let cp = task::checkpoint_from(self.r.res.status.checkpoint.as_ref()).map_err(WorkError::Inconsistent)?;
        let (_latest, reporter) = task::reporter();
        let prepared = self.prepared.clone();
        let apply =
            async { prepared.apply(cp, Until::Position(position.clone()), &reporter).await.map_err(WorkError::from) };
        match guard::within(self.r.lock_wait(), apply, || late).await? {
            Ok(cp) => {
                self.r.record(Some(cp), None);
                Ok(None)
            }
            Err(late) => Ok(Some(late)),
        }
    }

    async fn verify(&mut self) -> Result<Option<String>, WorkError> {
        let position = self.position.clone().unwrap_or_default();
        let report = crate::movement::checksum::compare_fenced(&self.prepared, position).await?;
        self.r.res.status.checksums = checksums(&report);
        Ok((!report.is_equal()).then(|| report.differences()))
    }

    /// Under the fence the source's AUTO_INCREMENT counters are final;
    /// the copy moved MAX(id), not the counter, so each target table gets
    /// its source's before applications write there.
    async fn prepare(&mut self) -> Result<(), WorkError> {
        let (source, target) = (self.r.source().await?, self.r.target().await?);
        let mut src = source.connect_raw().await?;
        let mut tgt = target.connect_raw().await?;
        for t in self.r.tables() {
            let n = counter::read(&mut src, &source.name, &t).await?;
            let current = counter::read(&mut tgt, &target.name, &t).await?;
            if let Some(sql) = counter::raise_sql(&t, current, n) {
                tgt.query_drop(sql).await.doing(|| format!("carrying the AUTO_INCREMENT counter of {t}"))?;
            }
        }
        let _ = src.disconnect().await;
        let _ = tgt.disconnect().await;
        Ok(())
    }

    async fn unfence(&mut self) -> Result<(), WorkError> {
        self.r.unfence().await
    }

    async fn failed_attempt(&mut self, reason: String) -> Result<(), WorkError> {
        self.r.failed_attempt(reason).await
    }
}

impl Runner {
    /// Records `sub` as the attempt's place before doing it.
    pub(super) async fn at(&mut self, sub: SubStep) -> Result<(), WorkError> {
        self.switch().sub_step = Some(sub.as_str().into());
        self.res.persist().await?;
        if let Some(hold) = failpoint::hold(&format!("switch-hold:{}", sub.as_str())) {
            tracing::warn!(sub_step = sub.as_str(), ?hold, "failpoint: holding the switch");
            task::idle(&self.stop, hold).await;
        }
        Ok(())
    }

    pub(super) fn lock_wait(&self) -> Duration {
        Duration::from_secs(self.res.obj.spec.switch.attempts.lock_wait_timeout_seconds.max(1) as u64)
    }

    pub(super) async fn attempt(&mut self) -> Result<Flow, WorkError> {
        let spec = self.res.obj.spec.clone();
        let n = {
            let s = self.switch();
            s.sub_step = Some(SubStep::PermissionCheck.as_str().into());
            s.fenced_at = None;
            s.fence_position = None;
            attempts::begin(&mut s.record)
        };
        self.res.set(&[Desired::new(
            READY_TO_COMPLETE,
            TRUE,
            "Switching",
            format!("attempt {n} of {}", spec.switch.attempts.max_attempts),
        )]);
        // The attempt is on record before anything is touched, and the
        // finalizer is in place before the source is fenced: a deletion
        // then waits for the fence to come down.
        self.enter(Step::Switching, format!("switch attempt {n} of {}", spec.switch.attempts.max_attempts)).await?;
        finalizer::ensure(&self.res.api, &self.res.name(), FENCE_FINALIZER, true).await?;

        let engine = self.engine().await?;
        let (source, sf, target, tf, prepared) = (
            engine.source.clone(),
            engine.source_flavor,
            engine.target.clone(),
            engine.target_flavor,
            engine.prepared.clone(),
        );

        // 1. Every migrated account can log in on the target with the same
        // grants.
        let mut src = source.connect_raw().await?;
        let mut tgt = target.connect_raw().await?;
        let problems = accounts::check(&mut src, sf, &mut tgt, tf, &self.users(), &spec.databases)
            .await
            .doing(|| "checking accounts on the target".into())?;
        let _ = tgt.disconnect().await;
        if !problems.is_empty() {
            let _ = src.disconnect().await;
            self.failed_attempt(format!("permission check: {}", problems.join("; "))).await?;
            return Ok(Flow::Continue);
        }
        let _ = src.disconnect().await;

        // 2-4. Fence, catch up, checksum: the guard shared with ShardSplit.
        let mut attempt = Attempt { r: self, prepared, position: None };
        match guard::run(&mut attempt).await? {
            Guarded::Ready => self.roll_forward(SubStep::SwitchDataSource).await,
            Guarded::Failed => Ok(Flow::Continue),
            Guarded::Stopped => Ok(Flow::Done),
        }
    }

    /// Sub-steps from `from` on; each is idempotent, so a restarted task
    /// redoes the one it was in.
    pub(super) async fn roll_forward(&mut self, from: SubStep) -> Result<Flow, WorkError> {
        let spec = self.res.obj.spec.clone();
        let mut sub = from;
        loop {
            self.at(sub).await?;
            match sub {
                SubStep::SwitchDataSource => {
                    let generation = match self.switch().generation {
                        Some(g) => g,
                        None => {
                            let current = match spec.switch.data_source.as_ref().and_then(|d| d.config_map.clone()) {
                                Some(cm) => {
                                    datasource::current_generation(&self.res.ctx.client, &self.res.namespace(), &cm)
                                        .await?
                                }
                                None => 0,
                            };
                            let g = current.max(1) + 1;
                            self.switch().generation = Some(g);
                            self.res.persist().await?;
                            g
                        }
                    };
                    if self.replication() {
                        // The fence's CREATE TRIGGERs replicated into the
                        // target: applications must not meet them there.
                        self.unfence_target().await?;
                    }
                    let (old, new) = (self.source_place(), self.target_place());
                    self.publish(generation, &new).await?;
                    let ns = self.res.namespace().clone();
                    let s = self.switch();
                    s.old_endpoint = Some(old.endpoint(&ns));
                    s.new_endpoint = Some(new.endpoint(&ns));
                    if let Some(at) = &s.fenced_at {
                        s.fenced_millis = Some(jiff::Timestamp::now().duration_since(at.0).as_millis() as i64);
                    }
                }
                SubStep::KillConnections => {
                    if spec.switch.kill_blocked_queries {
                        let source = self.source().await?;
                        let mut src = source.connect_raw().await?;
                        let accounts: Vec<(String, String)> = self
                            .users()
                            .iter()
                            .filter_map(|a| parse_account(a).ok().map(|(u, h)| (u.to_string(), h.to_string())))
                            .collect();
                        let killed = fence::kill_connections(&mut src, &self.tables(), &accounts).await?;
                        let _ = src.disconnect().await;
                        *self.switch().killed_connections.get_or_insert(0) += killed;
                    }
                }
                SubStep::StopIncremental => {
                    // binlog mode: the change stream is this task's; it is
                    // not run again. Closing the engine ends its sessions.
                    self.engine = None;
                    self.res.status.checkpoint = None;
                    if self.replication() {
                        self.remove_replica().await?;
                        // Once more, now that nothing replicates any more.
                        self.unfence_target().await?;
                    }
                }
                SubStep::SourceReadOnly => {
                    let source = self.source().await?;
                    let mut src = source.connect_raw().await?;
                    let tables = self.tables();
                    let missing = fence::unfenced_tables(&mut src, &tables).await?;
                    if !missing.is_empty() {
                        // Someone removed part of the fence: put it back.
                        // The data source has moved, so no lock is needed
                        // to keep the two servers apart any more.
                        let message = format!("switchyard: moved to MySQLCluster {}", spec.target.cluster);
                        for t in tables.iter().filter(|t| missing.contains(&t.to_string())) {
                            for s in fence::create_triggers(t, &message) {
                                src.query_drop(s).await.doing(|| format!("fencing {t}"))?;
                            }
                        }
                    }
                    let _ = src.disconnect().await;
                }
                SubStep::PermissionCheck | SubStep::Fence | SubStep::CatchUp | SubStep::Checksum => {}
            }
            match sub.next() {
                Some(next) => sub = next,
                None => break,
            }
        }
        self.completed().await?;
        Ok(Flow::Done)
    }

    /// Drops the fence triggers that replication carried to the target.
    async fn unfence_target(&mut self) -> Result<(), WorkError> {
        let target = self.target().await?;
        let mut tgt = target.connect_raw().await?;
        let done = fence::unfence(&mut tgt, &self.tables(), self.lock_wait()).await;
        let _ = tgt.disconnect().await;
        Ok(done?)
    }

    pub(super) async fn completed(&mut self) -> Result<(), WorkError> {
        let s = self.switch().clone();
        let rows: i64 = self.res.status.checksums.iter().map(|c| c.rows).sum();
        let message = format!(
            "switched from {} to {}: writes fenced {} ms, checksums equal over {rows} rows in {} tables, {} connections killed; the source refuses writes to the moved tables",
            s.old_endpoint.as_deref().unwrap_or("?"),
            s.new_endpoint.as_deref().unwrap_or("?"),
            s.fenced_millis.unwrap_or(0),
            self.res.status.checksums.len(),
            s.killed_connections.unwrap_or(0),
        );
        {
            let sw = self.switch();
            sw.sub_step = None;
            sw.record.next_attempt_time = None;
        }
        self.res.status.completion_time = Some(conditions::now());
        self.res.set(&[
            Desired::new(SUCCEEDED, TRUE, "Completed", message.clone()),
            Desired::new(READY_TO_COMPLETE, FALSE, "Completed", "the switch is done"),
        ]);
        self.enter(Step::Complete, message).await
    }

    /// Takes the fence down; the source serves writes again.
    pub(super) async fn unfence(&mut self) -> Result<(), WorkError> {
        let tables = self.tables();
        if tables.is_empty() {
            return Ok(());
        }
        let source = self.source().await?;
        let mut src = source.connect_raw().await?;
        fence::unfence(&mut src, &tables, self.lock_wait()).await?;
        let _ = src.disconnect().await;
        let s = self.switch();
        s.fenced_at = None;
        s.fence_position = None;
        Ok(())
    }

    pub(super) async fn failed_attempt(&mut self, reason: String) -> Result<(), WorkError> {
        let spec = self.res.obj.spec.clone();
        let n = {
            let s = self.switch();
            s.sub_step = None;
            attempts::failed(&spec.switch.attempts, &mut s.record, reason.clone(), jiff::Timestamp::now());
            s.record.attempts
        };
        self.res.set(&[Desired::new(READY_TO_COMPLETE, TRUE, "SwitchFailed", format!("attempt {n} failed: {reason}"))]);
        self.res.status.step = Some(Step::ReadyToComplete.as_str().into());
        self.res.persist().await?;
        self.res
            .event(
                EventType::Warning,
                "SwitchFailed",
                format!(
                    "attempt {n} of {} failed, the source serves as before: {reason}",
                    spec.switch.attempts.max_attempts
                ),
            )
            .await;
        Ok(())
    }
}
