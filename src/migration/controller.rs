//! The Migration controller: read → validate → start the task → status.
//! The migration itself runs in a task ([`super::runner`]) that owns the
//! status while it runs; this reconcile only checks the spec and makes sure
//! a task runs while there is work left.

use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::api::Migration;
use super::plan::{self, Step};
use super::runner;
use super::validate::validate;
use crate::error::Result;
use crate::k8s::finalizer;
use crate::operator::context::Context;
use crate::operator::outcome::{namespace, record};
use crate::operator::spec_check;

pub const SUCCEEDED: &str = "Succeeded";
pub const READY_TO_COMPLETE: &str = "ReadyToComplete";
/// Held while a switch attempt is in flight: the source may be fenced, and
/// a deletion must take the fence down first.
pub const FENCE_FINALIZER: &str = "switchyard.io/migration-fence";
const GROUP: &str = "migration";
const RUNNING_RECHECK: Duration = Duration::from_secs(30);
/// How long one reconcile waits for the task to stop; a task still busy
/// (inside a bounded wait of an attempt) is waited for again on requeue.
const STOP_WAIT: Duration = Duration::from_secs(20);

pub async fn reconcile(obj: Arc<Migration>, ctx: Arc<Context>) -> Result<Action> {
    let key = obj.uid().unwrap_or_default();
    let status = obj.status.clone().unwrap_or_default();
    let step = Step::parse(status.step.as_deref());
    let api: Api<Migration> = Api::namespaced(ctx.client.clone(), &namespace(&*obj)?);
    let fenced = obj.finalizers().iter().any(|f| f == FENCE_FINALIZER);
    if obj.meta().deletion_timestamp.is_some() {
        if !fenced {
            return Ok(Action::await_change());
        }
        if !ctx.workers.stop(&key, STOP_WAIT).await {
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
        // An attempt the data source had not moved for is undone; after
        // that point the source stays fenced on purpose.
        let latest = api.get_status(&obj.name_any()).await?.status.unwrap_or_default();
        if plan::resume(&latest) == plan::Resume::Undo {
            runner::unfence(ctx.clone(), (*obj).clone(), latest).await?;
        }
        finalizer::ensure(&api, &obj.name_any(), FENCE_FINALIZER, false).await?;
        return Ok(Action::await_change());
    }
    if fenced && step != Step::Switching {
        // Decided on a fresh read: the task may have begun an attempt since
        // this copy was taken.
        let switching =
            |m: &Migration| Step::parse(m.status.as_ref().and_then(|s| s.step.as_deref())) == Step::Switching;
        finalizer::ensure_if(&api, &obj.name_any(), FENCE_FINALIZER, switching).await?;
    }
    if step.is_terminal() {
        return Ok(Action::await_change());
    }
    if step == Step::Pending
        && let Err(errors) = validate(&obj.spec)
    {
        let mut status = status;
        status.step = Some(Step::Pending.as_str().into());
        let (desired, event) = spec_check::invalid(SUCCEEDED, &errors, &status.conditions);
        record(&ctx, &*obj, status, &[desired], event).await?;
        return Ok(Action::await_change());
    }
    if !ctx.workers.running(&key) {
        let task_ctx = ctx.clone();
        let snapshot = (*obj).clone();
        tracing::info!(step = step.as_str(), "starting the migration task");
        ctx.workers.start(&key, GROUP, move |stop| runner::run(task_ctx, snapshot, stop));
    }
    Ok(Action::requeue(RUNNING_RECHECK))
}
