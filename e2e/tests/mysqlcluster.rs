//! e2e of MySQLCluster: provisioning, replication, switchover and failover
//! under writes, scaling, and an operator killed mid-switchover. A writer
//! commits numbered rows throughout; every acknowledged row must survive, and
//! the instances end identical row by row.
//!
//!   cargo test -p switchyard-e2e --test mysqlcluster -- --test-threads=1

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, ensure};
use mysql_async::prelude::Queryable;
use serde_json::Value;
use switchyard_e2e::harness::fault::skip_on_external_cluster;
use switchyard_e2e::harness::kubectl::{get_json, secret_value};
use switchyard_e2e::harness::operator::Operator;
use switchyard_e2e::harness::writer::{TABLE, Writer, ids_on, primary_ip};
use switchyard_e2e::harness::{TestNamespace, apply_yaml, kubectl, mysql, signal_pod, wait_until, wait_until_async};

const CLUSTER: &str = "db";
const POLL: Duration = Duration::from_millis(250);
const PROVISION_TIMEOUT: Duration = Duration::from_secs(240);
const WRITE_INTERVAL: Duration = Duration::from_millis(5);

fn cluster_yaml(replicas: i32, delay_seconds: i32) -> String {
    format!(
        r#"
apiVersion: switchyard.io/v1alpha1
kind: MySQLCluster
metadata: {{name: {CLUSTER}}}
spec:
  image: {image}
  replicas: {replicas}
  storage: {{size: 1Gi}}
  failover: {{enabled: true, delaySeconds: {delay_seconds}}}
  config: {{max_connections: "200"}}
"#,
        image = switchyard_e2e::harness::server_image(),
    )
}

fn cluster(ns: &str) -> anyhow::Result<Value> {
    get_json(ns, "mysqlcluster", CLUSTER)?.context("the MySQLCluster is gone")
}

