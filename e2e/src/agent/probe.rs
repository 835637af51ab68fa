//! Startup, readiness and liveness probes, evaluated for real against the
//! pod's server: TCP connects to the pod address, exec probes run the pod's
//! command on the host with the client tools pointed at this pod.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::mounts::MountTable;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Startup,
    Readiness,
    Liveness,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Exec(Vec<String>),
    Tcp { port: u16 },
    Http { port: u16, path: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

fn seconds(value: Option<i32>, default: i32, min: i32) -> Duration {
    Duration::from_secs(value.unwrap_or(default).max(min) as u64)
}

fn port_of(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port {p}")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("port name {name} not found in container ports")),
    }
}

/// The probe with Kubernetes' defaults filled in.
pub fn spec_of(probe: &Probe, container: &Container) -> Result<ProbeSpec, String> {
    let action = if let Some(exec) = &probe.exec {
        Action::Exec(exec.command.clone().unwrap_or_default())
    } else if let Some(tcp) = &probe.tcp_socket {
        Action::Tcp { port: port_of(&tcp.port, container)? }
    } else if let Some(http) = &probe.http_get {
        Action::Http { port: port_of(&http.port, container)?, path: http.path.clone().unwrap_or_else(|| "/".into()) }
    } else if let Some(grpc) = &probe.grpc {
        // No gRPC health service in mariadbd; the port answering is the best
        // a local check can do.
        Action::Tcp { port: u16::try_from(grpc.port).map_err(|_| "invalid grpc port".to_string())? }
    } else {
        return Err("probe has no handler".into());
    };
    Ok(ProbeSpec {
        action,
        initial_delay: seconds(probe.initial_delay_seconds, 0, 0),
        period: seconds(probe.period_seconds, 10, 1),
        timeout: seconds(probe.timeout_seconds, 1, 1),
        success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
        failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
    })
}

/// Without a readiness probe a pod is Ready once mysqld accepts connections:
/// that is what every client of the pod actually needs.
pub fn accepts_connections(port: u16) -> ProbeSpec {
    ProbeSpec {
        action: Action::Tcp { port },
        initial_delay: Duration::ZERO,
        // Each check leaves an "Aborted connection" note in the server log,
        // as a kubelet's tcpSocket probe does; every 2s is plenty.
        period: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        success_threshold: 1,
        failure_threshold: 3,
    }
}

/// Replace `127.0.0.1` as a whole address (not inside 127.0.0.10).
fn replace_loopback(word: &str, pod_ip: &str) -> String {
    const LOOPBACK: &str = "127.0.0.1";
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(pos) = rest.find(LOOPBACK) {
        let before = rest[..pos].chars().last();
        let after = rest[pos + LOOPBACK.len()..].chars().next();
        let part_of_number = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit() || c == '.');
        out.push_str(&rest[..pos]);
        if part_of_number(before) || part_of_number(after) {
            out.push_str(LOOPBACK);
        } else {
            out.push_str(pod_ip);
        }
        rest = &rest[pos + LOOPBACK.len()..];
    }
    out.push_str(rest);
    out
}

/// An exec probe's command, made to reach this pod from the host: the pod's
/// loopback becomes the pod address, mounted paths become host paths.
/// `localhost` stays: clients then use the pod's socket (MYSQL_UNIX_PORT and
/// MYSQL_HOME point at it).
pub fn rewrite_exec(command: &[String], pod_ip: Ipv4Addr, socket: &str, mounts: &MountTable) -> Vec<String> {
    let ip = pod_ip.to_string();
    let mut words: Vec<String> = command.iter().map(|w| mounts.translate_text(&replace_loopback(w, &ip))).collect();
    // The official image's healthcheck.sh is not on the host; its --connect
    // check is what mariadb-admin ping does (any answer means "up").
    if words.first().is_some_and(|w| w.rsplit('/').next() == Some("healthcheck.sh")) {
        words = vec!["mariadb-admin".into(), "--no-defaults".into(), format!("--socket={socket}"), "ping".into()];
    }
    words
}

/// Everything needed to run a probe against one pod.
#[derive(Debug, Clone)]
pub struct Target {
    pub pod_ip: Ipv4Addr,
    pub socket: PathBuf,
    /// The pod run dir; its my.cnf has a [client] section for this pod.
    pub run_dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub mounts: MountTable,
    /// The root file system the server runs in (the sid root of MySQL): exec
    /// probes run there too, as they would inside the server's container.
    pub root: Option<PathBuf>,
}

