//! The guarded switch, both ways, and retirement (see `docs/shard-split.md`).
//!
//! One attempt fences the side applications leave (the old table going
//! into dual-write, the shards on a rollback), brings the other side up to
//! the fence position, compares every shard with the old table, prepares
//! the sync that will run afterwards, and only then flips the routing.
//! Before the flip an attempt is undone; from the flip on it rolls forward.

use super::*;
use crate::api::AttemptRecord;
use crate::k8s::finalizer;
use crate::movement::BinlogPosition;
use crate::movement::fence::{self, Fenced};
use crate::movement::{counter, snapshot};
use crate::mysql::sql::quote as lit;
use crate::shardsplit::api::{AutoIncrementRanges, FencePosition, ReverseSync, SwitchReport};
use crate::shardsplit::plan::SWITCH_FINALIZER;
use crate::shardsplit::plan::SubStep;
use crate::work::guard::{self, Guard, Guarded};
use crate::work::{attempts, failpoint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// An apply-phase checkpoint starting at `at`: the sync that takes over
/// after a flip begins exactly where the fence left the other side.
fn starting_at(at: BinlogPosition) -> Option<serde_json::Value> {
    let cp = Checkpoint { phase: crate::movement::Phase::Apply, applied: Some(at), ..Default::default() };
    serde_json::to_value(cp).ok()
}

/// One attempt's guarded part, in ShardSplit's terms: the fenced side is
/// the old table going forward and the shards going back.
struct Attempt<'a> {
    r: &'a mut Runner,
    direction: Direction,
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
            guard::Step::Prepare => SubStep::Prepare,
        };
        self.r.at(sub).await
    }

    async fn fence(&mut self) -> Result<Option<String>, WorkError> {
        self.r.fence(self.direction).await
    }

    async fn catch_up(&mut self) -> Result<Option<String>, WorkError> {
        let limit = self.r.lock_wait();
        let late = || format!("the other side did not reach the fence position within {} s", limit.as_secs());
        Ok(guard::within(limit, self.r.catch_up_to_fence(self.direction), late).await?.err())
    }

    async fn verify(&mut self) -> Result<Option<String>, WorkError> {
        self.r.verify().await
    }

    async fn prepare(&mut self) -> Result<(), WorkError> {
        self.r.prepare(self.direction).await
    }

    async fn unfence(&mut self) -> Result<(), WorkError> {
        self.r.unfence(self.direction).await
    }

    async fn failed_attempt(&mut self, reason: String) -> Result<(), WorkError> {
        self.r.failed_attempt(self.direction, reason).await
    }
}

impl Runner {
    fn lock_wait(&self) -> Duration {
        Duration::from_secs(self.res.obj.spec.switch.lock_wait_timeout_seconds.max(1) as u64)
    }

    fn report(&mut self) -> &mut SwitchReport {
        self.res.status.switch.get_or_insert_with(SwitchReport::default)
    }

    /// Records `sub` as the attempt's place before doing it.
    async fn at(&mut self, sub: SubStep) -> Result<(), WorkError> {
        self.report().sub_step = Some(sub.as_str().into());
        self.res.persist().await?;
        if let Some(hold) = failpoint::hold(&format!("switch-hold:{}", sub.as_str())) {
            tracing::warn!(sub_step = sub.as_str(), ?hold, "failpoint: holding the switch");
            task::idle(&self.stop, hold).await;
        }
        Ok(())
    }

    /// The tables an attempt in `direction` fences, by cluster.
    fn fenced_side(&self, direction: Direction) -> Vec<(String, Vec<TableName>)> {
        match direction {
            Direction::DualWrite => vec![(self.res.obj.spec.source.cluster.clone(), vec![self.old_table()])],
            Direction::Source => self.shard_clusters().into_iter().map(|c| (c.clone(), self.shards_on(&c))).collect(),
        }
    }

    /// The fence positions of the attempt in flight, by cluster.
    fn fence_positions(&self) -> Vec<(String, BinlogPosition)> {
        let recorded = self.res.status.switch.as_ref().map(|s| s.fence_positions.as_slice()).unwrap_or_default();
        recorded.iter().map(|p| (p.cluster.clone(), BinlogPosition::new(&p.file, p.position.max(0) as u64))).collect()
    }

