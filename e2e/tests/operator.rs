//! e2e of the operator runtime and the four APIs: the CRDs install and
//! document themselves, bad specs are reported, leadership moves between
//! instances without overlap, and the chart's RBAC is all the operator has.
//!
//!   cargo test -p switchyard-e2e --test operator -- --test-threads=1

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::Value;
use switchyard_e2e::harness::kubectl::get_json;
use switchyard_e2e::harness::operator::{LEASE_NAME, OPERATOR_NAMESPACE, Operator};
use switchyard_e2e::harness::wait::holds_for;
use switchyard_e2e::harness::{TestNamespace, apply_yaml, kubectl, wait_until};

const POLL: Duration = Duration::from_millis(250);

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

fn wait_leader(op: &Operator, within: Duration) -> anyhow::Result<()> {
    wait_until(&format!("{} to lead", op.name), within, POLL, || Ok(op.is_leader().then_some(())))
}

#[test]
fn crds_install_and_explain_their_fields() -> anyhow::Result<()> {
    for crd in ["mysqlclusters", "onlineddls", "migrations", "shardsplits"] {
        let name = format!("{crd}.switchyard.io");
        let out =
            kubectl(&["get", "crd", &name, "-o", "jsonpath={.status.conditions[?(@.type==\"Established\")].status}"])?;
        ensure!(out.trim() == "True", "{name} is not established: {out}");
    }
    let explain = kubectl(&["explain", "mysqlcluster.spec"])?;
    for text in ["Ordinal of the desired primary", "my.cnf overrides", "deletionPolicy"] {
        ensure!(explain.contains(text), "kubectl explain mysqlcluster.spec lacks {text:?}:\n{explain}");
    }
    let explain = kubectl(&["explain", "onlineddl.spec.cutover"])?;
    ensure!(explain.contains("lockWaitTimeoutSeconds"), "{explain}");
    let resources = kubectl(&["api-resources", "--api-group=switchyard.io", "-o", "name"])?;
    ensure!(resources.lines().count() == 4, "{resources}");
    let short = kubectl(&["get", "myc,oddl,mig,split", "-A"]);
    ensure!(short.is_ok(), "short names: {short:?}");
    Ok(())
}

const INVALID: &str = r#"
apiVersion: switchyard.io/v1alpha1
kind: MySQLCluster
metadata: {name: bad-cluster}
spec: {replicas: 3, primary: 5, image: "nginx:1.25", config: {server_id: "7"}}
---
apiVersion: switchyard.io/v1alpha1
kind: OnlineDDL
metadata: {name: bad-ddl}
spec: {cluster: db, database: shop, table: orders, alter: "ADD COLUMN c INT; DROP TABLE orders"}
---
apiVersion: switchyard.io/v1alpha1
kind: Migration
metadata: {name: bad-migration}
spec: {source: {}, target: {cluster: db}, databases: [mysql]}
---
apiVersion: switchyard.io/v1alpha1
kind: ShardSplit
metadata: {name: bad-split}
spec:
  source: {cluster: db, database: shop, table: orders}
  rule: {column: id, algorithm: range, shards: 2, ranges: [{shard: 0, to: "100"}, {shard: 1, from: "90"}]}
  targets: {template: {table: "orders_{shard}"}}
  routing: {configMap: orders-routing}
"#;

#[test]
fn invalid_specs_get_invalid_spec_and_a_warning_event() -> anyhow::Result<()> {
    let mut ns = TestNamespace::create("e2e-invalid")?;
    let op = Operator::start("invalid-specs")?;
    wait_leader(&op, Duration::from_secs(60))?;
    apply_yaml(ns.as_str(), INVALID)?;

    let cases = [
        ("mysqlcluster", "bad-cluster", "Ready", vec!["spec.image", "spec.primary", "spec.config.server_id"]),
        ("onlineddl", "bad-ddl", "Succeeded", vec!["spec.alter", "single clause"]),
        ("migration", "bad-migration", "Succeeded", vec!["spec.source: is missing", "system schema"]),
        ("shardsplit", "bad-split", "Succeeded", vec!["spec.rule.ranges", "overlap"]),
    ];
    for (kind, name, outcome, needles) in &cases {
        let cond = wait_until(&format!("{kind}/{name} InvalidSpec"), Duration::from_secs(30), POLL, || {
            let obj = get_json(ns.as_str(), kind, name)?.context("gone")?;
            Ok(condition(&obj, outcome).filter(|c| c["reason"] == "InvalidSpec").cloned().map(|c| (c, obj)))
        })?;
        let (c, obj) = cond;
        ensure!(c["status"] == "False", "{kind}: {c}");
        ensure!(c["observedGeneration"] == obj["metadata"]["generation"], "{kind}: observedGeneration: {c}");
        ensure!(c["lastTransitionTime"].is_string(), "{kind}: {c}");
        let msg = c["message"].as_str().unwrap_or_default();
        for needle in needles {
            ensure!(msg.contains(needle), "{kind} message lacks {needle:?}: {msg}");
        }
        wait_until(&format!("a Warning Event for {kind}/{name}"), Duration::from_secs(30), POLL, || {
            let events: Value =
                serde_json::from_str(&kubectl(&["get", "events.events.k8s.io", "-n", ns.as_str(), "-o", "json"])?)?;
            Ok(events["items"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["regarding"]["name"] == *name && e["reason"] == "InvalidSpec" && e["type"] == "Warning")
                .then_some(()))
        })?;
    }
    ensure!(
        kubectl(&[
            "get",
            "statefulsets,configmaps,secrets",
            "-n",
            ns.as_str(),
            "-l",
            "app.kubernetes.io/instance=bad-cluster",
            "-o",
            "name"
        ])?
        .trim()
        .is_empty(),
        "an invalid MySQLCluster must create nothing"
    );

    // Fixing the spec is picked up: the new generation is no longer invalid.
    kubectl(&[
        "patch",
        "shardsplit",
        "bad-split",
        "-n",
        ns.as_str(),
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/rule/ranges/1/from","value":"100"}]"#,
    ])?;
    // The spec passes now, so the split goes on to its checks against the
    // server, which find no cluster in this namespace.
    wait_until("the fixed ShardSplit checked against the server", Duration::from_secs(30), POLL, || {
        let obj = get_json(ns.as_str(), "shardsplit", "bad-split")?.context("gone")?;
        Ok(condition(&obj, "Succeeded")
            .filter(|c| {
                let msg = c["message"].as_str().unwrap_or_default();
                c["observedGeneration"] == 2
                    && !msg.contains("overlap")
                    && msg.contains("MySQLCluster db does not exist")
            })
            .map(|_| ()))
    })?;
    ns.passed();
    Ok(())
}

