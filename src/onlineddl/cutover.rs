//! One cut-over attempt: gh-ost's two-connection swap, which works on MariaDB
//! (that refuses RENAME TABLE in a session holding LOCK TABLES) and MySQL.
//!
//! 1. The lock connection creates the sentry (the name the original will
//!    take) and locks the table and the sentry. Writers now queue.
//! 2. The engine applies the binary log up to the position read under the
//!    lock: the shadow holds every committed change of the table.
//! 3. The swap connection issues `RENAME t TO sentry, shadow TO t`. It waits
//!    for the lock, and it would fail anyway while the sentry exists.
//! 4. Once the RENAME is seen waiting, the lock connection drops the sentry
//!    and unlocks. A waiting RENAME goes before waiting DML, so writers resume
//!    on the new table.
//!
//! Steps 1 and 2 are the guarded part every switch shares
//! ([`crate::work::guard`]): fence (here: the lock, on the recorded primary),
//! catch up, verify, prepare (the AUTO_INCREMENT counter); steps 3 and 4 are
//! the commit. Every failure before step 4 unlocks with the sentry still
//! there, so the RENAME fails and the table serves as before. If the operator
//! dies, its lock dies with the connection, with the same result;
//! [`super::table::recover`] settles what is left. Each wait is bounded by
//! the policy's lock timeout.

use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::sql;
use super::table;
use crate::movement::TableName;
use crate::movement::apply::Until;
use crate::movement::blockers::{self, LockView};
use crate::movement::{Checkpoint, Endpoint, Prepared, Reporter, counter, session, snapshot};
use crate::mysql::Flavor;
use crate::work::error::{Doing, WorkError};
use crate::work::guard::{self, Guard, Guarded, Step};
use crate::work::{failpoint, source};

pub struct Attempt<'a> {
    pub endpoint: &'a Endpoint,
    pub flavor: Flavor,
    pub lock_view: LockView,
    pub table: &'a TableName,
    pub shadow: &'a TableName,
    pub sentry: &'a TableName,
    /// The server the engine's positions were read on: the lock must be
    /// held there, on a server that still takes writes.
    pub source_server_id: Option<i64>,
    /// Bound of each wait, and so of the writers' stall.
    pub lock_wait: Duration,
    pub stop: &'a CancellationToken,
}

#[derive(Debug)]
pub enum Outcome {
    Swapped {
        stall: Duration,
        checkpoint: Checkpoint,
    },
    /// The table serves as before; `reason` names any blocker.
    Failed {
        reason: String,
        stall: Option<Duration>,
        checkpoint: Checkpoint,
    },
    /// Told to stop between steps: unlocked, the sentry left for the next
    /// owner to settle.
    Stopped,
}

/// What is left of the lock's time budget.
fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// One attempt's sessions and what it learned, as the guard walks it.
struct Cutover<'a, 'b> {
    a: &'b Attempt<'a>,
    engine: &'b Prepared,
    report: &'b Reporter,
    /// The checkpoint the change apply has reached.
    cp: Checkpoint,
    ctl: Conn,
    /// The session holding the lock, from `fence` until the commit or undo.
    locker: Option<Conn>,
    locked_at: Option<Instant>,
    stall: Option<Duration>,
    failed: Option<String>,
}

impl Cutover<'_, '_> {
    fn deadline(&self) -> Instant {
        self.locked_at.unwrap_or_else(Instant::now) + self.a.lock_wait
    }

    fn lock_secs(&self) -> u64 {
        self.a.lock_wait.as_secs().max(1)
    }
}

impl Guard for Cutover<'_, '_> {
    fn stop_requested(&self) -> bool {
        self.a.stop.is_cancelled()
    }

    async fn enter(&mut self, step: Step) -> Result<(), WorkError> {
        // The attempt is on record (its sentry) before this; sub-steps are
        // too short to be worth a status write each.
        tracing::debug!(?step, table = %self.a.table, "cut-over");
        Ok(())
    }