impl Target {
    /// Environment for commands that talk to this pod's server.
    pub fn client_env(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.retain(|(k, _)| !matches!(k.as_str(), "MYSQL_UNIX_PORT" | "MYSQL_HOST" | "MYSQL_HOME" | "PATH"));
        env.push(("MYSQL_UNIX_PORT".into(), self.socket.display().to_string()));
        env.push(("MYSQL_HOST".into(), self.pod_ip.to_string()));
        env.push(("MYSQL_HOME".into(), self.run_dir.display().to_string()));
        env.push(("PATH".into(), std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())));
        env
    }
}

fn clip(text: &str) -> String {
    let t = text.trim();
    if t.len() > 512 {
        let mut end = 512;
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &t[..end])
    } else {
        t.to_string()
    }
}

/// One probe attempt; Err carries the message for events and logs.
pub async fn run_once(spec: &ProbeSpec, target: &Target) -> Result<(), String> {
    let attempt = async {
        match &spec.action {
            Action::Tcp { port } => tokio::net::TcpStream::connect(SocketAddr::from((target.pod_ip, *port)))
                .await
                .map(drop)
                .map_err(|e| format!("dial tcp {}:{port}: {e}", target.pod_ip)),
            Action::Http { port, path } => http_get(target.pod_ip, *port, path).await,
            Action::Exec(command) => {
                let words = rewrite_exec(command, target.pod_ip, &target.socket.display().to_string(), &target.mounts);
                let Some((program, args)) = words.split_first() else {
                    return Err("exec probe has an empty command".into());
                };
                let output = super::installation::command_in(target.root.as_deref(), program)
                    .args(args)
                    .env_clear()
                    .envs(target.client_env())
                    .current_dir(&target.run_dir)
                    .stdin(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .output()
                    .await
                    .map_err(|e| format!("exec {program}: {e}"))?;
                if output.status.success() {
                    Ok(())
                } else {
                    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
                    text.push_str(&String::from_utf8_lossy(&output.stderr));
                    Err(format!("command {words:?} failed ({}): {}", output.status, clip(&text)))
                }
            }
        }
    };
    match tokio::time::timeout(spec.timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("probe timed out after {}s", spec.timeout.as_secs())),
    }
}

async fn http_get(ip: Ipv4Addr, port: u16, path: &str) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(SocketAddr::from((ip, port)))
        .await
        .map_err(|e| format!("dial tcp {ip}:{port}: {e}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/1.20\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut head = vec![0u8; 64];
    let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n]);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {}", clip(&line)))?;
    if (200..400).contains(&code) { Ok(()) } else { Err(format!("HTTP probe failed with statuscode: {code}")) }
}

/// Consecutive-result thresholds. Readiness starts failed, liveness and
/// startup start "not failed" as in the kubelet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    success_threshold: u32,
    failure_threshold: u32,
    successes: u32,
    failures: u32,
    pub healthy: bool,
}

impl Tracker {
    pub fn new(spec: &ProbeSpec, initially_healthy: bool) -> Self {
        Self {
            success_threshold: spec.success_threshold,
            failure_threshold: spec.failure_threshold,
            successes: 0,
            failures: 0,
            healthy: initially_healthy,
        }
    }

    /// Failed for good: the failure threshold is reached.
    pub fn failed(&self) -> bool {
        self.failures >= self.failure_threshold
    }

