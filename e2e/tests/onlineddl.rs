//! e2e of OnlineDDL against a MySQLCluster, driven with kubectl as a user
//! would. In every case a writer inserts, updates and deletes rows of the
//! changed table throughout and keeps a model of what was acknowledged; the
//! case ends with the table compared to that model row by row.
//!
//!   cargo test -p switchyard-e2e --test onlineddl -- --test-threads=1

use std::time::Duration;

use anyhow::{Context, ensure};
use mysql_async::prelude::Queryable;
use serde_json::Value;
use switchyard_e2e::harness::fault::skip_on_external_cluster;
use switchyard_e2e::harness::kubectl::{get_json, secret_value};
use switchyard_e2e::harness::model::{self, ModelWriter};
use switchyard_e2e::harness::operator::Operator;
use switchyard_e2e::harness::resource::{self, condition, events_of, step};
use switchyard_e2e::harness::wait::holds_for;
use switchyard_e2e::harness::{TestNamespace, apply_yaml, kubectl, mysql, wait_until, wait_until_async};

const CLUSTER: &str = "db";
const POLL: Duration = Duration::from_millis(200);
const PROVISION_TIMEOUT: Duration = Duration::from_secs(240);
const DDL_TIMEOUT: Duration = Duration::from_secs(180);
const WRITE_INTERVAL: Duration = Duration::from_millis(5);
const ROWS: i64 = 100_000;

struct Env {
    ns: TestNamespace,
    _operator: Option<Operator>,
    ip: String,
    root: String,
}

impl Env {
    fn ns(&self) -> &str {
        self.ns.as_str()
    }

    async fn conn(&self) -> anyhow::Result<mysql_async::Conn> {
        mysql(&self.ip, "root", &self.root).await
    }
}

fn secret(ns: &str, key: &str) -> anyhow::Result<String> {
    secret_value(ns, &format!("{CLUSTER}-credentials"), key)
}

