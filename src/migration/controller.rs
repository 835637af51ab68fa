//! The Migration controller: the shared reconcile of a switched kind
//! ([`crate::work::switched`]), with what is Migration's own. The migration
//! itself runs in a task ([`super::runner`]) that owns the status while it
//! runs.

use std::sync::Arc;

use kube::runtime::controller::Action;
use tokio_util::sync::CancellationToken;

use super::api::{Migration, MigrationStatus};
use super::plan::{self, FENCE_FINALIZER, Resume, Step};
use super::runner;
use super::validate::validate;
use crate::error::Result;
use crate::operator::context::Context;
use crate::validation::SpecErrors;
use crate::work::error::WorkError;
use crate::work::switched::{self, Phase, Switched};
pub use crate::work::{READY_TO_COMPLETE, SUCCEEDED};

impl Switched for Migration {
    type State = MigrationStatus;
    const FINALIZER: &'static str = FENCE_FINALIZER;
    const GROUP: &'static str = "migration";

    fn phase(status: Option<&MigrationStatus>) -> Phase {
        let step = Step::parse(status.and_then(|s| s.step.as_deref()));
        Phase {
            step: step.as_str(),
            pending: step == Step::Pending,
            terminal: step.is_terminal(),
            attempting: step == Step::Switching,
        }
    }

    fn validate(&self) -> std::result::Result<(), SpecErrors> {
        validate(&self.spec)
    }

    /// An attempt the data source had not moved for is undone; after that
    /// point the source stays fenced on purpose.
    async fn undo(ctx: Arc<Context>, latest: Migration) -> std::result::Result<(), WorkError> {
        let status = latest.status.clone().unwrap_or_default();
        if plan::resume(&status) != Resume::Undo {
            return Ok(());
        }
        runner::unfence(ctx, latest, status).await
    }

    fn run(ctx: Arc<Context>, obj: Migration, stop: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
        runner::run(ctx, obj, stop)
    }
}

pub async fn reconcile(obj: Arc<Migration>, ctx: Arc<Context>) -> Result<Action> {
    switched::reconcile(obj, ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(step: &str) -> Phase {
        Migration::phase(Some(&MigrationStatus { step: Some(step.into()), ..Default::default() }))
    }

    #[test]
    fn the_fence_finalizer_is_kept_only_while_switching() {
        assert!(at("Switching").attempting);
        assert!(!at("Postponed").attempting && !at("Complete").attempting);
        assert!(at("Complete").terminal && at("Failed").terminal && !at("SeedCopy").terminal);
        assert!(at("Pending").pending && !at("SeedCopy").pending);
        assert_eq!(Migration::phase(None), at("Pending"), "a new resource is pending");
    }
}
