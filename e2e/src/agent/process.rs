//! mariadbd processes: spawning, signalling, stopping, finding them again.
//! Every server runs in its own process group so that signals aimed at the
//! agent (Ctrl-C, a service manager stopping it) do not hit the databases, and
//! a restarted agent can adopt them through the record kept in the run dir.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{AgentError, Result};

/// Written next to the server right after it is spawned. The start time (in
/// clock ticks since boot, from /proc) guards against a recycled pid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: u32,
    pub start_ticks: u64,
    pub pod_uid: String,
    /// Unix seconds, for the container's `startedAt`.
    pub started_at: i64,
}

impl ProcessRecord {
    pub fn read(path: &Path) -> Option<Self> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("record serializes");
        super::ipam::write_atomically(path, &json)
    }

    /// True while this very process (not a successor with the same pid) exists
    /// and has not exited. A stopped (SIGSTOP) process is still running.
    pub fn is_running(&self) -> bool {
        match proc_stat(self.pid) {
            Some(stat) => stat.start_ticks == self.start_ticks && !matches!(stat.state, 'Z' | 'X'),
            None => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub start_ticks: u64,
}

/// Parse /proc/<pid>/stat. The command name is in parentheses and may itself
/// contain spaces and parentheses, so fields are counted after the last ')'.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state); starttime is field 22.
    Some(ProcStat { state: fields.first()?.chars().next()?, start_ticks: fields.get(19)?.parse().ok()? })
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
        })
        .unwrap_or_default()
}

pub fn send_signal(pid: u32, signal: i32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signal) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// How a process ended. Both None: it was not our child, so its exit status
/// is lost (it was adopted from an earlier agent run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitInfo {
    pub fn from_status(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Self { code: status.code(), signal: status.signal() }
    }

    /// Exit code as a container runtime reports it: 128+signal when killed.
    pub fn exit_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(code), _) => code,
            (None, Some(sig)) => 128 + sig,
            (None, None) => 137,
        }
    }

    pub fn is_unknown(&self) -> bool {
        self.code.is_none() && self.signal.is_none()
    }
}

pub enum ServerProcess {
    Child {
        child: tokio::process::Child,
        record: ProcessRecord,
    },
    /// Left running by an earlier agent; watched through /proc.
    Adopted {
        record: ProcessRecord,
    },
}

impl ServerProcess {
    pub fn record(&self) -> &ProcessRecord {
        match self {
            ServerProcess::Child { record, .. } | ServerProcess::Adopted { record } => record,
        }
    }

    pub fn pid(&self) -> u32 {
        self.record().pid
    }

    pub fn container_id(&self) -> String {
        format!("mariadbd://{}", self.pid())
    }

    /// Resolves when the process has exited; cancel-safe.
    pub async fn wait(&mut self) -> ExitInfo {
        match self {
            ServerProcess::Child { child, .. } => match child.wait().await {
                Ok(status) => ExitInfo::from_status(status),
                Err(e) => {
                    tracing::warn!(error = %e, "waiting for mariadbd failed");
                    ExitInfo { code: None, signal: None }
                }
            },
            ServerProcess::Adopted { record } => {
                while record.is_running() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                ExitInfo { code: None, signal: None }
            }
        }
    }

    pub fn signal(&self, signal: i32) -> std::io::Result<()> {
        send_signal(self.pid(), signal)
    }

    /// SIGTERM, then SIGKILL once the grace period is over, like a kubelet.
    pub async fn stop(&mut self, grace: Duration) -> ExitInfo {
        if let Err(e) = self.signal(libc::SIGTERM) {
            tracing::debug!(pid = self.pid(), error = %e, "SIGTERM failed");
        }
        // A frozen (SIGSTOP) server cannot act on SIGTERM until thawed.
        let _ = self.signal(libc::SIGCONT);
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(exit) => exit,
            Err(_) => {
                tracing::info!(pid = self.pid(), "grace period over, sending SIGKILL");
                let _ = self.signal(libc::SIGKILL);
                self.wait().await
            }
        }
    }
}

/// Start a server with stdout and stderr appended to `log`, and record it.
///
/// With `hostname`, the server gets its own UTS namespace with that host
/// name, so `@@hostname` is the pod's name as in a real pod. Without the
/// privilege for that it keeps the machine's name.
pub fn spawn(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
    record_path: &Path,
    pod_uid: &str,
    hostname: Option<&str>,
) -> Result<ServerProcess> {
    let open_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(AgentError::io(format!("opening {}", log.display())))
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into()))
        .stdin(Stdio::null())
        .stdout(open_log()?)
        .stderr(open_log()?)
        .process_group(0)
        // The server must outlive a restarting agent, which adopts it.
        .kill_on_drop(false);
    if let Some(name) = hostname.and_then(|h| std::ffi::CString::new(h).ok()) {
        // SAFETY: the closure only makes two async-signal-safe syscalls.
        unsafe {
            command.pre_exec(move || {
                if libc::unshare(libc::CLONE_NEWUTS) == 0 {
                    libc::sethostname(name.as_ptr(), name.as_bytes().len());
                }
                Ok(())
            });
        }
    }
    let child = command.spawn().map_err(AgentError::io(format!("starting {}", program.display())))?;
    let pid = child.id().ok_or_else(|| AgentError::Invalid("mariadbd exited before it got a pid".into()))?;
    let record = ProcessRecord {
        pid,
        start_ticks: proc_stat(pid).map(|s| s.start_ticks).unwrap_or_default(),
        pod_uid: pod_uid.to_string(),
        started_at: jiff::Timestamp::now().as_second(),
    };
    record.write(record_path)?;
    Ok(ServerProcess::Child { child, record })
}