    /// Writers queue behind a lock on the table and the sentry, taken on the
    /// recorded primary while it still takes writes.
    async fn fence(&mut self) -> Result<Option<String>, WorkError> {
        let a = self.a;
        let lock_secs = self.lock_secs();
        let held = blockers::find(&mut self.ctl, a.lock_view, std::slice::from_ref(a.table)).await?;
        if !held.is_empty() {
            return Ok(Some(format!("not attempted, the table is held: {}", blockers::describe(&held))));
        }
        table::drop_sentry(&mut self.ctl, a.sentry).await?;
        let mut locker = a.endpoint.connect_raw().await?;
        locker
            .query_drop(session::lock_session_settings(a.lock_wait))
            .await
            .doing(|| "setting lock_wait_timeout".into())?;
        locker.query_drop(sql::create_sentry(a.sentry)).await.doing(|| format!("creating sentry {}", a.sentry))?;
        if let Err(e) = locker.query_drop(sql::lock(a.table, a.sentry)).await {
            let held =
                blockers::find(&mut self.ctl, a.lock_view, std::slice::from_ref(a.table)).await.unwrap_or_default();
            let _ = locker.disconnect().await;
            let why = match &e {
                mysql_async::Error::Server(s) if s.code == sql::LOCK_WAIT_TIMEOUT => {
                    format!("could not lock {} within {lock_secs} s", a.table)
                }
                other => format!("locking {}: {other}", a.table),
            };
            return Ok(Some(if held.is_empty() {
                why
            } else {
                format!("{why}; held by {}", blockers::describe(&held))
            }));
        }
        self.locked_at = Some(Instant::now());
        let refused = source::confirm(&mut locker, a.source_server_id).await;
        self.locker = Some(locker);
        if let Some(hold) = failpoint::hold("cutover-hold-ms") {
            // Test-only: widens the window in which the e2e suite kills the
            // operator while it holds the lock.
            tracing::warn!(?hold, "failpoint: holding the cut-over lock");
            tokio::time::sleep(hold).await;
        }
        refused
    }

    /// Every change the table got is before the position read now: the
    /// lock keeps new ones out.
    async fn catch_up(&mut self) -> Result<Option<String>, WorkError> {
        let pos = snapshot::position(&mut self.ctl, &self.a.endpoint.name, self.a.flavor).await?;
        let (lock_secs, deadline) = (self.lock_secs(), self.deadline());
        let apply = async {
            self.engine.apply(self.cp.clone(), Until::Position(pos), self.report).await.map_err(WorkError::from)
        };
        let late = || format!("the change apply did not reach the lock position within {lock_secs} s");
        match guard::within(left(deadline), apply, late).await? {
            Ok(cp) => {
                self.cp = cp;
                Ok(None)
            }
            Err(late) => Ok(Some(late)),
        }
    }

    /// The runner compares the tables with a full checksum right before each
    /// attempt (and at Verifying); only the apply since then runs under the
    /// lock. Comparing again here would stall writers for the whole
    /// comparison.
    async fn verify(&mut self) -> Result<Option<String>, WorkError> {
        Ok(None)
    }

    /// Rows moved MAX(id), not the counter: the new table must not hand out
    /// ids the old one already did. Writes are held, so the counter is final.
    async fn prepare(&mut self) -> Result<(), WorkError> {
        let (a, lock_secs, deadline) = (self.a, self.lock_secs(), self.deadline());
        let carry =
            async { counter::carry(&mut self.ctl, &a.endpoint.name, a.table, a.shadow).await.map_err(WorkError::from) };
        match guard::within(left(deadline), carry, || format!("not done within {lock_secs} s")).await? {
            Ok(_) => Ok(()),
            Err(late) => Err(WorkError::Sql {
                what: "carrying the AUTO_INCREMENT counter".into(),
                source: mysql_async::Error::Other(late.into()),
            }),
        }
    }

    async fn unfence(&mut self) -> Result<(), WorkError> {
        match self.locker.take() {
            Some(locker) => {
                let locked_at = self.locked_at.unwrap_or_else(Instant::now);
                self.stall = Some(rollback(&mut self.ctl, locker, None, self.a, locked_at).await?);
            }
            // Not locked: only the sentry may be there.
            None => {
                table::drop_sentry(&mut self.ctl, self.a.sentry).await?;
            }
        }
        Ok(())
    }

    async fn failed_attempt(&mut self, reason: String) -> Result<(), WorkError> {
        self.failed = Some(reason);
        Ok(())
    }
}

/// Runs one attempt. `Err` only for a permanent error or trouble reaching
/// the server; the table is then as before, or settled by `table::recover`
/// on the next pass.
pub async fn attempt(
    a: &Attempt<'_>,
    engine: &Prepared,
    cp: Checkpoint,
    report: &Reporter,
) -> Result<Outcome, WorkError> {
    let mut ctl = a.endpoint.connect_raw().await?;
    // The control session's own metadata waits (the counter's ALTER on the
    // shadow) are bounded like the lock's.
    ctl.query_drop(format!("SET SESSION lock_wait_timeout = {}", a.lock_wait.as_secs().max(1)))
        .await
        .doing(|| "setting lock_wait_timeout".into())?;
    let mut c = Cutover { a, engine, report, cp, ctl, locker: None, locked_at: None, stall: None, failed: None };
    match guard::run(&mut c).await? {
        Guarded::Ready => swap(c).await,
        Guarded::Failed => Ok(Outcome::Failed {
            reason: c.failed.unwrap_or_else(|| "failed".into()),
            stall: c.stall,
            checkpoint: c.cp,
        }),
        Guarded::Stopped => Ok(Outcome::Stopped),
    }
}

