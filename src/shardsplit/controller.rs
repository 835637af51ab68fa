//! The ShardSplit controller: read → validate → start the task → status.
//! The split runs in a task ([`super::runner`]) that owns the status while
//! it runs; this reconcile checks the spec, keeps a task running while
//! there is work left, and takes an in-flight fence down on deletion.

use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::api::ShardSplit;
use super::plan::Step;
use super::runner;
use super::validate::validate;
use crate::error::Result;
use crate::k8s::finalizer;
use crate::operator::context::Context;
use crate::operator::outcome::{namespace, record};
use crate::operator::spec_check;

pub const SUCCEEDED: &str = "Succeeded";
pub const READY_TO_COMPLETE: &str = "ReadyToComplete";
/// Held while a switch attempt (either way) is in flight: one side may be
/// fenced, and a deletion must take that fence down first. The fence of
/// dual-write itself stays on purpose: the old table must not take
/// application writes once nobody keeps it complete.
pub const SWITCH_FINALIZER: &str = "switchyard.io/shardsplit-fence";
const GROUP: &str = "shardsplit";
const RUNNING_RECHECK: Duration = Duration::from_secs(30);
const STOP_WAIT: Duration = Duration::from_secs(20);

fn in_attempt(step: Step) -> bool {
    matches!(step, Step::Switching | Step::RollingBack)
}

pub async fn reconcile(obj: Arc<ShardSplit>, ctx: Arc<Context>) -> Result<Action> {
    let key = obj.uid().unwrap_or_default();
    let status = obj.status.clone().unwrap_or_default();
    let step = Step::parse(status.step.as_deref());
    let api: Api<ShardSplit> = Api::namespaced(ctx.client.clone(), &namespace(&*obj)?);
    let fenced = obj.finalizers().iter().any(|f| f == SWITCH_FINALIZER);
    if obj.meta().deletion_timestamp.is_some() {
        if !fenced {
            return Ok(Action::await_change());
        }
        if !ctx.workers.stop(&key, STOP_WAIT).await {
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
        let mut latest = (*obj).clone();
        latest.status = api.get_status(&obj.name_any()).await?.status;
        runner::undo(ctx.clone(), latest).await?;
        finalizer::ensure(&api, &obj.name_any(), SWITCH_FINALIZER, false).await?;
        return Ok(Action::await_change());
    }
    if fenced && !in_attempt(step) {
        // Decided on a fresh read: the task may have begun an attempt since
        // this copy was taken.
        let attempting = |s: &ShardSplit| in_attempt(Step::parse(s.status.as_ref().and_then(|s| s.step.as_deref())));
        finalizer::ensure_if(&api, &obj.name_any(), SWITCH_FINALIZER, attempting).await?;
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
        tracing::info!(step = step.as_str(), "starting the shard split task");
        ctx.workers.start(&key, GROUP, move |stop| runner::run(task_ctx, snapshot, stop));
    }
    Ok(Action::requeue(RUNNING_RECHECK))
}