fn lease_holder() -> anyhow::Result<String> {
    Ok(kubectl(&["get", "lease", LEASE_NAME, "-n", OPERATOR_NAMESPACE, "-o", "jsonpath={.spec.holderIdentity}"])?
        .trim()
        .to_string())
}

/// Samples both instances until `until` holds, failing if both ever claim
/// leadership at the same time.
fn never_both(a: &Operator, b: &Operator, within: Duration, until: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        ensure!(!(a.is_leader() && b.is_leader()), "{} and {} both lead", a.name, b.name);
        if until() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("condition not reached within {within:?}")
}

#[test]
fn leadership_moves_on_restart_without_two_leaders() -> anyhow::Result<()> {
    let mut a = Operator::start("leader-a")?;
    wait_leader(&a, Duration::from_secs(60))?;
    ensure!(lease_holder()? == "leader-a", "lease holder: {}", lease_holder()?);

    let mut b = Operator::start("leader-b")?;
    // The standby serves health and metrics but must not lead while a does.
    wait_until("leader-b to serve metrics", Duration::from_secs(30), POLL, || Ok(b.metrics().map(|_| ())))?;
    holds_for("leader-a alone leads", Duration::from_secs(5), POLL, || Ok(a.is_leader() && !b.is_leader()))?;

    // A graceful restart releases the Lease: the standby takes over at once.
    let stopped = Instant::now();
    let status = a.terminate(Duration::from_secs(30))?;
    ensure!(status.success(), "leader-a exited with {status}");
    never_both(&a, &b, Duration::from_secs(15), || b.is_leader())?;
    ensure!(stopped.elapsed() < Duration::from_secs(10), "hand-over took {:?}", stopped.elapsed());
    ensure!(lease_holder()? == "leader-b");

    // A crash (SIGKILL) cannot release it: the successor waits for expiry.
    b.kill();
    let killed = Instant::now();
    let c = Operator::start("leader-c")?;
    wait_leader(&c, Duration::from_secs(60))?;
    ensure!(killed.elapsed() >= Duration::from_secs(5), "took over a live Lease after {:?}", killed.elapsed());
    ensure!(lease_holder()? == "leader-c");
    Ok(())
}

#[test]
fn operator_runs_with_least_privilege() -> anyhow::Result<()> {
    let sa = format!("system:serviceaccount:{OPERATOR_NAMESPACE}:switchyard");
    let can = |verb: &str, resource: &str, ns: &str| -> anyhow::Result<bool> {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(switchyard_e2e::harness::kubeconfig())
            .args(["auth", "can-i", verb, resource, "-n", ns, "--as", &sa])
            .output()?;
        // `can-i` answers with its exit status: 0 yes, 1 no, anything else is an error.
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => anyhow::bail!("kubectl auth can-i failed: {}", String::from_utf8_lossy(&out.stderr)),
        }
    };
    for (verb, resource) in [
        ("watch", "mysqlclusters.switchyard.io"),
        ("patch", "onlineddls.switchyard.io/status"),
        ("create", "events.events.k8s.io"),
    ] {
        ensure!(can(verb, resource, "default")?, "the operator needs {verb} {resource}");
    }
    for (verb, resource) in [
        ("delete", "mysqlclusters.switchyard.io"),
        ("create", "clusterroles"),
        ("delete", "namespaces"),
        ("create", "pods/exec"),
    ] {
        ensure!(!can(verb, resource, "default")?, "the operator must not {verb} {resource}");
    }
    ensure!(can("create", "leases", OPERATOR_NAMESPACE)?, "leader election needs leases in its namespace");
    ensure!(!can("update", "leases", "default")?, "leases elsewhere are none of its business");
    Ok(())
}
