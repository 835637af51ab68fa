//! A writer that behaves like an application during failures: it commits
//! numbered rows to whatever pod the `<cluster>-primary` Service selects,
//! reconnects on any error, and remembers every id whose commit was
//! acknowledged. Tests then check that every acknowledged id survived.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;

use super::kubectl::kubectl;
use super::mysql::mysql;

pub const TABLE: &str = "e2e.writes";

/// The IP of the pod the primary Service selects, as an application's
/// connection would reach it.
pub fn primary_ip(namespace: &str, cluster: &str) -> anyhow::Result<Option<String>> {
    let selector = format!("app.kubernetes.io/instance={cluster},switchyard.io/role=primary");
    let out = kubectl(&["get", "pods", "-n", namespace, "-l", &selector, "-o", "jsonpath={.items[*].status.podIP}"])?;
    let ips: Vec<&str> = out.split_whitespace().collect();
    anyhow::ensure!(ips.len() <= 1, "two pods carry the primary label: {ips:?}");
    Ok(ips.first().map(|s| s.to_string()))
}

pub struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<BTreeSet<u64>>,
    pub errors: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
}

impl Writer {
    /// Creates the table on the current primary, then writes one row every
    /// `interval` until stopped.
    pub async fn start(
        namespace: &str,
        cluster: &str,
        user: &str,
        password: &str,
        interval: Duration,
    ) -> anyhow::Result<Writer> {
        let ip = primary_ip(namespace, cluster)?.ok_or_else(|| anyhow::anyhow!("no primary"))?;
        let mut conn = mysql(&ip, user, password).await?;
        conn.query_drop("CREATE DATABASE IF NOT EXISTS e2e").await?;
        conn.query_drop(format!("CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY, note VARCHAR(64))"))
            .await?;
        drop(conn);
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let acked_count = Arc::new(AtomicU64::new(0));
        let (ns, cl, user, password) =
            (namespace.to_string(), cluster.to_string(), user.to_string(), password.to_string());
        let (stop2, errors2, acked2) = (stop.clone(), errors.clone(), acked_count.clone());
        let task = tokio::spawn(async move {
            let mut acked = BTreeSet::new();
            let mut next: u64 = 1;
            let mut conn = None;
            while !stop2.load(Ordering::Relaxed) {
                if conn.is_none() {
                    let (ns, cl) = (ns.clone(), cl.clone());
                    let ip = tokio::task::spawn_blocking(move || primary_ip(&ns, &cl))
                        .await
                        .ok()
                        .and_then(|r| r.ok())
                        .flatten();
                    if let Some(ip) = ip
                        && let Ok(c) = mysql(&ip, &user, &password).await
                    {
                        conn = Some(c);
                    } else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
                let id = next;
                next += 1;
                let c = conn.as_mut().expect("connected above");
                let write =
                    c.exec_drop(format!("INSERT INTO {TABLE} (id, note) VALUES (?, ?)"), (id, format!("row {id}")));
                match tokio::time::timeout(Duration::from_secs(5), write).await {
                    Ok(Ok(())) => {
                        acked.insert(id);
                        acked2.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        // The outcome of `id` is unknown; it is never retried
                        // under the same id, so a duplicate cannot hide a loss.
                        errors2.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
                tokio::time::sleep(interval).await;
            }
            acked
        });
        Ok(Writer { stop, task, errors, acked: acked_count })
    }

    pub fn acked_so_far(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Waits until `more` further commits are acknowledged: the cluster takes
    /// writes again.
    pub async fn wait_for_progress(&self, more: u64, timeout: Duration) -> anyhow::Result<()> {
        super::wait::count_grows("the writer", || self.acked_so_far(), more, timeout).await
    }

    /// Stops and returns the acknowledged ids.
    pub async fn stop(self) -> anyhow::Result<BTreeSet<u64>> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// Ids present in the writer's table on the server at `ip`.
pub async fn ids_on(ip: &str, user: &str, password: &str) -> anyhow::Result<BTreeSet<u64>> {
    let mut conn = mysql(ip, user, password).await?;
    let ids: Vec<u64> = conn.query(format!("SELECT id FROM {TABLE}")).await?;
    Ok(ids.into_iter().collect())
}
