//! The guarded part of every switch: fence, catch up, verify, prepare. It is
//! shared by OnlineDDL's cut-over (the fence is its table lock), Migration's
//! switch and ShardSplit's (into dual-write and back); each kind supplies
//! what its sides are, and commits afterwards in its own way (a RENAME,
//! moving a data source, flipping a routing ConfigMap).
//!
//! Until the caller commits, an attempt can be undone, and this is the one
//! place that decides how. The fence always comes down before an attempt is
//! counted as failed. A permanent error still fails the whole work, but only
//! after unfencing. A stop request (shutdown, deletion) between sub-steps
//! unfences at once, rather than leaving applications refused until the
//! next owner settles the attempt.

use std::future::Future;
use std::time::Duration;

use super::error::WorkError;

/// The sub-steps before the commit point, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Writes to the side applications leave are refused; everything
    /// acknowledged before is at or before the fence position.
    Fence,
    /// The other side reaches the fence position, within `lockWait`.
    CatchUp,
    /// Both sides compared while nothing changes.
    Checksum,
    /// What runs after the commit is set up (positions, ranges); may be
    /// nothing.
    Prepare,
}

/// How an attempt's guarded part ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Guarded {
    /// Fenced, caught up, equal, prepared: the caller commits now.
    Ready,
    /// The attempt failed and is recorded; the fence is down.
    Failed,
    /// Told to stop; the fence is down and the attempt stays on record as
    /// in flight, so the next owner counts it as interrupted.
    Stopped,
}

/// What a kind supplies. A method returning `Some(reason)` means the
/// attempt cannot go on, for that reason, and nothing is broken.
pub trait Guard: Send {
    fn stop_requested(&self) -> bool;
    /// Records `step` as the attempt's place (before doing it).
    fn enter(&mut self, step: Step) -> impl Future<Output = Result<(), WorkError>> + Send;
    /// Blocked (`Some`) when the lock could not be had in time.
    fn fence(&mut self) -> impl Future<Output = Result<Option<String>, WorkError>> + Send;
    /// `Some` when the fence position was not reached in time.
    fn catch_up(&mut self) -> impl Future<Output = Result<Option<String>, WorkError>> + Send;
    /// `Some` naming the differences when the sides differ.
    fn verify(&mut self) -> impl Future<Output = Result<Option<String>, WorkError>> + Send;
    fn prepare(&mut self) -> impl Future<Output = Result<(), WorkError>> + Send;
    fn unfence(&mut self) -> impl Future<Output = Result<(), WorkError>> + Send;
    /// Counts the attempt as failed (backoff, condition, Event).
    fn failed_attempt(&mut self, reason: String) -> impl Future<Output = Result<(), WorkError>> + Send;
}

/// Runs the guarded sub-steps of one attempt.
pub async fn run<G: Guard>(g: &mut G) -> Result<Guarded, WorkError> {
    for step in [Step::Fence, Step::CatchUp, Step::Checksum, Step::Prepare] {
        g.enter(step).await?;
        if step != Step::Fence && g.stop_requested() {
            g.unfence().await?;
            return Ok(Guarded::Stopped);
        }
        let outcome = match step {
            Step::Fence => g.fence().await,
            Step::CatchUp => g.catch_up().await,
            Step::Checksum => g.verify().await.map(|m| m.map(|d| format!("checksum mismatch: {d}"))),
            Step::Prepare => g.prepare().await.map(|()| None),
        };
        match outcome {
            Ok(None) => {}
            Ok(Some(reason)) => {
                g.unfence().await?;
                g.failed_attempt(reason).await?;
                return Ok(Guarded::Failed);
            }
            Err(e) => {
                g.unfence().await?;
                if e.is_permanent() {
                    return Err(e);
                }
                g.failed_attempt(e.to_string()).await?;
                return Ok(Guarded::Failed);
            }
        }
    }
    Ok(Guarded::Ready)
}

