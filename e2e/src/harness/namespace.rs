//! One namespace per test, deleted when the test ends. When the test failed
//! (panicked, or returned before calling `passed()`), the namespace's
//! resources, pod descriptions, events and server logs are printed first, so
//! a failure explains itself. `SWITCHYARD_KEEP_NAMESPACES=1` keeps failed
//! namespaces for a closer look.

use std::time::{SystemTime, UNIX_EPOCH};

use super::cluster::{external_cluster, node_state_dir, state_root};
use super::kubectl::kubectl;

pub struct TestNamespace {
    pub name: String,
    passed: bool,
}

impl TestNamespace {
    /// Create `<prefix>-<unique suffix>`.
    pub fn create(prefix: &str) -> anyhow::Result<Self> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let suffix = format!("{:x}{:x}", (nanos / 1_000_000) % 0xffff_ffff, std::process::id() % 0xfff);
        let mut prefix: String =
            prefix.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        prefix.truncate(40);
        let name = format!("{}-{suffix}", prefix.trim_end_matches('-'));
        kubectl(&["create", "namespace", &name])?;
        kubectl(&["label", "namespace", &name, "switchyard.io/e2e=true"])?;
        Ok(Self { name, passed: false })
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// Mark the test as passed: no diagnostics on drop.
    pub fn passed(&mut self) {
        self.passed = true;
    }

    /// Print what a person would look at first.
    pub fn dump(&self) {
        let ns = self.name.as_str();
        eprintln!("===== diagnostics for namespace {ns} =====");
        let show = |title: &str, args: &[&str]| {
            eprintln!("--- {title} ---");
            match kubectl(args) {
                Ok(out) => eprintln!("{out}"),
                Err(e) => eprintln!("({e:#})"),
            }
        };
        show("kubectl get all,pvc -o wide", &["get", "all,pvc", "-n", ns, "-o", "wide"]);
        show("kubectl describe pods", &["describe", "pods", "-n", ns]);
        show("events", &["get", "events", "-n", ns, "--sort-by=.lastTimestamp"]);
        if !external_cluster() {
            let pods_dir = node_state_dir().join("pods").join(ns);
            if let Ok(entries) = std::fs::read_dir(&pods_dir) {
                for e in entries.flatten() {
                    let log = e.path().join("mysqld.log");
                    if let Ok(text) = std::fs::read_to_string(&log) {
                        eprintln!("--- {} (last 30 lines) ---", log.display());
                        eprintln!("{}", tail(&text, 30));
                    }
                }
            }
            let agent_log = state_root().join("run/node-agent.log");
            if let Ok(text) = std::fs::read_to_string(&agent_log) {
                let lines: Vec<&str> = text.lines().filter(|l| l.contains(ns)).collect();
                eprintln!("--- node agent log lines for {ns} (last 30) ---");
                eprintln!("{}", lines[lines.len().saturating_sub(30)..].join("\n"));
            }
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let failed = std::thread::panicking() || !self.passed;
        if failed {
            self.dump();
            if std::env::var("SWITCHYARD_KEEP_NAMESPACES").is_ok_and(|v| v == "1") {
                eprintln!("keeping namespace {} (SWITCHYARD_KEEP_NAMESPACES=1)", self.name);
                return;
            }
        }
        if let Err(e) = kubectl(&["delete", "namespace", &self.name, "--wait=false"]) {
            eprintln!("deleting namespace {}: {e:#}", self.name);
        }
    }
}
