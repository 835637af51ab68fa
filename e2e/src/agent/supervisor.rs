//! One pod's life on this node, from binding to deletion: the part of a
//! kubelet that syncs a pod. A supervisor task owns at most one server
//! (mariadbd or mysqld) per pod, starts it (running the image's first-start
//! contract when the datadir is empty), probes it, restarts it per restartPolicy with a capped backoff,
//! stops it gracefully on deletion, and reports all of it in the pod status.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ContainerStateTerminated, ContainerStatus, Pod, PodStatus};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::entrypoint::{self, InitJob};
use super::env::{self, PodFacts};
use super::events::{Kind, Recorder};
use super::image::{self, ImageSupport};
use super::installation::{Family, Installation, Installations};
use super::ipam::Ipam;
use super::layout::{PodPaths, StateLayout};
use super::mycnf::{self, ServerLayout};
use super::options::ServerOptions;
use super::probe::{self, Outcome, Prober, Target, Tracker};
use super::process::{self, ExitInfo, ProcessRecord, ServerProcess};
use super::status::{self, ContainerRuntime, PodRuntime, State, Termination};
use super::volumes::{self, VolumeError};

pub const MYSQL_PORT: u16 = 3306;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A run this long resets the backoff: it was not a crash loop.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);
const RESYNC: Duration = Duration::from_secs(10);
const COMPONENT: &str = "kubelet";
const MAX_EVENTS_PER_REASON: u32 = 20;
/// A hung API call must not stall a pod's supervision for long.
const API_TIMEOUT: Duration = Duration::from_secs(15);

/// What all supervisors share.
pub struct Shared {
    pub client: Client,
    pub node_name: String,
    pub layout: StateLayout,
    pub ipam: std::sync::Mutex<Ipam>,
    pub recorder: Recorder,
    pub installations: Installations,
    pub host_ip: Ipv4Addr,
}

/// The latest state of the pod object, as seen by the pod watch.
#[derive(Debug, Clone)]
pub enum Update {
    Present(Arc<Pod>),
    Gone,
}

enum End {
    /// Stopped and the pod object deleted.
    Deleted,
    /// The pod object disappeared (force deletion).
    Vanished,
    /// A new pod with the same name (new uid) took the old one's place.
    Replaced(Arc<Pod>),
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// Supervise the pod (and any pod later created under the same name) until
/// it is gone.
pub async fn supervise(shared: Arc<Shared>, mut updates: watch::Receiver<Update>) {
    let mut pod = match &*updates.borrow_and_update() {
        Update::Present(p) => p.clone(),
        Update::Gone => return,
    };
    loop {
        match Incarnation::new(shared.clone(), pod).run(&mut updates).await {
            End::Replaced(next) => pod = next,
            End::Deleted | End::Vanished => return,
        }
    }
}

/// Why a start attempt did not produce a running server.
#[derive(Debug)]
enum StartFailure {
    /// Not startable yet (claim unbound, ConfigMap missing): wait and retry,
    /// the container never ran.
    Waiting { reason: &'static str, message: String },
    /// The container "ran" and failed (first-start script error): counts as
    /// a crash with exit code 1, as the image's entrypoint would exit.
    Crashed { message: String },
}

impl From<VolumeError> for StartFailure {
    fn from(e: VolumeError) -> Self {
        match e {
            VolumeError::Field(e) => {
                StartFailure::Waiting { reason: "CreateContainerConfigError", message: e.to_string() }
            }
            other => StartFailure::Waiting { reason: "ContainerCreating", message: other.to_string() },
        }
    }
}

/// A prepared start: the server command line and what probes need.
struct Launch {
    args: Vec<String>,
    env: Vec<(String, String)>,
    target: Target,
}

/// Work that needs the API and the disk before a server can start. Runs as
/// its own task so a deletion can interrupt it.
#[allow(clippy::too_many_arguments)]
async fn prepare(
    shared: Arc<Shared>,
    installation: Arc<Installation>,
    pod: Arc<Pod>,
    container: Container,
    paths: PodPaths,
    ip: Ipv4Addr,
    hostname: String,
    initialize: bool,
) -> Result<Launch, StartFailure> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let waiting = |reason: &'static str, message: String| StartFailure::Waiting { reason, message };
    let refs = env::references(&pod);
    let objects = volumes::fetch_objects(&shared.client, &namespace, &refs)
        .await
        .map_err(|e| waiting("ContainerCreating", format!("reading configmaps and secrets: {e}")))?;
    let claims = volumes::resolve_claims(&shared.client, &pod).await?;
    let facts = PodFacts::from_pod(&pod, Some(ip), shared.host_ip);
    let mut env =
        env::resolve(&container, &facts, &objects).map_err(|e| waiting("CreateContainerConfigError", e.to_string()))?;
    // As in any pod, unless the pod sets it itself.
    if !env.iter().any(|(k, _)| k == "HOSTNAME") {
        env.insert(0, ("HOSTNAME".to_string(), hostname));
    }
    let host_volumes = volumes::materialize(&pod, &paths, &objects, &facts, &claims)?;
    let mounts = volumes::mount_table(&container, &host_volumes)?;

