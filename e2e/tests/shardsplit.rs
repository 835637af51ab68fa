//! e2e of ShardSplit, driven with kubectl as a user would. A writer that
//! routes by the routing ConfigMap, as a sharding-aware application would
//! (`harness::routed`), inserts, updates (moving rows between shards while
//! the old table serves) and deletes throughout, and keeps a model of every
//! acknowledged write. Each case compares the shards with that model and
//! with the old table, row by row, and checks every row sits in the shard
//! the rule names (with the server's own CRC32()).
//!
//!   cargo test -p switchyard-e2e --test shardsplit -- --test-threads=1

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use mysql_async::prelude::Queryable;
use serde_json::Value;
use switchyard_e2e::harness::kubectl::{get_json, secret_value};
use switchyard_e2e::harness::operator::Operator;
use switchyard_e2e::harness::resource::{condition, condition_is, events_of, patch_merge, wait_for, wait_step};
use switchyard_e2e::harness::routed::{self, Model, Place, RoutedWriter, Table};
use switchyard_e2e::harness::writer::primary_ip;
use switchyard_e2e::harness::{TestNamespace, apply_yaml, mysql, wait_until, wait_until_async};

const KIND: &str = "shardsplit";
const POLL: Duration = Duration::from_millis(200);
const PROVISION_TIMEOUT: Duration = Duration::from_secs(300);
const SPLIT_TIMEOUT: Duration = Duration::from_secs(240);
const WRITE_INTERVAL: Duration = Duration::from_millis(5);
const ROUTING: &str = "orders-routing";
/// Short waits between attempts, so a failed one is retried within a test.
const SWITCH: &str = "  switch: {lockWaitTimeoutSeconds: 5, backoffSeconds: 1}\n";

struct Env {
    ns: TestNamespace,
    operator: Option<Operator>,
    /// Primary IP and root password, by cluster.
    clusters: HashMap<String, (String, String)>,
}

impl Env {
    fn ns(&self) -> String {
        self.ns.as_str().to_string()
    }

    fn passwords(&self) -> HashMap<String, String> {
        self.clusters.iter().map(|(k, (_, pw))| (k.clone(), pw.clone())).collect()
    }

    async fn conn(&self, cluster: &str) -> anyhow::Result<mysql_async::Conn> {
        let (ip, pw) = &self.clusters[cluster];
        mysql(ip, "root", pw).await
    }

    async fn rows(&self, p: &Place) -> anyhow::Result<Table> {
        let (ip, pw) = &self.clusters[&p.cluster];
        routed::rows(ip, pw, p).await
    }

    async fn union(&self, shards: &[Place]) -> anyhow::Result<Table> {
        let mut all = Table::new();
        for s in shards {
            for (id, row) in self.rows(s).await? {
                ensure!(all.insert(id, row).is_none(), "row {id} is in two shards");
            }
        }
        Ok(all)
    }
}

async fn provision(prefix: &str, clusters: &[&str], operator_env: &[(&str, &str)]) -> anyhow::Result<Env> {
    provision_instances(prefix, clusters, 1, operator_env).await
}

async fn provision_instances(
    prefix: &str,
    clusters: &[&str],
    replicas: u32,
    operator_env: &[(&str, &str)],
) -> anyhow::Result<Env> {
    let ns = TestNamespace::create(prefix)?;
    let operator = Operator::start_with_env(prefix, operator_env)?;
    for name in clusters {
        apply_yaml(
            ns.as_str(),
            &format!(
                "apiVersion: switchyard.io/v1alpha1\nkind: MySQLCluster\nmetadata: {{name: {name}}}\nspec:\n  image: {image}\n  replicas: {replicas}\n  storage: {{size: 1Gi}}\n",
                image = switchyard_e2e::harness::server_image(),
            ),
        )?;
    }
    for name in clusters {
        wait_until(&format!("{name} to be healthy"), PROVISION_TIMEOUT, POLL, || {
            let c = get_json(ns.as_str(), "mysqlcluster", name)?.context("no cluster")?;
            Ok(instances_healthy(&c, replicas as usize).then_some(()))
        })?;
    }
    let mut map = HashMap::new();
    for name in clusters {
        let ip = wait_until(&format!("{name}'s primary"), PROVISION_TIMEOUT, POLL, || primary_ip(ns.as_str(), name))?;
        let pw = secret_value(ns.as_str(), &format!("{name}-credentials"), "root-password")?;
        map.insert(name.to_string(), (ip, pw));
    }
    Ok(Env { ns, operator: Some(operator), clusters: map })
}

