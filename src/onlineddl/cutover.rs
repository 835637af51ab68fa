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
//! Every failure before step 4 unlocks with the sentry still there, so the
//! RENAME fails and the table serves as before. If the operator dies, its
//! lock dies with the connection, with the same result; [`super::table::recover`]
//! settles what is left. Each wait is bounded by the policy's lock timeout.

use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::time::Instant;

use super::sql::{self, LockView};
use super::table;
use crate::movement::TableName;
use crate::movement::apply::Until;
use crate::movement::{Checkpoint, Endpoint, Prepared, Reporter, counter, fence, snapshot};
use crate::mysql::Flavor;
use crate::operator::work_error::{Doing, WorkError};

pub struct Attempt<'a> {
    pub endpoint: &'a Endpoint,
    pub flavor: Flavor,
    pub lock_view: LockView,
    pub table: &'a TableName,
    pub shadow: &'a TableName,
    pub sentry: &'a TableName,
    /// Bound of each wait, and so of the writers' stall.
    pub lock_wait: Duration,
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
}

/// Runs one attempt. `Err` only for trouble reaching the server; the table
/// is then as before, or settled by `table::recover` on the next pass.
pub async fn attempt(
    a: &Attempt<'_>,
    engine: &Prepared,
    cp: Checkpoint,
    report: &Reporter,
) -> Result<Outcome, WorkError> {
    let lock_secs = a.lock_wait.as_secs().max(1);
    let mut ctl = a.endpoint.connect_raw().await?;
    // The control session's own metadata waits (the counter's ALTER on the
    // shadow) are bounded like the lock's.
    ctl.query_drop(format!("SET SESSION lock_wait_timeout = {lock_secs}"))
        .await
        .doing(|| "setting lock_wait_timeout".into())?;
    let blockers = table::blockers(&mut ctl, a.lock_view, a.table).await?;
    if !blockers.is_empty() {
        return Ok(Outcome::Failed {
            reason: format!("not attempted, the table is held: {}", table::describe(&blockers)),
            stall: None,
            checkpoint: cp,
        });
    }
    table::drop_sentry(&mut ctl, a.sentry).await?;
    let mut locker = a.endpoint.connect_raw().await?;
    locker.query_drop(fence::lock_session_settings(a.lock_wait)).await.doing(|| "setting lock_wait_timeout".into())?;
    locker.query_drop(sql::create_sentry(a.sentry)).await.doing(|| format!("creating sentry {}", a.sentry))?;
    if let Err(e) = locker.query_drop(sql::lock(a.table, a.sentry)).await {
        let blockers = table::blockers(&mut ctl, a.lock_view, a.table).await.unwrap_or_default();
        let _ = locker.disconnect().await;
        table::drop_sentry(&mut ctl, a.sentry).await?;
        let why = match &e {
            mysql_async::Error::Server(s) if s.code == sql::LOCK_WAIT_TIMEOUT => {
                format!("could not lock {} within {lock_secs} s", a.table)
            }
            other => format!("locking {}: {other}", a.table),
        };
        let reason = if blockers.is_empty() { why } else { format!("{why}; held by {}", table::describe(&blockers)) };
        return Ok(Outcome::Failed { reason, stall: None, checkpoint: cp });
    }
    let locked_at = Instant::now();
    let deadline = locked_at + a.lock_wait;
    if let Some(hold) = failpoint_hold() {
        // Test-only: widens the window in which the e2e suite kills the
        // operator while it holds the lock.
        tracing::warn!(?hold, "failpoint: holding the cut-over lock");
        tokio::time::sleep(hold).await;
    }

    // Every change the table got is before this position: the lock keeps
    // new ones out.
    let outcome = async {
        let pos = snapshot::position(&mut ctl, &a.endpoint.name, a.flavor).await?;
        let cp = match tokio::time::timeout_at(deadline, engine.apply(cp.clone(), Until::Position(pos), report)).await {
            Ok(r) => r?,
            Err(_) => {
                return Ok(Err(format!("the change apply did not reach the lock position within {lock_secs} s")));
            }
        };
        Ok::<_, WorkError>(Ok(cp))
    }
    .await;
    let synced = match outcome {
        Ok(Ok(cp)) => cp,
        Ok(Err(reason)) => {
            let stall = rollback(&mut ctl, locker, None, a, locked_at).await?;
            return Ok(Outcome::Failed { reason, stall: Some(stall), checkpoint: cp });
        }
        Err(e) => {
            rollback(&mut ctl, locker, None, a, locked_at).await?;
            return Err(e);
        }
    };
    // Rows moved MAX(id), not the counter: the new table must not hand out
    // ids the old one already did. Writes are held, so the counter is final.
    let carried =
        tokio::time::timeout_at(deadline, counter::carry(&mut ctl, &a.endpoint.name, a.table, a.shadow)).await;
    let failed_carry = match carried {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("carrying the AUTO_INCREMENT counter: {e}")),
        Err(_) => Some(format!("the AUTO_INCREMENT counter was not carried within {lock_secs} s")),
    };
    if let Some(reason) = failed_carry {
        let stall = rollback(&mut ctl, locker, None, a, locked_at).await?;
        return Ok(Outcome::Failed { reason, stall: Some(stall), checkpoint: synced });
    }

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
        let stall = rollback(&mut ctl, locker, Some((swapper_id, swap)), a, locked_at).await?;
        return Ok(Outcome::Failed {
            reason: format!("the swap did not queue behind the lock within {lock_secs} s"),
            stall: Some(stall),
            checkpoint: synced,
        });
    }
    if let Err(e) = locker.query_drop(sql::drop_table(a.sentry)).await {
        let stall = rollback(&mut ctl, locker, Some((swapper_id, swap)), a, locked_at).await?;
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

/// `SWITCHYARD_FAILPOINT=cutover-hold-ms:<n>`: sleep `n` ms after taking
/// the lock. Unset in production; the e2e suite sets it to kill the
/// operator mid-attempt.
fn failpoint_hold() -> Option<Duration> {
    let v = std::env::var("SWITCHYARD_FAILPOINT").ok()?;
    let ms = v.strip_prefix("cutover-hold-ms:")?.parse().ok()?;
    Some(Duration::from_millis(ms))
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