    pub(super) async fn attempt(&mut self, direction: Direction) -> Result<Flow, WorkError> {
        let spec = self.res.obj.spec.clone();
        let n = {
            let s = self.report();
            if Direction::parse(s.direction.as_deref()) != direction {
                s.record = AttemptRecord { retry: spec.switch.retry, ..Default::default() };
            }
            s.direction = Some(direction.as_str().into());
            s.sub_step = Some(SubStep::Fence.as_str().into());
            s.fenced_at = None;
            s.fence_positions.clear();
            attempts::begin(&mut s.record)
        };
        let what = match direction {
            Direction::DualWrite => "switch into dual-write",
            Direction::Source => "rollback to the old table",
        };
        self.res.set(&[Desired::new(
            READY_TO_COMPLETE,
            TRUE,
            "Switching",
            format!("{what}: attempt {n} of {}", spec.switch.max_attempts),
        )]);
        // On record before anything is touched; the finalizer is in place
        // before the fence, so a deletion takes the fence down first.
        self.enter(direction.attempt_step(), format!("{what}: attempt {n} of {}", spec.switch.max_attempts)).await?;
        finalizer::ensure(&self.res.api, &self.res.name(), SWITCH_FINALIZER, true).await?;

        // Fence, catch up, checksum, prepare: the guard shared with
        // Migration's switch.
        match guard::run(&mut Attempt { r: self, direction }).await? {
            Guarded::Ready => self.roll_forward(direction, SubStep::FlipRouting).await,
            Guarded::Failed => Ok(Flow::Continue),
            Guarded::Stopped => Ok(Flow::Done),
        }
    }

