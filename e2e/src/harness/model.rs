//! A writer that keeps a model of the table it writes. One connection runs
//! inserts, updates and deletes one after another against a cluster's
//! primary; every acknowledged operation is applied to the model, every
//! operation with an unknown outcome marks its row uncertain. At the end the
//! table must equal the model row by row: no acknowledged write lost, none
//! invented, whatever copy, change stream and swap happened underneath.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use mysql_async::prelude::Queryable;

use super::mysql::mysql;

/// (k, c) of a row.
pub type Image = (i64, Option<String>);

pub struct ModelWriter {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Model>,
}

#[derive(Default, Debug)]
pub struct Model {
    pub rows: BTreeMap<i64, Image>,
    pub uncertain: BTreeSet<i64>,
    pub acked: u64,
}

/// Creates `db.table (id, k, c, pad)`, with a secondary index `kc (k, c)`, and `rows` rows, seeded from
/// MariaDB's sequence engine. Returns the model of the seeded rows.
pub async fn seed(ip: &str, user: &str, password: &str, table: &str, rows: i64) -> anyhow::Result<Model> {
    let mut conn = mysql(ip, user, password).await?;
    conn.query_drop("CREATE DATABASE IF NOT EXISTS e2e").await?;
    conn.query_drop(format!(
        "CREATE TABLE e2e.{table} (id BIGINT PRIMARY KEY, k INT NOT NULL, c VARCHAR(64), pad VARCHAR(60) NOT NULL DEFAULT 'pad', KEY kc (k, c))"
    ))
    .await?;
    let mut from = 1;
    while from <= rows {
        let to = (from + 49_999).min(rows);
        conn.query_drop(format!(
            "INSERT INTO e2e.{table} (id, k, c) SELECT seq, seq % 1000, CONCAT('c', seq) FROM {}",
            super::numbers::numbers(from, to)
        ))
        .await
        .context("seeding")?;
        from = to + 1;
    }
    let mut model = Model::default();
    for id in 1..=rows {
        model.rows.insert(id, (id % 1000, Some(format!("c{id}"))));
    }
    Ok(model)
}

impl ModelWriter {
    /// Writes to `e2e.<table>` on `ip` every `interval`, starting from `model`.
    pub fn start(ip: &str, user: &str, password: &str, table: &str, model: Model, interval: Duration) -> ModelWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let (ip, user, password, table) = (ip.to_string(), user.to_string(), password.to_string(), table.to_string());
        let (stop2, acked2) = (stop.clone(), acked.clone());
        let task = tokio::spawn(async move {
            let mut model = model;
            let mut next_id = model.rows.keys().next_back().copied().unwrap_or(0) + 1;
            let mut conn = None;
            let mut op: u64 = 0;
            let mut rng: u64 = 0x2545_F491_4F6C_DD1D;
            while !stop2.load(Ordering::Relaxed) {
                if conn.is_none() {
                    match mysql(&ip, &user, &password).await {
                        Ok(c) => conn = Some(c),
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    }
                }
                op += 1;
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let roll = rng % 100;
                let c = conn.as_mut().expect("connected above");
                let pick = 1 + (rng >> 8) as i64 % next_id.max(1);
                let (id, statement, after): (i64, String, Option<Option<Image>>) = if roll < 50 {
                    let id = next_id;
                    next_id += 1;
                    let img = (op as i64 % 1000, Some(format!("i{op}")));
                    (
                        id,
                        format!("INSERT INTO e2e.{table} (id, k, c) VALUES ({id}, {}, 'i{op}')", img.0),
                        Some(Some(img)),
                    )
                } else if roll < 85 {
                    let img = model.rows.get(&pick).map(|(k, _)| (k + 1, Some(format!("u{op}"))));
                    (pick, format!("UPDATE e2e.{table} SET k = k + 1, c = 'u{op}' WHERE id = {pick}"), img.map(Some))
                } else {
                    (pick, format!("DELETE FROM e2e.{table} WHERE id = {pick}"), Some(None))
                };
                match tokio::time::timeout(Duration::from_secs(10), c.query_drop(statement)).await {
                    Ok(Ok(())) => {
                        match after {
                            Some(Some(img)) => {
                                model.rows.insert(id, img);
                            }
                            Some(None) => {
                                model.rows.remove(&id);
                            }
                            // An update of a row the model lacks changed nothing.
                            None => {}
                        }
                        model.acked += 1;
                        acked2.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        model.uncertain.insert(id);
                        conn = None;
                    }
                }
                tokio::time::sleep(interval).await;
            }
            model
        });
        ModelWriter { stop, acked, task }
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    pub async fn wait_for_progress(&self, more: u64, timeout: Duration) -> anyhow::Result<()> {
        super::wait::count_grows("the writer", || self.acked(), more, timeout).await
    }

    pub async fn stop(self) -> anyhow::Result<Model> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// Compares `e2e.<table>` on `ip` with the model, row by row. Rows the
/// writer is unsure of are skipped; everything else must match exactly.
pub async fn assert_matches(ip: &str, user: &str, password: &str, table: &str, model: &Model) -> anyhow::Result<()> {
    let mut conn = mysql(ip, user, password).await?;
    let rows: Vec<(i64, i64, Option<String>)> =
        conn.query(format!("SELECT id, k, c FROM e2e.{table} ORDER BY id")).await?;
    let actual: BTreeMap<i64, Image> = rows.into_iter().map(|(id, k, c)| (id, (k, c))).collect();
    let mut problems = Vec::new();
    for (id, img) in &model.rows {
        if model.uncertain.contains(id) {
            continue;
        }
        match actual.get(id) {
            None => problems.push(format!("id {id} acknowledged but missing")),
            Some(a) if a != img => problems.push(format!("id {id}: table {a:?}, acknowledged {img:?}")),
            Some(_) => {}
        }
    }
    for id in actual.keys() {
        if !model.rows.contains_key(id) && !model.uncertain.contains(id) {
            problems.push(format!("id {id} present but deleted or never written"));
        }
    }
    anyhow::ensure!(
        problems.is_empty(),
        "e2e.{table} differs from the acknowledged writes in {} rows (of {}; {} uncertain): {:?}",
        problems.len(),
        model.rows.len(),
        model.uncertain.len(),
        &problems[..problems.len().min(20)]
    );
    Ok(())
}
