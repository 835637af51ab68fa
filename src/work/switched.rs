//! The reconcile of a kind whose work ends in a guarded switch (Migration,
//! ShardSplit): read → validate → keep a task running while there is work
//! left. The task owns the status while it runs. On deletion the task is
//! stopped first, then an attempt it left fenced is undone, and only then
//! does the finalizer go: applications are never left refused by a fence
//! nobody owns.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::core::object::HasStatus;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::SUCCEEDED;
use super::error::WorkError;
use crate::error::Result;
use crate::k8s::conditions::Conditioned;
use crate::k8s::finalizer;
use crate::operator::context::Context;
use crate::operator::outcome::{Stepped, namespace, record};
use crate::operator::spec_check;
use crate::validation::SpecErrors;

/// Where the work stands, as the reconcile needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase {
    pub step: &'static str,
    /// Accepted, before any check against the servers: the spec is judged.
    pub pending: bool,
    /// Complete, Cancelled or Failed: nothing to run.
    pub terminal: bool,
    /// An attempt may have fenced writes: the finalizer stays.
    pub attempting: bool,
}

/// What a switched kind supplies.
pub trait Switched:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + HasStatus<Status = Self::State>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    type State: Stepped + Serialize + Clone + Default + PartialEq + Send + Sync;
    /// Held while an attempt may have fenced writes.
    const FINALIZER: &'static str;
    /// The task group (and the name in logs).
    const GROUP: &'static str;
    fn phase(status: Option<&Self::State>) -> Phase;
    fn validate(&self) -> std::result::Result<(), SpecErrors>;
    /// Undoes an attempt a stopped task left fenced; `latest` carries the
    /// status as last written.
    fn undo(ctx: Arc<Context>, latest: Self) -> impl Future<Output = std::result::Result<(), WorkError>> + Send;
    fn run(ctx: Arc<Context>, obj: Self, stop: CancellationToken) -> impl Future<Output = ()> + Send + 'static;
}

const RUNNING_RECHECK: Duration = Duration::from_secs(30);
/// How long one reconcile waits for the task to stop; a task still busy
/// (inside a bounded wait of an attempt) is waited for again on requeue.
const STOP_WAIT: Duration = Duration::from_secs(20);

pub async fn reconcile<K: Switched>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let key = obj.uid().unwrap_or_default();
    let status = obj.status().cloned().unwrap_or_default();
    let phase = K::phase(Some(&status));
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace(&*obj)?);
    let fenced = obj.finalizers().iter().any(|f| f == K::FINALIZER);
    if obj.meta().deletion_timestamp.is_some() {
        if !fenced {
            return Ok(Action::await_change());
        }
        if !ctx.workers.stop(&key, STOP_WAIT).await {
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
        let mut latest = (*obj).clone();
        *latest.status_mut() = api.get_status(&obj.name_any()).await?.status().cloned();
        K::undo(ctx.clone(), latest).await?;
        finalizer::ensure(&api, &obj.name_any(), K::FINALIZER, false).await?;
        return Ok(Action::await_change());
    }
    if fenced && !phase.attempting {
        // Decided on a fresh read: the task may have begun an attempt since
        // this copy was taken.
        let attempting = |o: &K| K::phase(o.status()).attempting;
        finalizer::ensure_if(&api, &obj.name_any(), K::FINALIZER, attempting).await?;
    }
    if phase.terminal {
        return Ok(Action::await_change());
    }
    if phase.pending
        && let Err(errors) = obj.validate()
    {
        let mut status = status;
        status.set_step(phase.step);
        let (desired, event) = spec_check::invalid(SUCCEEDED, &errors, status.conditions());
        record(&ctx, &*obj, status, &[desired], event).await?;
        return Ok(Action::await_change());
    }
    if !ctx.workers.running(&key) {
        let task_ctx = ctx.clone();
        let snapshot = (*obj).clone();
        tracing::info!(step = phase.step, group = K::GROUP, "starting the task");
        ctx.workers.start(&key, K::GROUP, move |stop| K::run(task_ctx, snapshot, stop));
    }
    Ok(Action::requeue(RUNNING_RECHECK))
}
