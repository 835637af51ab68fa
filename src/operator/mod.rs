//! The operator process: leader election, one controller per kind, metrics
//! and health endpoints, graceful shutdown.

pub mod context;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod outcome;
pub mod spec_check;
pub mod workers;

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::k8s::events::EventPublisher;
use context::Context;
use metrics::Metrics;

/// Settings of `switchyard run`.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Namespace of the leader Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "switchyard-leader")]
    pub lease_name: String,
    /// OnlineDDLs that copy and sync at once; the rest wait in Queued.
    #[arg(long, env = "SWITCHYARD_MAX_SCHEMA_CHANGES", default_value_t = context::DEFAULT_MAX_SCHEMA_CHANGES)]
    pub max_schema_changes: usize,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());

    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let health = http::Health { metrics: metrics.clone(), ready: ready.clone() };
    let http = tokio::spawn(http::serve(args.metrics_addr, health, shutdown.clone().cancelled_owned()));

    let client = kube::Client::try_default().await?;
    let version = client.apiserver_version().await?;
    tracing::info!(apiserver = %version.git_version, "connected to the Kubernetes API");
    ready.store(true, Ordering::Relaxed);

    let identity = leader::identity();
    let mut leadership =
        leader::Leadership::start(client.clone(), &args.lease_namespace, &args.lease_name, &identity).await?;
    tracing::info!(%identity, lease = %args.lease_name, namespace = %args.lease_namespace, "waiting for leadership");
    tokio::select! {
        r = leadership.acquired() => r?,
        _ = shutdown.cancelled() => {
            leadership.release().await;
            return Ok(());
        }
    }
    tracing::info!(%identity, "became leader");
    metrics.leader.set(1);

    let events = EventPublisher::new(client.clone(), "switchyard", Some(identity.clone()));
    let mut ctx = Context::new(client, events, metrics.clone());
    ctx.max_schema_changes = args.max_schema_changes.max(1);
    let ctx = Arc::new(ctx);
    tokio::select! {
        () = run_controllers(ctx, shutdown.clone()) => tracing::info!("controllers stopped"),
        why = leadership.lost() => {
            // Acting on without the Lease could let two instances act at once.
            tracing::error!(reason = %why, "lost leadership; exiting");
            std::process::exit(1);
        }
    }
    metrics.leader.set(0);
    leadership.release().await;
    shutdown.cancel();
    let _ = http.await;
    Ok(())
}

fn spawn_signal_handler(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        }
        token.cancel();
    });
}

async fn run_controllers(ctx: Arc<Context>, shutdown: CancellationToken) {
    use crate::{cluster, migration, onlineddl, shardsplit};
    tokio::join!(
        drive(ctx.clone(), shutdown.clone(), cluster::controller::reconcile),
        drive(ctx.clone(), shutdown.clone(), onlineddl::controller::reconcile),
        drive(ctx.clone(), shutdown.clone(), migration::controller::reconcile),
        drive(ctx.clone(), shutdown.clone(), shardsplit::controller::reconcile),
    );
}

/// Runs one kind's controller until shutdown, every reconcile measured and in
/// its own tracing span.
async fn drive<K, R, F>(ctx: Arc<Context>, shutdown: CancellationToken, reconcile: R)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    R: Fn(Arc<K>, Arc<Context>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Action>> + Send + 'static,
{
    let api: Api<K> = Api::all(ctx.client.clone());
    Controller::new(api, watcher::Config::default())
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(
            move |obj, ctx| {
                let reconcile = reconcile.clone();
                async move { measured(obj, ctx, reconcile).await }
            },
            error_policy,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}

fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!("{}/{}/{}", K::kind(&()), obj.namespace().unwrap_or_default(), obj.name_any())
}

async fn measured<K, R, F>(obj: Arc<K>, ctx: Arc<Context>, reconcile: R) -> Result<Action>
where
    K: Resource<DynamicType = ()>,
    R: Fn(Arc<K>, Arc<Context>) -> F,
    F: Future<Output = Result<Action>>,
{
    let kind = K::kind(&()).to_string();
    let span = tracing::info_span!(
        "reconcile",
        kind = %kind,
        namespace = %obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        generation = obj.meta().generation.unwrap_or_default(),
    );
    ctx.metrics.reconciles.with_label_values(&[kind.as_str()]).inc();
    let timer = ctx.metrics.duration.with_label_values(&[kind.as_str()]).start_timer();
    let key = object_key(&*obj);
    let result = reconcile(obj, ctx.clone()).instrument(span).await;
    timer.observe_duration();
    match &result {
        Ok(_) => ctx.succeeded(&key),
        Err(e) => ctx.metrics.failures.with_label_values(&[kind.as_str(), e.metric_label()]).inc(),
    }
    result
}

fn error_policy<K: Resource<DynamicType = ()>>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = object_key(&*obj);
    let action = ctx.failed(&key);
    tracing::warn!(object = %key, error = %error, retry = ?action, "reconcile failed");
    action
}
