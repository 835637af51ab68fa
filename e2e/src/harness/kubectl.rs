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

/// One key of a Secret, decoded (`base64 -d`, as a person would).
pub fn secret_value(namespace: &str, secret: &str, key: &str) -> anyhow::Result<String> {
    let b64 = kubectl(&["get", "secret", secret, "-n", namespace, "-o", &format!("jsonpath={{.data.{key}}}")])?;
    let mut child = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running base64")?;
    child.stdin.take().expect("stdin is piped").write_all(b64.trim().as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "{secret}/{key} is not base64");
    Ok(String::from_utf8(out.stdout)?)
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
