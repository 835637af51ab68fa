//! Every data-moving kind against every table of the schema zoo
//! (`e2e/fixtures/schema-zoo.sql`): each table comes out exact, row by row
//! against what a concurrent writer was told, on every instance, or is
//! refused up front with the reason, before anything is copied.
//!
//!   cargo test -p switchyard-e2e --test zoo -- --test-threads=1

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use mysql_async::prelude::Queryable;
use serde_json::Value;
use switchyard_e2e::harness::kubectl::{get_json, secret_value};
use switchyard_e2e::harness::operator::Operator;
use switchyard_e2e::harness::resource::{self, condition, step};
use switchyard_e2e::harness::zoo::{self, At, TABLES};
use switchyard_e2e::harness::{TestNamespace, apply_yaml, kubectl, mysql, wait_until};

const POLL: Duration = Duration::from_millis(300);
const PROVISION_TIMEOUT: Duration = Duration::from_secs(240);
const MOVE_TIMEOUT: Duration = Duration::from_secs(300);
const WRITE_INTERVAL: Duration = Duration::from_millis(3);

struct Cluster {
    name: String,
    /// Every instance's address, the primary first.
    addresses: Vec<String>,
    root: String,
}

impl Cluster {
    fn primary(&self) -> &str {
        &self.addresses[0]
    }

    fn at(&self, ip: &str) -> At {
        At::root(ip, &self.root)
    }

    fn at_primary(&self) -> At {
        self.at(self.primary())
    }

    /// `(each instance, the mirror at mirror)`.
    fn against(&self, mirror: &At) -> Vec<(At, At)> {
        self.addresses.iter().map(|a| (self.at(a), mirror.clone())).collect()
    }
}

/// A MySQLCluster of `replicas` instances, once every instance is healthy.
fn provision(ns: &str, name: &str, replicas: usize) -> anyhow::Result<Cluster> {
    apply_yaml(
        ns,
        &format!(
            "apiVersion: switchyard.io/v1alpha1\nkind: MySQLCluster\nmetadata: {{name: {name}}}\nspec:\n  image: {image}\n  replicas: {replicas}\n  storage: {{size: 1Gi}}\n",
            image = switchyard_e2e::harness::server_image(),
        ),
    )?;
    let addresses = wait_until(&format!("cluster {name} healthy"), PROVISION_TIMEOUT, POLL, || {
        let c = get_json(ns, "mysqlcluster", name)?.context("no cluster")?;
        let is = c["status"]["instances"].as_array().cloned().unwrap_or_default();
        if is.len() != replicas || !is.iter().all(|i| i["healthy"] == true) {
            return Ok(None);
        }
        let Some(primary) = is.iter().find(|i| i["role"] == "primary" && i["readOnly"] == false) else {
            return Ok(None);
        };
        let mut out = vec![primary["address"].as_str().unwrap_or_default().to_string()];
        out.extend(
            is.iter().filter(|i| i["role"] != "primary").filter_map(|i| i["address"].as_str().map(String::from)),
        );
        Ok(Some(out))
    })?;
    let root = secret_value(ns, &format!("{name}-credentials"), "root-password")?;
    Ok(Cluster { name: name.to_string(), addresses, root })
}

/// A Kubernetes name for a zoo table.
fn object_name(table: &str) -> String {
    if table.is_ascii() { table.replace('_', "-") } else { "customers".into() }
}

/// A table a kind must refuse: the condition's reason, and words its message holds.
struct Refusal {
    table: &'static str,
    reason: &'static str,
    why: &'static str,
}

const fn refused(table: &'static str, reason: &'static str, why: &'static str) -> Refusal {
    Refusal { table, reason, why }
}

/// What OnlineDDL's shadow path refuses.
const DDL_REFUSED: &[Refusal] = &[
    refused("carts", "InvalidSpec", "referenced by foreign keys"),
    refused("cart_lines", "InvalidSpec", "has foreign keys"),
    refused("cart_notes", "InvalidSpec", "has foreign keys"),
    refused("balances", "InvalidSpec", "triggers"),
    refused("clicks_raw", "Unsupported", "no primary key"),
];

