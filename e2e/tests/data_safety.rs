//! e2e of OnlineDDL on table shapes and days that once lost or stalled
//! data: BINARY keys ending in 0x00, composite (tenant, id) keys, an
//! AUTO_INCREMENT counter far above MAX(id), a table named like one of its
//! indexes, and a switchover while the change is held. In every case a
//! writer changes the table throughout and keeps a model of what the server
//! acknowledged; the case ends with the table compared to that model row by
//! row (after a switchover, on every instance).
//!
//!   cargo test -p switchyard-e2e --test data_safety -- --test-threads=1

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use mysql_async::prelude::{FromValue, Queryable};
use mysql_async::{Conn, Row};
use serde_json::Value;
use switchyard_e2e::harness::keys::{binary16, hex};
use switchyard_e2e::harness::kubectl::{get_json, secret_value};
use switchyard_e2e::harness::operator::Operator;
use switchyard_e2e::harness::resource::{self, step};
use switchyard_e2e::harness::wait::{Hopeless, count_grows};
use switchyard_e2e::harness::writer::primary_ip;
use switchyard_e2e::harness::{TestNamespace, apply_yaml, kubectl, mysql, wait_until, wait_until_async};

const CLUSTER: &str = "db";
const KIND: &str = "onlineddl";
const POLL: Duration = Duration::from_millis(200);
const PROVISION_TIMEOUT: Duration = Duration::from_secs(240);
const DDL_TIMEOUT: Duration = Duration::from_secs(180);
const WRITE_INTERVAL: Duration = Duration::from_millis(5);
/// Seeded key indexes below this are left to the test's own writes, so the
/// writer never races them and each must hit exactly one row.
const RESERVED: u64 = 100;
/// Key indexes of rows the test moves a key to, apart from the writer's.
const MOVED: u64 = 1_000_000;
const ALTER: &str = "ADD COLUMN note VARCHAR(16) NULL";

struct Env {
    ns: TestNamespace,
    _operator: Option<Operator>,
    /// The primary's address when provisioned (tests that switch over move it).
    ip: String,
    root: String,
    /// The applications' account: unlike root, it cannot write past read_only,
    /// so a write that reaches a demoted primary fails as an application's would.
    app: String,
}

impl Env {
    fn ns(&self) -> &str {
        self.ns.as_str()
    }

    async fn conn(&self) -> anyhow::Result<Conn> {
        mysql(&self.ip, "root", &self.root).await
    }
}

fn secret(ns: &str, key: &str) -> anyhow::Result<String> {
    secret_value(ns, &format!("{CLUSTER}-credentials"), key)
}

/// A one-instance cluster and an operator; returns once the primary takes writes.
async fn provision(prefix: &str) -> anyhow::Result<Env> {
    provision_instances(prefix, 1).await
}

async fn provision_instances(prefix: &str, replicas: u32) -> anyhow::Result<Env> {
    let ns = TestNamespace::create(prefix)?;
    let operator = Operator::start(prefix)?;
    apply_yaml(
        ns.as_str(),
        &format!(
            "apiVersion: switchyard.io/v1alpha1\nkind: MySQLCluster\nmetadata: {{name: {CLUSTER}}}\nspec:\n  image: {image}\n  replicas: {replicas}\n  storage: {{size: 1Gi}}\n",
            image = switchyard_e2e::harness::server_image(),
        ),
    )?;
    let ip = wait_until("the cluster to be healthy", PROVISION_TIMEOUT, POLL, || {
        let c = get_json(ns.as_str(), "mysqlcluster", CLUSTER)?.context("no cluster")?;
        let healthy = c["status"]["instances"]
            .as_array()
            .is_some_and(|is| is.len() == replicas as usize && is.iter().all(|i| i["healthy"] == true));
        Ok(healthy.then(|| writable_primary(&c)).flatten())
    })?;
    let root = secret(ns.as_str(), "root-password")?;
    let app = secret(ns.as_str(), "app-password")?;
    Ok(Env { ns, _operator: Some(operator), ip, root, app })
}

