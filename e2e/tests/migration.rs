//! e2e of Migration, driven with kubectl as a user would. The source is an
//! external MariaDB (a standalone server on 127.0.0.1:33074, the "legacy
//! host"), the target a MySQLCluster. A writer inserts, updates and deletes
//! rows of `e2e.orders` on the source throughout, as an application account,
//! and keeps a model of what the source acknowledged. Every case ends with
//! the target compared to that model and to the (fenced, so frozen) source,
//! row by row.
//!
//!   cargo test -p switchyard-e2e --test migration -- --test-threads=1

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, ensure};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use serde_json::Value;
use switchyard_e2e::harness::kubectl::{get_json, secret_value};
use switchyard_e2e::harness::model::{self, ModelWriter};
use switchyard_e2e::harness::operator::Operator;
use switchyard_e2e::harness::resource::{condition_is, events_of, get, patch_merge, step, wait_for, wait_step};
use switchyard_e2e::harness::servers::{LocalServer, password};
use switchyard_e2e::harness::wait::holds_for;
use switchyard_e2e::harness::{TestNamespace, apply_yaml, kubectl, mysql, wait_until};

const KIND: &str = "migration";
const CLUSTER: &str = "db";
const POLL: Duration = Duration::from_millis(200);
const PROVISION_TIMEOUT: Duration = Duration::from_secs(300);
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(240);
const WRITE_INTERVAL: Duration = Duration::from_millis(5);
const SOURCE_PORT: u16 = 33074;
const ROWS: i64 = 50_000;

struct Env {
    ns: TestNamespace,
    operator: Option<Operator>,
    /// The target cluster's primary.
    target_ip: String,
    target_root: String,
    source: LocalServer,
}

impl Env {
    fn ns(&self) -> &str {
        self.ns.as_str()
    }

    fn source_addr(&self) -> String {
        format!("127.0.0.1:{}", self.source.port)
    }

    async fn source_root(&self) -> anyhow::Result<Conn> {
        self.source.conn().await
    }

    async fn target_root(&self) -> anyhow::Result<Conn> {
        mysql(&self.target_ip, "root", &self.target_root).await
    }
}

/// A fresh source database and accounts, a namespace with the source's
/// credentials, a target cluster of `replicas` instances and an operator.
async fn provision(prefix: &str, replicas: u32) -> anyhow::Result<Env> {
    provision_with_env(prefix, replicas, &[]).await
}

async fn provision_with_env(prefix: &str, replicas: u32, operator_env: &[(&str, &str)]) -> anyhow::Result<Env> {
    let source = LocalServer::start("sy-legacy", SOURCE_PORT, &[])?;
    let mut c = source.conn().await?;
    c.query_drop("DROP DATABASE IF EXISTS e2e").await?;
    c.query_drop("DROP USER IF EXISTS 'app_rw'@'%', 'app_ro'@'%'").await?;
    c.query_drop("SET GLOBAL gtid_domain_id = 0").await?;
    drop(c);
    let ns = TestNamespace::create(prefix)?;
    kubectl(&[
        "create",
        "secret",
        "generic",
        "legacy",
        "-n",
        ns.as_str(),
        "--from-literal=username=root",
        &format!("--from-literal=password={}", password()),
    ])?;
    let operator = Operator::start_with_env(prefix, operator_env)?;
    apply_yaml(
        ns.as_str(),
        &format!(
            "apiVersion: switchyard.io/v1alpha1\nkind: MySQLCluster\nmetadata: {{name: {CLUSTER}}}\nspec:\n  image: {image}\n  replicas: {replicas}\n  storage: {{size: 1Gi}}\n",
            image = switchyard_e2e::harness::server_image(),
        ),
    )?;
    let target_ip = wait_until("the target's primary", PROVISION_TIMEOUT, POLL, || primary_ip(ns.as_str(), CLUSTER))?;
    let target_root = secret_value(ns.as_str(), &format!("{CLUSTER}-credentials"), "root-password")?;
    Ok(Env { ns, operator: Some(operator), target_ip, target_root, source })
}

