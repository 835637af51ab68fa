//! The OnlineDDL controller: read → validate → decide (queue, start, stop,
//! clean up) → status. The schema change itself runs in a task
//! ([`super::runner`]) that owns the status while it runs; this reconcile
//! starts it, stops it for a cancel or a deletion, and cleans up after it.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::api::{OnlineDDL, OnlineDDLStatus};
use super::plan::Step;
use super::runner;
use super::sql;
use super::table::{self, Recovered};
use super::validate::validate;
use crate::cluster::access::{self, Unavailable};
use crate::error::Result;
use crate::k8s::conditions::{Desired, FALSE, TRUE, UNKNOWN};
use crate::movement::TableName;
use crate::operator::context::Context;
use crate::operator::outcome::{namespace, record};
use crate::operator::spec_check::{self, Transition};
use crate::work::error::WorkError;

pub use crate::work::{READY_TO_COMPLETE, SUCCEEDED};
/// Held while the resource may have a shadow table or a cut-over sentry in
/// the database: deleting it drops them first.
pub const FINALIZER: &str = "switchyard.io/onlineddl-cleanup";
const GROUP: &str = "onlineddl";
/// A task stops at its next safe point; an attempt in flight is bounded by
/// its lock timeout (at most 60 s, twice over for its two waits).
const STOP_WAIT: Duration = Duration::from_secs(130);
const RUNNING_RECHECK: Duration = Duration::from_secs(30);
const QUEUED_RECHECK: Duration = Duration::from_secs(3);