/// A bounded wait, as every catch-up and every step under a lock needs it:
/// the work's value, or `Err(reason)` when it did not finish within `limit`
/// (the work is dropped then). The work's own error is the outer one.
pub async fn within<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, WorkError>>,
    late: impl FnOnce() -> String,
) -> Result<Result<T, String>, WorkError> {
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(v)) => Ok(Ok(v)),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(Err(late())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what the driver asked for; each step's outcome is scripted.
    #[derive(Default)]
    struct Script {
        calls: Vec<String>,
        blocked: bool,
        late: bool,
        differs: bool,
        error: Option<WorkError>,
        stop_at: Option<Step>,
        at: Option<Step>,
    }

    impl Guard for Script {
        fn stop_requested(&self) -> bool {
            self.stop_at.is_some() && self.stop_at == self.at
        }
        async fn enter(&mut self, step: Step) -> Result<(), WorkError> {
            self.at = Some(step);
            self.calls.push(format!("{step:?}"));
            Ok(())
        }
        async fn fence(&mut self) -> Result<Option<String>, WorkError> {
            Ok(self.blocked.then(|| "blocked by connection 7".to_string()))
        }
        async fn catch_up(&mut self) -> Result<Option<String>, WorkError> {
            if let Some(e) = self.error.take() {
                return Err(e);
            }
            Ok(self.late.then(|| "not caught up".to_string()))
        }
        async fn verify(&mut self) -> Result<Option<String>, WorkError> {
            Ok(self.differs.then(|| "row 3".to_string()))
        }
        async fn prepare(&mut self) -> Result<(), WorkError> {
            self.calls.push("prepared".into());
            Ok(())
        }
        async fn unfence(&mut self) -> Result<(), WorkError> {
            self.calls.push("unfence".into());
            Ok(())
        }
        async fn failed_attempt(&mut self, reason: String) -> Result<(), WorkError> {
            self.calls.push(format!("failed: {reason}"));
            Ok(())
        }
    }

    async fn drive(s: &mut Script) -> Result<Guarded, WorkError> {
        run(s).await
    }

    #[tokio::test]
    async fn a_clean_attempt_goes_through_every_step_and_leaves_the_fence_up() {
        let mut s = Script::default();
        assert_eq!(drive(&mut s).await.unwrap(), Guarded::Ready);
        assert_eq!(s.calls, ["Fence", "CatchUp", "Checksum", "Prepare", "prepared"]);
    }

    #[tokio::test]
    async fn every_failure_unfences_before_counting_the_attempt() {
        let mut s = Script { blocked: true, ..Default::default() };
        assert_eq!(drive(&mut s).await.unwrap(), Guarded::Failed);
        assert_eq!(s.calls, ["Fence", "unfence", "failed: blocked by connection 7"]);

        let mut s = Script { late: true, ..Default::default() };
        assert_eq!(drive(&mut s).await.unwrap(), Guarded::Failed);
        assert_eq!(s.calls, ["Fence", "CatchUp", "unfence", "failed: not caught up"]);

        let mut s = Script { differs: true, ..Default::default() };
        assert_eq!(drive(&mut s).await.unwrap(), Guarded::Failed);
        assert_eq!(s.calls.last().unwrap(), "failed: checksum mismatch: row 3");
        assert!(!s.calls.contains(&"prepared".to_string()), "nothing is prepared for an unequal switch");

        let mut s =
            Script { error: Some(WorkError::Inconsistent("DDL on a moved table".into())), ..Default::default() };
        assert!(drive(&mut s).await.is_err(), "a permanent error fails the work");
        assert_eq!(s.calls, ["Fence", "CatchUp", "unfence"], "but only after unfencing");
    }

    #[tokio::test]
    async fn a_stop_between_steps_unfences_at_once() {
        let mut s = Script { stop_at: Some(Step::Checksum), ..Default::default() };
        assert_eq!(drive(&mut s).await.unwrap(), Guarded::Stopped);
        assert_eq!(s.calls, ["Fence", "CatchUp", "Checksum", "unfence"]);
    }

    #[tokio::test]
    async fn within_reports_a_late_wait() {
        let slow = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok::<_, WorkError>(())
        };
        assert_eq!(within(Duration::from_millis(10), slow, || "late".into()).await.unwrap(), Err("late".into()));
        let quick = async { Ok::<_, WorkError>(1) };
        assert_eq!(within(Duration::from_secs(1), quick, || "late".into()).await.unwrap(), Ok(1));
        let failing = async { Err::<(), _>(WorkError::Invalid("no".into())) };
        assert!(within(Duration::from_secs(1), failing, || "late".into()).await.is_err());
    }
}