    /// Fences the side applications leave and records the positions.
    async fn fence(&mut self, direction: Direction) -> Result<Option<String>, WorkError> {
        let spec = self.res.obj.spec.clone();
        let fenced_at = jiff::Timestamp::now();
        let message = match direction {
            Direction::DualWrite => format!(
                "switchyard: {} is being split; applications write the shards (ConfigMap {})",
                self.old_table(),
                spec.routing.config_map
            ),
            Direction::Source => format!(
                "switchyard: rolled back to {}; applications write the old table (ConfigMap {})",
                self.old_table(),
                spec.routing.config_map
            ),
        };
        let mut positions = Vec::new();
        for (cluster, tables) in self.fenced_side(direction) {
            let (mut conn, flavor) = self.session(&cluster).await?;
            let outcome = fence::fence(&mut conn, flavor, &tables, self.lock_wait(), &message).await;
            // The fence position is only good on the server the other sync's
            // positions come from, and only while that server takes writes.
            let refused = match &outcome {
                Ok(Fenced::Yes { .. }) => source::confirm(&mut conn, self.recorded_server(direction, &cluster)).await?,
                _ => None,
            };
            let _ = conn.disconnect().await;
            if let Some(reason) = refused {
                return Ok(Some(format!("{cluster}: {reason}")));
            }
            match outcome? {
                Fenced::Yes { position } => positions.push(FencePosition {
                    cluster: cluster.clone(),
                    file: position.file,
                    position: position.position as i64,
                }),
                Fenced::Blocked { blockers } => {
                    let who = if blockers.is_empty() { "no session found".to_string() } else { blockers.join("; ") };
                    return Ok(Some(format!(
                        "{} could not be locked within {} s; blocked by {who}",
                        tables.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", "),
                        self.lock_wait().as_secs()
                    )));
                }
            }
        }
        let s = self.report();
        s.fenced_at = Some(Time(fenced_at));
        s.fence_positions = positions;
        Ok(None)
    }

    /// The server whose binary log the sync that catches up to a fence on
    /// `cluster` reads: the forward sync's source when fencing into
    /// dual-write, the cluster's reverse sync on a rollback.
    fn recorded_server(&self, direction: Direction, cluster: &str) -> Option<i64> {
        match direction {
            Direction::DualWrite => self.res.status.source_server_id,
            Direction::Source => {
                self.res.status.reverse.iter().find(|r| r.cluster == cluster).and_then(|r| r.source_server_id)
            }
        }
    }

    /// Every shard against the rows of the old table that route to it.
    async fn verify(&mut self) -> Result<Option<String>, WorkError> {
        let prepared = self.forward().await?.prepared.clone();
        let at = self.fence_positions().into_iter().next().map(|(_, p)| p).unwrap_or_default();
        let report = crate::movement::checksum::compare_fenced(&prepared, at).await?;
        self.shard_report(&report);
        Ok((!report.is_equal()).then(|| report.differences()))
    }

    async fn catch_up_to_fence(&mut self, direction: Direction) -> Result<(), WorkError> {
        let positions = self.fence_positions();
        let (_latest, reporter) = task::reporter();
        match direction {
            Direction::DualWrite => {
                let (_, at) =
                    positions.into_iter().next().ok_or_else(|| WorkError::Inconsistent("no fence position".into()))?;
                let cp = self.forward_checkpoint()?;
                let prepared = self.forward().await?.prepared.clone();
                let cp = prepared.apply(cp, Until::Position(at), &reporter).await?;
                self.recording = Recording::Forward;
                self.record(Some(cp), None);
            }
            Direction::Source => {
                for i in 0..self.res.status.reverse.len() {
                    let cluster = self.res.status.reverse[i].cluster.clone();
                    let Some((_, at)) = positions.iter().find(|(c, _)| *c == cluster).cloned() else { continue };
                    let prepared = self.reverse(i).await?.prepared;
                    let cp = task::checkpoint_from(self.res.status.reverse[i].checkpoint.as_ref())
                        .map_err(WorkError::Inconsistent)?;
                    let cp = prepared.apply(cp, Until::Position(at), &reporter).await?;
                    self.recording = Recording::Reverse(i);
                    self.record(Some(cp), None);
                }
                self.recording = Recording::Forward;
            }
        }
        Ok(())
    }

    /// Forward: disjoint AUTO_INCREMENT ranges in the shards, and the
    /// reverse sync's start on every shard cluster. Rollback: the forward
    /// sync's start on the old table's cluster. Positions are read now,
    /// after the catch-up and under the fence, so nothing before them is
    /// missed and nothing the other sync wrote is read back.
    async fn prepare(&mut self, direction: Direction) -> Result<(), WorkError> {
        match direction {
            Direction::DualWrite => {
                self.separate_auto_increments().await?;
                let mut reverse = Vec::new();
                for cluster in self.shard_clusters() {
                    let (mut conn, flavor) = self.session(&cluster).await?;
                    let at = snapshot::position(&mut conn, &cluster, flavor).await?;
                    let server = source::identify(&mut conn).await?;
                    let _ = conn.disconnect().await;
                    reverse.push(ReverseSync {
                        cluster,
                        checkpoint: starting_at(at),
                        source_server_id: Some(server.server_id),
                    });
                }
                self.res.status.reverse = reverse;
                self.reverse.clear();
            }
            Direction::Source => {
                let cluster = self.res.obj.spec.source.cluster.clone();
                let (mut conn, flavor) = self.session(&cluster).await?;
                let at = snapshot::position(&mut conn, &cluster, flavor).await?;
                let server = source::identify(&mut conn).await?;
                let _ = conn.disconnect().await;
                self.res.status.checkpoint = starting_at(at);
                self.res.status.source_server_id = Some(server.server_id);
            }
        }
        self.res.persist().await
    }

    /// Shard i hands out ids from `base + i·stride`, above every id the
    /// old table holds or handed out (it is complete here: fenced and
    /// caught up).
    async fn separate_auto_increments(&mut self) -> Result<(), WorkError> {
        let old = self.old_table();
        let spec = self.res.obj.spec.clone();
        let (mut src, _) = self.session(&spec.source.cluster).await?;
        let column: Option<(String, String)> = src
            .query_first(format!(
                "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} AND EXTRA LIKE '%auto_increment%'",
                lit(&old.schema),
                lit(&old.table)
            ))
            .await
            .doing(|| "reading the AUTO_INCREMENT column".into())?;
        let Some((column, column_type)) = column else {
            let _ = src.disconnect().await;
            return Ok(());
        };
        let max_id: Option<String> = src
            .query_first(format!(
                "SELECT CAST(MAX({}) AS CHAR) FROM {}",
                crate::mysql::sql::quote_ident(&column),
                old.sql()
            ))
            .await
            .doing(|| format!("reading the highest {column}"))?;
        // The counter can be far past MAX(id) (deleted rows, rolled-back
        // inserts, an explicit AUTO_INCREMENT=): ids below it were handed out.
        let counter = counter::read(&mut src, &spec.source.cluster, &old).await?;
        let _ = src.disconnect().await;
        let base = (max_id.and_then(|m| m.parse::<i128>().ok()).unwrap_or(0).max(0) + 1)
            .max(counter.map(i128::from).unwrap_or(0));
        let max = plan::integer_max(&column_type)
            .ok_or_else(|| WorkError::Invalid(format!("AUTO_INCREMENT column {column} is {column_type}")))?;
        let shards = self.targets();
        let (stride, starts) = plan::auto_increment_starts(base, max, shards.len()).map_err(WorkError::Invalid)?;
        for (t, start) in shards.iter().zip(&starts) {
            let (mut conn, _) = self.session(&t.cluster).await?;
            let shard = Self::shard_table(t);
            conn.query_drop(format!("ALTER TABLE {} AUTO_INCREMENT = {start}", shard.sql()))
                .await
                .doing(|| format!("setting the AUTO_INCREMENT of {shard}"))?;
            let _ = conn.disconnect().await;
        }
        self.res.status.auto_increment =
            Some(AutoIncrementRanges { column, base: base.to_string(), stride: stride.to_string() });
        Ok(())
    }

    /// Sub-steps from `from` on; each is idempotent, so a restarted task
    /// redoes the one it was in.
    pub(super) async fn roll_forward(&mut self, direction: Direction, from: SubStep) -> Result<Flow, WorkError> {
        let mut sub = from;
        loop {
            self.at(sub).await?;
            match (sub, direction) {
                (SubStep::FlipRouting, Direction::DualWrite) => {
                    self.publish(Phase::DualWrite).await?;
                    // Fenced after an earlier rollback: applications now
                    // write here.
                    self.unfence(Direction::Source).await?;
                }
                (SubStep::FlipRouting, Direction::Source) => {
                    self.publish(Phase::Source).await?;
                    self.unfence(Direction::DualWrite).await?;
                }
                (SubStep::StartSync, Direction::DualWrite) => {
                    self.res.status.checkpoint = None;
                    self.res.status.dual_write_since = Some(conditions::now());
                }
                (SubStep::StartSync, Direction::Source) => {
                    self.res.status.reverse.clear();
                    self.reverse.clear();
                    self.res.status.dual_write_since = None;
                }
                _ => {}
            }
            match SubStep::ALL.into_iter().find(|s| *s > sub) {
                Some(next) => sub = next,
                None => break,
            }
        }
        let generation = self.res.status.routing.as_ref().map(|r| r.generation).unwrap_or(0);
        let fenced_ms = {
            let s = self.report();
            let ms = s.fenced_at.as_ref().map(|t| jiff::Timestamp::now().duration_since(t.0).as_millis() as i64);
            s.fenced_millis = ms;
            s.sub_step = None;
            s.record = AttemptRecord { retry: s.record.retry, ..Default::default() };
            s.fenced_at = None;
            ms.unwrap_or(0)
        };
        let (step, reason, message) = match direction {
            Direction::DualWrite => (
                Step::DualWrite,
                "DualWrite",
                format!(
                    "routing is dual-write (generation {generation}); applications use the shards and the old table is kept complete; writes were fenced {fenced_ms} ms"
                ),
            ),
            Direction::Source => (
                Step::RolledBack,
                "RolledBack",
                format!(
                    "routing is source (generation {generation}); applications use the old table, the shards are fenced and kept in sync; writes were fenced {fenced_ms} ms"
                ),
            ),
        };
        self.res.set(&[Desired::new(READY_TO_COMPLETE, TRUE, reason, message.clone())]);
        self.enter(step, message).await?;
        Ok(Flow::Continue)
    }

    /// Takes down the fence an attempt in `direction` puts up: the old
    /// table's going forward, the shards' on a rollback.
    pub(super) async fn unfence(&mut self, direction: Direction) -> Result<(), WorkError> {
        for (cluster, tables) in self.fenced_side(direction) {
            let (mut conn, _) = self.session(&cluster).await?;
            fence::unfence(&mut conn, &tables, self.lock_wait()).await?;
            let _ = conn.disconnect().await;
        }
        Ok(())
    }

    pub(super) async fn failed_attempt(&mut self, direction: Direction, reason: String) -> Result<(), WorkError> {
        let spec = self.res.obj.spec.clone();
        let n = {
            let s = self.report();
            s.sub_step = None;
            s.fenced_at = None;
            s.fence_positions.clear();
            attempts::failed(&spec.switch, &mut s.record, reason.clone(), jiff::Timestamp::now());
            s.record.attempts
        };
        if direction == Direction::DualWrite {
            // The reverse sync prepared for this attempt never started.
            self.res.status.reverse.clear();
            self.reverse.clear();
        }
        self.res.set(&[Desired::new(READY_TO_COMPLETE, TRUE, "SwitchFailed", format!("attempt {n} failed: {reason}"))]);
        self.res.status.step = Some(direction.before().as_str().into());
        self.res.persist().await?;
        let serving = match direction {
            Direction::DualWrite => "applications keep using the old table",
            Direction::Source => "applications keep using the shards",
        };
        self.res
            .event(
                EventType::Warning,
                "SwitchFailed",
                format!("attempt {n} of {} failed, {serving}: {reason}", spec.switch.max_attempts),
            )
            .await;
        Ok(())
    }

    /// Stops the reverse sync, points the routing at the shards for good,
    /// and renames (or drops) the old table. Each part is idempotent.
    pub(super) async fn retire(&mut self) -> Result<Flow, WorkError> {
        let spec = self.res.obj.spec.clone();
        self.res.status.reverse.clear();
        self.reverse.clear();
        self.publish(Phase::Shards).await?;
        let old = self.old_table();
        let drop = spec.retire.mode == crate::shardsplit::api::RetireMode::Drop;
        if !drop && self.res.status.retired_table.is_none() {
            let name = plan::retired_name(&old.table, jiff::Timestamp::now());
            self.res.status.retired_table = Some(TableName::new(&old.schema, &name).to_string());
        }
        self.res.persist().await?;
        let (mut src, _) = self.session(&spec.source.cluster).await?;
        let exists: Option<u8> = src
            .query_first(format!(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
                lit(&old.schema),
                lit(&old.table)
            ))
            .await
            .doing(|| format!("looking for {old}"))?;
        // Renamed (or dropped) while still fenced: a client with a stale
        // routing cannot write to the old table in between. The fence's
        // triggers keep their names through the RENAME, so they are dropped
        // by those names afterwards, also on a pass that finds the table
        // renamed already.
        if exists.is_some() {
            let statement = match (drop, &self.res.status.retired_table) {
                (false, Some(to)) => {
                    let to = TableName::parse(to).ok_or_else(|| WorkError::Inconsistent(format!("bad name {to}")))?;
                    format!("RENAME TABLE {} TO {}", old.sql(), to.sql())
                }
                _ => format!("DROP TABLE IF EXISTS {}", old.sql()),
            };
            src.query_drop(statement).await.doing(|| format!("retiring {old}"))?;
        }
        fence::unfence(&mut src, std::slice::from_ref(&old), self.lock_wait()).await?;
        let _ = src.disconnect().await;
        let what = match &self.res.status.retired_table {
            Some(t) if !drop => format!("renamed to {t}"),
            _ => "dropped".into(),
        };
        let generation = self.res.status.routing.as_ref().map(|r| r.generation).unwrap_or(0);
        let message = format!(
            "split into {} shards; routing is shards (generation {generation}); the old table was {what}",
            self.targets().len()
        );
        self.res.status.completion_time = Some(conditions::now());
        self.res.status.dual_write_since = None;
        self.res.set(&[
            Desired::new(SUCCEEDED, TRUE, "Completed", message.clone()),
            Desired::new(READY_TO_COMPLETE, FALSE, "Completed", "the split is done"),
        ]);
        self.enter(Step::Complete, message).await?;
        Ok(Flow::Done)
    }
}
