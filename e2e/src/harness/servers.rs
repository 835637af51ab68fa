//! Standalone MariaDB servers on 127.0.0.1 (no Kubernetes) for the data
//! movement engine's integration tests and benchmarks. `hack/local-mariadb.sh`
//! does the work; this is its Rust face.
//!
//! Servers outlive the tests that start them: starting one costs seconds and
//! a warm buffer pool is what a benchmark wants, so tests reset the databases
//! they use instead of the server, and nothing here stops a server on drop.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use mysql_async::{Conn, Opts, OptsBuilder};

use super::cluster::repo_root;

pub const DEFAULT_PASSWORD: &str = "switchyard";

/// The root password the script gives every server (`SWITCHYARD_MARIADB_PASSWORD`
/// overrides, for the script and this module alike).
pub fn password() -> String {
    std::env::var("SWITCHYARD_MARIADB_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PASSWORD.into())
}

fn script() -> PathBuf {
    repo_root().join("hack/local-mariadb.sh")
}

/// Runs the script, folding its stderr (the server's error log on a failed
/// start) into the error.
fn run(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .with_context(|| format!("running {} {}", script().display(), args.join(" ")))?;
    anyhow::ensure!(
        out.status.success(),
        "hack/local-mariadb.sh {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[derive(Debug, Clone)]
pub struct LocalServer {
    pub name: String,
    pub port: u16,
}

impl LocalServer {
    /// Starts (or reuses) the server via hack/local-mariadb.sh; `extra` are
    /// mariadbd args. A running server started with other args is restarted.
    pub fn start(name: &str, port: u16, extra: &[&str]) -> anyhow::Result<LocalServer> {
        let port_arg = port.to_string();
        let mut args = vec!["start", name, &port_arg];
        args.extend_from_slice(extra);
        run(&args)?;
        Ok(LocalServer { name: name.to_string(), port })
    }

    /// `mysql://root:PASSWORD@127.0.0.1:PORT`, what the engine takes.
    pub fn url(&self) -> String {
        format!("mysql://root:{}@127.0.0.1:{}", password(), self.port)
    }

    /// Connection options for the harness's own connections: over TCP, as
    /// the engine reaches a real server, not over the socket mysql_async
    /// would otherwise switch to for a loopback address.
    pub fn opts(&self) -> anyhow::Result<Opts> {
        let opts = Opts::from_url(&self.url()).context("parsing the server url")?;
        Ok(OptsBuilder::from_opts(opts).prefer_socket(false).into())
    }

    pub async fn conn(&self) -> anyhow::Result<Conn> {
        tokio::time::timeout(Duration::from_secs(10), Conn::new(self.opts()?))
            .await
            .with_context(|| format!("connecting to {} (127.0.0.1:{}) timed out", self.name, self.port))?
            .with_context(|| format!("connecting to {} (127.0.0.1:{})", self.name, self.port))
    }

    pub fn stop(&self) -> anyhow::Result<()> {
        run(&["stop", &self.name]).map(drop)
    }

    /// Stops the server and deletes its data; the next `start` initialises
    /// a fresh one.
    pub fn wipe(&self) -> anyhow::Result<()> {
        run(&["wipe", &self.name]).map(drop)
    }
}