fn primary_ip(ns: &str, cluster: &str) -> anyhow::Result<Option<String>> {
    let c = get(ns, "mysqlcluster", cluster)?;
    let ready = c["status"]["instances"].as_array().map(|i| i.len()).unwrap_or(0) as u64
        >= c["spec"]["replicas"].as_u64().unwrap_or(1);
    let primary = c["status"]["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["role"] == "primary" && i["healthy"] == true && i["readOnly"] == false)
        .and_then(|i| i["address"].as_str().map(String::from));
    Ok(primary.filter(|_| ready))
}

/// The scope: `orders` (the model's table), `items` (composite key, many
/// types, non-ASCII text, NULLs), `audit` (no key, excluded); two accounts
/// with different grants.
async fn seed_source(env: &Env, rows: i64) -> anyhow::Result<model::Model> {
    let addr = env.source_addr();
    let m = model::seed(&addr, "root", &password(), "orders", rows).await?;
    let mut c = env.source_root().await?;
    c.query_drop(
        "CREATE TABLE e2e.items (order_id BIGINT NOT NULL, line INT NOT NULL, \
         sku VARCHAR(32) CHARACTER SET latin1 NOT NULL, qty SMALLINT UNSIGNED, price DECIMAL(12,2), \
         weight DOUBLE, shipped DATETIME(3), note TEXT CHARACTER SET utf8mb4, \
         flags SET('gift','fragile','express'), state ENUM('new','paid','sent'), attrs JSON, blobby VARBINARY(64), \
         PRIMARY KEY (order_id, line))",
    )
    .await?;
    c.query_drop(format!(
        "INSERT INTO e2e.items SELECT seq, seq % 3, CONCAT('sku', seq), seq % 500, seq * 1.25, seq / 7, \
         '2024-01-01' + INTERVAL seq MINUTE, IF(seq % 10 = 0, NULL, CONCAT('note ', seq, ' ✓ é')), \
         IF(seq % 2, 'gift,express', ''), ELT(1 + seq % 3, 'new', 'paid', 'sent'), JSON_OBJECT('n', seq), \
         UNHEX(MD5(seq)) FROM {}",
        switchyard_e2e::harness::numbers::numbers(1, 3000)
    ))
    .await?;
    c.query_drop("CREATE TABLE e2e.audit (at DATETIME, what VARCHAR(64))").await?;
    c.query_drop("INSERT INTO e2e.audit VALUES (NOW(), 'seeded')").await?;
    c.query_drop("CREATE USER 'app_rw'@'%' IDENTIFIED BY 'rw-pass'").await?;
    c.query_drop("GRANT SELECT, INSERT, UPDATE, DELETE ON e2e.* TO 'app_rw'@'%'").await?;
    c.query_drop("CREATE USER 'app_ro'@'%' IDENTIFIED BY 'ro-pass'").await?;
    c.query_drop("GRANT SELECT ON e2e.orders TO 'app_ro'@'%'").await?;
    Ok(m)
}

/// Changes `items` on the source until stopped: the second table also moves
/// under writes.
fn items_writer(addr: String) -> (tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<u64>) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let mut n: u64 = 0;
        let mut conn: Option<Conn> = None;
        while !*rx.borrow() {
            if conn.is_none() {
                conn = mysql(&addr, "app_rw", "rw-pass").await.ok();
            }
            if let Some(c) = conn.as_mut() {
                let id = 1 + (n * 7919) % 3000;
                let q = match n % 3 {
                    0 => format!("UPDATE e2e.items SET qty = qty + 1, note = CONCAT('ü', {n}) WHERE order_id = {id}"),
                    1 => format!(
                        "INSERT INTO e2e.items VALUES ({}, 0, 'new', 1, 9.99, 0.5, NOW(3), NULL, 'fragile', 'new', '[]', NULL)",
                        100_000 + n
                    ),
                    _ => format!("DELETE FROM e2e.items WHERE order_id = {}", 100_000 + n - 1),
                };
                if c.query_drop(q).await.is_err() {
                    conn = None;
                }
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        n
    });
    (tx, task)
}

