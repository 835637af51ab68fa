//! The Migration controller: read → validate → start the task → status.
//! The migration itself runs in a task ([`super::runner`]) that owns the
//! status while it runs; this reconcile only checks the spec and makes sure
//! a task runs while there is work left.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::api::Migration;
use super::plan::Step;
use super::runner;
use super::validate::validate;
use crate::error::Result;
use crate::operator::context::Context;
use crate::operator::outcome::record;
use crate::operator::spec_check;

pub const SUCCEEDED: &str = "Succeeded";
pub const READY_TO_COMPLETE: &str = "ReadyToComplete";
const GROUP: &str = "migration";
const RUNNING_RECHECK: Duration = Duration::from_secs(30);

pub async fn reconcile(obj: Arc<Migration>, ctx: Arc<Context>) -> Result<Action> {
    let key = obj.uid().unwrap_or_default();
    let status = obj.status.clone().unwrap_or_default();
    let step = Step::parse(status.step.as_deref());
    // The task notices a deletion itself (and takes down a fence it left).
    if obj.meta().deletion_timestamp.is_some() || step.is_terminal() {
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