fn refusal<'a>(refused: &'a [Refusal], table: &str) -> Option<&'a Refusal> {
    refused.iter().find(|r| r.table == table)
}

/// The `Succeeded` condition is False with the refusal's reason and words.
fn assert_refused(o: &Value, r: &Refusal) -> anyhow::Result<()> {
    let c = condition(o, "Succeeded").context("no Succeeded condition")?;
    ensure!(
        c["status"] == "False" && c["reason"] == r.reason && c["message"].as_str().unwrap_or("").contains(r.why),
        "{} refused, but not as {} for {:?}: {c}",
        r.table,
        r.reason,
        r.why
    );
    Ok(())
}

/// Tables in `zoo` on `ip`: nothing but the fixture's (no shadow, sentry or old table left).
async fn zoo_tables(ip: &str, root: &str) -> anyhow::Result<Vec<String>> {
    let mut c = mysql(ip, "root", root).await?;
    Ok(c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'zoo' ORDER BY 1").await?)
}

/// One OnlineDDL per zoo table, all at once through the shadow path, held
/// at Postponed under the writer, then released. The accepted tables come
/// out with the new column and exactly the acknowledged rows on all three
/// instances; the refused ones are refused before a shadow exists and are
/// left as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onlineddl_on_every_zoo_table() -> anyhow::Result<()> {
    let mut ns = TestNamespace::create("zoo-ddl")?;
    let _operator = Operator::start_with_env("zoo-ddl", &[("SWITCHYARD_MAX_SCHEMA_CHANGES", "32")])?;
    let db = provision(ns.as_str(), "db", 3)?;
    zoo::load(db.primary(), "root", &db.root).await?;
    let primary = db.at_primary();
    let route: zoo::Route = Arc::new(move |_| Some(primary.clone()));
    let writer = zoo::Writer::start(TABLES, route, db.at_primary(), WRITE_INTERVAL);
    writer.wait_for_progress(TABLES, 3, Duration::from_secs(60)).await?;

    for t in TABLES {
        apply_yaml(
            ns.as_str(),
            &format!(
                "apiVersion: switchyard.io/v1alpha1\nkind: OnlineDDL\nmetadata: {{name: {}}}\nspec:\n  cluster: {}\n  database: zoo\n  table: \"{t}\"\n  alter: \"ADD COLUMN zoo_note VARCHAR(16) NULL\"\n  strategy: shadow\n  postponeCompletion: true\n",
                object_name(t),
                db.name
            ),
        )?;
    }
    let accepted: Vec<&'static str> = TABLES.iter().copied().filter(|t| refusal(DDL_REFUSED, t).is_none()).collect();
    for t in TABLES {
        let name = object_name(t);
        match refusal(DDL_REFUSED, t) {
            Some(r) => {
                let o = resource::wait_step(ns.as_str(), "onlineddl", &name, "Failed", MOVE_TIMEOUT)?;
                assert_refused(&o, r)?;
            }
            None => {
                resource::wait_step(ns.as_str(), "onlineddl", &name, "Postponed", MOVE_TIMEOUT)
                    .with_context(|| format!("zoo.{t}"))?;
            }
        }
    }
    writer.wait_for_progress(&accepted, 5, Duration::from_secs(60)).await?;
    for t in &accepted {
        resource::patch_merge(ns.as_str(), "onlineddl", &object_name(t), r#"{"spec":{"postponeCompletion":false}}"#)?;
    }
    for t in &accepted {
        let o = resource::wait_step(ns.as_str(), "onlineddl", &object_name(t), "Complete", MOVE_TIMEOUT)
            .with_context(|| format!("zoo.{t}"))?;
        ensure!(step(&o) == "Complete");
    }
    writer.wait_for_progress(&accepted, 5, Duration::from_secs(60)).await?;
    let tally = writer.stop().await?;
    eprintln!("zoo writer: {tally:?}");
    ensure!(tally.uncertain.is_empty(), "writes with an unknown outcome: {tally:?}");
    ensure!(tally.reused_ids.is_empty(), "AUTO_INCREMENT ids handed out again: {:?}", tally.reused_ids);

    // Each instance against its own mirror: both came by replication.
    let pairs: Vec<(At, At)> = db.addresses.iter().map(|a| (db.at(a), db.at(a))).collect();
    zoo::assert_exact(&pairs, TABLES, Duration::from_secs(60)).await?;
    let mut c = mysql(db.primary(), "root", &db.root).await?;
    for t in TABLES {
        let has_note: Option<String> = c
            .exec_first(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'zoo' AND TABLE_NAME = ? AND COLUMN_NAME = 'zoo_note'",
                (t,),
            )
            .await?;
        ensure!(has_note.is_some() == accepted.contains(t), "zoo.{t}: zoo_note present {}", has_note.is_some());
    }
    // A unique key made case-insensitive, where the table holds `user1` and
    // `USER1`: a shadow filled with REPLACE would keep one of them. Refused
    // before any copy, as ALTER TABLE would refuse the duplicates.
    apply_yaml(
        ns.as_str(),
        &format!(
            "apiVersion: switchyard.io/v1alpha1\nkind: OnlineDDL\nmetadata: {{name: accounts-ci}}\nspec:\n  cluster: {}\n  database: zoo\n  table: accounts\n  alter: \"MODIFY login VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL\"\n  strategy: shadow\n",
            db.name
        ),
    )?;
    let o = resource::wait_step(ns.as_str(), "onlineddl", "accounts-ci", "Failed", MOVE_TIMEOUT)?;
    assert_refused(&o, &refused("accounts", "InvalidSpec", "redefines unique key(s) uk_login"))?;
    zoo::assert_exact(&pairs[..1], &["accounts"], Duration::from_secs(10)).await?;
    // The originals stay as `_<table>_old_<ts>` for a day; anything else is a stray.
    let mut strays = zoo_tables(db.primary(), &db.root).await?;
    strays.retain(|t| !TABLES.contains(&t.as_str()) && !t.contains("_old_"));
    ensure!(strays.is_empty(), "tables left in zoo besides the fixture's and the old ones: {strays:?}");
    ns.passed();
    Ok(())
}

/// What a Migration of all of `zoo` refuses, all named in one condition.
const MIGRATION_REFUSED_ALL: &[&str] = &[
    "zoo.clicks_raw has no primary key",
    "zoo.cart_lines (fk_cart",
    "zoo.cart_notes (fk_note_cart",
    "zoo.balances (balances_au)",
];
/// A Migration that leaves the children and the trigger's table behind.
const PARTIAL_EXCLUDE: &[&str] = &["clicks_raw", "cart_lines", "cart_notes", "balances"];
const MIGRATION_REFUSED_PARTIAL: &[&str] = &[
    "zoo.carts is referenced by zoo.cart_lines (fk_cart)",
    "zoo.balance_log is named by trigger balances_au on zoo.balances",
];
/// A Migration that moves a child without its parent.
const ORPHAN_EXCLUDE: &[&str] = &["clicks_raw", "carts", "cart_notes", "balances", "balance_log"];
const MIGRATION_REFUSED_ORPHAN: &[&str] = &["zoo.cart_lines references zoo.carts (fk_cart), which is not moved"];
/// What the Migration that runs leaves on the source.
const NOT_MOVED: &[&str] = &["carts", "cart_lines", "cart_notes", "balances", "balance_log", "clicks_raw"];

fn migration_yaml(name: &str, exclude: &[&str]) -> String {
    let exclude: Vec<String> = exclude.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "apiVersion: switchyard.io/v1alpha1\nkind: Migration\nmetadata: {{name: {name}}}\nspec:\n  source: {{cluster: src}}\n  target: {{cluster: tgt}}\n  databases: [zoo]\n  tables: {{exclude: [{}]}}\n  switch: {{dataSource: {{configMap: zoo-db}}, lockWaitTimeoutSeconds: 3, backoffSeconds: 1}}\n",
        exclude.join(", ")
    )
}

