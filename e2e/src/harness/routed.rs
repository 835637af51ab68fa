//! An application that routes by a ShardSplit's routing ConfigMap, the way
//! a sharding-aware client would: it re-reads the ConfigMap every 200 ms
//! and sends each write where the phase says (the old table in `source`,
//! the key's shard in `dual-write` and `shards`). Its hash is zlib's CRC32
//! of the key's decimal text, written here independently of the operator.
//!
//! It keeps a model of every acknowledged write. A write the fence refuses
//! (SQLSTATE 45000, error 1644) did nothing; a write with an unknown outcome
//! (a broken connection) marks its row uncertain. Inserts leave the id to
//! AUTO_INCREMENT, so in dual-write the shards' disjoint ranges are what
//! keeps ids unique.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde_json::Value;

use super::kubectl::get_json;
use super::mysql::mysql;
use super::writer::primary_ip;

/// (customer_id, amount) of a row, by id.
pub type Rows = BTreeMap<i64, (i64, i64)>;

#[derive(Default, Debug, Clone)]
pub struct Model {
    pub rows: Rows,
    /// Rows whose last write has an unknown outcome.
    pub uncertain: BTreeSet<i64>,
    /// Inserts with an unknown outcome, by their `note` (the id is unknown).
    pub uncertain_notes: BTreeSet<String>,
    pub acked: u64,
    /// Acknowledged writes per phase they were routed by.
    pub by_phase: BTreeMap<String, u64>,
}

/// Where one table lives.
#[derive(Clone, Debug, PartialEq)]
pub struct Place {
    pub cluster: String,
    pub database: String,
    pub table: String,
}

impl Place {
    pub fn sql(&self) -> String {
        format!("`{}`.`{}`", self.database, self.table)
    }
}

#[derive(Clone, Debug)]
pub struct Routing {
    pub phase: String,
    pub generation: i64,
    pub algorithm: String,
    pub ranges: Vec<(Option<i64>, Option<i64>, usize)>,
    pub source: Place,
    pub shards: Vec<Place>,
}

fn place(v: &Value) -> Place {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    Place { cluster: s("cluster"), database: s("database"), table: s("table") }
}

/// The routing the ConfigMap publishes now.
pub fn read_routing(ns: &str, config_map: &str) -> anyhow::Result<Option<Routing>> {
    let Some(cm) = get_json(ns, "configmap", config_map)? else { return Ok(None) };
    let doc: Value = serde_json::from_str(cm["data"]["routing.json"].as_str().context("no routing.json")?)?;
    let bound = |v: &Value| v.as_str().and_then(|s| s.parse::<i64>().ok());
    Ok(Some(Routing {
        phase: doc["phase"].as_str().unwrap_or_default().to_string(),
        generation: doc["generation"].as_i64().unwrap_or(0),
        algorithm: doc["rule"]["algorithm"].as_str().unwrap_or_default().to_string(),
        ranges: doc["rule"]["ranges"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| (bound(&r["from"]), bound(&r["to"]), r["shard"].as_u64().unwrap_or(0) as usize))
            .collect(),
        source: place(&doc["source"]),
        shards: doc["shards"].as_array().into_iter().flatten().map(place).collect(),
    }))
}

impl Routing {
    pub fn shard_of(&self, key: i64) -> usize {
        let n = self.shards.len().max(1);
        match self.algorithm.as_str() {
            "hash" => (crc32fast::hash(key.to_string().as_bytes()) as usize) % n,
            "mod" => key.rem_euclid(n as i64) as usize,
            _ => self
                .ranges
                .iter()
                .find(|(from, to, _)| from.is_none_or(|f| key >= f) && to.is_none_or(|t| key < t))
                .map(|r| r.2)
                .unwrap_or(0),
        }
    }

    /// Where a write of a row with this key goes.
    pub fn write_place(&self, key: i64) -> &Place {
        if self.phase == "source" { &self.source } else { &self.shards[self.shard_of(key)] }
    }
}

pub struct RoutedWriter {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Model>,
    poller: std::thread::JoinHandle<()>,
}

/// Whether an error is the fence's refusal: nothing was written.
fn fenced(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == 1644 || s.state == "45000")
}