    let command = env::expand_all(container.command.as_deref().unwrap_or_default(), &env);
    let args = env::expand_all(container.args.as_deref().unwrap_or_default(), &env);
    let server = mycnf::server_command(&command, &args, &mounts, &installation.options)
        .map_err(|m| waiting("CreateContainerConfigError", m))?;
    for note in &server.notes {
        tracing::info!(pod = %format!("{namespace}/{}", pod.metadata.name.as_deref().unwrap_or_default()), "{note}");
    }
    let datadir = match &server.datadir {
        Some(d) => PathBuf::from(mounts.translate_path(d)),
        None => mounts.mounted_at("/var/lib/mysql").map(|p| p.to_path_buf()).unwrap_or_else(|| paths.default_datadir()),
    };
    let io = |what: &str, e: std::io::Error| waiting("ContainerCreating", format!("{what}: {e}"));
    for dir in [&datadir, &paths.tmp_dir(), &paths.cnf_dir()] {
        std::fs::create_dir_all(dir).map_err(|e| io(&format!("creating {}", dir.display()), e))?;
    }
    if let Some(parent) = paths.socket().parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("creating socket directory", e))?;
    }

    // The pod's option files, rewritten for the host.
    let _ = std::fs::remove_dir_all(paths.cnf_dir());
    std::fs::create_dir_all(paths.cnf_dir()).map_err(|e| io("creating cnf.d", e))?;
    let mut includes = Vec::new();
    for (i, source) in mycnf::option_file_sources(&mounts, &server.option_files).iter().enumerate() {
        let Ok(text) = std::fs::read_to_string(source) else {
            tracing::warn!(file = %source.display(), "option file not found; skipped");
            continue;
        };
        let (rewritten, notes) = mycnf::rewrite_option_file(&text, &mounts, &installation.options);
        for note in notes {
            tracing::info!(file = %source.display(), "{note}");
        }
        let name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let copy = paths.cnf_dir().join(format!("{i:02}-{name}"));
        std::fs::write(&copy, rewritten).map_err(|e| io("writing option file", e))?;
        includes.push(copy);
    }
    let layout = ServerLayout {
        pod: format!("{namespace}/{}", pod.metadata.name.as_deref().unwrap_or_default()),
        datadir: datadir.clone(),
        socket: paths.socket(),
        pid_file: paths.server_pid_file(),
        tmpdir: paths.tmp_dir(),
        bind: ip,
        port: MYSQL_PORT,
        family: installation.family,
    };
    std::fs::write(paths.my_cnf(), mycnf::render_my_cnf(&layout, &includes)).map_err(|e| io("writing my.cnf", e))?;

    if initialize && entrypoint::needs_init(&datadir) {
        let job = InitJob {
            installation: installation.clone(),
            my_cnf: paths.my_cnf(),
            datadir: datadir.clone(),
            socket: paths.socket(),
            run_dir: paths.dir.clone(),
            log: paths.log(),
            server_args: server.args.clone(),
            env: env.clone(),
            initdb_dir: mounts.mounted_at("/docker-entrypoint-initdb.d").map(|p| p.to_path_buf()),
            mounts: mounts.clone(),
        };
        job.run().await.map_err(|e| StartFailure::Crashed { message: e.to_string() })?;
    }

    let mut args = vec![format!("--defaults-file={}", paths.my_cnf().display())];
    args.extend(server.args);
    // Also on the command line, so `ps` (and localenv's wipe) can tell
    // which data a server owns; my.cnf says the same.
    args.push(format!("--datadir={}", datadir.display()));
    Ok(Launch {
        args,
        env: env.clone(),
        target: Target {
            pod_ip: ip,
            socket: paths.socket(),
            run_dir: paths.dir.clone(),
            env,
            mounts,
            root: installation.root().map(|r| r.to_path_buf()),
        },
    })
}

/// Why a server image cannot run when this node lacks its installation.
fn no_installation(image: &str, family: Family) -> String {
    match family {
        Family::MySql => format!(
            "image \"{image}\" needs a MySQL server, and this node has none: the node agent runs MySQL images \
             from a Debian sid root (start it with --mysql-root; e2e/localenv.sh makes one with hack/sid-root.sh)"
        ),
        Family::MariaDb => format!("image \"{image}\" needs a MariaDB server, and this node has none"),
    }
}

/// The server's last error from its log, for a termination message.
fn last_log_error(paths: &PodPaths) -> Option<String> {
    let text = std::fs::read_to_string(paths.log()).ok()?;
    text.lines().rev().take(50).find(|l| l.contains("[ERROR]")).map(|l| l.trim().chars().take(300).collect())
}

