//! The Migration controller. Today it validates the spec and reports it; the migration
//! itself arrives with its own issue.

use std::sync::Arc;

use kube::runtime::controller::Action;

use super::api::Migration;
use super::validate::validate;
use crate::error::Result;
use crate::k8s::conditions::{Desired, UNKNOWN};
use crate::operator::context::Context;
use crate::operator::outcome::record;
use crate::operator::spec_check;

pub const SUCCEEDED: &str = "Succeeded";

pub async fn reconcile(obj: Arc<Migration>, ctx: Arc<Context>) -> Result<Action> {
    let mut status = obj.status.clone().unwrap_or_default();
    let (desired, event) = match validate(&obj.spec) {
        Err(errors) => {
            status.step = Some("Invalid".into());
            spec_check::invalid(SUCCEEDED, &errors, &status.conditions)
        }
        Ok(()) => {
            status.step = Some("Pending".into());
            let d = Desired::new(
                SUCCEEDED,
                UNKNOWN,
                "SpecAccepted",
                "spec is valid; the migration is not implemented in this release",
            );
            let ev = spec_check::normal_if_news(&status.conditions, &d);
            (d, ev)
        }
    };
    record(&ctx, &*obj, status, &[desired], event).await?;
    Ok(Action::await_change())
}