impl RoutedWriter {
    /// Writes rows (id AUTO_INCREMENT, customer_id, amount, note) every
    /// `interval`, starting from `model`, as root of each cluster
    /// (`passwords` by cluster name).
    pub fn start(
        ns: &str,
        config_map: &str,
        passwords: HashMap<String, String>,
        model: Model,
        interval: Duration,
    ) -> RoutedWriter {
        Self::start_as("root", ns, config_map, passwords, model, interval)
    }

    /// The same as `user` (with `passwords` for that account). Through a
    /// switchover, use an account that cannot write past read_only (`app`),
    /// as applications do; root would write to the demoted primary.
    pub fn start_as(
        user: &str,
        ns: &str,
        config_map: &str,
        passwords: HashMap<String, String>,
        model: Model,
        interval: Duration,
    ) -> RoutedWriter {
        let user = user.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(model.acked));
        let routing: Arc<Mutex<Option<Routing>>> = Arc::new(Mutex::new(None));
        let ips: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let poller = {
            let (stop, routing, ips) = (stop.clone(), routing.clone(), ips.clone());
            let (ns, cm) = (ns.to_string(), config_map.to_string());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(Some(r)) = read_routing(&ns, &cm) {
                        for p in std::iter::once(&r.source).chain(&r.shards) {
                            if let Ok(Some(ip)) = primary_ip(&ns, &p.cluster) {
                                ips.lock().unwrap().insert(p.cluster.clone(), ip);
                            }
                        }
                        let mut cur = routing.lock().unwrap();
                        if cur.as_ref().is_none_or(|c| c.generation <= r.generation) {
                            *cur = Some(r);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        let (stop2, acked2) = (stop.clone(), acked.clone());
        let task = tokio::spawn(async move {
            let mut model = model;
            let mut conns: HashMap<String, Conn> = HashMap::new();
            let mut rng: u64 = 0x9E37_79B9_7F4A_7C15 ^ model.acked;
            let mut op: u64 = 0;
            while !stop2.load(Ordering::Relaxed) {
                tokio::time::sleep(interval).await;
                let Some(r) = routing.lock().unwrap().clone() else { continue };
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                op += 1;
                let existing: Option<(i64, (i64, i64))> = if model.rows.is_empty() {
                    None
                } else {
                    let skip = (rng % model.rows.len() as u64) as usize;
                    model.rows.iter().nth(skip).map(|(k, v)| (*k, *v)).filter(|(k, _)| !model.uncertain.contains(k))
                };
                let choice = rng % 10;
                let (customer, write): (i64, Write) = match (choice, existing) {
                    (0..=3, _) | (_, None) => {
                        let customer = ((rng >> 8) % 500) as i64;
                        let amount = ((rng >> 20) % 10_000) as i64;
                        (customer, Write::Insert { customer, amount, note: format!("w{}-{op}", model.acked) })
                    }
                    (4..=6, Some((id, (customer, _)))) => {
                        let amount = ((rng >> 20) % 10_000) as i64;
                        // In `source` the key itself may change: the split
                        // must move the row to another shard.
                        let new_customer = if r.phase == "source" && rng.is_multiple_of(3) {
                            ((rng >> 30) % 500) as i64
                        } else {
                            customer
                        };
                        (customer, Write::Update { id, customer: new_customer, amount })
                    }
                    (_, Some((id, (customer, _)))) => (customer, Write::Delete { id }),
                };
                let p = r.write_place(customer).clone();
                let Some(ip) = ips.lock().unwrap().get(&p.cluster).cloned() else { continue };
                if !conns.contains_key(&ip) {
                    let password = passwords.get(&p.cluster).cloned().unwrap_or_default();
                    match mysql(&ip, &user, &password).await {
                        Ok(c) => {
                            conns.insert(ip.clone(), c);
                        }
                        Err(_) => continue,
                    }
                }
                let conn = conns.get_mut(&ip).expect("just connected");
                let outcome = write.run(conn, &p).await;
                match outcome {
                    Ok(id) => {
                        write.apply(&mut model, id);
                        model.acked += 1;
                        *model.by_phase.entry(r.phase.clone()).or_default() += 1;
                        acked2.store(model.acked, Ordering::Relaxed);
                    }
                    Err(e) if fenced(&e) => {}
                    Err(_) => {
                        conns.remove(&ip);
                        write.uncertain(&mut model);
                    }
                }
            }
            model
        });
        RoutedWriter { stop, acked, task, poller }
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    pub async fn wait_for_progress(&self, more: u64, timeout: Duration) -> anyhow::Result<()> {
        super::wait::count_grows("routed writes", || self.acked(), more, timeout).await
    }

    pub async fn stop(self) -> anyhow::Result<Model> {
        self.stop.store(true, Ordering::Relaxed);
        let m = self.task.await.context("the writer panicked")?;
        let _ = self.poller.join();
        Ok(m)
    }
}

enum Write {
    Insert { customer: i64, amount: i64, note: String },
    Update { id: i64, customer: i64, amount: i64 },
    Delete { id: i64 },
}

impl Write {
    /// Runs the write; the id it concerns on success.
    async fn run(&self, conn: &mut Conn, p: &Place) -> Result<i64, mysql_async::Error> {
        match self {
            Write::Insert { customer, amount, note } => {
                conn.exec_drop(
                    format!("INSERT INTO {} (customer_id, amount, note) VALUES (?, ?, ?)", p.sql()),
                    (customer, amount, note),
                )
                .await?;
                Ok(conn.last_insert_id().unwrap_or(0) as i64)
            }
            Write::Update { id, customer, amount } => {
                conn.exec_drop(
                    format!("UPDATE {} SET customer_id = ?, amount = ? WHERE id = ?", p.sql()),
                    (customer, amount, id),
                )
                .await?;
                Ok(*id)
            }
            Write::Delete { id } => {
                conn.exec_drop(format!("DELETE FROM {} WHERE id = ?", p.sql()), (id,)).await?;
                Ok(*id)
            }
        }
    }

    fn apply(&self, m: &mut Model, id: i64) {
        match self {
            Write::Insert { customer, amount, .. } => {
                m.rows.insert(id, (*customer, *amount));
            }
            Write::Update { id, customer, amount } => {
                m.rows.insert(*id, (*customer, *amount));
            }
            Write::Delete { id } => {
                m.rows.remove(id);
            }
        }
    }

    fn uncertain(&self, m: &mut Model) {
        match self {
            Write::Insert { note, .. } => {
                m.uncertain_notes.insert(note.clone());
            }
            Write::Update { id, .. } | Write::Delete { id } => {
                m.uncertain.insert(*id);
            }
        }
    }
}

/// (id, customer_id, amount, note) of every row of a table.
pub type Table = BTreeMap<i64, (i64, i64, String)>;

pub async fn rows(ip: &str, password: &str, p: &Place) -> anyhow::Result<Table> {
    let mut c = mysql(ip, "root", password).await?;
    let rows: Vec<(i64, i64, i64, String)> =
        c.query(format!("SELECT id, customer_id, amount, note FROM {}", p.sql())).await.with_context(|| p.sql())?;
    Ok(rows.into_iter().map(|(id, cu, a, n)| (id, (cu, a, n))).collect())
}

/// Every acknowledged row is in `table` as acknowledged, and nothing else
/// is (rows of uncertain writes aside).
pub fn assert_model(table: &Table, m: &Model) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for (id, (customer, amount)) in &m.rows {
        if m.uncertain.contains(id) {
            continue;
        }
        match table.get(id) {
            None => problems.push(format!("row {id} acknowledged but missing")),
            Some((c, a, _)) if (c, a) != (customer, amount) => {
                problems.push(format!("row {id} is ({c}, {a}), acknowledged ({customer}, {amount})"))
            }
            _ => {}
        }
    }
    for (id, (_, _, note)) in table {
        if !m.rows.contains_key(id) && !m.uncertain.contains(id) && !m.uncertain_notes.contains(note) {
            problems.push(format!("row {id} ({note}) was never acknowledged, or was deleted"));
        }
    }
    anyhow::ensure!(
        problems.is_empty(),
        "{} differences, first: {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
    Ok(())
}
