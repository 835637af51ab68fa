//! The pod manager: watches the pods bound to this node and keeps exactly one
//! supervisor per pod name. It also sweeps for what supervisors cannot see:
//! mariadbd processes and run dirs of pods that no longer exist (deleted while
//! the agent was down), and addresses of namespaces that are gone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::ListParams;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::process;
use super::supervisor::{self, Shared, Update};

const RESYNC: Duration = Duration::from_secs(3);
const SWEEP: Duration = Duration::from_secs(15);

struct Handle {
    updates: watch::Sender<Update>,
    task: tokio::task::JoinHandle<()>,
    resource_version: Option<String>,
    uid: String,
}

pub struct Manager {
    shared: Arc<Shared>,
    supervisors: HashMap<String, Handle>,
    /// Pods whose supervisor finished (pod deleted): not to be restarted
    /// while the watch still shows them.
    finished: HashMap<String, Instant>,
    last_sweep: Option<Instant>,
}

fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

impl Manager {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared, supervisors: HashMap::new(), finished: HashMap::new(), last_sweep: None }
    }

    pub async fn run(mut self) {
        let pods: Api<Pod> = Api::all(self.shared.client.clone());
        let (store, writer) = reflector::store();
        let config = watcher::Config::default().fields(&format!("spec.nodeName={}", self.shared.node_name));
        let stream = reflector::reflector(writer, watcher(pods, config)).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut ready = false;
        let mut tick = tokio::time::interval(RESYNC);
        loop {
            tokio::select! {
                event = stream.next() => match event {
                    Some(Ok(watcher::Event::InitDone)) => ready = true,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::debug!(error = %e, "pod watch interrupted"),
                    None => return,
                },
                _ = tick.tick() => {}
            }
            // Until the first full list, a missing pod may just not be listed yet.
            if ready {
                self.reconcile(&store).await;
            }
        }
    }

    async fn reconcile(&mut self, store: &Store<Pod>) {
        let pods = store.state();
        let mut present: HashSet<String> = HashSet::new();
        self.finished.retain(|_, at| at.elapsed() < Duration::from_secs(600));
        self.supervisors.retain(|k, h| {
            if !h.task.is_finished() {
                return true;
            }
            match (&mut h.task).now_or_never() {
                // A bug must not leave the pod unmanaged: supervise it anew.
                Some(Err(e)) if e.is_panic() => tracing::error!(pod = %k, "pod supervisor panicked; restarting it"),
                _ => {
                    self.finished.insert(h.uid.clone(), Instant::now());
                }
            }
            false
        });
        for pod in pods {
            let k = key(&pod);
            present.insert(k.clone());
            let uid = pod.uid().unwrap_or_default();
            match self.supervisors.get_mut(&k) {
                Some(h) => {
                    if h.resource_version != pod.resource_version() {
                        h.resource_version = pod.resource_version();
                        h.uid = uid;
                        h.updates.send_replace(Update::Present(pod.clone()));
                    }
                }
                None if self.finished.contains_key(&uid) => {}
                None => {
                    tracing::debug!(pod = %k, "supervising pod");
                    let (tx, rx) = watch::channel(Update::Present(pod.clone()));
                    let task = tokio::spawn(supervisor::supervise(self.shared.clone(), rx));
                    self.supervisors
                        .insert(k, Handle { updates: tx, task, resource_version: pod.resource_version(), uid });
                }
            }
        }
        for (k, h) in &self.supervisors {
            if !present.contains(k) {
                h.updates.send_if_modified(|u| {
                    let changed = !matches!(u, Update::Gone);
                    *u = Update::Gone;
                    changed
                });
            }
        }
        if self.last_sweep.is_none_or(|t| t.elapsed() >= SWEEP) {
            self.last_sweep = Some(Instant::now());
            self.sweep(&present).await;
        }
    }

    /// Kill servers and drop run dirs that belong to no pod.
    async fn sweep(&self, present: &HashSet<String>) {
        let layout = &self.shared.layout;
        for server in process::find_pod_servers(&layout.pods_root()) {
            let k = format!("{}/{}", server.namespace, server.pod);
            if !present.contains(&k) && !self.supervisors.contains_key(&k) {
                tracing::info!(pod = %k, pid = server.pid, "killing orphaned mariadbd of a pod that no longer exists");
                tokio::spawn(process::terminate_pid(server.pid, Duration::from_secs(10)));
            }
        }
        let running: HashSet<String> = process::find_pod_servers(&layout.pods_root())
            .into_iter()
            .map(|s| format!("{}/{}", s.namespace, s.pod))
            .collect();
        if let Ok(namespaces) = std::fs::read_dir(layout.pods_root()) {
            for ns in namespaces.flatten() {
                let Ok(pods) = std::fs::read_dir(ns.path()) else { continue };
                let ns_name = ns.file_name().to_string_lossy().into_owned();
                for pod in pods.flatten() {
                    let k = format!("{ns_name}/{}", pod.file_name().to_string_lossy());
                    if !present.contains(&k) && !self.supervisors.contains_key(&k) && !running.contains(&k) {
                        tracing::info!(pod = %k, "removing run dir of a pod that no longer exists");
                        let _ = std::fs::remove_dir_all(pod.path());
                    }
                }
                let _ = std::fs::remove_dir(ns.path());
            }
        }
        let namespaces: Api<Namespace> = Api::all(self.shared.client.clone());
        match namespaces.list_metadata(&ListParams::default()).await {
            Ok(list) => {
                let live: HashSet<String> = list.items.iter().map(|n| n.name_any()).collect();
                let mut in_use: HashSet<String> = present.clone();
                in_use.extend(self.supervisors.keys().cloned());
                let freed = self.shared.ipam.lock().expect("ipam lock").retain_namespaces(&live, &in_use);
                match freed {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(addresses = n, "freed addresses of deleted namespaces"),
                    Err(e) => tracing::warn!(error = %e, "saving address allocations failed"),
                }
            }
            Err(e) => tracing::debug!(error = %e, "listing namespaces failed"),
        }
    }
}
