//! What every reconcile gets: the API client, Events, metrics, and the
//! per-object error backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::controller::Action;

use super::metrics::Metrics;
use crate::k8s::events::EventPublisher;

pub struct Context {
    pub client: kube::Client,
    pub events: EventPublisher,
    pub metrics: Metrics,
    /// Long-running work of the data-moving kinds.
    pub workers: super::workers::Workers,
    /// How many schema changes run at once; more wait in Queued.
    pub max_schema_changes: usize,
    backoff: Mutex<HashMap<String, u32>>,
}

/// Default of `--max-schema-changes`.
pub const DEFAULT_MAX_SCHEMA_CHANGES: usize = 4;

/// First retry after an error, doubling per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl Context {
    pub fn new(client: kube::Client, events: EventPublisher, metrics: Metrics) -> Self {
        Self {
            client,
            events,
            metrics,
            workers: Default::default(),
            max_schema_changes: DEFAULT_MAX_SCHEMA_CHANGES,
            backoff: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure of `key` and says when to retry. The counts only pace
    /// retries; losing them on restart merely restarts the backoff.
    pub fn failed(&self, key: &str) -> Action {
        let mut map = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        Action::requeue(backoff_delay(*n))
    }

    pub fn succeeded(&self, key: &str) {
        self.backoff.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

pub fn backoff_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    (BACKOFF_BASE * 2u32.pow(exp)).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_delay(1), Duration::from_secs(1));
        assert_eq!(backoff_delay(2), Duration::from_secs(2));
        assert_eq!(backoff_delay(5), Duration::from_secs(16));
        assert_eq!(backoff_delay(30), BACKOFF_MAX);
        assert_eq!(backoff_delay(u32::MAX), BACKOFF_MAX);
    }
}