/// A one-instance cluster and an operator; returns once the primary takes writes.
async fn provision(prefix: &str) -> anyhow::Result<Env> {
    let ns = TestNamespace::create(prefix)?;
    let operator = Operator::start(prefix)?;
    apply_yaml(
        ns.as_str(),
        &format!(
            "apiVersion: switchyard.io/v1alpha1\nkind: MySQLCluster\nmetadata: {{name: {CLUSTER}}}\nspec:\n  image: {image}\n  replicas: 1\n  storage: {{size: 1Gi}}\n",
            image = switchyard_e2e::harness::server_image(),
        ),
    )?;
    let ip = wait_until("the cluster's primary", PROVISION_TIMEOUT, POLL, || {
        let c = get_json(ns.as_str(), "mysqlcluster", CLUSTER)?.context("no cluster")?;
        let primary = c["status"]["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["role"] == "primary" && i["healthy"] == true && i["readOnly"] == false)
            .and_then(|i| i["address"].as_str().map(String::from));
        Ok(primary)
    })?;
    let root = secret(ns.as_str(), "root-password")?;
    Ok(Env { ns, _operator: Some(operator), ip, root })
}

fn ddl_yaml(name: &str, table: &str, alter: &str, extra: &str) -> String {
    format!(
        "apiVersion: switchyard.io/v1alpha1\nkind: OnlineDDL\nmetadata: {{name: {name}}}\nspec:\n  cluster: {CLUSTER}\n  database: e2e\n  table: {table}\n  alter: \"{alter}\"\n{extra}"
    )
}

fn ddl(ns: &str, name: &str) -> anyhow::Result<Value> {
    resource::get(ns, "onlineddl", name)
}

fn attempts(obj: &Value) -> i64 {
    obj["status"]["cutover"]["attempts"].as_i64().unwrap_or(0)
}

/// Waits for `want`; a Failed change ends the wait at once.
fn wait_step(ns: &str, name: &str, want: &str, timeout: Duration) -> anyhow::Result<Value> {
    resource::wait_step(ns, "onlineddl", name, want, timeout)
}

/// Copying, with some rows already in the shadow.
fn wait_copying(ns: &str, name: &str) -> anyhow::Result<()> {
    wait_until(&format!("{name} copying"), DDL_TIMEOUT, POLL, || {
        let o = ddl(ns, name)?;
        Ok((step(&o) == "Copying" && o["status"]["progress"]["rowsCopied"].as_i64().unwrap_or(0) > 0).then_some(()))
    })
}

fn patch(ns: &str, name: &str, merge: &str) -> anyhow::Result<String> {
    resource::patch_merge(ns, "onlineddl", name, merge)
}

async fn tables(env: &Env) -> anyhow::Result<Vec<String>> {
    let mut c = env.conn().await?;
    Ok(c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'e2e' ORDER BY TABLE_NAME")
        .await?)
}

async fn columns(env: &Env, table: &str) -> anyhow::Result<Vec<String>> {
    let mut c = env.conn().await?;
    Ok(c.query(format!(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'e2e' AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
    ))
    .await?)
}

async fn start_writer(env: &Env, table: &str, rows: i64) -> anyhow::Result<ModelWriter> {
    let m = model::seed(&env.ip, "root", &env.root, table, rows).await?;
    let w = ModelWriter::start(&env.ip, "root", &env.root, table, m, WRITE_INTERVAL);
    w.wait_for_progress(20, Duration::from_secs(20)).await?;
    Ok(w)
}

async fn finish_writer(env: &Env, table: &str, w: ModelWriter) -> anyhow::Result<()> {
    w.wait_for_progress(20, Duration::from_secs(20)).await.context("writes resume after the change")?;
    let m = w.stop().await?;
    ensure!(m.acked >= 40, "the writer made only {} writes", m.acked);
    model::assert_matches(&env.ip, "root", &env.root, table, &m).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_change_under_writes_then_instant_change_then_old_table_retired() -> anyhow::Result<()> {
    let mut env = provision("ddl-basic").await?;
    let ns = env.ns().to_string();
    let w = start_writer(&env, "orders", ROWS).await?;
    apply_yaml(
        &ns,
        &ddl_yaml(
            "add-note",
            "orders",
            "ADD COLUMN note VARCHAR(32) NULL DEFAULT 'n'",
            "  strategy: shadow\n  retainOldTableSeconds: 8\n",
        ),
    )?;
    let done = wait_step(&ns, "add-note", "Complete", DDL_TIMEOUT)?;
    let s = &done["status"];
    ensure!(condition(&done, "Succeeded").is_some_and(|c| c["status"] == "True"), "{s}");
    ensure!(s["method"] == "shadow", "{s}");
    ensure!(s["checksum"].as_str().is_some_and(|c| c.starts_with("passed")), "{s}");
    ensure!(s["progress"]["rowsCopied"].as_i64().unwrap_or(0) >= ROWS - ROWS / 5, "{s}");
    ensure!(attempts(&done) >= 1 && s["cutover"]["writeStallMillis"].is_i64(), "{s}");
    let old = s["oldTable"].as_str().context("oldTable")?.to_string();
    ensure!(columns(&env, "orders").await?.contains(&"note".to_string()));
    // The secondary index left out during the copy is back.
    let mut c = env.conn().await?;
    let indexes: Vec<String> = c
        .query("SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'e2e' AND TABLE_NAME = 'orders'")
        .await?;
    ensure!(indexes.contains(&"kc".to_string()) && indexes.contains(&"PRIMARY".to_string()), "{indexes:?}");
    ensure!(s["deferredIndexes"].as_array().is_some_and(|d| d.len() == 1), "{s}");
    let t = tables(&env).await?;
    ensure!(t.contains(&old) && !t.contains(&"orders_shadow".to_string()), "tables: {t:?}");
    finish_writer(&env, "orders", w).await?;

    // Instant-capable: ADD COLUMN at the end is instant on MariaDB 10.11.
    let w = ModelWriter::start(&env.ip, "root", &env.root, "orders", snapshot(&env, "orders").await?, WRITE_INTERVAL);
    apply_yaml(&ns, &ddl_yaml("add-flag", "orders", "ADD COLUMN flag INT NULL", ""))?;
    let done = wait_step(&ns, "add-flag", "Complete", Duration::from_secs(60))?;
    ensure!(done["status"]["method"] == "instant", "{}", done["status"]);
    ensure!(columns(&env, "orders").await?.contains(&"flag".to_string()));
    ensure!(!tables(&env).await?.contains(&"orders_shadow".to_string()));

    // postponeCompletion holds an instant change too, with nothing copied.
    apply_yaml(&ns, &ddl_yaml("add-later", "orders", "ADD COLUMN later INT NULL", "  postponeCompletion: true\n"))?;
    let o = wait_step(&ns, "add-later", "Postponed", Duration::from_secs(60))?;
    ensure!(o["status"]["method"] == "instant", "{}", o["status"]);
    holds_for("the instant change is held", Duration::from_secs(3), POLL, || {
        Ok(step(&ddl(&ns, "add-later")?) == "Postponed")
    })?;
    ensure!(!columns(&env, "orders").await?.contains(&"later".to_string()), "applied while postponed");
    ensure!(!tables(&env).await?.contains(&"orders_shadow".to_string()), "a held instant change copies nothing");
    patch(&ns, "add-later", r#"{"spec":{"postponeCompletion":false}}"#)?;
    wait_step(&ns, "add-later", "Complete", Duration::from_secs(60))?;
    ensure!(columns(&env, "orders").await?.contains(&"later".to_string()));
    finish_writer(&env, "orders", w).await?;

    // The original, kept for retainOldTableSeconds, is dropped afterwards.
    wait_until("the old table dropped", Duration::from_secs(60), POLL, || {
        let o = ddl(&ns, "add-note")?;
        Ok(o["status"]["oldTableDroppedTime"].is_string().then_some(()))
    })?;
    ensure!(!tables(&env).await?.contains(&old), "{old} still exists");
    env.ns.passed();
    Ok(())
}

/// The model of a table as it is now (for a second case on the same table).
async fn snapshot(env: &Env, table: &str) -> anyhow::Result<model::Model> {
    let mut c = env.conn().await?;
    let rows: Vec<(i64, i64, Option<String>)> = c.query(format!("SELECT id, k, c FROM e2e.{table}")).await?;
    let mut m = model::Model::default();
    for (id, k, cc) in rows {
        m.rows.insert(id, (k, cc));
    }
    Ok(m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_alter_is_refused_and_cancel_mid_copy_leaves_the_original() -> anyhow::Result<()> {
    let mut env = provision("ddl-refuse").await?;
    let ns = env.ns().to_string();
    model::seed(&env.ip, "root", &env.root, "items", 1000).await?;
    let before = columns(&env, "items").await?;

    // Lexically invalid: refused by validation.
    apply_yaml(&ns, &ddl_yaml("prefixed", "items", "ALTER TABLE items ADD c2 INT", ""))?;
    let o = wait_step(&ns, "prefixed", "Invalid", Duration::from_secs(30))?;
    let c = condition(&o, "Succeeded").context("Succeeded")?;
    ensure!(
        c["reason"] == "InvalidSpec" && c["message"].as_str().unwrap_or("").contains("without the leading ALTER TABLE"),
        "{c}"
    );

    // Refused by the server's parser, on the shadow table only.
    apply_yaml(&ns, &ddl_yaml("bad-type", "items", "ADD COLUMN x NOSUCHTYPE", ""))?;
    let o = wait_step(&ns, "bad-type", "Failed", Duration::from_secs(60))?;
    let c = condition(&o, "Succeeded").context("Succeeded")?;
    let msg = c["message"].as_str().unwrap_or("");
    ensure!(
        c["reason"] == "InvalidSpec" && msg.contains("the server refused the ALTER") && msg.contains("NOSUCHTYPE"),
        "{c}"
    );
    ensure!(columns(&env, "items").await? == before, "the original changed");
    ensure!(tables(&env).await? == vec!["items".to_string()], "leftover tables");

    // strategy instant with a change that cannot be instant: refused clearly.
    apply_yaml(&ns, &ddl_yaml("not-instant", "items", "MODIFY k BIGINT NOT NULL", "  strategy: instant\n"))?;
    let o = wait_step(&ns, "not-instant", "Failed", Duration::from_secs(60))?;
    let c = condition(&o, "Succeeded").context("Succeeded")?;
    ensure!(c["message"].as_str().unwrap_or("").contains("cannot be instant"), "{c}");
    ensure!(columns(&env, "items").await? == before && tables(&env).await? == vec!["items".to_string()]);

    // A new unique key through a shadow could drop colliding rows: refused.
    apply_yaml(&ns, &ddl_yaml("unique", "items", "ADD UNIQUE KEY uk (pad)", "  strategy: shadow\n"))?;
    let o = wait_step(&ns, "unique", "Failed", Duration::from_secs(60))?;
    let c = condition(&o, "Succeeded").context("Succeeded")?;
    ensure!(c["reason"] == "InvalidSpec" && c["message"].as_str().unwrap_or("").contains("unique key(s) uk"), "{c}");
    ensure!(tables(&env).await? == vec!["items".to_string()], "leftover tables");
    let events = events_of(&ns, "bad-type")?;
    ensure!(events.contains("InvalidSpec"), "no InvalidSpec event: {events}");

    // Cancel mid-copy: a throttled copy of 100k rows takes ~10 s.
    let w = start_writer(&env, "big", ROWS).await?;
    apply_yaml(
        &ns,
        &ddl_yaml("slow", "big", "ADD COLUMN y INT", "  strategy: shadow\n  throttle: {maxRowsPerSecond: 10000}\n"),
    )?;
    wait_copying(&ns, "slow")?;
    ensure!(tables(&env).await?.contains(&"big_shadow".to_string()));
    patch(&ns, "slow", r#"{"spec":{"cancel":true}}"#)?;
    let o = wait_step(&ns, "slow", "Cancelled", Duration::from_secs(60))?;
    ensure!(condition(&o, "Succeeded").is_some_and(|c| c["reason"] == "Cancelled"), "{}", o["status"]);
    let t = tables(&env).await?;
    ensure!(!t.contains(&"big_shadow".to_string()), "the shadow table is left: {t:?}");
    ensure!(!columns(&env, "big").await?.contains(&"y".to_string()), "the original changed");
    finish_writer(&env, "big", w).await?;
    // A cancelled change keeps no finalizer: deleting it is immediate.
    kubectl(&["delete", "onlineddl", "slow", "-n", &ns, "--timeout=30s"])?;

    // Deleting a change mid-copy: the finalizer drops the shadow first.
    let w = ModelWriter::start(&env.ip, "root", &env.root, "big", snapshot(&env, "big").await?, WRITE_INTERVAL);
    apply_yaml(
        &ns,
        &ddl_yaml("doomed", "big", "ADD COLUMN y INT", "  strategy: shadow\n  throttle: {maxRowsPerSecond: 10000}\n"),
    )?;
    wait_copying(&ns, "doomed")?;
    kubectl(&["delete", "onlineddl", "doomed", "-n", &ns, "--timeout=60s"])?;
    ensure!(get_json(&ns, "onlineddl", "doomed")?.is_none(), "still there after delete");
    let t = tables(&env).await?;
    ensure!(!t.contains(&"big_shadow".to_string()), "the shadow table is left after delete: {t:?}");
    finish_writer(&env, "big", w).await?;
    env.ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postponed_completion_stays_ready_in_sync_until_released() -> anyhow::Result<()> {
    let mut env = provision("ddl-postpone").await?;
    let ns = env.ns().to_string();
    let w = start_writer(&env, "orders", 20_000).await?;
    apply_yaml(
        &ns,
        &ddl_yaml("held", "orders", "ADD INDEX k_idx (k)", "  strategy: shadow\n  postponeCompletion: true\n"),
    )?;
    let o = wait_step(&ns, "held", "Postponed", DDL_TIMEOUT)?;
    ensure!(condition(&o, "ReadyToComplete").is_some_and(|c| c["status"] == "True" && c["reason"] == "Postponed"));
    let applied = |o: &Value| o["status"]["checkpoint"]["applied"].clone();
    let first = applied(&o);
    holds_for("held at Postponed with no attempt", Duration::from_secs(4), POLL, || {
        let o = ddl(&ns, "held")?;
        Ok(step(&o) == "Postponed" && attempts(&o) == 0)
    })?;
    let later = applied(&ddl(&ns, "held")?);
    ensure!(later != first, "the change apply did not move while postponed: {first} → {later}");
    ensure!(tables(&env).await?.contains(&"orders_shadow".to_string()));
    // A second change of the same table waits for the first.
    apply_yaml(&ns, &ddl_yaml("next", "orders", "ADD COLUMN after_held INT", "  strategy: shadow\n"))?;
    wait_step(&ns, "next", "Queued", Duration::from_secs(30))?;
    holds_for("the second change stays queued", Duration::from_secs(3), POLL, || {
        Ok(step(&ddl(&ns, "next")?) == "Queued")
    })?;
    patch(&ns, "held", r#"{"spec":{"postponeCompletion":false}}"#)?;
    let done = wait_step(&ns, "held", "Complete", Duration::from_secs(60))?;
    ensure!(attempts(&done) >= 1);
    wait_step(&ns, "next", "Complete", DDL_TIMEOUT)?;
    let cols = columns(&env, "orders").await?;
    ensure!(cols.contains(&"after_held".to_string()), "{cols:?}");
    finish_writer(&env, "orders", w).await?;
    env.ns.passed();
    Ok(())
}

/// A session that keeps a transaction open on the table: its metadata lock
/// blocks the cut-over's LOCK TABLES.
async fn blocker(env: &Env, table: &str) -> anyhow::Result<(mysql_async::Conn, u32)> {
    let mut c = env.conn().await?;
    c.query_drop("BEGIN").await?;
    let _: Vec<i64> = c.query(format!("SELECT id FROM e2e.{table} WHERE id = 1")).await?;
    let id = c.id();
    Ok((c, id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_cutover_is_bounded_postponable_and_completes_once_released() -> anyhow::Result<()> {
    let mut env = provision("ddl-blocked").await?;
    let ns = env.ns().to_string();
    let w = start_writer(&env, "orders", 20_000).await?;
    let (mut held, held_id) = blocker(&env, "orders").await?;
    apply_yaml(
        &ns,
        &ddl_yaml(
            "busy",
            "orders",
            "MODIFY c VARCHAR(80)",
            "  strategy: shadow\n  cutover: {maxAttempts: 50, backoffSeconds: 1, lockWaitTimeoutSeconds: 1}\n",
        ),
    )?;
    let o = wait_until("two failed attempts naming the blocker", DDL_TIMEOUT, POLL, || {
        let o = ddl(&ns, "busy")?;
        let named =
            o["status"]["cutover"]["lastError"].as_str().is_some_and(|e| e.contains(&format!("connection {held_id} ")));
        Ok((attempts(&o) >= 2 && named).then_some(o))
    })?;
    ensure!(step(&o) != "Complete");
    // Postpone while attempts are failing: no new attempt starts.
    patch(&ns, "busy", r#"{"spec":{"postponeCompletion":true}}"#)?;
    let o = wait_step(&ns, "busy", "Postponed", Duration::from_secs(30))?;
    let frozen = attempts(&o);
    holds_for("no attempt while postponed", Duration::from_secs(4), POLL, || {
        let o = ddl(&ns, "busy")?;
        Ok(attempts(&o) == frozen && step(&o) == "Postponed")
    })?;
    let events = events_of(&ns, "busy")?;
    ensure!(events.contains("CutoverFailed"), "no CutoverFailed event");
    held.query_drop("COMMIT").await?;
    drop(held);
    patch(&ns, "busy", r#"{"spec":{"postponeCompletion":false}}"#)?;
    let done = wait_step(&ns, "busy", "Complete", Duration::from_secs(60))?;
    ensure!(attempts(&done) > frozen && attempts(&done) <= 50, "{}", done["status"]);
    finish_writer(&env, "orders", w).await?;
    env.ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_attempts_park_in_sync_until_rearmed() -> anyhow::Result<()> {
    let mut env = provision("ddl-exhaust").await?;
    let ns = env.ns().to_string();
    let w = start_writer(&env, "orders", 20_000).await?;
    let (mut held, _) = blocker(&env, "orders").await?;
    apply_yaml(
        &ns,
        &ddl_yaml(
            "stuck",
            "orders",
            "ADD COLUMN z INT",
            "  strategy: shadow\n  cutover: {maxAttempts: 2, backoffSeconds: 1, lockWaitTimeoutSeconds: 1}\n",
        ),
    )?;
    wait_until("attempts exhausted", DDL_TIMEOUT, POLL, || {
        let o = ddl(&ns, "stuck")?;
        Ok(condition(&o, "ReadyToComplete").is_some_and(|c| c["reason"] == "CutoverAttemptsExhausted").then_some(o))
    })?;
    holds_for("parked, not retrying", Duration::from_secs(4), POLL, || {
        let o = ddl(&ns, "stuck")?;
        Ok(attempts(&o) == 2 && step(&o) == "ReadyToComplete")
    })?;
    let events = events_of(&ns, "stuck")?;
    ensure!(events.contains("CutoverAttemptsExhausted"), "no CutoverAttemptsExhausted event");
    held.query_drop("COMMIT").await?;
    drop(held);
    // Re-arm the GitOps way: a new value of spec.cutover.retry.
    patch(&ns, "stuck", r#"{"spec":{"cutover":{"retry":1}}}"#)?;
    let done = wait_step(&ns, "stuck", "Complete", Duration::from_secs(60))?;
    ensure!(done["status"]["cutover"]["retry"] == 1 && attempts(&done) >= 1, "{}", done["status"]);
    ensure!(columns(&env, "orders").await?.contains(&"z".to_string()));
    finish_writer(&env, "orders", w).await?;
    env.ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_mid_copy_and_mid_cutover_resumes_from_status() -> anyhow::Result<()> {
    if skip_on_external_cluster("operator_killed_mid_copy_and_mid_cutover", "runs its own operators") {
        return Ok(());
    }
    let mut env = provision("ddl-kill-1").await?;
    let ns = env.ns().to_string();
    let w = start_writer(&env, "orders", ROWS).await?;
    apply_yaml(
        &ns,
        &ddl_yaml(
            "resilient",
            "orders",
            "ADD COLUMN note VARCHAR(16) NULL",
            "  strategy: shadow\n  throttle: {maxRowsPerSecond: 20000}\n  cutover: {lockWaitTimeoutSeconds: 20, backoffSeconds: 1}\n",
        ),
    )?;
    wait_until("a fifth of the copy", DDL_TIMEOUT, POLL, || {
        let o = ddl(&ns, "resilient")?;
        Ok((o["status"]["progress"]["rowsCopied"].as_i64().unwrap_or(0) >= ROWS / 5).then_some(()))
    })?;
    let mut first = env._operator.take().context("operator")?;
    first.kill();

    // The next operator holds the cut-over lock for 8 s; it is killed then.
    let mut second = Operator::start_with_env("ddl-kill-2", &[("SWITCHYARD_FAILPOINT", "cutover-hold-ms:8000")])?;
    let o = wait_step(&ns, "resilient", "CuttingOver", DDL_TIMEOUT)?;
    ensure!(o["status"]["checkpoint"].is_object());
    // The step is recorded before the lock is taken: wait for the lock itself
    // (LOCK TABLES ... WRITE holds MDL_SHARED_NO_READ_WRITE).
    wait_until_async("the cut-over lock held", Duration::from_secs(20), POLL, || async {
        let mut c = env.conn().await?;
        // MariaDB's metadata_lock_info plugin, MySQL's performance_schema.
        let held_sql = if switchyard_e2e::harness::is_mysql() {
            "SELECT COUNT(*) FROM performance_schema.metadata_locks WHERE OBJECT_TYPE = 'TABLE' \
             AND OBJECT_SCHEMA = 'e2e' AND OBJECT_NAME = 'orders' AND LOCK_TYPE = 'SHARED_NO_READ_WRITE' \
             AND LOCK_STATUS = 'GRANTED'"
        } else {
            "SELECT COUNT(*) FROM information_schema.METADATA_LOCK_INFO \
             WHERE TABLE_SCHEMA = 'e2e' AND TABLE_NAME = 'orders' AND LOCK_MODE = 'MDL_SHARED_NO_READ_WRITE'"
        };
        let held: Option<i64> = c.query_first(held_sql).await?;
        Ok((held.unwrap_or(0) > 0).then_some(()))
    })
    .await?;
    second.kill();
    // Its lock died with its connections: writes flow into the original again.
    w.wait_for_progress(50, Duration::from_secs(20)).await.context("writes resume after the kill")?;
    let t = tables(&env).await?;
    ensure!(t.contains(&"orders".to_string()) && t.contains(&"orders_shadow".to_string()), "{t:?}");

    let _third = Operator::start("ddl-kill-3")?;
    let done = wait_step(&ns, "resilient", "Complete", DDL_TIMEOUT)?;
    let s = &done["status"];
    ensure!(attempts(&done) >= 2, "{s}");
    let t = tables(&env).await?;
    ensure!(t.iter().filter(|n| *n == "orders").count() == 1 && !t.contains(&"orders_shadow".to_string()), "{t:?}");
    ensure!(columns(&env, "orders").await?.contains(&"note".to_string()));
    finish_writer(&env, "orders", w).await?;
    env.ns.passed();
    Ok(())
}