pub async fn reconcile(obj: Arc<OnlineDDL>, ctx: Arc<Context>) -> Result<Action> {
    let ns = namespace(&*obj)?;
    let api: Api<OnlineDDL> = Api::namespaced(ctx.client.clone(), &ns);
    let key = obj.uid().unwrap_or_default();
    let status = obj.status.clone().unwrap_or_default();
    let step = Step::parse(status.step.as_deref());

    if obj.meta().deletion_timestamp.is_some() {
        if !obj.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        if !ctx.workers.stop(&key, STOP_WAIT).await {
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
        let latest = api.get_status(&obj.name_any()).await?.status.unwrap_or_default();
        clean_up(&ctx, &obj, &latest).await?;
        set_finalizer(&api, &obj, false).await?;
        return Ok(Action::await_change());
    }

    if matches!(step, Step::Pending | Step::Invalid)
        && let Err(errors) = validate(&obj.spec)
    {
        let mut status = status;
        status.step = Some(Step::Invalid.as_str().into());
        let (desired, event) = spec_check::invalid(SUCCEEDED, &errors, &status.conditions);
        record(&ctx, &*obj, status, &[desired], event).await?;
        return Ok(Action::await_change());
    }

    if step.is_terminal() && step != Step::Invalid {
        if obj.finalizers().iter().any(|f| f == FINALIZER) {
            set_finalizer(&api, &obj, false).await?;
        }
        return retire_old_table(&ctx, &obj, status).await;
    }

    if obj.spec.cancel {
        return cancel(&ctx, &api, &obj, &key).await;
    }

    if !obj.finalizers().iter().any(|f| f == FINALIZER) {
        set_finalizer(&api, &obj, true).await?;
    }
    if ctx.workers.running(&key) {
        return Ok(Action::requeue(RUNNING_RECHECK));
    }
    if let Some(why) = wait_reason(&ctx, &api, &obj).await? {
        let mut status = status;
        status.step = Some(Step::Queued.as_str().into());
        let desired = Desired::new(SUCCEEDED, UNKNOWN, "Queued", why.clone());
        let event = spec_check::normal_if_news(&status.conditions, &desired);
        record(&ctx, &*obj, status, &[desired], event).await?;
        return Ok(Action::requeue(QUEUED_RECHECK));
    }
    let task_ctx = ctx.clone();
    let snapshot = (*obj).clone();
    tracing::info!(step = step.as_str(), "starting the schema change task");
    ctx.workers.start(&key, GROUP, move |stop| runner::run(task_ctx, snapshot, stop));
    Ok(Action::requeue(RUNNING_RECHECK))
}

/// Why this change cannot start yet: an earlier change of the same table
/// (by creation time, then name) is unfinished, or all slots are taken.
async fn wait_reason(ctx: &Context, api: &Api<OnlineDDL>, obj: &OnlineDDL) -> Result<Option<String>> {
    let all = api.list(&ListParams::default()).await?;
    let me = order_key(obj);
    let earlier = all.items.iter().filter(|o| o.uid() != obj.uid()).find(|o| {
        o.spec.cluster == obj.spec.cluster
            && o.spec.database == obj.spec.database
            && o.spec.table == obj.spec.table
            && !o.spec.cancel
            && o.meta().deletion_timestamp.is_none()
            && !Step::parse(o.status.as_ref().and_then(|s| s.step.as_deref())).is_terminal()
            && order_key(o) < me
    });
    if let Some(o) = earlier {
        return Ok(Some(format!(
            "waiting for OnlineDDL {} to finish changing {}.{} first",
            o.name_any(),
            obj.spec.database,
            obj.spec.table
        )));
    }
    let running = ctx.workers.count(GROUP);
    if running >= ctx.max_schema_changes {
        return Ok(Some(format!("{running} schema changes are running, the limit (--max-schema-changes)")));
    }
    Ok(None)
}

fn order_key(o: &OnlineDDL) -> (Option<jiff::Timestamp>, String) {
    (o.meta().creation_timestamp.as_ref().map(|t| t.0), o.name_any())
}

async fn cancel(ctx: &Context, api: &Api<OnlineDDL>, obj: &OnlineDDL, key: &str) -> Result<Action> {
    if !ctx.workers.stop(key, STOP_WAIT).await {
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let mut status = api.get_status(&obj.name_any()).await?.status.unwrap_or_default();
    let cleaned = clean_up(ctx, obj, &status).await?;
    let (desired, event) = match cleaned {
        Cleaned::Swapped(old) => {
            // The cut-over had happened: a cancel no longer applies.
            status.step = Some(Step::Complete.as_str().into());
            status.old_table = Some(old.clone());
            status.completion_time.get_or_insert_with(crate::k8s::conditions::now);
            let message = format!("the cut-over had completed before the cancel; the original is kept as {old}");
            (Desired::new(SUCCEEDED, TRUE, "Completed", message.clone()), Some(normal("Completed", message)))
        }
        Cleaned::Nothing | Cleaned::ShadowDropped => {
            status.step = Some(Step::Cancelled.as_str().into());
            let message = format!(
                "cancelled by spec.cancel; {}.{} is untouched{}",
                obj.spec.database,
                obj.spec.table,
                if cleaned == Cleaned::ShadowDropped { " and the shadow table is dropped" } else { "" }
            );
            (Desired::new(SUCCEEDED, FALSE, "Cancelled", message.clone()), Some(normal("Cancelled", message)))
        }
    };
    status.shadow_table = None;
    status.checkpoint = None;
    if let Some(c) = status.cutover.as_mut() {
        c.in_flight = None;
    }
    let ready = Desired::new(READY_TO_COMPLETE, FALSE, desired.reason.clone(), "no cut-over pending");
    record(ctx, obj, status, &[desired, ready], event).await?;
    set_finalizer(api, obj, false).await?;
    Ok(Action::await_change())
}

fn normal(reason: &str, message: String) -> Transition {
    Transition { type_: EventType::Normal, reason: reason.into(), message }
}

#[derive(Debug, PartialEq, Eq)]
enum Cleaned {
    Nothing,
    ShadowDropped,
    /// An interrupted attempt had swapped: the original is this table now.
    Swapped(String),
}

/// Removes what this resource created in the database: the shadow table and
/// any sentry of an interrupted attempt. The original is never touched. A
/// cluster that no longer exists has nothing left to clean.
async fn clean_up(ctx: &Context, obj: &OnlineDDL, status: &OnlineDDLStatus) -> Result<Cleaned> {
    let in_flight = status.cutover.as_ref().and_then(|c| c.in_flight.clone());
    if status.shadow_table.is_none() && in_flight.is_none() {
        return Ok(Cleaned::Nothing);
    }
    let ns = namespace(obj)?;
    let endpoint = match access::primary(&ctx.client, &ns, &obj.spec.cluster).await {
        Ok(e) => e,
        Err(Unavailable::NoCluster(_)) => return Ok(Cleaned::Nothing),
        Err(e) => return Err(WorkError::from(e).into()),
    };
    let mut conn = endpoint.connect_raw().await.map_err(WorkError::from)?;
    let t = TableName::new(&obj.spec.database, &obj.spec.table);
    let shadow = TableName::new(&obj.spec.database, &sql::shadow_name(&obj.spec.table));
    if let Some(sentry) = in_flight {
        let sentry_table = TableName::new(&obj.spec.database, &sentry);
        if table::recover(&mut conn, &t, &shadow, &sentry_table).await? == Recovered::Swapped {
            return Ok(Cleaned::Swapped(table::finish_swap(&mut conn, &t, &sentry).await?));
        }
    }
    let existed = table::exists(&mut conn, &shadow).await?;
    table::drop_table(&mut conn, &shadow).await?;
    let _ = conn.disconnect().await;
    Ok(if existed { Cleaned::ShadowDropped } else { Cleaned::Nothing })
}

/// Drops the original, kept under its old name, once `retainOldTableSeconds`
/// have passed since the cut-over.
async fn retire_old_table(ctx: &Context, obj: &OnlineDDL, mut status: OnlineDDLStatus) -> Result<Action> {
    let (Some(old), Some(done)) = (status.old_table.clone(), status.completion_time.clone()) else {
        return Ok(Action::await_change());
    };
    if status.old_table_dropped_time.is_some() {
        return Ok(Action::await_change());
    }
    let due = done.0 + Duration::from_secs(obj.spec.retain_old_table_seconds.max(0) as u64);
    let now = jiff::Timestamp::now();
    if now < due {
        let left = due.duration_since(now).unsigned_abs().min(Duration::from_secs(3600));
        return Ok(Action::requeue(left + Duration::from_millis(200)));
    }
    let ns = namespace(obj)?;
    let endpoint = match access::primary(&ctx.client, &ns, &obj.spec.cluster).await {
        Ok(e) => e,
        Err(Unavailable::NoCluster(_)) => return Ok(Action::await_change()),
        Err(e) => {
            tracing::info!(reason = %e, "cannot drop the old table yet");
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };
    let old_table = TableName::new(&obj.spec.database, &old);
    let mut conn = endpoint.connect_raw().await.map_err(WorkError::from)?;
    table::drop_table(&mut conn, &old_table).await?;
    let _ = conn.disconnect().await;
    status.old_table_dropped_time = Some(crate::k8s::conditions::now());
    let message = format!("dropped {old_table} after {} s", obj.spec.retain_old_table_seconds);
    record(ctx, obj, status, &[], Some(normal("OldTableDropped", message))).await?;
    Ok(Action::await_change())
}

async fn set_finalizer(api: &Api<OnlineDDL>, obj: &OnlineDDL, present: bool) -> Result<()> {
    crate::k8s::finalizer::ensure(api, &obj.name_any(), FINALIZER, present).await?;
    Ok(())
}