/// The address of the cluster's healthy, writable primary, if it has one.
fn writable_primary(cluster: &Value) -> Option<String> {
    cluster["status"]["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["role"] == "primary" && i["healthy"] == true && i["readOnly"] == false)
        .and_then(|i| i["address"].as_str().map(String::from))
}

fn instance_addresses(cluster: &Value) -> Vec<String> {
    cluster["status"]["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["address"].as_str().map(String::from))
        .collect()
}

fn ddl_yaml(name: &str, table: &str, alter: &str, extra: &str) -> String {
    format!(
        "apiVersion: switchyard.io/v1alpha1\nkind: OnlineDDL\nmetadata: {{name: {name}}}\nspec:\n  cluster: {CLUSTER}\n  database: e2e\n  table: {table}\n  alter: \"{alter}\"\n{extra}"
    )
}

fn ddl(ns: &str, name: &str) -> anyhow::Result<Value> {
    resource::get(ns, KIND, name)
}

fn wait_step(ns: &str, name: &str, want: &str, timeout: Duration) -> anyhow::Result<Value> {
    resource::wait_step(ns, KIND, name, want, timeout)
}

fn patch(ns: &str, name: &str, merge: &str) -> anyhow::Result<String> {
    resource::patch_merge(ns, KIND, name, merge)
}

/// How a case's table is keyed. The model holds keys as bytes; this maps the
/// n-th key to those bytes, to SQL, and back from a selected row.
#[derive(Clone, Copy)]
enum Key {
    /// `id BINARY(16)`; every third key ends in 0x00, every sixth in 0x00 0x00.
    Binary16,
    /// `(tenant VARCHAR(32), id BIGINT)` over 20 tenants: tenant, 0x00, id big-endian.
    TenantId,
    /// `id BIGINT`, the n-th being n + 1: big-endian.
    BigInt,
}

impl Key {
    fn nth(self, n: u64) -> Vec<u8> {
        match self {
            Key::Binary16 => binary16(n),
            Key::TenantId => tenant_id(&format!("tenant-{:02}", n % 20), n as i64),
            Key::BigInt => (n as i64 + 1).to_be_bytes().to_vec(),
        }
    }

    fn columns(self) -> &'static str {
        match self {
            Key::Binary16 | Key::BigInt => "id",
            Key::TenantId => "tenant, id",
        }
    }

    /// (column, SQL literal) of each key column.
    fn pairs(self, k: &[u8]) -> Vec<(&'static str, String)> {
        match self {
            Key::Binary16 => vec![("id", format!("X'{}'", hex(k)))],
            Key::BigInt => vec![("id", be_i64(k).to_string())],
            Key::TenantId => {
                let (tenant, id) = k.split_at(k.len() - 8);
                let tenant = String::from_utf8_lossy(&tenant[..tenant.len() - 1]).into_owned();
                vec![("tenant", format!("'{tenant}'")), ("id", be_i64(id).to_string())]
            }
        }
    }

    fn literals(self, k: &[u8]) -> String {
        self.pairs(k).into_iter().map(|(_, v)| v).collect::<Vec<_>>().join(", ")
    }

    fn predicate(self, k: &[u8]) -> String {
        self.pairs(k).into_iter().map(|(c, v)| format!("{c} = {v}")).collect::<Vec<_>>().join(" AND ")
    }

    fn assignment(self, k: &[u8]) -> String {
        self.pairs(k).into_iter().map(|(c, v)| format!("{c} = {v}")).collect::<Vec<_>>().join(", ")
    }

    /// The key of a row selected as `columns()` first.
    fn decode(self, row: &Row) -> anyhow::Result<Vec<u8>> {
        Ok(match self {
            Key::Binary16 => col::<Vec<u8>>(row, 0)?,
            Key::BigInt => col::<i64>(row, 0)?.to_be_bytes().to_vec(),
            Key::TenantId => tenant_id(&col::<String>(row, 0)?, col::<i64>(row, 1)?),
        })
    }

    fn width(self) -> usize {
        match self {
            Key::TenantId => 2,
            Key::Binary16 | Key::BigInt => 1,
        }
    }

    fn show(self, k: &[u8]) -> String {
        match self {
            Key::Binary16 => hex(k),
            Key::BigInt | Key::TenantId => format!("({})", self.literals(k)),
        }
    }
}

fn tenant_id(tenant: &str, id: i64) -> Vec<u8> {
    [tenant.as_bytes(), &[0], &id.to_be_bytes()].concat()
}

fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes(b.try_into().expect("8 key bytes"))
}

fn col<T: FromValue>(row: &Row, i: usize) -> anyhow::Result<T> {
    row.get_opt::<T, usize>(i).context("no such column")?.map_err(|e| anyhow!("column {i}: {e:?}"))
}

#[derive(Default)]
struct Model {
    /// Key → the value column, as text.
    rows: BTreeMap<Vec<u8>, String>,
    /// Keys of writes whose outcome is unknown.
    uncertain: BTreeSet<Vec<u8>>,
}

enum Op {
    Insert(Vec<u8>, String),
    Update(Vec<u8>, String),
    Delete(Vec<u8>),
    /// Moves a row to a new key.
    Rekey(Vec<u8>, Vec<u8>),
}

/// A table and the model of its acknowledged writes, shared by the writer
/// and the test's own writes.
#[derive(Clone)]
struct Table {
    name: &'static str,
    key: Key,
    value: &'static str,
    model: Arc<tokio::sync::Mutex<Model>>,
    acked: Arc<AtomicU64>,
}

impl Table {
    fn new(name: &'static str, key: Key, value: &'static str) -> Table {
        Table { name, key, value, model: Default::default(), acked: Default::default() }
    }