    /// Record one result; true when `healthy` flipped.
    pub fn record(&mut self, ok: bool) -> bool {
        let before = self.healthy;
        if ok {
            self.successes += 1;
            self.failures = 0;
            if self.successes >= self.success_threshold {
                self.healthy = true;
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= self.failure_threshold {
                self.healthy = false;
            }
        }
        before != self.healthy
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: Kind,
    /// Which container run the result belongs to; stale results are dropped.
    pub generation: u64,
    pub result: Result<(), String>,
}

/// A probe loop that stops when dropped.
pub struct Prober(tokio::task::JoinHandle<()>);

impl Drop for Prober {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub fn start(kind: Kind, generation: u64, spec: ProbeSpec, target: Arc<Target>, tx: mpsc::Sender<Outcome>) -> Prober {
    Prober(tokio::spawn(async move {
        tokio::time::sleep(spec.initial_delay).await;
        loop {
            let result = run_once(&spec, &target).await;
            if tx.send(Outcome { kind, generation, result }).await.is_err() {
                return;
            }
            tokio::time::sleep(spec.period).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, ExecAction, TCPSocketAction};

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_and_named_ports() {
        let container = Container {
            name: "db".into(),
            ports: Some(vec![ContainerPort { name: Some("mysql".into()), container_port: 3306, ..Default::default() }]),
            ..Default::default()
        };
        let probe = Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::String("mysql".into()), host: None }),
            ..Default::default()
        };
        let spec = spec_of(&probe, &container).unwrap();
        assert_eq!(spec.action, Action::Tcp { port: 3306 });
        assert_eq!(spec.period, Duration::from_secs(10));
        assert_eq!(spec.timeout, Duration::from_secs(1));
        assert_eq!((spec.success_threshold, spec.failure_threshold), (1, 3));

        let exec = Probe {
            exec: Some(ExecAction { command: Some(words(&["mariadb-admin", "ping"])) }),
            period_seconds: Some(2),
            timeout_seconds: Some(3),
            failure_threshold: Some(2),
            initial_delay_seconds: Some(5),
            ..Default::default()
        };
        let spec = spec_of(&exec, &container).unwrap();
        assert_eq!(spec.action, Action::Exec(words(&["mariadb-admin", "ping"])));
        assert_eq!(spec.initial_delay, Duration::from_secs(5));
        assert_eq!(spec.failure_threshold, 2);
        assert!(spec_of(&Probe::default(), &container).is_err());
    }

    #[test]
    fn exec_commands_are_pointed_at_the_pod() {
        let ip = Ipv4Addr::new(127, 0, 0, 12);
        let mut mounts = MountTable::new();
        mounts.add("/etc/mysql/conf.d", "/st/pods/ns/db/volumes/conf");
        let got = rewrite_exec(
            &words(&[
                "mysqladmin",
                "-h",
                "127.0.0.1",
                "--host=127.0.0.1",
                "-h127.0.0.1",
                "--defaults-extra-file=/etc/mysql/conf.d/client.cnf",
                "ping",
            ]),
            ip,
            "/s.sock",
            &mounts,
        );
        assert_eq!(
            got,
            words(&[
                "mysqladmin",
                "-h",
                "127.0.0.12",
                "--host=127.0.0.12",
                "-h127.0.0.12",
                "--defaults-extra-file=/st/pods/ns/db/volumes/conf/client.cnf",
                "ping",
            ])
        );
        let shell = rewrite_exec(
            &words(&["sh", "-c", "mysql -h 127.0.0.1 -uroot -e 'select 1' # not 127.0.0.10"]),
            ip,
            "/s.sock",
            &mounts,
        );
        assert_eq!(shell[2], "mysql -h 127.0.0.12 -uroot -e 'select 1' # not 127.0.0.10");
        let localhost = rewrite_exec(&words(&["mariadb-admin", "-h", "localhost", "ping"]), ip, "/s.sock", &mounts);
        assert_eq!(localhost, words(&["mariadb-admin", "-h", "localhost", "ping"]));
        let hc = rewrite_exec(&words(&["healthcheck.sh", "--connect"]), ip, "/s.sock", &mounts);
        assert_eq!(hc[0], "mariadb-admin");
    }

    #[test]
    fn thresholds() {
        let spec = ProbeSpec {
            action: Action::Tcp { port: 1 },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: 2,
            failure_threshold: 3,
        };
        let mut readiness = Tracker::new(&spec, false);
        assert!(!readiness.record(true));
        assert!(readiness.record(true));
        assert!(readiness.healthy);
        assert!(!readiness.record(false));
        assert!(!readiness.record(false));
        assert!(!readiness.record(true)); // streak broken
        assert!(!readiness.record(false));
        assert!(!readiness.record(false));
        assert!(readiness.record(false));
        assert!(!readiness.healthy);
    }

    #[tokio::test]
    async fn tcp_and_exec_probes_run_for_real() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Target {
            pod_ip: Ipv4Addr::LOCALHOST,
            socket: "/nonexistent.sock".into(),
            run_dir: std::env::temp_dir(),
            env: vec![("GREETING".into(), "hi".into())],
            mounts: MountTable::new(),
            root: None,
        };
        let spec = |action| ProbeSpec {
            action,
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 1,
        };
        assert!(run_once(&spec(Action::Tcp { port }), &target).await.is_ok());
        drop(listener);
        assert!(run_once(&spec(Action::Tcp { port }), &target).await.is_err());
        let ok = spec(Action::Exec(words(&["sh", "-c", "test \"$GREETING\" = hi && test -n \"$MYSQL_UNIX_PORT\""])));
        assert!(run_once(&ok, &target).await.is_ok());
        let slow = spec(Action::Exec(words(&["sleep", "5"])));
        let err = run_once(&slow, &target).await.unwrap_err();
        assert!(err.contains("timed out"), "{err}");
    }
}