fn condition_true(obj: &Value, type_: &str) -> bool {
    obj["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == type_ && c["status"] == "True")
}

/// Ready, Healthy, every instance healthy; returns the status.
fn wait_healthy(ns: &str, replicas: usize, timeout: Duration) -> anyhow::Result<Value> {
    wait_until(&format!("{CLUSTER} Healthy with {replicas} ready instances"), timeout, POLL, || {
        let c = cluster(ns)?;
        let s = &c["status"];
        let ok = condition_true(&c, "Ready")
            && s["state"] == "Healthy"
            && s["readyReplicas"].as_u64() == Some(replicas as u64)
            && s["instances"].as_array().map(Vec::len) == Some(replicas);
        Ok(ok.then(|| s.clone()))
    })
}

/// `kubectl patch mysqlcluster db --type merge`, as a user would.
fn patch(ns: &str, merge: &str) -> anyhow::Result<String> {
    kubectl(&["patch", "mysqlcluster", CLUSTER, "-n", ns, "--type", "merge", "-p", merge])
}

fn primary_pod(status: &Value) -> String {
    status["primary"].as_str().unwrap_or_default().to_string()
}

fn instance_ip(status: &Value, pod: &str) -> Option<String> {
    status["instances"].as_array()?.iter().find(|i| i["name"] == pod)?["address"].as_str().map(String::from)
}

fn secret(ns: &str, key: &str) -> anyhow::Result<String> {
    secret_value(ns, &format!("{CLUSTER}-credentials"), key)
}

struct Setup {
    ns: TestNamespace,
    operator: Operator,
    app_password: String,
}

async fn provision(prefix: &str, replicas: i32, delay: i32) -> anyhow::Result<(Setup, Value)> {
    let ns = TestNamespace::create(prefix)?;
    let operator = Operator::start(prefix)?;
    apply_yaml(ns.as_str(), &cluster_yaml(replicas, delay))?;
    let status = wait_healthy(ns.as_str(), replicas as usize, PROVISION_TIMEOUT)?;
    let app_password = secret(ns.as_str(), "app-password")?;
    Ok((Setup { ns, operator, app_password }, status))
}

/// Every instance converges on the primary's rows: same ids, same checksum.
async fn assert_identical(ns: &str, password: &str, acked: &BTreeSet<u64>) -> anyhow::Result<()> {
    let status = cluster(ns)?["status"].clone();
    let primary = instance_ip(&status, &primary_pod(&status)).context("primary address")?;
    let on_primary = ids_on(&primary, "app", password).await?;
    let lost: Vec<_> = acked.difference(&on_primary).collect();
    ensure!(
        lost.is_empty(),
        "{} acknowledged rows are missing on the primary: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    let mut conn = mysql(&primary, "app", password).await?;
    let expected: Option<(String, u64)> = conn.query_first(format!("CHECKSUM TABLE {TABLE}")).await?;
    for inst in status["instances"].as_array().into_iter().flatten() {
        let ip = inst["address"].as_str().context("address")?.to_string();
        let name = inst["name"].as_str().unwrap_or_default().to_string();
        wait_until_async(&format!("{name} to hold the primary's rows"), Duration::from_secs(60), POLL, || {
            let (ip, expected, on_primary) = (ip.clone(), expected.clone(), on_primary.clone());
            async move {
                let ids = ids_on(&ip, "app", password).await?;
                let mut c = mysql(&ip, "app", password).await?;
                let sum: Option<(String, u64)> = c.query_first(format!("CHECKSUM TABLE {TABLE}")).await?;
                Ok((ids == on_primary && sum == expected).then_some(()))
            }
        })
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_replicate_and_replicas_refuse_writes() -> anyhow::Result<()> {
    let (mut s, status) = provision("myc-basic", 3, 10).await?;
    let ns = s.ns.as_str().to_string();
    let primary = primary_pod(&status);
    let primary_ip = instance_ip(&status, &primary).context("primary ip")?;
    let mut conn = mysql(&primary_ip, "app", &s.app_password).await?;
    conn.query_drop("CREATE DATABASE shop").await?;
    conn.query_drop("CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(16))").await?;
    conn.query_drop("INSERT INTO shop.t VALUES (1, 'replicated')").await?;
    for inst in status["instances"].as_array().into_iter().flatten().filter(|i| i["name"] != primary.as_str()) {
        let ip = inst["address"].as_str().context("address")?.to_string();
        let v: String = wait_until_async("the row on a replica", Duration::from_secs(30), POLL, || {
            let ip = ip.clone();
            let pw = s.app_password.clone();
            async move {
                let mut c = mysql(&ip, "app", &pw).await?;
                Ok(c.query_first::<String, _>("SELECT v FROM shop.t WHERE id = 1").await.ok().flatten())
            }
        })
        .await?;
        ensure!(v == "replicated");
        let mut c = mysql(&ip, "app", &s.app_password).await?;
        let refused = c.query_drop("INSERT INTO shop.t VALUES (2, 'nope')").await;
        ensure!(
            refused.as_ref().is_err_and(|e| e.to_string().contains("read-only")),
            "a replica took a write: {refused:?}"
        );
        ensure!(inst["readOnly"] == true && inst["role"] == "replica", "{inst}");
    }
    // Kubernetes objects: Services select by role, owned by the cluster.
    let svc = get_json(&ns, "service", "db-primary")?.context("db-primary Service")?;
    ensure!(svc["spec"]["selector"]["switchyard.io/role"] == "primary", "{svc}");
    let slices = kubectl(&[
        "get",
        "endpointslices",
        "-n",
        &ns,
        "-l",
        "kubernetes.io/service-name=db-primary",
        "-o",
        "jsonpath={..addresses}",
    ])?;
    ensure!(slices.contains(&primary_ip) && slices.matches("127.0.0.").count() == 1, "db-primary endpoints: {slices}");
    let sts = get_json(&ns, "statefulset", CLUSTER)?.context("StatefulSet")?;
    ensure!(sts["metadata"]["ownerReferences"][0]["kind"] == "MySQLCluster", "{}", sts["metadata"]);
    ensure!(status["endpoints"]["primary"] == "db-primary" && status["endpoints"]["replicas"] == "db-replicas");
    let columns = kubectl(&["get", "mysqlcluster", CLUSTER, "-n", &ns])?;
    ensure!(columns.contains("READY") && columns.contains("PRIMARY") && columns.contains(&primary), "{columns}");

    // Storage cannot change after creation. A server with CEL refuses the
    // patch; an older one lets it through, and the operator reports it while
    // the cluster keeps serving on what it has.
    let patched = patch(&ns, r#"{"spec":{"storage":{"size":"2Gi"}}}"#);
    match patched {
        Err(e) => ensure!(e.to_string().contains("storage is immutable"), "unexpected refusal: {e:#}"),
        Ok(_) => {
            wait_until("InvalidSpec for the storage change", Duration::from_secs(30), POLL, || {
                let c = cluster(&ns)?;
                let ready =
                    c["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Ready").cloned();
                Ok(ready
                    .filter(|r| {
                        r["reason"] == "InvalidSpec"
                            && r["message"].as_str().is_some_and(|m| m.contains("spec.storage"))
                    })
                    .map(|_| c))
            })
            .and_then(|c| {
                ensure!(condition_true(&c, "Available"), "the cluster must keep serving: {}", c["status"]);
                Ok(())
            })?;
            patch(&ns, r#"{"spec":{"storage":{"size":"1Gi"}}}"#)?;
            wait_healthy(&ns, 3, Duration::from_secs(60))?;
        }
    }
    drop(s.operator);
    s.ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_under_writes_loses_nothing() -> anyhow::Result<()> {
    let (mut s, status) = provision("myc-switch", 3, 10).await?;
    let ns = s.ns.as_str().to_string();
    ensure!(primary_pod(&status) == "db-0");
    let writer = Writer::start(&ns, CLUSTER, "app", &s.app_password, WRITE_INTERVAL).await?;
    writer.wait_for_progress(100, Duration::from_secs(30)).await?;
    patch(&ns, r#"{"spec":{"primary":1}}"#)?;
    let status = wait_until("db-1 to be primary", Duration::from_secs(60), POLL, || {
        let c = cluster(&ns)?;
        Ok((c["status"]["primary"] == "db-1").then(|| c["status"].clone()))
    })?;
    writer.wait_for_progress(100, Duration::from_secs(30)).await?;
    let acked = writer.stop().await?;
    let status_after = wait_healthy(&ns, 3, Duration::from_secs(60))?;
    let old = status_after["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["name"] == "db-0")
        .context("db-0")?
        .clone();
    ensure!(old["role"] == "replica" && old["readOnly"] == true && old["healthy"] == true, "old primary: {old}");
    ensure!(primary_ip(&ns, CLUSTER)? == instance_ip(&status, "db-1"), "the primary label follows the switchover");
    assert_identical(&ns, &s.app_password, &acked).await?;
    drop(s.operator);
    s.ns.passed();
    Ok(())
}

/// Fails the primary with `signal`, checks failover under writes.
async fn fail_primary(s: &Setup, signal: &str) -> anyhow::Result<()> {
    let ns = s.ns.as_str();
    let before = wait_healthy(ns, 3, Duration::from_secs(120))?;
    let old = primary_pod(&before);
    let writer = Writer::start(ns, CLUSTER, "app", &s.app_password, WRITE_INTERVAL).await?;
    writer.wait_for_progress(100, Duration::from_secs(30)).await?;
    signal_pod(ns, &old, signal)?;
    let after = wait_until(&format!("a failover away from {old}"), Duration::from_secs(90), POLL, || {
        let c = cluster(ns)?;
        let p = primary_pod(&c["status"]);
        Ok((p != old && condition_true(&c, "Available")).then(|| c["status"].clone()))
    })?;
    writer.wait_for_progress(100, Duration::from_secs(30)).await?;
    if signal == "STOP" {
        signal_pod(ns, &old, "CONT")?;
    }
    let acked = writer.stop().await?;
    let new = primary_pod(&after);
    let new_ip = instance_ip(&after, &new).context("new primary ip")?;
    let on_new = ids_on(&new_ip, "app", &s.app_password).await?;
    let lost: Vec<_> = acked.difference(&on_new).collect();
    ensure!(lost.is_empty(), "{signal}: acknowledged rows lost in failover: {lost:?}");
    // The old primary rejoins as a replica, or is flagged errant, never re-synced silently.
    let settled = wait_until(&format!("{old} to rejoin or be flagged"), Duration::from_secs(120), POLL, || {
        let c = cluster(ns)?;
        let inst =
            c["status"]["instances"].as_array().into_iter().flatten().find(|i| i["name"] == old.as_str()).cloned();
        Ok(inst
            .filter(|i| (i["role"] == "replica" && i["healthy"] == true) || i["errantGtid"].is_string())
            .map(|i| (i, c)))
    })?;
    let (inst, c) = settled;
    if inst["errantGtid"].is_string() {
        ensure!(c["status"]["state"] == "Errant", "an errant instance shows in the state: {}", c["status"]);
    } else {
        wait_healthy(ns, 3, Duration::from_secs(60))?;
        assert_identical(ns, &s.app_password, &acked).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_on_kill_and_on_freeze() -> anyhow::Result<()> {
    if skip_on_external_cluster("failover_on_kill_and_on_freeze", "needs the node agent to signal processes") {
        return Ok(());
    }
    let (mut s, _) = provision("myc-failover", 3, 3).await?;
    fail_primary(&s, "KILL").await?;
    fail_primary(&s, "STOP").await?;
    let events = kubectl(&["get", "events.events.k8s.io", "-n", s.ns.as_str(), "-o", "jsonpath={..reason}"])?;
    ensure!(events.contains("Failover"), "a Failover Event: {events}");
    s.ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_and_in_keeps_the_data() -> anyhow::Result<()> {
    let (mut s, _) = provision("myc-scale", 3, 10).await?;
    let ns = s.ns.as_str().to_string();
    let writer = Writer::start(&ns, CLUSTER, "app", &s.app_password, WRITE_INTERVAL).await?;
    writer.wait_for_progress(50, Duration::from_secs(30)).await?;
    patch(&ns, r#"{"spec":{"replicas":5}}"#)?;
    wait_healthy(&ns, 5, PROVISION_TIMEOUT)?;
    // Put the primary on an ordinal that scale-in removes: it must move first.
    patch(&ns, r#"{"spec":{"primary":4}}"#)?;
    wait_until("db-4 to be primary", Duration::from_secs(60), POLL, || {
        Ok((cluster(&ns)?["status"]["primary"] == "db-4").then_some(()))
    })?;
    patch(&ns, r#"{"spec":{"replicas":3,"primary":0}}"#)?;
    let status = wait_healthy(&ns, 3, PROVISION_TIMEOUT)?;
    ensure!(primary_pod(&status) == "db-0", "{status}");
    wait_until("the StatefulSet to shrink to 3", Duration::from_secs(120), POLL, || {
        let pods = kubectl(&["get", "pods", "-n", &ns, "-l", "app.kubernetes.io/instance=db", "-o", "name"])?;
        Ok((pods.lines().count() == 3).then_some(()))
    })?;
    writer.wait_for_progress(50, Duration::from_secs(30)).await?;
    let acked = writer.stop().await?;
    assert_identical(&ns, &s.app_password, &acked).await?;
    s.ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_mid_switchover_ends_with_one_primary() -> anyhow::Result<()> {
    let (mut s, _) = provision("myc-killop", 3, 10).await?;
    let ns = s.ns.as_str().to_string();
    let writer = Writer::start(&ns, CLUSTER, "app", &s.app_password, WRITE_INTERVAL).await?;
    writer.wait_for_progress(50, Duration::from_secs(30)).await?;
    patch(&ns, r#"{"spec":{"primary":2}}"#)?;
    // The switchover runs within a second of the patch: kill the operator in it.
    wait_until("the switchover to start", Duration::from_secs(10), Duration::from_millis(20), || {
        let c = cluster(&ns)?;
        Ok((c["status"]["state"] == "Switching" || c["status"]["primary"] == "db-2").then_some(()))
    })
    .ok();
    s.operator.kill();
    let _restarted = Operator::start("myc-killop-2")?;
    let status = wait_healthy(&ns, 3, Duration::from_secs(120))?;
    ensure!(primary_pod(&status) == "db-2", "{status}");
    let writable: Vec<_> = status["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["readOnly"] == false)
        .map(|i| i["name"].clone())
        .collect();
    ensure!(writable.len() == 1, "exactly one writable instance, got {writable:?}");
    writer.wait_for_progress(50, Duration::from_secs(30)).await?;
    let acked = writer.stop().await?;
    assert_identical(&ns, &s.app_password, &acked).await?;
    s.ns.passed();
    Ok(())
}
