//! What every long-running task (an OnlineDDL, a Migration) does around the
//! engine: collect its reports, write them to status every second, stop
//! when told. The task's own state machine stays in its runner.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::error::WorkError;
use crate::api::Progress;
use crate::k8s::conditions::UNKNOWN;
use crate::movement::{Checkpoint, MovementError, Report, Reporter};
use crate::operator::context::backoff_delay;
use crate::operator::metrics::Metrics;

/// How often status is written while the engine works.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// What the engine's callbacks last reported, for the next status write.
#[derive(Default)]
pub struct Latest {
    checkpoint: Option<Checkpoint>,
    progress: Option<Progress>,
}

/// A reporter that keeps the latest checkpoint and progress. The engine
/// calls it from its own tasks, so it only stores.
pub fn reporter() -> (Arc<Mutex<Latest>>, Reporter) {
    let latest = Arc::new(Mutex::new(Latest::default()));
    let l = latest.clone();
    let reporter: Reporter = Arc::new(move |r| {
        let mut l = l.lock().unwrap_or_else(|p| p.into_inner());
        match r {
            Report::Checkpoint(cp) => l.checkpoint = Some(cp),
            Report::Progress(p) => l.progress = Some(p),
        }
    });
    (latest, reporter)
}

/// A runner whose status takes the engine's reports.
pub trait Reported {
    type Error: From<MovementError>;
    fn stop(&self) -> &CancellationToken;
    /// Puts what was reported into the status in memory.
    fn record(&mut self, checkpoint: Option<Checkpoint>, progress: Option<Progress>);
    /// Writes the status.
    fn flush(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

fn absorb<R: Reported>(r: &mut R, latest: &Mutex<Latest>) {
    let mut l = latest.lock().unwrap_or_else(|p| p.into_inner());
    let (cp, p) = (l.checkpoint.take(), l.progress.take());
    drop(l);
    if cp.is_some() || p.is_some() {
        r.record(cp, p);
    }
}

/// Runs an engine phase, writing its checkpoint and progress to status
/// every second. `None` when the task was told to stop.
pub async fn drive<R: Reported, T>(
    r: &mut R,
    latest: &Arc<Mutex<Latest>>,
    work: impl Future<Output = crate::movement::Result<T>>,
) -> Result<Option<T>, R::Error> {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.tick().await;
    let stop = r.stop().clone();
    loop {
        tokio::select! {
            out = &mut work => {
                absorb(r, latest);
                return Ok(Some(out?));
            }
            _ = tick.tick() => {
                absorb(r, latest);
                if r.flush().await.is_err() {
                    tracing::warn!("could not write progress");
                }
            }
            () = stop.cancelled() => {
                absorb(r, latest);
                let _ = r.flush().await;
                return Ok(None);
            }
        }
    }
}

/// What a pass tells the loop.
pub enum Flow {
    Continue,
    Done,
}

/// A task made of passes: each reads the resource, does one step's work and
/// writes the status.
pub trait Passes: Reported<Error = WorkError> + Send {
    /// The kind, for metrics.
    const KIND: &'static str;
    fn name(&self) -> String;
    fn step_name(&self) -> &'static str;
    fn metrics(&self) -> &Metrics;
    /// Sets the `Succeeded` condition in the status in memory.
    fn note(&mut self, status: &'static str, reason: &'static str, message: String);
    /// Forgets connections and loaded schemas: an error may have left them
    /// unusable.
    fn reset(&mut self);
    fn pass(&mut self) -> impl Future<Output = Result<Flow, WorkError>> + Send;
    /// A permanent error: leave what serves applications as it was, record
    /// the failure.
    fn fail(&mut self, e: &WorkError) -> impl Future<Output = ()> + Send;
}

/// Runs passes until one says Done, a permanent error fails the work, or
/// the task is told to stop. Other errors are retried with backoff, shown
/// as `Succeeded=Unknown, reason=Retrying`.
pub async fn run<P: Passes>(p: &mut P) {
    let mut failures: u32 = 0;
    loop {
        if p.stop().is_cancelled() {
            return;
        }
        match p.pass().await {
            Ok(Flow::Continue) => {
                if failures > 0 {
                    // The Retrying condition is history now.
                    failures = 0;
                    let step = p.step_name();
                    p.note(UNKNOWN, "InProgress", format!("{step}; recovered"));
                }
            }
            Ok(Flow::Done) => return,
            Err(e) if e.is_permanent() => {
                p.fail(&e).await;
                return;
            }
            Err(e) => {
                failures += 1;
                p.reset();
                let wait = backoff_delay(failures).min(MAX_RETRY_WAIT);
                tracing::warn!(kind = P::KIND, name = %p.name(), error = %e, label = e.metric_label(), retry_in = ?wait, "pass failed");
                p.metrics().failures.with_label_values(&[P::KIND, e.metric_label()]).inc();
                let step = p.step_name();
                p.note(UNKNOWN, "Retrying", format!("{step}: {e}; retrying"));
                let _ = p.flush().await;
                let stop = p.stop().clone();
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stop.cancelled() => return,
                }
            }
        }
    }
}

/// Longest wait between failed passes.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// Sleeps, or returns early when the task is told to stop.
pub async fn idle(stop: &CancellationToken, d: Duration) {
    tokio::select! {
        () = tokio::time::sleep(d) => {}
        () = stop.cancelled() => {}
    }
}

/// The binary log reader's own server_id: stable per resource (a restarted task
/// replaces its predecessor's stream) and far from the clusters' own ids.
pub fn reader_server_id(uid: &str) -> u32 {
    1_000_000_000 + crate::hash::fnv1a(uid.as_bytes()) % 1_000_000_000
}

/// The checkpoint kept in a status as a free-form object.
pub fn checkpoint_from(value: Option<&serde_json::Value>) -> Result<Checkpoint, String> {
    match value {
        None => Ok(Checkpoint::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("status.checkpoint is unreadable: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_are_stable_and_out_of_the_clusters_range() {
        let a = reader_server_id("4b0f6c1e-0000-4000-8000-000000000001");
        assert_eq!(a, reader_server_id("4b0f6c1e-0000-4000-8000-000000000001"));
        assert_ne!(a, reader_server_id("4b0f6c1e-0000-4000-8000-000000000002"));
        assert!((1_000_000_000..2_000_000_000).contains(&a));
    }

    #[test]
    fn the_reporter_keeps_only_the_latest() {
        let (latest, report) = reporter();
        report(Report::Checkpoint(Checkpoint { applied: None, ..Default::default() }));
        let second = Checkpoint { tables: vec![Default::default()], ..Default::default() };
        report(Report::Checkpoint(second.clone()));
        assert_eq!(latest.lock().unwrap().checkpoint.as_ref(), Some(&second));
    }

    #[test]
    fn a_missing_checkpoint_starts_from_scratch() {
        assert_eq!(checkpoint_from(None), Ok(Checkpoint::default()));
        assert!(checkpoint_from(Some(&serde_json::json!({"phase": 7}))).unwrap_err().contains("unreadable"));
    }
}
