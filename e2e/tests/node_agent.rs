//! Smoke tests of the node: a StatefulSet of the official MariaDB image, as a
//! user would write it, must behave like on a real kubelet. Each test runs in
//! its own namespace; they assume `e2e/localenv.sh up` (or a real cluster with
//! SWITCHYARD_EXTERNAL_CLUSTER=1, where process faults are skipped by design).
//!
//!   cargo test -p switchyard-e2e --test node_agent -- --test-threads=1

use std::time::Duration;

use anyhow::{Context, ensure};
use mysql_async::prelude::Queryable;
use switchyard_e2e::harness::fault::skip_on_external_cluster;
use switchyard_e2e::harness::mysql::query_value;
use switchyard_e2e::harness::wait::holds_for;
use switchyard_e2e::harness::{
    TestNamespace, apply_yaml, kubectl, mysql, pod_ip, pods, signal_pod, wait_until, wait_until_async,
};

const POD: &str = "db-0";
const ROOT_PASSWORD: &str = "e2e-root-pw";
const READY_TIMEOUT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(500);

fn statefulset_yaml() -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: db-root
stringData:
  password: {ROOT_PASSWORD}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: db-config
data:
  extra.cnf: |
    [mysqld]
    max_connections=77
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 1
  selector:
    matchLabels: {{app: db}}
  template:
    metadata:
      labels: {{app: db}}
    spec:
      terminationGracePeriodSeconds: 20
      containers:
      - name: mariadb
        image: mariadb:10.11
        env:
        - name: MARIADB_ROOT_PASSWORD
          valueFrom:
            secretKeyRef: {{name: db-root, key: password}}
        ports:
        - {{name: mysql, containerPort: 3306}}
        readinessProbe:
          exec:
            command: ["mariadb-admin", "ping"]
          periodSeconds: 2
          timeoutSeconds: 2
          failureThreshold: 2
        volumeMounts:
        - {{name: data, mountPath: /var/lib/mysql}}
        - {{name: config, mountPath: /etc/mysql/conf.d/extra.cnf, subPath: extra.cnf}}
      volumes:
      - name: config
        configMap: {{name: db-config}}
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests: {{storage: 1Gi}}
"#
    )
}

/// Deploy the StatefulSet and wait for its pod to be Ready; returns its IP.
fn deploy(ns: &TestNamespace) -> anyhow::Result<String> {
    apply_yaml(ns.as_str(), &statefulset_yaml())?;
    pods::wait_ready(ns.as_str(), POD, READY_TIMEOUT)?;
    pod_ip(ns.as_str(), POD)?.context("a Ready pod has an IP")
}

/// A table with one known row.
async fn write_row(ip: &str) -> anyhow::Result<()> {
    let mut conn = mysql(ip, "root", ROOT_PASSWORD).await?;
    conn.query_drop("CREATE DATABASE IF NOT EXISTS e2e").await?;
    conn.query_drop("CREATE TABLE IF NOT EXISTS e2e.t (id INT PRIMARY KEY, note VARCHAR(64))").await?;
    conn.query_drop("INSERT INTO e2e.t VALUES (1, 'survives')").await?;
    conn.disconnect().await?;
    Ok(())
}

async fn read_row(ip: &str) -> anyhow::Result<Option<String>> {
    let mut conn = mysql(ip, "root", ROOT_PASSWORD).await?;
    let note = query_value::<String>(&mut conn, "SELECT note FROM e2e.t WHERE id = 1").await?;
    conn.disconnect().await?;
    Ok(note)
}