fn instances_healthy(cluster: &Value, n: usize) -> bool {
    cluster["status"]["instances"].as_array().is_some_and(|is| is.len() == n && is.iter().all(|i| i["healthy"] == true))
}

/// `e2e.orders` with `rows` rows on `cluster`: an AUTO_INCREMENT id, the
/// sharding key `customer_id` (500 customers), a secondary index.
async fn seed(env: &Env, cluster: &str, rows: i64) -> anyhow::Result<Model> {
    let mut c = env.conn(cluster).await?;
    c.query_drop("CREATE DATABASE IF NOT EXISTS e2e").await?;
    c.query_drop(
        "CREATE TABLE e2e.orders (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, \
         amount INT NOT NULL, note VARCHAR(40) NOT NULL, KEY by_customer (customer_id))",
    )
    .await?;
    let mut from = 1;
    while from <= rows {
        let to = (from + 49_999).min(rows);
        c.query_drop(format!(
            "INSERT INTO e2e.orders (id, customer_id, amount, note) \
             SELECT seq, seq % 500, seq % 1000, 'seed' FROM {}",
            switchyard_e2e::harness::numbers::numbers(from, to)
        ))
        .await?;
        from = to + 1;
    }
    let mut m = Model::default();
    for id in 1..=rows {
        m.rows.insert(id, (id % 500, id % 1000));
    }
    Ok(m)
}

fn old_table(cluster: &str) -> Place {
    Place { cluster: cluster.into(), database: "e2e".into(), table: "orders".into() }
}

fn shard_places(split: &Value) -> Vec<Place> {
    split["status"]["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| Place {
            cluster: s["target"]["cluster"].as_str().unwrap_or_default().into(),
            database: s["target"]["database"].as_str().unwrap_or_default().into(),
            table: s["target"]["table"].as_str().unwrap_or_default().into(),
        })
        .collect()
}

fn routing_phase(ns: &str) -> anyhow::Result<String> {
    let cm = get_json(ns, "configmap", ROUTING)?.context("no routing ConfigMap")?;
    Ok(cm["data"]["phase"].as_str().unwrap_or_default().to_string())
}

/// Waits until the old table equals the union of the shards (a sync
/// running in one direction or the other catches up); the timeout error
/// names the differing keys.
async fn converge(env: &Env, old: &Place, shards: &[Place]) -> anyhow::Result<Table> {
    wait_until_async("the old table to equal the union of the shards", Duration::from_secs(60), POLL, || async {
        let (a, b) = (env.rows(old).await?, env.union(shards).await?);
        if a == b {
            return Ok(Some(a));
        }
        let only_old: Vec<_> = a.keys().filter(|k| !b.contains_key(k)).take(5).collect();
        let only_shards: Vec<_> = b.keys().filter(|k| !a.contains_key(k)).take(5).collect();
        let changed: Vec<_> = a.iter().filter(|(k, v)| b.get(k).is_some_and(|w| w != *v)).take(5).collect();
        anyhow::bail!(
            "old table ({} rows) and shards ({} rows) differ: only old {only_old:?}, only shards {only_shards:?}, changed {changed:?}",
            a.len(),
            b.len()
        )
    })
    .await
}

/// Every row sits in the shard the rule names, by the server's CRC32().
async fn assert_placed(env: &Env, shards: &[Place], misplaced_where: impl Fn(usize) -> String) -> anyhow::Result<()> {
    for (i, s) in shards.iter().enumerate() {
        let mut c = env.conn(&s.cluster).await?;
        let n: Option<u64> =
            c.query_first(format!("SELECT COUNT(*) FROM {} WHERE {}", s.sql(), misplaced_where(i))).await?;
        ensure!(n == Some(0), "{} holds {n:?} rows of other shards", s.sql());
    }
    Ok(())
}