fn termination_from_api(t: &ContainerStateTerminated) -> Termination {
    Termination {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: t.reason.clone().unwrap_or_else(|| "Error".into()),
        message: t.message.clone(),
        started_at: t.started_at.as_ref().map(|s| s.0),
        finished_at: t.finished_at.as_ref().map(|s| s.0).unwrap_or_else(status::now),
        container_id: t.container_id.clone(),
    }
}

struct Incarnation {
    shared: Arc<Shared>,
    pod: Arc<Pod>,
    uid: String,
    name: String,
    paths: PodPaths,
    runtime: PodRuntime,
    /// Index (in spec.containers) of the container run as the server.
    server: Option<usize>,
    /// What runs it: the host's MariaDB or the sid root's MySQL.
    installation: Option<Arc<Installation>>,
    ip: Option<Ipv4Addr>,
    process: Option<ServerProcess>,
    run_started: Option<Instant>,
    /// Bumped per server run; probe results of earlier runs are dropped.
    generation: u64,
    starting: Option<tokio::task::JoinHandle<Result<Launch, StartFailure>>>,
    next_start: Option<Instant>,
    backoff: Duration,
    target: Option<Arc<Target>>,
    probers: Vec<Prober>,
    startup: Option<Tracker>,
    readiness: Option<Tracker>,
    liveness: Option<Tracker>,
    probe_tx: mpsc::Sender<Outcome>,
    probe_rx: mpsc::Receiver<Outcome>,
    last_sent: Option<PodStatus>,
    last_sent_at: Option<Instant>,
    last_waiting_event: Option<String>,
    events_sent: BTreeMap<String, u32>,
}