/// The row, read as soon as the server answers (it may still be starting).
async fn wait_for_row(ip: &str) -> anyhow::Result<String> {
    wait_until_async("the row to be readable", Duration::from_secs(60), POLL, || read_row(ip)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_pod_becomes_ready_with_bound_claim_and_config() -> anyhow::Result<()> {
    let mut ns = TestNamespace::create("node-ready")?;
    let ip = deploy(&ns)?;

    let claim = kubectl(&["get", "pvc", "-n", ns.as_str(), "data-db-0", "-o", "jsonpath={.status.phase}"])?;
    ensure!(claim == "Bound", "claim data-db-0 is {claim:?}, not Bound");
    let pod = pods::pod(ns.as_str(), POD)?.context("pod exists")?;
    ensure!(pods::phase(&pod) == "Running", "phase {}", pods::phase(&pod));
    ensure!(pod["status"]["podIP"] == pod["status"]["podIPs"][0]["ip"], "podIPs[0] differs from podIP");
    let started = &pods::container_status(&pod)["started"];
    ensure!(started == true, "container started = {started}");

    let mut conn = mysql(&ip, "root", ROOT_PASSWORD).await?;
    let max_connections = query_value::<u64>(&mut conn, "SELECT @@max_connections").await?;
    ensure!(max_connections == Some(77), "max_connections = {max_connections:?}, the ConfigMap says 77");
    let hostname = query_value::<String>(&mut conn, "SELECT @@hostname").await?;
    ensure!(hostname.as_deref() == Some(POD), "@@hostname = {hostname:?}, a pod's host name is its name");
    conn.disconnect().await?;

    let logs = kubectl(&["logs", "-n", ns.as_str(), POD, "--tail=200"])?;
    ensure!(logs.contains("ready for connections"), "kubectl logs does not show the server starting:\n{logs}");
    ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_writes_a_row_over_the_pod_ip() -> anyhow::Result<()> {
    let mut ns = TestNamespace::create("node-write")?;
    let ip = deploy(&ns)?;
    write_row(&ip).await?;
    let note = read_row(&ip).await?;
    ensure!(note.as_deref() == Some("survives"), "read back {note:?}");
    ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_pod_comes_back_with_same_ip_and_data() -> anyhow::Result<()> {
    let mut ns = TestNamespace::create("node-delete")?;
    let ip = deploy(&ns)?;
    write_row(&ip).await?;
    let old = pods::pod(ns.as_str(), POD)?.context("pod exists")?;
    let old_uid = pods::uid(&old).to_string();

    kubectl(&["delete", "pod", "-n", ns.as_str(), POD, "--wait=true", "--timeout=60s"])?;
    let new = wait_until("the StatefulSet to recreate a Ready pod", READY_TIMEOUT, POLL, || {
        Ok(pods::pod(ns.as_str(), POD)?.filter(|p| pods::uid(p) != old_uid && pods::is_ready(p)))
    })?;
    let new_ip = new["status"]["podIP"].as_str().unwrap_or_default();
    ensure!(new_ip == ip, "recreated pod has IP {new_ip}, was {ip}");
    let note = wait_for_row(&ip).await?;
    ensure!(note == "survives", "read back {note:?}");
    ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_is_restarted_with_data_intact() -> anyhow::Result<()> {
    let mut ns = TestNamespace::create("node-kill")?;
    let ip = deploy(&ns)?;
    write_row(&ip).await?;
    let before = pods::restart_count(&pods::pod(ns.as_str(), POD)?.context("pod exists")?);

    if signal_pod(ns.as_str(), POD, "KILL")?.skipped() {
        ns.passed();
        return Ok(());
    }
    let pod = wait_until("restartCount to go up and the pod to be Ready again", READY_TIMEOUT, POLL, || {
        Ok(pods::pod(ns.as_str(), POD)?.filter(|p| pods::restart_count(p) > before && pods::is_ready(p)))
    })?;
    let last = &pods::container_status(&pod)["lastState"]["terminated"];
    ensure!(last["exitCode"] == 137, "lastState.terminated = {last}");
    let note = wait_for_row(&ip).await?;
    ensure!(note == "survives", "read back {note:?}");
    ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_server_goes_not_ready_and_recovers() -> anyhow::Result<()> {
    let mut ns = TestNamespace::create("node-freeze")?;
    deploy(&ns)?;

    if signal_pod(ns.as_str(), POD, "STOP")?.skipped() {
        ns.passed();
        return Ok(());
    }
    let frozen = wait_until("the frozen pod to be NotReady", Duration::from_secs(60), POLL, || {
        Ok(pods::pod(ns.as_str(), POD)?.filter(|p| !pods::is_ready(p)))
    });
    // Thaw whatever happened, so the namespace can be cleaned up.
    signal_pod(ns.as_str(), POD, "CONT")?;
    let frozen = frozen?;
    ensure!(pods::restart_count(&frozen) == 0, "a stopped process must not count as exited");
    let thawed = pods::wait_ready(ns.as_str(), POD, Duration::from_secs(60))?;
    ensure!(pods::restart_count(&thawed) == 0, "thawing must not restart the server");
    ns.passed();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_image_never_runs() -> anyhow::Result<()> {
    if skip_on_external_cluster("unsupported_image_never_runs", "a real kubelet runs nginx") {
        return Ok(());
    }
    let mut ns = TestNamespace::create("node-nginx")?;
    apply_yaml(
        ns.as_str(),
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: web
    image: nginx:1.25
"#,
    )?;
    let waiting_reason = |p: &serde_json::Value| {
        pods::container_status(p)["state"]["waiting"]["reason"].as_str().unwrap_or_default().to_string()
    };
    let pod = wait_until("the nginx pod to be refused", Duration::from_secs(60), POLL, || {
        Ok(pods::pod(ns.as_str(), "web")?.filter(|p| waiting_reason(p) == "UnsupportedImage"))
    })?;
    let message = pods::container_status(&pod)["state"]["waiting"]["message"].as_str().unwrap_or_default();
    ensure!(message.contains("nginx:1.25"), "message does not name the image: {message}");
    holds_for("the nginx pod stays Pending and unready", Duration::from_secs(5), POLL, || {
        let p = pods::pod(ns.as_str(), "web")?.context("pod exists")?;
        Ok(pods::phase(&p) == "Pending" && !pods::is_ready(&p) && waiting_reason(&p) == "UnsupportedImage")
    })?;
    let events = kubectl(&[
        "get",
        "events",
        "-n",
        ns.as_str(),
        "--field-selector",
        "involvedObject.name=web,type=Warning,reason=UnsupportedImage",
        "-o",
        "name",
    ])?;
    ensure!(!events.trim().is_empty(), "no Warning UnsupportedImage event for the pod");
    ns.passed();
    Ok(())
}
