//! The node agent: kubelet and scheduler stand-in for one local node.
//!
//! It registers a Node, keeps it Ready, binds pending pods to it, provisions
//! hostPath volumes for claims, and runs every MySQL-family pod as a real
//! server process on its own loopback address: `mariadbd`, or Oracle MySQL's
//! `mysqld` from a sid root (`installation.rs`). `README.md` beside this
//! file says what it does and does not do, for people writing tests.
//!
//! State dir layout (shared with the `signal` subcommand and the e2e harness):
//! `<state>/pods/<ns>/<pod>/` run dir (my.cnf, socket, pid files, mysqld.log,
//! materialized volumes), `<state>/volumes/<ns>/<claim>/` claim data,
//! `<state>/ips.json` pod addresses, `<state>/agent.lock`.

pub mod entrypoint;
pub mod env;
pub mod error;
pub mod events;
pub mod image;
pub mod installation;
pub mod ipam;
pub mod kubelet_api;
pub mod layout;
pub mod mounts;
pub mod mycnf;
pub mod node;
pub mod options;
pub mod pods;
pub mod probe;
pub mod process;
pub mod provisioner;
pub mod scheduler;
pub mod signal;
pub mod status;
pub mod supervisor;
pub mod volumes;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use error::{AgentError, Result};
use layout::StateLayout;

pub const DEFAULT_NODE_NAME: &str = "switchyard-local";

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// None: the usual kubeconfig lookup (KUBECONFIG, ~/.kube/config).
    pub kubeconfig: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub node_name: String,
    pub mariadbd: PathBuf,
    /// A Debian sid root with MySQL installed (`hack/sid-root.sh`); without
    /// one, MySQL and Percona images are refused.
    pub mysql_root: Option<PathBuf>,
    /// Where `kubectl logs` is served (the kubelet port); 0 turns it off.
    pub kubelet_port: u16,
}

pub async fn client(kubeconfig: Option<&std::path::Path>) -> Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer().await.map_err(|e| AgentError::Invalid(format!("no kubeconfig: {e}")))?,
    };
    Ok(Client::try_from(config)?)
}

/// One agent per state dir: two would run two servers on one datadir. The
/// lock dies with the process, so a crashed agent never blocks the next one.
fn lock_state_dir(layout: &StateLayout) -> Result<std::fs::File> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let path = layout.root().join("agent.lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(AgentError::io(format!("opening {}", path.display())))?;
    // SAFETY: flock(2) on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        return Err(AgentError::Invalid(format!(
            "another node agent (pid {}) is running with state dir {}",
            holder.trim(),
            layout.root().display()
        )));
    }
    file.set_len(0)
        .and_then(|_| write!(file, "{}", std::process::id()))
        .map_err(AgentError::io("writing agent.lock"))?;
    Ok(file)
}

/// Run until SIGINT/SIGTERM. Servers keep running when the agent stops; the
/// next agent run adopts them.
pub async fn run(config: AgentConfig) -> Result<()> {
    let client = client(config.kubeconfig.as_deref()).await?;
    let layout = StateLayout::new(&config.state_dir);
    for dir in [layout.pods_root(), layout.volumes_root()] {
        std::fs::create_dir_all(&dir).map_err(AgentError::io(format!("creating {}", dir.display())))?;
    }
    let _lock = lock_state_dir(&layout)?;
    let mariadb = installation::Installation::mariadb(config.mariadbd.clone());
    let mysql = match &config.mysql_root {
        None => None,
        Some(root) => {
            let mysql = installation::Installation::mysql(root.clone())?;
            // Pods' files live in the state dir; long socket paths in /tmp.
            installation::share_into(root, &config.state_dir)?;
            installation::share_into(root, Path::new(layout::SHORT_SOCKET_DIR))?;
            Some(Arc::new(mysql))
        }
    };
    let facts = node::NodeFacts::detect(&config.node_name, &mariadb.version, config.kubelet_port);
    tracing::info!(
        node = %config.node_name,
        state = %config.state_dir.display(),
        mariadbd = %mariadb.version,
        mysqld = %mysql.as_ref().map(|m| m.version.as_str()).unwrap_or("none"),
        "starting node agent"
    );

    // The API server may still be coming up; keep trying.
    let mut delay = Duration::from_secs(1);
    loop {
        match node::register(&client, &facts).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "registering node failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }

    let recorder = events::Recorder::new(client.clone(), &config.node_name);
    let shared = Arc::new(supervisor::Shared {
        client: client.clone(),
        node_name: config.node_name.clone(),
        layout: layout.clone(),
        ipam: std::sync::Mutex::new(ipam::Ipam::load(&layout.ips_file())?),
        recorder: recorder.clone(),
        installations: installation::Installations { mariadb: Arc::new(mariadb), mysql },
        host_ip: Ipv4Addr::LOCALHOST,
    });

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(node::heartbeat(client.clone(), facts));
    tasks.spawn(scheduler::run(client.clone(), recorder, config.node_name.clone()));
    tasks.spawn(provisioner::run(client.clone(), layout.clone()));
    tasks.spawn(pods::Manager::new(shared).run());
    // Outside the set: it may end early (port taken) without the pods caring.
    if config.kubelet_port != 0 {
        tokio::spawn(kubelet_api::serve(layout.clone(), config.kubelet_port));
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(AgentError::io("installing SIGTERM handler"))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; leaving servers running for the next agent run"),
        _ = term.recv() => tracing::info!("terminated; leaving servers running for the next agent run"),
        done = tasks.join_next() => {
            return Err(AgentError::Invalid(format!("a node agent loop ended unexpectedly: {done:?}")));
        }
    }
    Ok(())
}
