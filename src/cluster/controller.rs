//! The MySQLCluster controller. Today it validates the spec and reports it;
//! provisioning and the clustering loop arrive with their own issue.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::api::MySQLCluster;
use super::validate::validate;
use crate::error::Result;
use crate::k8s::conditions::{Desired, UNKNOWN};
use crate::operator::context::Context;
use crate::operator::outcome::record;
use crate::operator::spec_check;

pub const READY: &str = "Ready";

pub async fn reconcile(obj: Arc<MySQLCluster>, ctx: Arc<Context>) -> Result<Action> {
    let status = obj.status.clone().unwrap_or_default();
    let (desired, event) = match validate(&obj.name_any(), &obj.spec) {
        Err(errors) => spec_check::invalid(READY, &errors, &status.conditions),
        Ok(()) => {
            let d = Desired::new(
                READY,
                UNKNOWN,
                "SpecAccepted",
                "spec is valid; provisioning is not implemented in this release",
            );
            let ev = spec_check::normal_if_news(&status.conditions, &d);
            (d, ev)
        }
    };
    record(&ctx, &*obj, status, &[desired], event).await?;
    Ok(Action::await_change())
}
