//! kubectl, the way a person would use it against the cluster under test.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::cluster::kubeconfig;

fn run(args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running kubectl (is it installed?)")?;
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin is piped").write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("kubectl {} failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run kubectl; stdout on success, an error carrying stderr otherwise.
pub fn kubectl(args: &[&str]) -> anyhow::Result<String> {
    run(args, None)
}

/// kubectl with `input` on stdin (for `apply -f -`).
pub fn kubectl_stdin(args: &[&str], input: &str) -> anyhow::Result<String> {
    run(args, Some(input))
}

/// `kubectl apply -n NS -f -`.
pub fn apply_yaml(namespace: &str, yaml: &str) -> anyhow::Result<()> {
    kubectl_stdin(&["apply", "-n", namespace, "-f", "-"], yaml).map(drop)
}

/// An object as JSON, or None if it does not exist.
pub fn get_json(namespace: &str, resource: &str, name: &str) -> anyhow::Result<Option<serde_json::Value>> {
    let out = kubectl(&["get", "-n", namespace, resource, name, "-o", "json", "--ignore-not-found"])?;
    if out.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(&out).context("kubectl returned invalid JSON")?))
}
