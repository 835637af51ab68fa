//! The ShardSplit controller: the shared reconcile of a switched kind
//! ([`crate::work::switched`]), with what is ShardSplit's own. The split runs
//! in a task ([`super::runner`]) that owns the status while it runs. The
//! fence of dual-write itself stays on deletion on purpose: the old table
//! must not take application writes once nobody keeps it complete.

use std::sync::Arc;

use kube::runtime::controller::Action;
use tokio_util::sync::CancellationToken;

use super::api::{ShardSplit, ShardSplitStatus};
use super::plan::{SWITCH_FINALIZER, Step};
use super::runner;
use super::validate::validate;
use crate::error::Result;
use crate::operator::context::Context;
use crate::validation::SpecErrors;
use crate::work::error::WorkError;
use crate::work::switched::{self, Phase, Switched};
pub use crate::work::{READY_TO_COMPLETE, SUCCEEDED};

impl Switched for ShardSplit {
    type State = ShardSplitStatus;
    const FINALIZER: &'static str = SWITCH_FINALIZER;
    const GROUP: &'static str = "shardsplit";

    fn phase(status: Option<&ShardSplitStatus>) -> Phase {
        let step = Step::parse(status.and_then(|s| s.step.as_deref()));
        Phase {
            step: step.as_str(),
            pending: step == Step::Pending,
            terminal: step.is_terminal(),
            attempting: matches!(step, Step::Switching | Step::RollingBack),
        }
    }

    fn validate(&self) -> std::result::Result<(), SpecErrors> {
        validate(&self.spec)
    }

    async fn undo(ctx: Arc<Context>, latest: ShardSplit) -> std::result::Result<(), WorkError> {
        runner::undo(ctx, latest).await
    }

    fn run(ctx: Arc<Context>, obj: ShardSplit, stop: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
        runner::run(ctx, obj, stop)
    }
}

pub async fn reconcile(obj: Arc<ShardSplit>, ctx: Arc<Context>) -> Result<Action> {
    switched::reconcile(obj, ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(step: &str) -> Phase {
        ShardSplit::phase(Some(&ShardSplitStatus { step: Some(step.into()), ..Default::default() }))
    }

    #[test]
    fn the_switch_finalizer_is_kept_while_either_way_is_in_flight() {
        assert!(at("Switching").attempting && at("RollingBack").attempting);
        assert!(!at("DualWrite").attempting && !at("RolledBack").attempting);
        assert!(at("Cancelled").terminal && !at("DualWrite").terminal);
        assert!(at("Pending").pending && !at("Copying").pending);
        assert_eq!(ShardSplit::phase(None), at("Pending"));
    }
}