fn migration_yaml(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: switchyard.io/v1alpha1\nkind: Migration\nmetadata: {{name: {name}}}\nspec:\n\
         \x20 source: {{external: {{host: 127.0.0.1, port: {SOURCE_PORT}, credentialsSecret: legacy}}}}\n\
         \x20 target: {{cluster: {CLUSTER}}}\n\
         \x20 databases: [e2e]\n\
         \x20 tables: {{exclude: [audit]}}\n\
         \x20 accounts: {{users: [\"app_rw@%\", \"app_ro@%\"]}}\n{extra}"
    )
}

const SWITCH: &str = "  switch: {dataSource: {service: orders-db, configMap: orders-db}, lockWaitTimeoutSeconds: 3, backoffSeconds: 1}\n";

async fn rows_of(c: &mut Conn, table: &str, order: &str) -> anyhow::Result<Vec<Vec<mysql_async::Value>>> {
    let rows: Vec<Row> = c.query(format!("SELECT * FROM e2e.{table} ORDER BY {order}")).await?;
    Ok(rows.into_iter().map(Row::unwrap).collect())
}

/// Source and target hold the same rows, compared one by one.
async fn assert_tables_equal(env: &Env) -> anyhow::Result<()> {
    let mut s = env.source_root().await?;
    let mut t = env.target_root().await?;
    for (table, order) in [("orders", "id"), ("items", "order_id, line")] {
        let (a, b) = (rows_of(&mut s, table, order).await?, rows_of(&mut t, table, order).await?);
        ensure!(a.len() == b.len(), "e2e.{table}: source {} rows, target {}", a.len(), b.len());
        if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
            anyhow::bail!("e2e.{table} row {i} differs: source {:?}, target {:?}", a[i], b[i]);
        }
    }
    let audit: Vec<String> = t
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'e2e' AND TABLE_NAME = 'audit'")
        .await?;
    ensure!(audit.is_empty(), "the excluded table was moved");
    Ok(())
}

async fn grants(c: &mut Conn, account: &str) -> anyhow::Result<BTreeSet<String>> {
    Ok(c.query::<String, _>(format!("SHOW GRANTS FOR {account}")).await?.into_iter().collect())
}

/// Each account logs in on the target with its source password and holds
/// the grants it held on the source.
async fn assert_accounts_moved(env: &Env) -> anyhow::Result<()> {
    let mut s = env.source_root().await?;
    for (user, pass) in [("app_rw", "rw-pass"), ("app_ro", "ro-pass")] {
        let account = format!("'{user}'@'%'");
        let mut t = mysql(&env.target_ip, user, pass).await.with_context(|| format!("{user} logs in on the target"))?;
        let on_target: BTreeSet<String> = t.query::<String, _>("SHOW GRANTS").await?.into_iter().collect();
        let on_source = grants(&mut s, &account).await?;
        ensure!(on_target == on_source, "{user}: source grants {on_source:?}, target {on_target:?}");
    }
    let mut ro = mysql(&env.target_ip, "app_ro", "ro-pass").await?;
    ensure!(ro.query_drop("SELECT COUNT(*) FROM e2e.items").await.is_err(), "app_ro can read only orders");
    Ok(())
}

/// The data source points at the target's primary: the Service selects it,
/// the ConfigMap names it with a new generation. (Its Endpoints stay empty
/// here: Kubernetes refuses the node agent's loopback pod addresses.)
fn assert_data_source_on_target(env: &Env) -> anyhow::Result<()> {
    let ns = env.ns();
    let svc = get_json(ns, "service", "orders-db")?.context("no data-source Service")?;
    let sel = &svc["spec"]["selector"];
    ensure!(sel["switchyard.io/role"] == "primary" && sel["app.kubernetes.io/instance"] == CLUSTER, "{svc}");
    let cm = get_json(ns, "configmap", "orders-db")?.context("no data-source ConfigMap")?;
    ensure!(cm["data"]["host"] == format!("{CLUSTER}-primary.{ns}.svc").as_str(), "{cm}");
    ensure!(cm["data"]["generation"] == "2" && cm["data"]["databases"] == "e2e", "{cm}");
    Ok(())
}

/// The source refuses writes to the moved tables, whoever writes.
async fn assert_source_fenced(env: &Env) -> anyhow::Result<()> {
    let mut c = env.source_root().await?;
    let err = c.query_drop("INSERT INTO e2e.orders (id, k, c) VALUES (999999999, 1, 'late')").await;
    ensure!(err.as_ref().is_err_and(|e| e.to_string().contains("refused")), "root wrote after the switch: {err:?}");
    let err = c.query_drop("UPDATE e2e.items SET qty = 0 LIMIT 1").await;
    ensure!(err.is_err(), "items writable after the switch");
    c.query_drop("INSERT INTO e2e.audit VALUES (NOW(), 'not moved, still writable')").await?;
    Ok(())
}

async fn finish(
    env: &Env,
    w: ModelWriter,
    items: (tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<u64>),
) -> anyhow::Result<()> {
    let _ = items.0.send(true);
    let item_writes = items.1.await?;
    let m = w.stop().await?;
    ensure!(m.acked >= 40 && item_writes >= 40, "the writers made only {} and {item_writes} writes", m.acked);
    model::assert_matches(&env.target_ip, "root", &env.target_root, "orders", &m)
        .await
        .context("every write the source acknowledged is on the target")?;
    assert_tables_equal(env).await
}

fn switch_report(o: &Value) -> &Value {
    &o["status"]["switch"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_source_to_three_instances_postponed_then_released() -> anyhow::Result<()> {
    main_case("mig-main", "").await
}

/// The main case with the target's primary replicating from the source
/// (which needs a GTID domain of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_mode_postponed_then_released() -> anyhow::Result<()> {
    main_case("mig-repl", "  incremental: {mode: replication}\n").await
}

async fn main_case(prefix: &str, extra: &str) -> anyhow::Result<()> {
    let replication = extra.contains("replication");
    let mut env = provision(prefix, 3).await?;
    let ns = env.ns().to_string();
    if replication {
        env.source_root().await?.query_drop("SET GLOBAL gtid_domain_id = 7").await?;
    }
    let model = seed_source(&env, ROWS).await?;
    let w = ModelWriter::start(&env.source_addr(), "app_rw", "rw-pass", "orders", model, WRITE_INTERVAL);
    w.wait_for_progress(20, Duration::from_secs(20)).await?;
    let items = items_writer(env.source_addr());
    // An idle application session on the source: the switch kills it.
    let mut idle = mysql(&env.source_addr(), "app_ro", "ro-pass").await?;
    idle.query_drop("SELECT 1 FROM e2e.orders LIMIT 1").await?;

    apply_yaml(&ns, &migration_yaml("legacy", &format!("{extra}{SWITCH}")))?;
    let held = wait_step(&ns, KIND, "legacy", "Postponed", MIGRATION_TIMEOUT)?;
    let s = &held["status"];
    ensure!(condition_is(&held, "ReadyToComplete", "True"), "{s}");
    ensure!(s["progress"]["rowsCopied"].as_i64().unwrap_or(0) >= ROWS * 4 / 5, "{s}");
    ensure!(s["tables"] == serde_json::json!(["e2e.items", "e2e.orders"]), "{s}");
    let migrated = s["accounts"]["migrated"].as_array().map(|a| a.len()).unwrap_or(0);
    ensure!(migrated == 2 && s["accounts"]["diff"].as_array().is_some_and(|d| !d.is_empty()), "{s}");
    ensure!(s["checksums"].as_array().is_some_and(|c| c.iter().all(|t| t["matched"] == true)), "{s}");
    // Held: in sync, the data source still on the source, no attempt made.
    let cm = get_json(&ns, "configmap", "orders-db")?.context("data-source ConfigMap")?;
    ensure!(cm["data"]["host"] == "127.0.0.1" && cm["data"]["generation"] == "1", "{cm}");
    holds_for("postponed with no attempt", Duration::from_secs(3), POLL, || {
        let o = get(&ns, KIND, "legacy")?;
        Ok(step(&o) == "Postponed" && switch_report(&o)["attempts"].as_i64().unwrap_or(0) == 0)
    })?;
    w.wait_for_progress(50, Duration::from_secs(20)).await.context("the source takes writes while postponed")?;

    patch_merge(&ns, KIND, "legacy", r#"{"spec":{"postponeCompletion":false}}"#)?;
    let done = wait_step(&ns, KIND, "legacy", "Complete", MIGRATION_TIMEOUT)?;
    let s = &done["status"];
    ensure!(condition_is(&done, "Succeeded", "True"), "{s}");
    let r = switch_report(&done);
    ensure!(r["fencedMillis"].is_i64() && r["killedConnections"].as_i64().unwrap_or(0) >= 1, "{r}");
    ensure!(r["oldEndpoint"] == format!("127.0.0.1:{SOURCE_PORT}").as_str(), "{r}");
    ensure!(r["newEndpoint"] == format!("{CLUSTER}-primary.{ns}.svc:3306").as_str(), "{r}");
    ensure!(s["checksums"].as_array().is_some_and(|c| c.len() == 2 && c.iter().all(|t| t["matched"] == true)), "{s}");
    ensure!(idle.query_drop("SELECT 1").await.is_err(), "the idle application session was not killed");

    assert_source_fenced(&env).await?;
    finish(&env, w, items).await?;
    assert_accounts_moved(&env).await?;
    assert_data_source_on_target(&env)?;
    let events = events_of(&ns, "legacy")?;
    for reason in ["SeedCopy", "Postponed", "Switching", "Complete"] {
        ensure!(events.contains(&format!("\"{reason}\"")), "no {reason} Event: {events}");
    }
    if replication {
        ensure!(events.contains("ReplicationStarted"), "{events}");
        let mut t = env.target_root().await?;
        let channels: Vec<Row> = t.query("SHOW ALL SLAVES STATUS").await?;
        ensure!(channels.is_empty(), "the target still replicates from the source after the switch");
    }
    env.operator.take();
    env.ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_touches_nothing() -> anyhow::Result<()> {
    let mut env = provision("mig-invalid", 1).await?;
    let ns = env.ns().to_string();
    seed_source(&env, 1_000).await?;
    // audit has no key: without the exclude the spec is refused.
    let no_exclude = migration_yaml("keyless", "").replace("  tables: {exclude: [audit]}\n", "");
    apply_yaml(&ns, &no_exclude)?;
    let o = wait_for(&ns, KIND, "keyless", "InvalidSpec", Duration::from_secs(60), |o| {
        o["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["reason"] == "InvalidSpec")
    })?;
    let msg = o["status"]["conditions"].to_string();
    ensure!(msg.contains("e2e.audit") && msg.contains("spec.tables.exclude"), "{msg}");
    ensure!(step(&o) == "Pending", "{o}");
    // A target that already holds a moved table.
    let mut t = env.target_root().await?;
    t.query_drop("CREATE DATABASE IF NOT EXISTS e2e").await?;
    t.query_drop("CREATE TABLE e2e.items (id INT PRIMARY KEY)").await?;
    apply_yaml(&ns, &migration_yaml("conflict", ""))?;
    let o = wait_for(&ns, KIND, "conflict", "InvalidSpec", Duration::from_secs(60), |o| {
        o["status"]["conditions"].to_string().contains("already holds e2e.items")
    })?;
    ensure!(step(&o) == "Pending", "{o}");
    // Neither touched the target: no orders table was created.
    let orders: Vec<String> = t
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'e2e' AND TABLE_NAME = 'orders'")
        .await?;
    ensure!(orders.is_empty(), "a refused migration created tables");
    // Replication mode with the source in the target's GTID domain. (The
    // earlier ones go first: without the conflict they would start.)
    kubectl(&["delete", KIND, "keyless", "conflict", "-n", &ns])?;
    t.query_drop("DROP TABLE e2e.items").await?;
    apply_yaml(&ns, &migration_yaml("samedomain", "  incremental: {mode: replication}\n"))?;
    wait_for(&ns, KIND, "samedomain", "InvalidSpec", Duration::from_secs(60), |o| {
        o["status"]["conditions"].to_string().contains("gtid_domain_id 0 is also used by the target")
    })?;
    // A source that logs statements, not rows.
    let mut src = env.source_root().await?;
    src.query_drop("SET GLOBAL binlog_format = 'STATEMENT'").await?;
    apply_yaml(&ns, &migration_yaml("statements", ""))?;
    let seen = wait_for(&ns, KIND, "statements", "InvalidSpec", Duration::from_secs(60), |o| {
        o["status"]["conditions"].to_string().contains("binlog_format")
    });
    src.query_drop("SET GLOBAL binlog_format = 'ROW'").await?;
    seen?;
    // A missing source Secret, and a missing target cluster.
    apply_yaml(&ns, &migration_yaml("nosecret", "").replace("credentialsSecret: legacy", "credentialsSecret: nope"))?;
    wait_for(&ns, KIND, "nosecret", "InvalidSpec", Duration::from_secs(60), |o| {
        o["status"]["conditions"].to_string().contains("Secret nope")
    })?;
    apply_yaml(&ns, &migration_yaml("notarget", "").replace("cluster: db", "cluster: ghost"))?;
    wait_for(&ns, KIND, "notarget", "InvalidSpec", Duration::from_secs(60), |o| {
        o["status"]["conditions"].to_string().contains("MySQLCluster ghost does not exist")
    })?;
    env.operator.take();
    env.ns.passed();
    Ok(())
}

/// A source connection holding a transaction on a moved table.
async fn blocker(env: &Env) -> anyhow::Result<Conn> {
    let mut c = mysql(&env.source_addr(), "app_rw", "rw-pass").await?;
    c.query_drop("BEGIN").await?;
    c.query_drop("UPDATE e2e.items SET qty = qty WHERE order_id = 1").await?;
    Ok(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_switch_fails_unfenced_parks_when_exhausted_and_succeeds_once_rearmed() -> anyhow::Result<()> {
    let mut env = provision("mig-blocked", 1).await?;
    let ns = env.ns().to_string();
    let model = seed_source(&env, 10_000).await?;
    let w = ModelWriter::start(&env.source_addr(), "app_rw", "rw-pass", "orders", model, WRITE_INTERVAL);
    let items = items_writer(env.source_addr());
    let switch = SWITCH.replace("backoffSeconds: 1", "backoffSeconds: 1, maxAttempts: 2");
    apply_yaml(&ns, &migration_yaml("blocked", &switch))?;
    wait_step(&ns, KIND, "blocked", "Postponed", MIGRATION_TIMEOUT)?;
    let mut long = blocker(&env).await?;
    patch_merge(&ns, KIND, "blocked", r#"{"spec":{"postponeCompletion":false}}"#)?;
    let failed = wait_for(&ns, KIND, "blocked", "a failed switch attempt", MIGRATION_TIMEOUT, |o| {
        switch_report(o)["lastError"].as_str().is_some_and(|e| e.contains("blocked by"))
    })?;
    let last = switch_report(&failed)["lastError"].as_str().unwrap_or("").to_string();
    ensure!(last.contains("transaction open") && last.contains("app_rw"), "the blocker is not named: {last}");
    // The source serves writes again after the failed attempt.
    let before = w.acked();
    w.wait_for_progress(30, Duration::from_secs(20)).await.context("the source is writable after a failed attempt")?;
    ensure!(w.acked() > before);
    // Two attempts, then it parks: in sync, no third attempt.
    let parked = wait_for(&ns, KIND, "blocked", "attempts exhausted", MIGRATION_TIMEOUT, |o| {
        o["status"]["conditions"].to_string().contains("SwitchAttemptsExhausted")
    })?;
    ensure!(switch_report(&parked)["attempts"] == 2 && step(&parked) == "ReadyToComplete", "{}", parked["status"]);
    let events = events_of(&ns, "blocked")?;
    ensure!(events.contains("SwitchFailed") && events.contains("SwitchAttemptsExhausted"), "{events}");
    long.query_drop("COMMIT").await?;
    drop(long);
    holds_for("parked without a re-arm", Duration::from_secs(3), POLL, || {
        Ok(switch_report(&get(&ns, KIND, "blocked")?)["attempts"] == 2)
    })?;
    // Re-arm: a fresh count of attempts, and this one goes through.
    patch_merge(&ns, KIND, "blocked", r#"{"spec":{"switch":{"retry":1}}}"#)?;
    let done = wait_step(&ns, KIND, "blocked", "Complete", MIGRATION_TIMEOUT)?;
    let r = switch_report(&done);
    ensure!(r["retry"] == 1 && r["attempts"] == 1, "{}", done["status"]);
    assert_source_fenced(&env).await?;
    finish(&env, w, items).await?;
    env.operator.take();
    env.ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_postponed_leaves_the_source_serving() -> anyhow::Result<()> {
    let mut env = provision("mig-cancel", 1).await?;
    let ns = env.ns().to_string();
    let model = seed_source(&env, 5_000).await?;
    let w = ModelWriter::start(&env.source_addr(), "app_rw", "rw-pass", "orders", model, WRITE_INTERVAL);
    apply_yaml(&ns, &migration_yaml("cancelled", SWITCH))?;
    wait_step(&ns, KIND, "cancelled", "Postponed", MIGRATION_TIMEOUT)?;
    patch_merge(&ns, KIND, "cancelled", r#"{"spec":{"cancel":true}}"#)?;
    let o = wait_step(&ns, KIND, "cancelled", "Cancelled", MIGRATION_TIMEOUT)?;
    ensure!(condition_is(&o, "Succeeded", "False"), "{}", o["status"]);
    // The source keeps serving, unfenced; the data source still points at it.
    w.wait_for_progress(30, Duration::from_secs(20)).await.context("the source takes writes after a cancel")?;
    let m = w.stop().await?;
    model::assert_matches(&env.source_addr(), "root", &password(), "orders", &m).await?;
    let cm = get_json(&ns, "configmap", "orders-db")?.context("data-source ConfigMap")?;
    ensure!(cm["data"]["host"] == "127.0.0.1" && cm["data"]["generation"] == "1", "{cm}");
    env.operator.take();
    env.ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_in_seed_copy_incremental_and_mid_switch_loses_nothing() -> anyhow::Result<()> {
    let mut env = provision("mig-kill", 1).await?;
    let ns = env.ns().to_string();
    let model = seed_source(&env, ROWS).await?;
    let w = ModelWriter::start(&env.source_addr(), "app_rw", "rw-pass", "orders", model, WRITE_INTERVAL);
    let items = items_writer(env.source_addr());
    // A slow copy, so the kill lands in it.
    apply_yaml(&ns, &migration_yaml("killed", &format!("  throttle: {{maxRowsPerSecond: 10000}}\n{SWITCH}")))?;
    wait_for(&ns, KIND, "killed", "seed copy under way", MIGRATION_TIMEOUT, |o| {
        step(o) == "SeedCopy" && o["status"]["progress"]["rowsCopied"].as_i64().unwrap_or(0) > 0
    })?;
    env.operator.as_mut().context("operator")?.kill();

    env.operator = Some(Operator::start("mig-kill-2")?);
    wait_for(&ns, KIND, "killed", "syncing after the copy", MIGRATION_TIMEOUT, |o| {
        matches!(step(o), "Incremental" | "Accounts" | "Postponed")
    })?;
    env.operator.as_mut().context("operator")?.kill();

    // Third life: held inside the attempt after the fence, then killed.
    // The restarted task must unfence and attempt again.
    env.operator =
        Some(Operator::start_with_env("mig-kill-3", &[("SWITCHYARD_FAILPOINT", "switch-hold:Checksum:60000")])?);
    wait_step(&ns, KIND, "killed", "Postponed", MIGRATION_TIMEOUT)?;
    patch_merge(&ns, KIND, "killed", r#"{"spec":{"postponeCompletion":false}}"#)?;
    wait_for(&ns, KIND, "killed", "held at Checksum", MIGRATION_TIMEOUT, |o| {
        switch_report(o)["subStep"] == "Checksum"
    })?;
    env.operator.as_mut().context("operator")?.kill();
    let while_fenced = w.acked();

    // Fourth life: held after the data source moved, then killed. The
    // restarted task must roll forward.
    env.operator =
        Some(Operator::start_with_env("mig-kill-4", &[("SWITCHYARD_FAILPOINT", "switch-hold:KillConnections:60000")])?);
    let undone = wait_for(&ns, KIND, "killed", "the interrupted attempt undone", MIGRATION_TIMEOUT, |o| {
        switch_report(o)["lastError"].as_str().is_some_and(|e| e.contains("interrupted"))
    })?;
    ensure!(switch_report(&undone)["attempts"].as_i64().unwrap_or(0) >= 1, "{}", undone["status"]);
    wait_for(&ns, KIND, "killed", "held at KillConnections", MIGRATION_TIMEOUT, |o| {
        switch_report(o)["subStep"] == "KillConnections"
    })?;
    // Between the undo and the next fence (a backoff of 1 s at least) the
    // source took writes again.
    ensure!(w.acked() > while_fenced + 20, "the source stayed fenced after the undo");
    env.operator.as_mut().context("operator")?.kill();

    env.operator = Some(Operator::start("mig-kill-5")?);
    let done = wait_step(&ns, KIND, "killed", "Complete", MIGRATION_TIMEOUT)?;
    ensure!(switch_report(&done)["generation"] == 2, "one switch publishes one generation: {}", done["status"]);
    assert_source_fenced(&env).await?;
    finish(&env, w, items).await?;
    assert_accounts_moved(&env).await?;
    assert_data_source_on_target(&env)?;
    env.operator.take();
    env.ns.passed();
    Ok(())
}

/// The source is a MySQLCluster too: the data source's Service moves from
/// selecting the old cluster's primary to the new one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_to_cluster_under_writes() -> anyhow::Result<()> {
    let mut ns = TestNamespace::create("mig-c2c")?;
    let ns_name = ns.as_str().to_string();
    let mut operator = Some(Operator::start("mig-c2c")?);
    for name in ["old", CLUSTER] {
        apply_yaml(
            &ns_name,
            &format!(
                "apiVersion: switchyard.io/v1alpha1\nkind: MySQLCluster\nmetadata: {{name: {name}}}\nspec:\n  image: {image}\n  replicas: 1\n  storage: {{size: 1Gi}}\n",
                image = switchyard_e2e::harness::server_image(),
            ),
        )?;
    }
    let old_ip = wait_until("the old cluster's primary", PROVISION_TIMEOUT, POLL, || primary_ip(&ns_name, "old"))?;
    let new_ip = wait_until("the new cluster's primary", PROVISION_TIMEOUT, POLL, || primary_ip(&ns_name, CLUSTER))?;
    let old_root = secret_value(&ns_name, "old-credentials", "root-password")?;
    let new_root = secret_value(&ns_name, &format!("{CLUSTER}-credentials"), "root-password")?;
    let m = model::seed(&old_ip, "root", &old_root, "orders", 20_000).await?;
    let mut c = mysql(&old_ip, "root", &old_root).await?;
    c.query_drop("CREATE USER 'app_rw'@'%' IDENTIFIED BY 'rw-pass'").await?;
    c.query_drop("GRANT SELECT, INSERT, UPDATE, DELETE ON e2e.* TO 'app_rw'@'%'").await?;
    let w = ModelWriter::start(&old_ip, "app_rw", "rw-pass", "orders", m, WRITE_INTERVAL);
    w.wait_for_progress(20, Duration::from_secs(20)).await?;
    apply_yaml(
        &ns_name,
        &format!(
            "apiVersion: switchyard.io/v1alpha1\nkind: Migration\nmetadata: {{name: c2c}}\nspec:\n  source: {{cluster: old}}\n\
             \x20 target: {{cluster: {CLUSTER}}}\n  databases: [e2e]\n  accounts: {{users: [\"app_rw@%\"]}}\n\
             \x20 postponeCompletion: false\n{SWITCH}"
        ),
    )?;
    let done = wait_step(&ns_name, KIND, "c2c", "Complete", MIGRATION_TIMEOUT)?;
    let r = switch_report(&done);
    ensure!(r["oldEndpoint"] == format!("old-primary.{ns_name}.svc:3306").as_str(), "{r}");
    ensure!(r["newEndpoint"] == format!("{CLUSTER}-primary.{ns_name}.svc:3306").as_str(), "{r}");
    let m = w.stop().await?;
    ensure!(m.acked >= 40, "the writer made only {} writes", m.acked);
    model::assert_matches(&new_ip, "root", &new_root, "orders", &m).await?;
    let mut t = mysql(&new_ip, "root", &new_root).await?;
    let (a, b) = (rows_of(&mut c, "orders", "id").await?, rows_of(&mut t, "orders", "id").await?);
    ensure!(a == b, "old and new e2e.orders differ ({} vs {} rows)", a.len(), b.len());
    let err = c.query_drop("INSERT INTO e2e.orders (id, k, c) VALUES (999999999, 1, 'late')").await;
    ensure!(err.is_err(), "the old cluster took a write after the switch");
    let svc = get_json(&ns_name, "service", "orders-db")?.context("no data-source Service")?;
    ensure!(svc["spec"]["selector"]["app.kubernetes.io/instance"] == CLUSTER, "{svc}");
    let cm = get_json(&ns_name, "configmap", "orders-db")?.context("no data-source ConfigMap")?;
    ensure!(cm["data"]["cluster"] == CLUSTER && cm["data"]["generation"] == "2", "{cm}");
    let mut app = mysql(&new_ip, "app_rw", "rw-pass").await.context("app_rw logs in on the new cluster")?;
    app.query_drop("INSERT INTO e2e.orders (id, k, c) VALUES (999999998, 1, 'moved')").await?;
    operator.take();
    ns.passed();
    Ok(())
}

/// Deleting a Migration inside a switch attempt (held after the fence)
/// takes the fence down before the object goes: the finalizer waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_mid_switch_takes_the_fence_down() -> anyhow::Result<()> {
    let hold = [("SWITCHYARD_FAILPOINT", "switch-hold:Checksum:60000")];
    let mut env = provision_with_env("mig-delete", 1, &hold).await?;
    let ns = env.ns().to_string();
    seed_source(&env, 5_000).await?;
    apply_yaml(&ns, &migration_yaml("deleted", &format!("  postponeCompletion: false\n{SWITCH}")))?;
    let held = wait_for(&ns, KIND, "deleted", "held at Checksum", MIGRATION_TIMEOUT, |o| {
        switch_report(o)["subStep"] == "Checksum"
    })?;
    let finalizers = held["metadata"]["finalizers"].to_string();
    ensure!(finalizers.contains("switchyard.io/migration-fence"), "no fence finalizer: {finalizers}");
    let mut c = env.source_root().await?;
    ensure!(
        c.query_drop("INSERT INTO e2e.orders (id, k, c) VALUES (999999990, 1, 'fenced')").await.is_err(),
        "the source is not fenced at Checksum"
    );
    kubectl(&["delete", KIND, "deleted", "-n", &ns, "--wait=false"])?;
    wait_until("the Migration gone", Duration::from_secs(90), POLL, || {
        Ok(get_json(&ns, KIND, "deleted")?.is_none().then_some(()))
    })?;
    c.query_drop("INSERT INTO e2e.orders (id, k, c) VALUES (999999991, 1, 'unfenced')").await?;
    let triggers: Vec<String> =
        c.query("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'e2e'").await?;
    ensure!(triggers.is_empty(), "fence triggers left on the source: {triggers:?}");
    env.operator.take();
    env.ns.passed();
    Ok(())
}
