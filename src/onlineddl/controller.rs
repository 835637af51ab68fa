//! The OnlineDDL controller. Today it validates the spec and reports it; the schema change
//! itself arrives with its own issue.

use std::sync::Arc;

use kube::runtime::controller::Action;

use super::api::OnlineDDL;
use super::validate::validate;
use crate::error::Result;
use crate::operator::context::Context;
use crate::operator::outcome::validate_only;

pub const SUCCEEDED: &str = "Succeeded";

pub async fn reconcile(obj: Arc<OnlineDDL>, ctx: Arc<Context>) -> Result<Action> {
    validate_only(&ctx, &*obj, SUCCEEDED, validate(&obj.spec), "the schema change").await?;
    Ok(Action::await_change())
}