/// The commit: the RENAME queues behind the lock, then the sentry goes and
/// the lock with it, and the RENAME runs before any waiting writer.
async fn swap(mut c: Cutover<'_, '_>) -> Result<Outcome, WorkError> {
    let a = c.a;
    let lock_secs = c.lock_secs();
    let (deadline, locked_at) = (c.deadline(), c.locked_at.unwrap_or_else(Instant::now));
    let mut locker = c.locker.take().ok_or_else(|| WorkError::Inconsistent("the cut-over lock is not held".into()))?;
    let synced = c.cp.clone();
    let ctl = &mut c.ctl;

    let mut swapper = a.endpoint.connect_raw().await?;
    swapper
        .query_drop(format!("SET SESSION lock_wait_timeout = {lock_secs}"))
        .await
        .doing(|| "setting lock_wait_timeout".into())?;
    let swapper_id = swapper.id();
    let statement = sql::swap(a.table, a.shadow, a.sentry);
    let swap = tokio::spawn(async move {
        let r = swapper.query_drop(statement).await;
        let _ = swapper.disconnect().await;
        r
    });

    // Drop the sentry only once the RENAME waits: dropping it earlier
    // would let the RENAME run after some other session's writes.
    let waiting = loop {
        let state: Option<Option<String>> =
            ctl.query_first(sql::session_state(u64::from(swapper_id))).await.doing(|| "watching the swap".into())?;
        let state = state.flatten().unwrap_or_default();
        if state.to_ascii_lowercase().contains("metadata lock") {
            break true;
        }
        if swap.is_finished() || Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    if !waiting {
        let stall = rollback(ctl, locker, Some((swapper_id, swap)), a, locked_at).await?;
        return Ok(Outcome::Failed {
            reason: format!("the swap did not queue behind the lock within {lock_secs} s"),
            stall: Some(stall),
            checkpoint: synced,
        });
    }
    if let Err(e) = locker.query_drop(sql::drop_table(a.sentry)).await {
        let stall = rollback(ctl, locker, Some((swapper_id, swap)), a, locked_at).await?;
        return Ok(Outcome::Failed {
            reason: format!("dropping the sentry: {e}"),
            stall: Some(stall),
            checkpoint: synced,
        });
    }
    let _ = locker.query_drop("UNLOCK TABLES").await;
    let _ = locker.disconnect().await;
    let result = swap.await.map_err(|e| WorkError::Inconsistent(format!("the swap task failed: {e}")))?;
    let stall = locked_at.elapsed();
    match result {
        Ok(()) => Ok(Outcome::Swapped { stall, checkpoint: synced }),
        // The RENAME is atomic: it failed as a whole, the original serves.
        Err(e) => {
            Ok(Outcome::Failed { reason: format!("the swap failed: {e}"), stall: Some(stall), checkpoint: synced })
        }
    }
}

/// Unlocks with the sentry in place, so a queued RENAME fails; only after
/// the RENAME is over is the sentry dropped. Returns how long writers stalled.
async fn rollback(
    ctl: &mut Conn,
    mut locker: Conn,
    swap: Option<(u32, tokio::task::JoinHandle<Result<(), mysql_async::Error>>)>,
    a: &Attempt<'_>,
    locked_at: Instant,
) -> Result<Duration, WorkError> {
    if locker.query_drop("UNLOCK TABLES").await.is_err() {
        // The server releases the locks of a closed connection.
        drop(locker);
    } else {
        let _ = locker.disconnect().await;
    }
    let stall = locked_at.elapsed();
    if let Some((id, task)) = swap {
        let _ = ctl.query_drop(format!("KILL QUERY {id}")).await;
        if let Ok(Ok(())) = task.await {
            // Cannot happen while the sentry exists; if it did, the swap is done.
            return Err(WorkError::Inconsistent(format!(
                "the swap of {} succeeded during a rollback; the next pass settles it",
                a.table
            )));
        }
    }
    table::drop_sentry(ctl, a.sentry).await?;
    Ok(stall)
}
