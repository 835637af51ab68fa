//! The ShardSplit controller. Today it validates the spec and reports it; the split
//! itself arrives with its own issue.

use std::sync::Arc;

use kube::runtime::controller::Action;

use super::api::ShardSplit;
use super::validate::validate;
use crate::error::Result;
use crate::operator::context::Context;
use crate::operator::outcome::validate_only;

pub const SUCCEEDED: &str = "Succeeded";

pub async fn reconcile(obj: Arc<ShardSplit>, ctx: Arc<Context>) -> Result<Action> {
    validate_only(&ctx, &*obj, SUCCEEDED, validate(&obj.spec), "the split").await?;
    Ok(Action::await_change())
}