    fn sql(&self, op: &Op) -> String {
        let (t, k, v) = (self.name, self.key, self.value);
        match op {
            Op::Insert(key, val) => {
                format!("INSERT INTO e2e.{t} ({}, {v}) VALUES ({}, '{val}')", k.columns(), k.literals(key))
            }
            Op::Update(key, val) => format!("UPDATE e2e.{t} SET {v} = '{val}' WHERE {}", k.predicate(key)),
            Op::Delete(key) => format!("DELETE FROM e2e.{t} WHERE {}", k.predicate(key)),
            Op::Rekey(from, to) => {
                format!("UPDATE e2e.{t} SET {} WHERE {}", k.assignment(to), k.predicate(from))
            }
        }
    }

    /// Runs `op` and, once the server acknowledges it, applies it to the
    /// model; the model lock is held throughout so writes from the writer and
    /// the test are ordered the same in both. Returns the rows affected.
    async fn apply(&self, conn: &mut Conn, op: Op) -> anyhow::Result<u64> {
        let mut m = self.model.lock().await;
        let sql = self.sql(&op);
        let outcome = tokio::time::timeout(Duration::from_secs(10), conn.query_drop(&sql)).await;
        if !matches!(outcome, Ok(Ok(()))) {
            match &op {
                Op::Insert(k, _) | Op::Update(k, _) | Op::Delete(k) => {
                    m.uncertain.insert(k.clone());
                }
                Op::Rekey(from, to) => {
                    m.uncertain.insert(from.clone());
                    m.uncertain.insert(to.clone());
                }
            }
            return match outcome {
                Ok(Err(e)) => Err(e).context(sql),
                _ => Err(anyhow!("{sql}: no answer within 10 s")),
            };
        }
        match op {
            Op::Insert(k, v) => {
                m.rows.insert(k, v);
            }
            Op::Update(k, v) => {
                if let Some(row) = m.rows.get_mut(&k) {
                    *row = v;
                }
            }
            Op::Delete(k) => {
                m.rows.remove(&k);
            }
            Op::Rekey(from, to) => {
                if let Some(v) = m.rows.remove(&from) {
                    m.rows.insert(to, v);
                }
            }
        }
        self.acked.fetch_add(1, Ordering::Relaxed);
        Ok(conn.affected_rows())
    }

    /// Seeds keys 0..rows, 1000 rows per INSERT.
    async fn seed(&self, env: &Env, rows: u64) -> anyhow::Result<()> {
        let mut c = env.conn().await?;
        let mut m = self.model.lock().await;
        for start in (0..rows).step_by(1000) {
            let batch: Vec<u64> = (start..(start + 1000).min(rows)).collect();
            let values: Vec<String> =
                batch.iter().map(|&n| format!("({}, '{}')", self.key.literals(&self.key.nth(n)), n % 1000)).collect();
            c.query_drop(format!(
                "INSERT INTO e2e.{} ({}, {}) VALUES {}",
                self.name,
                self.key.columns(),
                self.value,
                values.join(", ")
            ))
            .await
            .context("seeding")?;
            for n in batch {
                m.rows.insert(self.key.nth(n), (n % 1000).to_string());
            }
        }
        Ok(())
    }

    async fn wait_for_progress(&self, more: u64, timeout: Duration) -> anyhow::Result<()> {
        count_grows(&format!("the writer of {}", self.name), || self.acked.load(Ordering::Relaxed), more, timeout).await
    }

    /// The table, after the change, equals the model: every acknowledged row
    /// with its value, nothing deleted or never written, `note` untouched.
    async fn assert_matches(&self, env: &Env) -> anyhow::Result<()> {
        self.assert_matches_on(&env.ip, &env.root).await
    }

    async fn assert_matches_on(&self, ip: &str, root: &str) -> anyhow::Result<()> {
        let mut c = mysql(ip, "root", root).await?;
        let k = self.key;
        let rows: Vec<Row> = c
            .query(format!(
                "SELECT {cols}, CAST({v} AS CHAR), note FROM e2e.{t} ORDER BY {cols}",
                cols = k.columns(),
                v = self.value,
                t = self.name
            ))
            .await?;
        let mut actual = BTreeMap::new();
        let mut problems = Vec::new();
        for row in &rows {
            let key = k.decode(row)?;
            let note: Option<String> = col(row, k.width() + 1)?;
            if note.is_some() {
                problems.push(format!("{}: note {note:?}, never written", k.show(&key)));
            }
            actual.insert(key, col::<String>(row, k.width())?);
        }
        let m = self.model.lock().await;
        for (key, v) in &m.rows {
            if m.uncertain.contains(key) {
                continue;
            }
            match actual.get(key) {
                None => problems.push(format!("{} acknowledged but missing", k.show(key))),
                Some(a) if a != v => problems.push(format!("{}: table {a}, acknowledged {v}", k.show(key))),
                Some(_) => {}
            }
        }
        for key in actual.keys() {
            if !m.rows.contains_key(key) && !m.uncertain.contains(key) {
                problems.push(format!("{} present but deleted or never written", k.show(key)));
            }
        }
        ensure!(
            problems.is_empty(),
            "e2e.{} on {ip} differs from the acknowledged writes in {} rows (of {}; {} uncertain): {:?}",
            self.name,
            problems.len(),
            m.rows.len(),
            m.uncertain.len(),
            &problems[..problems.len().min(20)]
        );
        Ok(())
    }
}

struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Inserts keys from `next` on (while below `insert_below`), and updates
    /// and deletes keys from RESERVED up, one statement every WRITE_INTERVAL.
    fn start(env: &Env, t: &Table, next: u64, insert_below: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, t, ns, app) = (stop.clone(), t.clone(), env.ns().to_string(), env.app.clone());
        let task = tokio::spawn(async move {
            let mut next = next;
            let mut conn = None;
            let mut rng: u64 = 0x2545_F491_4F6C_DD1D;
            while !stop2.load(Ordering::Relaxed) {
                if conn.is_none() {
                    // Wherever the primary Service points now, as an application's
                    // connection pool would reconnect.
                    let ns = ns.clone();
                    let ip = tokio::task::spawn_blocking(move || primary_ip(&ns, CLUSTER))
                        .await
                        .ok()
                        .and_then(|r| r.ok())
                        .flatten();
                    match ip {
                        Some(ip) if let Ok(c) = mysql(&ip, "app", &app).await => conn = Some(c),
                        _ => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    }
                }
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let roll = rng % 100;
                let value = ((rng >> 16) % 100_000).to_string();
                let pick = t.key.nth(RESERVED + (rng >> 8) % next.saturating_sub(RESERVED).max(1));
                let op = if roll < 40 && next < insert_below {
                    next += 1;
                    Op::Insert(t.key.nth(next - 1), value)
                } else if roll < 80 {
                    Op::Update(pick, value)
                } else {
                    Op::Delete(pick)
                };
                if t.apply(conn.as_mut().expect("connected above"), op).await.is_err() {
                    conn = None;
                }
                tokio::time::sleep(WRITE_INTERVAL).await;
            }
        });
        Writer { stop, task }
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// Starts the writer, then a shadow change held at Postponed; returns once held.
async fn change_held(
    env: &Env,
    t: &Table,
    name: &str,
    alter: &str,
    next: u64,
    insert_below: u64,
    timeout: Duration,
) -> anyhow::Result<Writer> {
    let w = Writer::start(env, t, next, insert_below);
    t.wait_for_progress(20, Duration::from_secs(20)).await?;
    apply_yaml(env.ns(), &ddl_yaml(name, t.name, alter, "  strategy: shadow\n  postponeCompletion: true\n"))?;
    wait_step(env.ns(), name, "Postponed", timeout)?;
    Ok(w)
}