impl Incarnation {
    fn new(shared: Arc<Shared>, pod: Arc<Pod>) -> Self {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let paths = shared.layout.pod(&namespace, &name);
        let start_time =
            pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0).unwrap_or_else(status::now);
        let (probe_tx, probe_rx) = mpsc::channel(16);
        Self {
            uid: uid_of(&pod),
            name: format!("{namespace}/{name}"),
            runtime: PodRuntime {
                pod_ip: None,
                host_ip: shared.host_ip,
                start_time,
                init_containers: Vec::new(),
                containers: Vec::new(),
            },
            shared,
            pod,
            paths,
            server: None,
            installation: None,
            ip: None,
            process: None,
            run_started: None,
            generation: 0,
            starting: None,
            next_start: None,
            backoff: FIRST_BACKOFF,
            target: None,
            probers: Vec::new(),
            startup: None,
            readiness: None,
            liveness: None,
            probe_tx,
            probe_rx,
            last_sent: None,
            last_sent_at: None,
            last_waiting_event: None,
            events_sent: BTreeMap::new(),
        }
    }

    fn spec_containers(&self) -> Vec<Container> {
        self.pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default()
    }

    fn server_container(&self) -> Option<Container> {
        self.server.and_then(|i| self.spec_containers().get(i).cloned())
    }

    /// The pod's host name as Kubernetes sets it: spec.hostname, else the
    /// pod name, at most 63 characters.
    fn hostname(&self) -> String {
        let spec = self.pod.spec.as_ref();
        let name = spec.and_then(|s| s.hostname.clone()).or_else(|| self.pod.metadata.name.clone()).unwrap_or_default();
        name.chars().take(63).collect::<String>().trim_end_matches(['-', '.']).to_string()
    }

    fn restart_policy(&self) -> String {
        self.pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into())
    }

    fn grace(&self) -> Duration {
        let seconds = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or(self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30);
        Duration::from_secs(seconds.clamp(1, 300) as u64)
    }

    fn server_runtime(&mut self) -> Option<&mut ContainerRuntime> {
        let i = self.server?;
        self.runtime.containers.get_mut(i)
    }

    /// Decide what can run and pick up where an earlier agent run left off.
    async fn setup(&mut self) {
        let previous = previous_statuses(&self.pod);
        for message in self.classify_containers(&previous) {
            tracing::warn!(pod = %self.name, "{message}");
            self.event(Kind::Warning, "UnsupportedImage", &message).await;
        }
        let record = ProcessRecord::read(&self.paths.process_record()).filter(|r| r.is_running());
        let adoptable = record.filter(|r| r.pod_uid == self.uid && self.server.is_some());
        self.stop_leftovers(adoptable.as_ref().map(|r| r.pid)).await;
        // A new incarnation starts from a clean run dir (emptyDir semantics);
        // an adopted server keeps its own.
        let dir_uid = std::fs::read_to_string(self.paths.uid_file()).ok();
        if adoptable.is_none() && dir_uid.as_deref().map(str::trim) != Some(self.uid.as_str()) {
            let _ = std::fs::remove_dir_all(&self.paths.dir);
        }
        if self.server.is_none() || !self.allocate_address() {
            return;
        }
        let _ = std::fs::create_dir_all(&self.paths.dir);
        let _ = std::fs::write(self.paths.uid_file(), &self.uid);
        if let Some(record) = adoptable {
            self.adopt(record, &previous);
        } else if let Some(ended) = self.ended_for_good(&previous) {
            // A pod that already Succeeded or Failed is never run again.
            if let Some(rt) = self.server_runtime() {
                rt.state = State::Terminated(ended);
            }
        } else {
            self.note_unwatched_exit(&previous);
            self.next_start = Some(Instant::now());
        }
    }

    /// Fill the runtime with one entry per container and pick the one that
    /// runs as the server. Returns why the others cannot run.
    fn classify_containers(&mut self, previous: &BTreeMap<String, ContainerStatus>) -> Vec<String> {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let mut refused = Vec::new();
        // Init containers never run here, and app containers wait for them.
        let has_init = spec.init_containers.as_ref().is_some_and(|i| !i.is_empty());
        for c in spec.init_containers.iter().flatten() {
            let image = c.image.as_deref().unwrap_or_default();
            let message = format!(
                "init container \"{}\" (image \"{image}\") cannot run on this node: the Switchyard node agent \
                 runs only MySQL server containers, as real mariadbd and mysqld processes",
                c.name
            );
            refused.push(message.clone());
            self.runtime.init_containers.push(ContainerRuntime::new(
                &c.name,
                image,
                State::waiting("UnsupportedImage", Some(message)),
            ));
        }
        for (i, c) in spec.containers.iter().enumerate() {
            let image = c.image.clone().unwrap_or_default();
            let command = c.command.clone().unwrap_or_default();
            let args = c.args.clone().unwrap_or_default();
            let mut installation = None;
            let verdict = match image::classify(&image) {
                ImageSupport::Server(family) => {
                    installation = self.shared.installations.of(family);
                    match mycnf::server_command(&command, &args, &Default::default(), &ServerOptions::default()) {
                        Ok(_) if installation.is_none() => Some(no_installation(&image, family)),
                        Ok(_) if self.server.is_none() => None,
                        Ok(_) => Some(
                            "only one MySQL server container per pod can run on this node (one address, one port 3306)"
                                .to_string(),
                        ),
                        Err(m) => Some(m),
                    }
                }
                ImageSupport::Unsupported(m) => Some(m),
            };
            let mut rt = ContainerRuntime::new(&c.name, &image, State::waiting("ContainerCreating", None));
            match verdict {
                None if has_init => rt.state = State::waiting("PodInitializing", None),
                None => {
                    self.server = Some(i);
                    rt.image_id = installation.as_ref().map(|i| i.image_id()).unwrap_or_default();
                    self.installation = installation;
                    if let Some(prev) = previous.get(&c.name) {
                        // An earlier agent run reported on this container.
                        rt.restart_count = prev.restart_count;
                        rt.last_termination =
                            prev.last_state.as_ref().and_then(|s| s.terminated.as_ref()).map(termination_from_api);
                    }
                }
                Some(message) => {
                    refused.push(message.clone());
                    rt.state = State::waiting("UnsupportedImage", Some(message));
                }
            }
            self.runtime.containers.push(rt);
        }
        refused
    }

    /// Any server of this pod name other than the one being adopted is a
    /// leftover (an earlier pod of the same name, a lost record, an
    /// interrupted first start): it must not share the datadir.
    async fn stop_leftovers(&self, keep: Option<u32>) {
        let (ns, name) = self.name.split_once('/').unwrap_or_default();
        for leftover in process::find_pod_servers(&self.shared.layout.pods_root()) {
            if leftover.namespace == ns && leftover.pod == name && Some(leftover.pid) != keep {
                tracing::info!(pod = %self.name, pid = leftover.pid, "stopping leftover mariadbd");
                process::terminate_pid(leftover.pid, Duration::from_secs(30)).await;
            }
        }
    }

    /// False (and the server container left waiting) when no address is free.
    fn allocate_address(&mut self) -> bool {
        let allocated = {
            let (ns, name) = self.name.split_once('/').unwrap_or_default();
            self.shared.ipam.lock().expect("ipam lock").allocate(ns, name)
        };
        match allocated {
            Ok(ip) => {
                self.ip = Some(ip);
                self.runtime.pod_ip = Some(ip);
                true
            }
            Err(e) => {
                if let Some(rt) = self.server_runtime() {
                    rt.state = State::waiting("ContainerCreating", Some(format!("no pod address: {e}")));
                }
                self.server = None;
                false
            }
        }
    }

    /// Take over a server an earlier agent run started.
    fn adopt(&mut self, record: ProcessRecord, previous: &BTreeMap<String, ContainerStatus>) {
        tracing::info!(pod = %self.name, pid = record.pid, "adopting running mariadbd");
        let started_at = Timestamp::from_second(record.started_at).unwrap_or_else(|_| status::now());
        let container_id = format!("mariadbd://{}", record.pid);
        // Keep the readiness the API shows until a probe says otherwise: an
        // agent restart must not make clients see a flapping database.
        let (was_ready, was_started) = self
            .server_container()
            .and_then(|c| previous.get(&c.name))
            .map(|c| (c.ready, c.started.unwrap_or(false)))
            .unwrap_or_default();
        if let Some(rt) = self.server_runtime() {
            rt.state = State::Running { started_at };
            rt.container_id = Some(container_id);
            rt.ready = was_ready;
            rt.started = was_started;
        }
        self.process = Some(ServerProcess::Adopted { record });
        self.run_started = Some(Instant::now());
        self.generation += 1;
        // Probes need the environment and mounts again; no first start.
        self.begin_prepare(false);
    }

    /// The API says the server was running, but no agent saw it exit: count
    /// the restart the way a kubelet reports a container it lost track of.
    fn note_unwatched_exit(&mut self, previous: &BTreeMap<String, ContainerStatus>) {
        let was_running = self
            .server_container()
            .and_then(|c| previous.get(&c.name))
            .and_then(|c| c.state.as_ref())
            .is_some_and(|s| s.running.is_some());
        if !was_running {
            return;
        }
        if let Some(rt) = self.server_runtime() {
            rt.restart_count += 1;
            rt.last_termination = Some(Termination {
                exit_code: 137,
                signal: None,
                reason: "ContainerStatusUnknown".into(),
                message: Some("the server exited while the node agent was not running".into()),
                started_at: None,
                finished_at: status::now(),
                container_id: None,
            });
        }
    }

    /// The termination of a server container of a pod that has finished
    /// (phase Succeeded or Failed), as an earlier agent run reported it.
    fn ended_for_good(&self, previous: &BTreeMap<String, ContainerStatus>) -> Option<Termination> {
        let phase = self.pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if !matches!(phase, Some("Succeeded" | "Failed")) {
            return None;
        }
        let name = self.server_container()?.name;
        let terminated = previous.get(&name)?.state.as_ref()?.terminated.as_ref()?;
        Some(termination_from_api(terminated))
    }

    fn begin_prepare(&mut self, initialize: bool) {
        let (Some(container), Some(ip), Some(installation)) =
            (self.server_container(), self.ip, self.installation.clone())
        else {
            return;
        };
        self.starting = Some(tokio::spawn(prepare(
            self.shared.clone(),
            installation,
            self.pod.clone(),
            container,
            self.paths.clone(),
            ip,
            self.hostname(),
            initialize,
        )));
    }

    /// Post an event; repetitive ones (probe failures, back-offs of a crash
    /// loop) are capped per pod so a broken pod cannot flood the API.
    async fn event(&mut self, kind: Kind, reason: &str, message: &str) {
        let sent = self.events_sent.entry(reason.to_string()).or_default();
        *sent += 1;
        if *sent > MAX_EVENTS_PER_REASON {
            return;
        }
        self.shared.recorder.pod(&self.pod, COMPONENT, kind, reason, message).await;
    }

    async fn run(mut self, updates: &mut watch::Receiver<Update>) -> End {
        self.setup().await;
        let mut resync = tokio::time::interval(RESYNC);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.pod.metadata.deletion_timestamp.is_some() {
                self.terminate(self.grace()).await;
                // Until the object is gone: a pod left Terminating would
                // block its StatefulSet forever.
                let mut delay = Duration::from_secs(1);
                while !self.delete_pod().await {
                    let gone = matches!(&*updates.borrow(), Update::Gone)
                        || matches!(&*updates.borrow(), Update::Present(p) if uid_of(p) != self.uid);
                    if gone {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
                self.clean_up();
                return End::Deleted;
            }
            self.publish().await;
            let wake_at = self.next_start.filter(|_| self.starting.is_none() && self.process.is_none());
            tokio::select! {
                changed = updates.changed() => {
                    let update = if changed.is_ok() { updates.borrow_and_update().clone() } else { Update::Gone };
                    match update {
                        Update::Present(pod) if uid_of(&pod) == self.uid => self.pod = pod,
                        Update::Present(pod) => {
                            tracing::info!(pod = %self.name, "pod replaced by a new one with the same name");
                            self.terminate(self.grace()).await;
                            self.clean_up();
                            return End::Replaced(pod);
                        }
                        Update::Gone => {
                            tracing::info!(pod = %self.name, "pod object is gone; stopping its server");
                            self.terminate(Duration::from_secs(2)).await;
                            self.clean_up();
                            return End::Vanished;
                        }
                    }
                }
                prepared = wait_task(&mut self.starting), if self.starting.is_some() => {
                    self.starting = None;
                    match prepared {
                        Ok(result) => self.on_prepared(result).await,
                        Err(e) => self.on_prepared(Err(StartFailure::Crashed { message: format!("start task failed: {e}") })).await,
                    }
                }
                exit = wait_process(&mut self.process), if self.process.is_some() => {
                    self.on_exit(exit, None).await;
                }
                Some(outcome) = self.probe_rx.recv() => self.on_probe(outcome).await,
                _ = tokio::time::sleep_until(wake_at.unwrap_or_else(Instant::now)), if wake_at.is_some() => {
                    self.next_start = None;
                    self.begin_prepare(true);
                }
                _ = resync.tick() => {}
            }
        }
    }

    async fn on_prepared(&mut self, result: Result<Launch, StartFailure>) {
        match result {
            Ok(launch) => {
                self.last_waiting_event = None;
                let target = Arc::new(launch.target);
                self.target = Some(target);
                if self.process.is_some() {
                    // Adopted: just resume probing.
                    self.start_probes();
                    return;
                }
                let Some(installation) = self.installation.clone() else { return };
                let (program, mut args) = installation.server_program();
                args.extend(launch.args.iter().cloned());
                match process::spawn(
                    &program,
                    &args,
                    &launch.env,
                    &self.paths.log(),
                    &self.paths.process_record(),
                    &self.uid,
                    Some(&self.hostname()),
                ) {
                    Ok(p) => {
                        let started_at = status::now();
                        let container_id = p.container_id();
                        tracing::info!(pod = %self.name, pid = p.pid(), server = installation.family.daemon_name(), "started server");
                        self.process = Some(p);
                        self.run_started = Some(Instant::now());
                        self.generation += 1;
                        if let Some(rt) = self.server_runtime() {
                            rt.state = State::Running { started_at };
                            rt.container_id = Some(container_id.clone());
                            rt.ready = false;
                            rt.started = false;
                        }
                        let name = self.server_container().map(|c| c.name).unwrap_or_default();
                        self.event(Kind::Normal, "Started", &format!("Started container {name} ({container_id})"))
                            .await;
                        self.start_probes();
                    }
                    Err(e) => {
                        self.on_start_crash(format!("starting {}: {e}", installation.family.daemon_name())).await;
                    }
                }
            }
            Err(StartFailure::Waiting { reason, message }) => {
                tracing::info!(pod = %self.name, reason, "{message}");
                if self.last_waiting_event.as_deref() != Some(message.as_str()) {
                    let event_reason = if reason == "ContainerCreating" { "FailedMount" } else { "Failed" };
                    self.event(Kind::Warning, event_reason, &message).await;
                    self.last_waiting_event = Some(message.clone());
                }
                if self.process.is_none() {
                    if let Some(rt) = self.server_runtime() {
                        rt.state = State::waiting(reason, Some(message));
                    }
                    self.next_start = Some(Instant::now() + Duration::from_secs(2));
                } else {
                    // Adopted server whose probe setup failed: try again.
                    self.begin_prepare_later();
                }
            }
            Err(StartFailure::Crashed { message }) => self.on_start_crash(message).await,
        }
    }

    fn begin_prepare_later(&mut self) {
        let (Some(container), Some(ip), Some(installation)) =
            (self.server_container(), self.ip, self.installation.clone())
        else {
            return;
        };
        let (shared, pod, paths, hostname) =
            (self.shared.clone(), self.pod.clone(), self.paths.clone(), self.hostname());
        self.starting = Some(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            prepare(shared, installation, pod, container, paths, ip, hostname, false).await
        }));
    }

    /// The first-start contract failed: like the image's entrypoint exiting 1.
    async fn on_start_crash(&mut self, message: String) {
        tracing::warn!(pod = %self.name, "container failed to start: {message}");
        self.event(Kind::Warning, "Failed", &message).await;
        let now = status::now();
        let termination = Termination {
            exit_code: 1,
            signal: None,
            reason: "Error".into(),
            message: Some(message),
            started_at: Some(now),
            finished_at: now,
            container_id: None,
        };
        self.after_termination(termination).await;
    }

    fn probe_spec(&self, kind: probe::Kind) -> Option<probe::ProbeSpec> {
        let container = self.server_container()?;
        let (p, what) = match kind {
            probe::Kind::Startup => (container.startup_probe.as_ref(), "startup"),
            probe::Kind::Readiness => (container.readiness_probe.as_ref(), "readiness"),
            probe::Kind::Liveness => (container.liveness_probe.as_ref(), "liveness"),
        };
        match probe::spec_of(p?, &container) {
            Ok(spec) => Some(spec),
            Err(e) => {
                tracing::warn!(pod = %self.name, "{what} probe ignored: {e}");
                None
            }
        }
    }

    fn start_prober(&mut self, kind: probe::Kind, spec: probe::ProbeSpec) {
        let Some(target) = self.target.clone() else { return };
        self.probers.push(probe::start(kind, self.generation, spec, target, self.probe_tx.clone()));
    }

    /// A startup probe holds back the others until it succeeds.
    fn start_probes(&mut self) {
        self.probers.clear();
        let already_started = self.server_runtime().is_some_and(|rt| rt.started);
        if let Some(spec) = self.probe_spec(probe::Kind::Startup).filter(|_| !already_started) {
            self.startup = Some(Tracker::new(&spec, false));
            self.start_prober(probe::Kind::Startup, spec);
        } else {
            self.start_probes_after_startup();
        }
    }

    fn start_probes_after_startup(&mut self) {
        self.startup = None;
        self.probers.clear();
        if let Some(rt) = self.server_runtime() {
            rt.started = true;
        }
        let readiness =
            self.probe_spec(probe::Kind::Readiness).unwrap_or_else(|| probe::accepts_connections(MYSQL_PORT));
        let ready = self.server_runtime().is_some_and(|rt| rt.ready);
        self.readiness = Some(Tracker::new(&readiness, ready));
        self.start_prober(probe::Kind::Readiness, readiness);
        if let Some(liveness) = self.probe_spec(probe::Kind::Liveness) {
            self.liveness = Some(Tracker::new(&liveness, true));
            self.start_prober(probe::Kind::Liveness, liveness);
        }
    }

    async fn on_probe(&mut self, outcome: Outcome) {
        if outcome.generation != self.generation || self.process.is_none() {
            return;
        }
        let ok = outcome.result.is_ok();
        if let Err(message) = &outcome.result {
            tracing::debug!(pod = %self.name, kind = ?outcome.kind, "probe failed: {message}");
            let what = match outcome.kind {
                probe::Kind::Startup => "Startup",
                probe::Kind::Readiness => "Readiness",
                probe::Kind::Liveness => "Liveness",
            };
            self.event(Kind::Warning, "Unhealthy", &format!("{what} probe failed: {message}")).await;
        }
        match outcome.kind {
            probe::Kind::Startup => {
                let Some(t) = self.startup.as_mut() else { return };
                t.record(ok);
                if t.healthy {
                    self.start_probes_after_startup();
                } else if t.failed() {
                    self.kill_for_restart("failed startup probe").await;
                }
            }
            probe::Kind::Readiness => {
                let Some(t) = self.readiness.as_mut() else { return };
                if t.record(ok) {
                    let ready = t.healthy;
                    tracing::info!(pod = %self.name, ready, "readiness changed");
                    if let Some(rt) = self.server_runtime() {
                        rt.ready = ready;
                    }
                }
            }
            probe::Kind::Liveness => {
                let Some(t) = self.liveness.as_mut() else { return };
                if t.record(ok) && !t.healthy {
                    self.kill_for_restart("failed liveness probe").await;
                }
            }
        }
    }

    async fn kill_for_restart(&mut self, why: &str) {
        let Some(mut p) = self.process.take() else { return };
        let name = self.server_container().map(|c| c.name).unwrap_or_default();
        self.event(Kind::Normal, "Killing", &format!("Container {name} {why}, will be restarted")).await;
        tracing::info!(pod = %self.name, pid = p.pid(), "{why}; restarting");
        self.probers.clear();
        let exit = p.stop(self.grace()).await;
        self.process = Some(p);
        self.on_exit(exit, Some(why)).await;
    }

    async fn on_exit(&mut self, exit: ExitInfo, why: Option<&str>) {
        let Some(p) = self.process.take() else { return };
        self.probers.clear();
        self.readiness = None;
        self.liveness = None;
        self.startup = None;
        let ran_for = self.run_started.take().map(|s| s.elapsed()).unwrap_or_default();
        if ran_for >= BACKOFF_RESET_AFTER {
            self.backoff = FIRST_BACKOFF;
        }
        let started_at = match self.server_runtime().map(|rt| rt.state.clone()) {
            Some(State::Running { started_at }) => Some(started_at),
            _ => None,
        };
        let exit_code = exit.exit_code();
        let message = if let Some(why) = why {
            Some(format!("container {why}"))
        } else if exit.is_unknown() {
            Some("exit status unknown: the server was started by an earlier node agent run".into())
        } else if exit_code != 0 {
            last_log_error(&self.paths)
        } else {
            None
        };
        tracing::info!(pod = %self.name, pid = p.pid(), exit_code, signal = ?exit.signal, "mariadbd exited");
        let termination = Termination {
            exit_code,
            signal: exit.signal,
            reason: if exit.is_unknown() { "Unknown".into() } else { Termination::reason_for(exit_code).into() },
            message,
            started_at,
            finished_at: status::now(),
            container_id: Some(p.container_id()),
        };
        let _ = std::fs::remove_file(self.paths.process_record());
        self.after_termination(termination).await;
    }

    /// Restart per restartPolicy, with backoff; or stay terminated.
    async fn after_termination(&mut self, termination: Termination) {
        let policy = self.restart_policy();
        let restart = match policy.as_str() {
            "Never" => false,
            "OnFailure" => termination.exit_code != 0,
            _ => true,
        };
        let delay = self.backoff;
        let container = self.server_container().map(|c| c.name).unwrap_or_default();
        let pod_name = self.name.clone();
        let Some(rt) = self.server_runtime() else { return };
        rt.ready = false;
        rt.started = false;
        if restart {
            rt.restart_count += 1;
            rt.last_termination = Some(termination);
            rt.state = State::waiting(
                "CrashLoopBackOff",
                Some(format!("back-off {}s restarting failed container={container} pod={pod_name}", delay.as_secs())),
            );
            self.next_start = Some(Instant::now() + delay);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            self.event(Kind::Warning, "BackOff", &format!("Back-off {}s restarting failed container", delay.as_secs()))
                .await;
        } else {
            rt.state = State::Terminated(termination);
        }
    }

    /// Stop everything this incarnation runs.
    async fn terminate(&mut self, grace: Duration) {
        if let Some(task) = self.starting.take() {
            // Aborting drops the first-start future, whose children are
            // kill_on_drop.
            task.abort();
            let _ = task.await;
        }
        self.probers.clear();
        self.next_start = None;
        if let Some(mut p) = self.process.take() {
            let name = self.server_container().map(|c| c.name).unwrap_or_default();
            self.event(Kind::Normal, "Killing", &format!("Stopping container {name}")).await;
            tracing::info!(pod = %self.name, pid = p.pid(), grace_s = grace.as_secs(), "stopping mariadbd");
            let exit = p.stop(grace).await;
            tracing::info!(pod = %self.name, exit_code = exit.exit_code(), "mariadbd stopped");
        }
        let _ = std::fs::remove_file(self.paths.process_record());
    }

    /// The kubelet's last word on a deleted pod: remove it for good. True
    /// once the object is gone.
    async fn delete_pod(&self) -> bool {
        let (ns, name) = self.name.split_once('/').unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.shared.client.clone(), ns);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(self.uid.clone()), resource_version: None }),
            ..Default::default()
        };
        match tokio::time::timeout(API_TIMEOUT, pods.delete(name, &params)).await {
            Ok(Ok(_)) => {
                tracing::info!(pod = %self.name, "pod deleted");
                true
            }
            // Gone already, or replaced by a new pod of the same name.
            Ok(Err(kube::Error::Api(e))) if matches!(e.code, 404 | 409) => true,
            Ok(Err(e)) => {
                tracing::warn!(pod = %self.name, error = %e, "deleting pod failed; will retry");
                false
            }
            Err(_) => {
                tracing::warn!(pod = %self.name, "deleting pod timed out; will retry");
                false
            }
        }
    }

    fn clean_up(&self) {
        if let Err(e) = std::fs::remove_dir_all(&self.paths.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(pod = %self.name, error = %e, "removing run dir failed");
        }
        let socket = self.paths.socket();
        if !socket.starts_with(&self.paths.dir) {
            let _ = std::fs::remove_file(socket);
        }
    }

    /// Patch the status when it differs from what the API has.
    async fn publish(&mut self) {
        let built = status::build(&self.pod, self.last_sent.as_ref(), &self.runtime, status::now());
        let wanted = status::summary(Some(&built));
        let seen = status::summary(self.pod.status.as_ref());
        let sent = status::summary(self.last_sent.as_ref());
        let recently = self.last_sent_at.is_some_and(|t| t.elapsed() < RESYNC);
        // Not again while the watch has not caught up with the last patch;
        // but do repeat after a while in case the patch was lost.
        if wanted == seen || (wanted == sent && recently) {
            return;
        }
        let (ns, name) = self.name.split_once('/').unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.shared.client.clone(), ns);
        let patch = serde_json::json!({ "status": built });
        let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
        let result = match tokio::time::timeout(API_TIMEOUT, pods.patch_status(name, &params, &patch)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("timed out".to_string()),
        };
        match result {
            Ok(updated) => {
                self.last_sent = Some(built);
                self.last_sent_at = Some(Instant::now());
                if uid_of(&updated) == self.uid {
                    self.pod = Arc::new(updated);
                }
            }
            Err(e) => {
                tracing::warn!(pod = %self.name, error = %e, "patching pod status failed");
                self.last_sent_at = Some(Instant::now());
                self.last_sent = Some(built);
            }
        }
    }
}

/// The container statuses an earlier agent run reported, by name.
fn previous_statuses(pod: &Pod) -> BTreeMap<String, ContainerStatus> {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    statuses.into_iter().map(|c| (c.name.clone(), c)).collect()
}

async fn wait_task<T>(task: &mut Option<tokio::task::JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

async fn wait_process(process: &mut Option<ServerProcess>) -> ExitInfo {
    match process {
        Some(p) => p.wait().await,
        None => std::future::pending().await,
    }
}