/// A mariadbd on this machine that belongs to a pod run dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodServer {
    pub pid: u32,
    pub namespace: String,
    pub pod: String,
}

/// Which pod a server command line belongs to, from its
/// `--defaults-file=<pods_root>/<ns>/<pod>/my.cnf`.
pub fn pod_of_cmdline(args: &[String], pods_root: &Path) -> Option<(String, String)> {
    let program = Path::new(args.first()?).file_name()?.to_str()?;
    if !matches!(program, "mariadbd" | "mysqld") {
        return None;
    }
    let file = args.iter().find_map(|a| a.strip_prefix("--defaults-file="))?;
    let rel = Path::new(file).strip_prefix(pods_root).ok()?;
    let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
    match parts.as_slice() {
        [ns, pod, "my.cnf"] => Some((ns.to_string(), pod.to_string())),
        _ => None,
    }
}

/// All pod servers running on this machine, found through /proc, so that
/// servers whose record was lost are found too.
pub fn find_pod_servers(pods_root: &Path) -> Vec<PodServer> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (namespace, pod) = pod_of_cmdline(&cmdline(pid), pods_root)?;
            let alive = proc_stat(pid).is_some_and(|s| !matches!(s.state, 'Z' | 'X'));
            alive.then_some(PodServer { pid, namespace, pod })
        })
        .collect()
}

/// Make sure a pod's leftover server is gone: SIGTERM, then SIGKILL.
pub async fn terminate_pid(pid: u32, grace: Duration) {
    let start = proc_stat(pid).map(|s| s.start_ticks);
    let alive = || proc_stat(pid).is_some_and(|s| Some(s.start_ticks) == start && !matches!(s.state, 'Z' | 'X'));
    let _ = send_signal(pid, libc::SIGTERM);
    let _ = send_signal(pid, libc::SIGCONT);
    let deadline = tokio::time::Instant::now() + grace;
    while alive() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if alive() {
        let _ = send_signal(pid, libc::SIGKILL);
    }
}

pub fn signal_by_name(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    Some(match upper.strip_prefix("SIG").unwrap_or(&upper) {
        "KILL" | "9" => libc::SIGKILL,
        "TERM" | "15" => libc::SIGTERM,
        "STOP" | "19" => libc::SIGSTOP,
        "CONT" | "18" => libc::SIGCONT,
        "INT" | "2" => libc::SIGINT,
        "HUP" | "1" => libc::SIGHUP,
        _ => return None,
    })
}

pub fn pid_file_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_awkward_names() {
        let text = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 \
                    4 0 987654 1000000 200 18446744073709551615";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_ticks, 987654);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn own_process_is_running_and_a_wrong_start_time_is_not() {
        let pid = std::process::id();
        let stat = proc_stat(pid).unwrap();
        let mut record = ProcessRecord { pid, start_ticks: stat.start_ticks, pod_uid: "u".into(), started_at: 0 };
        assert!(record.is_running());
        record.start_ticks += 1;
        assert!(!record.is_running());
    }

    #[test]
    fn finds_the_pod_of_a_server_command_line() {
        let root = Path::new("/st/pods");
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pod_of_cmdline(&args(&["/usr/sbin/mariadbd", "--defaults-file=/st/pods/ns/db-0/my.cnf", "--x"]), root),
            Some(("ns".into(), "db-0".into()))
        );
        assert_eq!(pod_of_cmdline(&args(&["/usr/bin/mariadb", "--defaults-file=/st/pods/ns/db-0/my.cnf"]), root), None);
        assert_eq!(pod_of_cmdline(&args(&["mariadbd", "--defaults-file=/other/ns/db-0/my.cnf"]), root), None);
    }

    #[test]
    fn exit_codes_like_a_container_runtime() {
        assert_eq!(ExitInfo { code: Some(1), signal: None }.exit_code(), 1);
        assert_eq!(ExitInfo { code: None, signal: Some(9) }.exit_code(), 137);
        assert!(ExitInfo { code: None, signal: None }.is_unknown());
        assert_eq!(signal_by_name("kill"), Some(libc::SIGKILL));
        assert_eq!(signal_by_name("SIGSTOP"), Some(libc::SIGSTOP));
        assert_eq!(signal_by_name("bogus"), None);
    }

    #[tokio::test]
    async fn spawned_process_is_recorded_waited_and_stopped() {
        let dir = std::env::temp_dir().join(format!("switchyard-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let record_path = dir.join("process.json");
        let mut p = spawn(
            Path::new("/bin/sleep"),
            &["30".to_string()],
            &[],
            &dir.join("log"),
            &record_path,
            "uid-1",
            Some("db-0"),
        )
        .unwrap();
        let record = ProcessRecord::read(&record_path).unwrap();
        assert_eq!(record.pid, p.pid());
        assert!(record.is_running());

        // Stopped is not exited.
        p.signal(libc::SIGSTOP).unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(300), p.wait()).await.is_err());
        assert!(record.is_running());

        let exit = p.stop(Duration::from_secs(5)).await;
        assert_eq!(exit.signal, Some(libc::SIGTERM));
        assert!(!record.is_running());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