/// Releases the held change, waits for Complete, then compares the table to
/// the model. Returns the completed OnlineDDL.
async fn release_and_compare(env: &Env, t: &Table, name: &str, w: Writer) -> anyhow::Result<Value> {
    patch(env.ns(), name, r#"{"spec":{"postponeCompletion":false}}"#)?;
    complete_and_compare(env, t, name, w, Duration::from_secs(60)).await
}

/// Waits for the change to complete through the shadow, lets the writer go
/// on a little, then compares the table to the model.
async fn complete_and_compare(env: &Env, t: &Table, name: &str, w: Writer, timeout: Duration) -> anyhow::Result<Value> {
    let done = wait_step(env.ns(), name, "Complete", timeout)?;
    ensure!(done["status"]["method"] == "shadow", "{}", done["status"]);
    t.wait_for_progress(20, Duration::from_secs(20)).await.context("writes resume after the change")?;
    w.stop().await?;
    let acked = t.acked.load(Ordering::Relaxed);
    ensure!(acked >= 40, "the writer made only {acked} writes");
    t.assert_matches(env).await?;
    Ok(done)
}

/// `e2e.orders (id BIGINT, v INT)` with `rows` rows, and its model.
async fn orders(env: &Env, rows: u64) -> anyhow::Result<Table> {
    create(env, "CREATE TABLE e2e.orders (id BIGINT NOT NULL PRIMARY KEY, v INT NOT NULL)").await?;
    let t = Table::new("orders", Key::BigInt, "v");
    t.seed(env, rows).await?;
    Ok(t)
}

async fn create(env: &Env, ddl: &str) -> anyhow::Result<()> {
    let mut c = env.conn().await?;
    c.query_drop("CREATE DATABASE IF NOT EXISTS e2e").await?;
    c.query_drop(ddl).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_uuid_keys_survive_deletes_and_key_changes_while_postponed() -> anyhow::Result<()> {
    const ROWS: u64 = 2000;
    // MariaDB pads a short value written to or looked up in a BINARY(16)
    // key, so a key that lost its trailing 0x00 bytes still matched there
    // (the unfixed engine passed with the key left BINARY). As VARBINARY in
    // the shadow every byte counts, as it does on MySQL 8.
    const BINARY_ALTER: &str = "MODIFY id VARBINARY(16) NOT NULL, ADD COLUMN note VARCHAR(16) NULL";
    let mut env = provision("safe-binary").await?;
    create(&env, "CREATE TABLE e2e.ids (id BINARY(16) NOT NULL PRIMARY KEY, v INT NOT NULL)").await?;
    let t = Table::new("ids", Key::Binary16, "v");
    t.seed(&env, ROWS).await?;
    let w = change_held(&env, &t, "ids-note", BINARY_ALTER, ROWS, u64::MAX, DDL_TIMEOUT).await?;

    // These reach the shadow through the change stream only, where a key
    // whose trailing 0x00 bytes were lost matched no row.
    let mut c = env.conn().await?;
    let key = |n: u64| Key::Binary16.nth(n);
    for n in 0..30 {
        ensure!(t.apply(&mut c, Op::Delete(key(n))).await? == 1, "key {} was not there", hex(&key(n)));
    }
    for (from, to) in [(30, MOVED + 1), (33, MOVED + 2), (31, MOVED + 3)] {
        ensure!(t.apply(&mut c, Op::Rekey(key(from), key(to))).await? == 1, "key {} was not there", hex(&key(from)));
    }
    ensure!(t.apply(&mut c, Op::Update(key(36), "7".into())).await? == 1);
    ensure!(key(30).ends_with(&[0, 0]) && key(33).ends_with(&[0]) && key(MOVED + 2).ends_with(&[0]));

    release_and_compare(&env, &t, "ids-note", w).await?;
    env.ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_tenant_keys_copy_in_linear_time() -> anyhow::Result<()> {
    const ROWS: u64 = 40_000;
    // The quadratic chunk predicate took ~30 minutes for this table; a
    // linear copy takes seconds. A guard, not a benchmark.
    const BOUND: Duration = Duration::from_secs(120);
    let mut env = provision("safe-tenant").await?;
    create(
        &env,
        "CREATE TABLE e2e.ledger (tenant VARCHAR(32) NOT NULL, id BIGINT NOT NULL, v INT NOT NULL, PRIMARY KEY (tenant, id))",
    )
    .await?;
    let t = Table::new("ledger", Key::TenantId, "v");
    t.seed(&env, ROWS).await?;
    let started = Instant::now();
    let w = change_held(&env, &t, "ledger-note", ALTER, ROWS, u64::MAX, BOUND).await?;
    let done = release_and_compare(&env, &t, "ledger-note", w).await?;
    let copied = done["status"]["progress"]["rowsCopied"].as_i64().unwrap_or(0);
    ensure!(copied >= (ROWS - ROWS / 5) as i64 && copied <= (ROWS + ROWS / 5) as i64, "{}", done["status"]);
    ensure!(started.elapsed() <= BOUND, "the change took {:?}", started.elapsed());
    env.ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_increment_counter_carries_over() -> anyhow::Result<()> {
    const ROWS: u64 = 500;
    let mut env = provision("safe-autoinc").await?;
    create(
        &env,
        "CREATE TABLE e2e.queue (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL) AUTO_INCREMENT=1000001",
    )
    .await?;
    let t = Table::new("queue", Key::BigInt, "v");
    t.seed(&env, ROWS).await?;
    let mut c = env.conn().await?;
    c.query_drop("ALTER TABLE e2e.queue AUTO_INCREMENT=1000001").await?;
    let (_, before): (String, String) = c.query_first("SHOW CREATE TABLE e2e.queue").await?.context("no table")?;
    ensure!(before.contains("AUTO_INCREMENT=1000001"), "{before}");
    drop(c);

    // Explicit ids below 1000 never move the counter, so only the cut-over can.
    let w = change_held(&env, &t, "queue-note", ALTER, ROWS, 999, DDL_TIMEOUT).await?;
    release_and_compare(&env, &t, "queue-note", w).await?;
    let mut c = env.conn().await?;
    c.query_drop("INSERT INTO e2e.queue (v) VALUES (1)").await?;
    let id: u64 = c.query_first("SELECT LAST_INSERT_ID()").await?.context("LAST_INSERT_ID")?;
    ensure!(id >= 1_000_001, "the new table handed out id {id}: the counter was not carried over");
    env.ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_named_like_its_index_completes() -> anyhow::Result<()> {
    const ROWS: u64 = 5000;
    let mut env = provision("safe-tag").await?;
    create(&env, "CREATE TABLE e2e.tag (id BIGINT NOT NULL PRIMARY KEY, tag VARCHAR(32) NOT NULL, KEY tag (tag))")
        .await?;
    let t = Table::new("tag", Key::BigInt, "tag");
    t.seed(&env, ROWS).await?;
    // The shadow's `ADD KEY tag` names the table's own name; it must not be
    // taken for DDL on the table being changed.
    let w = change_held(&env, &t, "tag-note", ALTER, ROWS, u64::MAX, DDL_TIMEOUT).await?;
    let done = release_and_compare(&env, &t, "tag-note", w).await?;
    ensure!(done["status"]["deferredIndexes"].as_array().is_some_and(|d| d.len() == 1), "{}", done["status"]);
    let mut c = env.conn().await?;
    let index: Vec<(String, String)> = c
        .query("SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'e2e' AND TABLE_NAME = 'tag' AND INDEX_NAME = 'tag'")
        .await?;
    ensure!(index == vec![("tag".to_string(), "tag".to_string())], "index tag: {index:?}");
    env.ns.passed();
    Ok(())
}

/// Cascades are made inside InnoDB and never reach the row binlog, so a
/// shadow of a child table would keep the rows a parent's delete removed
/// (and `CREATE TABLE … LIKE` would drop the constraint). Refused before
/// anything is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_table_with_cascading_foreign_key_is_refused_up_front() -> anyhow::Result<()> {
    let mut env = provision("safe-fk").await?;
    create(&env, "CREATE TABLE e2e.orders (id BIGINT NOT NULL PRIMARY KEY)").await?;
    create(
        &env,
        "CREATE TABLE e2e.lines (id BIGINT NOT NULL PRIMARY KEY, order_id BIGINT NOT NULL, \
         CONSTRAINT lines_order FOREIGN KEY (order_id) REFERENCES e2e.orders (id) ON DELETE CASCADE)",
    )
    .await?;
    let mut c = env.conn().await?;
    c.query_drop("INSERT INTO e2e.orders VALUES (1), (2)").await?;
    c.query_drop("INSERT INTO e2e.lines VALUES (1, 1), (2, 1), (3, 2)").await?;
    apply_yaml(env.ns(), &ddl_yaml("lines-note", "lines", ALTER, "  strategy: shadow\n"))?;
    let o = wait_until("the change refused", DDL_TIMEOUT, POLL, || {
        let o = ddl(env.ns(), "lines-note")?;
        Ok((step(&o) == "Failed").then_some(o))
    })?;
    let cond = o["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Succeeded"))
        .context("no Succeeded condition")?;
    let msg = cond["message"].as_str().unwrap_or("");
    ensure!(cond["reason"] == "InvalidSpec" && msg.contains("lines_order") && msg.contains("CASCADE"), "{cond}");
    let tables: Vec<String> =
        c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'e2e' ORDER BY 1").await?;
    ensure!(tables == ["lines", "orders"], "a shadow or sentry was left: {tables:?}");
    let events = kubectl(&["get", "events", "-n", env.ns(), "--field-selector", "involvedObject.name=lines-note"])?;
    ensure!(events.contains("InvalidSpec"), "no InvalidSpec event: {events}");
    env.ns.passed();
    Ok(())
}

/// A change held at Postponed while the cluster switches over. Its binary
/// log positions belong to the old primary, so it must start over on the
/// new one, never cut over on the demoted one, and leave no transaction on
/// the old primary that the new one lacks. Deletes, updates and key changes
/// made on the new primary must all be in the changed table, on every
/// instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_while_postponed_completes_on_the_new_primary() -> anyhow::Result<()> {
    const ROWS: u64 = 3000;
    let mut env = provision_instances("safe-switch", 3).await?;
    let t = orders(&env, ROWS).await?;
    let w = change_held(&env, &t, "orders-note", ALTER, ROWS, u64::MAX, DDL_TIMEOUT).await?;
    let held = ddl(env.ns(), "orders-note")?;
    let first = held["status"]["sourceServerId"].as_i64().context("no sourceServerId while held")?;

    kubectl(&["patch", "mysqlcluster", CLUSTER, "-n", env.ns(), "--type", "merge", "-p", r#"{"spec":{"primary":1}}"#])?;
    let new_ip = wait_until("db-1 to take writes", Duration::from_secs(90), POLL, || {
        let c = get_json(env.ns(), "mysqlcluster", CLUSTER)?.context("no cluster")?;
        Ok((c["status"]["primary"] == "db-1").then(|| writable_primary(&c)).flatten())
    })?;
    ensure!(new_ip != env.ip, "the primary did not move");
    env.ip = new_ip;
    t.wait_for_progress(20, Duration::from_secs(30)).await.context("writes resume on the new primary")?;

    // Made on the new primary only, while the change is held.
    let mut c = mysql(&env.ip, "app", &env.app).await?;
    let key = |n: u64| Key::BigInt.nth(n);
    for n in 0..30 {
        ensure!(t.apply(&mut c, Op::Delete(key(n))).await? == 1, "key {n} was not there");
    }
    for (from, to) in [(30, MOVED + 1), (31, MOVED + 2), (32, MOVED + 3)] {
        ensure!(t.apply(&mut c, Op::Rekey(key(from), key(to))).await? == 1, "key {from} was not there");
    }
    for n in 40..60 {
        ensure!(t.apply(&mut c, Op::Update(key(n), "7".into())).await? == 1, "key {n} was not there");
    }
    drop(c);

    let again = wait_until("the change held again, on the new primary", DDL_TIMEOUT, POLL, || {
        let o = ddl(env.ns(), "orders-note")?;
        if step(&o) == "Failed" {
            return Err(Hopeless(format!("the change failed: {}", o["status"])).into());
        }
        let moved = o["status"]["sourceServerId"].as_i64().is_some_and(|id| id != first);
        Ok((moved && step(&o) == "Postponed").then_some(o))
    })?;
    let events = kubectl(&["get", "events", "-n", env.ns(), "--field-selector", "involvedObject.name=orders-note"])?;
    ensure!(events.contains("PrimaryChanged"), "no PrimaryChanged event: {events}");

    release_and_compare(&env, &t, "orders-note", w).await?;
    // The demoted primary took no write from the operator: the cluster has no
    // errant instance, and every instance holds the acknowledged rows.
    let c = wait_until("the cluster to be healthy", Duration::from_secs(60), POLL, || {
        let c = get_json(env.ns(), "mysqlcluster", CLUSTER)?.context("no cluster")?;
        let healthy = c["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k["type"] == "Healthy" && k["status"] == "True");
        Ok(healthy.then_some(c))
    })
    .with_context(|| format!("held again at {}", again["status"]))?;
    let addresses = instance_addresses(&c);
    ensure!(addresses.len() == 3, "{}", c["status"]);
    for ip in &addresses {
        // A replica may trail for a moment; the last difference is the error.
        wait_until_async(&format!("{ip} to hold the acknowledged rows"), Duration::from_secs(60), POLL, || async {
            t.assert_matches_on(ip, &env.root).await.map(Some)
        })
        .await?;
    }
    env.ns.passed();
    Ok(())
}

/// Case 11: a reader of the shadow (a dump, a progress query) holds its
/// metadata lock while the cut-over's RENAME is sent. The RENAME must queue
/// on the table itself, holding writers back, and not on the shadow while
/// the unlocked table takes writes the shadow will never see. The reader
/// lets go once it sees the RENAME waiting, after writers had a moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_of_the_shadow_lets_no_write_slip_past_the_cut_over() -> anyhow::Result<()> {
    const ROWS: u64 = 3000;
    let mut env = provision("safe-reader").await?;
    let t = orders(&env, ROWS).await?;
    let w = change_held(&env, &t, "orders-note", ALTER, ROWS, u64::MAX, DDL_TIMEOUT).await?;
    let held = ddl(env.ns(), "orders-note")?;
    let shadow = held["status"]["shadowTable"].as_str().context("no shadowTable")?.to_string();
    let mut reader = env.conn().await?;
    reader.query_drop("START TRANSACTION").await?;
    reader.query_drop(format!("SELECT COUNT(*) FROM e2e.`{shadow}`")).await?;
    let mut watch = env.conn().await?;
    patch(env.ns(), "orders-note", r#"{"spec":{"postponeCompletion":false}}"#)?;
    let deadline = Instant::now() + DDL_TIMEOUT;
    let seen = loop {
        let n: Option<u64> = watch
            .query_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE 'RENAME TABLE%' AND STATE LIKE '%metadata lock%'",
            )
            .await?;
        if n.unwrap_or(0) > 0 {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Writers get a moment: if the table were unlocked now, they would
    // commit to the original the RENAME is about to put aside.
    tokio::time::sleep(Duration::from_millis(400)).await;
    reader.query_drop("COMMIT").await?;
    ensure!(seen, "no cut-over RENAME waited within {DDL_TIMEOUT:?}");
    complete_and_compare(&env, &t, "orders-note", w, Duration::from_secs(60)).await?;
    env.ns.passed();
    Ok(())
}

/// Case 7: the operator SIGKILLed again and again in the first second of
/// the copy, before and just after the snapshot position is on record,
/// under a writer that inserts, updates, deletes and moves keys. Whatever a
/// killed copy left in the shadow, the next one must not keep a row the
/// original has since lost: the change completes and the table equals the
/// acknowledged writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_again_and_again_early_in_the_copy_loses_nothing() -> anyhow::Result<()> {
    const ROWS: u64 = 20_000;
    let mut env = provision("safe-kills").await?;
    let t = orders(&env, ROWS).await?;
    let w = Writer::start(&env, &t, ROWS, u64::MAX);
    t.wait_for_progress(20, Duration::from_secs(20)).await?;
    apply_yaml(
        env.ns(),
        &ddl_yaml("orders-note", "orders", ALTER, "  strategy: shadow\n  throttle: {maxRowsPerSecond: 4000}\n"),
    )?;
    let mut operator = env._operator.take().context("no operator")?;
    for (i, after) in [0u64, 100, 250, 400, 700, 1000].into_iter().enumerate() {
        wait_until("the operator to lead", Duration::from_secs(60), POLL, || Ok(operator.is_leader().then_some(())))?;
        let o = wait_step(env.ns(), "orders-note", "Copying", DDL_TIMEOUT)?;
        tokio::time::sleep(Duration::from_millis(after)).await;
        operator.kill();
        let copied = o["status"]["progress"]["rowsCopied"].as_i64().unwrap_or(0);
        ensure!(copied < ROWS as i64, "kill {i} came after the copy ({copied} rows): the test no longer kills early");
        t.wait_for_progress(10, Duration::from_secs(20)).await.context("writes go on while no operator runs")?;
        operator = Operator::start(&format!("safe-kills-{i}"))?;
    }
    complete_and_compare(&env, &t, "orders-note", w, Duration::from_secs(240)).await?;
    drop(operator);
    env.ns.passed();
    Ok(())
}

/// Case 15: the operator killed after the swap, once the original has its
/// old-table name but before the status says so. The next one must find
/// the change done, not report a table it already altered as Failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_the_swap_and_its_status_completes() -> anyhow::Result<()> {
    const ROWS: u64 = 3000;
    let mut env = provision("safe-after-swap").await?;
    drop(env._operator.take());
    let mut first =
        Operator::start_with_env("safe-after-swap-1", &[("SWITCHYARD_FAILPOINT", "retired-hold-ms:20000")])?;
    let t = orders(&env, ROWS).await?;
    let w = Writer::start(&env, &t, ROWS, u64::MAX);
    t.wait_for_progress(20, Duration::from_secs(20)).await?;
    apply_yaml(env.ns(), &ddl_yaml("orders-note", "orders", ALTER, "  strategy: shadow\n"))?;
    let old = wait_until_async("the original under its old-table name", DDL_TIMEOUT, POLL, || async {
        let mut c = env.conn().await?;
        let old: Option<String> = c
            .query_first(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'e2e' AND TABLE_NAME LIKE '\\_orders\\_old\\_%'",
            )
            .await?;
        Ok(old)
    })
    .await?;
    ensure!(step(&ddl(env.ns(), "orders-note")?) == "CuttingOver", "the status moved on before the kill");
    first.kill();
    let _second = Operator::start("safe-after-swap-2")?;
    let done = complete_and_compare(&env, &t, "orders-note", w, DDL_TIMEOUT).await?;
    ensure!(done["status"]["oldTable"] == old.as_str(), "{}", done["status"]);
    env.ns.passed();
    Ok(())
}

/// Case 15: a row the application wrote through the binary protocol takes
/// more than the server's `max_allowed_packet` once the change apply writes
/// it as SQL (a BLOB as a hex literal doubles). The server would close the
/// connection on every try; the change fails at once, naming the setting,
/// and leaves the original as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_too_large_to_apply_fails_by_name() -> anyhow::Result<()> {
    const PACKET: u64 = 1 << 20;
    let mut env = provision("safe-packet").await?;
    create(&env, "CREATE TABLE e2e.blobs (id BIGINT NOT NULL PRIMARY KEY, b LONGBLOB)").await?;
    let mut c = env.conn().await?;
    c.query_drop("INSERT INTO e2e.blobs VALUES (1, 'small'), (2, NULL)").await?;
    // New sessions, the engine's among them, get the smaller packet.
    c.query_drop(format!("SET GLOBAL max_allowed_packet = {PACKET}")).await?;
    apply_yaml(env.ns(), &ddl_yaml("blobs-note", "blobs", ALTER, "  strategy: shadow\n  postponeCompletion: true\n"))?;
    wait_step(env.ns(), "blobs-note", "Postponed", DDL_TIMEOUT)?;
    let mut app = env.conn().await?;
    let big = vec![0xA5u8; (PACKET * 7 / 10) as usize];
    app.exec_drop("INSERT INTO e2e.blobs VALUES (?, ?)", (3, big)).await?;
    let o = resource::wait_step(env.ns(), KIND, "blobs-note", "Failed", Duration::from_secs(60))?;
    let cond = resource::condition(&o, "Succeeded").context("no Succeeded condition")?;
    let msg = cond["message"].as_str().unwrap_or("");
    ensure!(cond["reason"] == "Unsupported" && msg.contains("max_allowed_packet is 1048576"), "{cond}");
    let rows: Option<u64> = app.query_first("SELECT COUNT(*) FROM e2e.blobs").await?;
    ensure!(rows == Some(3), "the original holds {rows:?} rows");
    let tables: Vec<String> =
        app.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'e2e' ORDER BY 1").await?;
    ensure!(tables == ["blobs"], "the shadow was left: {tables:?}");
    c.query_drop("SET GLOBAL max_allowed_packet = 16777216").await?;
    env.ns.passed();
    Ok(())
}
