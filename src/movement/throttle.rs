//! Backing off a busy server. One background task looks at the servers once a
//! second; copy workers and the change apply wait while it reports a reason.
//! A row budget caps the copy rate when the caller sets one.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

use super::endpoint::Endpoint;
use crate::api::Throttle;
use crate::mysql::{Flavor, sql};

pub const DEFAULT_MAX_REPLICA_LAG: i64 = 10;
pub const DEFAULT_MAX_THREADS_RUNNING: i64 = 50;
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Why the work should pause, if it should: the pure verdict over one look at
/// the servers.
pub fn verdict(
    limits: &Throttle,
    threads_running: &[(String, i64)],
    replica_lag: &[(String, Option<i64>)],
) -> Option<String> {
    let max_threads = limits.max_threads_running.map(i64::from).unwrap_or(DEFAULT_MAX_THREADS_RUNNING);
    let max_lag = limits.max_replica_lag_seconds.map(i64::from).unwrap_or(DEFAULT_MAX_REPLICA_LAG);
    for (server, running) in threads_running {
        if *running > max_threads {
            return Some(format!("{server}: Threads_running {running} > {max_threads}"));
        }
    }
    for (server, lag) in replica_lag {
        match lag {
            Some(l) if *l > max_lag => return Some(format!("{server}: replica lag {l}s > {max_lag}s")),
            // A stopped replica has no lag figure; writing on would only
            // grow what it must catch up on.
            None => return Some(format!("{server}: replication is not running")),
            _ => {}
        }
    }
    None
}

pub struct Throttler {
    reason: watch::Receiver<Option<String>>,
    budget: Option<Mutex<Budget>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Throttler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Budget {
    per_second: f64,
    available: f64,
    at: Instant,
}

impl Throttler {
    /// `busy` are servers whose Threads_running counts (the source and the
    /// targets); `replicas` are servers whose replication lag counts.
    pub fn start(limits: Throttle, busy: Vec<Endpoint>, replicas: Vec<(Endpoint, Flavor)>) -> Throttler {
        let (tx, rx) = watch::channel(None);
        let watch_limits = limits.clone();
        let task = tokio::spawn(async move {
            let mut conns: Vec<Option<Conn>> = (0..busy.len() + replicas.len()).map(|_| None).collect();
            loop {
                let mut threads = Vec::new();
                for (i, ep) in busy.iter().enumerate() {
                    if let Some(n) = threads_running(&mut conns[i], ep).await {
                        threads.push((ep.name.clone(), n));
                    }
                }
                let mut lags = Vec::new();
                for (j, (ep, flavor)) in replicas.iter().enumerate() {
                    lags.push((ep.name.clone(), replica_lag(&mut conns[busy.len() + j], ep, *flavor).await));
                }
                let _ = tx.send_if_modified(|cur| {
                    let next = verdict(&watch_limits, &threads, &lags);
                    let changed = *cur != next;
                    *cur = next;
                    changed
                });
                tokio::time::sleep(CHECK_EVERY).await;
            }
        });
        let budget = limits
            .max_rows_per_second
            .filter(|r| *r > 0)
            .map(|r| Mutex::new(Budget { per_second: r as f64, available: r as f64, at: Instant::now() }));
        Throttler { reason: rx, budget, task }
    }

    /// The current reason to pause, if any.
    pub fn reason(&self) -> Option<String> {
        self.reason.borrow().clone()
    }

    /// Waits while throttled; `on_pause` hears each new reason.
    pub async fn wait(&self, on_pause: &(dyn Fn(Option<String>) + Send + Sync)) {
        let mut rx = self.reason.clone();
        let mut paused = false;
        loop {
            let reason = rx.borrow_and_update().clone();
            match reason {
                None => {
                    if paused {
                        on_pause(None);
                    }
                    return;
                }
                Some(r) => {
                    paused = true;
                    on_pause(Some(r));
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Spends `rows` of the per-second budget, sleeping until it allows them.
    pub async fn take_rows(&self, rows: u64) {
        let Some(budget) = &self.budget else { return };
        let wait = {
            let mut b = budget.lock().await;
            let now = Instant::now();
            b.available = (b.available + now.duration_since(b.at).as_secs_f64() * b.per_second).min(b.per_second);
            b.at = now;
            b.available -= rows as f64;
            if b.available < 0.0 { Duration::from_secs_f64(-b.available / b.per_second) } else { Duration::ZERO }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

async fn reconnect<'c>(slot: &'c mut Option<Conn>, ep: &Endpoint) -> Option<&'c mut Conn> {
    if slot.is_none() {
        *slot = tokio::time::timeout(Duration::from_secs(2), Conn::new(ep.opts.clone())).await.ok()?.ok();
    }
    slot.as_mut()
}

async fn threads_running(slot: &mut Option<Conn>, ep: &Endpoint) -> Option<i64> {
    let conn = reconnect(slot, ep).await?;
    let q = conn.query_first::<(String, i64), _>("SHOW GLOBAL STATUS LIKE 'Threads_running'");
    match tokio::time::timeout(Duration::from_secs(2), q).await {
        Ok(Ok(Some((_, n)))) => Some(n),
        _ => {
            *slot = None;
            None
        }
    }
}

async fn replica_lag(slot: &mut Option<Conn>, ep: &Endpoint, flavor: Flavor) -> Option<i64> {
    let conn = reconnect(slot, ep).await?;
    let q = conn.query_first::<Row, _>(sql::show_replica_status(flavor));
    match tokio::time::timeout(Duration::from_secs(2), q).await {
        Ok(Ok(Some(row))) => {
            row.get_opt::<Option<i64>, _>(sql::replica_columns(flavor).lag).and_then(Result::ok).flatten()
        }
        _ => {
            *slot = None;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_name_the_server_and_the_limit() {
        let limits = Throttle { max_replica_lag_seconds: Some(5), max_threads_running: Some(20), ..Default::default() };
        assert_eq!(verdict(&limits, &[("src".into(), 20)], &[("r1".into(), Some(5))]), None);
        assert_eq!(verdict(&limits, &[("src".into(), 21)], &[]), Some("src: Threads_running 21 > 20".into()));
        assert_eq!(
            verdict(&limits, &[], &[("r1".into(), Some(1)), ("r2".into(), Some(6))]),
            Some("r2: replica lag 6s > 5s".into())
        );
        assert_eq!(verdict(&limits, &[], &[("r1".into(), None)]), Some("r1: replication is not running".into()));
        assert_eq!(verdict(&Throttle::default(), &[("src".into(), 50)], &[("r".into(), Some(10))]), None, "defaults");
    }

    #[tokio::test(start_paused = true)]
    async fn the_row_budget_paces_the_copy() {
        let t = Throttler::start(
            Throttle { max_rows_per_second: Some(1000), max_threads_running: Some(i32::MAX), ..Default::default() },
            vec![],
            vec![],
        );
        let start = Instant::now();
        for _ in 0..5 {
            t.take_rows(1000).await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_secs(4) && took < Duration::from_secs(5), "{took:?}");
        assert_eq!(t.reason(), None);
    }
}
