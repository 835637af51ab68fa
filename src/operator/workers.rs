//! Long work that outlives one reconcile (a row copy, a change stream), run
//! as tasks the controllers start and stop. A task is only a cache of
//! progress: it writes everything it needs to the resource's status, so a
//! restarted operator starts it again and it resumes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Worker {
    group: &'static str,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

#[derive(Default)]
pub struct Workers {
    map: Mutex<HashMap<String, Worker>>,
}

impl Workers {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Worker>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a task for `key` is alive.
    pub fn running(&self, key: &str) -> bool {
        let mut map = self.map();
        map.retain(|_, w| !w.task.is_finished());
        map.contains_key(key)
    }

    /// Live tasks of `group`.
    pub fn count(&self, group: &str) -> usize {
        let mut map = self.map();
        map.retain(|_, w| !w.task.is_finished());
        map.values().filter(|w| w.group == group).count()
    }

    /// Starts `work` for `key` unless a task for it is alive.
    pub fn start<F, Fut>(&self, key: &str, group: &'static str, work: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut map = self.map();
        if map.get(key).is_some_and(|w| !w.task.is_finished()) {
            return;
        }
        let stop = CancellationToken::new();
        let task = tokio::spawn(work(stop.clone()));
        map.insert(key.to_string(), Worker { group, stop, task });
    }

    /// Asks the task for `key` to stop and waits up to `within` for it. A
    /// task stops at its next safe point (never inside a cut-over attempt).
    /// True when no task is left running.
    pub async fn stop(&self, key: &str, within: Duration) -> bool {
        let worker = self.map().remove(key);
        let Some(w) = worker else { return true };
        w.stop.cancel();
        let mut task = w.task;
        match tokio::time::timeout(within, &mut task).await {
            Ok(_) => true,
            Err(_) => {
                // Put it back: a later call waits again.
                self.map().insert(key.to_string(), Worker { group: w.group, stop: w.stop, task });
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_task_per_key_and_stop_waits_for_it() {
        let workers = Workers::default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..2 {
            let tx = tx.clone();
            workers.start("a", "ddl", move |stop| async move {
                tx.send("started").unwrap();
                stop.cancelled().await;
                tx.send("stopped").unwrap();
            });
        }
        tokio::task::yield_now().await;
        assert!(workers.running("a"));
        assert_eq!(workers.count("ddl"), 1);
        assert_eq!(rx.recv().await, Some("started"));
        assert!(workers.stop("a", Duration::from_secs(5)).await);
        assert_eq!(rx.recv().await, Some("stopped"));
        assert!(rx.try_recv().is_err(), "the second start was a no-op");
        assert!(!workers.running("a"));
        assert!(workers.stop("missing", Duration::from_secs(1)).await);
    }
}
