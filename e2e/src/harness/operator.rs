//! The operator as the e2e suite runs it: a local process, started with the
//! chart's ServiceAccount token so a missing RBAC rule fails the tests, and
//! killed or terminated at will.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::cluster::repo_root;

/// Namespace of the operator's ServiceAccount and leader Lease.
pub const OPERATOR_NAMESPACE: &str = "switchyard-system";
pub const LEASE_NAME: &str = "switchyard-leader";

/// Kubeconfig with the chart ServiceAccount's token, written by
/// `e2e/localenv.sh operator-objects`; `SWITCHYARD_OPERATOR_KUBECONFIG` overrides.
pub fn operator_kubeconfig() -> PathBuf {
    if let Ok(p) = std::env::var("SWITCHYARD_OPERATOR_KUBECONFIG") {
        return p.into();
    }
    let state = std::env::var("SWITCHYARD_STATE").unwrap_or_else(|_| "/var/lib/switchyard-localenv".into());
    PathBuf::from(state).join("operator.kubeconfig")
}

pub struct Operator {
    pub name: String,
    child: Child,
    pub metrics_port: u16,
    pub log: PathBuf,
}

impl Operator {
    /// Starts `target/debug/switchyard run` (built by hack/e2e.sh).
    pub fn start(name: &str) -> anyhow::Result<Operator> {
        Self::start_with_env(name, &[])
    }

    /// Like `start`, with extra environment (e.g. a failpoint).
    pub fn start_with_env(name: &str, env: &[(&str, &str)]) -> anyhow::Result<Operator> {
        let root = repo_root();
        let bin =
            std::env::var("SWITCHYARD_BIN").map(PathBuf::from).unwrap_or_else(|_| root.join("target/debug/switchyard"));
        anyhow::ensure!(bin.exists(), "no operator binary at {}: run `cargo build -p switchyard`", bin.display());
        let port = free_port()?;
        let logs = root.join("target/e2e-logs");
        std::fs::create_dir_all(&logs)?;
        let log = logs.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .args(["run", "--metrics-addr", &format!("127.0.0.1:{port}"), "--lease-name", LEASE_NAME])
            .env("KUBECONFIG", operator_kubeconfig())
            .env("POD_NAMESPACE", OPERATOR_NAMESPACE)
            .env("POD_NAME", name)
            .env("RUST_LOG", "info,kube=warn,switchyard=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Operator { name: name.into(), child, metrics_port: port, log })
    }

    /// The operator's /metrics text, or None while it does not answer.
    pub fn metrics(&self) -> Option<String> {
        http_get(self.metrics_port, "/metrics").ok()
    }

    /// Whether it reports holding the leader Lease.
    pub fn is_leader(&self) -> bool {
        self.metrics().is_some_and(|m| m.lines().any(|l| l.trim() == "switchyard_leader 1"))
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn terminate(&mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
        signal(self.child.id(), "TERM")?;
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "operator {} did not exit within {within:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: the crash case, no chance to release anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Last lines of its log, for failure reports.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if self.is_running() {
            if std::thread::panicking() {
                eprintln!("--- operator {} log tail ---\n{}", self.name, self.log_tail(40));
            }
            self.kill();
        }
    }
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status()?;
    anyhow::ensure!(status.success(), "kill -{sig} {pid} failed");
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A minimal HTTP/1.0 GET; enough for /metrics without another dependency.
fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    anyhow::ensure!(body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200"), "GET {path}: {body}");
    Ok(body.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}