/// Waits for a Migration held in Pending as InvalidSpec, and checks that its
/// message names every one of `problems`.
fn assert_migration_refused(ns: &str, name: &str, problems: &[&str]) -> anyhow::Result<()> {
    let o = resource::wait_for(ns, "migration", name, "refused", MOVE_TIMEOUT, |o| {
        condition(o, "Succeeded").is_some_and(|c| c["reason"] == "InvalidSpec")
    })?;
    let msg = condition(&o, "Succeeded").and_then(|c| c["message"].as_str()).unwrap_or("").to_string();
    let missing: Vec<&&str> = problems.iter().filter(|p| !msg.contains(**p)).collect();
    ensure!(missing.is_empty(), "migration {name} refused, but its message lacks {missing:?}: {msg}");
    ensure!(step(&o) == "Pending", "a refused migration stays Pending: {}", o["status"]);
    Ok(())
}

/// The zoo moved from one cluster to another. A Migration of every table is
/// refused with each reason named; one that would leave a child or a
/// trigger's table behind is refused too, and so is one that would move a
/// child without its parent; the rest moves under the writer,
/// postponed, then released. The writer follows the data source table by
/// table. Every moved table equals the mirror on all three target
/// instances, every table left behind equals it on the source, and the
/// target holds nothing that was not moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_of_the_zoo() -> anyhow::Result<()> {
    let mut ns = TestNamespace::create("zoo-mig")?;
    let n = ns.as_str().to_string();
    let _operator = Operator::start("zoo-mig")?;
    let src = provision(&n, "src", 1)?;
    let tgt = provision(&n, "tgt", 3)?;
    zoo::load(src.primary(), "root", &src.root).await?;

    // The moved tables go where the data source names, once it names the target.
    let target_now = Arc::new(std::sync::Mutex::new(false));
    let watch = {
        let (n, flag) = (n.clone(), target_now.clone());
        std::thread::spawn(move || {
            while Arc::strong_count(&flag) > 1 {
                if let Ok(Some(cm)) = get_json(&n, "configmap", "zoo-db") {
                    *flag.lock().unwrap() = cm["data"]["cluster"] == "tgt";
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let (src_at, tgt_at, flag) = (src.at_primary(), tgt.at_primary(), target_now.clone());
    let route: zoo::Route = Arc::new(move |t| {
        let moved = !NOT_MOVED.contains(&t) && *flag.lock().unwrap();
        Some(if moved { tgt_at.clone() } else { src_at.clone() })
    });
    let writer = zoo::Writer::start(TABLES, route, src.at_primary(), WRITE_INTERVAL);
    writer.wait_for_progress(TABLES, 3, Duration::from_secs(60)).await?;

    apply_yaml(&n, &migration_yaml("zoo-all", &[]))?;
    assert_migration_refused(&n, "zoo-all", MIGRATION_REFUSED_ALL)?;
    kubectl(&["delete", "migration", "zoo-all", "-n", &n, "--wait=true"])?;
    apply_yaml(&n, &migration_yaml("zoo-partial", PARTIAL_EXCLUDE))?;
    assert_migration_refused(&n, "zoo-partial", MIGRATION_REFUSED_PARTIAL)?;
    kubectl(&["delete", "migration", "zoo-partial", "-n", &n, "--wait=true"])?;
    apply_yaml(&n, &migration_yaml("zoo-orphan", ORPHAN_EXCLUDE))?;
    assert_migration_refused(&n, "zoo-orphan", MIGRATION_REFUSED_ORPHAN)?;
    kubectl(&["delete", "migration", "zoo-orphan", "-n", &n, "--wait=true"])?;
    ensure!(zoo_tables(tgt.primary(), &tgt.root).await?.is_empty(), "a refused migration created tables on the target");

    apply_yaml(&n, &migration_yaml("zoo", NOT_MOVED))?;
    resource::wait_step(&n, "migration", "zoo", "Postponed", MOVE_TIMEOUT)?;
    let moved: Vec<&'static str> = TABLES.iter().copied().filter(|t| !NOT_MOVED.contains(t)).collect();
    writer.wait_for_progress(TABLES, 5, Duration::from_secs(60)).await?;
    resource::patch_merge(&n, "migration", "zoo", r#"{"spec":{"postponeCompletion":false}}"#)?;
    resource::wait_step(&n, "migration", "zoo", "Complete", MOVE_TIMEOUT)?;
    // The watcher reads the ConfigMap every 200 ms: wait for it to see the switch.
    wait_until("the writer to follow the data source to the target", Duration::from_secs(10), POLL, || {
        Ok((*target_now.lock().unwrap()).then_some(()))
    })?;
    writer.wait_for_progress(TABLES, 5, Duration::from_secs(60)).await?;
    let tally = writer.stop().await?;
    eprintln!("zoo writer: {tally:?}");
    drop(target_now);
    let _ = watch.join();
    ensure!(tally.uncertain.is_empty(), "writes with an unknown outcome: {tally:?}");
    ensure!(tally.reused_ids.is_empty(), "AUTO_INCREMENT ids handed out again: {:?}", tally.reused_ids);

    zoo::assert_exact(&tgt.against(&src.at_primary()), &moved, Duration::from_secs(60)).await?;
    zoo::assert_exact(&src.against(&src.at_primary()), NOT_MOVED, Duration::from_secs(10)).await?;
    let mut left = zoo_tables(tgt.primary(), &tgt.root).await?;
    left.retain(|t| !moved.contains(&t.as_str()));
    ensure!(left.is_empty(), "the target holds tables that were not moved: {left:?}");
    ns.passed();
    Ok(())
}

/// The zoo tables a ShardSplit takes, with the column it splits on by hash.
const SPLIT_ON: &[(&str, &str)] = &[
    ("tenant_orders", "tenant"),
    ("sessions", "id"),
    ("jobs", "id"),
    ("accounts", "id"),
    ("products", "id"),
    ("status", "id"),
    ("documents", "id"),
    ("events", "id"),
    ("客户", "编号"),
];

/// What a ShardSplit refuses (all Pending as InvalidSpec), with words of the reason.
const SPLIT_REFUSED: &[(&str, &str, &str)] = &[
    ("carts", "id", "has foreign keys"),
    ("cart_lines", "cart_id", "has foreign keys"),
    ("cart_notes", "id", "has foreign keys"),
    ("balances", "account_id", "has triggers (balances_au)"),
    ("balance_log", "id", "named by trigger balances_au on zoo.balances"),
    ("ledger", "entry_no", "has no primary key"),
    ("clicks_raw", "url", "has no primary key"),
];

fn split_yaml(table: &str, column: &str) -> String {
    let name = object_name(table);
    format!(
        "apiVersion: switchyard.io/v1alpha1\nkind: ShardSplit\nmetadata: {{name: {name}}}\nspec:\n  source: {{cluster: db, database: zoo, table: \"{table}\"}}\n  rule: {{column: \"{column}\", algorithm: hash, shards: 2}}\n  targets: {{template: {{table: \"{table}_s{{shard}}\"}}}}\n  routing: {{configMap: {name}-routing}}\n  postponeCompletion: true\n  switch: {{lockWaitTimeoutSeconds: 5, backoffSeconds: 1}}\n"
    )
}

/// Every zoo table split in two by hash, all at once, on a 3-instance
/// cluster: the ones a split cannot keep exact are refused with the reason
/// before any shard exists; the others are held in sync under the writer,
/// then released into dual-write. There the union of each table's shards,
/// and the old table the reverse sync keeps, equal the mirror on every
/// instance. (Writes in dual-write belong to the shards; a writer that
/// routes by the ConfigMap is `shardsplit.rs`'s. This one keeps writing the
/// old table and is refused by its fence from the switch on.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shardsplit_of_every_zoo_table() -> anyhow::Result<()> {
    let mut ns = TestNamespace::create("zoo-split")?;
    let n = ns.as_str().to_string();
    let _operator = Operator::start("zoo-split")?;
    let db = provision(&n, "db", 3)?;
    zoo::load(db.primary(), "root", &db.root).await?;
    let primary = db.at_primary();
    let route: zoo::Route = Arc::new(move |_| Some(primary.clone()));
    let writer = zoo::Writer::start(TABLES, route, db.at_primary(), WRITE_INTERVAL);
    writer.wait_for_progress(TABLES, 3, Duration::from_secs(60)).await?;

    let all: Vec<(&str, &str)> =
        SPLIT_ON.iter().copied().chain(SPLIT_REFUSED.iter().map(|(t, c, _)| (*t, *c))).collect();
    for (t, col) in all {
        apply_yaml(&n, &split_yaml(t, col))?;
    }
    for (t, _, why) in SPLIT_REFUSED {
        let name = object_name(t);
        let o = resource::wait_for(&n, "shardsplit", &name, "refused", MOVE_TIMEOUT, |o| {
            condition(o, "Succeeded").is_some_and(|c| c["reason"] == "InvalidSpec")
        })?;
        let msg = condition(&o, "Succeeded").and_then(|c| c["message"].as_str()).unwrap_or("").to_string();
        ensure!(msg.contains(why), "split of zoo.{t} refused, but not for {why:?}: {msg}");
    }
    let split: Vec<&'static str> = SPLIT_ON.iter().map(|(t, _)| *t).collect();
    for t in &split {
        resource::wait_step(&n, "shardsplit", &object_name(t), "Postponed", MOVE_TIMEOUT)
            .with_context(|| format!("zoo.{t}"))?;
    }
    writer.wait_for_progress(&split, 5, Duration::from_secs(60)).await?;
    for t in &split {
        resource::patch_merge(&n, "shardsplit", &object_name(t), r#"{"spec":{"postponeCompletion":false}}"#)?;
    }
    for t in &split {
        resource::wait_step(&n, "shardsplit", &object_name(t), "DualWrite", MOVE_TIMEOUT)
            .with_context(|| format!("zoo.{t}"))?;
    }
    // The tables not split stay writable throughout.
    let unsplit: Vec<&'static str> = TABLES.iter().copied().filter(|t| !split.contains(t)).collect();
    writer.wait_for_progress(&unsplit, 5, Duration::from_secs(60)).await?;
    let tally = writer.stop().await?;
    eprintln!("zoo writer: {tally:?}");
    ensure!(tally.uncertain.is_empty(), "writes with an unknown outcome: {tally:?}");
    ensure!(tally.reused_ids.is_empty(), "AUTO_INCREMENT ids handed out again: {:?}", tally.reused_ids);
    for t in &split {
        ensure!(
            tally.refused.get(t).copied().unwrap_or(0) > 0,
            "the fence never refused a write to zoo.{t}: {tally:?}"
        );
    }

    for ip in &db.addresses {
        let at = db.at(ip);
        for t in &split {
            let shards: Vec<(At, String, String)> =
                (0..2).map(|i| (at.clone(), "zoo".to_string(), format!("{t}_s{i}"))).collect();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while let Some(d) = zoo::difference_of_union(&shards, &at, t).await? {
                ensure!(std::time::Instant::now() < deadline, "the shards differ from what was acknowledged: {d}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    zoo::assert_exact(&db.against(&db.at_primary()), TABLES, Duration::from_secs(60)).await?;
    let mut c = mysql(db.primary(), "root", &db.root).await?;
    let shards_of_refused: Vec<String> = c
        .query(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'zoo' AND TABLE_NAME LIKE '%\\_s_' ORDER BY 1",
        )
        .await?;
    let strays: Vec<&String> = shards_of_refused
        .iter()
        .filter(|s| !split.iter().any(|t| s.strip_prefix(*t).is_some_and(|r| r.starts_with("_s"))))
        .collect();
    ensure!(strays.is_empty(), "refused splits created shards: {strays:?}");
    ns.passed();
    Ok(())
}