fn split_yaml(name: &str, body: &str) -> String {
    format!(
        "apiVersion: switchyard.io/v1alpha1\nkind: ShardSplit\nmetadata: {{name: {name}}}\nspec:\n\
         \x20 routing: {{configMap: {ROUTING}}}\n{body}{SWITCH}"
    )
}

const HASH_SPEC: &str = "  source: {cluster: db, database: e2e, table: orders}\n\
    \x20 rule: {column: customer_id, algorithm: hash, shards: 4}\n\
    \x20 targets: {template: {table: \"orders_{shard}\"}}\n";

fn hash_misplaced(i: usize) -> String {
    format!("CRC32(customer_id) % 4 <> {i}")
}

/// Split into 4 tables of one cluster by hash, under routed writes: the
/// copy, postponed dual-write, a rollback and forward again, retirement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_cluster_hash_split_rollback_forward_and_retire() -> anyhow::Result<()> {
    let mut env = provision("split-hash", &["db"], &[]).await?;
    let ns = env.ns();
    let model = seed(&env, "db", 20_000).await?;
    apply_yaml(
        &ns,
        &split_yaml("orders", &format!("{HASH_SPEC}  postponeCompletion: true\n  retire: {{afterSeconds: 3600}}\n")),
    )?;
    wait_until("the routing ConfigMap", SPLIT_TIMEOUT, POLL, || get_json(&ns, "configmap", ROUTING))?;
    ensure!(routing_phase(&ns)? == "source");
    let w = RoutedWriter::start(&ns, ROUTING, env.passwords(), model, WRITE_INTERVAL);
    let held = wait_step(&ns, KIND, "orders", "Postponed", SPLIT_TIMEOUT)?;
    let shards = shard_places(&held);
    ensure!(shards.len() == 4, "{}", held["status"]);
    for s in held["status"]["shards"].as_array().context("no shards")? {
        ensure!(s["checksumMatched"] == true, "shard not checksummed: {s}");
    }
    let copied: i64 =
        held["status"]["shards"].as_array().unwrap().iter().map(|s| s["rowsCopied"].as_i64().unwrap_or(0)).sum();
    ensure!(copied >= 19_000, "the per-shard checksums cover {copied} rows");
    let mut c = env.conn("db").await?;
    for s in &shards {
        let idx: Vec<String> =
            c.query(format!("SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'e2e' AND TABLE_NAME = '{}' AND INDEX_NAME = 'by_customer'", s.table)).await?;
        ensure!(!idx.is_empty(), "{} lacks the old table's secondary index after the copy", s.sql());
    }
    w.wait_for_progress(50, Duration::from_secs(30)).await?;

    // Release: dual-write. Writes now go to the shards, with ids from the
    // shards' own AUTO_INCREMENT ranges.
    patch_merge(&ns, KIND, "orders", r#"{"spec":{"postponeCompletion":false}}"#)?;
    let dual = wait_step(&ns, KIND, "orders", "DualWrite", SPLIT_TIMEOUT)?;
    ensure!(routing_phase(&ns)? == "dual-write");
    ensure!(dual["status"]["autoIncrement"]["column"] == "id", "{}", dual["status"]);
    let gen_dual = dual["status"]["routing"]["generation"].as_i64().unwrap_or(0);
    w.wait_for_progress(150, Duration::from_secs(60)).await?;
    let m = w.stop().await?;
    ensure!(m.by_phase.get("dual-write").copied().unwrap_or(0) > 50, "few dual-write writes: {:?}", m.by_phase);
    let old = old_table("db");
    let both = converge(&env, &old, &shards).await.context("during dual-write the old table = union of shards")?;
    routed::assert_model(&both, &m)?;
    assert_placed(&env, &shards, hash_misplaced).await?;
    ensure!(
        c.query_drop("INSERT INTO e2e.orders (customer_id, amount, note) VALUES (1, 1, 'stale app')").await.is_err(),
        "the old table takes application writes in dual-write"
    );

    // Rollback: applications back on the old table, the shards fenced and
    // kept in sync.
    let w = RoutedWriter::start(&ns, ROUTING, env.passwords(), m, WRITE_INTERVAL);
    patch_merge(&ns, KIND, "orders", r#"{"spec":{"rollback":true}}"#)?;
    let back = wait_step(&ns, KIND, "orders", "RolledBack", SPLIT_TIMEOUT)?;
    ensure!(routing_phase(&ns)? == "source");
    ensure!(back["status"]["routing"]["generation"].as_i64().unwrap_or(0) > gen_dual, "{}", back["status"]);
    let before = w.acked();
    w.wait_for_progress(100, Duration::from_secs(60)).await?;
    let m = w.stop().await?;
    ensure!(m.acked > before, "no writes after the rollback");
    let both = converge(&env, &old, &shards).await.context("rolled back: shards follow the old table")?;
    routed::assert_model(&both, &m)?;
    assert_placed(&env, &shards, hash_misplaced).await?;
    ensure!(
        c.query_drop("INSERT INTO e2e.orders_0 (customer_id, amount, note) VALUES (1, 1, 'stale app')").await.is_err(),
        "a shard takes application writes after the rollback"
    );

    // Forward again, then retire.
    let w = RoutedWriter::start(&ns, ROUTING, env.passwords(), m, WRITE_INTERVAL);
    patch_merge(&ns, KIND, "orders", r#"{"spec":{"rollback":false}}"#)?;
    wait_step(&ns, KIND, "orders", "DualWrite", SPLIT_TIMEOUT)?;
    w.wait_for_progress(100, Duration::from_secs(60)).await?;
    patch_merge(&ns, KIND, "orders", r#"{"spec":{"retire":{"now":true}}}"#)?;
    let done = wait_step(&ns, KIND, "orders", "Complete", SPLIT_TIMEOUT)?;
    w.wait_for_progress(50, Duration::from_secs(60)).await?;
    let m = w.stop().await?;
    ensure!(condition_is(&done, "Succeeded", "True"), "{}", done["status"]);
    ensure!(routing_phase(&ns)? == "shards");
    let retired = done["status"]["retiredTable"].as_str().context("no retiredTable")?.to_string();
    ensure!(retired.starts_with("e2e._orders_retired_"), "{retired}");
    let left: Vec<String> = c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'e2e' AND TABLE_NAME LIKE '%orders%' ORDER BY 1").await?;
    ensure!(!left.contains(&"orders".to_string()) && left.iter().any(|t| retired.ends_with(t.as_str())), "{left:?}");
    let after = env.union(&shards).await?;
    routed::assert_model(&after, &m)?;
    assert_placed(&env, &shards, hash_misplaced).await?;
    let events = events_of(&ns, "orders")?;
    for want in ["DualWrite", "RolledBack", "Complete"] {
        ensure!(events.contains(want), "no {want} Event: {events}");
    }
    env.operator.take();
    env.ns.passed();
    Ok(())
}

/// Two shards on two MySQLClusters by key range; dual-write under writes;
/// retirement drops the old table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_two_clusters_by_range() -> anyhow::Result<()> {
    let mut env = provision("split-range", &["db", "db2"], &[]).await?;
    let ns = env.ns();
    let model = seed(&env, "db", 10_000).await?;
    apply_yaml(
        &ns,
        &split_yaml(
            "orders",
            "  source: {cluster: db, database: e2e, table: orders}\n\
             \x20 rule: {column: customer_id, algorithm: range, shards: 2, ranges: [{shard: 1, from: \"250\"}, {shard: 0, to: \"250\"}]}\n\
             \x20 targets: {list: [{cluster: db, database: e2e, table: orders_low}, {cluster: db2, database: sales, table: orders_high}]}\n\
             \x20 retire: {mode: drop}\n",
        ),
    )?;
    wait_until("the routing ConfigMap", SPLIT_TIMEOUT, POLL, || get_json(&ns, "configmap", ROUTING))?;
    let w = RoutedWriter::start(&ns, ROUTING, env.passwords(), model, WRITE_INTERVAL);
    let dual = wait_step(&ns, KIND, "orders", "DualWrite", SPLIT_TIMEOUT)?;
    let shards = shard_places(&dual);
    ensure!(shards[1].cluster == "db2" && shards[1].database == "sales", "{}", dual["status"]);
    w.wait_for_progress(150, Duration::from_secs(60)).await?;
    let m = w.stop().await?;
    ensure!(m.by_phase.get("dual-write").copied().unwrap_or(0) > 50, "{:?}", m.by_phase);
    let both = converge(&env, &old_table("db"), &shards).await?;
    routed::assert_model(&both, &m)?;
    let range = |i: usize| if i == 0 { "customer_id >= 250".to_string() } else { "customer_id < 250".to_string() };
    assert_placed(&env, &shards, range).await?;
    patch_merge(&ns, KIND, "orders", r#"{"spec":{"retire":{"now":true}}}"#)?;
    let done = wait_step(&ns, KIND, "orders", "Complete", SPLIT_TIMEOUT)?;
    ensure!(done["status"]["retiredTable"].is_null(), "dropped, not renamed: {}", done["status"]);
    let mut c = env.conn("db").await?;
    let left: Vec<String> =
        c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'e2e' AND TABLE_NAME LIKE '%orders%'").await?;
    ensure!(left == vec!["orders_low".to_string()], "{left:?}");
    routed::assert_model(&env.union(&shards).await?, &m)?;
    env.operator.take();
    env.ns.passed();
    Ok(())
}

/// SIGKILL in the copy, inside a switch attempt before the flip (undone)
/// and after it (finished); the split completes with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_mid_copy_and_mid_switch_loses_nothing() -> anyhow::Result<()> {
    let mut env = provision("split-kill", &["db"], &[]).await?;
    let ns = env.ns();
    let model = seed(&env, "db", 40_000).await?;
    apply_yaml(&ns, &split_yaml("orders", &format!("{HASH_SPEC}  throttle: {{maxRowsPerSecond: 4000}}\n")))?;
    wait_until("the routing ConfigMap", SPLIT_TIMEOUT, POLL, || get_json(&ns, "configmap", ROUTING))?;
    let w = RoutedWriter::start(&ns, ROUTING, env.passwords(), model, WRITE_INTERVAL);
    wait_for(&ns, KIND, "orders", "copying", SPLIT_TIMEOUT, |o| {
        o["status"]["step"] == "Copying" && o["status"]["progress"]["rowsCopied"].as_i64().unwrap_or(0) > 2_000
    })?;
    env.operator.as_mut().unwrap().kill();
    patch_merge(&ns, KIND, "orders", r#"{"spec":{"throttle":null}}"#)?;

    env.operator =
        Some(Operator::start_with_env("split-kill-2", &[("SWITCHYARD_FAILPOINT", "switch-hold:Checksum:600000")])?);
    wait_for(&ns, KIND, "orders", "held at Checksum", SPLIT_TIMEOUT, |o| {
        o["status"]["switch"]["subStep"] == "Checksum"
    })?;
    env.operator.as_mut().unwrap().kill();
    ensure!(routing_phase(&ns)? == "source", "flipped before the commit point");

    env.operator =
        Some(Operator::start_with_env("split-kill-3", &[("SWITCHYARD_FAILPOINT", "switch-hold:StartSync:600000")])?);
    let held = wait_for(&ns, KIND, "orders", "held at StartSync", SPLIT_TIMEOUT, |o| {
        o["status"]["switch"]["subStep"] == "StartSync"
    })?;
    let last = held["status"]["switch"]["lastError"].to_string();
    ensure!(last.contains("interrupted"), "the first attempt was not undone as interrupted: {last}");
    ensure!(routing_phase(&ns)? == "dual-write");
    env.operator.as_mut().unwrap().kill();

    env.operator = Some(Operator::start("split-kill-4")?);
    let dual = wait_step(&ns, KIND, "orders", "DualWrite", SPLIT_TIMEOUT)?;
    let shards = shard_places(&dual);
    w.wait_for_progress(100, Duration::from_secs(60)).await?;
    let m = w.stop().await?;
    let both = converge(&env, &old_table("db"), &shards).await?;
    routed::assert_model(&both, &m)?;
    assert_placed(&env, &shards, hash_misplaced).await?;
    env.operator.take();
    env.ns.passed();
    Ok(())
}

/// The source cluster switches over while the split is held at Postponed.
/// The forward sync's positions belong to the old primary: the split must
/// copy again on the new one (never publish shards that lack what was
/// written there), leave nothing errant on the demoted primary, and every
/// instance must end with the acknowledged rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_while_postponed_copies_again_on_the_new_primary() -> anyhow::Result<()> {
    let mut env = provision_instances("split-switch", &["db"], 3, &[]).await?;
    let ns = env.ns();
    let model = seed(&env, "db", 6_000).await?;
    let app = secret_value(&ns, "db-credentials", "app-password")?;
    let app_passwords: HashMap<String, String> = [("db".to_string(), app)].into();
    apply_yaml(&ns, &split_yaml("orders", &format!("{HASH_SPEC}  postponeCompletion: true\n")))?;
    wait_until("the routing ConfigMap", SPLIT_TIMEOUT, POLL, || get_json(&ns, "configmap", ROUTING))?;
    let w = RoutedWriter::start_as("app", &ns, ROUTING, app_passwords, model, WRITE_INTERVAL);
    let held = wait_step(&ns, KIND, "orders", "Postponed", SPLIT_TIMEOUT)?;
    let first = held["status"]["sourceServerId"].as_i64().context("no sourceServerId while held")?;
    let shards = shard_places(&held);
    w.wait_for_progress(50, Duration::from_secs(30)).await?;

    patch_merge(&ns, "mysqlcluster", "db", r#"{"spec":{"primary":1}}"#)?;
    let new_ip = wait_until("db-1 to take writes", Duration::from_secs(90), POLL, || {
        let c = get_json(&ns, "mysqlcluster", "db")?.context("no cluster")?;
        let writable = c["status"]["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["name"] == "db-1" && i["role"] == "primary" && i["healthy"] == true && i["readOnly"] == false)
            .and_then(|i| i["address"].as_str().map(String::from));
        Ok(writable)
    })?;
    env.clusters.get_mut("db").context("db")?.0 = new_ip;
    // Writes (key changes among them) on the new primary, while held.
    w.wait_for_progress(150, Duration::from_secs(60)).await.context("writes resume on the new primary")?;
    wait_for(&ns, KIND, "orders", "held again, on the new primary", SPLIT_TIMEOUT, |o| {
        o["status"]["step"] == "Postponed" && o["status"]["sourceServerId"].as_i64().is_some_and(|id| id != first)
    })?;
    ensure!(events_of(&ns, "orders")?.contains("PrimaryChanged"), "no PrimaryChanged Event");

    patch_merge(&ns, KIND, "orders", r#"{"spec":{"postponeCompletion":false}}"#)?;
    wait_step(&ns, KIND, "orders", "DualWrite", SPLIT_TIMEOUT)?;
    w.wait_for_progress(100, Duration::from_secs(60)).await?;
    let m = w.stop().await?;
    let old = old_table("db");
    let both = converge(&env, &old, &shards).await.context("in dual-write after the switchover")?;
    routed::assert_model(&both, &m)?;
    assert_placed(&env, &shards, hash_misplaced).await?;

    let c = wait_until("db to be healthy, nothing errant", Duration::from_secs(60), POLL, || {
        let c = get_json(&ns, "mysqlcluster", "db")?.context("no cluster")?;
        Ok((condition_is(&c, "Healthy", "True") && instances_healthy(&c, 3)).then_some(c))
    })?;
    let root = env.clusters["db"].1.clone();
    for ip in c["status"]["instances"].as_array().into_iter().flatten().filter_map(|i| i["address"].as_str()) {
        env.clusters.insert("db".into(), (ip.to_string(), root.clone()));
        let on = converge(&env, &old, &shards).await.with_context(|| format!("on {ip}"))?;
        routed::assert_model(&on, &m).with_context(|| format!("on {ip}"))?;
    }
    env.operator.take();
    env.ns.passed();
    Ok(())
}

/// Each bad spec gets InvalidSpec and an Event, and nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_touches_nothing() -> anyhow::Result<()> {
    let mut env = provision("split-bad", &["db"], &[]).await?;
    let ns = env.ns();
    seed(&env, "db", 1_000).await?;
    let mut c = env.conn("db").await?;
    c.query_drop("ALTER TABLE e2e.orders ADD COLUMN region INT NULL").await?;
    c.query_drop("CREATE TABLE e2e.taken_1 (id BIGINT PRIMARY KEY, other TEXT)").await?;
    let cases = [
        ("missing", "rule: {column: nope, algorithm: hash, shards: 2}", "no column nope"),
        ("nullable", "rule: {column: region, algorithm: mod, shards: 2}", "nullable"),
        (
            "overlap",
            "rule: {column: customer_id, algorithm: range, shards: 2, ranges: [{shard: 0, to: \"300\"}, {shard: 1, from: \"200\"}]}",
            "overlap",
        ),
        (
            "gap",
            "rule: {column: customer_id, algorithm: range, shards: 2, ranges: [{shard: 0, to: \"100\"}]}",
            "1 ranges for 2 shards",
        ),
    ];
    for (name, rule, why) in cases {
        apply_yaml(
            &ns,
            &split_yaml(
                name,
                &format!(
                    "  source: {{cluster: db, database: e2e, table: orders}}\n  {rule}\n  targets: {{template: {{table: \"{name}_{{shard}}\"}}}}\n"
                ),
            ),
        )?;
        let o = wait_for(&ns, KIND, name, "InvalidSpec", SPLIT_TIMEOUT, invalid_spec)?;
        let message = condition(&o, "Succeeded").unwrap()["message"].to_string();
        ensure!(message.contains(why), "{name}: {message}");
        ensure!(events_of(&ns, name)?.contains("InvalidSpec"), "{name}: no InvalidSpec Event");
    }
    apply_yaml(
        &ns,
        &split_yaml(
            "taken",
            "  source: {cluster: db, database: e2e, table: orders}\n  rule: {column: customer_id, algorithm: hash, shards: 2}\n\
             \x20 targets: {template: {table: \"taken_{shard}\"}}\n",
        ),
    )?;
    let o = wait_for(&ns, KIND, "taken", "InvalidSpec", SPLIT_TIMEOUT, invalid_spec)?;
    ensure!(o["status"]["conditions"].to_string().contains("different definition"), "{}", o["status"]);
    let one = kubectl_apply_fails(
        &ns,
        &split_yaml(
            "one",
            "  source: {cluster: db, database: e2e, table: orders}\n  rule: {column: customer_id, algorithm: hash, shards: 1}\n\
             \x20 targets: {template: {table: \"one_{shard}\"}}\n",
        ),
    );
    let refused_by = match one {
        Ok(message) => message,
        Err(_) => {
            let o = wait_for(&ns, KIND, "one", "InvalidSpec", SPLIT_TIMEOUT, invalid_spec)?;
            condition(&o, "Succeeded").map(|c| c["message"].to_string()).unwrap_or_default()
        }
    };
    ensure!(refused_by.contains("shards"), "shards: 1 refused without saying why: {refused_by}");
    let tables: Vec<String> =
        c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'e2e' ORDER BY 1").await?;
    ensure!(tables == vec!["orders".to_string(), "taken_1".to_string()], "something was created: {tables:?}");
    // MySQL's sys schema ships triggers of its own.
    let triggers: Vec<String> =
        c.query("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA <> 'sys'").await?;
    ensure!(triggers.is_empty(), "{triggers:?}");
    ensure!(get_json(&ns, "configmap", ROUTING)?.is_none(), "a routing ConfigMap was published for a bad spec");
    env.operator.take();
    env.ns.passed();
    Ok(())
}

fn invalid_spec(o: &Value) -> bool {
    condition(o, "Succeeded").is_some_and(|c| c["reason"] == "InvalidSpec")
}

/// Ok(the API server's refusal) when `kubectl apply` fails.
fn kubectl_apply_fails(ns: &str, yaml: &str) -> Result<String, ()> {
    match apply_yaml(ns, yaml) {
        Err(e) => Ok(format!("{e:#}")),
        Ok(()) => Err(()),
    }
}
